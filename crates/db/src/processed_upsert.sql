-- One batch of normalised listings into processed_data, one statement: every
-- column arrives as an array (one element per listing) and UNNEST zips them
-- back into rows. A listing seen before is overwritten in place; created_at
-- is kept, updated_at moves. RETURNING tells created (xmax = 0) from updated.
INSERT INTO processed_data (
    inner_id, raw_id, url, mark, model, title, year, color, price, km_age,
    engine_type, transmission_type, body_type, drive_type, displacement, power,
    address, city, district, seller_type, is_dealer, section, salon_id,
    description, vin, offer_created, first_registration, is_registered, images,
    specid, car_name, manufacturer, car_class, fuel_type, emission_standard,
    engine_model, engine_displacement_l, max_horsepower_ps, max_power_kw,
    transmission_detail, gears, record, is_active, listed_at)
SELECT
    inner_id, raw_id, url, mark, model, title, year, color, price, km_age,
    engine_type, transmission_type, body_type, drive_type, displacement, power,
    address, city, district, seller_type, is_dealer, section, salon_id,
    description, vin, offer_created, first_registration, is_registered, images::jsonb,
    specid, car_name, manufacturer, car_class, fuel_type, emission_standard,
    engine_model, engine_displacement_l, max_horsepower_ps, max_power_kw,
    transmission_detail, gears, record::jsonb, is_active, listed_at
FROM UNNEST(
    $1::varchar[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::int[], $8::text[], $9::bigint[], $10::int[],
    $11::text[], $12::text[], $13::text[], $14::text[], $15::float8[], $16::int[],
    $17::text[], $18::text[], $19::text[], $20::text[], $21::bool[], $22::text[], $23::text[],
    $24::text[], $25::text[], $26::date[], $27::date[], $28::bool[], $29::text[],
    $30::bigint[], $31::text[], $32::text[], $33::text[], $34::text[], $35::text[],
    $36::text[], $37::float8[], $38::int[], $39::float8[],
    $40::text[], $41::int[], $42::text[], $43::bool[], $44::timestamptz[]
) AS b (
    inner_id, raw_id, url, mark, model, title, year, color, price, km_age,
    engine_type, transmission_type, body_type, drive_type, displacement, power,
    address, city, district, seller_type, is_dealer, section, salon_id,
    description, vin, offer_created, first_registration, is_registered, images,
    specid, car_name, manufacturer, car_class, fuel_type, emission_standard,
    engine_model, engine_displacement_l, max_horsepower_ps, max_power_kw,
    transmission_detail, gears, record, is_active, listed_at)
ON CONFLICT (inner_id) DO UPDATE SET
    raw_id = EXCLUDED.raw_id, url = EXCLUDED.url, mark = EXCLUDED.mark,
    model = EXCLUDED.model, title = EXCLUDED.title, year = EXCLUDED.year,
    color = EXCLUDED.color, price = EXCLUDED.price, km_age = EXCLUDED.km_age,
    engine_type = EXCLUDED.engine_type, transmission_type = EXCLUDED.transmission_type,
    body_type = EXCLUDED.body_type, drive_type = EXCLUDED.drive_type,
    displacement = EXCLUDED.displacement, power = EXCLUDED.power,
    address = EXCLUDED.address, city = EXCLUDED.city, district = EXCLUDED.district,
    seller_type = EXCLUDED.seller_type, is_dealer = EXCLUDED.is_dealer,
    section = EXCLUDED.section, salon_id = EXCLUDED.salon_id,
    description = EXCLUDED.description, vin = EXCLUDED.vin,
    offer_created = EXCLUDED.offer_created, first_registration = EXCLUDED.first_registration,
    is_registered = EXCLUDED.is_registered, images = EXCLUDED.images,
    specid = EXCLUDED.specid, car_name = EXCLUDED.car_name,
    manufacturer = EXCLUDED.manufacturer, car_class = EXCLUDED.car_class,
    fuel_type = EXCLUDED.fuel_type, emission_standard = EXCLUDED.emission_standard,
    engine_model = EXCLUDED.engine_model, engine_displacement_l = EXCLUDED.engine_displacement_l,
    max_horsepower_ps = EXCLUDED.max_horsepower_ps, max_power_kw = EXCLUDED.max_power_kw,
    transmission_detail = EXCLUDED.transmission_detail, gears = EXCLUDED.gears,
    record = EXCLUDED.record, is_active = EXCLUDED.is_active,
    listed_at = EXCLUDED.listed_at, updated_at = now()
RETURNING (xmax = 0) AS created
