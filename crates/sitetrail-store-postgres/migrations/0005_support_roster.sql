-- Each partner's roster of support identities: the same table and meaning as the SQLite
-- migration.
CREATE TABLE support_roster (
    account_id  TEXT COLLATE "C" NOT NULL,
    email       TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    added_at    BIGINT NOT NULL,
    PRIMARY KEY (account_id, email, name)
);

CREATE INDEX accounts_by_partner ON accounts (partner, id);
