-- Daily update, one page: the final state of every listing the page touched
-- (the page's events already folded in order, see domain::change). A stored
-- row is rewritten only when something differs, so re-applying a page writes
-- no tuples. RETURNING tells inserts (xmax = 0) from updates.
INSERT INTO raw_data AS r (inner_id, upstream_id, change_type, created_at, data,
                           active_status, source, is_processed)
SELECT u.inner_id, u.upstream_id, u.change_type, u.created_at, u.data,
       u.active_status, $7, false
  FROM UNNEST($1::varchar[], $2::bigint[], $3::varchar[], $4::timestamptz[], $5::jsonb[], $6::int[])
       AS u(inner_id, upstream_id, change_type, created_at, data, active_status)
ON CONFLICT (inner_id) DO UPDATE
   SET upstream_id        = EXCLUDED.upstream_id,
       change_type        = EXCLUDED.change_type,
       created_at         = EXCLUDED.created_at,
       data               = EXCLUDED.data,
       active_status      = EXCLUDED.active_status,
       last_updated_at    = now(),
       is_processed       = false,
       normalize_error    = NULL,
       normalize_attempts = 0
 WHERE (r.upstream_id, r.change_type, r.created_at, r.data, r.active_status)
       IS DISTINCT FROM
       (EXCLUDED.upstream_id, EXCLUDED.change_type, EXCLUDED.created_at, EXCLUDED.data, EXCLUDED.active_status)
RETURNING (xmax = 0) AS inserted
