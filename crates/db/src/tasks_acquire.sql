-- acquire_task: claim up to $2 pending tasks of the kinds $3 for worker $1.
-- The inner SELECT walks the partial index of pending tasks in (run_after,
-- id) order and locks what it takes, skipping rows another claimer is
-- locking right now (so claimers never wait on each other). The UPDATE makes
-- the claim visible after commit and bumps the lease that fences it.
WITH picked AS (
    SELECT id
      FROM tasks
     WHERE status = 'pending' AND run_after <= now() AND kind = ANY($3::text[])
     ORDER BY run_after, id
     LIMIT $2
       FOR UPDATE SKIP LOCKED
)
UPDATE tasks AS t
   SET status = 'running', worker_id = $1, lease = next_lease(t.lease), claimed_at = now()
  FROM picked
 WHERE t.id = picked.id
RETURNING t.id, t.kind, t.target, t.lease, t.attempts, t.params
