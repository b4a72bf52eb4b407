// The Staging and Backups pages in a browser: pushing asks for an explicit confirmation
// that names what it overwrites, a site hosted elsewhere shows its actions disabled and says
// why, and a running operation shows as running until the live stream says it ended.
// Real operations on real WordPress are covered by the Rust tests (tests/api/staging_pages.rs);
// the sites here have no WordPress, so a form that reaches the engine is answered in words.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ACCOUNT, BASE, OWNER, SHOP, assertNoProblems, clientToken, launch, openPage, publisher,
  screenshotPath, signIn,
} from '../lib/env.mjs';
import { recordStaging } from '../lib/staging-record.mjs';

const STUDIO = 'acme-studio';
const LIVE_URL = 'https://studio.acmebakery.example';
const CONFIRMATION = 'I am ready to push my staging site to production';
const SIZES = [
  { width: 1280, height: 900 },
  { width: 375, height: 812 },
];

// Registers the studio site, with docroots (hosted here, though they hold no WordPress, and
// staging as the engine records it once made) or without (hosted elsewhere).
async function registerStudio({ hosted }) {
  if (hosted) {
    recordStaging(STUDIO, {
      exists: true, created: { at: '2026-12-02T10:15:00.000Z', from: { kind: 'live' } },
      size_bytes: 45_600_000,
    });
  }
  const where = (env) => (hosted ? { docroot: `/nonexistent/e2e/${STUDIO}/${env}` } : {});
  await publisher('PUT', `/api/v1/sites/${STUDIO}`, {
    account_id: ACCOUNT,
    name: 'Acme Bakery Studio',
    live: { url: LIVE_URL, ...where('live') },
    staging: { url: 'https://staging.studio.acmebakery.example', ...where('staging') },
  });
}

async function studioActivities(page) {
  const response = await page.request.get(`${BASE}/api/v1/sites/${STUDIO}/activities`);
  assert.equal(response.status(), 200);
  return (await response.json()).items;
}

// Chromium reports a page answered 4xx on purpose as a failed load; anything else counts.
function assertNoProblemsBut422(page) {
  page.problems = page.problems.filter((p) => !/status of 422/.test(p));
  assertNoProblems(page);
}

async function sidewaysOverflow(page) {
  return page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
}

test('the Staging page and the push confirmation, saved as screenshots at 1280 and 375 px', async () => {
  await registerStudio({ hosted: true });
  const browser = await launch();
  try {
    for (const viewport of SIZES) {
      const page = await openPage(browser, { viewport });
      await signIn(page, clientToken());
      await page.goto(`${BASE}/sites/${STUDIO}/staging`);
      await page.getByRole('status').filter({ hasText: 'Live updates on' }).waitFor();
      assert.ok(await sidewaysOverflow(page) <= 0, `${viewport.width} px: nothing sticks out sideways`);
      await page.screenshot({ path: screenshotPath(`staging-${viewport.width}`), fullPage: true });
      await page.getByRole('link', { name: 'Push staging to live…' }).click();
      await page.waitForURL(/\/staging\/push-to-live$/);
      assert.ok(await sidewaysOverflow(page) <= 0, `${viewport.width} px: the confirmation fits`);
      await page.screenshot({ path: screenshotPath(`push-to-live-${viewport.width}`), fullPage: true });
      assertNoProblems(page);
    }
  } finally {
    await browser.close();
  }
});

test('the push cannot be sent without the confirmation, which names live and what live keeps', async () => {
  await registerStudio({ hosted: true });
  const browser = await launch();
  try {
    const page = await openPage(browser);
    await signIn(page, clientToken());
    await page.goto(`${BASE}/sites/${STUDIO}/staging/push-to-live`);
    assert.equal(await page.textContent('h1'), 'Push staging to live');
    assert.equal(await page.locator('#live-url').textContent(), LIVE_URL);
    const wholeSite = page.getByLabel('The whole site (database and file system)');
    const filesOnly = page.getByLabel('The file system only');
    const keep = page.getByLabel('Keep the staging site after pushing');
    const confirm = page.getByLabel(CONFIRMATION);
    assert.equal(await wholeSite.isChecked(), false, 'the person chooses');
    assert.equal(await filesOnly.isChecked(), false);
    assert.equal(await keep.isChecked(), false, 'staging is removed unless the person keeps it');
    assert.equal(await confirm.isChecked(), false);
    const says = await page.locator('#scope-site-says').textContent();
    assert.match(says, /database and files at https:\/\/studio\.acmebakery\.example/);
    assert.match(says, /Orders, comments and sign-ups made on live since staging was made are kept/);
    assert.match(await page.locator('#scope-files-says').textContent(), /database is kept as it is/);

    // The browser does not send the form without the confirmation.
    await wholeSite.check();
    const push = page.getByRole('button', { name: 'Push staging to live' });
    await push.click();
    await page.waitForTimeout(300);
    assert.match(page.url(), /\/staging\/push-to-live$/);
    assert.equal(await confirm.evaluate((el) => el.validity.valueMissing), true);
    assert.equal(await page.locator('#form-problems').count(), 0, 'nothing was sent');

    // Nor does the server, when a browser sends it anyway.
    await page.locator('form.push-form').evaluate((form) => { form.noValidate = true; });
    const [refused] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST'),
      push.click(),
    ]);
    assert.equal(refused.status(), 422);
    await page.locator('#form-problems').waitFor();
    assert.match(await page.locator('#form-problems').textContent(), new RegExp(`Tick .${CONFIRMATION}. to push`));
    assert.equal(await wholeSite.isChecked(), true, 'the choice is kept');
    assert.equal(await confirm.isChecked(), false, 'the confirmation is not');

    // Meanwhile the site moved to other servers: a confirmed push is answered in words.
    await registerStudio({ hosted: false });
    await confirm.check();
    const [answered] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST'),
      page.getByRole('button', { name: 'Push staging to live' }).click(),
    ]);
    assert.equal(answered.status(), 422);
    const alert = page.getByRole('alert').filter({ hasText: 'did not start' });
    await alert.waitFor();
    assert.match(await alert.textContent(), /This site's environments are not hosted here, so nothing was started\./);
    assert.deepEqual(await studioActivities(page), [], 'nothing was logged');
    assertNoProblemsBut422(page);

    // Now the page itself says so, with the form disabled.
    await page.goto(`${BASE}/sites/${STUDIO}/staging/push-to-live`);
    assert.match(await page.locator('#unavailable').textContent(), /not hosted here/);
    assert.equal(await page.getByRole('button', { name: 'Push staging to live' }).isDisabled(), true);
  } finally {
    await browser.close();
  }
});

test('a site hosted elsewhere shows its actions disabled, and a running push as running', async () => {
  const browser = await launch();
  try {
    const page = await openPage(browser);
    await signIn(page, clientToken());
    await page.goto(`${BASE}/sites/${SHOP}/staging`);
    assert.match(await page.locator('#unavailable').textContent(), /This site's environments are not hosted here/);
    assert.equal(await page.getByRole('button', { name: 'Create staging from live' }).isDisabled(), true);
    assert.equal(await page.getByRole('link', { name: 'Push staging to live…' }).count(), 0);
    // The seeded push that is still running.
    const running = page.locator('#activity-shop-000');
    assert.equal((await running.locator('.badge-label').textContent()).trim(), 'In progress');
    assert.equal(await page.locator('#running-hint').isVisible(), true);
    await page.screenshot({ path: screenshotPath('staging-hosted-elsewhere-1280'), fullPage: true });
    assertNoProblems(page);

    // Without JavaScript, the badge and a way to refresh say the same.
    const plain = await openPage(browser, { javaScriptEnabled: false });
    await signIn(plain, clientToken());
    await plain.goto(`${BASE}/sites/${SHOP}/staging`);
    assert.equal((await plain.locator('#activity-shop-000 .badge-label').textContent()).trim(), 'In progress');
    assert.equal(await plain.locator('#running-hint').isVisible(), true);
    const refresh = plain.getByRole('link', { name: 'Refresh this page' });
    assert.equal(await refresh.getAttribute('href'), `/sites/${SHOP}/staging`);
  } finally {
    await browser.close();
  }
});

test('"Back up live" starts a backup as the signed-in person and the page follows it to its end', async () => {
  await registerStudio({ hosted: true });
  const browser = await launch();
  try {
    const page = await openPage(browser);
    await signIn(page, clientToken());
    await page.goto(`${BASE}/sites/${STUDIO}/backups`);
    await Promise.all([
      page.waitForURL(/\/backups\?started=/),
      page.getByRole('button', { name: 'Back up live' }).click(),
    ]);
    const id = new URL(page.url()).searchParams.get('started');
    const flash = page.locator('#flash');
    assert.equal(await flash.getAttribute('data-activity'), id);
    // These docroots hold no WordPress, so the backup fails at once; live is untouched.
    await flash.locator('.flash-title', { hasText: 'Create Backup failed' }).waitFor({ timeout: 10_000 });
    const row = page.locator(`#activity-${id}`);
    await row.locator('.badge-label', { hasText: 'Failed' }).waitFor({ timeout: 10_000 });
    assert.equal((await row.locator('.user').textContent()).trim(), OWNER.email, 'the person who clicked');
    assert.equal((await row.locator('.c-activity').textContent()).trim(), 'Create Backup');
    await page.screenshot({ path: screenshotPath('backups-started-1280'), fullPage: true });
    assertNoProblems(page);
  } finally {
    await registerStudio({ hosted: false });
    await browser.close();
  }
});

test('the Backups page offers "Back up live", and a running backup turns Completed in place', async () => {
  await registerStudio({ hosted: true });
  const browser = await launch();
  try {
    const page = await openPage(browser);
    await signIn(page, clientToken());
    await page.goto(`${BASE}/sites/${STUDIO}/backups`);
    await page.getByRole('status').filter({ hasText: 'Live updates on' }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Back up live' }).isEnabled(), true);
    assert.equal(await page.getByRole('button', { name: 'Back up staging' }).isEnabled(), true);
    assert.equal(await page.locator('#running-hint').isVisible(), false);
    await page.evaluate(() => { window.stillTheSamePage = true; });
    await new Promise((resolve) => setTimeout(resolve, 300));

    const backup = await publisher('POST', '/api/v1/activities', {
      account_id: ACCOUNT, site_id: STUDIO, environment: 'live', service: 'backups',
      activity: 'create_backup', actor: { kind: 'user', email: OWNER.email },
      description: 'Manual backup of live',
    });
    const row = page.locator(`#activity-${backup.id}`);
    await row.waitFor({ timeout: 10_000 });
    assert.equal((await row.locator('.badge-label').textContent()).trim(), 'In progress');
    await page.locator('#running-hint').waitFor({ state: 'visible' });
    await page.screenshot({ path: screenshotPath('backups-1280'), fullPage: true });

    await publisher('POST', `/api/v1/activities/${backup.id}/complete`, { description: 'Backed up live' });
    await row.locator('.badge-label', { hasText: 'Completed' }).waitFor({ timeout: 10_000 });
    await page.locator('#running-hint').waitFor({ state: 'hidden' });
    assert.equal(await page.evaluate(() => window.stillTheSamePage), true, 'no reload');
    assertNoProblems(page);

    const phone = await openPage(browser, { viewport: { width: 375, height: 812 } });
    await signIn(phone, clientToken());
    await phone.goto(`${BASE}/sites/${STUDIO}/backups`);
    assert.ok(await sidewaysOverflow(phone) <= 0, '375 px: nothing sticks out sideways');
    await phone.screenshot({ path: screenshotPath('backups-375'), fullPage: true });

    // A site hosted elsewhere offers the button, disabled, and says why.
    await page.goto(`${BASE}/sites/${SHOP}/backups`);
    assert.equal(await page.getByRole('button', { name: 'Back up live' }).isDisabled(), true);
    assert.match(await page.locator('#unavailable').textContent(), /not hosted here/);
  } finally {
    await registerStudio({ hosted: false });
    await browser.close();
  }
});
