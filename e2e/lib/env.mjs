// What every browser test shares: the server that run.sh started, the publisher API, viewer
// tokens minted by the command line, and Debian's Chromium driven by playwright-core.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the browser tests with bash e2e/run.sh`);
  return value;
}

export const BASE = need('E2E_BASE_URL');
const API_KEY = need('E2E_API_KEY');
const SITETRAIL = need('E2E_SITETRAIL');
const DATA_DIR = need('E2E_DATA_DIR');
export const SCREENSHOTS = need('E2E_SCREENSHOTS');
export const DOWNLOADS = need('E2E_DOWNLOADS');

export const ACCOUNT = 'acme';
export const PARTNER = 'Brightside Digital';
export const OWNER = { email: 'olivia@acmebakery.example', name: 'Olivia Baker' };
export const ADMIN = { email: 'priya@brightside.example', name: 'Priya Patel' };
export const SUPPORT = { email: 'sam.rivera@brightside.example', name: 'Sam Rivera' };

export const logPath = (site) => `/sites/${site}/advanced-tools/activity-logs`;

// Calls the publisher API with the key run.sh made.
export async function publisher(method, path, body) {
  const response = await fetch(BASE + path, {
    method,
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

// A viewer token from `sitetrail token`, as the hosting platform would mint one.
export function viewerToken({ audience, person, kind = 'user', site }) {
  const args = [
    'token', '--account', ACCOUNT, '--audience', audience, '--actor-kind', kind,
    '--actor-email', person.email, '--actor-name', person.name, '--ttl', '3600',
    '--data-dir', DATA_DIR,
  ];
  if (site) args.push('--site', site);
  return execFileSync(SITETRAIL, args, { encoding: 'utf8' }).trim().split('\n').pop();
}

export const clientToken = () => viewerToken({ audience: 'client', person: OWNER });
export const internalToken = () => viewerToken({ audience: 'internal', person: ADMIN });

// Flags that keep Chromium off the network this machine does not have.
const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

// Debian's Chromium; playwright-core gives every launch a fresh, empty profile.
export function launch() {
  return chromium.launch({
    executablePath: process.env.E2E_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_FLAGS,
  });
}

// A page that remembers every script error, console error (CSP violations are reported
// there) and dialog, so that a test can assert there were none.
export async function openPage(browser, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...options });
  const page = await context.newPage();
  page.problems = [];
  page.dialogs = [];
  page.on('pageerror', (e) => page.problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') page.problems.push(`console: ${m.text()}`);
  });
  page.on('dialog', async (d) => {
    page.dialogs.push(`${d.type()}: ${d.message()}`);
    await d.dismiss();
  });
  return page;
}

// Signs in through the link the hosting platform hands out: the link asks "Sign in to
// <partner> as <who>?", and its button signs in.
export async function signIn(page, token) {
  await page.goto(`${BASE}/login?token=${encodeURIComponent(token)}`);
  assert.match(await page.textContent('h1'), /^Sign in to .+ as .+\?$/);
  assert.deepEqual(await page.context().cookies(), [], 'the link alone signs no one in');
  await Promise.all([
    page.waitForURL((url) => url.pathname !== '/login'),
    page.getByRole('button', { name: 'Sign in' }).click(),
  ]);
  assert.ok(!page.url().includes('token'), `the token stays out of the address bar: ${page.url()}`);
}

export function assertNoProblems(page) {
  assert.deepEqual(page.problems, [], 'no script errors and no CSP violations');
  assert.deepEqual(page.dialogs, [], 'no dialog opened');
}

// The rows of the log as a person reads them.
export async function tableRows(page) {
  return page.$$eval('#activity-rows tr', (rows) => rows.map((tr) => {
    const text = (selector) => (tr.querySelector(selector)?.textContent ?? '').trim();
    return {
      id: tr.getAttribute('data-id'),
      created: tr.querySelector('.c-created time')?.getAttribute('datetime') ?? '',
      user: text('.user'),
      marker: !!tr.querySelector('.marker'),
      service: text('.c-service'),
      activity: text('.c-activity'),
      status: text('.badge-label'),
      description: text('.description'),
      completed: tr.querySelector('.c-completed time')?.getAttribute('datetime') ?? '',
    };
  }));
}

export function screenshotPath(name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  return `${SCREENSHOTS}/${name}.png`;
}

// The seeded history's shape: seed.mjs and the tests agree on it through these.
export const SHOP = 'acme-shop';
export const LIVE = 'acme-live';
export const LAB = 'acme-lab';
export const SHOP_ACTIVITIES = 121;
