// Live updates: the page follows the site's event stream without reloading.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ACCOUNT, BASE, LIVE, OWNER, assertNoProblems, clientToken, launch, logPath, openPage,
  publisher, signIn,
} from '../lib/env.mjs';

test('a new activity appears at the top, and turns Completed with its time when it ends', async () => {
  const browser = await launch();
  try {
    const page = await openPage(browser);
    await signIn(page, clientToken());
    await page.goto(BASE + logPath(LIVE));
    await page.getByRole('status').filter({ hasText: 'Live updates on' }).waitFor();
    // Anything that reloads the page loses this.
    await page.evaluate(() => { window.stillTheSamePage = true; });
    await new Promise((resolve) => setTimeout(resolve, 300));

    const running = await publisher('POST', '/api/v1/activities', {
      account_id: ACCOUNT, site_id: LIVE, environment: 'live', service: 'staging',
      activity: 'push_staging_to_live', actor: { kind: 'user', email: OWNER.email },
      description: 'Pushing staging to live',
    });
    const row = page.locator(`#activity-${running.id}`);
    await row.waitFor({ timeout: 10_000 });
    assert.equal(await page.locator('#activity-rows tr').first().getAttribute('id'), `activity-${running.id}`);
    assert.equal((await row.locator('.badge-label').textContent()).trim(), 'In progress');
    assert.equal((await row.locator('.c-completed').textContent()).trim(), 'Not finished');

    await publisher('POST', `/api/v1/activities/${running.id}/complete`, {
      description: 'Successfully pushed staging to live',
    });
    await row.locator('.badge-label', { hasText: 'Completed' }).waitFor({ timeout: 10_000 });
    const completed = row.locator('.c-completed time');
    const iso = await completed.getAttribute('datetime');
    assert.ok(Date.parse(iso) >= Date.parse(running.created_at));
    assert.match(await completed.getAttribute('title'), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
    assert.match(await row.locator('.duration').textContent(), /^took /);
    assert.equal((await row.locator('.description').textContent()).trim(), 'Successfully pushed staging to live');
    assert.equal(await page.evaluate(() => window.stillTheSamePage), true, 'no reload');
    assert.equal(await page.locator('#activity-rows tr').count(), 4);
    assertNoProblems(page);
  } finally {
    await browser.close();
  }
});
