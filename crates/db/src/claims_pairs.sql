-- claim_pairs: claim up to $2 (task, proxy) pairs for worker $1, tasks of
-- the kinds $3, in one statement (one round trip, one commit). Free proxies
-- least recently used first and due tasks oldest first are locked with SKIP
-- LOCKED (claimers never wait on each other), numbered, and paired by
-- number; surplus proxies are only locked for the statement and stay free.
WITH free_proxies AS (
    SELECT id, row_number() OVER (ORDER BY last_used_at NULLS FIRST, id) AS n
      FROM (SELECT id, last_used_at
              FROM proxies
             WHERE status = 'free'
             ORDER BY last_used_at NULLS FIRST, id
             LIMIT $2
               FOR UPDATE SKIP LOCKED) AS p
),
due_tasks AS (
    SELECT id, row_number() OVER (ORDER BY run_after, id) AS n
      FROM (SELECT id, run_after
              FROM tasks
             WHERE status = 'pending' AND run_after <= now() AND kind = ANY($3::text[])
             ORDER BY run_after, id
             LIMIT (SELECT count(*) FROM free_proxies)
               FOR UPDATE SKIP LOCKED) AS t
),
pairs AS (
    SELECT t.id AS task_id, p.id AS proxy_id, t.n
      FROM due_tasks AS t JOIN free_proxies AS p USING (n)
),
claimed_tasks AS (
    UPDATE tasks AS t
       SET status = 'running', worker_id = $1, lease = next_lease(t.lease), claimed_at = now()
      FROM pairs
     WHERE t.id = pairs.task_id
 RETURNING t.id, t.kind, t.target, t.lease, t.attempts, t.params
),
claimed_proxies AS (
    UPDATE proxies AS p
       SET status = 'in_use', worker_id = $1, lease = next_lease(p.lease),
           last_used_at = now(), uses = p.uses + 1
      FROM pairs
     WHERE p.id = pairs.proxy_id
 RETURNING p.id, p.url, p.lease
)
SELECT ct.id, ct.kind, ct.target, ct.lease, ct.attempts, ct.params,
       cp.id AS proxy_id, cp.url AS proxy_url, cp.lease AS proxy_lease
  FROM pairs
  JOIN claimed_tasks AS ct ON ct.id = pairs.task_id
  JOIN claimed_proxies AS cp ON cp.id = pairs.proxy_id
 ORDER BY pairs.n
