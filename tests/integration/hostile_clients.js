#!/usr/bin/env node
// Hostile HTTP clients for the hardening tests (issue 8, item 3), loopback only.
//
//   node tests/integration/hostile_clients.js --port P --mode MODE --connections N
//        --seconds S [--parent-pid PID]
//
// Modes (every connection to 127.0.0.1:P, path /webhooks/incident-io):
//   slowloris  sends a request line and then one more header byte every 500 ms, never
//              finishing the headers
//   slowbody   sends complete headers (Content-Length 100000) and then one body byte
//              every 500 ms
//   idle       connects and sends nothing
//   flood      N complete, unsigned POSTs at once (Connection: close); counts statuses
// Connections are held for S seconds (at most 120), then closed; the process then
// prints one JSON line {mode, opened, failed, closed_by_server, statuses, ms} and exits.
// It exits on its own after S + 10 seconds whatever happens, and within a second of
// the parent's death.
'use strict';
const net = require('net');

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const port = Number(args.port);
const mode = args.mode || 'slowloris';
const n = Math.min(Number(args.connections || 100), 5000);
const seconds = Math.min(Number(args.seconds || 5), 120);
if (!(port > 0)) {
  process.stderr.write('usage: hostile_clients.js --port P --mode slowloris|slowbody|idle|flood --connections N --seconds S\n');
  process.exit(2);
}

const started = Date.now();
const result = { mode, opened: 0, failed: 0, closed_by_server: 0, statuses: {}, ms: 0 };
const sockets = [];
let finished = false;

function finish() {
  if (finished) return;
  finished = true;
  for (const s of sockets) s.destroy();
  result.ms = Date.now() - started;
  process.stdout.write(JSON.stringify(result) + '\n');
  setTimeout(() => process.exit(0), 50);
}
setTimeout(finish, seconds * 1000);
setTimeout(() => process.exit(3), (seconds + 10) * 1000).unref();
if (args['parent-pid']) {
  const parent = Number(args['parent-pid']);
  setInterval(() => {
    try { process.kill(parent, 0); } catch (e) { process.exit(4); }
  }, 1000).unref();
}

const body = '{"event_type":"public_incident.incident_created_v2"}';
function open(i) {
  const s = net.connect({ host: '127.0.0.1', port });
  sockets.push(s);
  let connected = false;
  let timer = null;
  let answer = '';
  s.on('connect', () => {
    connected = true;
    result.opened++;
    if (mode === 'slowloris') {
      s.write('POST /webhooks/incident-io HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow-' + i + ': ');
      timer = setInterval(() => s.write('a'), 500);
    } else if (mode === 'slowbody') {
      s.write('POST /webhooks/incident-io HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
        'webhook-id: msg_slow_' + i + '\r\nwebhook-timestamp: 1\r\nwebhook-signature: v1,AAAA\r\n' +
        'Content-Length: 100000\r\n\r\n{');
      timer = setInterval(() => s.write(' '), 500);
    } else if (mode === 'flood') {
      s.write('POST /webhooks/incident-io HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
        'Connection: close\r\nwebhook-id: msg_flood_' + i + '\r\nwebhook-timestamp: ' +
        Math.floor(Date.now() / 1000) + '\r\nwebhook-signature: v1,Zm9yZ2VkLXNpZ25hdHVyZS1mb3ItdGhlLWZsb29kLXRlc3Q=\r\n' +
        'Content-Length: ' + Buffer.byteLength(body) + '\r\n\r\n' + body);
    }
  });
  s.on('data', (d) => { answer += d.toString('latin1'); });
  s.on('error', () => {});
  s.on('close', () => {
    if (timer) clearInterval(timer);
    if (!connected) result.failed++;
    else if (!finished) {
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(answer);
      if (m) result.statuses[m[1]] = (result.statuses[m[1]] || 0) + 1;
      else result.closed_by_server++;
    }
    if (mode === 'flood' && result.opened + result.failed >= n &&
        Object.values(result.statuses).reduce((a, b) => a + b, 0) + result.closed_by_server + result.failed >= n) {
      finish();
    }
  });
}

// Open in batches so the listen backlog is not the thing under test.
let next = 0;
(function batch() {
  for (let k = 0; k < 200 && next < n; k++) open(next++);
  if (next < n) setTimeout(batch, 10);
})();
