-- Accounts, sites, publisher keys and the activity log.

CREATE TABLE accounts (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    partner     TEXT NOT NULL,
    settings    TEXT NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE sites (
    id              TEXT PRIMARY KEY NOT NULL,
    account_id      TEXT NOT NULL REFERENCES accounts (id),
    name            TEXT NOT NULL,
    live_url        TEXT NOT NULL,
    live_docroot    TEXT,
    staging_url     TEXT,
    staging_docroot TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX sites_by_account ON sites (account_id, id);

CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY NOT NULL,
    name           TEXT NOT NULL,
    secret_sha256  BLOB NOT NULL,
    created_at     INTEGER NOT NULL
) STRICT;

-- Monotonic numbers shared by every writer (several processes may write one file).
CREATE TABLE counters (
    name   TEXT PRIMARY KEY NOT NULL,
    value  INTEGER NOT NULL
) STRICT;
INSERT INTO counters (name, value) VALUES ('change', 0);

-- One row per activity. `seq` is the insertion order and the cursor's tie-breaker (every
-- index carries it for free, as the rowid). `change_no` moves on every write to the row and
-- feeds the live stream. The search columns hold what each audience sees, lower-cased, as
-- the redaction function renders it; `search_client` is NULL where it equals the internal one.
CREATE TABLE activities (
    seq             INTEGER PRIMARY KEY,
    id              TEXT NOT NULL,
    account_id      TEXT NOT NULL,
    site_id         TEXT NOT NULL,
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
    created_at      INTEGER NOT NULL,
    completed_at    INTEGER,
    change_no       INTEGER NOT NULL,
    request_sha256  BLOB NOT NULL,
    search_internal TEXT NOT NULL,
    search_client   TEXT
) STRICT;
CREATE UNIQUE INDEX activities_by_id ON activities (id);
CREATE INDEX activities_by_site ON activities (site_id, created_at);
CREATE INDEX activities_by_account ON activities (account_id, created_at);
CREATE INDEX activities_by_change ON activities (change_no);
