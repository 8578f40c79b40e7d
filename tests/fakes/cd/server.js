#!/usr/bin/env node
'use strict';
// Fake change feed of a CD system: `GET /changes?since=&until=&service=` answers the
// changes (deploys, config changes, migrations...) as a JSON array, or as
// {"changes": [...]} with --shape wrapped. An optional bearer token (--token) is required
// when given. Standard library only. docs/sources.md describes it.

const kit = require('../lib/fakekit');
const demo = require('../lib/demo');

const USAGE = `usage: node tests/fakes/cd/server.js [options]
  --port N            port (0 = any free port; default 0)
  --host H            address to bind (default 127.0.0.1)
  --port-file PATH    write the port there once listening
  --parent-pid PID    exit when that process is gone
  --scenario NAME     empty | demo (default demo)
  --now TIME          reference time (RFC 3339 or epoch; default: start)
  --incident-at TIME  when the demo incident was created (default: now - 20 min)
  --token T           require "Authorization: Bearer T"
  --shape S           array | wrapped (default array)
  --path P            path of the feed (default /changes)
  --no-filter         ignore since/until/service (answer everything)
  --latency-ms N      delay every answer
  --fault-seed N      seed of the fault-probability PRNG
`;

const args = kit.parseArgs(process.argv.slice(2), {
  port: { type: 'int', default: 0 },
  host: { type: 'string', default: '127.0.0.1' },
  port_file: { type: 'string' },
  parent_pid: { type: 'int' },
  scenario: { type: 'string', default: 'demo' },
  now: { type: 'string' },
  incident_at: { type: 'string' },
  token: { type: 'string' },
  shape: { type: 'string', default: 'array' },
  path: { type: 'string', default: '/changes' },
  filter: { type: 'bool', default: true },
  latency_ms: { type: 'int', default: 0 },
  fault_seed: { type: 'int', default: 1 },
}, USAGE);

const START = demo.parseTime(args.now, Date.now());
const INCIDENT_AT = args.incident_at ? demo.parseTime(args.incident_at) : undefined;
const MIN = 60000;
const HOUR = 60 * MIN;

function iso(ms) {
  return new Date(ms).toISOString();
}

function scenario(name, now, incidentAt) {
  if (name === 'empty') return [];
  if (name !== 'demo') throw new Error(`unknown scenario ${name} (empty, demo)`);
  const t = demo.timeline({ now, incidentAt });
  return [
    { id: 'cd-5120', service: 'payments-api', kind: 'deploy', version: t.version, at: iso(t.deployAt),
      description: `Deploy payments-api ${t.version}: ${t.prTitle} (PR #${t.prNumber})`, author: 'deploy-bot',
      url: 'https://cd.acme.test/pipelines/5120', environment: 'production' },
    { id: 'cd-5117', service: 'checkout-service', kind: 'feature_flag', at: iso(t.incidentAt - 2 * HOUR),
      description: 'Enabled feature flag checkout.new_banner for 10% of users', author: 'sofia-dev',
      url: 'https://flags.acme.test/checkout.new_banner' },
    { id: 'cd-5101', service: 'payments-api', kind: 'deploy', version: t.previousVersion, at: iso(t.deployAt - 26 * HOUR),
      description: `Deploy payments-api ${t.previousVersion}`, author: 'deploy-bot', url: 'https://cd.acme.test/pipelines/5101',
      environment: 'production' },
    { id: 'cd-5119', service: 'user-auth', kind: 'deploy', version: 'v8.1.2', at: iso(t.incidentAt - 70 * MIN),
      description: 'Deploy user-auth v8.1.2', author: 'deploy-bot', url: 'https://cd.acme.test/pipelines/5119',
      environment: 'production' },
  ];
}

let changes;
let config;
function defaultConfig() {
  return { latency_ms: args.latency_ms, shape: args.shape, filter: args.filter };
}

function load(name, now, incidentAt) {
  changes = scenario(name, now, incidentAt);
}

function timeOf(c) {
  if (typeof c.at === 'number') return c.at > 1e12 ? c.at : c.at * 1000;
  return Date.parse(c.at);
}

function route(ctx) {
  if (ctx.path !== args.path) return { status: 404, body: { error: 'not found' } };
  if (ctx.method !== 'GET') return { status: 405, headers: { Allow: 'GET' }, body: { error: 'method not allowed' } };
  if (args.token) {
    const h = ctx.headers.authorization || '';
    if (h !== `Bearer ${args.token}`) {
      return { status: 401, headers: { 'WWW-Authenticate': 'Bearer' }, body: { error: h ? 'invalid token' : 'missing token' } };
    }
  }
  let list = changes.slice();
  if (config.filter) {
    for (const name of ['since', 'until']) {
      const v = ctx.query[name];
      if (v === undefined) continue;
      const d = kit.parseDateOrTime(v);
      if (!d) return { status: 400, body: { error: `${name}: not an RFC 3339 time: ${v}` } };
      list = list.filter((c) => (name === 'since' ? timeOf(c) >= d.ms : timeOf(c) <= d.ms));
    }
    const svc = ctx.query.service;
    if (svc !== undefined) {
      const set = new Set((Array.isArray(svc) ? svc : [svc]).map((s) => s.toLowerCase()));
      list = list.filter((c) => typeof c.service === 'string' && set.has(c.service.toLowerCase()));
    }
  }
  list.sort((a, b) => timeOf(b) - timeOf(a));
  return { status: 200, body: config.shape === 'wrapped' ? { changes: list } : list };
}

function control(ctx, p) {
  const m = ctx.method;
  if (p === '/_fake/changes') {
    if (m === 'GET') return { status: 200, body: { changes } };
    if (m === 'DELETE') {
      changes = [];
      return { status: 200, body: { changes } };
    }
    if (m === 'POST' || m === 'PUT') {
      // The body is stored as it is: tests load malformed entries on purpose.
      const list = Array.isArray(ctx.json) ? ctx.json : ctx.json && Array.isArray(ctx.json.changes) ? ctx.json.changes : null;
      if (!list) return { status: 400, body: { error: 'expected an array of changes or {changes: [...]}' } };
      changes = m === 'PUT' ? list.slice() : changes.concat(list);
      return { status: 200, body: { count: changes.length } };
    }
  }
  return null;
}

config = defaultConfig();
load(args.scenario, START, INCIDENT_AT);

const server = new kit.FakeServer({
  name: 'cd',
  faultSeed: args.fault_seed,
  keyName: (ctx) => (ctx.headers.authorization ? 'bearer' : null),
  route,
  faultResp: (rule) => ({ status: rule.status || 500, headers: rule.retry_after !== undefined ? { 'Retry-After': String(rule.retry_after) } : {},
    body: rule.body !== undefined ? rule.body : { error: 'fault injected' } }),
  control,
  latency: () => config.latency_ms,
  onReset: (body) => {
    try {
      load(body.scenario || args.scenario, body.now ? demo.parseTime(body.now) : START,
        body.incident_at ? demo.parseTime(body.incident_at) : INCIDENT_AT);
    } catch (e) {
      return e.message;
    }
    config = defaultConfig();
    return null;
  },
  getConfig: () => config,
  config: (body) => {
    for (const [k, v] of Object.entries(body)) {
      if (!(k in config)) return { error: `unknown config key ${k}` };
      config[k] = v;
    }
    return null;
  },
  stats: () => ({ changes: changes.length }),
});

server.listen({ port: args.port, host: args.host, portFile: args.port_file, parentPid: args.parent_pid }).catch((e) => {
  process.stderr.write(`cd fake: cannot listen: ${e.message}\n`);
  process.exit(1);
});
