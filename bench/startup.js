#!/usr/bin/env node
'use strict';
// Start-up time of `fox serve`: from spawning the process to its first 200 on
// GET /healthz (ready to serve), polling every millisecond. RUNS times with a fresh
// state directory (a first start creates the SQLite database) and RUNS times reusing
// it (a restart). Standard library only.
//
//   node bench/startup.js FOX CONFIG STATE_BASE [RUNS]
// Prints one JSON object: {fresh: [ms...], restart: [ms...]}.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');

const [fox, config, stateBase, runsArg] = process.argv.slice(2);
const RUNS = Number(runsArg || 10);

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

function healthz(port) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/healthz', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', () => resolve(0));
    req.setTimeout(1000, () => req.destroy());
  });
}

async function once(stateDir) {
  const port = await freePort();
  const t0 = process.hrtime.bigint();
  const child = spawn(fox, ['serve', '--config', config, '--listen', `127.0.0.1:${port}`, '--state-dir', stateDir],
    { stdio: ['ignore', 'ignore', 'ignore'] });
  let ms = null;
  const deadline = Date.now() + 10000;
  while (Date.now() < deadline) {
    const status = await healthz(port);
    if (status === 200) {
      ms = Number(process.hrtime.bigint() - t0) / 1e6;
      break;
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  child.kill('SIGTERM');
  await new Promise((r) => {
    const t = setTimeout(() => { child.kill('SIGKILL'); r(); }, 5000);
    child.on('exit', () => { clearTimeout(t); r(); });
  });
  if (ms === null) throw new Error('fox serve did not answer /healthz within 10 s');
  return ms;
}

async function main() {
  const fresh = [];
  const restart = [];
  for (let i = 0; i < RUNS; i++) {
    const dir = `${stateBase}/fresh-${i}`;
    fs.rmSync(dir, { recursive: true, force: true });
    fresh.push(await once(dir));
  }
  for (let i = 0; i < RUNS; i++) restart.push(await once(`${stateBase}/fresh-0`));
  process.stdout.write(JSON.stringify({ fresh, restart }) + '\n');
}

main().catch((e) => {
  process.stderr.write(`startup.js: ${e.stack || e}\n`);
  process.exit(1);
});
