-- Browser-rendered fetches and extraction (issue 15).
--
-- Tasks get the kind 'render_url' (a URL rendered by headless Chromium) and
-- their parameters: {"wait_for": CSS selector, "extract": profile,
-- "screenshot": true}. Results keep what the page became: the URL after
-- redirects, the extracted record under its profile, the fields that
-- matched nothing, and an optional PNG screenshot.
ALTER TABLE tasks DROP CONSTRAINT tasks_kind_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_kind_check
    CHECK (kind IN ('offer_refresh', 'fetch_url', 'render_url'));
ALTER TABLE tasks ADD COLUMN params jsonb NOT NULL DEFAULT '{}';

ALTER TABLE results
    ADD COLUMN final_url      text,
    ADD COLUMN profile        text,   -- the extraction profile that made `data`
    ADD COLUMN data           jsonb,  -- field -> value (lists for `[]` fields)
    ADD COLUMN missing_fields text[], -- fields whose selector matched nothing
    ADD COLUMN screenshot     bytea;  -- PNG, when the task asked for one
