-- The worker fleet (issue 11, SPEC 6): tasks to fetch, the proxies they are
-- fetched through, the workers doing it, and what they fetched.
--
-- Claims follow the lease pattern of the Postgres job queues (River, awa): a
-- claim flips a row to its busy status, names the worker and bumps `lease`.
-- Every later write about that claim (a completion, a result, a release)
-- says `WHERE lease = <the lease it was given>`, so once cleanup has taken a
-- claim away (and bumped the lease again) the old holder's writes change no
-- rows and nothing counts twice. Row locks are held only while claiming.

-- One row per started `worker run` process. Status words are read by
-- operators and scripts: alive | stopped (exited cleanly) | dead (its
-- heartbeat went stale and cleanup reclaimed what it held).
CREATE TABLE workers (
    id              bigserial PRIMARY KEY,
    name            text        NOT NULL,            -- host-pid, for people
    status          text        NOT NULL DEFAULT 'alive'
                    CHECK (status IN ('alive', 'stopped', 'dead')),
    slots           integer     NOT NULL,
    -- Each worker says when it counts as gone (heartbeat x missed beats), so
    -- cleanup needs no copy of the worker's settings.
    stale_after     interval    NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT now(),
    last_heartbeat  timestamptz NOT NULL DEFAULT now(),
    ended_at        timestamptz,
    tasks_completed bigint      NOT NULL DEFAULT 0,
    tasks_failed    bigint      NOT NULL DEFAULT 0,
    tasks_retried   bigint      NOT NULL DEFAULT 0,
    proxies_blocked bigint      NOT NULL DEFAULT 0
);
-- Cleanup's stale-heartbeat scan looks at live workers only.
CREATE INDEX workers_alive_heartbeat_idx ON workers (last_heartbeat) WHERE status = 'alive';

-- Proxies: free | in_use | blocked. `url` is normalised to
-- scheme://[user:pass@]host:port, which makes duplicates visible.
CREATE TABLE proxies (
    id            bigserial PRIMARY KEY,
    url           text        NOT NULL UNIQUE,
    status        text        NOT NULL DEFAULT 'free'
                  CHECK (status IN ('free', 'in_use', 'blocked')),
    lease         bigint      NOT NULL DEFAULT 0,
    worker_id     bigint,                            -- holder while in_use
    blocked_until timestamptz,                       -- set while blocked
    last_used_at  timestamptz,
    uses          bigint      NOT NULL DEFAULT 0,
    blocks        bigint      NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now()
);
-- Claims take the least recently used free proxy (spreads the load).
CREATE INDEX proxies_free_idx ON proxies (last_used_at NULLS FIRST, id) WHERE status = 'free';
CREATE INDEX proxies_holder_idx ON proxies (worker_id) WHERE status = 'in_use';
CREATE INDEX proxies_blocked_idx ON proxies (blocked_until) WHERE status = 'blocked';

-- Tasks: pending | running | completed | failed.
-- kind 'offer_refresh': target is an inner_id; 'fetch_url': target is a URL.
CREATE TABLE tasks (
    id          bigserial PRIMARY KEY,
    kind        text        NOT NULL CHECK (kind IN ('offer_refresh', 'fetch_url')),
    target      text        NOT NULL,
    status      text        NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'running', 'completed', 'failed')),
    lease       bigint      NOT NULL DEFAULT 0,
    worker_id   bigint,                              -- holder while running
    attempts    integer     NOT NULL DEFAULT 0,      -- failed tries so far (5xx, timeouts)
    run_after   timestamptz NOT NULL DEFAULT now(),  -- retry backoff
    last_error  text,
    outcome     text,                                -- completed: 'ok' | 'not_found'
    created_at  timestamptz NOT NULL DEFAULT now(),
    claimed_at  timestamptz,
    finished_at timestamptz,
    UNIQUE (kind, target)
);
-- The claim: pending tasks whose backoff has passed, oldest first.
CREATE INDEX tasks_pending_idx ON tasks (run_after, id) WHERE status = 'pending';
-- Cleanup: what a dead worker holds.
CREATE INDEX tasks_holder_idx ON tasks (worker_id) WHERE status = 'running';
-- Retention purge and the status command's throughput over the last hour.
CREATE INDEX tasks_finished_idx ON tasks (finished_at) WHERE status IN ('completed', 'failed');

-- Results: one row per task, written by the claim that completed it. No
-- foreign key: results outlive the purge of finished tasks. `saves` counts
-- writes (ON CONFLICT DO UPDATE adds one), so "saved exactly once" is visible.
CREATE TABLE results (
    task_id        bigint      PRIMARY KEY,
    kind           text        NOT NULL,
    target         text        NOT NULL,
    worker_id      bigint      NOT NULL,
    lease          bigint      NOT NULL,
    status_code    integer     NOT NULL,
    headers        jsonb       NOT NULL DEFAULT '{}',
    body           text,                             -- up to worker.body_cap_bytes
    body_truncated boolean     NOT NULL DEFAULT false,
    fetched_at     timestamptz NOT NULL DEFAULT now(),
    saves          integer     NOT NULL DEFAULT 1
);
CREATE INDEX results_fetched_at_idx ON results (fetched_at);
