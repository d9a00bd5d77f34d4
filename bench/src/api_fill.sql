-- Rows $1..=$2 of the api bench's processed_data: ten marks of three models,
-- prices 30,000-530,000 CNY, years 2008-2024, mileage up to 300,000 km, eight
-- cities, listing times over a year, one in eleven inactive, some NULLs.
INSERT INTO processed_data (
    inner_id, raw_id, mark, model, year, price, km_age, city, body_type,
    engine_type, transmission_type, drive_type, seller_type, is_dealer,
    listed_at, is_active, record)
SELECT
    (60000000 + g)::text, g, m.mark, m.model, v.year, v.price, v.km_age, v.city, v.body_type,
    v.engine_type, v.transmission_type, v.drive_type, v.seller_type, v.is_dealer,
    v.listed_at, g % 11 <> 0,
    jsonb_build_object(
        'inner_id', (60000000 + g)::text,
        'url', 'https://www.che168.com/dealer/512345/' || (60000000 + g) || '.html',
        'mark', m.mark, 'model', m.model, 'year', v.year, 'price', v.price,
        'km_age', v.km_age, 'city', v.city, 'body_type', v.body_type,
        'engine_type', v.engine_type, 'transmission_type', v.transmission_type,
        'drive_type', v.drive_type, 'seller_type', v.seller_type, 'is_dealer', v.is_dealer,
        'listed_at', v.listed_at, 'color', 'White', 'displacement', 2.0, 'power', 186,
        'description', '车况精品，一手车，4S店定期保养，无事故无泡水无火烧，原版原漆，支持第三方检测。',
        'images', jsonb_build_array(
            'https://2sc2.autoimg.cn/escimg/auto/g30/M00/4D/8F/1024x768_' || g || '_a.jpg.webp',
            'https://2sc2.autoimg.cn/escimg/auto/g31/M01/4E/90/1024x768_' || g || '_b.jpg.webp'))
FROM generate_series($1::bigint, $2::bigint) AS g
CROSS JOIN LATERAL (
    SELECT (ARRAY['Toyota','Volkswagen','BMW','Audi','Honda','Nissan','Mercedes-Benz','Buick','BYD','Ford'])[1 + (g % 10)] AS mark,
           (ARRAY['A','B','C'])[1 + ((g / 10) % 3)] || ' ' || (g % 7) AS model
) m
CROSS JOIN LATERAL (
    SELECT
        CASE WHEN g % 53 = 0 THEN NULL ELSE 2008 + ((g * 7) % 17)::int END AS year,
        CASE WHEN g % 47 = 0 THEN NULL ELSE 30000 + ((g * 7919) % 500000) END AS price,
        ((g * 104729) % 300000)::int AS km_age,
        (ARRAY['北京','上海','广州','深圳','成都','杭州','武汉','西安'])[1 + ((g / 3) % 8)] AS city,
        (ARRAY['Sedan','SUV','Hatchback','MPV'])[1 + ((g / 7) % 4)] AS body_type,
        (ARRAY['Gasoline','Electric','Hybrid','Diesel'])[1 + ((g / 11) % 4)] AS engine_type,
        (ARRAY['Automatic','Manual','CVT'])[1 + ((g / 13) % 3)] AS transmission_type,
        (ARRAY['FWD','RWD','AWD'])[1 + ((g / 17) % 3)] AS drive_type,
        CASE WHEN g % 3 = 0 THEN 'private' ELSE 'dealer' END AS seller_type,
        g % 3 <> 0 AS is_dealer,
        timestamptz '2025-06-01' + ((g * 31337) % 31536000) * interval '1 second' AS listed_at
) v
