-- The operator's status page (api `/status`): every count in one round
-- trip, each from an index, so the whole row stays cheap at 1,000,000 raw
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
-- $1: the rejected-items window, $2: the dead-worker window, in seconds.
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
      WHERE rejected_at > now() - make_interval(secs => $1))           AS rejected_recent,
    (SELECT count(*) FROM workers WHERE status = 'alive')              AS workers_alive,
    (SELECT count(*) FROM workers WHERE status = 'dead')               AS workers_dead,
    (SELECT count(*) FROM workers
      WHERE status = 'dead' AND ended_at > now() - make_interval(secs => $2)) AS workers_dead_recent,
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
