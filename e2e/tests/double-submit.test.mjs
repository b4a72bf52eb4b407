// No double submits: a double click on "Back up live" starts one backup, and every action
// button waits while an operation runs on the site, enabled again live when it ends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ACCOUNT, BASE, OWNER, assertNoProblems, clientToken, launch, openPage, publisher,
  screenshotPath, signIn,
} from '../lib/env.mjs';
import { recordStaging } from '../lib/staging-record.mjs';

const SITE = 'acme-clicks';

// A site hosted here whose docroots hold no WordPress: an operation starts and fails at once,
// touching nothing. Its staging is recorded as made, so every action is offered.
async function registerSite() {
  recordStaging(SITE, { exists: true, created: { at: '2026-12-02T10:15:00.000Z', from: { kind: 'live' } } });
  await publisher('PUT', `/api/v1/sites/${SITE}`, {
    account_id: ACCOUNT,
    name: 'Acme Bakery Clicks',
    live: { url: 'https://clicks.acmebakery.example', docroot: `/nonexistent/e2e/${SITE}/live` },
    staging: { url: 'https://staging.clicks.acmebakery.example', docroot: `/nonexistent/e2e/${SITE}/staging` },
  });
}

async function activities(page) {
  const response = await page.request.get(`${BASE}/api/v1/sites/${SITE}/activities`);
  assert.equal(response.status(), 200);
  return (await response.json()).items;
}

test('a double click on "Back up live" starts one backup and logs one activity', async () => {
  await registerSite();
  const browser = await launch();
  try {
    const page = await openPage(browser);
    await signIn(page, clientToken());
    await page.goto(`${BASE}/sites/${SITE}/backups`);
    const before = (await activities(page)).length;
    await Promise.all([
      page.waitForURL(/\/backups\?started=/),
      page.getByRole('button', { name: 'Back up live' }).dblclick(),
    ]);
    // Whatever the browser sent has arrived and ended by the time the first one has.
    const id = new URL(page.url()).searchParams.get('started');
    await page.locator(`#activity-${id} .badge-label`, { hasText: 'Failed' }).waitFor({ timeout: 10_000 });
    await page.waitForTimeout(500);
    const after = await activities(page);
    assert.equal(after.length - before, 1, 'one activity for a double click');
    assert.equal(after[0].id, id);
    assert.doesNotMatch(after[0].error ?? '', /is running on this site/);
    assertNoProblems(page);
  } finally {
    await browser.close();
  }
});

test('action buttons wait while an operation runs on the site and come back when it ends', async () => {
  await registerSite();
  const browser = await launch();
  try {
    const page = await openPage(browser);
    await signIn(page, clientToken());
    for (const [path, buttons] of [
      ['backups', ['Back up live', 'Back up staging']],
      ['staging', ['Create staging from live']],
    ]) {
      await page.goto(`${BASE}/sites/${SITE}/${path}`);
      await page.getByRole('status').filter({ hasText: 'Live updates on' }).waitFor();
      for (const name of buttons) {
        assert.equal(await page.getByRole('button', { name }).isEnabled(), true, `${name} at first`);
      }
      await page.waitForTimeout(300);
      // A push runs (on the Backups page too: one operation at a time per site).
      const push = await publisher('POST', '/api/v1/activities', {
        account_id: ACCOUNT, site_id: SITE, environment: 'live', service: 'staging',
        activity: 'push_staging_to_live', actor: { kind: 'user', email: OWNER.email },
        description: 'Pushing staging to live',
      });
      for (const name of buttons) {
        await page.waitForFunction((n) => [...document.querySelectorAll('button')]
          .some((b) => b.textContent.trim() === n && b.matches(':disabled')), name, { timeout: 10_000 });
      }
      if (path === 'staging') {
        assert.equal(await page.getByRole('link', { name: 'Push staging to live…' }).getAttribute('aria-disabled'), 'true');
        assert.equal(await page.getByText('Refresh this page').isVisible(), false, 'no refresh advice while live');
      }
      await page.screenshot({ path: screenshotPath(`busy-${path}-1280`), fullPage: true });
      await publisher('POST', `/api/v1/activities/${push.id}/complete`, { description: 'Pushed staging to live' });
      for (const name of buttons) {
        await page.waitForFunction((n) => [...document.querySelectorAll('button')]
          .some((b) => b.textContent.trim() === n && !b.matches(':disabled')), name, { timeout: 10_000 });
      }
    }
    assertNoProblems(page);
  } finally {
    await browser.close();
  }
});
