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

// A snapshot's manifest as the engine writes it (listings read manifests only): a backup of
// a site's live, or a template.
export function recordSnapshot({ site, id, reason, at, name }) {
  const template = reason === 'template';
  const dir = template
    ? `${DATA_DIR}/snapshots/templates/${id}`
    : `${DATA_DIR}/snapshots/backups/${site}/${id}`;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(`${dir}/manifest.json`, JSON.stringify({
    version: 1, kind: template ? 'template' : 'backup', id,
    site_id: template ? null : site, environment: template ? null : 'live',
    reason, source_url: 'https://bakery-source.example', table_prefix: 'wp_', created_at: at,
    files_sha256: '', files_tar_bytes: 0, files: { files: 12, bytes: 45_600_000 },
    database_sha256: '', database_bytes: 0, database: { tables: 12, rows: 3456, rewritten_cells: 0 },
    ...(name ? { name } : {}),
  }), { mode: 0o600 });
}
