-- One batch of normalised listings into processed_data, one statement: every
-- column arrives as an array (one element per listing) and UNNEST zips them
-- back into rows. A listing seen before is overwritten in place; created_at
-- is kept, updated_at moves. RETURNING tells created (xmax = 0) from updated.
-- The typed columns are those a query filters, sorts or groups on; `record`
-- holds every field (migration 0018).
INSERT INTO processed_data (
    inner_id, raw_id, mark, model, year, price, km_age, engine_type,
    transmission_type, body_type, drive_type, city, seller_type, is_dealer,
    record, is_active, listed_at)
SELECT
    inner_id, raw_id, mark, model, year, price, km_age, engine_type,
    transmission_type, body_type, drive_type, city, seller_type, is_dealer,
    record::jsonb, is_active, listed_at
FROM UNNEST(
    $1::varchar[], $2::bigint[], $3::text[], $4::text[], $5::int[], $6::bigint[],
    $7::int[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
    $13::text[], $14::bool[], $15::text[], $16::bool[], $17::timestamptz[]
) AS b (
    inner_id, raw_id, mark, model, year, price, km_age, engine_type,
    transmission_type, body_type, drive_type, city, seller_type, is_dealer,
    record, is_active, listed_at)
ON CONFLICT (inner_id) DO UPDATE SET
    raw_id = EXCLUDED.raw_id, mark = EXCLUDED.mark, model = EXCLUDED.model,
    year = EXCLUDED.year, price = EXCLUDED.price, km_age = EXCLUDED.km_age,
    engine_type = EXCLUDED.engine_type, transmission_type = EXCLUDED.transmission_type,
    body_type = EXCLUDED.body_type, drive_type = EXCLUDED.drive_type,
    city = EXCLUDED.city, seller_type = EXCLUDED.seller_type,
    is_dealer = EXCLUDED.is_dealer, record = EXCLUDED.record,
    is_active = EXCLUDED.is_active, listed_at = EXCLUDED.listed_at, updated_at = now()
RETURNING (xmax = 0) AS created
