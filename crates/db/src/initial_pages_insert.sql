-- Initial load, the COPY's fallback when some listings are already stored:
-- one statement inserts the new ones; an inner_id already stored is skipped
-- without a write. (The cursor moves in the same transaction, after it.)
INSERT INTO raw_data (inner_id, upstream_id, change_type, created_at, data,
                      source, active_status, is_processed)
SELECT u.inner_id, u.upstream_id, u.change_type, u.created_at, u.data::jsonb, $6, 0, false
  FROM UNNEST($1::varchar[], $2::bigint[], $3::varchar[], $4::timestamptz[], $5::text[])
       AS u(inner_id, upstream_id, change_type, created_at, data)
ON CONFLICT (inner_id) DO NOTHING
