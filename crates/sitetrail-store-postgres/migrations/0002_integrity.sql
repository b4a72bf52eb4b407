-- Tamper evidence, retention and the audit of who looked.

-- Days an account's activities are kept; NULL is the default (400).
ALTER TABLE accounts ADD COLUMN retention_days INTEGER;

-- Each account's hash chain: one link per write to an activity (its recording and its end),
-- in commit order. A link's hash covers the previous link's hash and the activity's
-- canonical content as that write left it. Links outlive the activities retention removes.
CREATE TABLE chain_links (
    account_id      TEXT COLLATE "C" NOT NULL,
    link_no         BIGINT NOT NULL,
    activity_id     TEXT COLLATE "C" NOT NULL,
    content_sha256  BYTEA NOT NULL,
    link_sha256     BYTEA NOT NULL,
    PRIMARY KEY (account_id, link_no)
);

-- The newest link of each chain, moved by the writer in the same transaction (which holds
-- the change counter's lock, so chains of all servers move one group at a time).
CREATE TABLE chain_heads (
    account_id   TEXT COLLATE "C" PRIMARY KEY,
    link_no      BIGINT NOT NULL,
    link_sha256  BYTEA NOT NULL
);

-- Signed statements "the chain of this account had this hash at this link".
CREATE TABLE chain_checkpoints (
    account_id   TEXT COLLATE "C" NOT NULL,
    link_no      BIGINT NOT NULL,
    link_sha256  BYTEA NOT NULL,
    made_at      BIGINT NOT NULL,
    public_key   BYTEA NOT NULL,
    signature    BYTEA NOT NULL,
    PRIMARY KEY (account_id, link_no)
);

-- Activities the retention policy removed, each with the prune activity that sealed it.
CREATE TABLE pruned_activities (
    account_id   TEXT COLLATE "C" NOT NULL,
    activity_id  TEXT COLLATE "C" NOT NULL,
    prune_id     TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (account_id, activity_id)
);

-- Who looked at the log: internal only, never shown to clients.
CREATE TABLE access_log (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id   TEXT COLLATE "C" NOT NULL,
    site_id      TEXT COLLATE "C",
    audience     TEXT NOT NULL,
    actor_kind   TEXT NOT NULL,
    actor_email  TEXT,
    actor_name   TEXT,
    action       TEXT NOT NULL,
    query        TEXT NOT NULL,
    at           BIGINT NOT NULL
);
CREATE INDEX access_by_account ON access_log (account_id, seq);
