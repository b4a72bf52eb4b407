// A client and an internal viewer open the same site's log.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BASE, PARTNER, SHOP, SUPPORT, assertNoProblems, clientToken, internalToken, launch,
  logPath, openPage, signIn, tableRows,
} from '../lib/env.mjs';

test('the client sees Support user and the internal viewer sees the email, for the same rows', async () => {
  const browser = await launch();
  try {
    const client = await openPage(browser);
    await signIn(client, clientToken());
    await client.goto(BASE + logPath(SHOP));
    const internal = await openPage(browser);
    await signIn(internal, internalToken());
    await internal.goto(BASE + logPath(SHOP));

    const seenByClient = await tableRows(client);
    const seenByInternal = await tableRows(internal);
    assert.equal(seenByClient.length, 50);
    assert.deepEqual(seenByClient.map((r) => r.id), seenByInternal.map((r) => r.id));

    const bySupport = seenByInternal.filter((r) => r.user === SUPPORT.email);
    assert.ok(bySupport.length >= 5, 'the first page holds work by support');
    for (const row of bySupport) {
      assert.ok(row.marker, `${row.id}: the internal viewer sees that support acted`);
      const same = seenByClient.find((r) => r.id === row.id);
      assert.equal(same.user, 'Support user');
      assert.equal(same.marker, false);
      assert.ok(!same.description.includes(SUPPORT.name), 'the agent is not named in the description');
    }
    assert.ok(seenByInternal.some((r) => r.description.includes(SUPPORT.name)));

    const html = (await client.content()).toLowerCase();
    for (const secret of [SUPPORT.email, 'sam.rivera', 'rivera', 'sam rivera']) {
      assert.ok(!html.includes(secret), `the client's page holds no ${secret}`);
    }
    for (const page of [client, internal]) {
      const banner = await page.textContent('.topbar');
      assert.ok(banner.includes(PARTNER), 'the partner, not us, is named');
      assert.ok(!(await page.textContent('body')).toLowerCase().includes('sitetrail'));
      assertNoProblems(page);
    }
    assert.ok((await internal.textContent('.topbar')).includes('Internal view'));
    assert.ok(!(await client.textContent('.topbar')).includes('Internal view'));
  } finally {
    await browser.close();
  }
});
