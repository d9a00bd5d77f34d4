-- The in-database ceiling for the normaliser benchmark: Postgres doing the
-- typing itself, in one INSERT ... SELECT over every waiting raw row. It
-- types the main columns the way the Rust rules do (numbers or numeric
-- strings, placeholders to NULL, images from an array or a JSON string, the
-- city from the address, YYYY-MM registrations) but not the spec table, and
-- stores the record as the raw data minus `extra`.
INSERT INTO processed_data (
    inner_id, raw_id, url, mark, model, title, year, color, price, km_age,
    engine_type, transmission_type, body_type, drive_type, displacement, power,
    address, city, district, seller_type, is_dealer, section, salon_id,
    description, vin, offer_created, first_registration, is_registered, images,
    specid, record, is_active, listed_at)
SELECT
    r.inner_id, r.id,
    t.url, t.mark, t.model, t.title,
    CASE WHEN t.year ~ '^[0-9]{1,4}$' THEN t.year::int END,
    t.color,
    CASE WHEN t.price ~ '^[0-9]{1,12}(\.0+)?$' THEN t.price::numeric::bigint END,
    CASE WHEN t.km_age ~ '^[0-9]{1,9}(\.0+)?$' THEN t.km_age::numeric::int END,
    t.engine_type, t.transmission_type, t.body_type, t.drive_type,
    CASE WHEN t.displacement ~ '^[0-9]{1,3}(\.[0-9]+)?$' THEN t.displacement::float8 END,
    CASE WHEN t.power ~ '^[0-9]{1,6}(\.0+)?$' THEN t.power::numeric::int END,
    t.address,
    NULLIF(btrim(split_part(t.address, ',', 1)), ''),
    NULLIF(btrim(split_part(t.address, ',', 2)), ''),
    t.seller_type,
    CASE lower(t.is_dealer) WHEN 'true' THEN true WHEN '1' THEN true
                            WHEN 'false' THEN false WHEN '0' THEN false END,
    t.section, t.salon_id, t.description, t.vin,
    CASE WHEN t.offer_created ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}' THEN left(t.offer_created, 10)::date END,
    CASE WHEN t.first_registration ~ '^[0-9]{4}-[0-9]{2}$' THEN (t.first_registration || '-01')::date END,
    CASE WHEN t.first_registration = '未上牌' THEN false
         WHEN t.first_registration ~ '^[0-9]{4}-[0-9]{2}$' THEN true END,
    CASE jsonb_typeof(r.data -> 'images')
        WHEN 'array' THEN r.data -> 'images'
        WHEN 'string' THEN CASE WHEN left(btrim(r.data ->> 'images'), 1) = '['
                                THEN (r.data ->> 'images')::jsonb ELSE '[]'::jsonb END
        ELSE '[]'::jsonb END,
    CASE WHEN t.specid ~ '^[0-9]{1,15}$' THEN t.specid::bigint END,
    r.data - 'extra',
    r.active_status = 0,
    r.created_at
FROM raw_data AS r
CROSS JOIN LATERAL (
    -- Every text field with placeholders ("", "-", "--", "—") as NULL.
    SELECT
        NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'url'), ''), '-'), '--'), '—') AS url,
        NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'mark'), ''), '-'), '--'), '—') AS mark,
        NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'model'), ''), '-'), '--'), '—') AS model,
        NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'title'), ''), '-'), '--'), '—') AS title,
        NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'year'), ''), '-'), '--'), '—') AS year,
        NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'color'), ''), '-'), '--'), '—') AS color,
        replace(NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'price'), ''), '-'), '--'), '—'), ',', '') AS price,
        replace(NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'km_age'), ''), '-'), '--'), '—'), ',', '') AS km_age,
        NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'engine_type'), ''), '-'), '--'), '—') AS engine_type,
        NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'transmission_type'), ''), '-'), '--'), '—') AS transmission_type,
        NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'body_type'), ''), '-'), '--'), '—') AS body_type,
        NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'drive_type'), ''), '-'), '--'), '—') AS drive_type,
        NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'displacement'), ''), '-'), '--'), '—') AS displacement,
        NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'power'), ''), '-'), '--'), '—') AS power,
        NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'address'), ''), '-'), '--'), '—') AS address,
        NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'seller_type'), ''), '-'), '--'), '—') AS seller_type,
        NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'is_dealer'), ''), '-'), '--'), '—') AS is_dealer,
        NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'section'), ''), '-'), '--'), '—') AS section,
        NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'salon_id'), ''), '-'), '--'), '—') AS salon_id,
        NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'description'), ''), '-'), '--'), '—') AS description,
        NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'vin'), ''), '-'), '--'), '—') AS vin,
        NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'offer_created'), ''), '-'), '--'), '—') AS offer_created,
        NULLIF(NULLIF(NULLIF(NULLIF(btrim(r.data ->> 'first_registration'), ''), '-'), '--'), '—') AS first_registration,
        NULLIF(NULLIF(NULLIF(NULLIF(btrim(COALESCE(r.data #>> '{extra,configuration,specid}', r.data ->> 'specid')), ''), '-'), '--'), '—') AS specid
) AS t
WHERE r.is_processed = false AND r.normalize_error IS NULL
