// The engine's record of a site's staging (data dir `staging-state/{site}.json`), written by
// a test for a site whose docroots hold no WordPress: the pages then show staging as the
// engine would after a real create, reset or push. Private like every file of the data dir.
import { mkdirSync, writeFileSync, rmSync } from 'node:fs';

const DATA_DIR = process.env.E2E_DATA_DIR;

export function recordStaging(site, record) {
  const dir = `${DATA_DIR}/staging-state`;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(`${dir}/${site}.json`, JSON.stringify({
    exists: false, created: null, last_pushed: null, size_bytes: null, ...record,
  }), { mode: 0o600 });
}

export function forgetStaging(site) {
  rmSync(`${DATA_DIR}/staging-state/${site}.json`, { force: true });
}
