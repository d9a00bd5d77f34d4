-- finish_claims: the common end of claims, in one statement (one round
-- trip). Tasks whose fetch gave a page ($1..$7, with its result) or a 404
-- ($8..$10) are completed when their lease still holds (same lease number,
-- same worker), and only those get their result saved (the completion's
-- row lock is the fence); the proxies $11..$13 are freed under their
-- leases (they answered: their faults in a row start again from 0); each
-- worker's completed count goes up by what it completed.
WITH page AS (
    SELECT *
      FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::int[], $5::jsonb[], $6::bytea[], $7::bool[])
           AS r(task_id, lease, worker_id, status_code, headers, body, truncated)
),
ended AS (
    SELECT task_id, lease, worker_id, 'ok' AS outcome FROM page
    UNION ALL
    SELECT task_id, lease, worker_id, 'not_found'
      FROM UNNEST($8::bigint[], $9::bigint[], $10::bigint[]) AS m(task_id, lease, worker_id)
),
completed AS (
    UPDATE tasks AS t
       SET status = 'completed', outcome = e.outcome, finished_at = now(),
           worker_id = NULL, last_error = NULL
      FROM ended AS e
     WHERE t.id = e.task_id AND t.lease = e.lease AND t.worker_id = e.worker_id
       AND t.status = 'running'
 RETURNING t.id, t.kind, t.target, e.outcome, e.worker_id
),
saved AS (
    INSERT INTO results (task_id, kind, target, worker_id, lease, status_code, headers, body, body_truncated)
    SELECT c.id, c.kind, c.target, p.worker_id, p.lease, p.status_code, p.headers, p.body, p.truncated
      FROM completed AS c JOIN page AS p ON p.task_id = c.id
    ON CONFLICT (task_id) DO UPDATE
       SET worker_id = EXCLUDED.worker_id, lease = EXCLUDED.lease,
           status_code = EXCLUDED.status_code, headers = EXCLUDED.headers,
           body = EXCLUDED.body, body_truncated = EXCLUDED.body_truncated,
           fetched_at = now(), saves = results.saves + 1
),
freed AS (
    UPDATE proxies AS p SET status = 'free', worker_id = NULL, faults = 0
      FROM UNNEST($11::bigint[], $12::bigint[], $13::bigint[]) AS c(id, lease, worker_id)
     WHERE p.id = c.id AND p.lease = c.lease AND p.worker_id = c.worker_id
       AND p.status = 'in_use'
),
counted AS (
    UPDATE workers AS w SET tasks_completed = w.tasks_completed + n.done
      FROM (SELECT worker_id, count(*) AS done FROM completed GROUP BY worker_id) AS n
     WHERE w.id = n.worker_id
)
SELECT COALESCE((SELECT array_agg(id) FROM completed WHERE outcome = 'ok'), '{}') AS fetched,
       COALESCE((SELECT array_agg(id) FROM completed WHERE outcome = 'not_found'), '{}') AS gone
