'use strict';
// The organisation's settings in the fake: severities, statuses, types, custom fields,
// roles, timestamps, users, the service catalog. Fixed ids (ULID-like, derived from a key)
// so tests can hard-code them; see README.md.

const { ulidFor, rfc3339 } = require('../lib/fakekit');

const SETTINGS_TIME = rfc3339(Date.UTC(2023, 2, 14, 9, 30, 0));

const ORG = {
  slug: 'acme-pay',
  name: 'Acme Pay',
  dashboard_url: 'https://app.incident.io/acme-pay',
  slack_team_id: 'T04ACMEPAY',
  domain: 'acme-pay.example',
};

const SERVICES = ['payments-api', 'checkout-service', 'user-auth', 'search', 'notifications', 'inventory-api'];

function stamp(o) {
  return Object.assign(o, { created_at: SETTINGS_TIME, updated_at: SETTINGS_TIME });
}

const severities = [
  ['Critical', 4, 'Issues causing **complete loss** of a customer-facing service, data loss or a security breach. Page everyone.'],
  ['High', 3, 'Issues causing **significant impact** to customers, such as a core flow failing for a subset of users.'],
  ['Medium', 2, 'Issues with **noticeable but limited** customer impact, or degraded performance.'],
  ['Low', 1, 'Issues with **low impact**, no or few customers affected.'],
].map(([name, rank, description]) => stamp({ id: ulidFor(`severity:${name.toLowerCase()}`), name, description, rank }));

const statuses = [
  ['Triage', 'triage', 'We are checking whether this is a real incident.'],
  ['Investigating', 'live', "We're **investigating** the cause of the incident."],
  ['Fixing', 'live', "We've found the cause and are **working on a fix**."],
  ['Monitoring', 'live', 'A fix is in place and we are **monitoring** the results.'],
  ['Paused', 'paused', 'Work is **paused**, e.g. while we wait for a third party.'],
  ['Documenting', 'learning', 'Impact has been **fully mitigated**, and we are writing up what we learned.'],
  ['Closed', 'closed', 'The incident is **closed**: no further work is needed.'],
  ['Declined', 'declined', 'This was not an incident.'],
  ['Merged', 'merged', 'This incident was merged into another incident.'],
  ['Canceled', 'canceled', 'This incident was canceled.'],
].map(([name, category, description], i) =>
  stamp({ id: ulidFor(`status:${name.toLowerCase()}`), name, description, category, rank: i + 1 })
);

const incidentTypes = [
  ['Default', true, false, 'optional', 'Anything that does not fit the other types.'],
  ['Production Outage', false, false, 'always', 'Customer facing production outages.'],
  ['Degraded Performance', false, false, 'optional', 'Elevated latency or error rates without a full outage.'],
  ['Security Incident', false, true, 'always', 'Suspected or confirmed security incidents. Always private.'],
].map(([name, is_default, private_incidents_only, create_in_triage, description]) =>
  stamp({
    id: ulidFor(`incident_type:${name.toLowerCase()}`),
    name, description, is_default, private_incidents_only, create_in_triage,
  })
);

const catalogType = {
  id: ulidFor('catalog_type:service'),
  name: 'Service',
  description: 'Services we run in production, synced from Backstage.',
  type_name: 'Custom["Service"]',
  engine_resource_type: 'CatalogEntry["Service"]',
  ranked: false,
  schema: {
    version: 3,
    attributes: [
      { id: ulidFor('catalog_attr:tier'), name: 'Tier', type: 'String', mode: 'external', array: false },
      { id: ulidFor('catalog_attr:owner'), name: 'Owning team', type: 'String', mode: 'external', array: false },
      { id: ulidFor('catalog_attr:runbook'), name: 'Runbook', type: 'Url', mode: 'external', array: false },
    ],
  },
  icon: 'server',
  categories: ['service'],
  color: 'blue',
  is_editable: false,
  is_team_type: false,
  annotations: { 'incident.io/catalog-importer/id': 'acme-pay-backstage' },
  estimated_count: SERVICES.length,
  last_synced_at: SETTINGS_TIME,
  source_repo_url: 'https://github.com/acme-pay/catalog',
  use_name_as_identifier: true,
  created_at: SETTINGS_TIME,
  updated_at: SETTINGS_TIME,
};

const SERVICE_META = {
  'payments-api': { aliases: ['payments', 'pay-api', 'svc-payments'], tier: 'tier-1', team: 'Payments' },
  'checkout-service': { aliases: ['checkout', 'svc-checkout'], tier: 'tier-1', team: 'Checkout' },
  'user-auth': { aliases: ['auth', 'login', 'svc-auth'], tier: 'tier-1', team: 'Identity' },
  search: { aliases: ['search-api', 'svc-search'], tier: 'tier-2', team: 'Discovery' },
  notifications: { aliases: ['notify', 'svc-notifications'], tier: 'tier-2', team: 'Messaging' },
  'inventory-api': { aliases: ['inventory', 'stock', 'svc-inventory'], tier: 'tier-2', team: 'Fulfilment' },
};

const catalogEntries = SERVICES.map((s, i) => ({
  id: ulidFor(`catalog_entry:${s}`),
  catalog_type_id: catalogType.id,
  name: s,
  aliases: SERVICE_META[s].aliases,
  external_id: `component:default/${s}`,
  rank: i + 1,
  attribute_values: {
    [catalogType.schema.attributes[0].id]: { value: { label: SERVICE_META[s].tier, literal: SERVICE_META[s].tier } },
    [catalogType.schema.attributes[1].id]: { value: { label: SERVICE_META[s].team, literal: SERVICE_META[s].team } },
    [catalogType.schema.attributes[2].id]: {
      value: { label: 'Runbook', literal: `https://runbooks.${ORG.domain}/${s}` },
    },
  },
  created_at: SETTINGS_TIME,
  updated_at: SETTINGS_TIME,
}));

const CF = {
  services: ulidFor('custom_field:affected_services'),
  servicesCatalog: ulidFor('custom_field:affected_services_catalog'),
  rootCause: ulidFor('custom_field:root_cause'),
  postmortem: ulidFor('custom_field:postmortem'),
  detection: ulidFor('custom_field:detection_source'),
  customers: ulidFor('custom_field:customers_affected'),
};

function options(fieldId, values) {
  return values.map((v, i) => ({ id: ulidFor(`option:${fieldId}:${v}`), custom_field_id: fieldId, value: v, sort_key: (i + 1) * 10 }));
}

const customFields = [
  { id: CF.services, name: 'Affected services', field_type: 'multi_select', description: 'Which services are impacted by this incident?', options: options(CF.services, SERVICES) },
  { id: CF.servicesCatalog, name: 'Affected services (catalog)', field_type: 'multi_select', description: 'Services from the catalog impacted by this incident.', catalog_type_id: catalogType.id, options: [] },
  { id: CF.rootCause, name: 'Root cause', field_type: 'text', description: 'A one-line description of the root cause, once known.', options: [] },
  { id: CF.postmortem, name: 'Postmortem', field_type: 'link', description: 'Link to the postmortem document.', options: [] },
  { id: CF.detection, name: 'Detection source', field_type: 'single_select', description: 'How did we find out about this incident?', options: options(CF.detection, ['Alert', 'Customer report', 'Internal report', 'Synthetic check']) },
  { id: CF.customers, name: 'Customers affected', field_type: 'numeric', description: 'Estimated number of customers affected.', options: [] },
];

// What GET /v2/custom_fields returns (CustomFieldV2: no embedded options).
function customFieldV2(f) {
  const o = { id: f.id, name: f.name, description: f.description, field_type: f.field_type, created_at: SETTINGS_TIME, updated_at: SETTINGS_TIME };
  if (f.catalog_type_id) o.catalog_type_id = f.catalog_type_id;
  return o;
}
// What an incident embeds (CustomFieldTypeInfoV2).
function customFieldInfo(f) {
  return { id: f.id, name: f.name, description: f.description, field_type: f.field_type, options: f.options };
}

const roles = [
  ['Incident Lead', 'lead', 'lead', 'The person currently coordinating the incident', 'Take point on the incident; make sure people are clear on responsibilities.', true],
  ['Reporter', 'reporter', 'reporter', 'The person who reported the incident', 'Share what you saw and stay around to answer questions.', false],
  ['Communications Lead', 'comms', 'custom', 'Owns internal and customer-facing updates', 'Post a status update at least every 30 minutes; keep the status page current.', false],
].map(([name, shortform, role_type, description, instructions, required]) =>
  stamp({ id: ulidFor(`role:${shortform}`), name, shortform, role_type, description, instructions, required })
);
const ROLE = { lead: roles[0], reporter: roles[1], comms: roles[2] };

const timestamps = [
  ['Impact started', 1],
  ['Reported at', 2],
  ['Resolved at', 3],
  ['Closed at', 4],
].map(([name, rank]) => ({ id: ulidFor(`timestamp:${name.toLowerCase()}`), name, rank }));
const TS = { impact: timestamps[0], reported: timestamps[1], resolved: timestamps[2], closed: timestamps[3] };

const durationMetrics = [
  { id: ulidFor('duration_metric:duration'), name: 'Duration' },
  { id: ulidFor('duration_metric:time_to_resolve'), name: 'Time to resolve' },
];

const usersRaw = [
  ['priya', 'Priya Raman', 'administrator', 'payments-api'],
  ['marcus', 'Marcus Chen', 'responder', 'payments-api'],
  ['sofia', 'Sofia Alvarez', 'responder', 'checkout-service'],
  ['daniel', 'Daniel Okafor', 'responder', 'inventory-api'],
  ['hannah', 'Hannah Schmidt', 'owner', 'user-auth'],
  ['tomas', 'Tomás Silva', 'responder', 'user-auth'],
  ['kenji', 'Kenji Watanabe', 'responder', 'search'],
  ['amelia', 'Amelia Brooks', 'responder', 'notifications'],
  ['zoe', 'Zoë Müller', 'viewer', 'notifications'],
];
const users = usersRaw.map(([handle, name, role]) => ({
  id: ulidFor(`user:${handle}`),
  name,
  email: `${handle}@${ORG.domain}`,
  role,
  slack_user_id: 'U0' + ulidFor(`slack_user:${handle}`).slice(3, 12),
}));
const USER = Object.fromEntries(usersRaw.map(([h], i) => [h, users[i]]));
// Service owners: [lead candidates...]
const OWNERS = {
  'payments-api': ['priya', 'marcus'],
  'checkout-service': ['sofia', 'daniel'],
  'user-auth': ['hannah', 'tomas'],
  search: ['kenji', 'daniel'],
  notifications: ['amelia', 'zoe'],
  'inventory-api': ['daniel', 'kenji'],
};

const followUpPriorities = [
  ['Urgent', 4, 'A follow-up that requires immediate attention.'],
  ['High', 3, 'Should be done this sprint.'],
  ['Medium', 2, 'Should be done this quarter.'],
  ['Low', 1, 'Nice to have.'],
].map(([name, rank, description]) => ({ id: ulidFor(`follow_up_priority:${name}`), name, rank, description }));

const workflows = [
  { id: ulidFor('workflow:auto-declare'), name: 'Auto-declare from PagerDuty high-urgency alerts' },
  { id: ulidFor('workflow:status-page'), name: 'Sync status page' },
];

function byName(list, name) {
  return list.find((x) => x.name.toLowerCase() === String(name).toLowerCase());
}

module.exports = {
  SETTINGS_TIME, ORG, SERVICES, SERVICE_META, severities, statuses, incidentTypes, catalogType, catalogEntries,
  customFields, customFieldV2, customFieldInfo, CF, roles, ROLE, timestamps, TS, durationMetrics, users, USER,
  OWNERS, followUpPriorities, workflows, byName,
};
