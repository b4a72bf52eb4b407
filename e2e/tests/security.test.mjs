// What a publisher sent is text on the page, live or not; the CSP allows no inline script.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ACCOUNT, BASE, LAB, OWNER, assertNoProblems, clientToken, launch, logPath, openPage,
  publisher, signIn,
} from '../lib/env.mjs';

const PAYLOAD = '<img src=x onerror=alert(1)>';

test('an XSS payload in a description is shown as text and no dialog opens', async () => {
  const browser = await launch();
  try {
    const page = await openPage(browser);
    await signIn(page, clientToken());
    const response = await page.goto(BASE + logPath(LAB));
    const csp = response.headers()['content-security-policy'];
    assert.match(csp, /script-src 'self';/);
    assert.doesNotMatch(csp, /unsafe-inline/);

    const row = page.locator('#activity-lab-xss');
    assert.equal(await row.locator('.description').textContent(), PAYLOAD);
    await row.getByText('Show error').click();
    assert.equal(await row.locator('details.error p').textContent(), '<script>alert("error")</script>');
    assert.equal(await page.locator('table img, table script').count(), 0);

    // The same through the live stream, which the script renders.
    await page.getByRole('status').filter({ hasText: 'Live updates on' }).waitFor();
    await new Promise((resolve) => setTimeout(resolve, 300));
    const live = await publisher('POST', '/api/v1/activities', {
      account_id: ACCOUNT, site_id: LAB, environment: 'live', service: 'staging',
      activity: 'push_staging_to_live', actor: { kind: 'user', email: OWNER.email },
      description: `"><svg onload=alert(2)>${PAYLOAD}`,
    });
    const liveRow = page.locator(`#activity-${live.id}`);
    await liveRow.waitFor({ timeout: 10_000 });
    assert.equal(await liveRow.locator('.description').textContent(), `"><svg onload=alert(2)>${PAYLOAD}`);
    assert.equal(await page.locator('table img, table svg, table script').count(), 0);

    await page.waitForTimeout(500);
    assertNoProblems(page);
  } finally {
    await browser.close();
  }
});
