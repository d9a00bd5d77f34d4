-- The operator's status page (api `/status`, `/status.json`, `/metrics`) reads
-- tables the api's role may not read (raw_data, rejected_items, the fleet's
-- and sync's tables: migration 0015). It reads them through these functions,
-- owned by the owner (SECURITY DEFINER) and executable by carfeed_api alone:
-- counts and the newest rejected items' reasons, never a listing's data.
--
-- Every count in one round trip, each from an index, so the whole row stays cheap at 1,000,000 raw
-- listings, offers and tasks. No count here scans a big table whole:
--   * the normaliser's queue and its failures are the rows of the partial
--     index raw_data_is_processed_idx (NOT is_processed), small once the
--     normaliser has caught up;
--   * tasks pending and running come from their partial indexes, finished
--     ones of the last hour from tasks_finished_idx; completed and failed
--     in total are the only counts that grow with the table (one index-only
--     pass over tasks_finished_idx);
--   * rows waiting to be pushed are those whose sync_xid the last push's
--     snapshot did not see (the same test as `sync push`), found through
--     processed_data_sync_xid_idx from the snapshot's xmin on.
-- rejected_window: the rejected-items window, dead_window: the dead-worker
-- window, in seconds.
CREATE FUNCTION api_status_figures(rejected_window double precision, dead_window double precision)
RETURNS TABLE (
    normalizer_waiting bigint, normalizer_errors bigint, normalizer_oldest_waiting timestamptz,
    normalizer_last_hour bigint, rejected_total bigint, rejected_recent bigint,
    workers_alive bigint, workers_dead bigint, workers_dead_recent bigint,
    tasks_pending bigint, tasks_running bigint, tasks_completed bigint, tasks_failed bigint,
    tasks_completed_last_hour bigint, tasks_failed_last_hour bigint,
    proxies_free bigint, proxies_in_use bigint, proxies_blocked bigint,
    sync_last_push timestamptz, sync_last_pull timestamptz, sync_waiting bigint,
    tokens_active bigint, daily_last_date date)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT
        (SELECT count(*) FROM raw_data
          WHERE NOT is_processed AND normalize_error IS NULL)              AS normalizer_waiting,
        (SELECT count(*) FROM raw_data
          WHERE NOT is_processed AND normalize_error IS NOT NULL)          AS normalizer_errors,
        (SELECT min(last_updated_at) FROM raw_data
          WHERE NOT is_processed AND normalize_error IS NULL)              AS normalizer_oldest_waiting,
        (SELECT coalesce(sum(substring(details FROM 'processed=([0-9]+)')::bigint), 0)::bigint
           FROM operations_log
          WHERE operation_type = 'normalization'
            AND started_at > now() - interval '1 hour')                    AS normalizer_last_hour,
        (SELECT count(*) FROM rejected_items)                              AS rejected_total,
        (SELECT count(*) FROM rejected_items
          WHERE rejected_at > now() - make_interval(secs => rejected_window))           AS rejected_recent,
        (SELECT count(*) FROM workers WHERE status = 'alive')              AS workers_alive,
        (SELECT count(*) FROM workers WHERE status = 'dead')               AS workers_dead,
        (SELECT count(*) FROM workers
          WHERE status = 'dead' AND ended_at > now() - make_interval(secs => dead_window)) AS workers_dead_recent,
        (SELECT count(*) FROM tasks WHERE status = 'pending')              AS tasks_pending,
        (SELECT count(*) FROM tasks WHERE status = 'running')              AS tasks_running,
        (SELECT count(*) FROM tasks WHERE status = 'completed')            AS tasks_completed,
        (SELECT count(*) FROM tasks WHERE status = 'failed')               AS tasks_failed,
        (SELECT count(*) FROM tasks WHERE status = 'completed'
            AND finished_at > now() - interval '1 hour')                   AS tasks_completed_last_hour,
        (SELECT count(*) FROM tasks WHERE status = 'failed'
            AND finished_at > now() - interval '1 hour')                   AS tasks_failed_last_hour,
        (SELECT count(*) FROM proxies WHERE status = 'free')               AS proxies_free,
        (SELECT count(*) FROM proxies WHERE status = 'in_use')             AS proxies_in_use,
        (SELECT count(*) FROM proxies WHERE status = 'blocked')            AS proxies_blocked,
        (SELECT max(last_success_at) FROM sync_table_state
          WHERE direction = 'push')                                        AS sync_last_push,
        (SELECT max(last_success_at) FROM sync_table_state
          WHERE direction = 'pull')                                        AS sync_last_pull,
        (SELECT CASE WHEN s.watermark IS NULL THEN NULL ELSE
                (SELECT count(*) FROM processed_data p
                  WHERE p.sync_xid >= pg_snapshot_xmin(s.watermark)
                    AND NOT pg_visible_in_snapshot(p.sync_xid, s.watermark)) END
           FROM (SELECT (SELECT watermark FROM sync_table_state
                          WHERE direction = 'push' AND table_name = 'processed_data') AS watermark) s
        )                                                                  AS sync_waiting,
        (SELECT count(*) FROM api_tokens
          WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())) AS tokens_active,
        (SELECT max(last_successful_date) FROM sync_state)                 AS daily_last_date
$$;

-- The newest rejected items: when, where and why (not the item's raw text).
CREATE FUNCTION api_status_rejected(how_many bigint)
RETURNS TABLE (rejected_at timestamptz, endpoint text, inner_id text, reason text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT rejected_at, endpoint::text, inner_id, reason FROM rejected_items
     ORDER BY rejected_at DESC, id DESC LIMIT how_many
$$;

REVOKE EXECUTE ON FUNCTION api_status_figures(double precision, double precision), api_status_rejected(bigint)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api_status_figures(double precision, double precision), api_status_rejected(bigint)
    TO carfeed_api;
