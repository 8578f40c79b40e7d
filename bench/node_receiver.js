#!/usr/bin/env node
'use strict';
// The comparison for the webhook-ingest benchmark: a minimal incident.io webhook
// receiver in Node.js (standard library only) doing the same Standard Webhooks
// verification as fox's POST /webhooks/incident-io:
//   - body size limit (1 MiB) -> 413
//   - webhook-id, webhook-timestamp (within 300 s of now), webhook-signature
//     ("v1,<base64>" entries, space-separated) = base64(HMAC-SHA256(key,
//     "<id>.<timestamp>.<body>")), key = base64-decoded secret after "whsec_",
//     compared in constant time -> 401
//   - webhook-id seen before (kept in memory for 3 days) -> 200 {"status":"duplicate"}
//   - body must be JSON with an event_type -> 400
//   - incident_created_v2 with an incident id -> 202 {"status":"queued"}; other event
//     types -> 200 {"status":"ignored"}
// What it does not do, and fox does: record the id and queue the incident durably
// (SQLite, fsync) before answering, log a line per delivery, count metrics.
//
//   INCIDENT_IO_WEBHOOK_SECRET=whsec_... node bench/node_receiver.js --port-file F
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');

const argv = process.argv.slice(2);
const opt = {};
for (let i = 0; i < argv.length; i += 2) opt[argv[i].replace(/^--/, '')] = argv[i + 1];

const secret = process.env.INCIDENT_IO_WEBHOOK_SECRET || '';
if (!secret.startsWith('whsec_')) {
  process.stderr.write('node_receiver: INCIDENT_IO_WEBHOOK_SECRET must be whsec_...\n');
  process.exit(2);
}
const key = Buffer.from(secret.slice(6), 'base64');
const MAX_BODY = 1 << 20;
const TOLERANCE = 300;
const ID_TTL_MS = 3 * 86400 * 1000;
const ACTIONS = new Set(['public_incident.incident_created_v2', 'private_incident.incident_created_v2']);
const seen = new Map(); // webhook-id -> expiry (ms)

function reply(res, status, obj) {
  const body = JSON.stringify(obj) + '\n';
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function verify(headers, body) {
  const id = headers['webhook-id'];
  const ts = headers['webhook-timestamp'];
  const sigs = headers['webhook-signature'];
  if (!id || !ts || !sigs || !/^\d{1,18}$/.test(ts)) return false;
  if (Math.abs(Date.now() / 1000 - Number(ts)) > TOLERANCE) return false;
  const mac = crypto.createHmac('sha256', key).update(`${id}.${ts}.`).update(body).digest();
  let ok = false;
  for (const entry of sigs.split(' ')) {
    if (!entry.startsWith('v1,')) continue;
    const given = Buffer.from(entry.slice(3), 'base64');
    if (given.length === mac.length && crypto.timingSafeEqual(given, mac)) ok = true;
  }
  return ok;
}

const server = http.createServer((req, res) => {
  if (req.url !== '/webhooks/incident-io') return reply(res, 404, { error: 'not found' });
  if (req.method !== 'POST') return reply(res, 405, { error: 'use POST' });
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size <= MAX_BODY) chunks.push(c);
  });
  req.on('end', () => {
    if (size > MAX_BODY) return reply(res, 413, { error: 'body too large' });
    const body = Buffer.concat(chunks);
    if (!verify(req.headers, body)) return reply(res, 401, { error: 'signature verification failed' });
    const id = req.headers['webhook-id'];
    const now = Date.now();
    const exp = seen.get(id);
    if (exp && exp > now) return reply(res, 200, { status: 'duplicate' });
    let event;
    try {
      event = JSON.parse(body.toString('utf8'));
    } catch (e) {
      return reply(res, 400, { error: 'body is not valid JSON' });
    }
    if (!event || typeof event.event_type !== 'string') return reply(res, 400, { error: 'no event_type' });
    if (!ACTIONS.has(event.event_type)) return reply(res, 200, { status: 'ignored' });
    const p = event[event.event_type];
    const incident = p && (p.id || (p.incident && p.incident.id));
    if (typeof incident !== 'string' || !incident) return reply(res, 400, { error: 'no incident id' });
    seen.set(id, now + ID_TTL_MS);
    return reply(res, 202, { status: 'queued', incident_id: incident });
  });
});

server.keepAliveTimeout = 5000;
server.listen(Number(opt.port || 0), '127.0.0.1', () => {
  const port = server.address().port;
  if (opt['port-file']) {
    fs.writeFileSync(`${opt['port-file']}.tmp`, `${port}\n`);
    fs.renameSync(`${opt['port-file']}.tmp`, opt['port-file']);
  }
  process.stdout.write(`listening on http://127.0.0.1:${port}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
if (opt['parent-pid']) {
  setInterval(() => {
    try {
      process.kill(Number(opt['parent-pid']), 0);
    } catch (e) {
      process.exit(0);
    }
  }, 1000).unref();
}
