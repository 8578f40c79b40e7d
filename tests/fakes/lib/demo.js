'use strict';
// The demo story shared by the evidence-source fakes (GitHub, change feed, Loki,
// Elasticsearch) and the Prometheus helper (tests/lua/helpers/prometheus.lua):
//
//   incident        INC-2 in payments-api, created at `incidentAt` (default: now - 20 min,
//                   as the incident.io fake's demo seed)
//   deploy          payments-api v2.35.0 to production 20 min before the incident
//                   (GitHub deployment + status, CD change feed event)
//   pull request    #412 "Bump payment gateway client to 3.2; shorten upstream timeout",
//                   merged 15 min before the deploy; its merge commit is what was deployed
//   error spike     from 3 min after the deploy: "PaymentGatewayTimeout: upstream 504 from
//                   gateway.internal" in payments-api's logs (and 502s in checkout-service)
//
// Every time is derived from `now` and `incidentAt` so the story always sits in the
// windows the sources query. Standard library only.

const crypto = require('node:crypto');

const MIN = 60000;
const HOUR = 60 * MIN;

function sha(key) {
  return crypto.createHash('sha1').update(String(key)).digest('hex');
}

function uuid(key) {
  const h = crypto.createHash('sha256').update(String(key)).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

// Parses --now / --incident-at values: RFC 3339, epoch seconds or epoch milliseconds.
function parseTime(v, fallback) {
  if (v === undefined || v === null || v === '') return fallback;
  if (/^\d+(\.\d+)?$/.test(String(v))) {
    const n = Number(v);
    return n > 1e12 ? n : n * 1000;
  }
  const ms = Date.parse(v);
  if (!Number.isFinite(ms)) throw new Error(`not a time: ${v}`);
  return ms;
}

// The options of the fakes that tell the story.
const SCENARIO_OPTIONS = {
  now: { type: 'string', arg: 'TIME', help: 'reference time (RFC 3339 or epoch; default: start)' },
  incident_at: { type: 'string', arg: 'TIME', help: 'when the demo incident was created (default: now - 20 min)' },
};

// scenario(body) -> [name, now, incidentAt] for a fake's load function: --scenario, --now
// (default: when the fake started) and --incident-at, overridden by the fields scenario,
// now and incident_at of a POST /_fake/reset body.
function scenarioFrom(args) {
  const start = parseTime(args.now, Date.now());
  const incidentAt = args.incident_at ? parseTime(args.incident_at) : undefined;
  return (body = {}) => [body.scenario || args.scenario, body.now ? parseTime(body.now) : start,
    body.incident_at ? parseTime(body.incident_at) : incidentAt];
}

// The story's times (epoch ms). opts: {now, incidentAt, deployBeforeMin}
function timeline(opts = {}) {
  const now = opts.now || Date.now();
  const incidentAt = opts.incidentAt || now - 20 * MIN;
  const deployAt = incidentAt - (opts.deployBeforeMin === undefined ? 20 : opts.deployBeforeMin) * MIN;
  return {
    now,
    incidentAt,
    deployAt,
    deployDoneAt: deployAt + 90 * 1000,
    mergedAt: deployAt - 15 * MIN,
    errorsFrom: deployAt + 3 * MIN,
    version: 'v2.35.0',
    previousVersion: 'v2.34.1',
    repo: 'acme/payments-api',
    prNumber: 412,
    prTitle: 'Bump payment gateway client to 3.2; shorten upstream timeout',
    prBranch: 'deps/gateway-client-3.2',
    mergeSha: sha('payments-api merge #412'),
    errorText: 'PaymentGatewayTimeout: upstream 504 from gateway.internal (POST /v3/authorisations, 2000ms)',
  };
}

// Log events of the demo, oldest first: {ts (ms), service, level, logger, message,
// error: {type, message} | null, pod, request_id, fields}.
// payments-api: info traffic every 20 s; a few unrelated Redis timeouts an hour; from
// errorsFrom until now a PaymentGatewayTimeout every 2 s. checkout-service: 502s from
// payments-api every 5 s after the spike, one unrelated error before.
function logEvents(opts = {}) {
  const t = timeline(opts);
  const from = opts.from || t.now - 2 * HOUR;
  const events = [];
  const pods = ['payments-api-7d9f8b6c5-x2x4z', 'payments-api-7d9f8b6c5-k8q2m', 'payments-api-7d9f8b6c5-p0w7d'];
  let n = 0;
  for (let ts = from; ts < t.now; ts += 20000) {
    n++;
    events.push({
      ts, service: 'payments-api', level: 'info', logger: 'http', pod: pods[n % 3],
      message: `POST /v3/payments/authorise 200 in ${80 + (n * 37) % 90}ms`, error: null, request_id: uuid(`ok${n}`),
    });
  }
  for (let ts = from + 7 * MIN, i = 0; ts < t.now; ts += 23 * MIN, i++) {
    events.push({
      ts, service: 'payments-api', level: 'error', logger: 'cache', pod: pods[i % 3],
      message: 'session cache read failed',
      error: { type: 'RedisTimeout', message: `RedisTimeout: read tcp 10.0.3.${7 + i}:5${1234 + i}->10.0.9.9:6379: i/o timeout` },
      request_id: uuid(`redis${i}`),
    });
  }
  for (let ts = t.errorsFrom, i = 0; ts < t.now; ts += 2000, i++) {
    events.push({
      ts: ts + (i * 7) % 900, service: 'payments-api', level: 'error', logger: 'gateway.client', pod: pods[i % 3],
      message: 'charge failed',
      error: { type: 'PaymentGatewayTimeout', message: t.errorText.replace('2000ms', `${2000 + (i % 3)}ms`) },
      request_id: uuid(`gw${i}`), fields: { merchant_id: `m_${(1000 + i * 17) % 9000}`, attempt: 1 + (i % 2) },
    });
  }
  events.push({
    ts: from + 31 * MIN, service: 'checkout-service', level: 'error', logger: 'cart', pod: 'checkout-service-5c6d7e8f9-abcde',
    message: "TypeError: Cannot read properties of undefined (reading 'lineItems')", error: null, request_id: uuid('co0'),
  });
  for (let ts = t.errorsFrom + 20000, i = 0; ts < t.now; ts += 5000, i++) {
    events.push({
      ts, service: 'checkout-service', level: 'error', logger: 'payments', pod: 'checkout-service-5c6d7e8f9-abcde',
      message: `HTTP 502 from payments-api on POST /v3/payments/authorise (order ${uuid(`ord${i}`)})`, error: null,
      request_id: uuid(`co${i + 1}`),
    });
  }
  events.sort((a, b) => a.ts - b.ts);
  return events;
}

// A log event as the JSON line an app would write (what Loki stores).
function jsonLine(e) {
  const o = { ts: new Date(e.ts).toISOString(), level: e.level, logger: e.logger, msg: e.message };
  if (e.error) o.error = e.error.message;
  o.request_id = e.request_id;
  o.pod = e.pod;
  Object.assign(o, e.fields || {});
  return JSON.stringify(o);
}

// A log event as an ECS document (what Elasticsearch stores).
function ecsDoc(e) {
  const d = {
    '@timestamp': new Date(e.ts).toISOString(),
    message: e.message,
    log: { level: e.level, logger: e.logger },
    service: { name: e.service, environment: 'production' },
    host: { name: e.pod },
    trace: { id: e.request_id.replace(/-/g, '') },
  };
  if (e.error) d.error = { type: e.error.type, message: e.error.message };
  if (e.fields) d.labels = e.fields;
  return d;
}

module.exports = { MIN, HOUR, sha, uuid, parseTime, SCENARIO_OPTIONS, scenarioFrom, timeline, logEvents, jsonLine, ecsDoc };
