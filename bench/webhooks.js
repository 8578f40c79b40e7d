#!/usr/bin/env node
'use strict';
// Signed incident.io deliveries (Standard Webhooks, as Svix signs them) for the
// benchmarks. Standard library only.
//
//   node bench/webhooks.js gen --count N --out FILE [--ids FILE] [--template FILE]
//       N deliveries, one per line: "webhook-id<TAB>timestamp<TAB>signature<TAB>body".
//       Every delivery has a unique webhook-id; the incident ids come from --ids (one a
//       line, used in turn) or are made up (msg number). Bodies are
//       public_incident.incident_created_v2 events carrying the incident of --template
//       (an IncidentV2 JSON file) with its id replaced, else a small made-up incident.
//   node bench/webhooks.js send --url URL --id INCIDENT_ID [--template FILE] [--warm 1]
//       one delivery; prints "<status> <milliseconds> <sent at, epoch ms>" once answered.
//       --warm: a GET /healthz on the same connection first (bench/fanout.sh).
//   node bench/webhooks.js blast --url URL --file FILE [--concurrency C] [--rate R]
//        [--accepted FILE]
//       sends the deliveries of FILE (from gen; their timestamps must be fresh), C at a
//       time (default 8), at most R a second when given; prints a JSON summary
//       {sent, by_status, errors, ms: {p50, p99, max}, seconds}; --accepted writes the
//       incident ids answered 2xx, one a line.
//   node bench/webhooks.js create --url INCIDENTIO_FAKE --count N --out FILE
//       creates N incidents like the demo's INC-2 in the incident.io fake (control API),
//       writes their ids to FILE, one a line.
//
// The secret is $INCIDENT_IO_WEBHOOK_SECRET (whsec_<base64>).
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');

const argv = process.argv.slice(2);
const mode = argv.shift();
const opt = {};
for (let i = 0; i < argv.length; i += 2) opt[argv[i].replace(/^--/, '')] = argv[i + 1];

const secret = process.env.INCIDENT_IO_WEBHOOK_SECRET || '';
if (!secret.startsWith('whsec_')) {
  process.stderr.write('webhooks.js: INCIDENT_IO_WEBHOOK_SECRET must be whsec_...\n');
  process.exit(2);
}
const key = Buffer.from(secret.slice(6), 'base64');

function sign(id, ts, body) {
  return 'v1,' + crypto.createHmac('sha256', key).update(`${id}.${ts}.${body}`).digest('base64');
}

const template = opt.template ? JSON.parse(fs.readFileSync(opt.template, 'utf8')) : {
  name: 'Payments failing at checkout', reference: 'INC-0', status: 'triage',
  summary: 'PaymentGatewayTimeout: upstream 504 from acquirer-eu', visibility: 'public',
};

function body(incidentId, n) {
  const inc = Object.assign({}, template, { id: incidentId });
  if (!template.reference || opt.template) inc.reference = inc.reference || `INC-${n}`;
  return JSON.stringify({ event_type: 'public_incident.incident_created_v2', 'public_incident.incident_created_v2': inc });
}

function request(method, url, headers, data) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: agentFor() }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.setTimeout(30000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(data);
  });
}

let agent;
function agentFor() {
  if (!agent) agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  return agent;
}

async function main() {
  if (mode === 'gen') {
    const n = Number(opt.count);
    const ids = opt.ids ? fs.readFileSync(opt.ids, 'utf8').split('\n').filter(Boolean) : null;
    const ts = String(Math.floor(Date.now() / 1000));
    const run = crypto.randomBytes(4).toString('hex');
    const lines = [];
    for (let i = 0; i < n; i++) {
      const wid = `msg_bench_${run}_${i}`;
      const incident = ids ? ids[i % ids.length] : `01BENCH${run.toUpperCase()}${String(i).padStart(11, '0')}`;
      const b = body(incident, i);
      lines.push(`${wid}\t${ts}\t${sign(wid, ts, b)}\t${b}`);
    }
    fs.writeFileSync(opt.out, lines.join('\n') + '\n');
  } else if (mode === 'send') {
    const wid = `msg_bench_${crypto.randomBytes(6).toString('hex')}`;
    const ts = String(Math.floor(Date.now() / 1000));
    const b = body(opt.id, 0);
    // Node's first request on a new connection costs it 5-15 ms before anything is
    // written: a request to /healthz first warms the client and opens the (keep-alive)
    // connection, so that "sent at" is when the delivery itself starts.
    if (opt.warm) await request('GET', new URL('/healthz', opt.url).href, {}, undefined);
    const sentAt = Date.now();
    const t0 = process.hrtime.bigint();
    const r = await request('POST', opt.url, {
      'Content-Type': 'application/json', 'webhook-id': wid, 'webhook-timestamp': ts,
      'webhook-signature': sign(wid, ts, b),
    }, b);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    process.stdout.write(`${r.status} ${ms.toFixed(2)} ${sentAt}\n`);
    if (r.status >= 300) process.stderr.write(r.body + '\n');
    agent.destroy();
  } else if (mode === 'blast') {
    const lines = fs.readFileSync(opt.file, 'utf8').split('\n').filter(Boolean);
    const conc = Number(opt.concurrency || 8);
    const rate = opt.rate ? Number(opt.rate) : 0;
    agent = new http.Agent({ keepAlive: true, maxSockets: conc });
    const byStatus = {};
    const lat = [];
    const accepted = [];
    let errors = 0;
    let next = 0;
    const t0 = Date.now();
    async function worker() {
      for (;;) {
        const i = next++;
        if (i >= lines.length) return;
        if (rate > 0) {
          const due = t0 + (i * 1000) / rate;
          const wait = due - Date.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        }
        const [wid, ts, sig, b] = lines[i].split('\t');
        const s0 = process.hrtime.bigint();
        try {
          const r = await request('POST', opt.url, {
            'Content-Type': 'application/json', 'webhook-id': wid, 'webhook-timestamp': ts, 'webhook-signature': sig,
          }, b);
          lat.push(Number(process.hrtime.bigint() - s0) / 1e6);
          byStatus[r.status] = (byStatus[r.status] || 0) + 1;
          if (r.status >= 200 && r.status < 300) accepted.push(JSON.parse(b)['public_incident.incident_created_v2'].id);
        } catch (e) {
          errors++;
        }
      }
    }
    await Promise.all(Array.from({ length: conc }, worker));
    const seconds = (Date.now() - t0) / 1000;
    lat.sort((a, b) => a - b);
    const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.ceil((p / 100) * lat.length) - 1)] : null);
    if (opt.accepted) fs.writeFileSync(opt.accepted, accepted.join('\n') + (accepted.length ? '\n' : ''));
    process.stdout.write(JSON.stringify({ sent: lines.length, by_status: byStatus, errors,
      ms: { p50: q(50), p99: q(99), max: lat[lat.length - 1] || null }, seconds }) + '\n');
    agent.destroy();
  } else if (mode === 'create') {
    const n = Number(opt.count);
    const ids = [];
    const fields = {
      name: 'Payments failing at checkout: PaymentGatewayTimeout (upstream 504)',
      severity: 'Critical', status: 'Investigating', services: ['payments-api', 'checkout-service'],
      created_at: new Date(Date.now() - 20 * 60000).toISOString(),
      summary: 'Service: payments-api\nError: PaymentGatewayTimeout: upstream 504 from gateway.internal\n\n'
        + 'Checkout payments are failing for about 30% of customers since the last deploy.',
      lead: 'priya', reporter: 'marcus',
    };
    // a few at a time: the control API is cheap, the fake is single-threaded
    for (let i = 0; i < n; i += 16) {
      const batch = [];
      for (let j = i; j < Math.min(n, i + 16); j++) {
        batch.push(request('POST', `${opt.url}/_fake/incidents`, { 'Content-Type': 'application/json' },
          JSON.stringify(Object.assign({}, fields, { slack_channel_id: 'C00INCIDENTS' }))));
      }
      for (const r of await Promise.all(batch)) {
        if (r.status !== 201) throw new Error(`the fake refused an incident: ${r.status} ${r.body}`);
        ids.push(JSON.parse(r.body).incident.id);
      }
    }
    fs.writeFileSync(opt.out, ids.join('\n') + '\n');
    agent.destroy();
  } else {
    process.stderr.write('usage: node bench/webhooks.js gen|send|blast|create ...\n');
    process.exit(2);
  }
}

main().catch((e) => {
  process.stderr.write(`webhooks.js: ${e.stack || e}\n`);
  process.exit(1);
});
