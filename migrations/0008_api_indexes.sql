-- The api's equality filters (issue 14). 0001 and 0004 serve the sorts, the
-- ranges (year, price, km_age) and mark; model without mark, city, body,
-- fuel, transmission, drive, seller type and is_dealer had no index a
-- query could use at 1,000,000 rows. (A page with such a filter first walks
-- at most 5,000 rows of its sort's index, then, when they hold less than a
-- page, takes the filter's matches from this index: db::offers.) One GIN index over the offer's filter
-- terms ('model=x5', 'body_type=SUV', ...) serves all of them, alone or
-- combined, with one or several values each (`terms @> ARRAY[...]` for one
-- value, `terms && ARRAY[...]` for any of several): one index to maintain on
-- every write instead of eight. Text that the api compares without case is
-- lower-cased here exactly as the api lower-cases the values it looks for.
CREATE FUNCTION api_filter_terms(
    model text, city text, body_type text, engine_type text,
    transmission_type text, drive_type text, seller_type text, is_dealer boolean
) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT array_remove(ARRAY[
    'model=' || lower(model),
    'city=' || lower(city),
    'body_type=' || body_type,
    'engine_type=' || engine_type,
    'transmission_type=' || transmission_type,
    'drive_type=' || drive_type,
    'seller_type=' || seller_type,
    'is_dealer=' || is_dealer::text
], NULL) $$;

CREATE INDEX processed_data_filter_terms_idx
    ON processed_data USING gin (api_filter_terms(
        model, city, body_type, engine_type, transmission_type, drive_type,
        seller_type, is_dealer))
    WHERE is_active;

-- Superseded by the terms: lower(city) is one of them.
DROP INDEX processed_data_city_idx;

