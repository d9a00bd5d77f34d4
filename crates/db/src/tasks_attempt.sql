-- increment_task_attempts: one failed try ($4: its error) for each claim
-- ($1 ids, $2 leases, $3 workers) whose lease is still current. Below $5
-- tries the task waits min($6 * 2^(tries-1), $7) seconds and is pending
-- again; at $5 it is failed for good and keeps its last error.
UPDATE tasks AS t
   SET attempts = t.attempts + 1,
       last_error = f.error,
       worker_id = NULL,
       status = CASE WHEN t.attempts + 1 >= $5 THEN 'failed' ELSE 'pending' END,
       finished_at = CASE WHEN t.attempts + 1 >= $5 THEN now() END,
       run_after = now() + make_interval(secs => least($7, $6 * power(2, t.attempts)))
  FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::text[]) AS f(id, lease, worker_id, error)
 WHERE t.id = f.id AND t.lease = f.lease AND t.worker_id = f.worker_id AND t.status = 'running'
RETURNING t.id, t.status
