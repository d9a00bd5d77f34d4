-- The in-database ceiling for the normaliser benchmark: Postgres doing the
-- typing itself, in one INSERT ... SELECT over every waiting raw row. It
-- writes the normaliser's columns (migration 0018: the typed columns a query
-- filters, sorts or groups on, and the record), typing them the way the Rust
-- rules do (numbers or numeric strings, placeholders to NULL, the city from
-- the address), and stores the record as the raw data minus `extra`.
INSERT INTO processed_data (
    inner_id, raw_id, mark, model, year, price, km_age, engine_type,
    transmission_type, body_type, drive_type, city, seller_type, is_dealer,
    record, is_active, listed_at)
SELECT
    r.inner_id, r.id,
    t.mark, t.model,
    CASE WHEN t.year ~ '^[0-9]{1,4}$' THEN t.year::int END,
    CASE WHEN t.price ~ '^[0-9]{1,12}(\.0+)?$' THEN t.price::numeric::bigint END,
    CASE WHEN t.km_age ~ '^[0-9]{1,9}(\.0+)?$' THEN t.km_age::numeric::int END,
    t.engine_type, t.transmission_type, t.body_type, t.drive_type,
    NULLIF(btrim(split_part(t.address, ',', 1)), ''),
    t.seller_type,
    CASE lower(t.is_dealer) WHEN 'true' THEN true WHEN '1' THEN true
                            WHEN 'false' THEN false WHEN '0' THEN false END,
    r.data - 'extra',
    r.active_status = 0,
    r.created_at
FROM raw_data AS r
CROSS JOIN LATERAL (
    -- Every text field with placeholders ("", "-", "--", "—") as NULL.
    SELECT
        NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'mark'), ''), '-'), '--'), '—') AS mark,
        NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'model'), ''), '-'), '--'), '—') AS model,
        NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'year'), ''), '-'), '--'), '—') AS year,
        replace(NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'price'), ''), '-'), '--'), '—'), ',', '') AS price,
        replace(NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'km_age'), ''), '-'), '--'), '—'), ',', '') AS km_age,
        NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'engine_type'), ''), '-'), '--'), '—') AS engine_type,
        NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'transmission_type'), ''), '-'), '--'), '—') AS transmission_type,
        NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'body_type'), ''), '-'), '--'), '—') AS body_type,
        NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'drive_type'), ''), '-'), '--'), '—') AS drive_type,
        NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'address'), ''), '-'), '--'), '—') AS address,
        NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'seller_type'), ''), '-'), '--'), '—') AS seller_type,
        NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'is_dealer'), ''), '-'), '--'), '—') AS is_dealer
) AS t
WHERE r.is_processed = false AND r.normalize_error IS NULL
