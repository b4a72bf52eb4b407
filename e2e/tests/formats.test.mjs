// Same facts, same formats: the Backups table names a backup by the id descriptions use, the
// template picker names a template, never the site it came from, and a backup's time reads
// the same in the dropdown, the Backups table and the Staging page, in the viewer's zone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ACCOUNT, BASE, assertNoProblems, clientToken, launch, openPage, publisher, screenshotPath,
  signIn,
} from '../lib/env.mjs';
import { recordSnapshot, recordStaging } from '../lib/staging-record.mjs';

const SITE = 'acme-formats';
const BACKUP = 'live-20261125T093000Z';

test('backups by id and time, templates by name, one date format everywhere', async () => {
  await publisher('PUT', `/api/v1/sites/${SITE}`, {
    account_id: ACCOUNT, name: 'Acme Bakery Formats',
    live: { url: 'https://formats.acmebakery.example', docroot: `/nonexistent/e2e/${SITE}/live` },
    staging: { url: 'https://staging.formats.acmebakery.example', docroot: `/nonexistent/e2e/${SITE}/staging` },
  });
  recordSnapshot({ site: SITE, id: BACKUP, reason: 'daily', at: '2026-11-25T09:30:00.000Z' });
  recordSnapshot({ id: 'bakery-classic-e2e', reason: 'template', at: '2026-11-20T08:00:00.000Z', name: 'Bakery Classic' });
  recordStaging(SITE, {
    exists: true, created: { at: '2026-12-02T10:15:00.000Z', from: { kind: 'backup', id: BACKUP } },
  });
  const browser = await launch();
  try {
    const page = await openPage(browser, { timezoneId: 'America/New_York' });
    await signIn(page, clientToken());
    await page.goto(`${BASE}/sites/${SITE}/backups`);
    const row = page.locator(`#backup-${BACKUP}`);
    assert.equal(await row.locator('.backup-id').textContent(), BACKUP);
    const tableTime = (await row.locator('time').textContent()).trim();
    assert.equal(tableTime, 'Nov 25, 2026, 04:30 AM', 'New York is UTC-5 in November');
    await page.screenshot({ path: screenshotPath('formats-backups-1280'), fullPage: true });

    await page.goto(`${BASE}/sites/${SITE}/staging`);
    const backupChoice = await page.locator(`#backup option[value="${BACKUP}"]`).textContent();
    assert.ok(backupChoice.startsWith(tableTime), `${backupChoice} starts like the table: ${tableTime}`);
    const templates = await page.locator('#template option').allTextContents();
    assert.ok(templates.includes('Bakery Classic'), templates.join(' | '));
    assert.ok(templates.every((t) => !t.includes('bakery-source.example')), 'no source URL');
    const state = (await page.locator('#staging-state').textContent()).replace(/\s+/g, ' ');
    assert.match(state, new RegExp(`from a backup of live made ${tableTime.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    await page.screenshot({ path: screenshotPath('formats-staging-1280'), fullPage: true });
    await page.setViewportSize({ width: 375, height: 812 });
    await page.screenshot({ path: screenshotPath('formats-staging-375'), fullPage: true });
    assertNoProblems(page);
  } finally {
    await browser.close();
  }
});
