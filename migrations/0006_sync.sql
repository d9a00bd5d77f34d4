-- Sync (issue 12): commit-safe change tracking for the tables `sync push`
-- and `sync pull` copy, and their per-table progress.
--
-- Why not `updated_at` or a trigger-bumped sequence: both are assigned when
-- a row is written, not when it commits. A transaction that took value 41
-- and commits after a push read "everything above 40, new mark 42" is never
-- sent. Instead every tracked row carries the 64-bit id of the transaction
-- that last wrote it (`sync_xid`, set by the column default on INSERT and a
-- trigger on UPDATE), and a push keeps the snapshot it read under
-- (`pg_current_snapshot()`). The next push asks for the rows that snapshot
-- did not see: `NOT pg_visible_in_snapshot(sync_xid, mark)`. A transaction
-- still running at the last read is invisible to that snapshot whenever it
-- commits, so its rows are sent next time; a row the last push saw is not
-- sent again. `sync_xid >= pg_snapshot_xmin(mark)` narrows the search to
-- the index range of recent transactions (every id below xmin was visible).

-- Adds the tracking column, its index and its trigger to a table (idempotent).
-- `sync push` refuses a table without it and names this function.
CREATE FUNCTION sync_track_row() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.sync_xid := pg_current_xact_id();
    RETURN NEW;
END
$$;

CREATE FUNCTION sync_track(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    name text := (SELECT relname FROM pg_class WHERE oid = tbl);
BEGIN
    EXECUTE format('ALTER TABLE %s ADD COLUMN IF NOT EXISTS sync_xid xid8 NOT NULL DEFAULT pg_current_xact_id()', tbl);
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s (sync_xid)', name || '_sync_xid_idx', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS sync_track ON %s', tbl);
    -- Only an UPDATE needs the trigger: the column default covers an INSERT.
    EXECUTE format('CREATE TRIGGER sync_track BEFORE UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION sync_track_row()', tbl);
END
$$;

SELECT sync_track('processed_data');

-- Per table and direction: the mark the next incremental run starts from,
-- and, while a run is unfinished, how far it got (so a killed run resumes
-- without sending again more than the batch it was writing). Kept on the
-- working database for both directions. (`sync_state` is the loader's.)
CREATE TABLE sync_table_state (
    direction       varchar(8)   NOT NULL CHECK (direction IN ('push', 'pull')),
    table_name      text         NOT NULL,
    -- The source snapshot the last finished run read under; NULL: never
    -- finished, the next run copies every row.
    watermark       pg_snapshot,
    -- An unfinished run: every source row with key <= resume_key that the
    -- snapshot resume_watermark saw is on the target.
    resume_key      text[],
    resume_watermark pg_snapshot,
    rows_sent       bigint       NOT NULL DEFAULT 0,
    last_success_at timestamptz,
    updated_at      timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (direction, table_name)
);
