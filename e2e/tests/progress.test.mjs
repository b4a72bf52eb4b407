// Live progress of a running operation: its phase, its count of the total and the time it has
// run, on every page that shows it (Activity Logs row, Overview, Staging, Backups), with no
// "Refresh this page" advice while live updates run. The sites here hold no WordPress, so no
// operation of the engine runs long: the test serves the stream's activity.progress event as
// the server writes it (the server's side is covered by tests/api and api/stream.rs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ACCOUNT, BASE, OWNER, assertNoProblems, clientToken, launch, logPath, openPage, publisher,
  screenshotPath, signIn,
} from '../lib/env.mjs';
import { recordStaging } from '../lib/staging-record.mjs';

const SITE = 'acme-progress';

test('a running push shows its phase, count of total and elapsed time on every page', async () => {
  await publisher('PUT', `/api/v1/sites/${SITE}`, {
    account_id: ACCOUNT,
    name: 'Acme Bakery Progress',
    live: { url: 'https://progress.acmebakery.example', docroot: `/nonexistent/e2e/${SITE}/live` },
    staging: { url: 'https://staging.progress.acmebakery.example', docroot: `/nonexistent/e2e/${SITE}/staging` },
  });
  recordStaging(SITE, { exists: true, created: { at: '2026-12-02T10:15:00.000Z', from: { kind: 'live' } } });
  const push = await publisher('POST', '/api/v1/activities', {
    account_id: ACCOUNT, site_id: SITE, environment: 'live', service: 'staging',
    activity: 'push_staging_to_live', actor: { kind: 'user', email: OWNER.email },
    description: 'Pushing staging to live',
    created_at: new Date(Date.now() - 75_000).toISOString(),
  });
  const browser = await launch();
  try {
    const page = await openPage(browser);
    await signIn(page, clientToken());
    // The stream as the server writes it while the engine copies the files.
    await page.route('**/api/v1/sites/*/activities/stream*', (route) => route.fulfill({
      status: 200,
      headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-store' },
      body: 'retry: 600000\n\n' +
        `event: activity.progress\ndata: ${JSON.stringify({ id: push.id, phase: 'copying the files', done: 1234, total: 2465 })}\n\n`,
    }));
    const pages = [
      ['activity-logs', logPath(SITE), true],
      ['overview', `/sites/${SITE}`, true],
      ['staging', `/sites/${SITE}/staging`, true],
      ['backups', `/sites/${SITE}/backups`, false],
    ];
    for (const [name, path, listsIt] of pages) {
      await page.goto(BASE + path);
      if (listsIt) {
        const row = page.locator(`#activity-${push.id}`);
        await row.locator('.progress', { hasText: 'Copying the files: 1,234 of 2,465' }).waitFor({ timeout: 10_000 });
        assert.match(await row.locator('.running-for').textContent(), /^Running for 1 min 1\d s$/, name);
      }
      if (name !== 'activity-logs') {
        // The hint says the operation runs and how far it is; the Backups page lists backups
        // only, and still says so.
        const hint = page.locator('#running-hint');
        await hint.locator('#running-progress', { hasText: 'Copying the files: 1,234 of 2,465' }).waitFor({ timeout: 10_000 });
        assert.equal(await page.getByText('Refresh this page').isVisible(), false, `${name}: no refresh advice`);
      }
      await page.screenshot({ path: screenshotPath(`progress-${name}-1280`), fullPage: true });
    }
    // The time ticks in the page.
    await page.goto(BASE + logPath(SITE));
    const running = page.locator(`#activity-${push.id} .running-for`);
    const first = await running.textContent();
    await page.waitForFunction(([id, was]) =>
      document.getElementById(`activity-${id}`).querySelector('.running-for').textContent !== was,
    [push.id, first]);
    await page.setViewportSize({ width: 375, height: 812 });
    await page.screenshot({ path: screenshotPath('progress-activity-logs-375'), fullPage: true });
    await publisher('POST', `/api/v1/activities/${push.id}/complete`, { description: 'Pushed staging to live' });
    assertNoProblems(page);
  } finally {
    await browser.close();
  }
});
