-- Initial load, a run of $9 pages from page $7, one statement (atomic without
-- an explicit transaction): insert their new listings (an inner_id already
-- stored is skipped without a write) and move the cursor past them to $8.
-- Both are fenced on the cursor still standing at page $7: if it moved,
-- nothing is inserted, no row is returned, and no page is stored twice.
-- (The COPY path in raw.rs is the usual one; this is its fallback.)
WITH at_page AS (
    SELECT 1 FROM initial_load_state WHERE id = 1 AND next_page = $7
), inserted AS (
    INSERT INTO raw_data (inner_id, upstream_id, change_type, created_at, data,
                          source, active_status, is_processed)
    SELECT u.inner_id, u.upstream_id, u.change_type, u.created_at, u.data::jsonb, $6, 0, false
      FROM UNNEST($1::varchar[], $2::bigint[], $3::varchar[], $4::timestamptz[], $5::text[])
           AS u(inner_id, upstream_id, change_type, created_at, data)
     WHERE EXISTS (SELECT 1 FROM at_page)
    ON CONFLICT (inner_id) DO NOTHING
    RETURNING 1
)
UPDATE initial_load_state
   SET next_page      = COALESCE($8, $7 + $9),
       pages_stored   = pages_stored + $9,
       records_stored = records_stored + (SELECT count(*) FROM inserted),
       finished_at    = CASE WHEN $8::int IS NULL THEN now() END,
       updated_at     = now()
 WHERE id = 1 AND next_page = $7
RETURNING (SELECT count(*) FROM inserted)
