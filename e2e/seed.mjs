// Seeds the server run.sh started, through the publisher API only: one account of the
// partner "Brightside Digital", three sites, and a deterministic history on acme-shop with
// work by the owner, the partner's admin, a support agent and the system.
import {
  ACCOUNT, ADMIN, LAB, LIVE, OWNER, PARTNER, SHOP, SHOP_ACTIVITIES, SUPPORT, publisher,
} from './lib/env.mjs';

const HOUR = 3600 * 1000;

const KINDS = [
  {
    activity: 'push_staging_to_live', environment: 'live',
    ok: 'Successfully pushed staging to live',
    failed: 'Pushing staging to live failed; live was not changed',
    error: 'The database server went away while the tables were copied; live was left as it was',
  },
  {
    activity: 'create_backup', environment: 'live', service: 'backups',
    ok: 'Daily backup of live',
    failed: 'Daily backup of live failed',
    error: 'The backup store did not answer within 10 minutes; the next backup runs tonight',
  },
  {
    activity: 'reset_staging_from_template', environment: 'staging',
    ok: 'Reset staging from the template \u201cBakery Classic\u201d',
    failed: 'Resetting staging from the template \u201cBakery Classic\u201d failed',
    error: "The template's checksums did not match; staging was left as it was",
  },
  {
    activity: 'reset_staging_from_backup', environment: 'staging',
    ok: 'Created environment for staging from backup',
    failed: 'Creating staging from a backup failed',
    error: 'The backup could not be read; staging was left as it was',
  },
  {
    activity: 'create_staging', environment: 'staging',
    ok: 'Created environment for staging from live',
    failed: 'Creating staging from live failed',
    error: 'Copying the database failed: the staging database is full',
  },
];

const person = (p, kind = 'user') => ({ kind, email: p.email, name: p.name });

function history(now) {
  const out = [];
  for (let i = 1; i < SHOP_ACTIVITIES; i++) {
    const kind = KINDS[i % KINDS.length];
    const failed = i % 3 === 1;
    let actor;
    if (kind.activity === 'create_backup' && i % 3 !== 0) actor = { kind: 'system' };
    else if (i % 4 === 0) actor = person(SUPPORT, 'support');
    else if (i % 4 === 1) actor = person(ADMIN);
    else actor = person(OWNER);
    const said = failed ? kind.failed : kind.ok;
    const description = actor.kind === 'support'
      ? `${said} (on request, ticket #${4800 + i} by ${SUPPORT.name})`
      : said;
    const created = now - i * 3 * HOUR - (i * 7919 % 1800) * 1000;
    out.push({
      id: `shop-${String(i).padStart(3, '0')}`,
      account_id: ACCOUNT,
      site_id: SHOP,
      environment: kind.environment,
      service: kind.service ?? 'staging',
      activity: kind.activity,
      actor,
      description,
      status: failed ? 'failed' : 'completed',
      created_at: new Date(created).toISOString(),
      completed_at: new Date(created + 30_000 + (i * 7919 % 400) * 1000).toISOString(),
      ...(failed ? { error: kind.error } : {}),
    });
  }
  // A push that is still running.
  out.push({
    id: 'shop-000',
    account_id: ACCOUNT,
    site_id: SHOP,
    environment: 'live',
    service: 'staging',
    activity: 'push_staging_to_live',
    actor: person(OWNER),
    description: 'Pushing staging to live',
    created_at: new Date(now - 4 * 60 * 1000).toISOString(),
  });
  return out;
}

const now = Date.now();
await publisher('PUT', `/api/v1/accounts/${ACCOUNT}`, {
  name: 'Acme Bakery', partner: PARTNER, partner_colour: '#0f766e',
});
for (const [id, name, host] of [
  [SHOP, 'Acme Bakery Shop', 'shop.acmebakery.example'],
  [LIVE, 'Acme Bakery Events', 'events.acmebakery.example'],
  [LAB, 'Acme Bakery Lab', 'lab.acmebakery.example'],
]) {
  await publisher('PUT', `/api/v1/sites/${id}`, {
    account_id: ACCOUNT, name, live: { url: `https://${host}` }, staging: { url: `https://staging.${host}` },
  });
}
await publisher('POST', '/api/v1/activities/batch', { activities: history(now) });
await publisher('POST', '/api/v1/activities/batch', {
  activities: [1, 2, 3].map((i) => ({
    id: `live-${i}`, account_id: ACCOUNT, site_id: LIVE, environment: 'live', service: 'backups',
    activity: 'create_backup', actor: { kind: 'system' }, description: 'Daily backup of live',
    status: 'completed',
    created_at: new Date(now - i * 24 * HOUR).toISOString(),
    completed_at: new Date(now - i * 24 * HOUR + 42_000).toISOString(),
  })),
});
// What a hostile publisher might send: it must reach the page as text.
await publisher('POST', '/api/v1/activities', {
  id: 'lab-xss', account_id: ACCOUNT, site_id: LAB, environment: 'staging', service: 'staging',
  activity: 'reset_staging_from_template', actor: person(OWNER),
  description: '<img src=x onerror=alert(1)>', status: 'failed',
  error: '<script>alert("error")</script>',
  created_at: new Date(now - HOUR).toISOString(),
  completed_at: new Date(now - HOUR + 5_000).toISOString(),
});
console.log(`seeded ${SHOP_ACTIVITIES} activities on ${SHOP}, 3 on ${LIVE}, 1 on ${LAB}`);
