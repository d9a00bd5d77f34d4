-- Initial load, one page: new listings only. An inner_id already stored
-- (by an earlier page or a daily update) is skipped without a write.
INSERT INTO raw_data (inner_id, upstream_id, change_type, created_at, data,
                      source, active_status, is_processed)
SELECT u.inner_id, u.upstream_id, u.change_type, u.created_at, u.data, $6, 0, false
  FROM UNNEST($1::varchar[], $2::bigint[], $3::varchar[], $4::timestamptz[], $5::jsonb[])
       AS u(inner_id, upstream_id, change_type, created_at, data)
ON CONFLICT (inner_id) DO NOTHING
