#!/usr/bin/env node
'use strict';
// Fake Grafana Loki: `GET|POST /loki/api/v1/query_range` over streams loaded with the push
// API. Evaluates the LogQL subset fox's loki source (and a team's templates) use: a stream
// selector with = != =~ !~ matchers, line filters |= != |~ !~, the json and logfmt parsers
// and label filters after them. Errors are text/plain like Loki's ("parse error at line 1,
// col 7: ..."). Standard library only. docs/sources.md describes it.

const kit = require('../lib/fakekit');
const demo = require('../lib/demo');

const args = kit.cli('tests/fakes/loki/server.js', {
  ...kit.LISTEN_OPTIONS,
  scenario: { type: 'string', default: 'demo', arg: 'NAME', help: 'empty | demo (default demo)' },
  ...demo.SCENARIO_OPTIONS,
  token: { type: 'string', arg: 'T', help: 'require "Authorization: Bearer T"' },
  tenant: { type: 'string', arg: 'ID', help: 'require "X-Scope-OrgID: ID" (multi-tenant Loki)' },
  max_entries: { type: 'int', default: 5000, arg: 'N', help: 'max_entries_limit_per_query (default 5000)' },
  ...kit.ANSWER_OPTIONS,
});

const scenario = demo.scenarioFrom(args);
const NS = 1000000n;

// ---------------------------------------------------------------------------------------
// Streams: key (sorted labels) -> {labels, entries: [[BigInt ns, line]]}

let streams;

function labelKey(labels) {
  return Object.keys(labels).sort().map((k) => `${k}=${JSON.stringify(labels[k])}`).join(',');
}

function push(list) {
  let n = 0;
  for (const s of list) {
    if (!s || typeof s.stream !== 'object' || !Array.isArray(s.values)) throw new Error('each stream needs {stream: {labels}, values: [[ns, line]]}');
    const key = labelKey(s.stream);
    let st = streams.get(key);
    if (!st) {
      st = { labels: Object.assign({}, s.stream), entries: [] };
      streams.set(key, st);
    }
    for (const v of s.values) {
      if (!Array.isArray(v) || v.length < 2 || typeof v[1] !== 'string' || !/^\d+$/.test(String(v[0]))) throw new Error('values are ["<unix ns>", "<line>"] pairs');
      st.entries.push([BigInt(v[0]), v[1]]);
      n++;
    }
    st.entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }
  return n;
}

function load(name, now, incidentAt) {
  streams = new Map();
  if (name === 'empty') return;
  if (name !== 'demo') throw new Error(`unknown scenario ${name} (empty, demo)`);
  const by = new Map();
  for (const e of demo.logEvents({ now, incidentAt })) {
    const labels = { service: e.service, env: 'production', level: e.level, job: `acme/${e.service}` };
    const key = labelKey(labels);
    if (!by.has(key)) by.set(key, { stream: labels, values: [] });
    by.get(key).values.push([String(BigInt(Math.floor(e.ts)) * NS), demo.jsonLine(e)]);
  }
  push([...by.values()]);
}

// ---------------------------------------------------------------------------------------
// LogQL subset

class ParseError extends Error {
  constructor(col, msg) {
    super(`parse error at line 1, col ${col}: ${msg}`);
  }
}

// RE2 -> JS: a leading (?i) becomes the i flag; Loki anchors label regexes fully.
function regex(src, anchored, col) {
  let flags = '';
  let s = src;
  if (s.startsWith('(?i)')) {
    flags = 'i';
    s = s.slice(4);
  }
  try {
    return new RegExp(anchored ? `^(?:${s})$` : s, flags);
  } catch (e) {
    throw new ParseError(col, `invalid regex ${JSON.stringify(src)}: ${e.message}`);
  }
}

function tokenize(q) {
  const toks = [];
  let i = 0;
  while (i < q.length) {
    const c = q[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const col = i + 1;
    if (c === '"') {
      let j = i + 1;
      let out = '';
      while (j < q.length && q[j] !== '"') {
        if (q[j] === '\\' && j + 1 < q.length) {
          const n = q[j + 1];
          out += n === 'n' ? '\n' : n === 't' ? '\t' : n;
          j += 2;
        } else {
          out += q[j++];
        }
      }
      if (j >= q.length) throw new ParseError(col, 'unterminated string');
      toks.push({ t: 'str', v: out, col });
      i = j + 1;
      continue;
    }
    if (c === '`') {
      const j = q.indexOf('`', i + 1);
      if (j < 0) throw new ParseError(col, 'unterminated string');
      toks.push({ t: 'str', v: q.slice(i + 1, j), col });
      i = j + 1;
      continue;
    }
    const two = q.slice(i, i + 2);
    if (['|=', '!=', '|~', '!~', '=~'].includes(two)) {
      toks.push({ t: 'op', v: two, col });
      i += 2;
      continue;
    }
    if ('{}(),|=[]><'.includes(c)) {
      toks.push({ t: 'op', v: c, col });
      i++;
      continue;
    }
    const m = /^[A-Za-z_][A-Za-z0-9_.]*/.exec(q.slice(i));
    if (m) {
      toks.push({ t: 'id', v: m[0], col });
      i += m[0].length;
      continue;
    }
    const num = /^[0-9]+[a-z]*/.exec(q.slice(i));
    if (num) {
      toks.push({ t: 'num', v: num[0], col });
      i += num[0].length;
      continue;
    }
    throw new ParseError(col, `syntax error: unexpected character ${JSON.stringify(c)}`);
  }
  return toks;
}

function matcherFn(op, value, col) {
  if (op === '=') return (v) => (v || '') === value;
  if (op === '!=') return (v) => (v || '') !== value;
  const re = regex(value, true, col);
  if (op === '=~') return (v) => re.test(v || '');
  return (v) => !re.test(v || '');
}

// Returns {kind: 'log', selector: [fn], stages: [...]} or {kind: 'metric'}.
function parse(q) {
  if (typeof q !== 'string' || q.trim() === '') throw new ParseError(1, 'syntax error: unexpected end of input');
  const toks = tokenize(q);
  let p = 0;
  const peek = () => toks[p];
  const next = () => toks[p++];
  const expect = (t, v) => {
    const k = next();
    if (!k || k.t !== t || (v !== undefined && k.v !== v)) {
      const col = k ? k.col : q.length + 1;
      throw new ParseError(col, `syntax error: unexpected ${k ? (k.t === 'id' ? 'IDENTIFIER' : JSON.stringify(k.v)) : 'end of input'}, expecting ${v || t}`);
    }
    return k;
  };
  if (peek().t === 'id' && toks[1] && toks[1].v === '(') return { kind: 'metric' };
  expect('op', '{');
  const selector = [];
  if (peek() && peek().v === '}') throw new ParseError(peek().col, 'queries require at least one regexp or equality matcher that does not have an empty-compatible value');
  for (;;) {
    const name = expect('id');
    const op = next();
    if (!op || !['=', '!=', '=~', '!~'].includes(op.v)) throw new ParseError(op ? op.col : q.length, 'syntax error: unexpected token, expecting = or != or =~ or !~');
    const val = expect('str');
    const fn = matcherFn(op.v, val.v, val.col);
    selector.push({ name: name.v, fn, op: op.v, value: val.v });
    const sep = next();
    if (!sep) throw new ParseError(q.length + 1, 'syntax error: unexpected end of input, expecting } or ,');
    if (sep.v === '}') break;
    if (sep.v !== ',') throw new ParseError(sep.col, 'syntax error: unexpected token, expecting } or ,');
  }
  const stages = [];
  while (p < toks.length) {
    const k = next();
    if (['|=', '!=', '|~', '!~'].includes(k.v)) {
      const s = expect('str');
      if (k.v === '|=') stages.push({ type: 'line', fn: (l) => l.includes(s.v) });
      else if (k.v === '!=') stages.push({ type: 'line', fn: (l) => !l.includes(s.v) });
      else {
        const re = regex(s.v, false, s.col);
        stages.push({ type: 'line', fn: k.v === '|~' ? (l) => re.test(l) : (l) => !re.test(l) });
      }
      continue;
    }
    if (k.v === '|') {
      const id = expect('id');
      if (id.v === 'json' || id.v === 'logfmt') {
        stages.push({ type: 'parser', parser: id.v });
        continue;
      }
      if (id.v === 'line_format' || id.v === 'label_format' || id.v === 'unwrap' || id.v === 'pattern' || id.v === 'regexp' || id.v === 'decolorize') {
        throw new ParseError(id.col, `the fake does not support the ${id.v} stage`);
      }
      const op = next();
      if (!op || !['=', '!=', '=~', '!~'].includes(op.v)) throw new ParseError(op ? op.col : q.length, 'syntax error: unexpected token, expecting = or != or =~ or !~');
      const val = expect('str');
      const fn = matcherFn(op.v, val.v, val.col);
      stages.push({ type: 'label', name: id.v, fn });
      continue;
    }
    throw new ParseError(k.col, `syntax error: unexpected ${k.t === 'id' ? 'IDENTIFIER' : JSON.stringify(k.v)}`);
  }
  return { kind: 'log', selector, stages };
}

function parseLogfmt(line) {
  const out = {};
  const re = /([\w.-]+)=("((?:[^"\\]|\\.)*)"|\S*)/g;
  let m;
  while ((m = re.exec(line))) out[m[1]] = m[3] !== undefined ? m[3].replace(/\\(.)/g, '$1') : m[2];
  return out;
}

function flatten(obj, prefix, out) {
  for (const [k, v] of Object.entries(obj)) {
    const key = (prefix ? `${prefix}_` : '') + k.replace(/[^A-Za-z0-9_]/g, '_');
    if (v && typeof v === 'object' && !Array.isArray(v)) flatten(v, key, out);
    else out[key] = v === null ? '' : String(v);
  }
  return out;
}

// Runs the pipeline over one entry: null when filtered out, else its labels.
function apply(stages, labels, line) {
  let lbl = labels;
  for (const st of stages) {
    if (st.type === 'line') {
      if (!st.fn(line)) return null;
    } else if (st.type === 'parser') {
      lbl = Object.assign({}, lbl);
      if (st.parser === 'json') {
        try {
          const o = JSON.parse(line);
          if (o && typeof o === 'object') Object.assign(lbl, flatten(o, '', {}));
          else lbl.__error__ = 'JSONParserErr';
        } catch (e) {
          lbl.__error__ = 'JSONParserErr';
        }
      } else {
        Object.assign(lbl, parseLogfmt(line));
      }
    } else if (st.type === 'label') {
      if (!st.fn(lbl[st.name])) return null;
    }
  }
  return lbl;
}

// Loki accepts nanoseconds, RFC 3339 or (fractional) seconds.
function parseTimeParam(v, dflt) {
  if (v === undefined || v === '') return dflt;
  if (Array.isArray(v)) return null;
  if (/^\d{19}$/.test(v)) return BigInt(v);
  if (/^\d+(\.\d+)?$/.test(v)) {
    const [s, f = ''] = v.split('.');
    return BigInt(s) * 1000000000n + BigInt((f + '000000000').slice(0, 9));
  }
  const d = kit.parseDateOrTime(v);
  return d ? BigInt(d.ms) * NS : null;
}

function text(status, body) {
  return { status, headers: { 'Content-Type': 'text/plain; charset=utf-8' }, body: `${body}\n` };
}

function queryRange(ctx) {
  let params = ctx.query;
  if (ctx.method === 'POST') {
    const form = kit.parseForm(ctx.bodyText || '');
    if (!form) return text(400, 'invalid form body');
    params = Object.assign({}, params, form);
  }
  const nowNs = BigInt(Date.now()) * NS;
  const end = parseTimeParam(params.end, nowNs);
  if (end === null) return text(400, `invalid parameter "end": could not parse ${JSON.stringify(params.end)} as a timestamp`);
  const start = parseTimeParam(params.start, end - 3600n * 1000000000n);
  if (start === null) return text(400, `invalid parameter "start": could not parse ${JSON.stringify(params.start)} as a timestamp`);
  if (end < start) return text(400, 'end timestamp must not be before or equal to start time');
  const limit = params.limit === undefined ? 100 : Number(params.limit);
  if (!Number.isInteger(limit) || limit <= 0) return text(400, `invalid parameter "limit": ${JSON.stringify(params.limit)}`);
  if (limit > args.max_entries) return text(400, `max entries limit per query exceeded, limit > max_entries_limit_per_query (${limit} > ${args.max_entries})`);
  const direction = params.direction || 'backward';
  if (direction !== 'forward' && direction !== 'backward') return text(400, `invalid parameter "direction": ${direction}`);
  let q;
  try {
    q = parse(params.query);
  } catch (e) {
    if (e instanceof ParseError) return text(400, e.message);
    throw e;
  }
  const t0 = Date.now();
  if (q.kind === 'metric') {
    return { status: 200, body: { status: 'success', data: { resultType: 'matrix', result: [], stats: {} } } };
  }
  const hits = [];
  let scanned = 0;
  for (const st of streams.values()) {
    if (!q.selector.every((m) => m.fn(st.labels[m.name]))) continue;
    for (const [ts, line] of st.entries) {
      if (ts < start || ts >= end) continue;
      scanned++;
      const lbl = apply(q.stages, st.labels, line);
      if (lbl) hits.push({ ts, line, labels: lbl });
    }
  }
  hits.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0) * (direction === 'forward' ? 1 : -1));
  const picked = hits.slice(0, limit);
  const out = new Map();
  for (const h of picked) {
    const key = labelKey(h.labels);
    if (!out.has(key)) out.set(key, { stream: h.labels, values: [] });
    out.get(key).values.push([String(h.ts), h.line]);
  }
  return {
    status: 200,
    body: {
      status: 'success',
      data: {
        resultType: 'streams',
        result: [...out.values()],
        stats: { summary: { totalEntriesReturned: picked.length, totalLinesProcessed: scanned, execTime: (Date.now() - t0) / 1000 } },
      },
    },
  };
}

function route(ctx) {
  if (ctx.path === '/ready') return text(200, 'ready');
  if (args.tenant && ctx.headers['x-scope-orgid'] !== args.tenant) return text(401, 'no org id');
  if (args.token && ctx.headers.authorization !== `Bearer ${args.token}`) return text(401, 'authentication required');
  if (ctx.path === '/loki/api/v1/query_range' && (ctx.method === 'GET' || ctx.method === 'POST')) return queryRange(ctx);
  if (ctx.path === '/loki/api/v1/push' && ctx.method === 'POST') {
    let body;
    try {
      body = JSON.parse(ctx.bodyText);
      push(body.streams || []);
    } catch (e) {
      return text(400, `loghttp.PushRequest: ${e.message}`);
    }
    return { status: 204, body: '' };
  }
  if (ctx.path === '/loki/api/v1/labels') {
    const names = new Set();
    for (const s of streams.values()) for (const k of Object.keys(s.labels)) names.add(k);
    return { status: 200, body: { status: 'success', data: [...names].sort() } };
  }
  return text(404, '404 page not found');
}

function control(ctx, p) {
  if (p === '/_fake/push' && ctx.method === 'POST') {
    try {
      const n = push((ctx.json && ctx.json.streams) || []);
      return { status: 200, body: { entries: n } };
    } catch (e) {
      return { status: 400, body: { error: e.message } };
    }
  }
  if (p === '/_fake/streams' && ctx.method === 'DELETE') {
    streams.clear();
    return { status: 200, body: { streams: 0 } };
  }
  if (p === '/_fake/streams' && ctx.method === 'GET') {
    return { status: 200, body: { streams: [...streams.values()].map((s) => ({ stream: s.labels, entries: s.entries.length })) } };
  }
  return null;
}

load(...scenario());

const server = new kit.FakeServer({
  name: 'loki',
  faultSeed: args.fault_seed,
  keyName: (ctx) => ctx.headers['x-scope-orgid'] || (ctx.headers.authorization ? 'bearer' : null),
  route,
  faultResp: (rule) => ({ status: rule.status || 500, headers: { 'Content-Type': 'text/plain; charset=utf-8' },
    body: rule.status === 429 ? 'too many outstanding requests\n' : 'rpc error: code = Unavailable desc = fault injected\n' }),
  control,
  defaultConfig: () => ({ latency_ms: args.latency_ms }),
  onReset: (body) => load(...scenario(body)),
  stats: () => ({ streams: streams.size }),
});

server.start(args);
