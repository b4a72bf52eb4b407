// The Access Log is worth reading: reloading the Activity Logs page and its live updates make
// one look per person, filters read as pills ("Status: Failed"), and no empty pill shows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BASE, SHOP, assertNoProblems, launch, logPath, openPage, screenshotPath, signIn, viewerToken,
} from '../lib/env.mjs';

// A person of the partner's team of their own, so that other tests' looks do not count.
const READER = { email: 'ada.reader@brightside.example', name: 'Ada Reader' };
const SIZES = [
  { width: 1280, height: 900 },
  { width: 375, height: 812 },
];

async function readersLooks(page) {
  return page.$$eval('main table tbody tr', (rows, email) => rows
    .filter((tr) => tr.querySelector('[data-label="Who"]').textContent.includes(email))
    .map((tr) => ({
      what: tr.querySelector('[data-label="What"]').textContent.trim(),
      pills: [...tr.querySelectorAll('[data-label="Filters"] .pill')].map((p) => p.textContent.trim()),
      filters: tr.querySelector('[data-label="Filters"]').textContent.trim(),
    })), READER.email);
}

test('three views of the log and its live updates are one look; filters are pills', async () => {
  const browser = await launch();
  try {
    const page = await openPage(browser);
    await signIn(page, viewerToken({ audience: 'internal', person: READER }));
    for (let i = 0; i < 3; i++) {
      await page.goto(BASE + logPath(SHOP));
      await page.getByRole('status').filter({ hasText: 'Live updates on' }).waitFor();
    }
    await page.goto(`${BASE}${logPath(SHOP)}?status=failed`);
    await page.getByRole('status').filter({ hasText: 'Live updates on' }).waitFor();

    const accessLog = `${BASE}/sites/${SHOP}/advanced-tools/access-log`;
    let looks = [];
    for (let i = 0; i < 50 && looks.length < 2; i++) {
      await page.goto(accessLog);
      looks = await readersLooks(page);
      if (looks.length < 2) await page.waitForTimeout(100);
    }
    // A moment more, in case a look too many were still on its way.
    await page.waitForTimeout(500);
    await page.goto(accessLog);
    looks = await readersLooks(page);
    assert.deepEqual(looks, [
      { what: 'Read the log', pills: ['Status: Failed'], filters: 'Status: Failed' },
      { what: 'Read the log', pills: [], filters: 'None' },
    ]);
    const body = await page.textContent('main');
    assert.doesNotMatch(body, /Older looks|Looks at the activity log|after=/);
    for (const viewport of SIZES) {
      await page.setViewportSize(viewport);
      await page.screenshot({ path: screenshotPath(`access-log-${viewport.width}`), fullPage: true });
    }
    assertNoProblems(page);
  } finally {
    await browser.close();
  }
});
