-- The api's indexes (issue 3). 0001 already indexes each sort column as
-- (column, inner_id) WHERE is_active, which serves the keyset pages of an
-- unfiltered list in both directions. The frontend's typical list is "one
-- mark, newest or cheapest first": these indexes let that be one index range
-- scan per page too, instead of sorting every offer of the mark.
CREATE INDEX processed_data_mark_price_idx
    ON processed_data (lower(mark), price, inner_id) WHERE is_active;
CREATE INDEX processed_data_mark_listed_at_idx
    ON processed_data (lower(mark), listed_at, inner_id) WHERE is_active;
CREATE INDEX processed_data_mark_year_idx
    ON processed_data (lower(mark), year, inner_id) WHERE is_active;

