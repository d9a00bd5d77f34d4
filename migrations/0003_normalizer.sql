-- The normaliser's queue (issue 5). A row waits while it is unprocessed and
-- has not failed: a record that could not be normalised keeps
-- is_processed = false with its normalize_error set, and is skipped until the
-- loader rewrites it (which clears normalize_error). Indexing exactly that
-- predicate, in id order, means a claim never walks over failed records.
CREATE INDEX raw_data_normalize_queue_idx
    ON raw_data (id)
    WHERE is_processed = false AND normalize_error IS NULL;

-- The loader's hint: `NOTIFY raw_data_changed` after it commits a page. The
-- normaliser LISTENs on that channel and also polls, so it works without it.
