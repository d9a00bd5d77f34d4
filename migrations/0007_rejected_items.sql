-- Upstream items the loader could not store (issue 13): one bad listing
-- costs only itself. Each is kept here with why, where it came from and its
-- text as sent (cut at 64 KiB), so an operator can find and replay it; the
-- rest of its page is stored as usual.
CREATE TABLE rejected_items (
    id           bigserial    PRIMARY KEY,
    endpoint     varchar(16)  NOT NULL CHECK (endpoint IN ('/offers', '/changes')),
    page         integer,                               -- /offers: the page
    change_id    bigint,                                -- /changes: the request's change_id
    inner_id     text,                                  -- when readable (escaped, at most 200 chars)
    reason       text         NOT NULL,
    raw          text         NOT NULL,                 -- the item's JSON text as sent, capped
    rejected_at  timestamptz  NOT NULL DEFAULT now()
);
CREATE INDEX rejected_items_rejected_at_idx ON rejected_items (rejected_at);
CREATE INDEX rejected_items_inner_id_idx    ON rejected_items (inner_id);
