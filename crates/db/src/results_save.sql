-- save_result: one row per task, written only when the claim quoted
-- ($1 task ids, $2 leases, $3 workers) still holds the task: the join with
-- a running task under that lease and worker is the fence. A task whose result is already stored
-- (it can only be re-fetched under a newer lease) gets its row updated and
-- `saves` counted up, never a second row.
INSERT INTO results (task_id, kind, target, worker_id, lease, status_code, headers, body, body_truncated)
SELECT t.id, t.kind, t.target, r.worker_id, r.lease, r.status_code, r.headers, r.body, r.truncated
  FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::int[], $5::jsonb[], $6::bytea[], $7::bool[])
       AS r(task_id, lease, worker_id, status_code, headers, body, truncated)
  JOIN tasks AS t ON t.id = r.task_id AND t.lease = r.lease AND t.worker_id = r.worker_id
                 AND t.status = 'running'
ON CONFLICT (task_id) DO UPDATE
   SET worker_id = EXCLUDED.worker_id, lease = EXCLUDED.lease,
       status_code = EXCLUDED.status_code, headers = EXCLUDED.headers,
       body = EXCLUDED.body, body_truncated = EXCLUDED.body_truncated,
       fetched_at = now(), saves = results.saves + 1
RETURNING task_id
