#!/usr/bin/env node
'use strict';
// Fake OpenAI-compatible chat-completions endpoint for fox's optional AI summary.
// Standard library only; the shell (port file, --parent-pid, /_fake/requests, faults,
// /_fake/reset) is tests/fakes/lib/fakekit.js.
//
//   POST /v1/chat/completions  (also /chat/completions)
//     Authorization: Bearer <--key>; body {model, messages: [{role, content}], ...}
//     -> {id, object: "chat.completion", created, model, choices: [{index, message:
//        {role: "assistant", content}, finish_reason: "stop"}], usage}
//   Errors use OpenAI's shape: {error: {message, type, code}} (401 invalid_api_key,
//   400 invalid_request_error, 404 model_not_found).
//
// The answer's content is /_fake/config {content} when set, else a deterministic
// sentence naming the first suspect title found in the request ("The evidence points
// to <title> ..."), so tests can check that the evidence reached the model.
// Control: GET /_fake/requests (bodies received), POST /_fake/config {content, models},
// POST /_fake/faults (status, delay_ms, reset, malformed_json...), POST /_fake/reset.

const kit = require('../lib/fakekit');

const args = kit.cli('tests/fakes/openai/server.js', {
  ...kit.LISTEN_OPTIONS,
  key: { type: 'string', default: 'sk-test-key', arg: 'K', help: 'accepted API key (default sk-test-key)' },
  model: { type: 'list', arg: 'M', help: 'accepted model; repeatable (default: any model)' },
  content: { type: 'string', arg: 'TEXT', help: 'fixed answer content' },
});

function defaultConfig() {
  return { content: args.content || null, models: args.model.slice() };
}
let config = defaultConfig();
let completions = 0;

function oaiError(status, type, message, code) {
  return { status, body: { error: { message, type, param: null, code: code || null } } };
}

function firstSuspect(text) {
  const m = /"title"\s*:\s*"((?:[^"\\]|\\.)*)"/.exec(text);
  if (m) {
    try {
      return JSON.parse(`"${m[1]}"`);
    } catch (e) {
      return m[1];
    }
  }
  return null;
}

function route(ctx) {
  if (ctx.method !== 'POST' || !/^(\/v1)?\/chat\/completions$/.test(ctx.path)) {
    return oaiError(404, 'invalid_request_error', `Unknown request URL: ${ctx.method} ${ctx.path}`, 'unknown_url');
  }
  const auth = String(ctx.headers.authorization || '');
  const m = /^Bearer\s+(\S+)$/i.exec(auth);
  if (!m || m[1] !== args.key) {
    return oaiError(401, 'invalid_request_error', 'Incorrect API key provided.', 'invalid_api_key');
  }
  let body;
  try {
    body = JSON.parse(ctx.bodyText);
  } catch (e) {
    return oaiError(400, 'invalid_request_error', 'We could not parse the JSON body of your request.');
  }
  if (!body || typeof body.model !== 'string' || !body.model) {
    return oaiError(400, 'invalid_request_error', 'you must provide a model parameter');
  }
  if (config.models.length && !config.models.includes(body.model)) {
    return oaiError(404, 'invalid_request_error', `The model \`${body.model}\` does not exist`, 'model_not_found');
  }
  if (!Array.isArray(body.messages) || body.messages.length === 0 || body.messages.some((x) => !x || typeof x.role !== 'string' || typeof x.content !== 'string')) {
    return oaiError(400, 'invalid_request_error', "'messages' must be a non-empty array of {role, content}");
  }
  const all = body.messages.map((x) => x.content).join('\n');
  let content = config.content;
  if (!content) {
    const s = firstSuspect(all);
    content = s
      ? `The evidence points to ${s} as the most likely cause; the error spike started right after it.`
      : 'The evidence does not point to a single change.';
  }
  completions++;
  const prompt = Math.ceil(all.length / 4);
  const out = Math.ceil(content.length / 4);
  return {
    status: 200,
    body: {
      id: `chatcmpl-fake${completions}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: body.model,
      choices: [{ index: 0, message: { role: 'assistant', content }, logprobs: null, finish_reason: 'stop' }],
      usage: { prompt_tokens: prompt, completion_tokens: out, total_tokens: prompt + out },
    },
  };
}

function faultResp(rule) {
  const types = { 429: 'rate_limit_exceeded', 500: 'server_error', 503: 'server_error' };
  const r = oaiError(rule.status, types[rule.status] || 'api_error', `fault injected: HTTP ${rule.status}`);
  if (rule.retry_after !== undefined) r.headers = { 'Retry-After': String(rule.retry_after) };
  return r;
}

function setConfig(b) {
  const c = Object.assign({}, config);
  for (const [k, v] of Object.entries(b)) {
    if (k === 'content') {
      if (v !== null && typeof v !== 'string') return { error: 'content must be a string or null' };
      c.content = v;
    } else if (k === 'models') {
      if (!Array.isArray(v)) return { error: 'models must be a list' };
      c.models = v.slice();
    } else {
      return { error: `unknown config key ${k}` };
    }
  }
  config = c;
  return null;
}

const server = new kit.FakeServer({
  name: 'openai',
  keyName: (ctx) => (String(ctx.headers.authorization || '').endsWith(args.key) ? 'key' : null),
  route,
  faultResp,
  onReset: () => {
    config = defaultConfig();
    completions = 0;
    return null;
  },
  getConfig: () => Object.assign({}, config),
  config: setConfig,
  stats: () => ({ completions }),
});

server.start(args);
