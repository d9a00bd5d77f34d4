-- The normaliser's batch ends with `UPDATE raw_data SET is_processed = true`
-- (SPEC 4), and that update can never be HOT: is_processed is in the queue
-- index's predicate, which the spec asks for. So every normalised row writes
-- a new version of its raw row, with an entry in each of raw_data's indexes
-- (issue 27). This migration makes that rewrite cheap instead of removing it.
--
-- A narrow heap tuple. A listing's 2.2 KB of jsonb makes its row longer
-- than Postgres' toast threshold (about 2 KB), so it is toasted when
-- written; with the default toast_tuple_target that stops as soon as the
-- row fits in 2 KB, so `data` stayed in the heap tuple, compressed, and the
-- flag's update copied the whole listing into the WAL and a new heap tuple
-- (and the first touch of each ~8-row page after a checkpoint wrote a full
-- page image). With 128 bytes, toasting goes on until `data` is compressed
-- and moved to raw_data's TOAST table: the heap tuple is the ~150 bytes of
-- the other columns plus an 18-byte TOAST pointer, and an update that leaves
-- `data` alone copies only that pointer, never the TOAST value. lz4
-- compresses and decompresses several times faster than pglz (the loader
-- compresses every listing once, the normaliser decompresses it once).
--
-- Room on each page for the new version: with fillfactor 50 the flag's
-- update puts the new tuple on the old one's page. Postgres then logs only
-- the bytes that changed (about 80 bytes instead of the whole ~180-byte
-- tuple), the heap does not grow over a drain (the next writer prunes the
-- dead versions and reuses their space), and no new page is dirtied. Half
-- of a heap of narrow tuples is little: about 7 MB per 50,000 listings.
--
-- Applies to rows written from now on (the loader's inserts and rewrites):
-- rows stored before keep their layout until the loader next rewrites them.
ALTER TABLE raw_data SET (toast_tuple_target = 128, fillfactor = 50);
ALTER TABLE raw_data ALTER COLUMN data SET COMPRESSION lz4;

-- One queue index is enough. 0001's raw_data_is_processed_idx (id) WHERE
-- is_processed = false is the spec's index on is_processed, and the status
-- page counts both waiting and failed rows from it (0016). 0003's index held
-- the same ids minus the failed ones: a second index for every loaded row to
-- enter. The claim now walks 0001's index and skips the few failed rows on
-- its way (db::queue::claim).
DROP INDEX raw_data_normalize_queue_idx;

-- processed_data's index on is_active served no query: the api reads active
-- offers through partial indexes (WHERE is_active), and /filters and /stats
-- count every row anyway. One index fewer to maintain on every write.
DROP INDEX processed_data_is_active_idx;
