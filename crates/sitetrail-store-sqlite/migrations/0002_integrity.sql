-- Tamper evidence, retention and the audit of who looked.

-- Days an account's activities are kept; NULL is the default (400).
ALTER TABLE accounts ADD COLUMN retention_days INTEGER;

-- Each account's hash chain: one link per write to an activity (its recording and its end),
-- in commit order. A link's hash covers the previous link's hash and the activity's
-- canonical content as that write left it. Links outlive the activities retention removes.
CREATE TABLE chain_links (
    account_id      TEXT NOT NULL,
    link_no         INTEGER NOT NULL,
    activity_id     TEXT NOT NULL,
    content_sha256  BLOB NOT NULL,
    link_sha256     BLOB NOT NULL,
    PRIMARY KEY (account_id, link_no)
) STRICT, WITHOUT ROWID;

-- The newest link of each chain, moved by the writer in the same transaction.
CREATE TABLE chain_heads (
    account_id   TEXT PRIMARY KEY NOT NULL,
    link_no      INTEGER NOT NULL,
    link_sha256  BLOB NOT NULL
) STRICT;

-- Signed statements "the chain of this account had this hash at this link".
CREATE TABLE chain_checkpoints (
    account_id   TEXT NOT NULL,
    link_no      INTEGER NOT NULL,
    link_sha256  BLOB NOT NULL,
    made_at      INTEGER NOT NULL,
    public_key   BLOB NOT NULL,
    signature    BLOB NOT NULL,
    PRIMARY KEY (account_id, link_no)
) STRICT, WITHOUT ROWID;

-- Activities the retention policy removed, each with the prune activity that sealed it.
CREATE TABLE pruned_activities (
    account_id   TEXT NOT NULL,
    activity_id  TEXT NOT NULL,
    prune_id     TEXT NOT NULL,
    PRIMARY KEY (account_id, activity_id)
) STRICT, WITHOUT ROWID;

-- Who looked at the log: internal only, never shown to clients.
CREATE TABLE access_log (
    seq          INTEGER PRIMARY KEY,
    account_id   TEXT NOT NULL,
    site_id      TEXT,
    audience     TEXT NOT NULL,
    actor_kind   TEXT NOT NULL,
    actor_email  TEXT,
    actor_name   TEXT,
    action       TEXT NOT NULL,
    query        TEXT NOT NULL,
    at           INTEGER NOT NULL
) STRICT;
CREATE INDEX access_by_account ON access_log (account_id, seq);
