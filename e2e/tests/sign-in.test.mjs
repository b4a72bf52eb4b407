// Signing in and out, and the way from the dashboard to the log.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BASE, PARTNER, SHOP, assertNoProblems, clientToken, launch, logPath, openPage, signIn,
} from '../lib/env.mjs';

test('a sign-in link asks first, then sets an HttpOnly session; signing out ends it', async () => {
  const browser = await launch();
  try {
    const page = await openPage(browser);
    await page.goto(`${BASE}/login?token=${encodeURIComponent(clientToken())}`);
    assert.equal(await page.textContent('h1'), `Sign in to ${PARTNER} as olivia@acmebakery.example?`);
    assert.deepEqual(await page.context().cookies(), [], 'the link alone signs no one in');
    await signIn(page, clientToken());
    assert.match(new URL(page.url()).pathname, /^\/sites\/[^/]+\/advanced-tools\/activity-logs$/);
    const [session] = await page.context().cookies();
    assert.equal(session.name, 'sitetrail_session');
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Lax');
    assert.equal(await page.evaluate(() => document.cookie), '', 'scripts cannot read the session');

    await Promise.all([
      page.waitForURL(/\/signed-out$/),
      page.getByRole('button', { name: 'Sign out' }).click(),
    ]);
    assert.ok((await page.textContent('h1')).includes('You have signed out'));
    assert.deepEqual(await page.context().cookies(), []);
    assertNoProblems(page);
    const again = await page.goto(BASE + logPath(SHOP));
    assert.equal(again.status(), 401);
    assert.ok((await page.textContent('body')).includes('Open the sign-in link your hosting provider gave you'));
  } finally {
    await browser.close();
  }
});

test('a sign-in link that does not work gets a page that says what to do', async () => {
  const browser = await launch();
  try {
    const page = await openPage(browser);
    const response = await page.goto(`${BASE}/login?token=not-a-token`);
    assert.equal(response.status(), 401);
    assert.equal(await page.textContent('h1'), 'This sign-in link does not work');
    assert.ok((await page.textContent('body')).includes('Ask your hosting provider for a new sign-in link'));
  } finally {
    await browser.close();
  }
});

test('Advanced Tools has a card that opens the Activity Logs', async () => {
  const browser = await launch();
  try {
    const page = await openPage(browser);
    await signIn(page, clientToken());
    await page.goto(`${BASE}/sites/${SHOP}`);
    const header = page.locator('.site-header');
    assert.ok((await header.textContent()).includes('Acme Bakery Shop'));
    for (const [name, url] of [
      ['shop.acmebakery.example', 'https://shop.acmebakery.example'],
      ['staging.shop.acmebakery.example', 'https://staging.shop.acmebakery.example'],
    ]) {
      assert.equal(await header.getByRole('link', { name, exact: true }).getAttribute('href'), url);
    }
    assert.ok((await page.textContent('.topbar')).includes(PARTNER));
    assert.ok((await page.textContent('.topbar')).includes('Olivia Baker'));
    const nav = page.getByRole('navigation', { name: 'Site' });
    assert.deepEqual(await nav.getByRole('link').allTextContents(), ['Overview', 'Staging', 'Backups', 'Advanced Tools']);
    await nav.getByRole('link', { name: 'Advanced Tools' }).click();
    await page.waitForURL(/\/advanced-tools$/);
    await page.getByRole('link', { name: 'Activity Logs' }).click();
    await page.waitForURL(new RegExp(`${logPath(SHOP)}$`));
    assert.equal(await page.textContent('h1'), 'Activity Logs');
    const columns = await page.locator('table.log thead th').allTextContents();
    assert.deepEqual(columns, ['Created', 'User', 'Service', 'Activity', 'Status', 'Description', 'Completed']);
    assertNoProblems(page);
  } finally {
    await browser.close();
  }
});
