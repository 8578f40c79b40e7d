#!/usr/bin/env node
'use strict';
// Runs the fakes' self-tests: `node tests/fakes/selftest.js` is the same as
// `node --test tests/fakes/` (node's built-in runner over tests/fakes/*.test.js).
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const files = fs.readdirSync(__dirname).filter((f) => f.endsWith('.test.js')).map((f) => path.join(__dirname, f));
const r = spawnSync(process.execPath, ['--test', ...process.argv.slice(2), ...files], { stdio: 'inherit' });
process.exit(r.status === null ? 1 : r.status);
