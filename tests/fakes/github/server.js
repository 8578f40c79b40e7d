#!/usr/bin/env node
'use strict';
// Fake GitHub REST API (the part fox's github source reads): repositories, deployments and
// their statuses, commits, pull requests, /rate_limit. Shapes follow GitHub's REST API
// (2022-11-28): ISO 8601 timestamps without fractions, pagination with per_page/page and
// Link headers, x-ratelimit-* headers on every answer, 401/403/404/422 bodies with
// message and documentation_url. Standard library only. docs/sources.md describes it.

const crypto = require('node:crypto');
const kit = require('../lib/fakekit');
const demo = require('../lib/demo');

const args = kit.cli('tests/fakes/github/server.js', {
  ...kit.LISTEN_OPTIONS,
  scenario: { type: 'string', default: 'demo', arg: 'NAME', help: 'empty | demo | busy (default demo)' },
  ...demo.SCENARIO_OPTIONS,
  token: { type: 'list', arg: 'T', help: 'an accepted token (repeatable; default ghp_fox_test_token)' },
  rate_limit: { type: 'int', default: 5000, arg: 'N', help: 'requests per hour per token (default 5000; anonymous: 60)' },
  rate_limit_status: { type: 'int', default: 403, arg: 'N', help: 'status of a primary rate-limit answer: 403 | 429 (default 403)' },
  ...kit.ANSWER_OPTIONS,
});

const scenario = demo.scenarioFrom(args);
const [, START, INCIDENT_AT] = scenario();
const TOKENS = args.token.length ? args.token : ['ghp_fox_test_token'];
const DOCS = 'https://docs.github.com/rest';
const MIN = 60000;
const HOUR = 60 * MIN;

// ---------------------------------------------------------------------------------------
// Shapes

function iso(ms) {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}
function toMs(v, fallback) {
  if (v === undefined || v === null) return fallback;
  if (typeof v === 'number') return v > 1e12 ? v : v * 1000;
  const ms = Date.parse(v);
  return Number.isFinite(ms) ? ms : fallback;
}
function idFor(key) {
  return parseInt(crypto.createHash('sha256').update(String(key)).digest('hex').slice(0, 8), 16) % 900000000 + 100000;
}
function nodeId(prefix, id) {
  return `${prefix}_kwDO${Buffer.from(String(id)).toString('base64').replace(/=+$/, '')}`;
}

let base = 'http://127.0.0.1';

function user(login, type) {
  const id = idFor(`user:${login}`);
  return {
    login, id, node_id: nodeId('U', id),
    avatar_url: `https://avatars.githubusercontent.com/u/${id}?v=4`, gravatar_id: '',
    url: `${base}/users/${login}`, html_url: `https://github.com/${login}`,
    type: type || (login.endsWith('[bot]') || login.endsWith('-bot') ? 'Bot' : 'User'), site_admin: false,
  };
}

function repoObject(full, r) {
  const [owner, name] = full.split('/');
  return {
    id: r.id, node_id: nodeId('R', r.id), name, full_name: full, private: r.private,
    owner: user(owner, 'Organization'), html_url: `https://github.com/${full}`,
    description: r.description || null, fork: false, url: `${base}/repos/${full}`,
    default_branch: r.default_branch || 'main', visibility: r.private ? 'private' : 'public',
    created_at: iso(START - 400 * 24 * HOUR), updated_at: iso(START - HOUR), pushed_at: iso(START - HOUR),
  };
}

function makeDeployment(full, d, r) {
  const id = d.id || idFor(`deploy:${full}:${d.sha}:${d.created_at}`);
  const created = toMs(d.created_at, START);
  const env = d.environment || 'production';
  const dep = {
    url: `${base}/repos/${full}/deployments/${id}`, id, node_id: nodeId('DE', id),
    sha: d.sha || demo.sha(`dep${id}`), ref: d.ref || 'main', task: d.task || 'deploy',
    payload: d.payload === undefined ? {} : d.payload, original_environment: env, environment: env,
    description: d.description === undefined ? null : d.description,
    creator: user(d.creator || 'deploy-bot'), created_at: iso(created), updated_at: iso(toMs(d.updated_at, created)),
    statuses_url: `${base}/repos/${full}/deployments/${id}/statuses`, repository_url: `${base}/repos/${full}`,
    transient_environment: false, production_environment: env === 'production',
  };
  const statuses = (d.statuses || []).map((s, i) => {
    const sid = s.id || idFor(`status:${id}:${i}`);
    const at = toMs(s.created_at, created + (i + 1) * 30000);
    return {
      url: `${base}/repos/${full}/deployments/${id}/statuses/${sid}`, id: sid, node_id: nodeId('DES', sid),
      state: s.state || 'success', creator: user(s.creator || d.creator || 'deploy-bot'),
      description: s.description || '', environment: env, target_url: s.target_url || '',
      created_at: iso(at), updated_at: iso(at), deployment_url: dep.url, repository_url: dep.repository_url,
      environment_url: s.environment_url || '', log_url: s.log_url || s.target_url || '',
    };
  });
  // GitHub lists statuses newest first.
  statuses.sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at) || b.id - a.id);
  r.statuses.set(id, statuses);
  return dep;
}

function person(p, dflt) {
  if (!p) p = dflt;
  if (typeof p === 'string') return { name: p, email: `${p.replace(/\s+/g, '.').toLowerCase()}@acme.test`, login: p.replace(/\s+/g, '-').toLowerCase() };
  return { name: p.name || p.login, email: p.email || `${p.login || 'dev'}@acme.test`, login: p.login === undefined ? (p.name || 'dev').toLowerCase() : p.login };
}

function makeCommit(full, c) {
  const sha = c.sha || demo.sha(`commit:${full}:${c.message}:${c.date}`);
  const at = toMs(c.date, START);
  const a = person(c.author, 'dev');
  const cm = person(c.committer, c.author ? a : 'GitHub');
  return {
    sha, node_id: nodeId('C', sha.slice(0, 10)),
    commit: {
      author: { name: a.name, email: a.email, date: iso(toMs(c.author_date, at)) },
      committer: { name: cm.name, email: cm.email, date: iso(at) },
      message: c.message || 'Update', tree: { sha: demo.sha(`tree${sha}`), url: `${base}/repos/${full}/git/trees/${demo.sha(`tree${sha}`)}` },
      url: `${base}/repos/${full}/git/commits/${sha}`, comment_count: 0,
      verification: { verified: false, reason: 'unsigned', signature: null, payload: null },
    },
    url: `${base}/repos/${full}/commits/${sha}`, html_url: `https://github.com/${full}/commit/${sha}`,
    comments_url: `${base}/repos/${full}/commits/${sha}/comments`,
    author: a.login ? user(a.login) : null, committer: cm.login ? user(cm.login) : null,
    parents: (c.parents || [demo.sha(`parent:${sha}`)]).map((p) => ({ sha: p, url: `${base}/repos/${full}/commits/${p}`, html_url: `https://github.com/${full}/commit/${p}` })),
  };
}

function makeLabel(full, name) {
  const id = idFor(`label:${full}:${name}`);
  return { id, node_id: nodeId('LA', id), url: `${base}/repos/${full}/labels/${encodeURIComponent(name)}`, name, description: null, color: 'ededed', default: false };
}

function makePull(full, p, r) {
  const number = p.number;
  const id = idFor(`pull:${full}:${number}`);
  const created = toMs(p.created_at, START - 2 * HOUR);
  const merged = p.merged_at ? toMs(p.merged_at) : null;
  const closed = p.closed_at ? toMs(p.closed_at) : merged;
  const state = p.state || (closed ? 'closed' : 'open');
  const updated = toMs(p.updated_at, Math.max(created, closed || 0));
  const u = user(p.user || 'dev');
  const headSha = p.head_sha || demo.sha(`head:${full}:${number}`);
  const repo = repoObject(full, r);
  const url = `${base}/repos/${full}/pulls/${number}`;
  return {
    url, id, node_id: nodeId('PR', id), html_url: `https://github.com/${full}/pull/${number}`,
    diff_url: `https://github.com/${full}/pull/${number}.diff`, patch_url: `https://github.com/${full}/pull/${number}.patch`,
    issue_url: `${base}/repos/${full}/issues/${number}`, number, state, locked: false, title: p.title || `PR ${number}`,
    user: u, body: p.body === undefined ? null : p.body, labels: (p.labels || []).map((l) => makeLabel(full, l)),
    milestone: null, active_lock_reason: null, created_at: iso(created), updated_at: iso(updated),
    closed_at: closed ? iso(closed) : null, merged_at: merged ? iso(merged) : null,
    merge_commit_sha: p.merge_commit_sha || (merged ? demo.sha(`merge:${full}:${number}`) : null),
    assignee: null, assignees: [], requested_reviewers: [], requested_teams: [],
    head: { label: `${full.split('/')[0]}:${p.head || `branch-${number}`}`, ref: p.head || `branch-${number}`, sha: headSha, user: u, repo },
    base: { label: `${full.split('/')[0]}:${p.base || 'main'}`, ref: p.base || 'main', sha: demo.sha(`base:${full}:${number}`), user: repo.owner, repo },
    _links: { self: { href: url }, html: { href: `https://github.com/${full}/pull/${number}` } },
    author_association: 'MEMBER', auto_merge: null, draft: !!p.draft,
  };
}

// ---------------------------------------------------------------------------------------
// State

let state;

function emptyRepo(full, opts = {}) {
  return {
    id: idFor(`repo:${full}`), private: opts.private !== false, description: opts.description || null,
    default_branch: opts.default_branch || 'main', deployments: [], statuses: new Map(), commits: [], pulls: [],
  };
}

function addData(body) {
  const full = body.repo;
  if (typeof full !== 'string' || !/^[\w.-]+\/[\w.-]+$/.test(full)) return 'repo must be "owner/name"';
  let r = state.repos.get(full);
  if (!r) {
    r = emptyRepo(full, body);
    state.repos.set(full, r);
  }
  for (const d of body.deployments || []) r.deployments.push(makeDeployment(full, d, r));
  for (const c of body.commits || []) r.commits.push(makeCommit(full, c));
  for (const p of body.pulls || []) r.pulls.push(makePull(full, p, r));
  r.deployments.sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at) || b.id - a.id);
  r.commits.sort((a, b) => Date.parse(b.commit.committer.date) - Date.parse(a.commit.committer.date));
  return null;
}

function demoData(now, incidentAt) {
  const t = demo.timeline({ now, incidentAt });
  const full = t.repo;
  const prCommit1 = demo.sha('pr412-1');
  const prCommit2 = demo.sha('pr412-2');
  return [
    {
      repo: full,
      deployments: [
        { id: 88001, sha: demo.sha('v2.34.1'), ref: t.previousVersion, environment: 'production', created_at: t.deployAt - 26 * HOUR,
          description: `Deploy ${t.previousVersion}`, payload: { version: t.previousVersion },
          statuses: [{ state: 'in_progress', created_at: t.deployAt - 26 * HOUR + 5000 }, { state: 'success', created_at: t.deployAt - 26 * HOUR + 80000 },
            { state: 'inactive', created_at: t.deployDoneAt }] },
        { id: 88002, sha: demo.sha('staging'), ref: 'main', environment: 'staging', created_at: t.mergedAt + 4 * MIN,
          description: 'Deploy main to staging', statuses: [{ state: 'success', created_at: t.mergedAt + 5 * MIN }] },
        { id: 88003, sha: t.mergeSha, ref: t.version, environment: 'production', created_at: t.deployAt,
          description: `Deploy ${t.version}: ${t.prTitle}`, payload: { version: t.version, pipeline: 5120 },
          statuses: [{ state: 'in_progress', created_at: t.deployAt + 5000, log_url: 'https://cd.acme.test/pipelines/5120' },
            { state: 'success', created_at: t.deployDoneAt, log_url: 'https://cd.acme.test/pipelines/5120', environment_url: 'https://pay.acme.test' }] },
      ],
      pulls: [
        { number: 412, title: t.prTitle, user: 'marcus-dev', head: t.prBranch, labels: ['dependencies', 'payments'],
          created_at: t.mergedAt - 5 * HOUR, merged_at: t.mergedAt, merge_commit_sha: t.mergeSha, head_sha: prCommit2,
          body: 'Upgrades payment-gateway-client 3.1.4 -> 3.2.0 and lowers GATEWAY_UPSTREAM_TIMEOUT from 5s to 2s.' },
        { number: 409, title: 'Docs: update gateway runbook links', user: 'priya-sre', head: 'docs/runbook-links', labels: ['docs'],
          created_at: t.deployAt - 6 * HOUR, merged_at: t.deployAt - 3 * HOUR },
        { number: 410, title: 'Experiment: retry budget for gateway calls', user: 'sofia-dev', head: 'exp/retry-budget',
          created_at: t.deployAt - 30 * HOUR, closed_at: t.deployAt - 90 * MIN },
        { number: 401, title: 'Add idempotency keys to refunds', user: 'marcus-dev', head: 'refund-idempotency',
          created_at: t.deployAt - 80 * HOUR, merged_at: t.deployAt - 27 * HOUR },
        { number: 413, title: 'Add gateway timeout dashboard panel', user: 'priya-sre', head: 'dash-panel', created_at: t.deployAt + 5 * MIN },
      ],
      commits: [
        { sha: t.mergeSha, message: `Merge pull request #412 from acme/${t.prBranch}\n\n${t.prTitle}`, author: { name: 'Marcus Chen', login: 'marcus-dev' },
          committer: { name: 'GitHub', login: 'web-flow' }, date: t.mergedAt, parents: [demo.sha('docs409'), prCommit2] },
        { sha: prCommit2, message: 'Shorten upstream timeout to 2s\n\nGATEWAY_UPSTREAM_TIMEOUT 5s -> 2s: fail fast instead of queueing.', author: { name: 'Marcus Chen', login: 'marcus-dev' },
          date: t.mergedAt - 70 * MIN, parents: [prCommit1] },
        { sha: prCommit1, message: 'Bump payment-gateway-client from 3.1.4 to 3.2.0', author: { name: 'Marcus Chen', login: 'marcus-dev' },
          date: t.mergedAt - 3 * HOUR },
        { sha: demo.sha('docs409'), message: 'Merge pull request #409 from acme/docs/runbook-links\n\nDocs: update gateway runbook links', author: { name: 'Priya Raman', login: 'priya-sre' },
          committer: { name: 'GitHub', login: 'web-flow' }, date: t.deployAt - 3 * HOUR },
        { message: 'Add idempotency keys to refunds (#401)', author: { name: 'Marcus Chen', login: 'marcus-dev' }, date: t.deployAt - 27 * HOUR },
      ],
    },
    {
      repo: 'acme/checkout-service',
      deployments: [
        { id: 77001, sha: demo.sha('co-v5.2.0'), ref: 'v5.2.0', environment: 'production', created_at: t.deployAt - 50 * HOUR,
          statuses: [{ state: 'success', created_at: t.deployAt - 50 * HOUR + 60000 }] },
      ],
      commits: [
        { message: 'Fix typo in checkout banner', author: { name: 'Sofia Rossi', login: 'sofia-dev' }, date: t.incidentAt - 150 * MIN },
      ],
      pulls: [],
    },
  ];
}

// Many small changes (pagination): 230 commits, 120 closed PRs and 130 deployments in
// acme/monorepo over the 20 hours before now.
function busyData(now) {
  const commits = [];
  const pulls = [];
  const deployments = [];
  for (let i = 0; i < 230; i++) commits.push({ message: `Change ${i}`, author: `dev${i % 7}`, date: now - (i + 1) * 5 * MIN });
  for (let i = 0; i < 120; i++) {
    pulls.push({ number: 1000 + i, title: i % 10 === 3 ? `Revert "Change ${i}"` : `Change ${i}`, user: `dev${i % 7}`,
      head: i % 10 === 5 ? `hotfix/thing-${i}` : `feature/${i}`, created_at: now - (i + 3) * 10 * MIN,
      merged_at: i % 4 === 0 ? null : now - (i + 1) * 10 * MIN, closed_at: now - (i + 1) * 10 * MIN });
  }
  for (let i = 0; i < 130; i++) {
    deployments.push({ id: 50000 + i, sha: demo.sha(`busy${i}`), ref: `v1.${130 - i}.0`, created_at: now - (i + 1) * 9 * MIN,
      statuses: [{ state: i === 0 ? 'failure' : 'success', created_at: now - (i + 1) * 9 * MIN + 60000 }] });
  }
  return [{ repo: 'acme/monorepo', commits, pulls, deployments }];
}

function loadScenario(name, now, incidentAt) {
  state = { repos: new Map(), scenario: name, now };
  const sets = name === 'empty' ? [] : name === 'demo' ? demoData(now, incidentAt)
    : name === 'busy' ? demoData(now, incidentAt).concat(busyData(now)) : null;
  if (!sets) throw new Error(`unknown scenario ${name} (empty, demo, busy)`);
  for (const s of sets) {
    const err = addData(s);
    if (err) throw new Error(err);
  }
}

const usage = new Map(); // token name -> {used, reset}

// ---------------------------------------------------------------------------------------
// Requests

function tokenOf(ctx) {
  const h = ctx.headers.authorization;
  if (!h) return { anonymous: true };
  const m = /^(?:Bearer|token)\s+(\S+)$/i.exec(h);
  if (!m) return { bad: true };
  const t = m[1];
  if (!TOKENS.includes(t)) return { bad: true };
  return { name: `token${TOKENS.indexOf(t) + 1}` };
}

function err(status, message, extra = {}) {
  return { status, body: Object.assign({ message, documentation_url: DOCS, status: String(status) }, extra) };
}

function rateHeaders(key) {
  const limit = key === '(anonymous)' ? 60 : server.config.rate_limit;
  let u = usage.get(key);
  const nowS = Math.floor(Date.now() / 1000);
  if (!u || u.reset <= nowS) {
    u = { used: 0, reset: nowS + 3600 };
    usage.set(key, u);
  }
  return { u, limit };
}

function paginate(ctx, list, pathName) {
  const perPage = Math.min(100, Math.max(1, parseInt(ctx.query.per_page || '30', 10) || 30));
  const page = Math.max(1, parseInt(ctx.query.page || '1', 10) || 1);
  const pages = Math.max(1, Math.ceil(list.length / perPage));
  const items = list.slice((page - 1) * perPage, page * perPage);
  const links = [];
  const link = (p, rel) => {
    const pairs = ctx.pairs.filter(([k]) => k !== 'page').concat([['page', String(p)]]);
    const q = pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
    links.push(`<${base}${pathName}?${q}>; rel="${rel}"`);
  };
  if (page > 1) link(page - 1, 'prev');
  if (page < pages) link(page + 1, 'next');
  if (page < pages) link(pages, 'last');
  if (page > 1) link(1, 'first');
  const headers = {};
  if (links.length) headers.Link = links.join(', ');
  return { status: 200, headers, body: items };
}

function timeParam(ctx, name) {
  const v = ctx.query[name];
  if (v === undefined) return { ms: undefined };
  const d = kit.parseDateOrTime(v);
  if (!d || Array.isArray(v)) return { error: err(422, `Invalid value for parameter '${name}': ${JSON.stringify(v)} is not an ISO 8601 timestamp`) };
  return { ms: d.ms };
}

function checkEnum(ctx, name, values) {
  const v = ctx.query[name];
  if (v !== undefined && !values.includes(v)) {
    return err(422, 'Validation Failed', { errors: [{ resource: 'Search', field: name, code: 'invalid', message: `${name} must be one of ${values.join(', ')}` }] });
  }
  return null;
}

function route(ctx) {
  const who = ctx.who;
  if (ctx.method !== 'GET') return err(404, 'Not Found');
  if (ctx.path === '/rate_limit') {
    const { u, limit } = rateHeaders(ctx.entry.key || '(anonymous)');
    const core = { limit, used: u.used, remaining: Math.max(0, limit - u.used), reset: u.reset };
    return { status: 200, body: { resources: { core }, rate: core } };
  }
  const m = /^\/repos\/([\w.-]+)\/([\w.-]+)(\/.*)?$/.exec(ctx.path);
  if (!m) return err(404, 'Not Found');
  const full = `${m[1]}/${m[2]}`;
  const r = state.repos.get(full);
  if (!r || (r.private && who.anonymous)) return err(404, 'Not Found');
  const rest = (m[3] || '').replace(/\/+$/, '');
  if (rest === '') return { status: 200, body: repoObject(full, r) };
  if (rest === '/deployments') {
    let list = r.deployments;
    for (const k of ['sha', 'ref', 'task', 'environment']) {
      if (ctx.query[k] !== undefined) list = list.filter((d) => d[k] === ctx.query[k]);
    }
    return paginate(ctx, list, ctx.path);
  }
  let dm = /^\/deployments\/(\d+)$/.exec(rest);
  if (dm) {
    const d = r.deployments.find((x) => String(x.id) === dm[1]);
    return d ? { status: 200, body: d } : err(404, 'Not Found');
  }
  dm = /^\/deployments\/(\d+)\/statuses$/.exec(rest);
  if (dm) {
    const d = r.deployments.find((x) => String(x.id) === dm[1]);
    if (!d) return err(404, 'Not Found');
    return paginate(ctx, r.statuses.get(d.id) || [], ctx.path);
  }
  if (rest === '/commits') {
    const since = timeParam(ctx, 'since');
    if (since.error) return since.error;
    const until = timeParam(ctx, 'until');
    if (until.error) return until.error;
    let list = r.commits;
    if (since.ms !== undefined) list = list.filter((c) => Date.parse(c.commit.committer.date) >= since.ms);
    if (until.ms !== undefined) list = list.filter((c) => Date.parse(c.commit.committer.date) <= until.ms);
    if (ctx.query.author) list = list.filter((c) => (c.author && c.author.login === ctx.query.author) || c.commit.author.email === ctx.query.author);
    if (r.commits.length === 0) return err(409, 'Git Repository is empty.');
    return paginate(ctx, list, ctx.path);
  }
  if (rest === '/pulls') {
    const e = checkEnum(ctx, 'state', ['open', 'closed', 'all']) || checkEnum(ctx, 'sort', ['created', 'updated', 'popularity', 'long-running'])
      || checkEnum(ctx, 'direction', ['asc', 'desc']);
    if (e) return e;
    const st = ctx.query.state || 'open';
    const sort = ctx.query.sort || 'created';
    const dir = ctx.query.direction || (sort === 'created' ? 'desc' : 'asc');
    let list = r.pulls.filter((p) => st === 'all' || p.state === st);
    if (ctx.query.base) list = list.filter((p) => p.base.ref === ctx.query.base);
    if (ctx.query.head) list = list.filter((p) => p.head.label === ctx.query.head);
    const key = sort === 'updated' ? 'updated_at' : 'created_at';
    list = list.slice().sort((a, b) => (Date.parse(a[key]) - Date.parse(b[key])) * (dir === 'asc' ? 1 : -1) || (a.number - b.number));
    return paginate(ctx, list, ctx.path);
  }
  return err(404, 'Not Found');
}

// Authentication and rate limiting around route().
function api(ctx) {
  const who = tokenOf(ctx);
  ctx.who = who;
  const common = { 'x-github-request-id': kit.requestId().toUpperCase().slice(0, 23), 'x-github-media-type': 'github.v3; format=json' };
  if (ctx.headers['x-github-api-version']) {
    if (ctx.headers['x-github-api-version'] !== '2022-11-28') {
      return { status: 400, headers: common, body: { message: `API version ${ctx.headers['x-github-api-version']} is not supported.`, documentation_url: DOCS } };
    }
    common['x-github-api-version-selected'] = '2022-11-28';
  }
  if (who.bad) return Object.assign(err(401, 'Bad credentials'), { headers: common });
  const key = ctx.entry.key || '(anonymous)';
  const { u, limit } = rateHeaders(key);
  const headers = Object.assign({}, common, {
    'x-ratelimit-limit': String(limit), 'x-ratelimit-resource': 'core', 'x-ratelimit-reset': String(u.reset),
  });
  if (server.config.secondary && (server.config.secondary.times === undefined || server.config.secondary.times > 0)) {
    if (server.config.secondary.times !== undefined) server.config.secondary.times--;
    Object.assign(headers, { 'retry-after': String(server.config.secondary.retry_after === undefined ? 60 : server.config.secondary.retry_after),
      'x-ratelimit-remaining': String(Math.max(0, limit - u.used)), 'x-ratelimit-used': String(u.used) });
    return { status: server.config.secondary.status || 403, headers, body: { message: 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID.', documentation_url: 'https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits' } };
  }
  if (u.used >= limit) {
    Object.assign(headers, { 'x-ratelimit-remaining': '0', 'x-ratelimit-used': String(u.used) });
    return { status: server.config.rate_limit_status, headers, body: { message: `API rate limit exceeded for ${who.anonymous ? '127.0.0.1' : 'user ID 4242'}. (But here's the good news: Authenticated requests get a higher rate limit. Check out the documentation for more details.)`, documentation_url: 'https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting' } };
  }
  u.used++;
  Object.assign(headers, { 'x-ratelimit-remaining': String(limit - u.used), 'x-ratelimit-used': String(u.used) });
  const resp = route(ctx);
  resp.headers = Object.assign({}, headers, resp.headers || {});
  return resp;
}

function control(ctx, p) {
  const m = ctx.method;
  const b = ctx.json || {};
  if (p === '/_fake/repos' && m === 'POST') {
    const list = Array.isArray(b) ? b : [b];
    for (const item of list) {
      const e = addData(item);
      if (e) return { status: 400, body: { error: e } };
    }
    return { status: 200, body: { repos: [...state.repos.keys()] } };
  }
  if (p === '/_fake/repos' && m === 'DELETE') {
    state.repos.clear();
    return { status: 200, body: { repos: [] } };
  }
  if (p === '/_fake/repos' && m === 'GET') {
    const out = {};
    for (const [k, r] of state.repos) out[k] = { deployments: r.deployments, commits: r.commits, pulls: r.pulls, statuses: Object.fromEntries(r.statuses) };
    return { status: 200, body: { repos: out } };
  }
  if (p === '/_fake/rate_limit' && m === 'POST') {
    // {remaining: 0} exhausts every key's allowance; {secondary: {retry_after, times, status}}
    if (b.remaining !== undefined) {
      for (const key of ['(anonymous)', ...TOKENS.map((_, i) => `token${i + 1}`)]) {
        const { u, limit } = rateHeaders(key);
        u.used = Math.max(0, limit - b.remaining);
        if (b.reset !== undefined) u.reset = b.reset;
      }
    }
    if (b.secondary !== undefined) server.config.secondary = b.secondary;
    return { status: 200, body: { ok: true } };
  }
  if (p === '/_fake/timeline' && m === 'GET') {
    const t = demo.timeline({ now: state.now, incidentAt: INCIDENT_AT });
    return { status: 200, body: t };
  }
  return null;
}

const server = new kit.FakeServer({
  name: 'github',
  faultSeed: args.fault_seed,
  keyName: (ctx) => {
    const w = tokenOf(ctx);
    return w.name || (w.anonymous ? '(anonymous)' : '(bad token)');
  },
  route: api,
  faultResp: (rule) => {
    const status = rule.status || 500;
    const headers = {};
    if (rule.retry_after !== undefined) headers['Retry-After'] = kit.retryAfterHeader(rule.retry_after);
    const body = status >= 500 ? { message: 'Server Error' } : { message: 'Fault injected', documentation_url: DOCS };
    return { status, headers, body };
  },
  control,
  defaultConfig: () => ({ latency_ms: args.latency_ms, rate_limit: args.rate_limit, rate_limit_status: args.rate_limit_status, secondary: null }),
  onReset: (body) => {
    loadScenario(...scenario(body));
    usage.clear();
  },
  stats: () => ({ scenario: state.scenario, repos: [...state.repos.keys()] }),
  // The scenario's URLs name the server, so it is loaded once the port is known.
  ready: (s) => {
    base = s.url;
    loadScenario(...scenario());
  },
});

server.start(args);
