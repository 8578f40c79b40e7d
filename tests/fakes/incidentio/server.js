#!/usr/bin/env node
'use strict';
// Fake incident.io public API for fox's tests. Follows /work/shared/reference/incidentio-api.md
// and the OpenAPI subset beside it; see tests/fakes/README.md for the CLI, the control API
// (/_fake/...) and the seed data. Node.js standard library only.

const http = require('node:http');
const https = require('node:https');
const crypto = require('node:crypto');
const kit = require('../lib/fakekit');
const S = require('./settings');
const seeds = require('./seed');

const { ulidFor, rfc3339, parseDateOrTime } = kit;
const DAY = 86400000;

const USAGE = `usage: node tests/fakes/incidentio/server.js [options]
  --port N                 port to listen on (0 = any free port; default 0)
  --host H                 address to bind (default 127.0.0.1)
  --port-file PATH         write the port there once listening
  --seed NAME              default | demo | empty | large:N (default: default)
  --now RFC3339            pretend the server started at this time (seed timestamps)
  --api-key KEY[:r1,r2]    extra API key with roles (default roles: viewer); repeatable
  --no-default-keys        only the --api-key keys
  --rate-capacity N        token bucket size per key (default 1200)
  --rate-refill N          tokens per second (default 20)
  --no-rate-limit          disable the rate limiter
  --retry-after-format F   seconds | http-date (default seconds)
  --legacy-429             429 type "rate_limit_reached" (older servers)
  --latency-ms N           delay every API answer by N ms
  --no-timeline-items      /v2/incident_timeline_items answers 404 (older servers)
  --updates-order O        newest_first | oldest_first for incident updates (default newest_first)
  --webhook-url URL        deliver signed webhooks for /_fake/ incident changes there
  --webhook-secret S       whsec_... (default whsec_Zm94LXRlc3Qtd2ViaG9vay1zZWNyZXQ=)
  --fault-seed N           seed of the fault-probability PRNG (default 1)
  --parent-pid PID         exit when that process is gone (checked every second)
`;

const args = kit.parseArgs(process.argv.slice(2), {
  ...kit.LISTEN_OPTIONS,
  seed: { type: 'string', default: 'default' },
  now: { type: 'string' },
  api_key: { type: 'list' },
  default_keys: { type: 'bool', default: true },
  rate_capacity: { type: 'number', default: 1200 },
  rate_refill: { type: 'number', default: 20 },
  rate_limit: { type: 'bool', default: true },
  retry_after_format: { type: 'string', default: 'seconds' },
  legacy_429: { type: 'bool', default: false },
  timeline_items: { type: 'bool', default: true },
  updates_order: { type: 'string', default: 'newest_first' },
  webhook_url: { type: 'string' },
  webhook_secret: { type: 'string', default: 'whsec_Zm94LXRlc3Qtd2ViaG9vay1zZWNyZXQ=' },
  ...kit.ANSWER_OPTIONS,
}, USAGE);

const START = args.now ? Date.parse(args.now) : Date.now();
if (!Number.isFinite(START)) {
  process.stderr.write(`--now: not a date: ${args.now}\n`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------
// API keys and permissions

const ROLE_SCOPES = {
  viewer: ['*.view'],
  incident_creator: ['incidents.create'],
  incident_editor: ['incidents.edit', 'incident_timeline_items.create'],
  incident_memberships_editor: ['incident_memberships.edit'],
  manage_settings: ['settings.edit'],
  catalog_editor: ['catalog.edit'],
  global_access: ['*'],
};
const DEFAULT_KEYS = [
  { token: 'test-viewer-key', name: 'test-viewer', roles: ['viewer'] },
  { token: 'test-writer-key', name: 'test-writer', roles: ['viewer', 'incident_creator', 'incident_editor'] },
  { token: 'test-admin-key', name: 'test-admin', roles: ['viewer', 'incident_creator', 'incident_editor', 'incident_memberships_editor', 'manage_settings', 'catalog_editor', 'global_access'] },
];
const KEYS = new Map();
if (args.default_keys) for (const k of DEFAULT_KEYS) KEYS.set(k.token, k);
for (const spec of args.api_key) {
  const i = spec.indexOf(':');
  const token = i >= 0 ? spec.slice(0, i) : spec;
  const roles = i >= 0 ? spec.slice(i + 1).split(',').filter(Boolean) : ['viewer'];
  KEYS.set(token, { token, name: token, roles });
}
for (const k of KEYS.values()) k.id = ulidFor(`api_key:${k.token}`);

function hasScope(key, scope) {
  if (!scope) return true;
  for (const r of key.roles) {
    for (const s of ROLE_SCOPES[r] || []) {
      if (s === '*' || s === scope || (s === '*.view' && scope.endsWith('.view'))) return true;
    }
  }
  return false;
}

function bearer(headers) {
  const h = headers.authorization;
  if (!h) return null;
  const m = /^\s*bearer\s+(\S+)\s*$/i.exec(h);
  return m ? m[1] : null;
}

// ---------------------------------------------------------------------------------------
// Configuration (CLI defaults, changed by POST /_fake/config, restored by /_fake/reset)

function defaultConfig() {
  return {
    rate_limit: args.rate_limit,
    rate_capacity: args.rate_capacity,
    rate_refill_per_sec: args.rate_refill,
    retry_after_format: args.retry_after_format,
    rate_limit_type: args.legacy_429 ? 'rate_limit_reached' : 'too_many_requests',
    latency_ms: args.latency_ms,
    timeline_items: args.timeline_items,
    updates_order: args.updates_order,
    webhook_url: args.webhook_url || null,
    webhook_secret: args.webhook_secret,
  };
}
let config = defaultConfig();

const CONFIG_TYPES = {
  rate_limit: 'bool', timeline_items: 'bool', rate_capacity: 'positive', rate_refill_per_sec: 'positive',
  latency_ms: 'ms', retry_after_format: ['seconds', 'http-date'],
  rate_limit_type: ['too_many_requests', 'rate_limit_reached'], updates_order: ['newest_first', 'oldest_first'],
  webhook_url: 'any', webhook_secret: 'any',
};

function setConfig(body) {
  const c = Object.assign({}, config);
  const b = Object.assign({}, body);
  if (b.rate_limit && typeof b.rate_limit === 'object') {
    const r = b.rate_limit;
    delete b.rate_limit;
    if (r.capacity !== undefined) b.rate_capacity = r.capacity;
    if (r.refill_per_sec !== undefined) b.rate_refill_per_sec = r.refill_per_sec;
    if (r.enabled !== undefined) b.rate_limit = r.enabled;
  }
  const err = kit.applyConfig(c, b, CONFIG_TYPES);
  if (err) return err;
  if (c.rate_capacity !== config.rate_capacity || c.rate_refill_per_sec !== config.rate_refill_per_sec) buckets.clear();
  config = c;
  return null;
}

if (!['seconds', 'http-date'].includes(config.retry_after_format)) {
  process.stderr.write('--retry-after-format: seconds | http-date\n');
  process.exit(2);
}

// ---------------------------------------------------------------------------------------
// Rate limiting: a token bucket per API key.

const buckets = new Map();
const limitedCount = new Map();

function takeToken(key, now) {
  const cap = config.rate_capacity;
  const refill = config.rate_refill_per_sec;
  let b = buckets.get(key.token);
  if (!b) {
    b = { tokens: cap, last: now };
    buckets.set(key.token, b);
  }
  b.tokens = Math.min(cap, b.tokens + ((now - b.last) / 1000) * refill);
  b.last = now;
  const ok = !config.rate_limit || b.tokens >= 1;
  if (ok && config.rate_limit) b.tokens -= 1;
  const remaining = config.rate_limit ? Math.floor(b.tokens) : cap;
  const retryAfter = ok ? 0 : Math.max(1, Math.ceil((1 - b.tokens) / refill));
  const headers = {
    'X-RateLimit-Limit': `${cap}, ${cap};window=${Math.round(cap / refill)}`,
    'X-RateLimit-Remaining': String(remaining),
    'X-RateLimit-Used': String(cap - remaining),
    'X-RateLimit-Reset': String(Math.ceil(now / 1000 + (cap - b.tokens) / refill)),
  };
  return { ok, headers, retryAfter, remaining, cap };
}

function rateLimitedResponse(key, rl, now, retryAfterOverride) {
  const secs = retryAfterOverride !== undefined ? retryAfterOverride : rl.retryAfter;
  const at = now + (typeof secs === 'number' ? secs : 1) * 1000;
  const httpDate = config.retry_after_format === 'http-date';
  const headers = Object.assign({}, rl.headers, {
    'Retry-After': typeof secs === 'string' ? secs : httpDate ? new Date(at).toUTCString() : String(secs),
  });
  const type = config.rate_limit_type;
  return {
    status: 429,
    headers,
    body: {
      type,
      status: 429,
      request_id: kit.requestId(),
      rate_limit: {
        name: key ? key.name : 'api_key_name',
        limit: rl.cap,
        remaining: 0,
        retry_after: httpDate ? new Date(at).toUTCString() : new Date(at).toISOString().replace(/\.\d{3}Z$/, 'Z'),
      },
      errors: [{ code: type, message: 'Too many requests hit the API too quickly. We recommend an exponential backoff of your requests.' }],
    },
  };
}

// ---------------------------------------------------------------------------------------
// Errors

const ERROR_TYPES = { 400: 'invalid_request_error', 401: 'authentication_error', 403: 'resource_forbidden', 404: 'not_found', 405: 'invalid_request_error', 409: 'conflict', 422: 'validation_error', 429: 'too_many_requests', 500: 'api_error', 502: 'api_error', 503: 'api_error', 504: 'api_error' };

function apiError(status, errors, headers) {
  if (!Array.isArray(errors)) errors = [errors];
  return {
    status,
    headers: headers || {},
    body: { type: ERROR_TYPES[status] || (status >= 500 ? 'api_error' : 'invalid_request_error'), status, request_id: kit.requestId(), errors },
  };
}
function notFound(msg) {
  return apiError(404, { code: 'not_found', message: msg || 'The requested resource could not be found.' });
}
class Invalid extends Error {
  constructor(field, message, code) {
    super(message);
    this.field = field;
    this.code = code || 'invalid_value';
  }
}
function invalidResp(e) {
  const err = { code: e.code, message: e.message };
  if (e.field) err.source = { field: e.field };
  return apiError(422, err);
}

// ---------------------------------------------------------------------------------------
// State built from the seed

let state;

function loadSeed(name, now) {
  const r = seeds.build(name, now);
  const st = {
    seed: name,
    incidents: r.incidents, // any order; sorted on demand
    byId: new Map(),
    byNumber: new Map(),
    updates: new Map(), // incident id -> [updates] (chronological)
    allUpdates: r.updates,
    timeline: new Map(), // incident id -> [items] (chronological)
    followUps: r.follow_ups,
    relationships: r.relationships.map(([a, b]) => ({ a, b, id: ulidFor(`relationship:${a}:${b}`) })),
    channels: r.channels,
    idempotency: new Map(),
    runtimeCounter: 0,
    webhooks: [],
    meta: new Map(),
  };
  for (const inc of st.incidents) indexIncident(st, inc);
  for (const u of r.updates) pushTo(st.updates, u.incident_id, u);
  for (const t of r.timeline) pushTo(st.timeline, t.incident_id, t);
  return st;
}

function pushTo(map, k, v) {
  let l = map.get(k);
  if (!l) map.set(k, (l = []));
  l.push(v);
}

function indexIncident(st, inc) {
  st.byId.set(inc.id, inc);
  st.byNumber.set(Number(inc.reference.replace(/^\D+/, '')), inc);
  st.meta.set(inc.id, { created: Date.parse(inc.created_at), num: Number(inc.reference.replace(/^\D+/, '')) });
}

function touchMeta(inc) {
  state.meta.set(inc.id, { created: Date.parse(inc.created_at), num: Number(inc.reference.replace(/^\D+/, '')) });
}

function findIncident(idOrNumber) {
  if (state.byId.has(idOrNumber)) return state.byId.get(idOrNumber);
  if (/^[0-9]+$/.test(idOrNumber)) return state.byNumber.get(Number(idOrNumber)) || null;
  return null;
}

try {
  state = loadSeed(args.seed, START);
} catch (e) {
  process.stderr.write(`${e.message}\n`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------
// Query helpers

function single(ctx, name) {
  const v = ctx.query[name];
  if (Array.isArray(v)) throw new Invalid(name, `${name} was given more than once`);
  return v;
}

function allowOnly(ctx, names) {
  for (const [k] of ctx.pairs) {
    if (!names.includes(k)) throw new Invalid(k, `Unknown query parameter ${JSON.stringify(k)}. Accepted: ${names.join(', ') || '(none)'}`, 'unknown_parameter');
  }
}

function pageSize(ctx, max = 250, def = 25, required = false) {
  const v = single(ctx, 'page_size');
  if (v === undefined || v === '') {
    if (required) throw new Invalid('page_size', 'page_size is required', 'is_required');
    return def;
  }
  if (!/^-?\d+$/.test(v)) throw new Invalid('page_size', `page_size must be an integer, got ${JSON.stringify(v)}`);
  const n = Number(v);
  if (n < 1 || n > max) throw new Invalid('page_size', `page_size must be between 1 and ${max}, got ${n}`);
  return n;
}

// list: already ordered. Returns { items, meta }.
function paginate(ctx, list, { max = 250, def = 25, total = false, required = false, locate } = {}) {
  const size = pageSize(ctx, max, def, required);
  const after = single(ctx, 'after');
  let start = 0;
  if (after !== undefined && after !== '') {
    let idx = list.findIndex((x) => x.id === after);
    if (idx >= 0) start = idx + 1;
    else if (locate) {
      idx = locate(after);
      if (idx < 0) throw new Invalid('after', `after: no record with id ${JSON.stringify(after)}`);
      start = idx;
    } else throw new Invalid('after', `after: no record with id ${JSON.stringify(after)}`);
  }
  const items = list.slice(start, start + size);
  const meta = { page_size: size };
  if (start + size < list.length && items.length) meta.after = items[items.length - 1].id;
  if (total) meta.total_record_count = list.length;
  return { items, meta };
}

function requireIncidentParam(ctx, required) {
  const id = single(ctx, 'incident_id');
  if (id === undefined || id === '') {
    if (required) throw new Invalid('incident_id', 'incident_id is required', 'is_required');
    return null;
  }
  const inc = state.byId.get(id);
  if (!inc) return { missing: id };
  return inc;
}

// ---------------------------------------------------------------------------------------
// GET /v2/incidents filters

const CATEGORIES = ['triage', 'live', 'learning', 'paused', 'closed', 'declined', 'canceled', 'merged'];
const MODES = ['standard', 'retrospective', 'test', 'tutorial'];
const KEY_RE = /^([A-Za-z_]+)((?:\[[^[\]]*\])*)$/;

function parseIncidentFilters(ctx) {
  const groups = new Map(); // "name|seg1|seg2" -> {name, segs, values}
  const plain = {};
  for (const [k, v] of ctx.pairs) {
    const m = KEY_RE.exec(k);
    if (!m) throw new Invalid(k, `Malformed query parameter ${JSON.stringify(k)}`, 'unknown_parameter');
    const name = m[1];
    const segs = m[2] ? m[2].slice(1, -1).split('][') : [];
    const withOp = { status: 1, status_category: 1, severity: 1, incident_type: 1, mode: 1, created_at: 1, updated_at: 1, custom_field: 2, incident_role: 2 };
    if (['page_size', 'after', 'sort_by', 'filter_mode'].includes(name)) {
      if (segs.length) throw new Invalid(k, `${name} takes no brackets`, 'unknown_parameter');
      if (plain[name] !== undefined) throw new Invalid(name, `${name} was given more than once`);
      plain[name] = v;
      continue;
    }
    if (!withOp[name]) throw new Invalid(k, `Unknown query parameter ${JSON.stringify(k)}`, 'unknown_parameter');
    if (segs.length !== withOp[name]) {
      const example = withOp[name] === 2 ? `${name}[<id>][one_of]=...` : `${name}[one_of]=...`;
      throw new Invalid(k, `${JSON.stringify(k)}: filters need an operator in brackets, e.g. ${example}`, 'invalid_filter');
    }
    const gk = [name, ...segs].join('|');
    if (!groups.has(gk)) groups.set(gk, { name, segs, key: k, values: [] });
    groups.get(gk).values.push(v);
  }
  return { groups: [...groups.values()], plain };
}

function incidentMeta(inc) {
  return state.meta.get(inc.id);
}

function buildIncidentPredicates(groups) {
  const preds = [];
  let modes = ['standard', 'retrospective'];
  const field = (g) => g.key;
  const one = (g) => {
    if (g.values.length !== 1) throw new Invalid(field(g), `${g.key} takes a single value`);
    return g.values[0];
  };
  for (const g of groups) {
    const op = g.segs[g.segs.length - 1];
    const bad = (ops) => new Invalid(field(g), `${g.key}: unknown operator ${JSON.stringify(op)}; accepted: ${ops.join(', ')}`, 'invalid_operator');
    switch (g.name) {
      case 'status_category': {
        if (!['one_of', 'not_in'].includes(op)) throw bad(['one_of', 'not_in']);
        for (const v of g.values) if (!CATEGORIES.includes(v)) throw new Invalid(field(g), `${g.key}: unknown status category ${JSON.stringify(v)}; accepted: ${CATEGORIES.join(', ')}`);
        const set = new Set(g.values);
        preds.push(op === 'one_of' ? (i) => set.has(i.incident_status.category) : (i) => !set.has(i.incident_status.category));
        break;
      }
      case 'status': {
        if (!['one_of', 'not_in'].includes(op)) throw bad(['one_of', 'not_in']);
        for (const v of g.values) if (!S.statuses.some((s) => s.id === v)) throw new Invalid(field(g), `${g.key}: no incident status with id ${JSON.stringify(v)}`);
        const set = new Set(g.values);
        preds.push(op === 'one_of' ? (i) => set.has(i.incident_status.id) : (i) => !set.has(i.incident_status.id));
        break;
      }
      case 'severity': {
        if (!['one_of', 'not_in', 'gte', 'lte'].includes(op)) throw bad(['one_of', 'not_in', 'gte', 'lte']);
        const sevs = g.values.map((v) => {
          const s = S.severities.find((x) => x.id === v);
          if (!s) throw new Invalid(field(g), `${g.key}: no severity with id ${JSON.stringify(v)}`);
          return s;
        });
        if (op === 'gte' || op === 'lte') {
          const rank = S.severities.find((x) => x.id === one(g)).rank;
          preds.push(op === 'gte' ? (i) => !!i.severity && i.severity.rank >= rank : (i) => !!i.severity && i.severity.rank <= rank);
        } else {
          const set = new Set(sevs.map((s) => s.id));
          preds.push(op === 'one_of' ? (i) => !!i.severity && set.has(i.severity.id) : (i) => !i.severity || !set.has(i.severity.id));
        }
        break;
      }
      case 'incident_type': {
        if (!['one_of', 'not_in'].includes(op)) throw bad(['one_of', 'not_in']);
        for (const v of g.values) if (!S.incidentTypes.some((s) => s.id === v)) throw new Invalid(field(g), `${g.key}: no incident type with id ${JSON.stringify(v)}`);
        const set = new Set(g.values);
        preds.push(op === 'one_of' ? (i) => !!i.incident_type && set.has(i.incident_type.id) : (i) => !i.incident_type || !set.has(i.incident_type.id));
        break;
      }
      case 'mode': {
        if (op !== 'one_of') throw bad(['one_of']);
        for (const v of g.values) if (!MODES.includes(v)) throw new Invalid(field(g), `${g.key}: unknown mode ${JSON.stringify(v)}; accepted: ${MODES.join(', ')}`);
        modes = g.values;
        break;
      }
      case 'created_at':
      case 'updated_at': {
        if (!['gte', 'lte', 'date_range'].includes(op)) throw bad(['gte', 'lte', 'date_range']);
        const v = one(g);
        const get = g.name === 'created_at' ? (i) => incidentMeta(i).created : (i) => Date.parse(i.updated_at);
        if (op === 'date_range') {
          const parts = v.split('~');
          const a = parts.length === 2 ? parseDateOrTime(parts[0]) : null;
          const b = parts.length === 2 ? parseDateOrTime(parts[1]) : null;
          if (!a || !b) throw new Invalid(field(g), `${g.key}: expected YYYY-MM-DD~YYYY-MM-DD, got ${JSON.stringify(v)}`);
          const end = b.dateOnly ? b.ms + DAY : b.ms + 1;
          preds.push((i) => get(i) >= a.ms && get(i) < end);
        } else {
          const d = parseDateOrTime(v);
          if (!d) throw new Invalid(field(g), `${g.key}: not a date (YYYY-MM-DD or RFC 3339): ${JSON.stringify(v)}`);
          preds.push(op === 'gte' ? (i) => get(i) >= d.ms : (i) => get(i) <= d.ms);
        }
        break;
      }
      case 'custom_field': {
        const fid = g.segs[0];
        const f = S.customFields.find((x) => x.id === fid);
        if (!f) throw new Invalid(field(g), `${g.key}: no custom field with id ${JSON.stringify(fid)}`);
        const selectLike = f.field_type === 'single_select' || f.field_type === 'multi_select';
        const ops = selectLike ? ['one_of', 'not_in', 'is_blank'] : ['is_blank'];
        if (!ops.includes(op)) throw bad(ops);
        const valuesOf = (i) => {
          const e = i.custom_field_entries.find((x) => x.custom_field.id === fid);
          return e ? e.values : [];
        };
        if (op === 'is_blank') {
          const v = one(g);
          if (v !== 'true' && v !== 'false') throw new Invalid(field(g), `${g.key}: expected true or false`);
          preds.push((i) => (valuesOf(i).length === 0) === (v === 'true'));
          break;
        }
        const known = f.catalog_type_id ? S.catalogEntries.filter((c) => c.catalog_type_id === f.catalog_type_id).map((c) => c.id) : f.options.map((o) => o.id);
        for (const v of g.values) if (!known.includes(v)) throw new Invalid(field(g), `${g.key}: ${JSON.stringify(v)} is not ${f.catalog_type_id ? 'a catalog entry' : 'an option'} of ${f.name}`);
        const set = new Set(g.values);
        const ids = (i) => valuesOf(i).map((x) => (x.value_option ? x.value_option.id : x.value_catalog_entry ? x.value_catalog_entry.id : null));
        preds.push(op === 'one_of' ? (i) => ids(i).some((x) => set.has(x)) : (i) => !ids(i).some((x) => set.has(x)));
        break;
      }
      case 'incident_role': {
        const rid = g.segs[0];
        if (!S.roles.some((r) => r.id === rid)) throw new Invalid(field(g), `${g.key}: no incident role with id ${JSON.stringify(rid)}`);
        if (!['is_blank', 'one_of'].includes(op)) throw bad(['one_of', 'is_blank']);
        const assignee = (i) => {
          const a = i.incident_role_assignments.find((x) => x.role.id === rid);
          return a && a.assignee ? a.assignee.id : null;
        };
        if (op === 'is_blank') {
          const v = one(g);
          if (v !== 'true' && v !== 'false') throw new Invalid(field(g), `${g.key}: expected true or false`);
          preds.push((i) => (assignee(i) === null) === (v === 'true'));
        } else {
          for (const v of g.values) if (!S.users.some((u) => u.id === v)) throw new Invalid(field(g), `${g.key}: no user with id ${JSON.stringify(v)}`);
          const set = new Set(g.values);
          preds.push((i) => set.has(assignee(i)));
        }
        break;
      }
      default:
        throw new Invalid(g.key, `Unknown query parameter ${JSON.stringify(g.key)}`, 'unknown_parameter');
    }
  }
  return { preds, modes };
}

function sortedIncidents(oldestFirst) {
  const list = state.incidents.slice();
  list.sort((a, b) => {
    const ma = incidentMeta(a);
    const mb = incidentMeta(b);
    return ma.created - mb.created || ma.num - mb.num || (a.id < b.id ? -1 : 1);
  });
  if (!oldestFirst) list.reverse();
  return list;
}

function listIncidents(ctx) {
  const { groups, plain } = parseIncidentFilters(ctx);
  const sortBy = plain.sort_by === undefined || plain.sort_by === '' ? 'created_at_newest_first' : plain.sort_by;
  if (!['created_at_newest_first', 'created_at_oldest_first'].includes(sortBy)) throw new Invalid('sort_by', `sort_by must be created_at_newest_first or created_at_oldest_first, got ${JSON.stringify(sortBy)}`);
  const mode = plain.filter_mode === undefined || plain.filter_mode === '' ? 'all' : plain.filter_mode;
  if (!['all', 'any'].includes(mode)) throw new Invalid('filter_mode', `filter_mode must be all or any, got ${JSON.stringify(mode)}`);
  const { preds, modes } = buildIncidentPredicates(groups);
  const modeSet = new Set(modes);
  const ordered = sortedIncidents(sortBy === 'created_at_oldest_first');
  const list = ordered.filter((i) => modeSet.has(i.mode) && (preds.length === 0 || (mode === 'all' ? preds.every((p) => p(i)) : preds.some((p) => p(i)))));
  const q = { query: {}, pairs: [] };
  if (plain.page_size !== undefined) q.query.page_size = plain.page_size;
  if (plain.after !== undefined) q.query.after = plain.after;
  const { items, meta } = paginate(q, list, {
    total: true,
    // The cursor record may no longer match the filters: continue after its position.
    locate: (after) => {
      const rec = state.byId.get(after);
      if (!rec) return -1;
      const pos = ordered.indexOf(rec);
      const setIdx = new Set(list);
      for (let j = pos + 1; j < ordered.length; j++) if (setIdx.has(ordered[j])) return list.indexOf(ordered[j]);
      return list.length;
    },
  });
  return { status: 200, body: { incidents: items, pagination_meta: meta } };
}

// ---------------------------------------------------------------------------------------
// Other endpoints

function userWithRoles(u) {
  const base = { administrator: 'Administrator', owner: 'Owner', responder: 'Responder', viewer: 'Viewer' }[u.role] || 'Viewer';
  return Object.assign({}, u, {
    base_role: { id: ulidFor(`rbac:${u.role}`), name: base, slug: u.role, description: `${base} permissions.` },
    custom_roles: [],
    seats: { on_call: u.role === 'viewer' ? 'none' : 'full_access', response: u.role === 'viewer' ? 'viewer_only' : 'full_access' },
    is_active: true,
  });
}

function timelineDisabled() {
  return !config.timeline_items;
}

function createTimelineItem(ctx, key) {
  let body;
  try {
    body = ctx.bodyText ? JSON.parse(ctx.bodyText) : undefined;
  } catch (e) {
    return apiError(400, { code: 'invalid_json', message: `Request body is not valid JSON: ${e.message}` });
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) return apiError(400, { code: 'invalid_body', message: 'Request body must be a JSON object' });
  const str = (f, required) => {
    const v = body[f];
    if (v === undefined || v === null || v === '') {
      if (required) throw new Invalid(f, `${f} is required`, 'is_required');
      return undefined;
    }
    if (typeof v !== 'string') throw new Invalid(f, `${f} must be a string`);
    return v;
  };
  const idem = str('idempotency_key', true);
  if (idem.length > 255) throw new Invalid('idempotency_key', 'idempotency_key must be at most 255 characters');
  if (state.idempotency.has(idem)) return { status: 201, body: { incident_timeline_item: state.idempotency.get(idem) } };
  const incidentId = str('incident_id', true);
  const title = str('title', true);
  const ts = str('timestamp', true);
  const description = str('description', false);
  const inc = state.byId.get(incidentId);
  if (!inc) throw new Invalid('incident_id', `No incident with id ${JSON.stringify(incidentId)}`, 'not_found');
  if (title.length > 255) throw new Invalid('title', 'title must be at most 255 characters');
  if (description !== undefined && description.length > 10000) throw new Invalid('description', 'description must be at most 10000 characters');
  const t = parseDateOrTime(ts, { allowDate: false });
  if (!t) throw new Invalid('timestamp', `timestamp must be an RFC 3339 date-time, got ${JSON.stringify(ts)}`);
  const now = Date.now();
  const item = {
    id: ulidFor(`timeline:runtime:${++state.runtimeCounter}:${idem}`),
    incident_id: inc.id,
    title,
    timestamp: rfc3339(t.ms),
    created_at: rfc3339(now),
    updated_at: rfc3339(now),
    creator: { api_key: { id: key.id, name: key.name } },
  };
  if (description !== undefined) item.description = description;
  addTimelineItem(item);
  state.idempotency.set(idem, item);
  return { status: 201, body: { incident_timeline_item: item } };
}

function addTimelineItem(item) {
  pushTo(state.timeline, item.incident_id, item);
  state.timeline.get(item.incident_id).sort((a, b) => (a.timestamp < b.timestamp ? -1 : a.timestamp > b.timestamp ? 1 : 0));
}

// Routes: [method, regex, scope, handler(ctx, match, key)]
const ROUTES = [
  ['GET', /^\/v1\/identity$/, null, (ctx, m, key) => {
    allowOnly(ctx, []);
    return { status: 200, body: { identity: { name: key.name, dashboard_url: S.ORG.dashboard_url, roles: key.roles, team_roles: [], teams: [] } } };
  }],
  ['GET', /^\/v2\/incidents$/, 'incidents.view', (ctx) => listIncidents(ctx)],
  ['GET', /^\/v2\/incidents\/([^/]+)$/, 'incidents.view', (ctx, m) => {
    allowOnly(ctx, []);
    const inc = findIncident(m[1]);
    if (!inc) return notFound(`No incident with id or reference number ${JSON.stringify(m[1])}`);
    return { status: 200, body: { incident: inc } };
  }],
  ['GET', /^\/v2\/incident_updates$/, 'incidents.view', (ctx) => {
    allowOnly(ctx, ['incident_id', 'page_size', 'after']);
    const inc = requireIncidentParam(ctx, false);
    if (inc && inc.missing) return notFound(`No incident with id ${JSON.stringify(inc.missing)}`);
    let list = inc ? (state.updates.get(inc.id) || []).slice() : [...state.updates.values()].flat();
    list.sort((a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : 0));
    if (config.updates_order === 'newest_first') list.reverse();
    const { items, meta } = paginate(ctx, list);
    return { status: 200, body: { incident_updates: items, pagination_meta: meta } };
  }],
  ['GET', /^\/v2\/incident_timeline_items$/, 'incidents.view', (ctx) => {
    if (timelineDisabled()) return null;
    allowOnly(ctx, ['incident_id', 'page_size', 'after']);
    const inc = requireIncidentParam(ctx, true);
    if (inc.missing) return notFound(`No incident with id ${JSON.stringify(inc.missing)}`);
    const { items, meta } = paginate(ctx, state.timeline.get(inc.id) || []);
    return { status: 200, body: { incident_timeline_items: items, pagination_meta: meta } };
  }],
  ['POST', /^\/v2\/incident_timeline_items$/, 'incident_timeline_items.create', (ctx, m, key) => {
    if (timelineDisabled()) return null;
    allowOnly(ctx, []);
    return createTimelineItem(ctx, key);
  }],
  ['GET', /^\/v1\/severities$/, 'severities.view', (ctx) => {
    allowOnly(ctx, []);
    return { status: 200, body: { severities: S.severities } };
  }],
  ['GET', /^\/v1\/severities\/([^/]+)$/, 'severities.view', (ctx, m) => {
    allowOnly(ctx, []);
    const s = S.severities.find((x) => x.id === m[1]);
    return s ? { status: 200, body: { severity: s } } : notFound(`No severity with id ${JSON.stringify(m[1])}`);
  }],
  ['GET', /^\/v1\/incident_statuses$/, 'incident_statuses.view', (ctx) => {
    allowOnly(ctx, []);
    return { status: 200, body: { incident_statuses: S.statuses } };
  }],
  ['GET', /^\/v1\/incident_types$/, 'incident_types.view', (ctx) => {
    allowOnly(ctx, []);
    return { status: 200, body: { incident_types: S.incidentTypes } };
  }],
  ['GET', /^\/v2\/custom_fields$/, 'custom_fields.view', (ctx) => {
    allowOnly(ctx, []);
    return { status: 200, body: { custom_fields: S.customFields.map(S.customFieldV2) } };
  }],
  ['GET', /^\/v2\/custom_fields\/([^/]+)$/, 'custom_fields.view', (ctx, m) => {
    allowOnly(ctx, []);
    const f = S.customFields.find((x) => x.id === m[1]);
    return f ? { status: 200, body: { custom_field: S.customFieldV2(f) } } : notFound(`No custom field with id ${JSON.stringify(m[1])}`);
  }],
  ['GET', /^\/v2\/incident_roles$/, 'incident_roles.view', (ctx) => {
    allowOnly(ctx, []);
    return { status: 200, body: { incident_roles: S.roles.map(({ required, ...r }) => r) } };
  }],
  ['GET', /^\/v2\/incident_timestamps$/, null, (ctx) => {
    allowOnly(ctx, []);
    return { status: 200, body: { incident_timestamps: S.timestamps } };
  }],
  ['GET', /^\/v2\/follow_ups$/, 'actions.view', (ctx) => {
    allowOnly(ctx, ['incident_id', 'incident_mode', 'assignee_team_id']);
    const inc = requireIncidentParam(ctx, false);
    if (inc && inc.missing) return notFound(`No incident with id ${JSON.stringify(inc.missing)}`);
    const mode = single(ctx, 'incident_mode');
    if (mode !== undefined && mode !== '' && !['standard', 'retrospective', 'test', 'tutorial', 'stream'].includes(mode)) throw new Invalid('incident_mode', `unknown incident_mode ${JSON.stringify(mode)}`);
    const team = single(ctx, 'assignee_team_id');
    let list = state.followUps.filter((f) => !inc || f.incident_id === inc.id);
    if (mode) list = list.filter((f) => (state.byId.get(f.incident_id) || {}).mode === mode);
    if (team) list = list.filter((f) => f.assignee_team && f.assignee_team.id === team);
    return { status: 200, body: { follow_ups: list } };
  }],
  ['GET', /^\/v1\/incident_relationships$/, 'incidents.view', (ctx) => {
    allowOnly(ctx, ['incident_id', 'page_size', 'after']);
    const inc = requireIncidentParam(ctx, true);
    if (inc.missing) return notFound(`No incident with id ${JSON.stringify(inc.missing)}`);
    const list = [];
    for (const r of state.relationships) {
      const other = r.a === inc.id ? r.b : r.b === inc.id ? r.a : null;
      if (!other) continue;
      const o = state.byId.get(other);
      if (!o) continue;
      list.push({ id: r.id, incident: { id: o.id, name: o.name, external_id: Number(o.reference.replace(/^\D+/, '')) } });
    }
    const { items, meta } = paginate(ctx, list);
    return { status: 200, body: { incident_relationships: items, pagination_meta: meta } };
  }],
  ['GET', /^\/v2\/users$/, 'users.view', (ctx) => {
    allowOnly(ctx, ['email', 'slack_user_id', 'include_inactive', 'page_size', 'after']);
    const email = single(ctx, 'email');
    const slack = single(ctx, 'slack_user_id');
    const list = S.users.filter((u) => (!email || u.email.toLowerCase() === email.toLowerCase()) && (!slack || u.slack_user_id === slack)).map(userWithRoles);
    const { items, meta } = paginate(ctx, list, { max: 10000 });
    return { status: 200, body: { users: items, pagination_meta: meta } };
  }],
  ['GET', /^\/v2\/users\/([^/]+)$/, 'users.view', (ctx, m) => {
    allowOnly(ctx, []);
    const u = S.users.find((x) => x.id === m[1]);
    return u ? { status: 200, body: { user: userWithRoles(u) } } : notFound(`No user with id ${JSON.stringify(m[1])}`);
  }],
  ['GET', /^\/v3\/catalog_types$/, 'catalog_types.view', (ctx) => {
    allowOnly(ctx, []);
    return { status: 200, body: { catalog_types: [S.catalogType] } };
  }],
  ['GET', /^\/v3\/catalog_entries$/, 'catalog_entries.view', (ctx) => {
    allowOnly(ctx, ['catalog_type_id', 'page_size', 'after', 'identifier']);
    const tid = single(ctx, 'catalog_type_id');
    if (!tid) throw new Invalid('catalog_type_id', 'catalog_type_id is required', 'is_required');
    if (tid !== S.catalogType.id) return notFound(`No catalog type with id ${JSON.stringify(tid)}`);
    const ident = single(ctx, 'identifier');
    const list = S.catalogEntries.filter((e) => !ident || e.name === ident || e.external_id === ident || e.aliases.includes(ident));
    const { items, meta } = paginate(ctx, list, { total: true, required: true });
    return { status: 200, body: { catalog_entries: items, catalog_type: S.catalogType, pagination_meta: meta } };
  }],
];

// ---------------------------------------------------------------------------------------
// The request pipeline (after the kit's logging and faults)

function keyFor(ctx) {
  const token = bearer(ctx.headers);
  return token ? KEYS.get(token) || null : null;
}

function route(ctx) {
  const now = Date.now();
  const token = bearer(ctx.headers);
  if (!token) {
    return apiError(401, { code: 'missing_authorization_material', message: 'No authorization material provided in request' });
  }
  const key = KEYS.get(token);
  if (!key) {
    return apiError(401, { code: 'invalid_authorization', message: 'The API key provided is not valid (it may have been deleted or mistyped)' });
  }
  const rl = takeToken(key, now);
  if (!rl.ok) {
    limitedCount.set(key.name, (limitedCount.get(key.name) || 0) + 1);
    return rateLimitedResponse(key, rl, now);
  }
  const withHeaders = (resp) => Object.assign({}, resp, { headers: Object.assign({}, rl.headers, resp.headers || {}) });
  if (ctx.queryError) return withHeaders(apiError(400, { code: 'invalid_query', message: ctx.queryError }));
  for (const [method, re, scope, handler] of ROUTES) {
    if (method !== ctx.method) continue;
    const m = re.exec(ctx.path);
    if (!m) continue;
    if (!hasScope(key, scope)) {
      return withHeaders(apiError(403, { code: 'resource_forbidden', message: `This API key does not have the ${scope} scope needed for ${ctx.method} ${ctx.path}. Its roles are: ${key.roles.join(', ')}` }));
    }
    let resp;
    try {
      resp = handler(ctx, m, key);
    } catch (e) {
      if (e instanceof Invalid) return withHeaders(invalidResp(e));
      throw e;
    }
    if (resp === null) break; // feature switched off: behave like an unknown route
    return withHeaders(resp);
  }
  return withHeaders(notFound(`No such endpoint: ${ctx.method} ${ctx.path}`));
}

function faultResp(rule, ctx) {
  const now = Date.now();
  if (rule.status === 429) {
    const key = keyFor(ctx);
    const cap = config.rate_capacity;
    const rl = {
      cap,
      headers: { 'X-RateLimit-Limit': `${cap}, ${cap};window=${Math.round(cap / config.rate_refill_per_sec)}`, 'X-RateLimit-Remaining': '0', 'X-RateLimit-Used': String(cap), 'X-RateLimit-Reset': String(Math.ceil(now / 1000 + cap / config.rate_refill_per_sec)) },
      retryAfter: 1,
    };
    let ra = rule.retry_after;
    if (ra === undefined) ra = 1;
    return rateLimitedResponse(key, rl, now, ra);
  }
  const msg = rule.status >= 500 ? 'Something went wrong on our side (injected fault).' : `Injected ${rule.status} response.`;
  const r = apiError(rule.status, { code: ERROR_TYPES[rule.status] || 'error', message: msg });
  if (rule.retry_after !== undefined) r.headers['Retry-After'] = String(rule.retry_after);
  return r;
}

// ---------------------------------------------------------------------------------------
// Runtime changes through the control API

function resolveBy(list, v, what) {
  if (v === undefined || v === null) return null;
  if (typeof v === 'object') return v;
  const x = list.find((s) => s.id === v) || S.byName(list, v);
  if (!x) throw new Error(`unknown ${what}: ${v}`);
  return x;
}

function resolveUser(v) {
  if (v === undefined || v === null) return null;
  if (typeof v === 'object') return v;
  const u = S.USER[v] || S.users.find((x) => x.id === v || x.email === v || x.name === v || x.slack_user_id === v);
  if (!u) throw new Error(`unknown user: ${v}`);
  return u;
}

function serviceEntries(services, extra) {
  const cfById = Object.fromEntries(S.customFields.map((f) => [f.id, f]));
  const info = (id) => S.customFieldInfo(cfById[id]);
  for (const s of services) if (!S.SERVICES.includes(s)) throw new Error(`unknown service ${s}; known: ${S.SERVICES.join(', ')}`);
  return [
    { custom_field: info(S.CF.services), values: services.map((s) => ({ value_option: cfById[S.CF.services].options.find((o) => o.value === s) })) },
    { custom_field: info(S.CF.servicesCatalog), values: services.map((s) => {
      const ce = S.catalogEntries.find((c) => c.name === s);
      return { value_catalog_entry: { id: ce.id, name: ce.name, external_id: ce.external_id, aliases: ce.aliases } };
    }) },
    { custom_field: info(S.CF.rootCause), values: extra.root_cause ? [{ value_text: extra.root_cause }] : [] },
    { custom_field: info(S.CF.postmortem), values: extra.postmortem_document_url ? [{ value_link: extra.postmortem_document_url }] : [] },
    { custom_field: info(S.CF.detection), values: extra.detection ? [{ value_option: cfById[S.CF.detection].options.find((o) => o.value === extra.detection) }] : [] },
    { custom_field: info(S.CF.customers), values: extra.customers !== undefined ? [{ value_numeric: String(extra.customers) }] : [] },
  ];
}

function setTimestamp(inc, ts, ms) {
  const e = inc.incident_timestamp_values.find((x) => x.incident_timestamp.id === ts.id);
  if (e && !e.value) e.value = { value: rfc3339(ms) };
}

function refreshDurations(inc) {
  const get = (ts) => {
    const e = inc.incident_timestamp_values.find((x) => x.incident_timestamp.id === ts.id);
    return e && e.value ? Date.parse(e.value.value) : null;
  };
  const impact = get(S.TS.impact);
  const reported = get(S.TS.reported);
  const resolved = get(S.TS.resolved);
  const dm = (metric, from, to) => (from === null || to === null ? { duration_metric: metric, status: 'timestamps_missing' } : { duration_metric: metric, status: 'success', value_seconds: Math.max(0, Math.round((to - from) / 1000)) });
  inc.duration_metrics = [dm(S.durationMetrics[0], impact, resolved), dm(S.durationMetrics[1], reported, resolved)];
}

const INCIDENT_PASSTHROUGH = ['summary', 'call_url', 'postmortem_document_url', 'external_issue_reference', 'has_debrief', 'slack_channel_name', 'custom_field_entries', 'incident_role_assignments', 'creator', 'incident_timestamp_values', 'duration_metrics', 'permalink', 'workload_minutes_total', 'workload_minutes_working', 'workload_minutes_late', 'workload_minutes_sleeping'];

function createIncident(b) {
  if (!b || typeof b !== 'object' || typeof b.name !== 'string' || !b.name) throw new Error('name is required');
  let num = b.number !== undefined ? Number(b.number) : b.reference ? Number(String(b.reference).replace(/^\D+/, '')) : Math.max(0, ...state.byNumber.keys()) + 1;
  if (!Number.isInteger(num) || num < 1) throw new Error('bad reference/number');
  if (state.byNumber.has(num)) throw new Error(`INC-${num} already exists`);
  const now = Date.now();
  const created = b.created_at ? Date.parse(b.created_at) : now;
  if (!Number.isFinite(created)) throw new Error('created_at: not a date');
  const id = b.id || ulidFor(`incident:runtime:${num}:${now}`);
  if (state.byId.has(id)) throw new Error(`incident ${id} already exists`);
  const status = resolveBy(S.statuses, b.status || b.incident_status || 'Investigating', 'status');
  const severity = resolveBy(S.severities, b.severity, 'severity');
  const type = resolveBy(S.incidentTypes, b.incident_type || 'Default', 'incident type');
  const services = b.services || [];
  const lead = resolveUser(b.lead);
  const reporter = resolveUser(b.reporter);
  const comms = resolveUser(b.comms);
  const slackId = b.slack_channel_id !== undefined ? b.slack_channel_id : 'C0' + ulidFor(`channel:runtime:${num}`).slice(3, 12);
  const inc = {
    id,
    reference: `INC-${num}`,
    name: b.name,
    permalink: `${S.ORG.dashboard_url}/incidents/${num}`,
    created_at: rfc3339(created),
    updated_at: rfc3339(b.updated_at ? Date.parse(b.updated_at) : created),
    mode: b.mode || 'standard',
    visibility: b.visibility || 'public',
    creator: b.creator || { api_key: { id: ulidFor('api_key:fake-control'), name: 'fake-control' } },
    incident_status: status,
    incident_role_assignments: [lead ? { role: S.ROLE.lead, assignee: lead } : { role: S.ROLE.lead }, reporter ? { role: S.ROLE.reporter, assignee: reporter } : { role: S.ROLE.reporter }, comms ? { role: S.ROLE.comms, assignee: comms } : { role: S.ROLE.comms }],
    custom_field_entries: serviceEntries(services, b),
    incident_timestamp_values: [
      { incident_timestamp: S.TS.impact, value: { value: rfc3339(b.impact_started_at ? Date.parse(b.impact_started_at) : created) } },
      { incident_timestamp: S.TS.reported, value: { value: rfc3339(created) } },
      { incident_timestamp: S.TS.resolved },
      { incident_timestamp: S.TS.closed },
    ],
    duration_metrics: [],
    slack_channel_id: slackId,
    slack_team_id: S.ORG.slack_team_id,
  };
  if (!MODES.includes(inc.mode)) throw new Error(`unknown mode ${inc.mode}`);
  if (severity) inc.severity = severity;
  if (type) inc.incident_type = type;
  if (slackId) inc.slack_channel_name = `inc-${num}-${seeds.slug(b.name)}`.slice(0, 80);
  for (const k of INCIDENT_PASSTHROUGH) if (b[k] !== undefined) inc[k] = b[k];
  if (['learning', 'closed'].includes(status.category)) setTimestamp(inc, S.TS.resolved, created);
  if (status.category === 'closed') setTimestamp(inc, S.TS.closed, created);
  if (!b.duration_metrics) refreshDurations(inc);
  state.incidents.push(inc);
  indexIncident(state, inc);
  pushTo(state.timeline, inc.id, { id: ulidFor(`timeline:runtime:${++state.runtimeCounter}:declared`), incident_id: inc.id, title: 'Incident declared', description: `${inc.reference} ${inc.name}`, timestamp: inc.created_at, created_at: inc.created_at, updated_at: inc.created_at, creator: inc.creator });
  if (inc.slack_channel_id) state.channels.push({ id: inc.slack_channel_id, name: inc.slack_channel_name || inc.slack_channel_id, created: Math.floor(created / 1000), is_archived: false, is_member: true, incident_id: inc.id, incident_reference: inc.reference });
  sendWebhook(inc.visibility === 'private' ? 'private_incident.incident_created_v2' : 'public_incident.incident_created_v2', inc);
  return inc;
}

function addUpdate(inc, b) {
  const now = Date.now();
  const at = b.created_at ? Date.parse(b.created_at) : now;
  if (!Number.isFinite(at)) throw new Error('created_at: not a date');
  const prev = inc.incident_status;
  const status = b.status ? resolveBy(S.statuses, b.status, 'status') : prev;
  const severity = b.severity ? resolveBy(S.severities, b.severity, 'severity') : inc.severity;
  const updater = resolveUser(b.updater) || (inc.incident_role_assignments[0] && inc.incident_role_assignments[0].assignee) || S.USER.priya;
  const u = {
    id: ulidFor(`update:runtime:${++state.runtimeCounter}:${inc.id}`),
    incident_id: inc.id,
    created_at: rfc3339(at),
    new_incident_status: status,
    updater: { user: updater },
  };
  if (b.message !== undefined) u.message = b.message;
  if (severity) u.new_severity = severity;
  if (b.merged_into) {
    const target = findIncident(String(b.merged_into));
    if (!target) throw new Error(`merged_into: no incident ${b.merged_into}`);
    u.merged_into_incident_id = target.id;
  }
  pushTo(state.updates, inc.id, u);
  inc.incident_status = status;
  if (severity) inc.severity = severity;
  inc.updated_at = rfc3339(Math.max(at, Date.parse(inc.updated_at)));
  if (['learning', 'closed'].includes(status.category)) setTimestamp(inc, S.TS.resolved, at);
  if (status.category === 'closed') setTimestamp(inc, S.TS.closed, at);
  refreshDurations(inc);
  if (b.root_cause) {
    const e = inc.custom_field_entries.find((x) => x.custom_field.id === S.CF.rootCause);
    if (e) e.values = [{ value_text: b.root_cause }];
  }
  const title = status.id !== prev.id ? `Status changed from ${prev.name} to ${status.name}` : 'Update shared';
  addTimelineItem({ id: ulidFor(`timeline:runtime:${++state.runtimeCounter}:update`), incident_id: inc.id, title, description: b.message, timestamp: u.created_at, created_at: rfc3339(now), updated_at: rfc3339(now), creator: { user: updater } });
  if (inc.visibility === 'private') sendWebhook('private_incident.incident_updated_v2', inc);
  else {
    sendWebhook('public_incident.incident_updated_v2', inc, b.message);
    if (status.id !== prev.id) sendWebhook('public_incident.incident_status_updated_v2', inc, b.message, prev);
  }
  return u;
}

// ---------------------------------------------------------------------------------------
// Webhooks (Standard Webhooks signing, like Svix)

function webhookPayload(eventType, inc, message, prevStatus) {
  if (eventType.startsWith('private_')) return { event_type: eventType, [eventType]: { id: inc.id } };
  if (eventType === 'public_incident.incident_status_updated_v2') {
    const p = { incident: inc, new_status: inc.incident_status, previous_status: prevStatus || inc.incident_status };
    if (message) p.message = message;
    return { event_type: eventType, [eventType]: p };
  }
  const related = state.relationships.filter((r) => r.a === inc.id || r.b === inc.id).map((r) => state.byId.get(r.a === inc.id ? r.b : r.a)).filter(Boolean).map((x) => x.reference);
  const p = Object.assign({}, inc);
  if (message) p.most_recent_update_message = message;
  if (related.length) p.related_incidents = related;
  return { event_type: eventType, [eventType]: p };
}

function signWebhook(secret, id, ts, body) {
  const key = Buffer.from(String(secret).replace(/^whsec_/, ''), 'base64');
  return crypto.createHmac('sha256', key).update(`${id}.${ts}.${body}`).digest('base64');
}

function deliverWebhook(url, secret, payload, opts = {}) {
  return new Promise((resolve) => {
    const body = JSON.stringify(payload);
    const id = opts.webhook_id || `msg_${ulidFor(`webhook:${++state.runtimeCounter}:${Date.now()}`)}`;
    const ts = opts.timestamp !== undefined ? String(opts.timestamp) : String(Math.floor(Date.now() / 1000));
    let sig = `v1,${signWebhook(secret, id, ts, body)}`;
    if (opts.bad_signature) sig = `v1,${signWebhook('whsec_' + Buffer.from('wrong-secret').toString('base64'), id, ts, body)}`;
    if (opts.extra_signature) sig = `v1,${signWebhook('whsec_' + Buffer.from('rotated-old-secret').toString('base64'), id, ts, body)} ${sig}`;
    const headers = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'webhook-id': id, 'webhook-timestamp': ts, 'webhook-signature': sig, 'User-Agent': 'Svix-Webhooks/1.0 (fake)' };
    const record = { time: new Date().toISOString(), url, event_type: payload.event_type, webhook_id: id, webhook_timestamp: ts, status: null };
    state.webhooks.push(record);
    let u;
    try {
      u = new URL(url);
    } catch (e) {
      record.error = `bad url: ${url}`;
      return resolve(record);
    }
    const req = (u.protocol === 'https:' ? https : http).request(u, { method: 'POST', headers, timeout: 10000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        record.status = res.statusCode;
        record.response = Buffer.concat(chunks).toString('utf8').slice(0, 2000);
        resolve(record);
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => {
      record.error = e.message;
      resolve(record);
    });
    req.end(body);
  });
}

function sendWebhook(eventType, inc, message, prevStatus) {
  if (!config.webhook_url) return;
  deliverWebhook(config.webhook_url, config.webhook_secret, webhookPayload(eventType, inc, message, prevStatus));
}

// ---------------------------------------------------------------------------------------
// Control API specific to this fake

async function control(ctx, p) {
  const m = ctx.method;
  const b = ctx.json || {};
  const fail = (e) => ({ status: 400, body: { error: e.message || String(e) } });
  if (p === '/_fake/incidents' && m === 'POST') {
    try {
      return { status: 201, body: { incident: createIncident(b) } };
    } catch (e) {
      return fail(e);
    }
  }
  let mm = /^\/_fake\/incidents\/([^/]+)\/updates$/.exec(p);
  if (mm && m === 'POST') {
    const inc = findIncident(mm[1]);
    if (!inc) return { status: 404, body: { error: `no incident ${mm[1]}` } };
    try {
      const u = addUpdate(inc, b);
      return { status: 201, body: { incident_update: u, incident: inc } };
    } catch (e) {
      return fail(e);
    }
  }
  mm = /^\/_fake\/incidents\/([^/]+)$/.exec(p);
  if (mm && (m === 'PATCH' || m === 'POST')) {
    const inc = findIncident(mm[1]);
    if (!inc) return { status: 404, body: { error: `no incident ${mm[1]}` } };
    try {
      if (b.status) inc.incident_status = resolveBy(S.statuses, b.status, 'status');
      if (b.severity !== undefined) {
        if (b.severity === null) delete inc.severity;
        else inc.severity = resolveBy(S.severities, b.severity, 'severity');
      }
      for (const [k, v] of Object.entries(b)) {
        if (['status', 'severity', 'id', 'reference'].includes(k)) continue;
        if (v === null) delete inc[k];
        else inc[k] = v;
      }
      if (b.updated_at === undefined) inc.updated_at = rfc3339(Date.now());
      touchMeta(inc);
      if (b.slack_channel_id && !state.channels.some((c) => c.id === b.slack_channel_id)) state.channels.push({ id: b.slack_channel_id, name: inc.slack_channel_name || b.slack_channel_id, created: Math.floor(Date.now() / 1000), is_archived: false, is_member: true, incident_id: inc.id, incident_reference: inc.reference });
      sendWebhook(inc.visibility === 'private' ? 'private_incident.incident_updated_v2' : 'public_incident.incident_updated_v2', inc);
      return { status: 200, body: { incident: inc } };
    } catch (e) {
      return fail(e);
    }
  }
  if (p === '/_fake/timeline_items' && m === 'POST') {
    const inc = b.incident_id ? findIncident(String(b.incident_id)) : null;
    if (!inc) return { status: 404, body: { error: `no incident ${b.incident_id}` } };
    const now = Date.now();
    const item = { id: ulidFor(`timeline:runtime:${++state.runtimeCounter}:control`), incident_id: inc.id, title: b.title || 'Note', timestamp: rfc3339(b.timestamp ? Date.parse(b.timestamp) : now), created_at: rfc3339(now), updated_at: rfc3339(now), creator: b.creator || { user: S.USER.priya } };
    if (b.description) item.description = b.description;
    addTimelineItem(item);
    return { status: 201, body: { incident_timeline_item: item } };
  }
  // Called by the Slack fake when a message in an incident channel is pinned (or gets a
  // :pushpin: reaction): incident.io puts pinned messages on the incident timeline.
  if (p === '/_fake/pinned_message' && m === 'POST') {
    const inc = state.incidents.find((i) => i.slack_channel_id && i.slack_channel_id === b.channel);
    if (!inc) return { status: 404, body: { error: `no incident with slack channel ${b.channel}` } };
    const now = Date.now();
    const key = `pin:${b.channel}:${b.ts}`;
    const existing = (state.timeline.get(inc.id) || []).find((x) => x._pinKey === key);
    if (existing) return { status: 200, body: { incident_timeline_item: existing } };
    const item = {
      id: ulidFor(`timeline:runtime:${++state.runtimeCounter}:${key}`),
      incident_id: inc.id,
      title: `Pinned message${b.user_name ? ` from ${b.user_name}` : ''}`,
      description: b.text || '',
      timestamp: rfc3339(b.ts ? Math.floor(Number(b.ts) * 1000) : now),
      created_at: rfc3339(now),
      updated_at: rfc3339(now),
      creator: { user: S.USER.priya },
    };
    Object.defineProperty(item, '_pinKey', { value: key, enumerable: false });
    addTimelineItem(item);
    return { status: 201, body: { incident_timeline_item: item } };
  }
  if (p === '/_fake/channels' && m === 'GET') return { status: 200, body: { channels: state.channels } };
  if (p === '/_fake/webhooks' && m === 'GET') return { status: 200, body: { deliveries: state.webhooks } };
  if (p === '/_fake/webhooks/send' && m === 'POST') {
    const url = b.url || config.webhook_url;
    if (!url) return { status: 400, body: { error: 'url is required (or set webhook_url in the config)' } };
    let payload = b.payload;
    if (!payload) {
      const inc = b.incident_id ? findIncident(String(b.incident_id)) : null;
      if (!inc) return { status: 400, body: { error: 'give payload or incident_id' } };
      const et = b.event_type || 'public_incident.incident_updated_v2';
      payload = webhookPayload(et, inc, b.message, b.previous_status ? resolveBy(S.statuses, b.previous_status, 'status') : undefined);
    }
    const rec = await deliverWebhook(url, b.secret || config.webhook_secret, payload, b);
    return { status: 200, body: { delivery: rec, payload } };
  }
  if (p === '/_fake/idempotency' && m === 'GET') return { status: 200, body: { keys: [...state.idempotency.keys()] } };
  return null;
}

// ---------------------------------------------------------------------------------------

const server = new kit.FakeServer({
  name: 'incidentio',
  faultSeed: args.fault_seed,
  keyName: (ctx) => {
    const k = keyFor(ctx);
    return k ? k.name : null;
  },
  route,
  faultResp,
  control,
  latency: () => config.latency_ms,
  onReset: (body) => {
    state = loadSeed(body.seed || args.seed, body.now ? Date.parse(body.now) : START);
    config = defaultConfig();
    buckets.clear();
    limitedCount.clear();
    return null;
  },
  getConfig: () => config,
  config: (body) => setConfig(body),
  stats: () => {
    const keys = {};
    for (const [k, v] of limitedCount) keys[k] = { rate_limited: v };
    for (const e of server.log.entries) {
      const k = e.key || '(none)';
      keys[k] = keys[k] || { rate_limited: limitedCount.get(k) || 0 };
      keys[k].requests = (keys[k].requests || 0) + 1;
    }
    let total = 0;
    for (const v of limitedCount.values()) total += v;
    return { rate_limited: total, seed: state.seed, incidents: state.incidents.length, started_at: new Date(START).toISOString(), keys };
  },
});

server.start(args);
