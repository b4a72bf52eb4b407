// Newer/Older paging by cursor.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BASE, SHOP, assertNoProblems, clientToken, launch, logPath, openPage, signIn, tableRows,
} from '../lib/env.mjs';

test('Older then Newer returns to the same rows', async () => {
  const browser = await launch();
  try {
    const page = await openPage(browser);
    await signIn(page, clientToken());
    await page.goto(BASE + logPath(SHOP));
    const first = (await tableRows(page)).map((r) => r.id);
    assert.equal(first.length, 50);
    assert.equal(await page.locator('.pager [aria-disabled="true"]').textContent(), '\u2190 Newer');

    await Promise.all([page.waitForURL(/cursor=/), page.getByRole('link', { name: 'Older' }).click()]);
    const second = (await tableRows(page)).map((r) => r.id);
    assert.equal(second.length, 50);
    assert.ok(second.every((id) => !first.includes(id)), 'the next page holds other rows');

    const onSecond = page.url();
    await Promise.all([
      page.waitForURL((url) => url.toString() !== onSecond),
      page.getByRole('link', { name: 'Newer' }).click(),
    ]);
    assert.deepEqual((await tableRows(page)).map((r) => r.id), first);
    assert.ok(page.url().includes('cursor='), 'paging links carry a cursor');
    assertNoProblems(page);
  } finally {
    await browser.close();
  }
});
