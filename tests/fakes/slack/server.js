#!/usr/bin/env node
'use strict';
// Fake Slack Web API (the methods fox uses) for tests. Follows the Slack section of
// /work/shared/reference/incidentio-api.md; see tests/fakes/README.md. Standard library only.

const http = require('node:http');
const kit = require('../lib/fakekit');

const USAGE = `usage: node tests/fakes/slack/server.js [options]
  --port N                port (0 = any free port; default 0)
  --host H                address to bind (default 127.0.0.1)
  --port-file PATH        write the port there once listening
  --token T[:scope,...]   accepted bot token (default xoxb-test-token, all scopes); repeatable
  --seed NAME             channels of the incident.io seed: default | demo | large:N | none
  --now RFC3339           the seed's reference time (use the same as the incident.io fake)
  --channel ID[:name]     an extra channel; repeatable
  --archived ID           mark a channel archived; repeatable
  --any-channel           accept any channel id (created on first use)
  --post-rate N           chat.postMessage per channel per second (default 1)
  --post-burst N          burst size of that bucket (default 5)
  --no-rate-limit         no 429s
  --latency-ms N          delay every API answer
  --require-text          blocks without text -> ok:false no_text (default: ok with a warning)
  --incidentio-url URL    tell the incident.io fake about pins (/_fake/pinned_message)
  --fault-seed N          seed of the fault-probability PRNG
  --parent-pid PID        exit when that process is gone (checked every second)
`;

const args = kit.parseArgs(process.argv.slice(2), {
  ...kit.LISTEN_OPTIONS,
  token: { type: 'list' },
  seed: { type: 'string', default: 'default' },
  now: { type: 'string' },
  channel: { type: 'list' },
  archived: { type: 'list' },
  any_channel: { type: 'bool', default: false },
  post_rate: { type: 'number', default: 1 },
  post_burst: { type: 'number', default: 5 },
  rate_limit: { type: 'bool', default: true },
  require_text: { type: 'bool', default: false },
  incidentio_url: { type: 'string' },
  ...kit.ANSWER_OPTIONS,
}, USAGE);

const START = args.now ? Date.parse(args.now) : Date.now();
const ALL_SCOPES = ['chat:write', 'chat:write.public', 'pins:read', 'pins:write', 'reactions:read', 'reactions:write', 'channels:read', 'groups:read', 'channels:history'];
const TEAM = { id: 'T04ACMEPAY', name: 'Acme Pay', url: 'https://acme-pay.slack.com/' };
const BOT = { user_id: 'U0FOXBOT01', bot_id: 'B0FOXBOT01', app_id: 'A0FOXAPP01', name: 'incidentfox' };

const METHOD_SCOPE = {
  'chat.postMessage': 'chat:write',
  'chat.update': 'chat:write',
  'pins.add': 'pins:write',
  'reactions.add': 'reactions:write',
  'conversations.info': 'channels:read',
  'auth.test': null,
};

// ---------------------------------------------------------------------------------------
// Config and state

function defaultTokens() {
  const specs = args.token.length ? args.token : ['xoxb-test-token'];
  const m = new Map();
  specs.forEach((s, i) => {
    const j = s.indexOf(':');
    const token = j >= 0 ? s.slice(0, j) : s;
    const scopes = j >= 0 ? s.slice(j + 1).split(',').filter(Boolean) : ALL_SCOPES.slice();
    m.set(token, { token, name: i === 0 ? 'bot' : `bot${i + 1}`, scopes });
  });
  return m;
}

function defaultConfig() {
  return {
    rate_limit: args.rate_limit,
    post_rate_per_sec: args.post_rate,
    post_burst: args.post_burst,
    any_channel: args.any_channel,
    latency_ms: args.latency_ms,
    require_text_with_blocks: args.require_text,
    incidentio_url: args.incidentio_url || null,
  };
}

let config = defaultConfig();
let tokens = defaultTokens();
let state;

function seedChannels(seed) {
  const out = [
    { id: 'C00INCIDENTS', name: 'incidents', is_archived: false, is_member: true },
    { id: 'C00FOXFINDS', name: 'fox-findings', is_archived: false, is_member: true },
    { id: 'C00PAYMENTS', name: 'payments-eng', is_archived: false, is_member: true },
    { id: 'C00RANDOM00', name: 'random', is_archived: false, is_member: false },
    { id: 'C00ARCHIVED', name: 'old-announcements', is_archived: true, is_member: true },
  ];
  if (seed && seed !== 'none') {
    const seeds = require('../incidentio/seed');
    for (const c of seeds.build(seed, START).channels) out.push(c);
  }
  for (const spec of args.channel) {
    const i = spec.indexOf(':');
    const id = i >= 0 ? spec.slice(0, i) : spec;
    out.push({ id, name: i >= 0 ? spec.slice(i + 1) : id.toLowerCase(), is_archived: false, is_member: true });
  }
  for (const c of out) {
    if (args.archived.includes(c.id)) c.is_archived = true;
    if (!c.created) c.created = Math.floor(START / 1000) - 86400 * 400;
  }
  return out;
}

function freshState(seed) {
  const channels = new Map();
  for (const c of seedChannels(seed)) channels.set(c.id, c);
  return { seed, channels, messages: [], pins: [], reactions: [], buckets: new Map(), lastTs: 0, rateLimited: 0, calls: {} };
}

try {
  state = freshState(args.seed);
} catch (e) {
  process.stderr.write(`${e.message}\n`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------
// Helpers

function slackErr(error, extra) {
  return { status: 200, body: Object.assign({ ok: false, error }, extra || {}) };
}

function nextTs(now) {
  let t = Math.floor(now * 1000); // microseconds
  if (t <= state.lastTs) t = state.lastTs + 1;
  state.lastTs = t;
  const s = String(t);
  return `${s.slice(0, -6)}.${s.slice(-6)}`;
}

function findChannel(ref) {
  if (!ref) return null;
  let c = state.channels.get(ref);
  if (c) return c;
  const name = String(ref).replace(/^#/, '');
  for (const ch of state.channels.values()) if (ch.name === name) return ch;
  if (config.any_channel && /^[CGD][A-Z0-9]{6,}$/.test(ref)) {
    c = { id: ref, name: ref.toLowerCase(), is_archived: false, is_member: true, created: Math.floor(Date.now() / 1000) };
    state.channels.set(ref, c);
    return c;
  }
  return null;
}

function textOf(obj) {
  return obj && typeof obj === 'object' && typeof obj.text === 'string' ? obj.text : null;
}

// Block Kit checks, enough to catch what Slack rejects most often.
function checkBlocks(raw) {
  let blocks = raw;
  if (typeof blocks === 'string') {
    try {
      blocks = JSON.parse(blocks);
    } catch (e) {
      return { error: 'invalid_blocks_format' };
    }
  }
  if (!Array.isArray(blocks)) return { error: 'invalid_blocks_format' };
  if (blocks.length > 50) return { error: 'invalid_blocks', detail: `must provide an array of no more than 50 items [json-pointer:/blocks]` };
  const TYPES = ['section', 'divider', 'image', 'actions', 'context', 'input', 'file', 'header', 'rich_text', 'video', 'markdown'];
  for (const [i, b] of blocks.entries()) {
    const at = `[json-pointer:/blocks/${i}]`;
    if (!b || typeof b !== 'object' || typeof b.type !== 'string') return { error: 'invalid_blocks', detail: `missing required field: type ${at}` };
    if (!TYPES.includes(b.type)) return { error: 'invalid_blocks', detail: `unsupported type: ${b.type} ${at}` };
    const checkText = (t, where, max, plainOnly) => {
      if (!t || typeof t !== 'object' || !['plain_text', 'mrkdwn'].includes(t.type) || typeof t.text !== 'string') return `invalid text object ${where}`;
      if (plainOnly && t.type !== 'plain_text') return `must be plain_text ${where}`;
      if (t.text.length > max) return `must be less than ${max + 1} characters ${where}`;
      if (t.text.length === 0) return `must be more than 0 characters ${where}`;
      return null;
    };
    let problem = null;
    if (b.type === 'section') {
      if (b.text === undefined && b.fields === undefined) problem = `must provide text or fields ${at}`;
      if (!problem && b.text !== undefined) problem = checkText(b.text, `[json-pointer:/blocks/${i}/text/text]`, 3000);
      if (!problem && b.fields !== undefined) {
        if (!Array.isArray(b.fields) || b.fields.length > 10) problem = `fields: no more than 10 items [json-pointer:/blocks/${i}/fields]`;
        else for (const [j, f] of b.fields.entries()) problem = problem || checkText(f, `[json-pointer:/blocks/${i}/fields/${j}/text]`, 2000);
      }
    } else if (b.type === 'header') {
      problem = checkText(b.text, `[json-pointer:/blocks/${i}/text/text]`, 150, true);
    } else if (b.type === 'context') {
      if (!Array.isArray(b.elements) || b.elements.length === 0 || b.elements.length > 10) problem = `elements: 1 to 10 items [json-pointer:/blocks/${i}/elements]`;
    } else if (b.type === 'actions') {
      if (!Array.isArray(b.elements) || b.elements.length === 0 || b.elements.length > 25) problem = `elements: 1 to 25 items [json-pointer:/blocks/${i}/elements]`;
    } else if (b.type === 'markdown') {
      if (typeof b.text !== 'string' || b.text.length > 12000) problem = `text: at most 12000 characters [json-pointer:/blocks/${i}/text]`;
    }
    if (b.block_id !== undefined && (typeof b.block_id !== 'string' || b.block_id.length > 255)) problem = problem || `block_id: at most 255 characters ${at}`;
    if (problem) return { error: 'invalid_blocks', detail: problem };
  }
  return { blocks };
}

function takePostToken(channelId, now) {
  if (!config.rate_limit) return { ok: true };
  const cap = config.post_burst;
  const rate = config.post_rate_per_sec;
  let b = state.buckets.get(channelId);
  if (!b) state.buckets.set(channelId, (b = { tokens: cap, last: now }));
  b.tokens = Math.min(cap, b.tokens + ((now - b.last) / 1000) * rate);
  b.last = now;
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return { ok: true };
  }
  return { ok: false, retryAfter: Math.max(1, Math.ceil((1 - b.tokens) / rate)) };
}

function ratelimited(retryAfter) {
  state.rateLimited++;
  return { status: 429, headers: { 'Retry-After': String(retryAfter) }, body: { ok: false, error: 'ratelimited' } };
}

function publicMessage(m) {
  const o = { type: 'message', text: m.text, user: BOT.user_id, bot_id: BOT.bot_id, app_id: BOT.app_id, team: TEAM.id, ts: m.ts };
  if (m.blocks) o.blocks = m.blocks;
  if (m.attachments) o.attachments = m.attachments;
  if (m.thread_ts) o.thread_ts = m.thread_ts;
  if (m.edited) o.edited = { user: BOT.user_id, ts: m.edited };
  o.bot_profile = { id: BOT.bot_id, app_id: BOT.app_id, name: BOT.name, team_id: TEAM.id, deleted: false };
  return o;
}

function notifyIncidentio(channel, m, via) {
  if (!config.incidentio_url) return;
  let u;
  try {
    u = new URL('/_fake/pinned_message', config.incidentio_url);
  } catch (e) {
    return;
  }
  const body = JSON.stringify({ channel: channel.id, ts: m.ts, text: m.text, user_name: BOT.name, via });
  const req = http.request(u, { method: 'POST', headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } }, (res) => res.resume());
  req.on('error', () => {});
  req.end(body);
}

function boolArg(v) {
  return v === true || v === 'true' || v === '1';
}

// ---------------------------------------------------------------------------------------
// Methods

const METHODS = {
  'auth.test': () => ({ status: 200, body: { ok: true, url: TEAM.url, team: TEAM.name, user: BOT.name, team_id: TEAM.id, user_id: BOT.user_id, bot_id: BOT.bot_id, is_enterprise_install: false } }),

  'conversations.info': (a) => {
    if (!a.channel) return slackErr('channel_not_found');
    const c = findChannel(a.channel);
    if (!c) return slackErr('channel_not_found');
    const created = c.created || 0;
    return {
      status: 200,
      body: {
        ok: true,
        channel: {
          id: c.id, name: c.name, name_normalized: c.name, is_channel: true, is_group: false, is_im: false, is_mpim: false, is_private: false,
          is_archived: !!c.is_archived, is_general: c.name === 'incidents', is_shared: false, is_org_shared: false, is_member: !!c.is_member,
          created, creator: 'U0' + 'INCIDENTIO', unlinked: 0, context_team_id: TEAM.id,
          topic: { value: c.incident_reference ? `${c.incident_reference} - managed by incident.io` : '', creator: '', last_set: created },
          purpose: { value: c.incident_reference ? `Channel for ${c.incident_reference}` : '', creator: '', last_set: created },
          previous_names: [],
        },
      },
    };
  },

  'chat.postMessage': (a, ctx, now) => {
    const c = findChannel(a.channel);
    if (!c) return slackErr('channel_not_found');
    if (c.is_archived) return slackErr('is_archived');
    if (!c.is_member) return slackErr('not_in_channel');
    const rl = takePostToken(c.id, now);
    if (!rl.ok) return ratelimited(rl.retryAfter);
    return postOrUpdate(a, c, now, null);
  },

  'chat.update': (a, ctx, now) => {
    const c = findChannel(a.channel);
    if (!c) return slackErr('channel_not_found');
    if (c.is_archived) return slackErr('is_archived');
    if (!a.ts) return slackErr('message_not_found');
    const m = state.messages.find((x) => x.channel === c.id && x.ts === a.ts);
    if (!m) return slackErr('message_not_found');
    return postOrUpdate(a, c, now, m);
  },

  'pins.add': (a) => {
    const c = findChannel(a.channel);
    if (!c) return slackErr('channel_not_found');
    if (c.is_archived) return slackErr('is_archived');
    if (!c.is_member) return slackErr('not_in_channel');
    if (!a.timestamp) return slackErr('no_item_specified');
    const m = state.messages.find((x) => x.channel === c.id && x.ts === a.timestamp);
    if (!m) return slackErr('message_not_found');
    if (m.pinned) return slackErr('already_pinned');
    m.pinned = true;
    state.pins.push({ channel: c.id, ts: m.ts, pinned_at: new Date().toISOString() });
    notifyIncidentio(c, m, 'pins.add');
    return { status: 200, body: { ok: true } };
  },

  'reactions.add': (a) => {
    const c = findChannel(a.channel);
    if (!c) return slackErr('channel_not_found');
    if (c.is_archived) return slackErr('is_archived');
    if (!a.timestamp) return slackErr('no_item_specified');
    if (!a.name) return slackErr('invalid_name');
    if (!/^[a-z0-9_+'-]+(::skin-tone-[2-6])?$/.test(a.name)) return slackErr('invalid_name');
    const m = state.messages.find((x) => x.channel === c.id && x.ts === a.timestamp);
    if (!m) return slackErr('message_not_found');
    if (m.reactions.includes(a.name)) return slackErr('already_reacted');
    m.reactions.push(a.name);
    state.reactions.push({ channel: c.id, ts: m.ts, name: a.name });
    if (a.name === 'pushpin') notifyIncidentio(c, m, 'reactions.add');
    return { status: 200, body: { ok: true } };
  },
};

function postOrUpdate(a, c, now, existing) {
  const warnings = [];
  const text = a.text === undefined || a.text === null ? '' : String(a.text);
  let blocks;
  if (a.blocks !== undefined && a.blocks !== '' && a.blocks !== null) {
    const r = checkBlocks(a.blocks);
    if (r.error) return slackErr(r.error, r.detail ? { response_metadata: { messages: [`[ERROR] ${r.detail}`] } } : undefined);
    blocks = r.blocks;
  }
  let attachments;
  if (a.attachments !== undefined && a.attachments !== '' && a.attachments !== null) {
    attachments = a.attachments;
    if (typeof attachments === 'string') {
      try {
        attachments = JSON.parse(attachments);
      } catch (e) {
        return slackErr('invalid_attachments');
      }
    }
    if (!Array.isArray(attachments)) return slackErr('invalid_attachments');
  }
  if (!text && !blocks && !attachments) return slackErr('no_text');
  if (text.length > 40000) return slackErr('msg_too_long');
  if (blocks && !text) {
    if (config.require_text_with_blocks) return slackErr('no_text');
    warnings.push('missing_text');
  }
  if (!existing) {
    const m = {
      channel: c.id, channel_name: c.name, ts: nextTs(now), text, blocks: blocks || null, attachments: attachments || null,
      thread_ts: a.thread_ts ? String(a.thread_ts) : null, reply_broadcast: boolArg(a.reply_broadcast),
      unfurl_links: a.unfurl_links === undefined ? null : boolArg(a.unfurl_links), unfurl_media: a.unfurl_media === undefined ? null : boolArg(a.unfurl_media),
      method: 'chat.postMessage', pinned: false, reactions: [], edits: [], posted_at: new Date(now).toISOString(),
    };
    if (m.thread_ts && !state.messages.some((x) => x.channel === c.id && x.ts === m.thread_ts)) m.thread_found = false;
    state.messages.push(m);
    const body = { ok: true, channel: c.id, ts: m.ts, message: publicMessage(m) };
    if (warnings.length) Object.assign(body, { warning: warnings.join(','), response_metadata: { warnings } });
    return { status: 200, body };
  }
  existing.edits.push({ text: existing.text, blocks: existing.blocks, at: new Date(now).toISOString() });
  if (a.text !== undefined) existing.text = text;
  if (a.blocks !== undefined) existing.blocks = blocks || null;
  if (a.attachments !== undefined) existing.attachments = attachments || null;
  existing.edited = nextTs(now);
  const body = { ok: true, channel: c.id, ts: existing.ts, text: existing.text, message: publicMessage(existing) };
  if (warnings.length) Object.assign(body, { warning: warnings.join(','), response_metadata: { warnings } });
  return { status: 200, body };
}

// ---------------------------------------------------------------------------------------
// Pipeline

function tokenOf(ctx) {
  const h = ctx.headers.authorization;
  if (h) {
    const m = /^\s*bearer\s+(\S+)\s*$/i.exec(h);
    return m ? m[1] : '';
  }
  const ct = String(ctx.headers['content-type'] || '');
  if (ctx.method === 'POST' && ct.startsWith('application/x-www-form-urlencoded')) {
    const f = kit.parseForm(ctx.bodyText);
    if (f && f.token) return f.token;
  }
  if (ctx.query.token && typeof ctx.query.token === 'string') return ctx.query.token;
  return null;
}

function parseArgsOf(ctx) {
  const ct = String(ctx.headers['content-type'] || '').toLowerCase();
  const warnings = [];
  let a = {};
  if (ctx.method === 'GET') {
    for (const [k, v] of ctx.pairs) a[k] = v;
    return { a, warnings };
  }
  if (ct.startsWith('application/json')) {
    if (!/charset=/.test(ct)) warnings.push('missing_charset');
    if (ctx.bodyText.trim() === '') return { a, warnings };
    try {
      a = JSON.parse(ctx.bodyText);
    } catch (e) {
      return { error: 'invalid_json' };
    }
    if (!a || typeof a !== 'object' || Array.isArray(a)) return { error: 'json_not_object' };
    return { a, warnings };
  }
  if (ct.startsWith('application/x-www-form-urlencoded') || ct.startsWith('text/plain') || ct === '') {
    const f = kit.parseForm(ctx.bodyText);
    if (!f) return { error: 'invalid_form_data' };
    for (const [k, v] of ctx.pairs) if (f[k] === undefined) f[k] = v;
    return { a: f, warnings };
  }
  if (ct.startsWith('multipart/form-data')) return { error: 'invalid_form_data' };
  return { error: 'invalid_post_type' };
}

function route(ctx) {
  const now = Date.now();
  const mm = /^\/api\/([A-Za-z.]+)$/.exec(ctx.path);
  if (!mm) return { status: 404, body: { ok: false, error: 'unknown_method' } };
  const method = mm[1];
  state.calls[method] = (state.calls[method] || 0) + 1;
  if (!Object.prototype.hasOwnProperty.call(METHODS, method)) return { status: 404, body: { ok: false, error: 'unknown_method', req_method: method } };
  const tok = tokenOf(ctx);
  if (tok === null || tok === '') return slackErr('not_authed');
  const t = tokens.get(tok);
  if (!t) return slackErr('invalid_auth');
  const headers = { 'X-OAuth-Scopes': t.scopes.join(','), 'X-Accepted-OAuth-Scopes': METHOD_SCOPE[method] || '' };
  const need = METHOD_SCOPE[method];
  if (need && !t.scopes.includes(need)) {
    return { status: 200, headers, body: { ok: false, error: 'missing_scope', needed: need, provided: t.scopes.join(',') } };
  }
  const p = parseArgsOf(ctx);
  if (p.error) return Object.assign(slackErr(p.error), { headers });
  const resp = METHODS[method](p.a, ctx, now);
  resp.headers = Object.assign({}, headers, resp.headers || {});
  if (p.warnings.length && resp.body && resp.body.ok) {
    const w = (resp.body.response_metadata && resp.body.response_metadata.warnings) || [];
    resp.body.response_metadata = { warnings: w.concat(p.warnings) };
    resp.body.warning = resp.body.response_metadata.warnings.join(',');
  }
  return resp;
}

function routeWithFault(ctx, rule) {
  if (rule && rule.slack_error) return slackErr(rule.slack_error);
  return route(ctx);
}

function faultResp(rule) {
  if (rule.status === 429) {
    state.rateLimited++;
    return { status: 429, headers: { 'Retry-After': String(rule.retry_after === undefined ? 1 : rule.retry_after) }, body: { ok: false, error: 'ratelimited' } };
  }
  const err = { 500: 'fatal_error', 503: 'service_unavailable', 504: 'request_timeout' }[rule.status] || 'internal_error';
  const r = { status: rule.status, headers: {}, body: { ok: false, error: err } };
  if (rule.retry_after !== undefined) r.headers['Retry-After'] = String(rule.retry_after);
  return r;
}

// ---------------------------------------------------------------------------------------
// Control API

function control(ctx, p) {
  const m = ctx.method;
  const b = ctx.json || {};
  if (p === '/_fake/messages') {
    if (m === 'GET') {
      const q = ctx.query;
      const list = state.messages.filter((x) => (!q.channel || x.channel === q.channel || x.channel_name === q.channel) && (!q.thread_ts || x.thread_ts === q.thread_ts));
      return { status: 200, body: { messages: list } };
    }
    if (m === 'DELETE') {
      state.messages = [];
      state.pins = [];
      state.reactions = [];
      return { status: 200, body: { messages: [] } };
    }
  }
  if (p === '/_fake/pins' && m === 'GET') return { status: 200, body: { pins: state.pins } };
  if (p === '/_fake/reactions' && m === 'GET') return { status: 200, body: { reactions: state.reactions } };
  if (p === '/_fake/channels') {
    if (m === 'GET') return { status: 200, body: { channels: [...state.channels.values()] } };
    if (m === 'POST') {
      const list = Array.isArray(b) ? b : [b];
      for (const c of list) {
        if (!c || !c.id) return { status: 400, body: { error: 'channel id required' } };
        const cur = state.channels.get(c.id) || { id: c.id, name: c.id.toLowerCase(), is_archived: false, is_member: true, created: Math.floor(Date.now() / 1000) };
        for (const k of ['name', 'is_archived', 'is_member']) if (c[k] !== undefined) cur[k] = c[k];
        state.channels.set(c.id, cur);
      }
      return { status: 200, body: { channels: [...state.channels.values()] } };
    }
  }
  if (p === '/_fake/tokens') {
    if (m === 'GET') return { status: 200, body: { tokens: [...tokens.values()] } };
    if (m === 'POST') {
      if (!b.token) return { status: 400, body: { error: 'token required' } };
      tokens.set(b.token, { token: b.token, name: b.name || b.token, scopes: b.scopes || ALL_SCOPES.slice() });
      return { status: 200, body: { tokens: [...tokens.values()] } };
    }
  }
  return null;
}

function setConfig(b) {
  const c = Object.assign({}, config);
  const err = kit.applyConfig(c, b, {
    rate_limit: 'bool', any_channel: 'bool', require_text_with_blocks: 'bool', post_rate_per_sec: 'positive',
    post_burst: 'positive', latency_ms: 'ms', incidentio_url: 'any',
    scopes: (v) => {
      if (!Array.isArray(v)) return 'scopes must be a list';
      for (const t of tokens.values()) t.scopes = v.slice();
      return null;
    },
  });
  if (err) return err;
  if (c.post_rate_per_sec !== config.post_rate_per_sec || c.post_burst !== config.post_burst) state.buckets.clear();
  config = c;
  return null;
}

const server = new kit.FakeServer({
  name: 'slack',
  faultSeed: args.fault_seed,
  keyName: (ctx) => {
    const t = tokenOf(ctx);
    const k = t ? tokens.get(t) : null;
    return k ? k.name : null;
  },
  route: routeWithFault,
  faultResp,
  control,
  latency: () => config.latency_ms,
  onReset: (body) => {
    state = freshState(body.seed || args.seed);
    config = defaultConfig();
    tokens = defaultTokens();
    return null;
  },
  getConfig: () => Object.assign({}, config, { tokens: [...tokens.values()].map((t) => ({ name: t.name, scopes: t.scopes })) }),
  config: setConfig,
  stats: () => ({ rate_limited: state.rateLimited, messages: state.messages.length, pins: state.pins.length, reactions: state.reactions.length, calls: state.calls, seed: state.seed }),
});

server.start(args);
