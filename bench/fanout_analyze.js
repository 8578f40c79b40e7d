#!/usr/bin/env node
'use strict';
// Reads the request logs of the fakes after one investigation and works out:
//   - the wall time from the webhook to the findings post (the post's arrival at the
//     Slack fake plus its answer time, minus the time the webhook was sent);
//   - the critical path: the calls that must happen one after another, in levels of
//     one latency each (see LEVELS below); its latency is levels x the fakes' latency;
//   - the same chains timed with what each call really took at its fake
//     (critical_measured_ms) and the rest of the wall time, fox's share (fox_share_ms);
//   - the calls themselves, in the order fox made them, for the serial baseline
//     (bench/serial.sh replays them one after another with curl).
//
//   node bench/fanout_analyze.js --dir DIR --sent-ms T --latency-ms L --incident ID
//        [--replay FILE]
// DIR holds <kind>.json (GET /_fake/requests of each fake) and <kind>.url.
// Prints one JSON object.
//
// LEVELS (a level is one round trip that cannot start before the previous one ended):
//   1  the incident, fetched again by the daemon (the payload is not trusted)
//   then every source at once; a source's depth is its own chain:
//      prometheus, cd             1 (one request per query)
//      loki, elasticsearch        pages of the largest service (each page starts after
//                                 the last line of the previous one)
//      github                     per repository: pages of deployments, then their
//                                 statuses (+1); commits and pulls run alongside
//      similar                    the index listing (its pages, 1 when it is warm) in
//                                 parallel with the incident's updates and
//                                 relationships, then the updates of the best matches
//                                 (+1). A second fetch of the incident, which fox's
//                                 correlate tool makes, is not needed (the incident was
//                                 just fetched) and is not counted.
//      the "investigating" post   1 (runs alongside the sources)
//   1  the findings post
const fs = require('node:fs');
const path = require('node:path');

const argv = process.argv.slice(2);
const opt = {};
for (let i = 0; i < argv.length; i += 2) opt[argv[i].replace(/^--/, '')] = argv[i + 1];
const dir = opt.dir;
const sent = Number(opt['sent-ms']);
const latency = Number(opt['latency-ms']);
const incident = opt.incident;

const KINDS = ['incidentio', 'slack', 'prometheus', 'loki', 'elasticsearch', 'github', 'cd'];
const AUTH = {
  incidentio: `Bearer ${process.env.INCIDENT_IO_API_KEY || 'test-viewer-key'}`,
  slack: `Bearer ${process.env.SLACK_BOT_TOKEN || 'xoxb-test-token'}`,
  github: `Bearer ${process.env.GITHUB_TOKEN || 'ghp_fox_test_token'}`,
};

const calls = [];
for (const kind of KINDS) {
  const f = path.join(dir, `${kind}.json`);
  if (!fs.existsSync(f)) continue;
  const base = fs.readFileSync(path.join(dir, `${kind}.url`), 'utf8').trim();
  for (const e of JSON.parse(fs.readFileSync(f, 'utf8')).requests) {
    const start = Date.parse(e.time);
    calls.push(Object.assign({ kind, base, start, end: start + (e.duration_ms || 0) }, e));
  }
}
calls.sort((a, b) => a.start - b.start || a.seq - b.seq);

const isPost = (c) => c.kind === 'slack' && c.path === '/api/chat.postMessage';
const text = (c) => (c.body && typeof c.body === 'object' ? String(c.body.text || '') : String(c.body || ''));
const posts = calls.filter(isPost);
const findings = posts.find((c) => /findings/i.test(text(c))) || posts[posts.length - 1];
if (!findings) {
  process.stdout.write(JSON.stringify({ error: 'no findings post in the Slack log' }) + '\n');
  process.exit(1);
}

function maxBy(list, keyFn) {
  const counts = new Map();
  for (const c of list) counts.set(keyFn(c), (counts.get(keyFn(c)) || 0) + 1);
  let m = 0;
  for (const v of counts.values()) m = Math.max(m, v);
  return m;
}

const of = (kind) => calls.filter((c) => c.kind === kind && c.start <= findings.start);
const depth = {};
depth.prometheus = of('prometheus').length ? 1 : 0;
depth.cd = of('cd').length ? 1 : 0;
depth.loki = maxBy(of('loki'), (c) => String(c.query && c.query.query));
depth.elasticsearch = maxBy(of('elasticsearch'), (c) => JSON.stringify(c.body && c.body.query));
{
  const gh = of('github');
  const repos = new Set(gh.map((c) => (c.path.match(/^\/repos\/[^/]+\/[^/]+/) || [''])[0]));
  let d = 0;
  for (const r of repos) {
    const mine = gh.filter((c) => c.path.startsWith(r));
    const deps = mine.filter((c) => c.path === `${r}/deployments`).length;
    const statuses = mine.some((c) => /\/deployments\/[^/]+\/statuses$/.test(c.path)) ? 1 : 0;
    const commits = mine.filter((c) => c.path === `${r}/commits`).length;
    const pulls = mine.filter((c) => c.path === `${r}/pulls`).length;
    d = Math.max(d, deps + statuses, commits, pulls);
  }
  depth.github = d;
}
{
  const io = of('incidentio');
  const fetches = io.filter((c) => c.path.startsWith('/v2/incidents/'));
  const list = io.filter((c) => c.path === '/v2/incidents').length;
  const own = io.filter((c) => (c.path === '/v2/incident_updates' || c.path === '/v1/incident_relationships')
    && c.query && c.query.incident_id === incident).length;
  const matches = io.filter((c) => c.path === '/v2/incident_updates' && c.query && c.query.incident_id !== incident).length;
  depth.similar = (list || own ? Math.max(list, 1) : 0) + (matches ? 1 : 0);
  depth.incident_fetches = fetches.length;
}
depth.investigating_post = posts.length > 1 ? 1 : 0;
const sourceDepth = Math.max(depth.prometheus, depth.cd, depth.loki, depth.elasticsearch, depth.github,
  depth.similar, depth.investigating_post);
const levels = 1 + sourceDepth + 1;

// The same chains timed with what each call really took at its fake (its injected
// latency plus the fake's own work, e.g. building a page of 1000 log lines): the wall
// time fox could reach with no time of its own between the calls. wall_ms minus it is
// fox's share (its CPU, its scheduling, the client and the loop), which the ratio
// above mixes with the fakes' own time.
const dur = (c) => c.end - c.start;
const sum = (list) => list.reduce((a, c) => a + dur(c), 0);
const longest = (list) => list.reduce((a, c) => Math.max(a, dur(c)), 0);
function byKey(list, keyFn) {
  const m = new Map();
  for (const c of list) {
    const k = keyFn(c);
    if (!m.has(k)) m.set(k, []);
    m.get(k).push(c);
  }
  return [...m.values()];
}
const chains = {};
chains.prometheus = longest(of('prometheus'));
chains.cd = longest(of('cd'));
chains.loki = Math.max(0, ...byKey(of('loki'), (c) => String(c.query && c.query.query)).map(sum));
chains.elasticsearch = longest(of('elasticsearch'));
{
  const gh = of('github');
  const repos = byKey(gh, (c) => (c.path.match(/^\/repos\/[^/]+\/[^/]+/) || [''])[0]);
  chains.github = Math.max(0, ...repos.map((mine) => {
    const r = (mine[0].path.match(/^\/repos\/[^/]+\/[^/]+/) || [''])[0];
    const deps = sum(mine.filter((c) => c.path === `${r}/deployments`));
    const statuses = longest(mine.filter((c) => /\/deployments\/[^/]+\/statuses$/.test(c.path)));
    return Math.max(deps + statuses, sum(mine.filter((c) => c.path === `${r}/commits`)),
      sum(mine.filter((c) => c.path === `${r}/pulls`)));
  }));
}
{
  const io = of('incidentio').filter((c) => !c.path.startsWith('/v2/incidents/'));
  const first = io.filter((c) => c.path === '/v2/incidents' || ((c.path === '/v2/incident_updates'
    || c.path === '/v1/incident_relationships') && c.query && c.query.incident_id === incident));
  const matches = io.filter((c) => c.path === '/v2/incident_updates' && c.query && c.query.incident_id !== incident);
  chains.similar = Math.max(sum(first.filter((c) => c.path === '/v2/incidents')), longest(first)) + longest(matches);
}
chains.investigating_post = posts.length > 1 ? dur(posts[0]) : 0;
const fetch = of('incidentio').find((c) => c.path.startsWith('/v2/incidents/'));
const measured = (fetch ? dur(fetch) : 0) + Math.max(...Object.values(chains)) + dur(findings);

const upto = calls.filter((c) => c.start <= findings.start);
const out = {
  wall_ms: findings.end - sent,
  post_arrival_ms: findings.start - sent,
  latency_ms: latency,
  levels,
  critical_ms: levels * latency,
  ratio: (findings.end - sent) / (levels * latency),
  depth,
  critical_measured_ms: measured,
  chains_ms: chains,
  fox_share_ms: (findings.end - sent) - measured,
  calls_before_post: upto.length,
  calls_total: calls.length,
  calls_by_kind: Object.fromEntries(KINDS.map((k) => [k, upto.filter((c) => c.kind === k).length])),
};

if (opt.replay) {
  // One JSON object per line: method, url, content_type, authorization, body.
  const lines = upto.map((c) => {
    const h = c.headers || {};
    let body = null;
    if (c.body !== undefined && c.body !== null) body = typeof c.body === 'string' ? c.body : JSON.stringify(c.body);
    const auth = AUTH[c.kind] || (h.authorization && !String(h.authorization).endsWith('...') ? h.authorization : null);
    return JSON.stringify({
      kind: c.kind, method: c.method, url: c.base + c.path + (c.raw_query ? `?${c.raw_query}` : ''),
      content_type: h['content-type'] || null, authorization: auth, body,
    });
  });
  fs.writeFileSync(opt.replay, lines.join('\n') + '\n');
}
process.stdout.write(JSON.stringify(out) + '\n');
