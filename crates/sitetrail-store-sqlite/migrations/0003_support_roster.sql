-- Each partner's roster of support identities: every support actor recorded for one of its
-- accounts. Rows are kept per account and read per partner (every account of the same
-- partner), so an account that changes partner takes its identities along. Clients of any of
-- the partner's accounts never see one of them, whoever the activity's actor.
CREATE TABLE support_roster (
    account_id  TEXT NOT NULL,
    email       TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    added_at    INTEGER NOT NULL,
    PRIMARY KEY (account_id, email, name)
) STRICT, WITHOUT ROWID;

CREATE INDEX accounts_by_partner ON accounts (partner, id);
