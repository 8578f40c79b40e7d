#!/usr/bin/env node
'use strict';
// Fake change feed of a CD system: `GET /changes?since=&until=&service=` answers the
// changes (deploys, config changes, migrations...) as a JSON array, or as
// {"changes": [...]} with --shape wrapped. An optional bearer token (--token) is required
// when given. Standard library only. docs/sources.md describes it.

const kit = require('../lib/fakekit');
const demo = require('../lib/demo');

const args = kit.cli('tests/fakes/cd/server.js', {
  ...kit.LISTEN_OPTIONS,
  scenario: { type: 'string', default: 'demo', arg: 'NAME', help: 'empty | demo (default demo)' },
  ...demo.SCENARIO_OPTIONS,
  token: { type: 'string', arg: 'T', help: 'require "Authorization: Bearer T"' },
  shape: { type: 'string', default: 'array', arg: 'S', help: 'array | wrapped (default array)' },
  path: { type: 'string', default: '/changes', arg: 'P', help: 'path of the feed (default /changes)' },
  filter: { type: 'bool', default: true, help: 'ignore since/until/service (answer everything)' },
  ...kit.ANSWER_OPTIONS,
});

const scenario = demo.scenarioFrom(args);
const MIN = 60000;
const HOUR = 60 * MIN;

function iso(ms) {
  return new Date(ms).toISOString();
}

function changesOf(name, now, incidentAt) {
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

function load(name, now, incidentAt) {
  changes = changesOf(name, now, incidentAt);
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
  if (server.config.filter) {
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
  return { status: 200, body: server.config.shape === 'wrapped' ? { changes: list } : list };
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

load(...scenario());

const server = new kit.FakeServer({
  name: 'cd',
  faultSeed: args.fault_seed,
  keyName: (ctx) => (ctx.headers.authorization ? 'bearer' : null),
  route,
  faultResp: (rule) => ({ status: rule.status || 500, headers: rule.retry_after !== undefined ? { 'Retry-After': String(rule.retry_after) } : {},
    body: rule.body !== undefined ? rule.body : { error: 'fault injected' } }),
  control,
  defaultConfig: () => ({ latency_ms: args.latency_ms, shape: args.shape, filter: args.filter }),
  onReset: (body) => load(...scenario(body)),
  stats: () => ({ changes: changes.length }),
});

server.start(args);
