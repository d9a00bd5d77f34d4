-- The loader's resume points (SPEC 3.1-3.3), beyond what 0001 created.

-- sync_state: one row per date the daily update has started. While a date
-- is being applied, next_change_id is where to resume and last_change_id the
-- last change applied; last_successful_date is set (to sync_date) once every
-- change of that date is applied. The start of the next run is the day after
-- max(last_successful_date), or an earlier date left unfinished.
ALTER TABLE sync_state
    ADD COLUMN sync_date       date,
    ADD COLUMN next_change_id  bigint,
    ADD COLUMN pages           integer      NOT NULL DEFAULT 0,
    ADD COLUMN changes         bigint       NOT NULL DEFAULT 0,
    ADD COLUMN started_at      timestamptz  NOT NULL DEFAULT now();
CREATE UNIQUE INDEX sync_state_sync_date_key ON sync_state (sync_date);

-- Pages of the initial load that failed every attempt and were skipped.
ALTER TABLE initial_load_state
    ADD COLUMN failed_pages integer[] NOT NULL DEFAULT '{}';
