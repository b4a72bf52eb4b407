// An unknown dashboard address (a mistyped or outdated link) gets a page in the dashboard's
// look with a way back; the API keeps its JSON errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, clientToken, launch, openPage, screenshotPath, signIn } from '../lib/env.mjs';

const SIZES = [
  { width: 1280, height: 900 },
  { width: 375, height: 812 },
];

test('an unknown dashboard path is a styled 404 that leads back to the sites', async () => {
  const browser = await launch();
  try {
    for (const viewport of SIZES) {
      const page = await openPage(browser, { viewport });
      await signIn(page, clientToken());
      const response = await page.goto(`${BASE}/sites/acme-shop/no-such-page`);
      assert.equal(response.status(), 404);
      assert.equal(await page.textContent('h1'), 'Page not found');
      const background = await page.$eval('body', (b) => getComputedStyle(b).fontFamily);
      assert.doesNotMatch(background, /^Times/, 'the dashboard stylesheet applies');
      await page.screenshot({ path: screenshotPath(`not-found-${viewport.width}`), fullPage: true });
      await Promise.all([
        page.waitForURL((url) => !url.pathname.includes('no-such-page')),
        page.getByRole('link', { name: 'Go to your sites' }).click(),
      ]);
      assert.match(new URL(page.url()).pathname, /^\/sites\//);
    }
    const api = await fetch(`${BASE}/api/v1/no-such-endpoint`);
    assert.equal(api.status, 404);
    assert.equal((await api.json()).error.code, 'not_found');
  } finally {
    await browser.close();
  }
});
