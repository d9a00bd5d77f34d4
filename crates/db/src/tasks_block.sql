-- block: a site refused the proxy $4 of each claim ($1 ids, $2 leases, $3
-- workers; $5 the status or block page). The proxy joins the task's
-- `blocked_by` (once), and the task goes back to pending at once without an
-- attempt; once $6 distinct proxies blocked it, it fails for good with the
-- count and the last reason (a site that always answers 403 ends here).
WITH b AS (
    SELECT t.id,
           CASE WHEN b.proxy_id = ANY(t.blocked_by) THEN t.blocked_by
                ELSE t.blocked_by || b.proxy_id END AS blocked_by,
           b.reason
      FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[])
           AS b(id, lease, worker_id, proxy_id, reason)
      JOIN tasks AS t ON t.id = b.id AND t.lease = b.lease AND t.worker_id = b.worker_id
                     AND t.status = 'running'
)
UPDATE tasks AS t
   SET blocked_by = b.blocked_by,
       worker_id = NULL,
       run_after = now(),
       status = CASE WHEN cardinality(b.blocked_by) >= $6 THEN 'failed' ELSE 'pending' END,
       finished_at = CASE WHEN cardinality(b.blocked_by) >= $6 THEN now() END,
       last_error = CASE WHEN cardinality(b.blocked_by) >= $6
                         THEN 'blocked by ' || cardinality(b.blocked_by) || ' proxies (last: ' || b.reason || ')'
                         ELSE b.reason END
  FROM b
 WHERE t.id = b.id
RETURNING t.id, t.status
