-- The change counter and the chain heads are a few rows that every write group updates:
-- thousands of updates a second. Each update leaves the old row version behind. With pages
-- mostly empty, the new version always fits on the old one's page, so the update touches no
-- index and the page's dead versions are pruned as it goes (a HOT update); a full page would
-- force a new index entry per update and leave the table and its index to grow until
-- autovacuum, whose default threshold (a fifth of a tiny table) it also gets earlier here.
ALTER TABLE counters SET (fillfactor = 10, autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 10000);
ALTER TABLE chain_heads SET (fillfactor = 10, autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 10000);
