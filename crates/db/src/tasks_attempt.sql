-- increment_task_attempts: one failed try ($3: its error) for each claim
-- ($1 ids, $2 leases) whose lease is still current. Below $4 tries the task
-- waits min($5 * 2^(tries-1), $6) seconds and is pending again; at $4 it is
-- failed for good and keeps its last error.
UPDATE tasks AS t
   SET attempts = t.attempts + 1,
       last_error = f.error,
       worker_id = NULL,
       status = CASE WHEN t.attempts + 1 >= $4 THEN 'failed' ELSE 'pending' END,
       finished_at = CASE WHEN t.attempts + 1 >= $4 THEN now() END,
       run_after = now() + make_interval(secs => least($6, $5 * power(2, t.attempts)))
  FROM UNNEST($1::bigint[], $2::bigint[], $3::text[]) AS f(id, lease, error)
 WHERE t.id = f.id AND t.lease = f.lease AND t.status = 'running'
RETURNING t.id, t.status
