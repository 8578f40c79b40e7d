'use strict';
// Shared plumbing for the fake servers of tests/fakes/: CLI parsing, listening and
// lifetime (port file, SIGTERM, --parent-pid), query parsing, the request log, counters,
// fault injection and the delivery of answers (latency, drip, truncation...).
// Standard library only.

const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');

// ---------------------------------------------------------------------------------------
// CLI

// spec: { name: { type: 'string'|'int'|'number'|'bool'|'list', default, arg, help } }
// Accepts `--name value`, `--name=value`, `--no-name` for bools, repeated `--name` for lists.
// usage is the --help text.
function parseArgs(argv, spec, usage) {
  const out = {};
  for (const [k, s] of Object.entries(spec)) {
    out[k] = s.type === 'list' ? (s.default ? [...s.default] : []) : s.default;
  }
  const fail = (msg) => {
    process.stderr.write(`${msg}\n${usage || ''}`);
    process.exit(2);
  };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    if (a === '-h' || a === '--help') {
      process.stdout.write(usage || '');
      process.exit(0);
    }
    if (!a.startsWith('--')) fail(`unexpected argument: ${a}`);
    a = a.slice(2);
    let val;
    const eq = a.indexOf('=');
    if (eq >= 0) {
      val = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    let name = a.replace(/-/g, '_');
    let s = spec[name];
    if (!s && name.startsWith('no_') && spec[name.slice(3)] && spec[name.slice(3)].type === 'bool') {
      out[name.slice(3)] = false;
      continue;
    }
    if (!s) fail(`unknown option: --${a}`);
    if (s.type === 'bool') {
      out[name] = val === undefined ? true : !/^(0|false|no|off)$/i.test(val);
      continue;
    }
    if (val === undefined) {
      if (i + 1 >= argv.length) fail(`--${a} needs a value`);
      val = argv[++i];
    }
    if (s.type === 'int' || s.type === 'number') {
      const n = Number(val);
      if (!Number.isFinite(n) || (s.type === 'int' && !Number.isInteger(n))) fail(`--${a}: not a number: ${val}`);
      out[name] = n;
    } else if (s.type === 'list') {
      out[name].push(val);
    } else {
      out[name] = val;
    }
  }
  return out;
}

// The command line of the fake SCRIPT (its path, for --help), whose --help is made from
// the spec's arg and help fields.
function cli(script, spec) {
  return parseArgs(process.argv.slice(2), spec, usageOf(script, spec));
}

// `usage: node SCRIPT [options]` and one aligned line per option that has help text.
function usageOf(script, spec) {
  const rows = [];
  for (const [name, s] of Object.entries(spec)) {
    if (!s.help) continue;
    const flag = s.type === 'bool' && s.default === true ? `--no-${name}` : `--${name}`;
    rows.push([flag.replace(/_/g, '-') + (s.arg ? ` ${s.arg}` : ''), s.help]);
  }
  const width = Math.max(...rows.map(([f]) => f.length)) + 2;
  return `usage: node ${script} [options]\n` + rows.map(([f, h]) => `  ${f.padEnd(width)}${h}\n`).join('');
}

// The options of every fake: where it listens and when it goes away.
const LISTEN_OPTIONS = {
  port: { type: 'int', default: 0, arg: 'N', help: 'port (0 = any free port; default 0)' },
  host: { type: 'string', default: '127.0.0.1', arg: 'H', help: 'address to bind (default 127.0.0.1)' },
  port_file: { type: 'string', arg: 'PATH', help: 'write the port there once listening' },
  parent_pid: { type: 'int', arg: 'PID', help: 'exit when that process is gone (checked every second)' },
};

// The options of the fakes that delay and break their answers on request.
const ANSWER_OPTIONS = {
  latency_ms: { type: 'int', default: 0, arg: 'N', help: 'delay every API answer by N ms' },
  fault_seed: { type: 'int', default: 1, arg: 'N', help: 'seed of the fault-probability PRNG (default 1)' },
};

// ---------------------------------------------------------------------------------------
// Small helpers

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function requestId() {
  return crypto.randomUUID();
}

// Deterministic PRNG (mulberry32).
function prng(seed) {
  let a = seed >>> 0;
  return function next() {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
// A stable ULID-looking id (26 Crockford base32 chars) derived from a key.
function ulidFor(key) {
  const h = crypto.createHash('sha256').update(String(key)).digest();
  let s = '01J';
  for (let i = 0; s.length < 26; i++) s += CROCKFORD[h[i] & 31];
  return s;
}

// RFC 3339 with microseconds like the real API ("2021-08-17T13:28:57.801578Z"). The three
// extra digits are derived from the millisecond value so output stays deterministic.
function rfc3339(ms) {
  const iso = new Date(ms).toISOString(); // ...SS.mmmZ
  const micro = String(Math.abs(Math.floor(ms) * 7919) % 1000).padStart(3, '0');
  return iso.slice(0, -1) + micro + 'Z';
}

// Parses a date (YYYY-MM-DD, as UTC midnight) or an RFC 3339 date-time. Returns
// {ms, dateOnly} or null when malformed.
const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATETIME_RE = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;
function validYMD(y, m, d) {
  if (m < 1 || m > 12 || d < 1) return false;
  const dim = new Date(Date.UTC(y, m, 0)).getUTCDate();
  return d <= dim;
}
function parseDateOrTime(s, { allowDate = true, allowDateTime = true } = {}) {
  if (typeof s !== 'string') return null;
  let m = DATE_RE.exec(s);
  if (m) {
    if (!allowDate) return null;
    const [y, mo, d] = [+m[1], +m[2], +m[3]];
    if (!validYMD(y, mo, d)) return null;
    return { ms: Date.UTC(y, mo - 1, d), dateOnly: true };
  }
  m = DATETIME_RE.exec(s);
  if (m) {
    if (!allowDateTime) return null;
    const [y, mo, d, h, mi, se] = [+m[1], +m[2], +m[3], +m[4], +m[5], +m[6]];
    if (!validYMD(y, mo, d) || h > 23 || mi > 59 || se > 60) return null;
    let ms = Date.UTC(y, mo - 1, d, h, mi, Math.min(se, 59));
    if (m[7]) ms += Math.floor(Number('0' + m[7]) * 1000);
    const tz = m[8];
    if (tz !== 'Z' && tz !== 'z') {
      const sign = tz[0] === '-' ? -1 : 1;
      const off = (+tz.slice(1, 3) * 60 + +tz.slice(4, 6)) * 60000;
      if (+tz.slice(1, 3) > 23 || +tz.slice(4, 6) > 59) return null;
      ms -= sign * off;
    }
    return { ms, dateOnly: false };
  }
  return null;
}

// Query strings: keys and values are percent-decoded ('+' is a space), so `%5B` and a literal
// `[` are the same. Returns { pairs: [[k, v]...], obj: {k: v | [v...]} } or { error }.
function parseQuery(raw) {
  const pairs = [];
  const obj = {};
  if (!raw) return { pairs, obj };
  for (const part of raw.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const rk = eq >= 0 ? part.slice(0, eq) : part;
    const rv = eq >= 0 ? part.slice(eq + 1) : '';
    let k, v;
    try {
      k = decodeURIComponent(rk.replace(/\+/g, ' '));
      v = decodeURIComponent(rv.replace(/\+/g, ' '));
    } catch (e) {
      return { error: `malformed percent-encoding in query parameter ${JSON.stringify(rk)}`, pairs, obj };
    }
    pairs.push([k, v]);
    if (Object.prototype.hasOwnProperty.call(obj, k)) {
      if (Array.isArray(obj[k])) obj[k].push(v);
      else obj[k] = [obj[k], v];
    } else {
      obj[k] = v;
    }
  }
  return { pairs, obj };
}

function parseForm(text) {
  const q = parseQuery(text);
  if (q.error) return null;
  const out = {};
  for (const [k, v] of q.pairs) out[k] = v;
  return out;
}

// Sets the keys of body on config c after checking each against types: {key: 'bool' |
// 'positive' | 'ms' (a non-negative integer) | 'any' | [allowed values] | fn(v) -> error
// or null (the key is not stored)}. Returns null, or {error} for the first bad key.
function applyConfig(c, body, types) {
  for (const [k, v] of Object.entries(body)) {
    const t = Object.prototype.hasOwnProperty.call(types, k) ? types[k] : undefined;
    let err = null;
    if (t === undefined) err = `unknown config key ${k}`;
    else if (typeof t === 'function') err = t(v);
    else if (t === 'bool') err = typeof v === 'boolean' ? null : `${k} must be a boolean`;
    else if (t === 'positive') err = typeof v === 'number' && v > 0 ? null : `${k} must be a positive number`;
    else if (t === 'ms') err = Number.isInteger(v) && v >= 0 ? null : `${k} must be a non-negative integer`;
    else if (Array.isArray(t)) err = t.includes(v) ? null : `${k}: ${t.join(' | ')}`;
    if (err) return { error: err };
    if (typeof t !== 'function') c[k] = v;
  }
  return null;
}

// ---------------------------------------------------------------------------------------
// Request log and counters

class RequestLog {
  constructor(limit = 20000) {
    this.limit = limit;
    this.entries = [];
    this.seq = 0;
  }
  add(entry) {
    entry.seq = ++this.seq;
    this.entries.push(entry);
    if (this.entries.length > this.limit) this.entries.splice(0, this.entries.length - this.limit);
    return entry;
  }
  clear() {
    this.entries = [];
  }
  list(filter = {}) {
    const since = Number(filter.since || 0);
    return this.entries.filter(
      (e) =>
        e.seq > since &&
        (!filter.path_prefix || e.path.startsWith(filter.path_prefix)) &&
        (!filter.path || e.path === filter.path) &&
        (!filter.method || e.method === String(filter.method).toUpperCase()) &&
        (!filter.key || e.key === filter.key) &&
        (!filter.status || String(e.status) === String(filter.status))
    );
  }
}

// Max observed request rate over sliding windows (1 s and 60 s) per key.
class RateObserver {
  constructor() {
    this.keys = new Map();
  }
  hit(key, now) {
    let k = this.keys.get(key);
    if (!k) {
      k = { times: [], head: 0, i1: 0, max1: 0, max60: 0 };
      this.keys.set(key, k);
    }
    k.times.push(now);
    while (k.head < k.times.length && k.times[k.head] <= now - 60000) k.head++;
    if (k.i1 < k.head) k.i1 = k.head;
    while (k.i1 < k.times.length && k.times[k.i1] <= now - 1000) k.i1++;
    k.max1 = Math.max(k.max1, k.times.length - k.i1);
    k.max60 = Math.max(k.max60, k.times.length - k.head);
    if (k.head > 4096 && k.head * 2 > k.times.length) {
      k.times = k.times.slice(k.head);
      k.i1 -= k.head;
      k.head = 0;
    }
  }
  get(key) {
    const k = this.keys.get(key);
    return k ? { max_rate_1s: k.max1, max_rate_60s: k.max60 } : { max_rate_1s: 0, max_rate_60s: 0 };
  }
  clear() {
    this.keys.clear();
  }
}

// ---------------------------------------------------------------------------------------
// Fault injection

const FAULT_KEYS = new Set([
  'path_prefix', 'path', 'method', 'key', 'times', 'skip', 'probability', 'status', 'retry_after',
  'delay_ms', 'reset', 'malformed_json', 'truncate', 'body_bytes', 'drip', 'drip_bytes', 'drip_ms',
  'body', 'headers', 'content_type', 'slack_error', 'comment',
]);

class Faults {
  constructor(seed = 1) {
    this.seed = seed;
    this.reset();
  }
  reset() {
    this.rules = [];
    this.rand = prng(this.seed);
    this.applied = 0;
  }
  // Returns an error string or null.
  set(list, append = false) {
    if (list && !Array.isArray(list) && Array.isArray(list.rules)) list = list.rules;
    if (list && !Array.isArray(list)) list = [list];
    if (!Array.isArray(list)) return 'expected a JSON list of fault rules';
    const rules = [];
    for (const [i, r] of list.entries()) {
      if (!r || typeof r !== 'object' || Array.isArray(r)) return `rule ${i}: not an object`;
      for (const k of Object.keys(r)) if (!FAULT_KEYS.has(k)) return `rule ${i}: unknown key ${k}`;
      if (r.probability !== undefined && !(r.probability >= 0 && r.probability <= 1)) return `rule ${i}: probability must be within 0..1`;
      if (r.status !== undefined && !(Number.isInteger(r.status) && r.status >= 100 && r.status <= 599)) return `rule ${i}: bad status`;
      for (const k of ['times', 'skip', 'delay_ms', 'body_bytes', 'drip_bytes', 'drip_ms']) {
        if (r[k] !== undefined && !(Number.isInteger(r[k]) && r[k] >= 0)) return `rule ${i}: ${k} must be a non-negative integer`;
      }
      rules.push({ ...r, hits: 0, seen: 0 });
    }
    this.rules = append ? this.rules.concat(rules) : rules;
    return null;
  }
  match(method, pathName, keyName) {
    for (const r of this.rules) {
      if (r.method && String(r.method).toUpperCase() !== method) continue;
      if (r.path_prefix && !pathName.startsWith(r.path_prefix)) continue;
      if (r.path && r.path !== pathName) continue;
      if (r.key && r.key !== keyName) continue;
      if (r.times !== undefined && r.hits >= r.times) continue;
      r.seen++;
      if (r.skip && r.seen <= r.skip) continue;
      if (r.probability !== undefined && this.rand() >= r.probability) continue;
      r.hits++;
      this.applied++;
      return r;
    }
    return null;
  }
  list() {
    return this.rules.map((r) => ({ ...r, remaining: r.times === undefined ? null : Math.max(0, r.times - r.hits) }));
  }
}

// ---------------------------------------------------------------------------------------
// Delivery of an answer, with the body-level faults.

function retryAfterHeader(v) {
  if (v === undefined || v === null) return '1';
  return String(v);
}

// resp: { status, headers, body (object | string | Buffer) }
async function deliver(res, resp, rule, entry) {
  let body = resp.body;
  const headers = Object.assign({}, resp.headers || {});
  if (body === undefined || body === null) body = '';
  if (!Buffer.isBuffer(body)) {
    if (typeof body === 'string') {
      if (!headers['Content-Type']) headers['Content-Type'] = 'text/plain; charset=utf-8';
    } else {
      body = JSON.stringify(body);
      if (!headers['Content-Type']) headers['Content-Type'] = 'application/json; charset=utf-8';
    }
    body = Buffer.from(body);
  }
  if (rule) {
    if (rule.body_bytes !== undefined) {
      // A valid JSON answer of (about) the requested size: the real body plus padding.
      let obj;
      try {
        obj = JSON.parse(body.toString());
      } catch (e) {
        obj = {};
      }
      if (!obj || typeof obj !== 'object' || Array.isArray(obj)) obj = { value: obj };
      const base = Buffer.byteLength(JSON.stringify(Object.assign({}, obj, { _padding: '' })));
      obj._padding = 'x'.repeat(Math.max(0, rule.body_bytes - base));
      body = Buffer.from(JSON.stringify(obj));
    }
    if (rule.malformed_json) {
      const s = body.toString();
      body = Buffer.from(s.length > 2 ? s.slice(0, Math.floor(s.length / 2)) : '{"incomplete": ');
      headers['Content-Type'] = 'application/json; charset=utf-8';
    }
    if (rule.content_type) headers['Content-Type'] = rule.content_type;
    if (rule.headers) Object.assign(headers, rule.headers);
  }
  headers['Content-Length'] = String(body.length);
  if (res.destroyed) return;
  res.writeHead(resp.status, headers);
  if (rule && rule.truncate) {
    res.write(body.subarray(0, Math.floor(body.length / 2)));
    entry.status = 'truncated';
    await sleep(20);
    res.socket && res.socket.destroy();
    return;
  }
  if (rule && rule.drip) {
    const n = rule.drip_bytes || 16;
    const every = rule.drip_ms === undefined ? 100 : rule.drip_ms;
    for (let off = 0; off < body.length; off += n) {
      if (res.destroyed || (res.socket && res.socket.destroyed)) return;
      res.write(body.subarray(off, off + n));
      await sleep(every);
    }
    res.end();
    return;
  }
  if (body.length > 1 << 20) {
    for (let off = 0; off < body.length; off += 1 << 16) {
      if (res.destroyed) return;
      if (!res.write(body.subarray(off, off + (1 << 16)))) await new Promise((r) => res.once('drain', r));
    }
    res.end();
  } else {
    res.end(body);
  }
}

// ---------------------------------------------------------------------------------------
// The server shell.
//
// opts:
//   name          'incidentio', 'slack', 'loki'... (names it in messages)
//   route(ctx)    -> resp for API requests (may be async)
//   control(ctx)  -> resp or null for /_fake/ requests specific to this fake
//   faultResp(rule, ctx) -> resp for a rule with `status`
//   latency()     -> ms to wait before every API answer
//   keyName(ctx)  -> name of the credential for the log (called before route)
//   onReset(body) -> restores state for POST /_fake/reset; returns an error string, or
//                    throws one, when it cannot
//   stats()       -> object merged into GET /_fake/stats
//   config(body)  -> POST /_fake/config handler; returns {error} or the new config
//   getConfig()
//   defaultConfig() -> a flat config instead of config/getConfig/latency: server.config
//                    starts as it and is restored by a reset; POST /_fake/config sets
//                    its keys; its latency_ms delays every API answer
//   ready(server) -> runs once the port is known, before the port file is written
class FakeServer {
  constructor(opts) {
    if (opts.defaultConfig) {
      opts = Object.assign({
        latency: () => this.config.latency_ms,
        getConfig: () => this.config,
        config: (body) => {
          for (const [k, v] of Object.entries(body)) {
            if (!(k in this.config)) return { error: `unknown config key ${k}` };
            this.config[k] = v;
          }
          return null;
        },
      }, opts);
      this.config = opts.defaultConfig();
    }
    this.opts = opts;
    this.log = new RequestLog();
    this.faults = new Faults(opts.faultSeed || 1);
    this.rates = new RateObserver();
    this.counts = { requests: 0, by_status: {}, faults_applied: 0 };
    this.server = http.createServer((req, res) => this.handle(req, res));
    this.server.keepAliveTimeout = 5000;
    this.sockets = new Set();
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  resetCounters() {
    this.log.clear();
    this.rates.clear();
    this.counts = { requests: 0, by_status: {}, faults_applied: 0 };
  }

  async handle(req, res) {
    const started = Date.now();
    const url = req.url || '/';
    const qi = url.indexOf('?');
    const rawPath = qi >= 0 ? url.slice(0, qi) : url;
    const rawQuery = qi >= 0 ? url.slice(qi + 1) : '';
    let pathName;
    try {
      pathName = decodeURIComponent(rawPath);
    } catch (e) {
      pathName = rawPath;
    }
    const q = parseQuery(rawQuery);
    const chunks = [];
    let size = 0;
    let tooBig = false;
    for await (const c of req) {
      size += c.length;
      if (size > 8 << 20) tooBig = true;
      else chunks.push(c);
    }
    const bodyText = Buffer.concat(chunks).toString('utf8');
    const ctx = {
      req, res, method: req.method, path: pathName, rawQuery, query: q.obj, pairs: q.pairs,
      queryError: q.error, headers: req.headers, bodyText, tooBig, started,
    };

    if (pathName.startsWith('/_fake/') || pathName === '/_fake') {
      let resp;
      try {
        resp = await this.controlRoute(ctx);
      } catch (e) {
        resp = { status: 500, body: { error: String(e && e.stack || e) } };
      }
      return deliver(res, resp, null, {});
    }

    const entry = {
      time: new Date(started).toISOString(),
      method: req.method,
      path: pathName,
      query: q.obj,
      raw_query: rawQuery,
      key: null,
      status: null,
      headers: redactHeaders(req.headers),
    };
    if (bodyText) {
      try {
        entry.body = JSON.parse(bodyText);
      } catch (e) {
        entry.body = bodyText.length > 4096 ? bodyText.slice(0, 4096) + '...' : bodyText;
      }
    }
    this.log.add(entry);
    this.counts.requests++;
    try {
      entry.key = this.opts.keyName ? this.opts.keyName(ctx) : null;
    } catch (e) {
      entry.key = null;
    }
    ctx.entry = entry;
    this.rates.hit(entry.key || '(none)', started);
    let counted = false;
    const done = () => {
      if (entry.status === null) entry.status = res.writableFinished ? res.statusCode : 'client_closed';
      if (entry.duration_ms === undefined) entry.duration_ms = Date.now() - started;
      if (!counted) {
        counted = true;
        this.counts.by_status[entry.status] = (this.counts.by_status[entry.status] || 0) + 1;
      }
    };
    res.on('finish', done);
    res.on('close', done);

    const rule = this.faults.match(req.method, pathName, entry.key);
    if (rule) {
      this.counts.faults_applied++;
      entry.fault = describeRule(rule);
      if (rule.delay_ms) await sleep(rule.delay_ms);
      if (rule.reset) {
        entry.status = 'reset';
        req.socket.destroy();
        return;
      }
    }
    let resp;
    try {
      if (rule && rule.status !== undefined && !rule.slack_error) resp = this.opts.faultResp(rule, ctx);
      else resp = await this.opts.route(ctx, rule);
    } catch (e) {
      process.stderr.write(`${this.opts.name}: handler error: ${e && e.stack}\n`);
      resp = this.opts.faultResp({ status: 500 }, ctx);
    }
    if (rule && rule.body !== undefined) resp = Object.assign({}, resp, { body: rule.body });
    const lat = this.opts.latency ? this.opts.latency() : 0;
    if (lat > 0) await sleep(lat);
    await deliver(res, resp, rule, entry);
  }

  async controlRoute(ctx) {
    const m = ctx.method;
    const p = ctx.path.replace(/\/+$/, '');
    let body = null;
    if (ctx.bodyText) {
      try {
        body = JSON.parse(ctx.bodyText);
      } catch (e) {
        return { status: 400, body: { error: 'control API bodies are JSON: ' + e.message } };
      }
    }
    ctx.json = body;
    if (p === '/_fake/health' && m === 'GET') {
      return { status: 200, body: { ok: true, name: this.opts.name, port: this.port, pid: process.pid } };
    }
    if (p === '/_fake/faults') {
      if (m === 'GET') return { status: 200, body: { faults: this.faults.list(), applied: this.faults.applied } };
      if (m === 'DELETE') {
        this.faults.set([]);
        return { status: 200, body: { faults: [] } };
      }
      if (m === 'POST') {
        const err = this.faults.set(body, ctx.query.append === '1' || ctx.query.append === 'true');
        if (err) return { status: 400, body: { error: err } };
        return { status: 200, body: { faults: this.faults.list() } };
      }
    }
    if (p === '/_fake/requests') {
      if (m === 'GET') return { status: 200, body: { requests: this.log.list(ctx.query) } };
      if (m === 'DELETE') {
        this.log.clear();
        return { status: 200, body: { requests: [] } };
      }
    }
    if (p === '/_fake/stats' && m === 'GET') {
      const keys = {};
      for (const k of this.rates.keys.keys()) keys[k] = Object.assign({ requests: 0, rate_limited: 0 }, this.rates.get(k));
      for (const e of this.log.entries) {
        const k = e.key || '(none)';
        if (!keys[k]) keys[k] = Object.assign({ requests: 0, rate_limited: 0 }, this.rates.get(k));
      }
      const extra = this.opts.stats ? this.opts.stats() : {};
      for (const [k, v] of Object.entries(extra.keys || {})) keys[k] = Object.assign(keys[k] || this.rates.get(k), v);
      return {
        status: 200,
        body: Object.assign({}, this.counts, { faults_applied: this.faults.applied }, extra, { keys }),
      };
    }
    if (p === '/_fake/reset' && m === 'POST') {
      this.faults.reset();
      this.resetCounters();
      let err = null;
      try {
        err = this.opts.onReset ? this.opts.onReset(body || {}) : null;
      } catch (e) {
        err = e.message;
      }
      if (err) return { status: 400, body: { error: err } };
      if (this.opts.defaultConfig) this.config = this.opts.defaultConfig();
      return { status: 200, body: { ok: true } };
    }
    if (p === '/_fake/config') {
      if (m === 'GET') return { status: 200, body: { config: this.opts.getConfig() } };
      if (m === 'POST') {
        const r = this.opts.config(body || {});
        if (r && r.error) return { status: 400, body: { error: r.error } };
        return { status: 200, body: { config: this.opts.getConfig() } };
      }
    }
    if (p === '/_fake/shutdown' && m === 'POST') {
      setTimeout(() => this.stop(0), 10);
      return { status: 200, body: { ok: true } };
    }
    const r = this.opts.control ? await this.opts.control(ctx, p) : null;
    if (r) return r;
    return { status: 404, body: { error: `no control endpoint ${m} ${p}` } };
  }

  listen({ port = 0, host = '127.0.0.1', portFile, parentPid }) {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.port = this.server.address().port;
        const shownHost = host.includes(':') ? `[${host}]` : host;
        this.url = `http://${shownHost}:${this.port}`;
        if (this.opts.ready) {
          try {
            this.opts.ready(this);
          } catch (e) {
            process.stderr.write(`${this.opts.name} fake: ${e.message}\n`);
            process.exit(2);
          }
        }
        if (portFile) {
          const tmp = `${portFile}.${process.pid}.tmp`;
          fs.mkdirSync(path.dirname(path.resolve(portFile)), { recursive: true });
          fs.writeFileSync(tmp, `${this.port}\n`);
          fs.renameSync(tmp, portFile);
        }
        process.stdout.write(`listening on ${this.url}\n`);
        for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => this.stop(0));
        if (parentPid) {
          const t = setInterval(() => {
            try {
              process.kill(parentPid, 0);
            } catch (e) {
              if (e.code === 'ESRCH') this.stop(0);
            }
          }, 1000);
          t.unref();
        }
        resolve(this);
      });
    });
  }

  // Listens where the LISTEN_OPTIONS say; exits 1 when it cannot.
  start(args) {
    return this.listen({ port: args.port, host: args.host, portFile: args.port_file, parentPid: args.parent_pid }).catch((e) => {
      process.stderr.write(`${this.opts.name} fake: cannot listen: ${e.message}\n`);
      process.exit(1);
    });
  }

  stop(code) {
    try {
      this.server.close();
      for (const s of this.sockets) s.destroy();
    } catch (e) {
      /* exiting anyway */
    }
    process.exit(code);
  }
}

function redactHeaders(h) {
  const out = {};
  for (const [k, v] of Object.entries(h)) {
    if (k === 'authorization') {
      const s = String(v);
      out[k] = s.length > 16 ? s.slice(0, 12) + '...' : s;
    } else {
      out[k] = v;
    }
  }
  return out;
}

function describeRule(r) {
  const parts = [];
  for (const k of ['status', 'reset', 'malformed_json', 'truncate', 'body_bytes', 'drip', 'delay_ms', 'slack_error']) {
    if (r[k] !== undefined && r[k] !== false) parts.push(r[k] === true ? k : `${k}=${r[k]}`);
  }
  return parts.join(' ') || 'match';
}

module.exports = {
  parseArgs, cli, LISTEN_OPTIONS, ANSWER_OPTIONS, applyConfig, sleep, requestId, prng, ulidFor, rfc3339, parseDateOrTime, parseQuery, parseForm,
  RequestLog, RateObserver, Faults, FakeServer, deliver, retryAfterHeader, CROCKFORD,
};
