// Safe push in a browser: the push form's scopes and its Preview button, a preview's report
// page with its conflicts and its confirmation, the Undo push button while a push's window is
// open, and the Backups page's "Restore live from this backup" form. Each page is saved at
// 1280 and 375 px wide. The site has no WordPress (its preview and undo are recorded as the
// engine writes them); real pushes on real WordPress are covered by the Rust tests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, rmSync } from 'node:fs';
import {
  ACCOUNT, BASE, OWNER, SUPPORT, assertNoProblems, clientToken, launch, openPage, publisher,
  screenshotPath, signIn,
} from '../lib/env.mjs';
import { recordSnapshot, recordStaging } from '../lib/staging-record.mjs';

const OUTLET = 'acme-outlet';
const LIVE_URL = 'https://outlet.acmebakery.example';
const BACKUP = 'live-20261203T020000Z';
const SIZES = [
  { width: 1280, height: 900 },
  { width: 375, height: 812 },
];

async function registerOutlet() {
  recordStaging(OUTLET, {
    exists: true, created: { at: '2026-12-01T09:00:00.000Z', from: { kind: 'live' } },
    size_bytes: 88_200_000,
  });
  recordSnapshot({ site: OUTLET, id: BACKUP, reason: 'daily', at: '2026-12-03T02:00:00.000Z' });
  await publisher('PUT', `/api/v1/sites/${OUTLET}`, {
    account_id: ACCOUNT,
    name: 'Acme Bakery Outlet',
    live: { url: LIVE_URL, docroot: `/nonexistent/e2e/${OUTLET}/live` },
    staging: { url: 'https://staging.outlet.acmebakery.example', docroot: `/nonexistent/e2e/${OUTLET}/staging` },
  });
}

// What a preview of the whole site measured, as the engine writes it into its activity.
const REPORT = {
  tables: [
    { table: 'wp_posts', added: 3, removed: 1, changed: 12, kept_from_live: 41 },
    { table: 'wp_postmeta', added: 18, removed: 4, changed: 37, kept_from_live: 212 },
    { table: 'wp_options', added: 0, removed: 0, changed: 6, kept_from_live: 0 },
    { table: 'wp_wc_orders', added: 0, removed: 0, changed: 0, kept_from_live: 27 },
    { table: 'wp_woocommerce_order_items', added: 0, removed: 0, changed: 0, kept_from_live: 64 },
  ],
  kept_from_live: 344,
  conflicts: [
    { table: 'wp_postmeta', key: 'meta_id=9187', staging: 'changed', live: 'changed' },
    { table: 'wp_comments', key: 'comment_ID=402', staging: 'removed', live: 'changed' },
  ],
  files: {
    added: 2, changed: 3, removed: 1, bytes_added: 48_210, bytes_changed: 1_204_331, bytes_removed: 5_120,
    list: [
      { path: 'wp-content/themes/outlet/style.css', change: 'changed', bytes: 38_112 },
      { path: 'wp-content/themes/outlet/templates/front-page.html', change: 'changed', bytes: 6_004 },
      { path: 'wp-content/themes/outlet/assets/hero-winter-2026-collection-banner.webp', change: 'added', bytes: 46_002 },
      { path: 'wp-content/themes/outlet/parts/footer.html', change: 'added', bytes: 2_208 },
      { path: 'wp-content/plugins/outlet-blocks/outlet-blocks.php', change: 'changed', bytes: 1_160_215 },
      { path: 'wp-content/themes/outlet/parts/old-banner.html', change: 'removed', bytes: 5_120 },
    ],
  },
  url_rewrites: 1_284,
  skipped_cells: [
    { table: 'wp_shop_links', column: 'url', key: 'id=7', reason: 'the column holds at most 40 characters' },
  ],
  live_fingerprint: 'e2e',
};

async function recordPreview() {
  const a = await publisher('POST', '/api/v1/activities', {
    account_id: ACCOUNT, site_id: OUTLET, environment: 'live', service: 'staging',
    activity: 'preview_push', actor: { kind: 'support', email: SUPPORT.email, name: SUPPORT.name },
    description: 'Previewing a push of staging to live (database and files)',
    details: { scope: 'site', pushed: { scope: 'site', tables: [], folders: [] }, preview: REPORT },
  });
  await publisher('POST', `/api/v1/activities/${a.id}/complete`, {
    description: '16 rows added, 59 changed and 5 removed in 3 tables; 344 rows kept from live; 2 conflicts',
  });
  return a.id;
}

// The undo window a push leaves, as the engine records it (data dir `undo/{site}.json`).
function recordUndo(push, putsPushBack = false) {
  const dir = `${process.env.E2E_DATA_DIR}/undo`;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const now = Date.now();
  writeFileSync(`${dir}/${OUTLET}.json`, JSON.stringify({
    push, site: OUTLET, pushed_at: new Date(now - 3_600_000).toISOString(),
    until: new Date(now + 23 * 3_600_000).toISOString(), docroot: `/nonexistent/e2e/${OUTLET}/live`,
    kept: { tables: [], pushed: [], tree: null }, puts_push_back: putsPushBack,
  }), { mode: 0o600 });
}

async function sidewaysOverflow(page) {
  return page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
}

async function shoot(page, name, width) {
  assert.ok(await sidewaysOverflow(page) <= 0, `${name} at ${width} px: nothing sticks out sideways`);
  await page.screenshot({ path: screenshotPath(`${name}-${width}`), fullPage: true });
}

test('the push form offers five scopes and previews first; the report asks to confirm that preview', async () => {
  await registerOutlet();
  const preview = await recordPreview();
  const browser = await launch();
  try {
    for (const viewport of SIZES) {
      const page = await openPage(browser, { viewport });
      await signIn(page, clientToken());
      await page.goto(`${BASE}/sites/${OUTLET}/staging/push-to-live`);
      for (const label of ['The whole site (database and file system)', 'The database only',
        'The file system only', 'Chosen tables', 'Chosen folders']) {
        assert.equal(await page.getByLabel(label, { exact: true }).count(), 1, label);
      }
      await page.getByLabel('Chosen tables', { exact: true }).check();
      await page.locator('#tables').fill('posts\npostmeta');
      await shoot(page, 'safe-push-form', viewport.width);
      assert.equal(await page.getByRole('button', { name: 'Preview the changes' }).count(), 1);

      await page.goto(`${BASE}/sites/${OUTLET}/staging/previews/${preview}`);
      assert.equal(await page.textContent('h1'), 'Preview of a push to live');
      assert.match(await page.locator('#conflicts').textContent(), /meta_id=9187/);
      assert.match(await page.locator('#files').textContent(), /hero-winter-2026/);
      assert.match(await page.locator('#kept-from-live').textContent(), /^344 rows/);
      const text = await page.textContent('main');
      assert.ok(!text.includes(SUPPORT.email) && !text.includes(SUPPORT.name), 'a client sees no support person');
      assert.equal(await page.getByRole('button', { name: 'Push these changes' }).count(), 1);
      await shoot(page, 'safe-push-preview', viewport.width);

      // The log links the preview to its report.
      await page.goto(`${BASE}/sites/${OUTLET}/advanced-tools/activity-logs`);
      const link = page.getByRole('link', { name: 'See the report' }).first();
      assert.match(await link.getAttribute('href'), new RegExp(`/previews/${preview}$`));
      assertNoProblems(page);
    }
  } finally {
    await browser.close();
  }
});

test('the Backups page restores live from a backup after a confirmation', async () => {
  await registerOutlet();
  const browser = await launch();
  try {
    for (const viewport of SIZES) {
      const page = await openPage(browser, { viewport });
      await signIn(page, clientToken());
      await page.goto(`${BASE}/sites/${OUTLET}/backups`);
      await page.getByRole('link', { name: 'Restore live from this backup' }).click();
      await page.waitForURL(/\/restore-live$/);
      assert.equal(await page.textContent('h1'), 'Restore live from a backup');
      assert.match(await page.textContent('main'), /Live is backed up first\./);
      await page.getByLabel('The database only').check();
      await shoot(page, 'safe-push-restore', viewport.width);
      // The browser does not send it without the confirmation.
      await page.getByRole('button', { name: 'Restore live' }).click();
      await page.waitForTimeout(300);
      assert.match(page.url(), /\/restore-live$/);
      assert.equal(await page.getByLabel('I want to replace live with this backup')
        .evaluate((el) => el.validity.valueMissing), true);
      assertNoProblems(page);
    }
  } finally {
    await browser.close();
  }
});

test('while a push can be undone, Staging and Overview offer "Undo push" (after an undo, "Put push back") with its deadline', async () => {
  await registerOutlet();
  const push = await publisher('POST', '/api/v1/activities', {
    account_id: ACCOUNT, site_id: OUTLET, environment: 'live', service: 'staging',
    activity: 'push_staging_to_live', actor: { kind: 'user', email: OWNER.email, name: OWNER.name },
    description: 'Pushing staging to live (database and files)', status: 'completed',
    completed_at: new Date().toISOString(),
  });
  const browser = await launch();
  try {
    // After a push the offer is to undo it; after an undo, to put the push back.
    for (const [putsPushBack, button, shot] of [[false, 'Undo push', 'safe-push-undo'], [true, 'Put push back', 'safe-push-redo']]) {
      recordUndo(push.id, putsPushBack);
      for (const viewport of SIZES) {
        const page = await openPage(browser, { viewport, timezoneId: 'America/New_York' });
        await signIn(page, clientToken());
        for (const [path, name] of [['staging', `${shot}-staging`], ['', `${shot}-overview`]]) {
          await page.goto(`${BASE}/sites/${OUTLET}${path ? `/${path}` : ''}`);
          const undo = page.locator('#undo-push');
          await undo.waitFor();
          assert.equal(await undo.getByRole('button', { name: button }).count(), 1);
          assert.match(await undo.textContent(), /until/);
          await shoot(page, name, viewport.width);
        }
        assertNoProblems(page);
      }
    }
  } finally {
    rmSync(`${process.env.E2E_DATA_DIR}/undo/${OUTLET}.json`, { force: true });
    await browser.close();
  }
});
