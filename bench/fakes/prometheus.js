#!/usr/bin/env node
'use strict';
// A small Prometheus for the benchmarks: `GET|POST /api/v1/query_range` answering a
// matrix for the demo story (tests/fakes/lib/demo.js), with an injectable latency like
// the other fakes. The specs and the demo use the real `prometheus` package; a real
// server cannot delay its answers, which the fan-out benchmark needs.
//
// The story: payments-api's error ratio and p99 latency jump 10x three minutes after
// the deploy (demo timeline); every other series is flat. The query's `service="..."`
// matcher picks the service; `5..` in it means the error ratio, `histogram_quantile`
// the latency, anything else a flat saturation series.
//
// Same shell as the other fakes (tests/fakes/lib/fakekit.js): --port-file,
// --parent-pid, --latency-ms, /_fake/config {latency_ms}, /_fake/requests.
const kit = require('../../tests/fakes/lib/fakekit');
const demo = require('../../tests/fakes/lib/demo');

const USAGE = `usage: node bench/fakes/prometheus.js [options]
  --port N            port (0 = any free port; default 0)
  --host H            address to bind (default 127.0.0.1)
  --port-file PATH    write the port there once listening
  --parent-pid PID    exit when that process is gone
  --now TIME          reference time (RFC 3339 or epoch; default: start)
  --incident-at TIME  when the demo incident was created (default: now - 20 min)
  --latency-ms N      delay every answer
`;

const args = kit.parseArgs(process.argv.slice(2), {
  port: { type: 'int', default: 0 },
  host: { type: 'string', default: '127.0.0.1' },
  port_file: { type: 'string' },
  parent_pid: { type: 'int' },
  now: { type: 'string' },
  incident_at: { type: 'string' },
  latency_ms: { type: 'int', default: 0 },
}, USAGE);

const START = demo.parseTime(args.now, Date.now());
const INCIDENT_AT = args.incident_at ? demo.parseTime(args.incident_at) : undefined;
const story = demo.timeline({ now: START, incidentAt: INCIDENT_AT });
const CHANGE_AT = story.errorsFrom / 1000;

let config = { latency_ms: args.latency_ms };

function num(v) {
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

function series(query, start, end, step) {
  const m = /service="([^"]*)"/.exec(query);
  const service = m ? m[1] : 'unknown';
  const spiking = service === 'payments-api';
  let base;
  let after;
  if (query.includes('5..')) {
    base = 0.005;
    after = spiking ? 0.05 : base;
  } else if (query.includes('histogram_quantile')) {
    base = 0.25;
    after = spiking ? 2.4 : base;
  } else {
    base = 0.8;
    after = base;
  }
  const values = [];
  // at most 11000 points, as Prometheus itself refuses more
  const first = Math.ceil(start / step) * step;
  for (let t = first, n = 0; t <= end && n < 11000; t += step, n++) {
    const wobble = 1 + 0.02 * Math.sin(n);
    values.push([t, String((t >= CHANGE_AT ? after : base) * wobble)]);
  }
  return [{ metric: { service }, values }];
}

function route(ctx) {
  if (ctx.path !== '/api/v1/query_range') {
    return { status: 404, body: { status: 'error', errorType: 'not_found', error: 'not found' } };
  }
  let params = ctx.query;
  if (ctx.method === 'POST') params = Object.assign({}, params, kit.parseForm(ctx.bodyText));
  const start = num(params.start);
  const end = num(params.end);
  const step = num(params.step);
  if (typeof params.query !== 'string' || start === null || end === null || !(step > 0) || end < start) {
    return { status: 400, body: { status: 'error', errorType: 'bad_data', error: 'query, start, end and step are required' } };
  }
  return {
    status: 200,
    body: { status: 'success', data: { resultType: 'matrix', result: series(params.query, start, end, step) } },
  };
}

const server = new kit.FakeServer({
  name: 'prometheus',
  route,
  faultResp: (rule) => ({ status: rule.status || 500, body: { status: 'error', errorType: 'internal', error: 'fault injected' } }),
  latency: () => config.latency_ms,
  onReset: () => {
    config = { latency_ms: args.latency_ms };
    return null;
  },
  getConfig: () => config,
  config: (body) => {
    for (const [k, v] of Object.entries(body)) {
      if (!(k in config)) return { error: `unknown config key ${k}` };
      if (!(Number.isInteger(v) && v >= 0)) return { error: `${k} must be a non-negative integer` };
      config[k] = v;
    }
    return null;
  },
});

server.listen({ port: args.port, host: args.host, portFile: args.port_file, parentPid: args.parent_pid }).catch((e) => {
  process.stderr.write(`prometheus fake: cannot listen: ${e.message}\n`);
  process.exit(1);
});
