'use strict';
// Starts a fake as a child process for node:test suites (and any Node script):
//   const f = await startFake('incidentio', ['--seed', 'demo']);
//   const r = await f.api('GET', '/v2/incidents', { key: 'test-viewer-key' });
//   await f.control('POST', '/_fake/faults', [{ path_prefix: '/v2/incidents', status: 500 }]);
//   f.stop();

const { spawn } = require('node:child_process');
const path = require('node:path');
const http = require('node:http');

const SERVERS = {
  incidentio: path.join(__dirname, '..', 'incidentio', 'server.js'),
  slack: path.join(__dirname, '..', 'slack', 'server.js'),
};

function startFake(kind, extraArgs = []) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const proc = spawn(process.execPath, [SERVERS[kind], '--port', '0', '--parent-pid', String(process.pid), ...extraArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`${kind} fake did not start in time: ${err}`));
    }, 5000);
    proc.stderr.on('data', (d) => (err += d));
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m && timer) {
        clearTimeout(timer);
        const url = m[1];
        resolve(makeClient(kind, proc, url, Date.now() - t0));
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${kind} fake exited with ${code}: ${err}`));
    });
  });
}

// Raw HTTP request (no redirects, no automatic encoding): resolves {status, headers, text, json}
// or rejects on a reset / truncated answer.
function request(url, method, pathAndQuery, { headers = {}, body, timeout = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    let data = body;
    const h = Object.assign({}, headers);
    if (data !== undefined && typeof data !== 'string' && !Buffer.isBuffer(data)) {
      data = JSON.stringify(data);
      if (!h['Content-Type']) h['Content-Type'] = 'application/json; charset=utf-8';
    }
    if (data !== undefined) h['Content-Length'] = Buffer.byteLength(data);
    const req = http.request({ host: u.hostname, port: u.port, method, path: pathAndQuery, headers: h, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('aborted', () => reject(new Error('aborted')));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try {
          json = JSON.parse(text);
        } catch (e) {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.setTimeout(timeout, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    if (data !== undefined) req.write(data);
    req.end();
  });
}

function makeClient(kind, proc, url, startupMs) {
  let exited = false;
  proc.on('exit', () => (exited = true));
  const c = {
    kind,
    proc,
    url,
    startupMs,
    port: Number(new URL(url).port),
    request: (method, p, opts) => request(url, method, p, opts),
    // incident.io style: key -> Authorization: Bearer <key>
    api(method, p, { key, body, headers } = {}) {
      const h = Object.assign({}, headers);
      if (key) h.Authorization = `Bearer ${key}`;
      return request(url, method, p, { headers: h, body });
    },
    // Slack style: JSON body with a bot token
    slack(methodName, args, { token = 'xoxb-test-token', form = false, headers } = {}) {
      const h = Object.assign({}, headers);
      if (token) h.Authorization = `Bearer ${token}`;
      let body = args;
      if (form) {
        body = new URLSearchParams(Object.entries(args).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)])).toString();
        h['Content-Type'] = 'application/x-www-form-urlencoded';
      }
      return request(url, 'POST', `/api/${methodName}`, { headers: h, body });
    },
    async control(method, p, body) {
      const r = await request(url, method, p, { body });
      if (r.status >= 400) throw new Error(`control ${method} ${p}: ${r.status} ${r.text}`);
      return r.json;
    },
    stop() {
      if (!exited) proc.kill('SIGTERM');
      return new Promise((r) => (exited ? r() : proc.on('exit', r)));
    },
  };
  return c;
}

module.exports = { startFake, request };
