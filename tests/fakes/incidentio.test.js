'use strict';
// Self-test of the fake incident.io API: node --test tests/fakes/
const { test, before, after, beforeEach } = require('node:test');
const http = require('node:http');
const crypto = require('node:crypto');
const assert = require('node:assert/strict');
const { startFake } = require('./lib/harness');
const { loadSpec, validate } = require('./lib/schema');

const VIEWER = { key: 'test-viewer-key' };
const WRITER = { key: 'test-writer-key' };
const ALL_MODES = 'mode[one_of]=standard&mode[one_of]=retrospective&mode[one_of]=test&mode[one_of]=tutorial';

let f;
let ids; // name -> id, from the settings endpoints (as a client would)

async function get(p, opts = VIEWER) {
  return f.api('GET', p, opts);
}
async function refs(p) {
  const r = await get(p);
  assert.equal(r.status, 200, r.text);
  return r.json.incidents.map((i) => i.reference);
}
function assertError(r, status, type, field) {
  assert.equal(r.status, status, r.text);
  assert.equal(r.json.type, type);
  assert.equal(r.json.status, status);
  assert.equal(typeof r.json.request_id, 'string');
  assert.ok(Array.isArray(r.json.errors) && r.json.errors.length > 0);
  if (field) assert.equal(r.json.errors[0].source && r.json.errors[0].source.field, field, r.text);
}

before(async () => {
  f = await startFake('incidentio');
  const sev = (await get('/v1/severities')).json.severities;
  const st = (await get('/v1/incident_statuses')).json.incident_statuses;
  const cf = (await get('/v2/custom_fields')).json.custom_fields;
  const roles = (await get('/v2/incident_roles')).json.incident_roles;
  const types = (await get('/v1/incident_types')).json.incident_types;
  ids = {};
  for (const x of sev) ids[`sev:${x.name}`] = x.id;
  for (const x of st) ids[`status:${x.name}`] = x.id;
  for (const x of cf) ids[`cf:${x.name}`] = x.id;
  for (const x of roles) ids[`role:${x.name}`] = x.id;
  for (const x of types) ids[`type:${x.name}`] = x.id;
});
after(() => f.stop());
beforeEach(() => f.control('POST', '/_fake/reset'));

test('starts fast and answers identity for each key', async () => {
  assert.ok(f.startupMs < 2000, `startup took ${f.startupMs} ms`);
  for (const [key, roles] of [['test-viewer-key', ['viewer']], ['test-writer-key', ['viewer', 'incident_creator', 'incident_editor']]]) {
    const r = await f.api('GET', '/v1/identity', { key });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.identity.roles, roles);
    assert.ok(r.json.identity.dashboard_url.startsWith('https://app.incident.io/'));
  }
  const r = await f.api('GET', '/v1/identity', { key: 'test-admin-key' });
  assert.ok(r.json.identity.roles.length > 3);
});

test('401 bodies: missing and invalid key', async () => {
  let r = await f.api('GET', '/v2/incidents');
  assertError(r, 401, 'authentication_error');
  assert.equal(r.json.errors[0].code, 'missing_authorization_material');
  r = await f.api('GET', '/v2/incidents', { key: 'nope' });
  assertError(r, 401, 'authentication_error');
  assert.equal(r.json.errors[0].code, 'invalid_authorization');
  r = await f.api('GET', '/v2/incidents', { headers: { Authorization: 'Token test-viewer-key' } });
  assert.equal(r.json.errors[0].code, 'missing_authorization_material');
});

test('403 for a viewer creating timeline items, 404 bodies', async () => {
  const inc = (await get('/v2/incidents/2')).json.incident;
  let r = await f.api('POST', '/v2/incident_timeline_items', Object.assign({ body: { idempotency_key: 'k', incident_id: inc.id, title: 't', timestamp: '2024-01-01T00:00:00Z' } }, VIEWER));
  assertError(r, 403, 'resource_forbidden');
  r = await get('/v2/incidents/9999');
  assertError(r, 404, 'not_found');
  r = await get('/v2/incidents/INC-2');
  assertError(r, 404, 'not_found');
  r = await get('/v2/nothing_here');
  assertError(r, 404, 'not_found');
});

test('incident by full id or by the number of its reference; shapes per the spec', async () => {
  const a = await get('/v2/incidents/2');
  assert.equal(a.status, 200);
  const inc = a.json.incident;
  assert.equal(inc.reference, 'INC-2');
  assert.equal(inc.incident_status.category, 'live');
  assert.equal(inc.severity.name, 'Critical');
  assert.match(inc.summary, /Service: payments-api/);
  assert.match(inc.summary, /PaymentGatewayTimeout/);
  const b = await get(`/v2/incidents/${inc.id}`);
  assert.deepEqual(b.json, a.json);
  const spec = loadSpec();
  if (spec) {
    const all = await get(`/v2/incidents?page_size=250&${ALL_MODES}`);
    assert.deepEqual(validate(spec, all.json, 'IncidentsListResultV2'), []);
    const upd = await get(`/v2/incident_updates?incident_id=${inc.id}`);
    assert.deepEqual(validate(spec, upd.json, 'IncidentUpdatesListResultV2'), []);
    const i46 = (await get('/v2/incidents/46')).json.incident;
    const ct = (await get('/v3/catalog_types')).json.catalog_types[0].id;
    const sweep = [
      ['/v1/identity', 'UtilitiesIdentityResultV1'], ['/v1/severities', 'SeveritiesListResultV1'],
      ['/v1/incident_statuses', 'IncidentStatusesListResultV1'], ['/v1/incident_types', 'IncidentTypesListResultV1'],
      ['/v2/custom_fields', 'CustomFieldsListResultV2'], [`/v2/custom_fields/${ids['cf:Root cause']}`, 'CustomFieldsShowResultV2'],
      ['/v2/incident_roles', 'IncidentRolesListResultV2'], ['/v2/incident_timestamps', 'IncidentTimestampsListResultV2'],
      ['/v2/incident_updates?page_size=250', 'IncidentUpdatesListResultV2'], ['/v2/follow_ups', 'FollowUpsListResultV2'],
      [`/v1/incident_relationships?incident_id=${i46.id}`, 'IncidentRelationshipsListResultV1'], ['/v2/users', 'UsersListResultV2'],
      ['/v3/catalog_types', 'CatalogListTypesResultV3'], [`/v3/catalog_entries?page_size=25&catalog_type_id=${ct}`, 'CatalogListEntriesResultV3'],
      [`/v1/severities/${ids['sev:Low']}`, 'SeveritiesShowResultV1'],
    ];
    for (const [p, schema] of sweep) {
      const r = await get(p);
      assert.equal(r.status, 200, `${p}: ${r.text}`);
      assert.deepEqual(validate(spec, r.json, schema), [], p);
    }
  }
});

test('default list: newest first, standard and retrospective only', async () => {
  const r = await get('/v2/incidents?page_size=250');
  const list = r.json.incidents;
  assert.equal(r.json.pagination_meta.total_record_count, list.length);
  assert.equal(r.json.pagination_meta.after, undefined);
  assert.equal(r.json.pagination_meta.page_size, 250);
  const got = new Set(list.map((i) => i.reference));
  for (const hidden of ['INC-1', 'INC-21', 'INC-40']) assert.ok(!got.has(hidden), `${hidden} is test/tutorial`);
  assert.equal(list.length, 57);
  for (let i = 1; i < list.length; i++) assert.ok(list[i - 1].created_at >= list[i].created_at);
  const oldest = await refs('/v2/incidents?page_size=250&sort_by=created_at_oldest_first');
  assert.deepEqual(oldest, list.map((i) => i.reference).reverse());
  assert.deepEqual(await refs('/v2/incidents?mode[one_of]=test'), ['INC-40', 'INC-21']);
  assert.deepEqual(await refs('/v2/incidents?mode[one_of]=tutorial'), ['INC-1']);
  assert.equal((await refs(`/v2/incidents?page_size=250&${ALL_MODES}`)).length, 60);
});

test('filters: status category, status, severity, dates, type, custom fields, roles', async () => {
  assert.deepEqual(await refs('/v2/incidents?status_category[one_of]=live'), ['INC-2', 'INC-58', 'INC-56']);
  // encoded brackets and literal brackets are the same; repeated keys add values
  assert.deepEqual(await refs('/v2/incidents?status_category%5Bone_of%5D=live&status_category%5Bone_of%5D=triage'), ['INC-60', 'INC-2', 'INC-58', 'INC-56']);
  const notClosed = await refs('/v2/incidents?page_size=250&status_category[not_in]=closed&status_category[not_in]=declined&status_category[not_in]=canceled&status_category[not_in]=merged');
  assert.deepEqual(notClosed.slice().sort(), ['INC-2', 'INC-46', 'INC-53', 'INC-54', 'INC-56', 'INC-57', 'INC-58', 'INC-60'].sort());
  assert.deepEqual(await refs(`/v2/incidents?status[one_of]=${ids['status:Paused']}`), ['INC-53']);
  const crit = await refs(`/v2/incidents?page_size=250&severity[one_of]=${ids['sev:Critical']}`);
  assert.deepEqual(crit, ['INC-2', 'INC-36', 'INC-27', 'INC-14', 'INC-9']);
  const high = await get(`/v2/incidents?page_size=250&severity[gte]=${ids['sev:High']}`);
  assert.ok(high.json.incidents.every((i) => i.severity.rank >= 3));
  assert.ok(high.json.incidents.length > crit.length);
  const low = await get(`/v2/incidents?page_size=250&severity[lte]=${ids['sev:Low']}`);
  assert.ok(low.json.incidents.length > 0 && low.json.incidents.every((i) => i.severity.rank === 1));
  // dates relative to now: the last 7 days always have data
  const weekAgo = new Date(Date.now() - 7 * 86400000).toISOString().slice(0, 10);
  const recent = await refs(`/v2/incidents?page_size=250&created_at[gte]=${weekAgo}`);
  for (const r of ['INC-2', 'INC-54', 'INC-55', 'INC-56', 'INC-57', 'INC-58', 'INC-59', 'INC-60']) assert.ok(recent.includes(r), r);
  const old = await refs(`/v2/incidents?page_size=250&created_at[lte]=${weekAgo}`);
  assert.ok(!old.includes('INC-2') && old.includes('INC-3'));
  const today = new Date().toISOString().slice(0, 10);
  const range = await refs(`/v2/incidents?page_size=250&created_at[date_range]=${weekAgo}~${today}`);
  assert.deepEqual(range.slice().sort(), recent.slice().sort());
  const upd = await refs(`/v2/incidents?page_size=250&updated_at[gte]=${new Date(Date.now() - 3600000).toISOString()}`);
  assert.ok(upd.includes('INC-2'));
  const sec = await refs(`/v2/incidents?incident_type[one_of]=${ids['type:Security Incident']}`);
  assert.deepEqual(sec, ['INC-25']);
  // custom field option / catalog entry
  const fields = (await get('/v2/incidents/2')).json.incident.custom_field_entries;
  const svcField = fields.find((e) => e.custom_field.name === 'Affected services');
  const payOpt = svcField.custom_field.options.find((o) => o.value === 'payments-api').id;
  const pay = await refs(`/v2/incidents?page_size=250&custom_field[${svcField.custom_field.id}][one_of]=${payOpt}`);
  for (const r of ['INC-2', 'INC-9', 'INC-27', 'INC-46']) assert.ok(pay.includes(r), r);
  assert.ok(!pay.includes('INC-40'), 'test incidents stay hidden');
  const catField = fields.find((e) => e.custom_field.name === 'Affected services (catalog)');
  const payEntry = catField.values[0].value_catalog_entry.id;
  const payCat = await refs(`/v2/incidents?page_size=250&custom_field[${catField.custom_field.id}][one_of]=${payEntry}`);
  for (const r of ['INC-2', 'INC-9', 'INC-27', 'INC-46']) assert.ok(payCat.includes(r), r);
  // roles: no lead yet on INC-60
  assert.deepEqual(await refs(`/v2/incidents?incident_role[${ids['role:Incident Lead']}][is_blank]=true`), ['INC-60']);
  // filter_mode any = OR
  const any = await refs(`/v2/incidents?filter_mode=any&status_category[one_of]=live&status_category[one_of]=paused&severity[one_of]=${ids['sev:Critical']}`);
  assert.deepEqual(any.slice().sort(), ['INC-2', 'INC-58', 'INC-56', 'INC-53', 'INC-36', 'INC-27', 'INC-14', 'INC-9'].sort());
  const all = await refs(`/v2/incidents?status_category[one_of]=live&severity[one_of]=${ids['sev:Critical']}`);
  assert.deepEqual(all, ['INC-2']);
});

test('422 validation errors name the parameter', async () => {
  const cases = [
    ['/v2/incidents?status=live', 'status'],
    ['/v2/incidents?status_category=live', 'status_category'],
    [`/v2/incidents?severity_id=${ids['sev:Critical']}`, 'severity_id'],
    [`/v2/incidents?severity=${ids['sev:Critical']}`, 'severity'],
    ['/v2/incidents?status_category[is]=live', 'status_category[is]'],
    ['/v2/incidents?status_category[one_of]=active', 'status_category[one_of]'],
    ['/v2/incidents?status[one_of]=01NOTASTATUS', 'status[one_of]'],
    ['/v2/incidents?severity[one_of]=01NOTASEVERITY', 'severity[one_of]'],
    ['/v2/incidents?created_at[gte]=2024-13-01', 'created_at[gte]'],
    ['/v2/incidents?created_at[gte]=yesterday', 'created_at[gte]'],
    ['/v2/incidents?created_at[date_range]=2024-01-01', 'created_at[date_range]'],
    ['/v2/incidents?page_size=251', 'page_size'],
    ['/v2/incidents?page_size=0', 'page_size'],
    ['/v2/incidents?page_size=ten', 'page_size'],
    ['/v2/incidents?sort_by=newest', 'sort_by'],
    ['/v2/incidents?limit=10', 'limit'],
    ['/v2/incidents?after=01DOESNOTEXIST', 'after'],
    ['/v2/incidents?mode[one_of]=stream', 'mode[one_of]'],
    [`/v2/incidents?incident_role[${ids['role:Incident Lead']}][is_set]=true`, `incident_role[${ids['role:Incident Lead']}][is_set]`],
    ['/v2/incident_updates?page_size=300', 'page_size'],
    ['/v2/incident_timeline_items', 'incident_id'],
  ];
  for (const [p, field] of cases) assertError(await get(p), 422, 'validation_error', field);
});

test('pagination follows the after cursor across pages', async () => {
  const seen = [];
  let after;
  let pages = 0;
  let total;
  do {
    const r = await get(`/v2/incidents?page_size=10${after ? `&after=${after}` : ''}`);
    assert.equal(r.status, 200);
    pages++;
    total = r.json.pagination_meta.total_record_count;
    seen.push(...r.json.incidents.map((i) => i.id));
    after = r.json.pagination_meta.after;
    if (after) assert.equal(after, r.json.incidents[r.json.incidents.length - 1].id);
  } while (after);
  assert.equal(pages, 6);
  assert.equal(seen.length, total);
  assert.equal(new Set(seen).size, seen.length);
  // default page size 25
  const d = await get('/v2/incidents');
  assert.equal(d.json.incidents.length, 25);
  assert.equal(d.json.pagination_meta.page_size, 25);
  // the log records decoded query values, repeated keys as arrays
  await get('/v2/incidents?status_category%5Bone_of%5D=live&status_category[one_of]=triage&page_size=5');
  const log = await f.control('GET', '/_fake/requests?path=/v2/incidents');
  const last = log.requests[log.requests.length - 1];
  assert.deepEqual(last.query, { 'status_category[one_of]': ['live', 'triage'], page_size: '5' });
  assert.equal(last.key, 'test-viewer');
  assert.equal(last.status, 200);
});

test('incident updates, timeline items (oldest first) and relationships', async () => {
  const inc = (await get('/v2/incidents/2')).json.incident;
  const u = await get(`/v2/incident_updates?incident_id=${inc.id}`);
  assert.equal(u.status, 200);
  const ups = u.json.incident_updates;
  assert.equal(ups.length, 3);
  assert.ok(ups[0].created_at > ups[2].created_at, 'updates newest first');
  assert.equal(ups[0].new_severity.name, 'Critical');
  const p1 = await get(`/v2/incident_timeline_items?incident_id=${inc.id}&page_size=3`);
  assert.equal(p1.json.incident_timeline_items.length, 3);
  assert.ok(p1.json.pagination_meta.after);
  const p2 = await get(`/v2/incident_timeline_items?incident_id=${inc.id}&page_size=250&after=${p1.json.pagination_meta.after}`);
  const items = p1.json.incident_timeline_items.concat(p2.json.incident_timeline_items);
  for (let i = 1; i < items.length; i++) assert.ok(items[i - 1].timestamp <= items[i].timestamp, 'oldest first');
  assert.equal(p2.json.pagination_meta.after, undefined);
  const i46 = (await get('/v2/incidents/46')).json.incident;
  const rel = await get(`/v1/incident_relationships?incident_id=${i46.id}`);
  assert.deepEqual(rel.json.incident_relationships.map((x) => x.incident.external_id).sort(), [27, 47]);
  const fu = await get(`/v2/follow_ups?incident_id=${i46.id}`);
  assert.ok(fu.json.follow_ups.length >= 1);
  const merged = (await get(`/v2/incident_updates?incident_id=${(await get('/v2/incidents/47')).json.incident.id}`)).json.incident_updates;
  assert.equal(merged[0].merged_into_incident_id, i46.id);
});

test('timeline items: idempotent create with the writer key, switchable off', async () => {
  const inc = (await get('/v2/incidents/2')).json.incident;
  const body = { idempotency_key: 'fox-finding-1', incident_id: inc.id, title: 'IncidentFox: likely cause', timestamp: '2024-06-01T10:00:00Z', description: 'Similar to INC-46' };
  const a = await f.api('POST', '/v2/incident_timeline_items', Object.assign({ body }, WRITER));
  assert.equal(a.status, 201, a.text);
  const item = a.json.incident_timeline_item;
  assert.equal(item.title, body.title);
  assert.equal(item.creator.api_key.name, 'test-writer');
  const b = await f.api('POST', '/v2/incident_timeline_items', Object.assign({ body: Object.assign({}, body, { title: 'changed' }) }, WRITER));
  assert.equal(b.status, 201);
  assert.deepEqual(b.json.incident_timeline_item, item);
  const list = (await get(`/v2/incident_timeline_items?incident_id=${inc.id}&page_size=250`)).json.incident_timeline_items;
  assert.equal(list.filter((x) => x.id === item.id).length, 1);
  for (const [missing, field] of [['title', 'title'], ['timestamp', 'timestamp'], ['idempotency_key', 'idempotency_key'], ['incident_id', 'incident_id']]) {
    const bad = Object.assign({}, body, { idempotency_key: `k-${missing}` });
    delete bad[missing];
    assertError(await f.api('POST', '/v2/incident_timeline_items', Object.assign({ body: bad }, WRITER)), 422, 'validation_error', field);
  }
  assertError(await f.api('POST', '/v2/incident_timeline_items', Object.assign({ body: Object.assign({}, body, { idempotency_key: 'k2', timestamp: '2024-06-01' }) }, WRITER)), 422, 'validation_error', 'timestamp');
  assertError(await f.api('POST', '/v2/incident_timeline_items', Object.assign({ body: '{not json' }, WRITER)), 400, 'invalid_request_error');
  await f.control('POST', '/_fake/config', { timeline_items: false });
  assertError(await get(`/v2/incident_timeline_items?incident_id=${inc.id}`), 404, 'not_found');
  assertError(await f.api('POST', '/v2/incident_timeline_items', Object.assign({ body }, WRITER)), 404, 'not_found');
});

test('rate limit: 429 with Retry-After seconds or HTTP date, headers, counters', async () => {
  await f.control('POST', '/_fake/config', { rate_capacity: 3, rate_refill_per_sec: 0.5 });
  for (let i = 0; i < 3; i++) {
    const r = await get('/v1/severities');
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-ratelimit-remaining'], String(2 - i));
    assert.match(r.headers['x-ratelimit-limit'], /^3, 3;window=6$/);
    assert.ok(Number(r.headers['x-ratelimit-reset']) >= Math.floor(Date.now() / 1000));
  }
  let r = await get('/v1/severities');
  assertError(r, 429, 'too_many_requests');
  assert.match(r.headers['retry-after'], /^\d+$/);
  assert.ok(Number(r.headers['retry-after']) >= 1);
  assert.equal(r.json.rate_limit.name, 'test-viewer');
  assert.equal(r.json.rate_limit.limit, 3);
  assert.equal(r.json.rate_limit.remaining, 0);
  assert.match(r.json.rate_limit.retry_after, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
  // other keys have their own bucket
  assert.equal((await f.api('GET', '/v1/severities', WRITER)).status, 200);
  await f.control('POST', '/_fake/config', { retry_after_format: 'http-date' });
  r = await get('/v1/severities');
  assert.equal(r.status, 429);
  assert.match(r.headers['retry-after'], /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
  assert.ok(Date.parse(r.headers['retry-after']) > Date.now() - 1000);
  assert.match(r.json.rate_limit.retry_after, /GMT$/);
  const stats = await f.control('GET', '/_fake/stats');
  assert.equal(stats.rate_limited, 2);
  assert.equal(stats.keys['test-viewer'].rate_limited, 2);
  assert.ok(stats.keys['test-viewer'].max_rate_1s >= 5);
  assert.equal(stats.by_status['429'], 2);
});

test('faults: reset, malformed JSON, delay, status, truncate, huge body, drip', async () => {
  await f.control('POST', '/_fake/faults', [
    { path_prefix: '/v1/severities', times: 1, reset: true },
    { path_prefix: '/v1/incident_statuses', times: 1, malformed_json: true },
    { path_prefix: '/v1/incident_types', times: 1, delay_ms: 300 },
    { path_prefix: '/v2/custom_fields', times: 2, status: 503 },
    { path_prefix: '/v2/incident_roles', times: 1, truncate: true },
    { path_prefix: '/v2/incident_timestamps', times: 1, body_bytes: 2000000 },
    { path_prefix: '/v2/follow_ups', times: 1, drip: true, drip_bytes: 1000, drip_ms: 30 },
    { path: '/v2/incidents', method: 'GET', times: 1, status: 429, retry_after: 7 },
  ]);
  await assert.rejects(get('/v1/severities'));
  assert.equal((await get('/v1/severities')).status, 200, 'times: 1');
  const m = await get('/v1/incident_statuses');
  assert.equal(m.status, 200);
  assert.equal(m.json, undefined, 'body is not JSON');
  const t0 = Date.now();
  assert.equal((await get('/v1/incident_types')).status, 200);
  assert.ok(Date.now() - t0 >= 290);
  assertError(await get('/v2/custom_fields'), 503, 'api_error');
  assertError(await get('/v2/custom_fields'), 503, 'api_error');
  assert.equal((await get('/v2/custom_fields')).status, 200);
  await assert.rejects(get('/v2/incident_roles'));
  const big = await get('/v2/incident_timestamps');
  assert.ok(big.text.length >= 1999000 && big.json.incident_timestamps.length === 4);
  const t1 = Date.now();
  const slow = await get('/v2/follow_ups');
  assert.ok(slow.json.follow_ups.length > 0 && Date.now() - t1 >= 100);
  const rl = await get('/v2/incidents');
  assert.equal(rl.status, 429);
  assert.equal(rl.headers['retry-after'], '7');
  const log = await f.control('GET', '/_fake/requests?path=/v1/severities');
  assert.equal(log.requests[0].status, 'reset');
  const log2 = await f.control('GET', '/_fake/requests?path=/v2/incident_roles');
  assert.equal(log2.requests[0].status, 'truncated');
  const faults = await f.control('GET', '/_fake/faults');
  assert.ok(faults.faults.every((x) => x.remaining === 0));
  // an unknown key in a rule is refused so typos in tests surface
  const bad = await f.request('POST', '/_fake/faults', { body: [{ path_prefx: '/v2' }] });
  assert.equal(bad.status, 400);
});

test('latency and probability faults', async () => {
  await f.control('POST', '/_fake/config', { latency_ms: 120 });
  const t0 = Date.now();
  await get('/v1/severities');
  assert.ok(Date.now() - t0 >= 110);
  await f.control('POST', '/_fake/config', { latency_ms: 0 });
  await f.control('POST', '/_fake/faults', [{ path_prefix: '/v1/severities', probability: 0.5, status: 500 }]);
  let fails = 0;
  for (let i = 0; i < 40; i++) if ((await get('/v1/severities')).status === 500) fails++;
  assert.ok(fails > 5 && fails < 35, `fails=${fails}`);
});

test('control API: create incidents and updates at runtime, reset restores the seed', async () => {
  const c = await f.control('POST', '/_fake/incidents', { name: 'Elevated errors on search', severity: 'High', status: 'Investigating', services: ['search'], lead: 'kenji', summary: 'Service: search\nError: boom' });
  assert.equal(c.incident.reference, 'INC-61');
  const got = await get('/v2/incidents/61');
  assert.equal(got.json.incident.id, c.incident.id);
  assert.equal(got.json.incident.severity.name, 'High');
  const spec = loadSpec();
  if (spec) assert.deepEqual(validate(spec, got.json, 'IncidentsShowResultV2'), []);
  const u = await f.control('POST', `/_fake/incidents/${c.incident.id}/updates`, { status: 'Monitoring', severity: 'Medium', message: 'Rolled back search v1.2.3; errors gone.' });
  assert.equal(u.incident.incident_status.name, 'Monitoring');
  const ups = (await get(`/v2/incident_updates?incident_id=${c.incident.id}`)).json.incident_updates;
  assert.equal(ups.length, 1);
  assert.equal(ups[0].new_severity.name, 'Medium');
  await f.control('POST', `/_fake/incidents/61/updates`, { status: 'Documenting', message: 'Resolved.' });
  const resolved = (await get('/v2/incidents/61')).json.incident;
  const ts = resolved.incident_timestamp_values.find((x) => x.incident_timestamp.name === 'Resolved at');
  assert.ok(ts.value && ts.value.value);
  assert.deepEqual(await refs('/v2/incidents?status_category[one_of]=live'), ['INC-2', 'INC-58', 'INC-56']);
  await f.control('POST', '/_fake/reset');
  assertError(await get('/v2/incidents/61'), 404, 'not_found');
  const requests = await f.control('GET', '/_fake/requests');
  assert.equal(requests.requests.length, 1);
});

test('demo seed', async () => {
  await f.control('POST', '/_fake/reset', { seed: 'demo' });
  const live = (await get('/v2/incidents?status_category[one_of]=live')).json.incidents;
  assert.equal(live.length, 1);
  assert.equal(live[0].name, 'Elevated 5xx on payments-api checkout');
  const age = Date.now() - Date.parse(live[0].created_at);
  assert.ok(age > 19 * 60000 && age < 25 * 60000);
  const past = (await get('/v2/incidents/1')).json.incident;
  assert.equal(past.name, 'payments-api 504s after deploy');
  assert.ok(past.postmortem_document_url);
  const ups = (await get(`/v2/incident_updates?incident_id=${past.id}`)).json.incident_updates;
  assert.ok(ups.some((x) => /Rolled back payments-api/.test(x.message || '')));
});

test('webhooks: Standard Webhooks signature over the raw body', async () => {
  const got = [];
  const receiver = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      got.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.end('ok');
    });
  });
  await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${receiver.address().port}/hook`;
  const secret = 'whsec_' + Buffer.from('a-test-secret-of-some-length').toString('base64');
  try {
    await f.control('POST', '/_fake/config', { webhook_url: url, webhook_secret: secret });
    const c = await f.control('POST', '/_fake/incidents', { name: 'Webhook test', severity: 'Low', services: ['search'] });
    await f.control('POST', `/_fake/incidents/${c.incident.id}/updates`, { status: 'Fixing', message: 'on it' });
    for (let i = 0; i < 100 && got.length < 3; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(got.map((g) => JSON.parse(g.body).event_type), ['public_incident.incident_created_v2', 'public_incident.incident_updated_v2', 'public_incident.incident_status_updated_v2']);
    for (const g of got) {
      const key = Buffer.from(secret.slice(6), 'base64');
      const want = crypto.createHmac('sha256', key).update(`${g.headers['webhook-id']}.${g.headers['webhook-timestamp']}.${g.body}`).digest('base64');
      assert.equal(g.headers['webhook-signature'], `v1,${want}`);
      assert.ok(Math.abs(Number(g.headers['webhook-timestamp']) - Date.now() / 1000) < 60);
    }
    const st = JSON.parse(got[2].body)['public_incident.incident_status_updated_v2'];
    assert.equal(st.previous_status.name, 'Investigating');
    assert.equal(st.new_status.name, 'Fixing');
    const bad = await f.control('POST', '/_fake/webhooks/send', { incident_id: '2', bad_signature: true });
    assert.equal(bad.delivery.status, 200);
  } finally {
    receiver.close();
  }
});
