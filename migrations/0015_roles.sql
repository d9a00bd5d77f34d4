-- A database role per service, each granted only what its code touches
-- (issue 25; the table "role -> what it may do" is in docs/roles.md).
-- Until now every service connected as the owner (in compose, the Postgres
-- superuser): one bug in the internet-facing api, or in the browser worker
-- that renders untrusted pages, was the whole database.
--
-- The owner (whoever runs this: `<service> migrate`, the `migrate` service
-- in compose) keeps owning every table and runs the migrations. The roles
-- log in but have no password here: the `migrate` service sets each one's
-- password from the environment or a generated file (see docs/roles.md),
-- so until then no one can log in as them with a password.
--
-- Roles belong to the whole server, grants to one database. Tests migrate
-- many databases of one server at once, so creating a role must survive
-- another session creating it at the same moment (duplicate_object, or
-- unique_violation on pg_authid's index when both pass the existence
-- check); the grants below are per database and never collide.
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['carfeed_loader', 'carfeed_normalizer', 'carfeed_api',
                             'carfeed_worker', 'carfeed_sync'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL; -- created by a concurrent migration of another database
            END;
        END IF;
    END LOOP;
END
$$;

-- Nothing in this schema by default: only the grants below.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- Every service: the schema check at start (`<service> check` too) and its
-- run's row in operations_log.
GRANT SELECT ON _sqlx_migrations
    TO carfeed_loader, carfeed_normalizer, carfeed_api, carfeed_worker, carfeed_sync;
GRANT INSERT, SELECT (id) ON operations_log
    TO carfeed_loader, carfeed_normalizer, carfeed_worker, carfeed_sync;
GRANT USAGE ON SEQUENCE operations_log_id_seq
    TO carfeed_loader, carfeed_normalizer, carfeed_worker, carfeed_sync;

-- loader: raw listings in, the initial load's and the daily update's
-- progress, items it could not store.
GRANT SELECT, INSERT, UPDATE ON raw_data TO carfeed_loader;
GRANT USAGE ON SEQUENCE raw_data_id_seq TO carfeed_loader;
GRANT SELECT, INSERT, UPDATE ON initial_load_state TO carfeed_loader;
GRANT SELECT, INSERT, UPDATE ON sync_state TO carfeed_loader;
GRANT USAGE ON SEQUENCE sync_state_id_seq TO carfeed_loader;
GRANT SELECT, INSERT ON rejected_items TO carfeed_loader;
GRANT USAGE ON SEQUENCE rejected_items_id_seq TO carfeed_loader;

-- normaliser: claims raw rows, marks them, writes the catalogue.
GRANT SELECT, UPDATE ON raw_data TO carfeed_normalizer;
GRANT SELECT, INSERT, UPDATE ON processed_data TO carfeed_normalizer;

-- api: reads the catalogue and its run log; tokens: checks them, issues
-- them (`api tokens issue`, the first start's tokens), revokes them and
-- records their use; nothing else of a token row can change. /stats counts
-- the pipeline through the functions below, never reading raw_data,
-- rejected items or the worker tables (proxies hold credentials).
GRANT SELECT ON processed_data, operations_log, initial_load_state TO carfeed_api;
GRANT SELECT, INSERT ON api_tokens TO carfeed_api;
GRANT UPDATE (last_used_at, revoked_at) ON api_tokens TO carfeed_api;
GRANT USAGE ON SEQUENCE api_tokens_id_seq TO carfeed_api;

-- worker (plain and browser): the fleet's tables, and raw_data for the
-- listings it renders; never tokens or the catalogue.
GRANT SELECT, INSERT, UPDATE, DELETE ON tasks, proxies, workers, results TO carfeed_worker;
GRANT USAGE ON SEQUENCE tasks_id_seq, proxies_id_seq, workers_id_seq TO carfeed_worker;
GRANT SELECT, INSERT, UPDATE ON raw_data TO carfeed_worker;
GRANT USAGE ON SEQUENCE raw_data_id_seq TO carfeed_worker;

-- sync: reads the catalogue on the working side and writes it on
-- production (--prune deletes there), keeps its marks. The same migration
-- runs on both databases, so the role has both halves on each.
GRANT SELECT, INSERT, UPDATE, DELETE ON processed_data TO carfeed_sync;
GRANT SELECT, INSERT, UPDATE ON sync_table_state TO carfeed_sync;

-- The normaliser's queue (migration 0012 on another branch): its triggers
-- on raw_data run as whoever writes raw_data.
DO $$
BEGIN
    IF to_regclass('normalize_queue') IS NOT NULL THEN
        GRANT SELECT, INSERT, UPDATE ON normalize_queue
            TO carfeed_loader, carfeed_worker, carfeed_normalizer;
        GRANT DELETE ON normalize_queue TO carfeed_normalizer;
    END IF;
END
$$;

-- /stats for the api: counts only, computed with the owner's rights.
CREATE FUNCTION api_pipeline_counts(
    OUT loaded bigint, OUT processed bigint, OUT waiting bigint, OUT failed bigint,
    OUT normalized bigint, OUT active bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT r.loaded, r.processed, r.waiting, r.failed, p.normalized, p.active
    FROM (SELECT count(*) AS loaded,
                 count(*) FILTER (WHERE is_processed) AS processed,
                 count(*) FILTER (WHERE NOT is_processed AND normalize_error IS NULL) AS waiting,
                 count(*) FILTER (WHERE NOT is_processed AND normalize_error IS NOT NULL) AS failed
          FROM raw_data) r,
         (SELECT count(*) AS normalized, count(*) FILTER (WHERE is_active) AS active
          FROM processed_data) p
$$;

CREATE FUNCTION api_fleet_counts(OUT name text, OUT row_count bigint)
RETURNS SETOF record
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT 'tasks', count(*) FROM tasks
    UNION ALL SELECT 'proxies', count(*) FROM proxies
    UNION ALL SELECT 'workers', count(*) FROM workers
    UNION ALL SELECT 'results', count(*) FROM results
$$;

CREATE FUNCTION api_rejected_items_count() RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT count(*) FROM rejected_items
$$;

REVOKE EXECUTE ON FUNCTION api_pipeline_counts(), api_fleet_counts(), api_rejected_items_count()
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api_pipeline_counts(), api_fleet_counts(), api_rejected_items_count()
    TO carfeed_api;
