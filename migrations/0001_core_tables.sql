-- carfeed core schema (SPEC section 2): the raw listings, their normalised
-- form, API tokens, the operations log, the daily-update state and the
-- initial-load cursor. Worker and sync tables arrive in their own migrations.

-- Every listing exactly as the upstream sent it, one row per inner_id.
CREATE TABLE raw_data (
    id                  bigserial    PRIMARY KEY,
    inner_id            varchar(64)  NOT NULL UNIQUE,      -- the listing's id on che168: our key
    upstream_id         bigint,                            -- the envelope's own `id` (event id)
    change_type         varchar(16)  NOT NULL CHECK (change_type IN ('added', 'changed', 'removed')),
    created_at          timestamptz,                       -- from the API
    data                jsonb        NOT NULL DEFAULT '{}'::jsonb,
    first_loaded_at     timestamptz  NOT NULL DEFAULT now(),
    last_updated_at     timestamptz  NOT NULL DEFAULT now(),
    source              varchar(16)  NOT NULL CHECK (source IN ('initial_load', 'daily_update')),
    active_status       integer      NOT NULL DEFAULT 0 CHECK (active_status IN (0, 1)),
    is_processed        boolean      NOT NULL DEFAULT false,
    -- Normaliser bookkeeping: a record that cannot be normalised keeps
    -- is_processed = false, records why, and is skipped until the loader
    -- rewrites the row (which clears normalize_error).
    normalize_error     text,
    normalize_attempts  integer      NOT NULL DEFAULT 0
);

CREATE INDEX raw_data_active_status_idx   ON raw_data (active_status);
-- The normaliser's queue: only unprocessed rows are indexed, in id order.
CREATE INDEX raw_data_is_processed_idx    ON raw_data (id) WHERE is_processed = false;
CREATE INDEX raw_data_source_idx          ON raw_data (source);
CREATE INDEX raw_data_last_updated_at_idx ON raw_data (last_updated_at);

-- One typed row per listing: the columns the API filters and sorts on, plus
-- the whole normalised record.
CREATE TABLE processed_data (
    inner_id            varchar(64)  PRIMARY KEY,
    raw_id              bigint       NOT NULL,
    url                 text,
    mark                text,
    model               text,
    title               text,
    year                integer,
    color               text,
    price               bigint,                            -- CNY, whole yuan
    km_age              integer,                           -- km
    engine_type         text,
    transmission_type   text,
    body_type           text,
    drive_type          text,
    displacement        double precision,                  -- litres
    power               integer,                           -- hp
    address             text,
    city                text,
    district            text,
    seller_type         text,
    is_dealer           boolean,
    section             text,
    salon_id            text,
    description         text,
    vin                 text,
    offer_created       date,
    first_registration  date,                              -- first day of the month
    is_registered       boolean,                           -- false for 未上牌
    images              jsonb        NOT NULL DEFAULT '[]'::jsonb,
    -- From the specification table (extra.configuration).
    specid              bigint,
    car_name            text,
    manufacturer        text,
    car_class           text,
    fuel_type           text,
    emission_standard   text,
    engine_model        text,
    engine_displacement_l double precision,
    max_horsepower_ps   integer,
    max_power_kw        double precision,
    transmission_detail text,
    gears               integer,
    -- The whole normalised record, as the API returns it.
    record              jsonb        NOT NULL,
    is_active           boolean      NOT NULL DEFAULT true,
    listed_at           timestamptz,                       -- raw created_at (from the API)
    created_at          timestamptz  NOT NULL DEFAULT now(),
    updated_at          timestamptz  NOT NULL DEFAULT now()
);

-- The API serves active offers only; its filters and sorts get partial indexes.
CREATE INDEX processed_data_mark_model_idx ON processed_data (lower(mark), lower(model)) WHERE is_active;
CREATE INDEX processed_data_price_idx      ON processed_data (price, inner_id)         WHERE is_active;
CREATE INDEX processed_data_year_idx       ON processed_data (year, inner_id)          WHERE is_active;
CREATE INDEX processed_data_km_age_idx     ON processed_data (km_age, inner_id)        WHERE is_active;
CREATE INDEX processed_data_listed_at_idx  ON processed_data (listed_at, inner_id)     WHERE is_active;
CREATE INDEX processed_data_city_idx       ON processed_data (lower(city))             WHERE is_active;
CREATE INDEX processed_data_is_active_idx  ON processed_data (is_active);

-- API tokens: never the token itself, only a keyed hash (HMAC-SHA256 with
-- SECRET_KEY) and a short prefix to recognise it by.
CREATE TABLE api_tokens (
    id            bigserial    PRIMARY KEY,
    token_hash    bytea        NOT NULL UNIQUE,
    token_prefix  varchar(8)   NOT NULL,
    description   text         NOT NULL DEFAULT '',
    created_at    timestamptz  NOT NULL DEFAULT now(),
    expires_at    timestamptz,                             -- NULL = never
    revoked_at    timestamptz,
    last_used_at  timestamptz
);
CREATE INDEX api_tokens_token_prefix_idx ON api_tokens (token_prefix);

-- One row per run of any job.
CREATE TABLE operations_log (
    id              bigserial         PRIMARY KEY,
    operation_type  varchar(32)       NOT NULL,
    started_at      timestamptz       NOT NULL,
    duration        double precision  NOT NULL,            -- seconds
    status          varchar(8)        NOT NULL CHECK (status IN ('OK', 'ERROR')),
    details         text              NOT NULL DEFAULT ''
);
CREATE INDEX operations_log_type_started_idx ON operations_log (operation_type, started_at DESC);

-- Daily-update progress: the last fully applied date and change.
CREATE TABLE sync_state (
    id                    bigserial    PRIMARY KEY,
    last_successful_date  date,
    last_change_id        bigint,
    updated_at            timestamptz  NOT NULL DEFAULT now()
);
CREATE INDEX sync_state_last_successful_date_idx ON sync_state (last_successful_date);

-- The initial load's cursor: a single row saying which page comes next, so
-- an interrupted load resumes there and stores no page twice.
CREATE TABLE initial_load_state (
    id                 smallint     PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    next_page          integer      NOT NULL DEFAULT 1,
    pages_stored       integer      NOT NULL DEFAULT 0,
    records_stored     bigint       NOT NULL DEFAULT 0,
    started_at         timestamptz  NOT NULL DEFAULT now(),
    finished_at        timestamptz,
    updated_at         timestamptz  NOT NULL DEFAULT now()
);
