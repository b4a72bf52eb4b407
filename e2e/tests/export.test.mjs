// Export: the link downloads exactly what the filters select.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import {
  BASE, DOWNLOADS, SHOP, assertNoProblems, clientToken, launch, logPath, openPage, signIn,
  tableRows,
} from '../lib/env.mjs';

// RFC 4180: quoted fields may hold commas, quotes and line breaks.
function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(field); field = ''; }
    else if (c === '\n') { row.push(field); rows.push(row); row = []; field = ''; }
    else if (c !== '\r') field += c;
  }
  if (field || row.length) { row.push(field); rows.push(row); }
  return rows;
}

test('the export link downloads a CSV whose rows match the filtered table', async () => {
  const browser = await launch();
  try {
    const page = await openPage(browser, { acceptDownloads: true });
    await signIn(page, clientToken());
    await page.goto(`${BASE}${logPath(SHOP)}?activity=push_staging_to_live&status=failed`);
    const table = await tableRows(page);
    assert.equal(table.length, 8);

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Export CSV' }).click(),
    ]);
    assert.equal(download.suggestedFilename(), `activity-logs-${SHOP}.csv`);
    const saved = `${DOWNLOADS}/${download.suggestedFilename()}`;
    await download.saveAs(saved);
    const [header, ...rows] = parseCsv(await readFile(saved, 'utf8'));
    assert.deepEqual(header, ['Created', 'User', 'Service', 'Activity', 'Status', 'Description', 'Completed', 'Error']);
    assert.deepEqual(
      rows.map(([created, user, service, activity, status, description, completed]) =>
        ({ created, user, service, activity, status, description, completed })),
      table.map(({ created, user, service, activity, status, description, completed }) =>
        ({ created, user, service, activity, status, description, completed })),
    );
    assertNoProblems(page);
  } finally {
    await browser.close();
  }
});
