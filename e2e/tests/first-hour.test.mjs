// The first hour (#20), as the demo's people meet it in Chromium: the demo with real
// WordPress (built with --features demo; run.sh builds it so), each persona signing in
// through the link the demo prints.
// - The client owner does the whole flow: open the site, create staging, change it in
//   staging's WordPress, push with the defaults, create staging again, reset it from a
//   backup, push again.
// - The support agent and the partner admin, to keep the run short, create staging and push
//   it with the defaults (support), or create staging and reset it from the template (admin);
//   then the client sees support's work as "Support user".
// After each step the test waits for the activity to end and asserts what the page shows;
// screenshots of every step land in test-output/screenshots/first-hour/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { SCREENSHOTS, assertNoProblems, launch, openPage } from '../lib/env.mjs';

const SITE = 'acme-shop';
const SHOTS = join(SCREENSHOTS, 'first-hour');
const PHONE = { width: 375, height: 812 };
const CONFIRMATION = 'I am ready to push my staging site to production';
const NEW_TITLE = 'Acme Bakery: Winter Menu';
const OPERATION_TIMEOUT = 180_000;

const demo = { process: null, dataDir: null, base: null, links: {}, live: null, staging: null, password: null };

// Starts `sitetrail demo` on a free port with a data dir of its own and reads what it prints.
before(async () => {
  demo.dataDir = mkdtempSync(join(tmpdir(), 'sitetrail-first-hour.'));
  mkdirSync(SHOTS, { recursive: true });
  const log = createWriteStream(join(SCREENSHOTS, '..', 'first-hour-demo.log'));
  demo.process = spawn(process.env.E2E_SITETRAIL, [
    'demo', '--listen', '127.0.0.1:0', '--data-dir', demo.dataDir,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  demo.process.stderr.pipe(log);
  const lines = [];
  const reader = createInterface({ input: demo.process.stdout });
  await new Promise((resolve, reject) => {
    demo.process.on('exit', (code) => reject(new Error(`the demo exited (${code}): ${lines.join('\n')}`)));
    reader.on('line', (line) => {
      lines.push(line);
      log.write(`${line}\n`);
      if (line.startsWith('Stop the demo')) resolve();
    });
  });
  demo.process.removeAllListeners('exit');
  demo.base = lines[0].replace('sitetrail demo on ', '').trim();
  for (const [persona, heading] of [
    ['client', 'client owner'], ['admin', 'partner admin'], ['support', 'support agent'],
  ]) {
    const at = lines.findIndex((l) => l.includes(heading));
    demo.links[persona] = lines[at + 1].trim();
  }
  const hosted = lines.find((l) => l.startsWith('acme-shop is real WordPress'));
  assert.ok(hosted, `the demo runs acme-shop on real WordPress: ${lines.join('\n')}`);
  [, demo.live, demo.staging, demo.password] = hosted.match(/live (\S+) and staging (\S+) \(admin \/ (.+)\)\.$/);
});

after(async () => {
  if (demo.process && demo.process.exitCode === null) {
    // As Ctrl-C does: the demo stops its WordPress servers too.
    const ended = new Promise((resolve) => demo.process.on('exit', resolve));
    demo.process.kill('SIGINT');
    await Promise.race([ended, new Promise((resolve) => setTimeout(resolve, 15_000))]);
    if (demo.process.exitCode === null) demo.process.kill('SIGKILL');
  }
  if (demo.dataDir) rmSync(demo.dataDir, { recursive: true, force: true });
});

async function shot(page, name, { phone = false } = {}) {
  await page.screenshot({ path: join(SHOTS, `${name}-1280.png`), fullPage: true });
  if (!phone) return;
  const small = await page.context().browser().newContext({ viewport: PHONE, storageState: await page.context().storageState() });
  const p = await small.newPage();
  await p.goto(page.url());
  await p.waitForLoadState('networkidle');
  const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `${name} at 375 px: nothing sticks out sideways (${overflow} px)`);
  await p.screenshot({ path: join(SHOTS, `${name}-375.png`), fullPage: true });
  await small.close();
}

// Signs in through the persona's link: it asks first, and its button signs in.
async function signIn(browser, persona) {
  const page = await openPage(browser);
  await page.goto(demo.links[persona]);
  assert.match(await page.textContent('h1'), /^Sign in to .+ as .+\?$/);
  await Promise.all([
    page.waitForURL((url) => url.pathname !== '/login'),
    page.getByRole('button', { name: 'Sign in' }).click(),
  ]);
  return page;
}

async function activity(page, id) {
  const response = await page.request.get(`${demo.base}/api/v1/activities/${id}`);
  assert.equal(response.status(), 200);
  return response.json();
}

// Waits until nothing runs on the site (the demo's own daily backup, another persona's work).
async function idle(page) {
  const deadline = Date.now() + OPERATION_TIMEOUT;
  for (;;) {
    const response = await page.request.get(`${demo.base}/api/v1/sites/${SITE}/activities?status=in_progress`);
    const { items } = await response.json();
    if (items.length === 0) return;
    assert.ok(Date.now() < deadline, `still running: ${items.map((a) => a.description).join(', ')}`);
    await page.waitForTimeout(500);
  }
}

// Submits an action, follows the page to `?started=`, waits for the activity's row to end
// in the page (over the live stream) and asserts it completed; returns the activity.
async function runAction(page, submit, label) {
  await Promise.all([page.waitForURL(/[?&]started=/, { timeout: 30_000 }), submit()]);
  const id = new URL(page.url()).searchParams.get('started');
  assert.ok(id, `${label}: the page names the activity it started`);
  assert.equal(await page.locator('#flash').getAttribute('data-activity'), id);
  const row = page.locator(`#activity-${id}`);
  await row.waitFor({ timeout: 10_000 });
  await row.locator('.badge-label', { hasText: /Completed|Failed/ }).waitFor({ timeout: OPERATION_TIMEOUT });
  const ended = await activity(page, id);
  assert.equal(ended.status, 'completed', `${label}: ${ended.description} ${ended.error ?? ''}`);
  assert.equal((await row.locator('.badge-label').textContent()).trim(), 'Completed', label);
  assert.equal((await row.locator('.c-activity').textContent()).trim(), label);
  return ended;
}

async function openStaging(page) {
  await page.goto(`${demo.base}/sites/${SITE}/staging`);
  await page.getByRole('status').filter({ hasText: 'Live updates on' }).waitFor();
}

// What the Staging page says staging is now (the engine's record).
async function stagingNow(page) {
  return (await page.locator('#staging-state').textContent()).replace(/\s+/g, ' ').trim();
}

async function createStaging(page) {
  await openStaging(page);
  return runAction(page, () => page.getByRole('button', { name: 'Create staging from live' }).click(),
    'Create Staging Environment');
}

async function pushWithDefaults(page, name) {
  await openStaging(page);
  await page.getByRole('link', { name: 'Push staging to live…' }).click();
  await page.waitForURL(/\/staging\/push-to-live$/);
  // The defaults: only the choice the page asks for (no default scope) and the confirmation.
  const keep = page.locator('input[name="keep_staging"]');
  assert.equal(await keep.isChecked(), false, 'staging is removed unless the person keeps it');
  await page.getByLabel('The whole site (database and file system)').check();
  await page.getByLabel(CONFIRMATION).check();
  await shot(page, name, { phone: true });
  return runAction(page, () => page.getByRole('button', { name: 'Push staging to live' }).click(),
    'Push Staging to Live');
}

async function resetFromBackup(page, choose) {
  await openStaging(page);
  const select = page.locator('#backup');
  const options = await select.locator('option').evaluateAll((os) => os.map((o) => ({ value: o.value, text: o.textContent })));
  const chosen = options.find((o) => o.value && choose.test(o.text)) ?? options.find((o) => o.value);
  assert.ok(chosen, `a backup to choose: ${JSON.stringify(options)}`);
  await select.selectOption(chosen.value);
  const ended = await runAction(page, () => page.getByRole('button', { name: 'Reset from this backup' }).click(),
    'Reset Staging from Backup');
  return { ended, chosen };
}

async function title(url) {
  const html = await (await fetch(url)).text();
  return html.match(/<title>([^<]*)<\/title>/)?.[1] ?? '';
}

// Changes staging's site title through WordPress itself: its login and its settings page.
async function changeStagingTitle(browser) {
  const wp = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await wp.newPage();
  await page.goto(`${demo.staging}/wp-login.php`);
  await page.fill('#user_login', 'admin');
  await page.fill('#user_pass', demo.password);
  await Promise.all([page.waitForURL(/wp-admin/), page.click('#wp-submit')]);
  await page.goto(`${demo.staging}/wp-admin/options-general.php`);
  await page.fill('#blogname', NEW_TITLE);
  await Promise.all([page.waitForURL(/settings-updated=true/), page.click('#submit')]);
  await page.goto(demo.staging);
  await page.screenshot({ path: join(SHOTS, '04-staging-changed-in-wordpress-1280.png'), fullPage: true });
  await wp.close();
}

test('the client owner: create staging, change it, push, create again, reset from a backup, push again', { timeout: 900_000 }, async () => {
  const browser = await launch();
  try {
    const page = await signIn(browser, 'client');
    await idle(page);
    await page.goto(`${demo.base}/sites/${SITE}`);
    assert.equal(await page.textContent('h1'), 'Overview');
    assert.match(await page.textContent('body'), /Acme Bakery Shop/);
    assert.match(await page.textContent('main'), /Staging\s+Not created yet\./);
    await shot(page, '01-site', { phone: true });

    await openStaging(page);
    // The demo's history ends with a push that removed staging: the engine, which has no record
    // of the demo's past, reads that from the log.
    assert.match(await stagingNow(page), /There is no staging site any more\. It was removed after it was pushed to live/);
    assert.equal(await page.getByRole('link', { name: 'Push staging to live…' }).count(), 0, 'nothing to push yet');
    await shot(page, '02-staging-before', { phone: true });
    const created = await createStaging(page);
    assert.equal(created.user.label, 'olivia@acmebakery.example');
    await openStaging(page);
    assert.match(await stagingNow(page), /Created\s*.+ from live/);
    await shot(page, '03-staging-created');
    const liveTitle = await title(demo.live);
    assert.match(await title(demo.staging), /Acme Bakery Shop/, 'staging is a copy of live');

    await changeStagingTitle(browser);
    assert.match(await title(demo.staging), new RegExp(NEW_TITLE));
    assert.equal(await title(demo.live), liveTitle, 'live is untouched by a change in staging');

    const pushed = await pushWithDefaults(page, '05-push-confirmation');
    assert.equal(pushed.details.keep_staging, false);
    await shot(page, '06-pushed', { phone: true });
    assert.match(await title(demo.live), new RegExp(NEW_TITLE), 'live now has staging\'s change');
    await openStaging(page);
    assert.match(await stagingNow(page), /There is no staging site any more\. It was removed after it was pushed to live/);
    await shot(page, '06-staging-after-push', { phone: true });

    // Staging went with the default push; it can be made again (#20 item 1).
    await createStaging(page);
    await shot(page, '07-staging-created-again');
    assert.match(await title(demo.staging), new RegExp(NEW_TITLE), 'made again from the new live');

    // The daily backup the demo took before the change: staging goes back to the old title.
    const { ended, chosen } = await resetFromBackup(page, /daily/i);
    assert.equal(ended.details.backup, chosen.value, 'the log names the backup staging was reset from');
    await openStaging(page);
    assert.match(await stagingNow(page), /Created\s*.+ from .*backup/i);
    await shot(page, '08-reset-from-backup', { phone: true });
    assert.doesNotMatch(await title(demo.staging), new RegExp(NEW_TITLE));

    await pushWithDefaults(page, '09-push-again-confirmation');
    await shot(page, '09-pushed-again');
    assert.doesNotMatch(await title(demo.live), new RegExp(NEW_TITLE), 'live is back as the backup had it');

    await page.goto(`${demo.base}/sites/${SITE}/advanced-tools/activity-logs`);
    await page.locator('#activity-rows tr').first().waitFor();
    await shot(page, '10-activity-log', { phone: true });
    assertNoProblems(page);
  } finally {
    await browser.close();
  }
});

test('the support agent: create staging and push it with the defaults; the client sees "Support user"', { timeout: 600_000 }, async () => {
  const browser = await launch();
  try {
    const page = await signIn(browser, 'support');
    await idle(page);
    await page.goto(`${demo.base}/sites/${SITE}`);
    await shot(page, '11-support-site');
    const created = await createStaging(page);
    assert.equal(created.user.label, 'sam.rivera@brightside.example', 'the team sees who');
    await shot(page, '12-support-staging-created');
    await pushWithDefaults(page, '13-support-push-confirmation');
    await shot(page, '13-support-pushed');
    assertNoProblems(page);

    const client = await signIn(browser, 'client');
    await client.goto(`${demo.base}/sites/${SITE}/advanced-tools/activity-logs`);
    const row = client.locator(`#activity-${created.id}`);
    await row.waitFor();
    assert.equal((await row.locator('.user').textContent()).trim(), 'Support user');
    assert.doesNotMatch(await client.content(), /sam\.rivera|Rivera/);
    await shot(client, '14-client-sees-support-user');
  } finally {
    await browser.close();
  }
});

test('the partner admin: create staging and reset it from the template Bakery Classic', { timeout: 600_000 }, async () => {
  const browser = await launch();
  try {
    const page = await signIn(browser, 'admin');
    await idle(page);
    await createStaging(page);
    await openStaging(page);
    const select = page.locator('#template');
    const options = await select.locator('option').allTextContents();
    assert.ok(options.some((o) => o.includes('Bakery Classic')), `the template the history names: ${options}`);
    await select.selectOption({ label: options.find((o) => o.includes('Bakery Classic')) });
    await shot(page, '15-admin-template-chosen', { phone: true });
    const ended = await runAction(page, () => page.getByRole('button', { name: 'Reset from this template' }).click(),
      'Reset Staging from Template');
    assert.equal(ended.details.template, 'bakery-classic');
    assert.match(await title(demo.staging), /Bakery Classic/);
    await shot(page, '16-admin-reset-from-template');
    assertNoProblems(page);
  } finally {
    await browser.close();
  }
});
