// The Staging page says what staging is now, from the engine's record: not created (only
// Create is offered, and the Staging card offers it too instead of linking to a 404), or made
// when and from what, last pushed, its size; after a push that removed it, Create again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ACCOUNT, BASE, assertNoProblems, clientToken, launch, openPage, publisher, screenshotPath,
  signIn,
} from '../lib/env.mjs';
import { forgetStaging, recordStaging } from '../lib/staging-record.mjs';

const SITE = 'acme-state';
const SIZES = [
  { width: 1280, height: 900 },
  { width: 375, height: 812 },
];

async function registerSite() {
  await publisher('PUT', `/api/v1/sites/${SITE}`, {
    account_id: ACCOUNT,
    name: 'Acme Bakery State',
    live: { url: 'https://state.acmebakery.example', docroot: `/nonexistent/e2e/${SITE}/live` },
    staging: { url: 'https://staging.state.acmebakery.example', docroot: `/nonexistent/e2e/${SITE}/staging` },
  });
}

async function shoot(page, name) {
  for (const viewport of SIZES) {
    await page.setViewportSize(viewport);
    await page.screenshot({ path: screenshotPath(`${name}-${viewport.width}`), fullPage: true });
  }
  await page.setViewportSize(SIZES[0]);
}

test('before staging exists, only Create is offered and nothing links to a 404', async () => {
  await registerSite();
  forgetStaging(SITE);
  const browser = await launch();
  try {
    const page = await openPage(browser);
    await signIn(page, clientToken());
    await page.goto(`${BASE}/sites/${SITE}`);
    const card = page.locator('.card', { hasText: 'Staging' }).last();
    assert.match(await card.textContent(), /Not created yet/);
    assert.equal(await card.locator('a[href*="staging.state"]').count(), 0, 'no link to a staging that is not there');
    assert.equal(await page.locator('.env-urls a[href*="staging.state"]').count(), 0);
    assert.equal(await card.getByRole('button', { name: 'Create staging' }).isEnabled(), true);
    await shoot(page, 'overview-no-staging');

    await page.goto(`${BASE}/sites/${SITE}/staging`);
    assert.match(await page.locator('#staging-state').textContent(), /There is no staging site yet/);
    assert.equal(await page.getByRole('button', { name: 'Create staging from live' }).isEnabled(), true);
    assert.equal(await page.getByRole('link', { name: 'Push staging to live…' }).count(), 0);
    assert.equal(await page.locator('#reset-from-template, #reset-from-backup').count(), 0);
    await shoot(page, 'staging-not-created');

    await page.goto(`${BASE}/sites/${SITE}/backups`);
    assert.equal(await page.getByRole('button', { name: 'Back up live' }).count(), 1);
    assert.equal(await page.getByRole('button', { name: 'Back up staging' }).count(), 0);

    await page.goto(`${BASE}/sites/${SITE}/staging/push-to-live`);
    assert.match(await page.locator('#unavailable').textContent(), /There is no staging site yet/);
    assert.equal(await page.getByRole('button', { name: 'Push staging to live' }).isDisabled(), true);
    assertNoProblems(page);
  } finally {
    await browser.close();
  }
});

test('staging made from a template says when, from which template, its size and last push', async () => {
  await registerSite();
  recordStaging(SITE, {
    exists: true,
    created: { at: '2026-12-02T10:15:00.000Z', from: { kind: 'template', id: 'bakery-classic', name: 'Bakery Classic' } },
    last_pushed: '2026-12-01T08:00:00.000Z',
    size_bytes: 45_600_000,
  });
  const browser = await launch();
  try {
    const page = await openPage(browser, { timezoneId: 'Europe/Paris' });
    await signIn(page, clientToken());
    await page.goto(`${BASE}/sites/${SITE}/staging`);
    const facts = page.locator('#staging-state');
    const text = (await facts.textContent()).replace(/\s+/g, ' ');
    assert.match(text, /from the template “Bakery Classic”/);
    assert.match(text, /45\.6 MB/);
    // Times in the viewer's zone (Paris is UTC+1 in December), never raw ISO.
    assert.match(text, /Dec 2, 2026, 11:15/);
    assert.match(text, /Dec 1, 2026, 09:00/);
    assert.doesNotMatch(text, /2026-12-0\dT/);
    assert.equal(await page.getByRole('link', { name: 'Push staging to live…' }).count(), 1);
    assert.equal(await page.locator('#reset-from-template, #reset-from-backup').count(), 2);
    await page.goto(`${BASE}/sites/${SITE}`);
    assert.equal(await page.locator('.env-urls a[href*="staging.state"]').count(), 1);
    await page.goto(`${BASE}/sites/${SITE}/staging`);
    await shoot(page, 'staging-from-template');
    assertNoProblems(page);
  } finally {
    await browser.close();
  }
});

test('after a push that removed staging, the page says so and offers Create again', async () => {
  await registerSite();
  recordStaging(SITE, { exists: false, last_pushed: '2026-12-03T08:00:00.000Z' });
  const browser = await launch();
  try {
    const page = await openPage(browser);
    await signIn(page, clientToken());
    await page.goto(`${BASE}/sites/${SITE}/staging`);
    const text = (await page.locator('#staging-state').textContent()).replace(/\s+/g, ' ');
    assert.match(text, /There is no staging site any more/);
    assert.match(text, /removed after it was pushed to live/);
    assert.equal(await page.getByRole('button', { name: 'Create staging from live' }).isEnabled(), true);
    assert.equal(await page.getByRole('link', { name: 'Push staging to live…' }).count(), 0);
    await shoot(page, 'staging-removed-by-push');
    assertNoProblems(page);
  } finally {
    forgetStaging(SITE);
    await browser.close();
  }
});
