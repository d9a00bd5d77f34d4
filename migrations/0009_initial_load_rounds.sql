-- Issue 13: the initial load counts as finished only when no failed page
-- remains, or after loader.failed_page_rounds rounds of fetching the failed
-- pages again. feed_ended_at says the cursor reached the end of the feed
-- (finished_at used to mean that); refetch_rounds counts the rounds since.
ALTER TABLE initial_load_state
    ADD COLUMN feed_ended_at  timestamptz,
    ADD COLUMN refetch_rounds integer NOT NULL DEFAULT 0;
UPDATE initial_load_state SET feed_ended_at = finished_at;
