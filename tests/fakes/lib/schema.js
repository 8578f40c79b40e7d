'use strict';
// A small checker of JSON values against the OpenAPI subset's component schemas: required
// properties, types, enums, formats of date-times, and no properties the schema does not
// list. Used by the self-tests to keep the fake's shapes exactly per the spec.

const fs = require('node:fs');
const path = require('node:path');

const CANDIDATES = [
  process.env.FOX_INCIDENTIO_OPENAPI,
  path.join(__dirname, '..', '..', '..', 'docs', 'reference', 'incidentio-openapi-subset.json'),
  path.join(__dirname, '..', 'incidentio-openapi-subset.json'),
  '/work/shared/reference/incidentio-openapi-subset.json',
].filter(Boolean);

function loadSpec() {
  for (const p of CANDIDATES) {
    try {
      return JSON.parse(fs.readFileSync(p, 'utf8'));
    } catch (e) {
      /* next */
    }
  }
  return null;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const TIME_FIELDS = new Set(['created_at', 'updated_at', 'completed_at', 'archived_at', 'last_synced_at', 'timestamp']);

function validate(spec, value, schemaName) {
  const errors = [];
  const schemas = spec.components.schemas;
  function walk(v, s, at, key) {
    if (s.$ref) return walk(v, schemas[s.$ref.split('/').pop()], at, key);
    const type = s.type || (s.properties ? 'object' : undefined);
    if (type === 'object') {
      if (!v || typeof v !== 'object' || Array.isArray(v)) return errors.push(`${at}: expected object`);
      for (const r of s.required || []) if (!(r in v)) errors.push(`${at}: missing required ${r}`);
      if (s.properties) {
        for (const [k, sv] of Object.entries(v)) {
          if (!s.properties[k]) {
            if (!s.additionalProperties) errors.push(`${at}: property ${k} is not in the schema`);
            continue;
          }
          walk(sv, s.properties[k], `${at}.${k}`, k);
        }
      }
      return;
    }
    if (type === 'array') {
      if (!Array.isArray(v)) return errors.push(`${at}: expected array`);
      if (s.items) v.forEach((x, i) => walk(x, s.items, `${at}[${i}]`, key));
      return;
    }
    if (type === 'string') {
      if (typeof v !== 'string') return errors.push(`${at}: expected string, got ${JSON.stringify(v)}`);
      if (s.enum && !s.enum.includes(v)) errors.push(`${at}: ${JSON.stringify(v)} not in enum`);
      if ((TIME_FIELDS.has(key) || s.format === 'date-time') && !RFC3339.test(v)) errors.push(`${at}: not RFC 3339: ${v}`);
      return;
    }
    if (type === 'integer') {
      if (!Number.isInteger(v)) errors.push(`${at}: expected integer, got ${JSON.stringify(v)}`);
      return;
    }
    if (type === 'number') {
      if (typeof v !== 'number') errors.push(`${at}: expected number`);
      return;
    }
    if (type === 'boolean') {
      if (typeof v !== 'boolean') errors.push(`${at}: expected boolean`);
    }
  }
  walk(value, { $ref: `#/components/schemas/${schemaName}` }, schemaName, null);
  return errors;
}

module.exports = { loadSpec, validate };
