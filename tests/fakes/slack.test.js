'use strict';
// Self-test of the fake Slack Web API: node --test tests/fakes/
const { test, before, after, beforeEach } = require('node:test');
const assert = require('node:assert/strict');
const { startFake } = require('./lib/harness');

let slack;
let inc;
let inc2Channel;

before(async () => {
  [slack, inc] = await Promise.all([startFake('slack'), startFake('incidentio')]);
  inc2Channel = (await inc.api('GET', '/v2/incidents/2', { key: 'test-viewer-key' })).json.incident.slack_channel_id;
});
after(() => Promise.all([slack.stop(), inc.stop()]));
beforeEach(() => slack.control('POST', '/_fake/reset'));

function okFalse(r, error) {
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.ok, false, r.text);
  assert.equal(r.json.error, error);
}

test('auth: auth.test, invalid and missing tokens', async () => {
  const r = await slack.slack('auth.test', {});
  assert.equal(r.json.ok, true);
  assert.equal(r.json.team_id, 'T04ACMEPAY');
  assert.ok(r.json.user_id && r.json.bot_id);
  okFalse(await slack.slack('auth.test', {}, { token: 'xoxb-wrong' }), 'invalid_auth');
  okFalse(await slack.slack('chat.postMessage', { channel: 'C00FOXFINDS', text: 'x' }, { token: null }), 'not_authed');
  // form posts may carry the token in the body
  const form = await slack.request('POST', '/api/chat.postMessage', { headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'token=xoxb-test-token&channel=C00FOXFINDS&text=via+form' });
  assert.equal(form.json.ok, true);
  okFalse(await slack.request('POST', '/api/nope.nope', { headers: { Authorization: 'Bearer xoxb-test-token' } }).then((x) => Object.assign(x, { status: 200 })), 'unknown_method');
});

test('chat.postMessage to an incident channel, threads, the message log', async () => {
  const a = await slack.slack('chat.postMessage', { channel: inc2Channel, text: 'IncidentFox: 3 similar past incidents', blocks: [{ type: 'section', text: { type: 'mrkdwn', text: '*INC-46* rolled back' } }] });
  assert.equal(a.json.ok, true, a.text);
  assert.equal(a.json.channel, inc2Channel);
  assert.match(a.json.ts, /^\d{10}\.\d{6}$/);
  assert.equal(a.json.message.text, 'IncidentFox: 3 similar past incidents');
  const b = await slack.slack('chat.postMessage', { channel: inc2Channel, text: 'details', thread_ts: a.json.ts });
  assert.equal(b.json.message.thread_ts, a.json.ts);
  assert.ok(b.json.ts > a.json.ts);
  const log = await slack.control('GET', `/_fake/messages?channel=${inc2Channel}`);
  assert.equal(log.messages.length, 2);
  assert.equal(log.messages[0].blocks[0].type, 'section');
  assert.equal(log.messages[1].thread_ts, a.json.ts);
  const form = await slack.slack('chat.postMessage', { channel: 'C00FOXFINDS', text: 'form', blocks: [{ type: 'divider' }] }, { form: true });
  assert.equal(form.json.ok, true, form.text);
  const byName = await slack.slack('chat.postMessage', { channel: '#fox-findings', text: 'by name' });
  assert.equal(byName.json.channel, 'C00FOXFINDS');
  const noText = await slack.slack('chat.postMessage', { channel: 'C00FOXFINDS', blocks: [{ type: 'divider' }] });
  assert.equal(noText.json.ok, true);
  assert.deepEqual(noText.json.response_metadata.warnings, ['missing_text']);
});

test('ok:false paths', async () => {
  okFalse(await slack.slack('chat.postMessage', { channel: 'C0NOSUCH', text: 'x' }), 'channel_not_found');
  okFalse(await slack.slack('chat.postMessage', { channel: 'C00ARCHIVED', text: 'x' }), 'is_archived');
  okFalse(await slack.slack('chat.postMessage', { channel: 'C00RANDOM00', text: 'x' }), 'not_in_channel');
  okFalse(await slack.slack('chat.postMessage', { channel: 'C00FOXFINDS' }), 'no_text');
  okFalse(await slack.slack('chat.postMessage', { channel: 'C00FOXFINDS', text: 'x'.repeat(40001) }), 'msg_too_long');
  assert.equal((await slack.slack('chat.postMessage', { channel: 'C00FOXFINDS', text: 'x'.repeat(40000) })).json.ok, true);
  const many = Array.from({ length: 51 }, () => ({ type: 'divider' }));
  okFalse(await slack.slack('chat.postMessage', { channel: 'C00INCIDENTS', text: 'x', blocks: many }), 'invalid_blocks');
  const long = [{ type: 'section', text: { type: 'mrkdwn', text: 'y'.repeat(3001) } }];
  okFalse(await slack.slack('chat.postMessage', { channel: 'C00INCIDENTS', text: 'x', blocks: long }), 'invalid_blocks');
  okFalse(await slack.slack('chat.postMessage', { channel: 'C00INCIDENTS', text: 'x', blocks: [{ text: 'no type' }] }), 'invalid_blocks');
  okFalse(await slack.slack('chat.postMessage', { channel: 'C00INCIDENTS', text: 'x', blocks: '{"nope"' }), 'invalid_blocks_format');
  okFalse(await slack.request('POST', '/api/chat.postMessage', { headers: { Authorization: 'Bearer xoxb-test-token', 'Content-Type': 'application/json; charset=utf-8' }, body: '{bad' }), 'invalid_json');
  await slack.control('POST', '/_fake/channels', { id: 'C00FOXFINDS', is_archived: true });
  okFalse(await slack.slack('chat.postMessage', { channel: 'C00FOXFINDS', text: 'x' }), 'is_archived');
  await slack.control('POST', '/_fake/config', { any_channel: true });
  assert.equal((await slack.slack('chat.postMessage', { channel: 'C0ANYTHING1', text: 'x' })).json.ok, true);
  await slack.control('POST', '/_fake/config', { scopes: ['chat:write'] });
  const ms = await slack.slack('pins.add', { channel: 'C00INCIDENTS', timestamp: '1.2' });
  okFalse(ms, 'missing_scope');
  assert.equal(ms.json.needed, 'pins:write');
});

test('rate limit per channel: 429 ratelimited with Retry-After seconds', async () => {
  await slack.control('POST', '/_fake/config', { post_burst: 2, post_rate_per_sec: 1 });
  assert.equal((await slack.slack('chat.postMessage', { channel: 'C00INCIDENTS', text: '1' })).json.ok, true);
  assert.equal((await slack.slack('chat.postMessage', { channel: 'C00INCIDENTS', text: '2' })).json.ok, true);
  const r = await slack.slack('chat.postMessage', { channel: 'C00INCIDENTS', text: '3' });
  assert.equal(r.status, 429);
  assert.deepEqual(r.json, { ok: false, error: 'ratelimited' });
  assert.match(r.headers['retry-after'], /^\d+$/);
  // another channel has its own allowance
  assert.equal((await slack.slack('chat.postMessage', { channel: 'C00PAYMENTS', text: 'x' })).json.ok, true);
  const stats = await slack.control('GET', '/_fake/stats');
  assert.equal(stats.rate_limited, 1);
  assert.equal(stats.messages, 3);
});

test('chat.update, pins.add, reactions.add, conversations.info', async () => {
  const a = await slack.slack('chat.postMessage', { channel: 'C00INCIDENTS', text: 'draft' });
  const u = await slack.slack('chat.update', { channel: 'C00INCIDENTS', ts: a.json.ts, text: 'final' });
  assert.equal(u.json.ok, true);
  assert.equal(u.json.text, 'final');
  okFalse(await slack.slack('chat.update', { channel: 'C00INCIDENTS', ts: '123.456', text: 'x' }), 'message_not_found');
  assert.equal((await slack.slack('pins.add', { channel: 'C00INCIDENTS', timestamp: a.json.ts })).json.ok, true);
  okFalse(await slack.slack('pins.add', { channel: 'C00INCIDENTS', timestamp: a.json.ts }), 'already_pinned');
  okFalse(await slack.slack('pins.add', { channel: 'C00INCIDENTS' }), 'no_item_specified');
  assert.equal((await slack.slack('reactions.add', { channel: 'C00INCIDENTS', timestamp: a.json.ts, name: 'eyes' })).json.ok, true);
  okFalse(await slack.slack('reactions.add', { channel: 'C00INCIDENTS', timestamp: a.json.ts, name: 'eyes' }), 'already_reacted');
  okFalse(await slack.slack('reactions.add', { channel: 'C00INCIDENTS', timestamp: a.json.ts, name: ':eyes:' }), 'invalid_name');
  const msgs = (await slack.control('GET', '/_fake/messages')).messages;
  assert.equal(msgs[0].text, 'final');
  assert.equal(msgs[0].edits[0].text, 'draft');
  assert.equal(msgs[0].pinned, true);
  assert.deepEqual(msgs[0].reactions, ['eyes']);
  assert.equal((await slack.control('GET', '/_fake/pins')).pins.length, 1);
  const info = await slack.slack('conversations.info', { channel: inc2Channel });
  assert.equal(info.json.ok, true);
  assert.match(info.json.channel.name, /^inc-2-/);
  okFalse(await slack.slack('conversations.info', { channel: 'C0NOSUCH' }), 'channel_not_found');
});

test('faults on the Slack fake', async () => {
  await slack.control('POST', '/_fake/faults', [
    { path: '/api/chat.postMessage', times: 1, slack_error: 'not_in_channel' },
    { path: '/api/chat.postMessage', times: 1, status: 429, retry_after: 3 },
    { path: '/api/chat.postMessage', times: 1, reset: true },
    { path: '/api/chat.postMessage', times: 1, status: 500 },
  ]);
  okFalse(await slack.slack('chat.postMessage', { channel: 'C00INCIDENTS', text: 'x' }), 'not_in_channel');
  const r = await slack.slack('chat.postMessage', { channel: 'C00INCIDENTS', text: 'x' });
  assert.equal(r.status, 429);
  assert.equal(r.headers['retry-after'], '3');
  await assert.rejects(slack.slack('chat.postMessage', { channel: 'C00INCIDENTS', text: 'x' }));
  assert.equal((await slack.slack('chat.postMessage', { channel: 'C00INCIDENTS', text: 'x' })).status, 500);
  assert.equal((await slack.slack('chat.postMessage', { channel: 'C00INCIDENTS', text: 'x' })).json.ok, true);
  const log = await slack.control('GET', '/_fake/requests?path=/api/chat.postMessage');
  assert.deepEqual(log.requests.map((x) => x.status), [200, 429, 'reset', 500, 200]);
  assert.equal(log.requests[0].key, 'bot');
});

test('pinning a message in an incident channel puts it on the incident.io timeline', async () => {
  await slack.control('POST', '/_fake/config', { incidentio_url: inc.url });
  const m = await slack.slack('chat.postMessage', { channel: inc2Channel, text: 'IncidentFox finding: matches INC-46 (rolled back v2.31.0)' });
  assert.equal((await slack.slack('pins.add', { channel: inc2Channel, timestamp: m.json.ts })).json.ok, true);
  const id = (await inc.api('GET', '/v2/incidents/2', { key: 'test-viewer-key' })).json.incident.id;
  let found;
  for (let i = 0; i < 50 && !found; i++) {
    const items = (await inc.api('GET', `/v2/incident_timeline_items?incident_id=${id}&page_size=250`, { key: 'test-viewer-key' })).json.incident_timeline_items;
    found = items.find((x) => /matches INC-46/.test(x.description || ''));
    if (!found) await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(found, 'pinned message on the timeline');
  assert.match(found.title, /^Pinned message/);
});
