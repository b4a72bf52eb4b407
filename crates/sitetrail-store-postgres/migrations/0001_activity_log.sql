-- Accounts, sites, publisher keys and the activity log: the same tables and meaning as the
-- SQLite migration. Times are BIGINT milliseconds since the epoch (UTC). Ids compare by
-- bytes (COLLATE "C"): cheaper index comparisons, and ids are ASCII anyway.

CREATE TABLE accounts (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT NOT NULL,
    partner     TEXT NOT NULL,
    settings    TEXT NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE sites (
    id              TEXT COLLATE "C" PRIMARY KEY,
    account_id      TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
    name            TEXT NOT NULL,
    live_url        TEXT NOT NULL,
    live_docroot    TEXT,
    staging_url     TEXT,
    staging_docroot TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX sites_by_account ON sites (account_id, id);

CREATE TABLE api_keys (
    id             TEXT COLLATE "C" PRIMARY KEY,
    name           TEXT NOT NULL,
    secret_sha256  BYTEA NOT NULL,
    created_at     BIGINT NOT NULL
);

-- Monotonic numbers shared by every writer. Each write group locks the `change` row first
-- and holds it until it commits, so groups of all servers commit one at a time, in the order
-- of their change numbers: a reader polling by `change_no` never sees a number before a
-- lower one that is still to commit.
CREATE TABLE counters (
    name   TEXT COLLATE "C" PRIMARY KEY,
    value  BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('change', 0);

-- One row per activity. `seq` is the insertion order and the cursor's tie-breaker.
-- `change_no` moves on every write to the row and feeds the live stream. The search columns
-- hold what each audience sees, lower-cased, as the redaction function renders it;
-- `search_client` is NULL where it equals the internal one. Fixed-width columns come first
-- (no padding). No foreign key to sites: the writer checks the site's account itself, and
-- the insert path stays one heap write plus four index entries.
--
-- The list indexes end in `(created_at DESC, seq DESC)`, the order of a page, so that the
-- first page and every keyset page (`(created_at, seq) < cursor`) are one index range read
-- of `limit + 1` entries with no sort, at any depth. fillfactor leaves room on each page for
-- the one update a row gets (its end).
CREATE TABLE activities (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY,
    created_at      BIGINT NOT NULL,
    completed_at    BIGINT,
    change_no       BIGINT NOT NULL,
    id              TEXT COLLATE "C" NOT NULL,
    account_id      TEXT COLLATE "C" NOT NULL,
    site_id         TEXT COLLATE "C" NOT NULL,
    environment     TEXT NOT NULL,
    service         TEXT NOT NULL,
    activity        TEXT NOT NULL,
    status          TEXT NOT NULL,
    actor_kind      TEXT NOT NULL,
    actor_email     TEXT,
    actor_name      TEXT,
    description     TEXT NOT NULL,
    error           TEXT,
    details         TEXT NOT NULL,
    request_sha256  BYTEA NOT NULL,
    search_internal TEXT NOT NULL,
    search_client   TEXT
) WITH (fillfactor = 90);
CREATE UNIQUE INDEX activities_by_id ON activities (id);
CREATE INDEX activities_by_site ON activities (site_id, created_at DESC, seq DESC);
CREATE INDEX activities_by_account ON activities (account_id, created_at DESC, seq DESC);
CREATE INDEX activities_by_change ON activities (change_no);
