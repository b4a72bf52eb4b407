// The CSV says why a row failed (an Error column after the seven of the table, through the
// same redaction as the page), and the dashboard offers it with a UTF-8 byte order mark for
// spreadsheets that need one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import {
  BASE, DOWNLOADS, SHOP, SUPPORT, assertNoProblems, clientToken, launch, logPath, openPage,
  signIn,
} from '../lib/env.mjs';

// The fields of a CSV without line breaks inside quotes (the seeded rows have none).
function parseLine(line) {
  const out = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { out.push(field); field = ''; }
    else field += c;
  }
  out.push(field);
  return out;
}

test('"CSV for Excel" downloads failed rows with their error, a BOM first, no support name', async () => {
  const browser = await launch();
  try {
    const page = await openPage(browser, { acceptDownloads: true });
    await signIn(page, clientToken());
    await page.goto(`${BASE}${logPath(SHOP)}?status=failed`);
    const shown = await page.$$eval('#activity-rows tr', (rows) => rows.map((tr) =>
      (tr.querySelector('details.error p')?.textContent ?? '').trim()));
    assert.ok(shown.length > 0 && shown.every((e) => e !== ''), 'every failed row has an error');

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'CSV for Excel' }).click(),
    ]);
    const saved = `${DOWNLOADS}/bom-${download.suggestedFilename()}`;
    await download.saveAs(saved);
    const bytes = await readFile(saved);
    assert.deepEqual([...bytes.subarray(0, 3)], [0xef, 0xbb, 0xbf], 'starts with a UTF-8 BOM');
    const text = bytes.subarray(3).toString('utf8');
    const [header, ...rows] = text.trim().split(/\r?\n/).map(parseLine);
    assert.deepEqual(header, ['Created', 'User', 'Service', 'Activity', 'Status', 'Description', 'Completed', 'Error']);
    assert.deepEqual(rows.slice(0, shown.length).map((r) => r[7]), shown, 'the same errors as the page');
    assert.ok(rows.every((r) => r[4] === 'Failed'));
    assert.ok(!text.includes(SUPPORT.email) && !text.includes(SUPPORT.name), 'no support person');

    const plain = await page.request.get(BASE + await page.getAttribute('#export-csv', 'href'));
    assert.notEqual((await plain.body())[0], 0xef, 'the plain CSV has no BOM');
    assertNoProblems(page);
  } finally {
    await browser.close();
  }
});
