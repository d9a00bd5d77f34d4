-- The worker against real sites and real proxy lists (issue 24).
--
-- Bodies keep their bytes: an image, a PDF or a gzip answer carries NUL
-- bytes, which `text` refuses (and a lossy UTF-8 decoding mangles). The
-- body is stored as it came; exports say whether it is text or base64.
ALTER TABLE results ALTER COLUMN body TYPE bytea USING convert_to(body, 'UTF8');

-- Proxy faults are the proxy's: a 407, a refused or timed-out connection to
-- the proxy, a failed CONNECT or the proxy's own 502/503 put the proxy in
-- `cooldown` (apart from `blocked`, where a site refused it). `faults`
-- counts its faults in a row (a good answer resets it) and makes each
-- cooldown longer than the last, up to a cap; `last_fault` says why.
ALTER TABLE proxies DROP CONSTRAINT proxies_status_check;
ALTER TABLE proxies ADD CONSTRAINT proxies_status_check
    CHECK (status IN ('free', 'in_use', 'blocked', 'cooldown'));
ALTER TABLE proxies
    ADD COLUMN faults       integer NOT NULL DEFAULT 0,
    ADD COLUMN total_faults bigint  NOT NULL DEFAULT 0,
    ADD COLUMN last_fault   text;
-- Cleanup frees blocked and cooling proxies whose time is up.
CREATE INDEX proxies_resting_idx ON proxies (blocked_until) WHERE status = 'cooldown';

-- Blocks end: the distinct proxies a site refused this task through, and
-- the times a proxy fault sent it back (neither costs an attempt; each is
-- bounded on its own, `worker.max_blocks_per_task` and
-- `worker.max_proxy_rotations`).
ALTER TABLE tasks
    ADD COLUMN blocked_by bigint[] NOT NULL DEFAULT '{}',
    ADD COLUMN rotations  integer  NOT NULL DEFAULT 0;

-- A stuck completer is visible: each heartbeat says when this worker last
-- wrote an outcome, and since when its oldest finished slot has waited
-- for its write (NULL: none waits).
ALTER TABLE workers
    ADD COLUMN last_write_at   timestamptz,
    ADD COLUMN unwritten_since timestamptz;
