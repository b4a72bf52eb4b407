// Filters are a plain form whose state lives in the URL: a filtered view can be bookmarked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BASE, SHOP, assertNoProblems, clientToken, launch, logPath, openPage, signIn, tableRows,
} from '../lib/env.mjs';

test('choosing Push Staging to Live and Failed shows only those rows, and the URL says so', async () => {
  const browser = await launch();
  try {
    const page = await openPage(browser);
    await signIn(page, clientToken());
    await page.goto(BASE + logPath(SHOP));
    await page.getByLabel('Activity', { exact: true }).selectOption({ label: 'Push Staging to Live' });
    await page.getByLabel('Status', { exact: true }).selectOption({ label: 'Failed' });
    await Promise.all([
      page.waitForURL(/status=failed/),
      page.getByRole('button', { name: 'Apply filters' }).click(),
    ]);

    const url = new URL(page.url());
    assert.equal(url.pathname, logPath(SHOP));
    assert.equal(url.searchParams.get('activity'), 'push_staging_to_live');
    assert.equal(url.searchParams.get('status'), 'failed');
    assert.equal(url.searchParams.has('q'), false, 'empty filters stay out of the URL');

    const rows = await tableRows(page);
    assert.equal(rows.length, 8);
    for (const row of rows) {
      assert.equal(row.activity, 'Push Staging to Live');
      assert.equal(row.status, 'Failed');
    }
    // The error of a failed activity is there on demand.
    const first = page.locator('#activity-rows tr').first();
    const error = first.locator('details.error p');
    assert.equal(await error.isVisible(), false);
    await first.getByText('Show error').click();
    assert.ok((await error.textContent()).includes('live was left as it was'));

    // The bookmarked URL opens the same view in a fresh page.
    const again = await openPage(browser);
    await signIn(again, clientToken());
    await again.goto(page.url());
    assert.deepEqual((await tableRows(again)).map((r) => r.id), rows.map((r) => r.id));
    assert.equal(await again.getByLabel('Status', { exact: true }).inputValue(), 'failed');
    assertNoProblems(page);
    assertNoProblems(again);
  } finally {
    await browser.close();
  }
});

test('the filters and the pager work from the keyboard, with a visible focus', async () => {
  const browser = await launch();
  try {
    const page = await openPage(browser);
    await signIn(page, clientToken());
    await page.goto(BASE + logPath(SHOP));
    await page.getByLabel('Search').focus();
    await page.keyboard.type('ticket');
    await Promise.all([page.waitForURL(/q=ticket/), page.keyboard.press('Enter')]);
    const rows = await tableRows(page);
    assert.ok(rows.length > 0);
    for (const row of rows) assert.equal(row.user, 'Support user');

    await page.goto(BASE + logPath(SHOP));
    const older = page.getByRole('link', { name: 'Older' });
    await older.focus();
    const outline = await older.evaluate((el) => getComputedStyle(el).outlineStyle);
    assert.notEqual(outline, 'none', 'the focused link shows where focus is');
    await Promise.all([page.waitForURL(/cursor=/), page.keyboard.press('Enter')]);
    assertNoProblems(page);
  } finally {
    await browser.close();
  }
});

test('without JavaScript the filters and the export link still work', async () => {
  const browser = await launch();
  try {
    const page = await openPage(browser, { javaScriptEnabled: false });
    await signIn(page, clientToken());
    await page.goto(BASE + logPath(SHOP));
    await page.getByLabel('Activity', { exact: true }).selectOption('push_staging_to_live');
    await page.getByLabel('Status', { exact: true }).selectOption('failed');
    await Promise.all([
      page.waitForURL(/status=failed/),
      page.getByRole('button', { name: 'Apply filters' }).click(),
    ]);
    const rows = await tableRows(page);
    assert.equal(rows.length, 8);
    assert.ok(rows.every((r) => r.activity === 'Push Staging to Live' && r.status === 'Failed'));
    const csv = await page.getByRole('link', { name: 'Export CSV' }).getAttribute('href');
    assert.match(csv, /activity=push_staging_to_live&status=failed/);
    // Times are shown in UTC, and say so.
    assert.match(await page.locator('#activity-rows time').first().textContent(), / UTC$/);
    assertNoProblems(page);
  } finally {
    await browser.close();
  }
});
