-- Less Postgres work per normalised row (issue 27): what each normalised row
-- writes besides what a query needs. Figures: docs/normalizer.md, "Speed and
-- cost".
--
-- processed_data keeps typed columns only for what a query filters, sorts,
-- groups or joins on (SPEC 2: "typed columns for every field the API filters
-- or sorts on, the full normalised record as jsonb, an active flag,
-- timestamps"): the api's filters and sorts (mark, model, year, price,
-- km_age, city, body_type, engine_type, transmission_type, drive_type,
-- seller_type, is_dealer, listed_at), the facets of /filters (the same),
-- raw_id (which raw row it came from). Every other extracted field was a
-- second copy of what `record` holds (the api serves `record`, never those
-- columns): about 700 bytes a row, images alone ~240, written to the heap
-- and the WAL with every normalised row, and pushing the row past Postgres'
-- 2 KB toast threshold so that a third of the records went to the TOAST
-- table. `record` keeps every field, typed as JSON (numbers, booleans,
-- dates as ISO text, images as an array).
--
-- Rows written before this migration keep the dropped columns' bytes until
-- they are next rewritten (the next normalisation of their listing);
-- `VACUUM FULL processed_data` reclaims them at once.
ALTER TABLE processed_data
    DROP COLUMN url,
    DROP COLUMN title,
    DROP COLUMN color,
    DROP COLUMN displacement,
    DROP COLUMN power,
    DROP COLUMN address,
    DROP COLUMN district,
    DROP COLUMN section,
    DROP COLUMN salon_id,
    DROP COLUMN description,
    DROP COLUMN vin,
    DROP COLUMN offer_created,
    DROP COLUMN first_registration,
    DROP COLUMN is_registered,
    DROP COLUMN images,
    DROP COLUMN specid,
    DROP COLUMN car_name,
    DROP COLUMN manufacturer,
    DROP COLUMN car_class,
    DROP COLUMN fuel_type,
    DROP COLUMN emission_standard,
    DROP COLUMN engine_model,
    DROP COLUMN engine_displacement_l,
    DROP COLUMN max_horsepower_ps,
    DROP COLUMN max_power_kw,
    DROP COLUMN transmission_detail,
    DROP COLUMN gears;

-- raw_data's indexes on active_status, source and last_updated_at (SPEC 2
-- asks for indexes on them) as BRIN. No query of the project looks raw rows
-- up by them (the status page's oldest waiting row is found through the
-- queue index), and every normalised row's `is_processed = true` is a
-- non-HOT update (the flag is in the queue index's predicate) that had to
-- add an entry to each B-tree: about 215 bytes of WAL a row for these
-- three. A BRIN index summarises ranges of 128 heap pages: an update adds
-- nothing to it unless its value falls outside its range's summary, and an
-- index of 250,000 rows is a few pages. It still serves a range or equality
-- scan on these columns (a bitmap scan of the matching page ranges), which
-- suits them: rows arrive in load order, so last_updated_at follows the
-- heap, and active_status and source have two or three values each.
DROP INDEX raw_data_active_status_idx;
DROP INDEX raw_data_source_idx;
DROP INDEX raw_data_last_updated_at_idx;
CREATE INDEX raw_data_active_status_idx   ON raw_data USING brin (active_status);
CREATE INDEX raw_data_source_idx          ON raw_data USING brin (source);
CREATE INDEX raw_data_last_updated_at_idx ON raw_data USING brin (last_updated_at);
