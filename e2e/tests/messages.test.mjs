// Messages for people: a failed row whose error is server detail (a row logged before the
// engine wrote its reasons for people) shows words instead; a daily backup the system skipped
// because a push held the site reads as the system's, calm, retried, not as a red failure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ACCOUNT, BASE, OWNER, assertNoProblems, clientToken, launch, logPath, openPage, publisher,
  screenshotPath, signIn,
} from '../lib/env.mjs';

const SITE = 'acme-words';
const RAW = "connecting to staging's database: mysql: ERROR 1698 (28000): Access denied for user ''@'localhost'";
const SKIPPED = 'The scheduled daily backup was skipped because push staging to live is running on this site. '
  + 'It is taken automatically once that has finished; nothing needs to be done.';

async function failed({ errorText, ...body }) {
  const a = await publisher('POST', '/api/v1/activities', {
    account_id: ACCOUNT, site_id: SITE, environment: 'live', ...body,
  });
  await publisher('POST', `/api/v1/activities/${a.id}/fail`, { error: errorText });
  return a;
}

function skippedBackup() {
  return failed({
    service: 'backups', activity: 'create_backup', actor: { kind: 'system' },
    description: 'Daily backup of live skipped', details: { blocked_by: 'push-1' }, errorText: SKIPPED,
  });
}

test('server detail never shows, and a skipped daily backup is calm and says it is retried', async () => {
  await publisher('PUT', `/api/v1/sites/${SITE}`, {
    account_id: ACCOUNT, name: 'Acme Bakery Words', live: { url: 'https://words.acmebakery.example' },
  });
  const old = await failed({
    service: 'staging', activity: 'push_staging_to_live', actor: { kind: 'user', email: OWNER.email },
    description: 'Pushing staging to live failed', errorText: RAW,
  });
  const backup = await skippedBackup();
  const browser = await launch();
  try {
    const page = await openPage(browser);
    await signIn(page, clientToken());
    await page.goto(BASE + logPath(SITE));
    const body = await page.textContent('main');
    assert.doesNotMatch(body, /ERROR 1698|Access denied|28000/);
    const oldRow = page.locator(`#activity-${old.id}`);
    await oldRow.getByText('Show error').click();
    assert.match(await oldRow.locator('details.error p').textContent(), /problem on the server\. Try again/);

    const calm = async (id) => {
      const row = page.locator(`#activity-${id}`);
      const badge = row.locator('.badge');
      assert.equal((await badge.locator('.badge-label').textContent()).trim(), 'Skipped, will retry');
      assert.match(await badge.getAttribute('class'), /badge-skipped/);
      assert.doesNotMatch(await badge.getAttribute('class'), /badge-failed/);
      assert.equal((await row.locator('.user').textContent()).trim(), 'System');
      await row.getByText('Why').click();
      assert.match(await row.locator('details.error p').textContent(), /taken automatically/);
    };
    await calm(backup.id);
    // The same when it arrives live.
    await page.getByRole('status').filter({ hasText: 'Live updates on' }).waitFor();
    await page.waitForTimeout(300);
    const live = await skippedBackup();
    await page.locator(`#activity-${live.id} .badge-label`, { hasText: 'Skipped' }).waitFor({ timeout: 10_000 });
    await calm(live.id);
    await page.screenshot({ path: screenshotPath('messages-1280'), fullPage: true });
    await page.setViewportSize({ width: 375, height: 812 });
    await page.screenshot({ path: screenshotPath('messages-375'), fullPage: true });

    // Filters and exports still count it as failed: the log keeps its statuses.
    const csv = await (await page.request.get(`${BASE}/api/v1/sites/${SITE}/activities/export?status=failed`)).text();
    assert.equal(csv.trim().split('\n').length, 1 + 3);
    assertNoProblems(page);
  } finally {
    await browser.close();
  }
});
