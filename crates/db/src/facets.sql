-- The filter UI's facets over active offers, in one scan: each grouping set
-- is one facet. `facet` names it; for 'model' rows `mark` says whose model it
-- is; the empty grouping set ('total') carries the ranges.
SELECT
    CASE
        WHEN GROUPING(mark, model) = 0    THEN 'model'
        WHEN GROUPING(body_type) = 0      THEN 'body_type'
        WHEN GROUPING(engine_type) = 0    THEN 'engine_type'
        WHEN GROUPING(transmission_type) = 0 THEN 'transmission_type'
        WHEN GROUPING(drive_type) = 0     THEN 'drive_type'
        WHEN GROUPING(seller_type) = 0    THEN 'seller_type'
        WHEN GROUPING(city) = 0           THEN 'city'
        ELSE 'total'
    END                                    AS facet,
    mark,
    COALESCE(model, body_type, engine_type, transmission_type, drive_type, seller_type, city) AS value,
    count(*)                               AS count,
    min(year)                              AS year_min,
    max(year)                              AS year_max,
    min(price)                             AS price_min,
    max(price)                             AS price_max,
    max(km_age)                            AS km_age_max
FROM processed_data
WHERE is_active
GROUP BY GROUPING SETS (
    (mark, model), (body_type), (engine_type), (transmission_type),
    (drive_type), (seller_type), (city), ()
)
