-- A chain's head is its newest link, so the writer no longer keeps a row for it. At ten
-- million activities over 1,000 accounts, a group of 1,000 activities moved about 600 heads:
-- 0.6 upserts per activity, each a conflict check, a row lock and a WAL record, for a fact
-- `chain_links`' primary key already holds. The writer reads a head with one backward probe
-- of that key, and only for an account it has not seen since the counter last moved under
-- another server.
--
-- `chain_heads` stays as a view for checkpoint signing and the list of accounts:
-- the accounts with a chain, found by stepping through the key from one account to the next
-- (a probe per account, not a read of every link), each with its newest link.
DROP TABLE chain_heads;
CREATE VIEW chain_heads AS
WITH RECURSIVE chained(account_id) AS (
    SELECT (SELECT account_id FROM chain_links ORDER BY account_id LIMIT 1)
    UNION ALL
    SELECT (SELECT account_id FROM chain_links WHERE account_id > chained.account_id
            ORDER BY account_id LIMIT 1)
    FROM chained WHERE chained.account_id IS NOT NULL
)
SELECT c.account_id, h.link_no, h.link_sha256
FROM chained c
CROSS JOIN LATERAL (
    SELECT l.link_no, l.link_sha256 FROM chain_links l
    WHERE l.account_id = c.account_id
    ORDER BY l.link_no DESC LIMIT 1
) h;
