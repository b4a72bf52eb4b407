// Screenshots of the log for a person to look at, and a layout that holds on a phone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BASE, SHOP, assertNoProblems, clientToken, internalToken, launch, logPath, openPage,
  screenshotPath, signIn,
} from '../lib/env.mjs';

const SIZES = [
  { width: 1280, height: 900 },
  { width: 375, height: 812 },
];

test('the log page at 1280 and 375 px wide, saved as screenshots', async () => {
  const browser = await launch();
  try {
    for (const viewport of SIZES) {
      const page = await openPage(browser, { viewport, timezoneId: 'Europe/Berlin' });
      await signIn(page, clientToken());
      await page.goto(BASE + logPath(SHOP));
      await page.getByRole('status').filter({ hasText: 'Live updates on' }).waitFor();
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${viewport.width} px: nothing sticks out sideways (${overflow} px)`);
      await page.screenshot({ path: screenshotPath(`activity-logs-${viewport.width}`), fullPage: true });
      await page.screenshot({ path: screenshotPath(`activity-logs-${viewport.width}-top`) });
      await page.locator('#activity-log caption').evaluate((el) => el.scrollIntoView());
      await page.screenshot({ path: screenshotPath(`activity-logs-${viewport.width}-rows`) });
      assertNoProblems(page);
    }
  } finally {
    await browser.close();
  }
});

test('times read in the viewer\'s time zone, with the UTC time on hover', async () => {
  const browser = await launch();
  try {
    const page = await openPage(browser, { timezoneId: 'America/New_York', locale: 'en-US' });
    await signIn(page, clientToken());
    await page.goto(BASE + logPath(SHOP));
    const created = page.locator('#activity-shop-001 .c-created time');
    const iso = await created.getAttribute('datetime');
    const expected = new Intl.DateTimeFormat('en-US', {
      timeZone: 'America/New_York', year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
    }).format(new Date(iso));
    assert.equal(await created.textContent(), expected);
    assert.equal(await created.getAttribute('title'), `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`);
    assert.match(await page.locator('#tz-note').textContent(), /America\/New_York/);
    assertNoProblems(page);
  } finally {
    await browser.close();
  }
});

test('the internal view and Advanced Tools, saved as screenshots', async () => {
  const browser = await launch();
  try {
    const page = await openPage(browser);
    await signIn(page, internalToken());
    await page.goto(BASE + logPath(SHOP));
    await page.screenshot({ path: screenshotPath('activity-logs-internal-1280') });
    await page.goto(`${BASE}/sites/${SHOP}/advanced-tools`);
    await page.screenshot({ path: screenshotPath('advanced-tools-1280') });
    const phone = await openPage(browser, { viewport: { width: 360, height: 740 } });
    await signIn(phone, internalToken());
    await phone.goto(`${BASE}/sites/${SHOP}/advanced-tools`);
    await phone.screenshot({ path: screenshotPath('advanced-tools-360'), fullPage: true });
    await phone.goto(`${BASE}/login?token=expired-or-wrong`);
    await phone.screenshot({ path: screenshotPath('sign-in-link-invalid-360') });
    assertNoProblems(page);
  } finally {
    await browser.close();
  }
});
