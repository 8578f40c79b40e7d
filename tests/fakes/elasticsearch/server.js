#!/usr/bin/env node
'use strict';
// Fake Elasticsearch / OpenSearch: `GET|POST /<index>/_search` (and `/_search`) over
// documents loaded through the control API or `POST /<index>/_doc`. Evaluates the query
// DSL subset log searches use (bool with must/filter/should/must_not, term, terms,
// match, match_phrase, range, exists, match_all, prefix, wildcard), sort, size/from,
// search_after, track_total_hits and _source filtering. Errors have Elasticsearch's
// shape: {"error": {"root_cause": [...], "type", "reason"}, "status"}. Standard library
// only. docs/sources.md describes it.

const kit = require('../lib/fakekit');
const demo = require('../lib/demo');

const args = kit.cli('tests/fakes/elasticsearch/server.js', {
  ...kit.LISTEN_OPTIONS,
  scenario: { type: 'string', default: 'demo', arg: 'NAME', help: 'empty | demo (default demo)' },
  ...demo.SCENARIO_OPTIONS,
  api_key: { type: 'string', arg: 'K', help: 'require "Authorization: ApiKey K"' },
  user: { type: 'string', arg: 'U:P', help: 'require HTTP basic auth' },
  flavor: { type: 'string', default: 'elasticsearch', arg: 'F', help: 'elasticsearch | opensearch (default elasticsearch)' },
  ...kit.ANSWER_OPTIONS,
});

const scenario = demo.scenarioFrom(args);
const MAX_RESULT_WINDOW = 10000;

// index name -> [{_id, _source, _seq}]
let indices;
let seq = 0;

function addDocs(index, docs) {
  if (!/^[a-z0-9][a-z0-9._-]*$/.test(index)) throw new Error(`invalid index name [${index}]`);
  if (!indices.has(index)) indices.set(index, []);
  const list = indices.get(index);
  for (const d of docs) {
    seq++;
    const id = d._id || `doc${seq}`;
    list.push({ _id: id, _source: d._source || d, _seq: seq });
  }
  return docs.length;
}

function load(name, now, incidentAt) {
  indices = new Map();
  if (name === 'empty') return;
  if (name !== 'demo') throw new Error(`unknown scenario ${name} (empty, demo)`);
  const byDay = new Map();
  for (const e of demo.logEvents({ now, incidentAt })) {
    const idx = `logs-${new Date(e.ts).toISOString().slice(0, 10).replace(/-/g, '.')}`;
    if (!byDay.has(idx)) byDay.set(idx, []);
    byDay.get(idx).push(demo.ecsDoc(e));
  }
  for (const [idx, docs] of byDay) addDocs(idx, docs);
  addDocs('metrics-unrelated', [{ '@timestamp': new Date(now).toISOString(), value: 1 }]);
}

// ---------------------------------------------------------------------------------------
// Errors

function esError(status, type, reason, extra = {}) {
  const cause = Object.assign({ type, reason }, extra);
  return { status, body: { error: { root_cause: [cause], type, reason, ...extra }, status } };
}

class QueryError extends Error {
  constructor(type, reason) {
    super(reason);
    this.type = type;
  }
}

// ---------------------------------------------------------------------------------------
// Documents

function getField(src, name) {
  if (Object.prototype.hasOwnProperty.call(src, name)) return src[name];
  const parts = name.split('.');
  let cur = src;
  for (let i = 0; i < parts.length; i++) {
    if (cur === null || typeof cur !== 'object') return undefined;
    // A flat dotted key at this level ("log.level" inside {...}) counts too.
    const rest = parts.slice(i).join('.');
    if (Object.prototype.hasOwnProperty.call(cur, rest)) return cur[rest];
    cur = cur[parts[i]];
  }
  return cur;
}

function values(v) {
  if (v === undefined || v === null) return [];
  return Array.isArray(v) ? v : [v];
}

function toTime(v) {
  if (typeof v === 'number') return v;
  if (typeof v !== 'string') return NaN;
  if (/^\d+$/.test(v)) return Number(v);
  if (v === 'now') return Date.now();
  const m = /^now-(\d+)([smhd])$/.exec(v);
  if (m) return Date.now() - Number(m[1]) * { s: 1000, m: 60000, h: 3600000, d: 86400000 }[m[2]];
  const d = kit.parseDateOrTime(v);
  return d ? d.ms : NaN;
}

// Numbers and dates (RFC 3339, epoch millis, now-5m) compare as times; anything else as text.
function compare(a, b) {
  const timeLike = (v) => typeof v === 'number' || (typeof v === 'string' && (/^\d{4}-\d{2}-\d{2}/.test(v) || /^\d+$/.test(v) || /^now/.test(v)));
  if (timeLike(a) && timeLike(b)) {
    const ta = toTime(a);
    const tb = toTime(b);
    if (!Number.isNaN(ta) && !Number.isNaN(tb)) return ta - tb;
  }
  return String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0;
}

function words(s) {
  return String(s).toLowerCase().split(/[^a-z0-9_]+/).filter(Boolean);
}

function singleField(obj, what) {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) throw new QueryError('parsing_exception', `[${what}] query malformed, no start_object after query name`);
  const keys = Object.keys(obj).filter((k) => k !== 'boost' && k !== '_name');
  if (keys.length !== 1) throw new QueryError('parsing_exception', `[${what}] query doesn't support multiple fields, found [${keys.join('] and [')}]`);
  return [keys[0], obj[keys[0]]];
}

// Compiles a query clause into a predicate over _source.
function compile(q) {
  if (!q || typeof q !== 'object' || Array.isArray(q)) throw new QueryError('parsing_exception', 'query malformed, must start with start_object');
  const kinds = Object.keys(q);
  if (kinds.length !== 1) throw new QueryError('parsing_exception', `[_na] query malformed, expected one query, found [${kinds.join(', ')}]`);
  const kind = kinds[0];
  const body = q[kind];
  switch (kind) {
    case 'match_all':
      return () => true;
    case 'match_none':
      return () => false;
    case 'bool': {
      const arr = (v) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
      for (const k of Object.keys(body)) {
        if (!['must', 'filter', 'should', 'must_not', 'minimum_should_match', 'boost', '_name'].includes(k)) {
          throw new QueryError('x_content_parse_exception', `[bool] unknown field [${k}]`);
        }
      }
      const must = arr(body.must).concat(arr(body.filter)).map(compile);
      const should = arr(body.should).map(compile);
      const not = arr(body.must_not).map(compile);
      let min = body.minimum_should_match;
      if (min === undefined) min = must.length ? 0 : (should.length ? 1 : 0);
      min = Number(min);
      return (d) => must.every((f) => f(d)) && !not.some((f) => f(d)) && (should.length === 0 || should.filter((f) => f(d)).length >= min);
    }
    case 'term': {
      const [field, spec] = singleField(body, 'term');
      const v = spec && typeof spec === 'object' ? spec.value : spec;
      const ci = spec && typeof spec === 'object' && spec.case_insensitive;
      return (d) => values(getField(d, field)).some((x) => (ci ? String(x).toLowerCase() === String(v).toLowerCase() : x === v || String(x) === String(v)));
    }
    case 'terms': {
      const keys = Object.keys(body).filter((k) => k !== 'boost');
      if (keys.length !== 1 || !Array.isArray(body[keys[0]])) throw new QueryError('parsing_exception', '[terms] query requires an array of values for a single field');
      const set = new Set(body[keys[0]].map(String));
      return (d) => values(getField(d, keys[0])).some((x) => set.has(String(x)));
    }
    case 'match':
    case 'match_phrase': {
      const [field, spec] = singleField(body, kind);
      const text = spec && typeof spec === 'object' ? spec.query : spec;
      const op = spec && typeof spec === 'object' && spec.operator ? String(spec.operator).toLowerCase() : 'or';
      const qw = words(text);
      return (d) => values(getField(d, field)).some((x) => {
        if (kind === 'match_phrase') return words(x).join(' ').includes(qw.join(' '));
        const dw = new Set(words(x));
        return op === 'and' ? qw.every((w) => dw.has(w)) : qw.some((w) => dw.has(w));
      });
    }
    case 'range': {
      const [field, spec] = singleField(body, 'range');
      for (const k of Object.keys(spec)) {
        if (!['gte', 'gt', 'lte', 'lt', 'format', 'time_zone', 'boost', 'relation'].includes(k)) {
          throw new QueryError('parsing_exception', `[range] query does not support [${k}]`);
        }
      }
      for (const k of ['gte', 'gt', 'lte', 'lt']) {
        if (spec[k] !== undefined && typeof spec[k] === 'string' && /[T:]/.test(spec[k]) && Number.isNaN(toTime(spec[k]))) {
          throw new QueryError('parse_exception', `failed to parse date field [${spec[k]}] with format [strict_date_optional_time||epoch_millis]`);
        }
      }
      return (d) => values(getField(d, field)).some((x) => (spec.gte === undefined || compare(x, spec.gte) >= 0)
        && (spec.gt === undefined || compare(x, spec.gt) > 0) && (spec.lte === undefined || compare(x, spec.lte) <= 0)
        && (spec.lt === undefined || compare(x, spec.lt) < 0));
    }
    case 'exists': {
      const field = body.field;
      return (d) => values(getField(d, field)).length > 0;
    }
    case 'prefix': {
      const [field, spec] = singleField(body, 'prefix');
      const v = spec && typeof spec === 'object' ? spec.value : spec;
      return (d) => values(getField(d, field)).some((x) => String(x).startsWith(v));
    }
    case 'wildcard': {
      const [field, spec] = singleField(body, 'wildcard');
      const v = spec && typeof spec === 'object' ? (spec.value || spec.wildcard) : spec;
      const re = new RegExp(`^${String(v).replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
      return (d) => values(getField(d, field)).some((x) => re.test(String(x)));
    }
    default:
      throw new QueryError('parsing_exception', `unknown query [${kind}]`);
  }
}

function sortSpec(sort) {
  if (sort === undefined) return [{ field: '_score', order: 'desc' }];
  const list = Array.isArray(sort) ? sort : [sort];
  return list.map((s) => {
    if (typeof s === 'string') return { field: s, order: s === '_score' ? 'desc' : 'asc' };
    const [field, spec] = Object.entries(s)[0];
    const order = typeof spec === 'string' ? spec : (spec && spec.order) || (field === '_score' ? 'desc' : 'asc');
    if (order !== 'asc' && order !== 'desc') throw new QueryError('parsing_exception', `[sort] unknown order [${order}]`);
    return { field, order };
  });
}

function sortValue(doc, field) {
  if (field === '_doc') return doc._seq;
  if (field === '_score') return 1;
  const v = values(getField(doc._source, field))[0];
  if (v === undefined) return null;
  const t = typeof v === 'string' ? toTime(v) : NaN;
  return !Number.isNaN(t) && typeof v === 'string' && /\d{4}-\d{2}-\d{2}/.test(v) ? t : v;
}

function sourceFilter(src, spec) {
  if (spec === undefined || spec === true) return src;
  if (spec === false) return undefined;
  const includes = Array.isArray(spec) ? spec : typeof spec === 'string' ? [spec] : spec.includes || spec.include || [];
  if (includes.length === 0) return src;
  const res = {};
  const toRe = (p) => new RegExp(`^${p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}(\\..*)?$`);
  const pats = includes.map(toRe);
  const walk = (obj, prefix, out) => {
    for (const [k, v] of Object.entries(obj)) {
      const path = prefix ? `${prefix}.${k}` : k;
      if (pats.some((re) => re.test(path))) out[k] = v;
      else if (v && typeof v === 'object' && !Array.isArray(v)) {
        const sub = {};
        walk(v, path, sub);
        if (Object.keys(sub).length) out[k] = sub;
      }
    }
  };
  walk(src, '', res);
  return res;
}

function resolveIndices(expr) {
  const names = [];
  for (const part of String(expr).split(',')) {
    if (part === '_all' || part === '*') {
      names.push(...indices.keys());
      continue;
    }
    if (part.includes('*')) {
      const re = new RegExp(`^${part.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
      names.push(...[...indices.keys()].filter((n) => re.test(n)));
      continue;
    }
    if (!indices.has(part)) return { missing: part };
    names.push(part);
  }
  return { names: [...new Set(names)] };
}

function search(ctx, indexExpr) {
  let body = {};
  if (ctx.bodyText) {
    try {
      body = JSON.parse(ctx.bodyText);
    } catch (e) {
      return esError(400, 'x_content_parse_exception', `[1:1] Unexpected character: ${e.message}`);
    }
    if (!body || typeof body !== 'object' || Array.isArray(body)) return esError(400, 'parsing_exception', 'request body must be an object');
  }
  const ct = ctx.headers['content-type'];
  if (ctx.bodyText && ct && !/json/i.test(ct)) {
    return { status: 406, body: { error: `Content-Type header [${ct}] is not supported`, status: 406 } };
  }
  const known = ['query', 'size', 'from', 'sort', '_source', 'track_total_hits', 'search_after', 'timeout', 'aggs', 'aggregations'];
  for (const k of Object.keys(body)) {
    if (!known.includes(k)) return esError(400, 'x_content_parse_exception', `[1:2] [search] unknown field [${k}]`);
  }
  const r = resolveIndices(indexExpr);
  if (r.missing) return esError(404, 'index_not_found_exception', `no such index [${r.missing}]`, { 'resource.type': 'index_or_alias', 'resource.id': r.missing, index: r.missing });
  const size = body.size === undefined ? Number(ctx.query.size || 10) : body.size;
  const from = body.from === undefined ? Number(ctx.query.from || 0) : body.from;
  if (!Number.isInteger(size) || size < 0) return esError(400, 'illegal_argument_exception', `[size] parameter cannot be negative, found [${size}]`);
  if (from + size > MAX_RESULT_WINDOW) {
    return esError(400, 'illegal_argument_exception', `Result window is too large, from + size must be less than or equal to: [${MAX_RESULT_WINDOW}] but was [${from + size}]. See the scroll api for a more efficient way to request large data sets. This limit can be set by changing the [index.max_result_window] index level setting.`);
  }
  let pred;
  let sorts;
  try {
    pred = body.query === undefined ? () => true : compile(body.query);
    sorts = sortSpec(body.sort);
  } catch (e) {
    if (e instanceof QueryError) return esError(400, e.type, e.message);
    throw e;
  }
  const t0 = Date.now();
  let hits = [];
  for (const name of r.names) {
    for (const d of indices.get(name)) if (pred(d._source)) hits.push({ index: name, doc: d });
  }
  const cmp = (a, b) => {
    for (const s of sorts) {
      const va = sortValue(a.doc, s.field);
      const vb = sortValue(b.doc, s.field);
      if (va === vb) continue;
      if (va === null) return 1;
      if (vb === null) return -1;
      const c = (va < vb ? -1 : 1) * (s.order === 'asc' ? 1 : -1);
      return c;
    }
    return a.doc._seq - b.doc._seq;
  };
  hits.sort(cmp);
  if (Array.isArray(body.search_after)) {
    if (body.search_after.length !== sorts.length) return esError(400, 'illegal_argument_exception', `search_after has ${body.search_after.length} value(s) but sort has ${sorts.length}`);
    hits = hits.filter((h) => {
      for (let i = 0; i < sorts.length; i++) {
        const v = sortValue(h.doc, sorts[i].field);
        const a = body.search_after[i];
        if (v === a) continue;
        return ((v < a) ? -1 : 1) * (sorts[i].order === 'asc' ? 1 : -1) > 0;
      }
      return false;
    });
  }
  const total = hits.length;
  const page = hits.slice(from, from + size);
  const tth = body.track_total_hits;
  let totalObj;
  if (tth === true) totalObj = { value: total, relation: 'eq' };
  else if (tth === false) totalObj = undefined;
  else {
    const cap = typeof tth === 'number' ? tth : 10000;
    totalObj = total > cap ? { value: cap, relation: 'gte' } : { value: total, relation: 'eq' };
  }
  const sorted = body.sort !== undefined;
  const out = {
    took: Date.now() - t0,
    timed_out: false,
    _shards: { total: r.names.length || 1, successful: r.names.length || 1, skipped: 0, failed: 0 },
    hits: {
      max_score: sorted ? null : (page.length ? 1.0 : null),
      hits: page.map((h) => {
        const o = { _index: h.index, _id: h.doc._id, _score: sorted ? null : 1.0 };
        const src = sourceFilter(h.doc._source, body._source);
        if (src !== undefined) o._source = src;
        if (sorted) o.sort = sorts.map((s) => sortValue(h.doc, s.field));
        return o;
      }),
    },
  };
  if (totalObj) out.hits = Object.assign({ total: totalObj }, out.hits);
  return { status: 200, body: out };
}

function authorized(ctx) {
  if (!args.api_key && !args.user) return true;
  const h = ctx.headers.authorization || '';
  if (args.api_key && h === `ApiKey ${args.api_key}`) return true;
  if (args.user && h === `Basic ${Buffer.from(args.user).toString('base64')}`) return true;
  return false;
}

function route(ctx) {
  if (!authorized(ctx)) {
    const r = esError(401, 'security_exception', `missing authentication credentials for REST request [${ctx.path}]`, { header: { 'WWW-Authenticate': ['Basic realm="security" charset="UTF-8"', 'ApiKey'] } });
    r.headers = { 'WWW-Authenticate': 'ApiKey' };
    return r;
  }
  const p = ctx.path;
  if (p === '/' && ctx.method === 'GET') {
    const version = args.flavor === 'opensearch' ? { distribution: 'opensearch', number: '2.13.0' } : { number: '8.13.0', build_flavor: 'default' };
    return { status: 200, body: { name: 'fake-node-1', cluster_name: 'fox-fake', cluster_uuid: 'fAkEcLuStEr', version, tagline: args.flavor === 'opensearch' ? 'The OpenSearch Project: https://opensearch.org/' : 'You Know, for Search' } };
  }
  let m = /^\/(?:([^/_][^/]*)\/)?_search$/.exec(p);
  if (m && (ctx.method === 'GET' || ctx.method === 'POST')) return search(ctx, m[1] || '_all');
  m = /^\/([^/_][^/]*)\/_doc$/.exec(p);
  if (m && ctx.method === 'POST') {
    let doc;
    try {
      doc = JSON.parse(ctx.bodyText);
    } catch (e) {
      return esError(400, 'mapper_parsing_exception', 'failed to parse');
    }
    try {
      addDocs(m[1], [doc]);
    } catch (e) {
      return esError(400, 'invalid_index_name_exception', e.message);
    }
    return { status: 201, body: { _index: m[1], _id: `doc${seq}`, result: 'created' } };
  }
  return esError(400, 'illegal_argument_exception', `request [${p}] contains unrecognized parameters or path`);
}

function control(ctx, p) {
  if (p === '/_fake/docs' && ctx.method === 'POST') {
    const b = ctx.json || {};
    if (typeof b.index !== 'string' || !Array.isArray(b.docs)) return { status: 400, body: { error: 'expected {index, docs: [...]}' } };
    try {
      return { status: 200, body: { added: addDocs(b.index, b.docs) } };
    } catch (e) {
      return { status: 400, body: { error: e.message } };
    }
  }
  if (p === '/_fake/docs' && ctx.method === 'DELETE') {
    indices.clear();
    return { status: 200, body: { indices: [] } };
  }
  if (p === '/_fake/indices' && ctx.method === 'GET') {
    const out = {};
    for (const [k, v] of indices) out[k] = v.length;
    return { status: 200, body: { indices: out } };
  }
  return null;
}

load(...scenario());

const server = new kit.FakeServer({
  name: 'elasticsearch',
  faultSeed: args.fault_seed,
  keyName: (ctx) => (ctx.headers.authorization ? ctx.headers.authorization.split(' ')[0] : null),
  route,
  faultResp: (rule) => {
    const status = rule.status || 500;
    if (status === 429) return esError(429, 'es_rejected_execution_exception', 'rejected execution of coordinating operation');
    if (status === 503) return esError(503, 'cluster_block_exception', 'blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];');
    return esError(status, 'fault_injected_exception', 'fault injected');
  },
  control,
  defaultConfig: () => ({ latency_ms: args.latency_ms }),
  onReset: (body) => load(...scenario(body)),
  stats: () => ({ indices: indices.size }),
});

server.start(args);
