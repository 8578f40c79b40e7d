'use strict';
// Seed data for the fake incident.io API. Deterministic for a given `now` (the server start
// time): every timestamp is relative to it, every id is derived from a stable key, so
// "last 7 days" filters always find data and tests can hard-code ids and references.
//
//   build('default' | 'demo' | 'large:N' | 'empty', nowMs) -> {
//     incidents: [IncidentV2], updates: [IncidentUpdateV2], timeline: [timeline item],
//     follow_ups: [FollowUpV2], relationships: [[idA, idB]], channels: [{id, name, ...}] }
//
// `node tests/fakes/incidentio/seed.js [seed]` prints a summary of the seed (the facts
// listed in tests/fakes/README.md).

const { ulidFor, rfc3339, prng } = require('../lib/fakekit');
const S = require('./settings');
const { TEMPLATES, summary, dash, runbook, pd } = require('./templates');

const MIN = 60000;
const CF_BY_ID = Object.fromEntries(S.customFields.map((f) => [f.id, f]));
// Embedded field descriptions are identical in every incident: share them.
const CF_INFO = Object.fromEntries(S.customFields.map((f) => [f.id, S.customFieldInfo(f)]));
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

// Status paths from creation to each final status (creation status excluded).
const PATHS = {
  Triage: [],
  Investigating: ['Investigating'],
  Fixing: ['Investigating', 'Fixing'],
  Monitoring: ['Investigating', 'Fixing', 'Monitoring'],
  Paused: ['Investigating', 'Paused'],
  Documenting: ['Investigating', 'Fixing', 'Monitoring', 'Documenting'],
  Closed: ['Investigating', 'Fixing', 'Monitoring', 'Documenting', 'Closed'],
  Declined: ['Declined'],
  Canceled: ['Investigating', 'Canceled'],
  Merged: ['Investigating', 'Merged'],
};
// Minutes spent before moving into a status.
const GAPS = {
  Investigating: [3, 12], Fixing: [20, 90], Monitoring: [15, 100], Documenting: [30, 180],
  Closed: [1 * 24 * 60, 5 * 24 * 60], Paused: [30, 60], Declined: [5, 20], Canceled: [10, 30], Merged: [6, 15],
};

function slug(s) {
  return s.toLowerCase().normalize('NFKD').replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 60).replace(/-+$/, '');
}

function paramSource(n) {
  const r = prng(n * 2654435761 + 97);
  return {
    n,
    r,
    int: (lo, hi) => lo + Math.floor(r() * (hi - lo + 1)),
    pick: (list) => list[Math.floor(r() * list.length)],
    hex: (len) => {
      let s = '';
      while (s.length < len) s += '0123456789ABCDEFGHJKMNPQRSTVWXYZ'[Math.floor(r() * 32)];
      return s;
    },
  };
}

class Builder {
  constructor(now) {
    this.now = now;
    this.incidents = [];
    this.updates = [];
    this.timeline = [];
    this.follow_ups = [];
    this.relationships = [];
    this.channels = [];
    this.light = false; // fewer timeline items / follow-ups (large seeds)
  }

  relate(a, b) {
    this.relationships.push([ulidFor(`incident:${a}`), ulidFor(`incident:${b}`)]);
  }

  // spec: see the rosters below. Returns the incident.
  add(spec) {
    const now = this.now;
    const n = spec.n;
    const id = ulidFor(`incident:${n}`);
    const p = paramSource(n);
    const t = typeof spec.t === 'string' ? TEMPLATES[spec.t](p) : spec.t;
    const name = spec.name || t.name;
    const services = spec.services || (t.service ? [t.service] : []);
    const final = spec.final || 'Closed';
    const created = spec.created;
    const creatorKind = spec.creator || (t.detection === 'Alert' ? 'alert' : 'user');
    const start = spec.start || (creatorKind === 'alert' || final === 'Triage' || final === 'Declined' ? 'Triage' : 'Investigating');
    const owners = S.OWNERS[services[0] || 'payments-api'];
    const leadHandle = spec.lead === undefined ? owners[n % owners.length] : spec.lead;
    const reporterHandle = spec.reporter === undefined ? owners[(n + 1) % owners.length] : spec.reporter;
    const sevFinal = spec.sev === undefined ? (final === 'Declined' ? 'Low' : t.sev) : spec.sev;
    const sevStart = spec.sevStart || sevFinal;
    const postmortemUrl = spec.postmortem ? postmortemFor(n, name) : null;
    const ref = `INC-${n}`;

    // ---- status / severity events
    let events;
    if (spec.events) {
      events = spec.events.map((e) => Object.assign({}, e, { at: created + Math.round(e.min * MIN) }));
    } else {
      let path = PATHS[final].slice();
      if (start === 'Investigating' && path[0] === 'Investigating') path = path.slice(1);
      let at = created;
      events = [];
      let sev = sevStart;
      for (const st of path) {
        const [lo, hi] = GAPS[st];
        at += Math.round((lo + p.r() * (hi - lo)) * MIN);
        if (events.length === 0 && sevStart !== sevFinal) sev = sevFinal;
        events.push({ at, status: st, sev, msg: messageFor(st, t, spec, postmortemUrl) });
      }
      if (sevStart !== sevFinal && events.length === 0) events.push({ at: created + 5 * MIN, status: start, sev: sevFinal, msg: `Severity changed to ${sevFinal}.` });
    }
    // Keep everything in the past: compress the event times when needed.
    const limit = now - MIN - created;
    const last = events.length ? events[events.length - 1].at - created : 0;
    if (last > limit) {
      const f = (limit * 0.95) / last;
      events.forEach((e, i) => (e.at = created + Math.max(i + 1, Math.round((e.at - created) * f))));
    }
    for (const e of events) if (e.sev === undefined) e.sev = sevFinal;

    const finalStatus = S.byName(S.statuses, events.length ? events[events.length - 1].status : start);
    const impactStart = created - (spec.impactLeadMin !== undefined ? spec.impactLeadMin : p.int(3, 25)) * MIN;
    const resolvedEv = events.find((e) => ['learning', 'closed'].includes(S.byName(S.statuses, e.status).category));
    const closedEv = events.find((e) => e.status === 'Closed');
    const resolvedAt = resolvedEv ? resolvedEv.at : null;
    const closedAt = closedEv ? closedEv.at : null;
    let updatedAt = events.length ? events[events.length - 1].at : created + 2 * MIN;
    if (updatedAt > now) updatedAt = now;

    const lead = leadHandle ? S.USER[leadHandle] : null;
    const reporter = reporterHandle ? S.USER[reporterHandle] : null;
    const comms = spec.comms !== undefined ? (spec.comms ? S.USER[spec.comms] : null) : sevFinal === 'Critical' ? S.USER[owners[(n + 1) % owners.length] === 'zoe' ? 'amelia' : 'zoe'] : null;

    // ---- creator
    let creator;
    if (creatorKind === 'alert') creator = { alert: { id: ulidFor(`alert:${n}`), title: spec.alertTitle || `[FIRING] ${services[0] || 'service'}: ${t.error.split(':')[0]}` } };
    else if (creatorKind === 'workflow') creator = { workflow: S.workflows[0] };
    else creator = { user: reporter || lead || S.USER.priya };

    // ---- custom fields
    const cfById = CF_BY_ID;
    const entry = (fid, values) => ({ custom_field: CF_INFO[fid], values });
    const useOptions = spec.cfOptions !== undefined ? spec.cfOptions : !(n % 5 === 0 && !spec.special);
    const useCatalog = spec.cfCatalog !== undefined ? spec.cfCatalog : !(n % 7 === 0 && !spec.special);
    const svcOpts = cfById[S.CF.services].options;
    const detOpts = cfById[S.CF.detection].options;
    const resolvedish = resolvedAt !== null || ['Monitoring', 'Paused'].includes(finalStatus.name);
    const rootCause = spec.rootCause !== undefined ? spec.rootCause : resolvedish ? t.root_cause : null;
    const custom_field_entries = [
      entry(S.CF.services, useOptions ? services.map((s) => ({ value_option: svcOpts.find((o) => o.value === s) })) : []),
      entry(S.CF.servicesCatalog, useCatalog ? services.map((s) => {
        const ce = S.catalogEntries.find((c) => c.name === s);
        return { value_catalog_entry: { id: ce.id, name: ce.name, external_id: ce.external_id, aliases: ce.aliases } };
      }) : []),
      entry(S.CF.rootCause, rootCause ? [{ value_text: rootCause }] : []),
      entry(S.CF.postmortem, postmortemUrl ? [{ value_link: postmortemUrl }] : []),
      entry(S.CF.detection, t.detection ? [{ value_option: detOpts.find((o) => o.value === t.detection) }] : []),
      entry(S.CF.customers, spec.customers !== undefined && spec.customers !== null ? [{ value_numeric: String(spec.customers) }] : []),
    ];

    const roleAssign = (role, user) => (user ? { role, assignee: user } : { role });

    const tsv = (ts, ms) => (ms === null || ms === undefined ? { incident_timestamp: ts } : { incident_timestamp: ts, value: { value: rfc3339(ms) } });
    const dm = (metric, from, to) =>
      to === null || from === null
        ? { duration_metric: metric, status: 'timestamps_missing' }
        : { duration_metric: metric, status: 'success', value_seconds: Math.max(0, Math.round((to - from) / 1000)) };

    const channel = spec.channel === false ? null : { id: 'C0' + ulidFor(`channel:${n}`).slice(3, 12), name: `inc-${n}-${slug(name)}`.slice(0, 80) };
    const type = S.byName(S.incidentTypes, spec.type || t.type || 'Default');

    const incident = {
      id,
      reference: ref,
      name,
    };
    const sum = spec.summary !== undefined ? spec.summary : summary(t, spec.style !== undefined ? spec.style : n);
    if (sum !== null) incident.summary = sum;
    Object.assign(incident, {
      permalink: `${S.ORG.dashboard_url}/incidents/${n}`,
      created_at: rfc3339(created),
      updated_at: rfc3339(updatedAt),
      mode: spec.mode || 'standard',
      visibility: spec.visibility || 'public',
      creator,
      incident_status: finalStatus,
      incident_role_assignments: [roleAssign(S.ROLE.lead, lead), roleAssign(S.ROLE.reporter, reporter), roleAssign(S.ROLE.comms, comms)],
      custom_field_entries,
      incident_timestamp_values: [
        tsv(S.TS.impact, impactStart),
        tsv(S.TS.reported, created),
        tsv(S.TS.resolved, resolvedAt),
        tsv(S.TS.closed, closedAt),
      ],
      duration_metrics: [dm(S.durationMetrics[0], impactStart, resolvedAt), dm(S.durationMetrics[1], created, resolvedAt)],
      slack_channel_id: channel ? channel.id : '',
      slack_team_id: S.ORG.slack_team_id,
    });
    const sevObj = sevFinal ? S.byName(S.severities, sevFinal) : null;
    if (sevObj) incident.severity = sevObj;
    if (channel) incident.slack_channel_name = channel.name;
    if (type) incident.incident_type = typeV2(type);
    if (sevFinal === 'Critical' || sevFinal === 'High') incident.call_url = `https://meet.google.com/${meetCode(n)}`;
    if (postmortemUrl) {
      incident.postmortem_document_url = postmortemUrl;
      incident.has_debrief = sevFinal === 'Critical';
    } else if (resolvedAt !== null) {
      incident.has_debrief = false;
    }
    if (spec.externalIssue) {
      incident.external_issue_reference = {
        provider: 'linear',
        issue_name: `${services[0] === 'payments-api' ? 'PAY' : 'OPS'}-${1000 + n * 7}`,
        issue_permalink: `https://linear.app/acme-pay/issue/${services[0] === 'payments-api' ? 'PAY' : 'OPS'}-${1000 + n * 7}`,
      };
    }
    if (resolvedAt !== null) {
      const total = Math.round(((resolvedAt - created) / MIN) * (sevFinal === 'Critical' ? 3.2 : 1.6)) / 1;
      incident.workload_minutes_total = total;
      incident.workload_minutes_working = Math.round(total * 0.7 * 10) / 10;
      incident.workload_minutes_late = Math.round(total * 0.2 * 10) / 10;
      incident.workload_minutes_sleeping = Math.round((total - incident.workload_minutes_working - incident.workload_minutes_late) * 10) / 10;
    }
    this.incidents.push(incident);
    if (channel) {
      this.channels.push({
        id: channel.id,
        name: channel.name,
        created: Math.floor(created / 1000),
        is_archived: closedAt !== null && closedAt < now - 14 * DAY,
        is_member: true,
        incident_id: id,
        incident_reference: ref,
      });
    }

    // ---- updates
    const updater = (i) => ({ user: (i % 2 === 0 ? lead : reporter) || lead || S.USER.priya });
    events.forEach((e, i) => {
      const u = {
        id: ulidFor(`update:${n}:${i}`),
        incident_id: id,
        created_at: rfc3339(e.at),
        message: e.msg,
        new_incident_status: S.byName(S.statuses, e.status),
        updater: e.updater ? { user: S.USER[e.updater] } : updater(i),
      };
      if (e.sev) u.new_severity = S.byName(S.severities, e.sev);
      if (e.status === 'Merged' && spec.mergedInto) u.merged_into_incident_id = ulidFor(`incident:${spec.mergedInto}`);
      this.updates.push(u);
    });

    // ---- timeline items (oldest first when listed)
    const items = [];
    const item = (key, at, title, description, c) => {
      const o = { id: ulidFor(`timeline:${n}:${key}`), incident_id: id, title, timestamp: rfc3339(at), created_at: rfc3339(Math.min(now, at + 2000)), updated_at: rfc3339(Math.min(now, at + 2000)), creator: c || { user: lead || S.USER.priya } };
      if (description) o.description = description;
      items.push(o);
    };
    item('declared', created, 'Incident declared', `${ref} ${name}`, creator);
    if (!this.light) {
      let prevSev = sevStart;
      let prevStatus = start;
      events.forEach((e, i) => {
        if (e.status !== prevStatus) item(`status:${i}`, e.at, `Status changed from ${prevStatus} to ${e.status}`, e.msg, updater(i));
        else item(`update:${i}`, e.at, 'Update shared', e.msg, updater(i));
        if (e.sev && prevSev && e.sev !== prevSev) item(`sev:${i}`, e.at + 1000, `Severity changed from ${prevSev} to ${e.sev}`, null, updater(i));
        prevSev = e.sev || prevSev;
        prevStatus = e.status;
      });
      for (const [i, x] of (spec.timeline || []).entries()) {
        const c = x.alert ? { alert: creator.alert || { id: ulidFor(`alert:${n}`), title: x.title } } : x.user ? { user: S.USER[x.user] } : undefined;
        item(`extra:${i}`, created + Math.round(x.min * MIN), x.title, x.description, c);
      }
    }
    items.sort((a, b) => (a.timestamp < b.timestamp ? -1 : a.timestamp > b.timestamp ? 1 : 0));
    this.timeline.push(...items.filter((x) => Date.parse(x.timestamp) <= now));

    // ---- follow-ups
    if (!this.light && resolvedAt !== null && t.follow_ups && (sevFinal === 'Critical' || sevFinal === 'High' || spec.followUps)) {
      t.follow_ups.forEach((title, i) => {
        const at = Math.min(now - MIN, resolvedAt + (30 + i * 7) * MIN);
        const done = closedAt !== null && i === 0;
        const f = {
          id: ulidFor(`follow_up:${n}:${i}`),
          incident_id: id,
          creator: { user: lead || S.USER.priya },
          title,
          description: `Follow-up from ${ref}: ${name}.`,
          status: done ? 'completed' : 'outstanding',
          labels: i === 0 ? ['reliability'] : ['reliability', services[0] || 'general'],
          priority: S.followUpPriorities[sevFinal === 'Critical' ? 0 : 1 + (i % 2)],
          assignee: (i % 2 === 0 ? lead : reporter) || S.USER.priya,
          created_at: rfc3339(at),
          updated_at: rfc3339(done ? Math.min(now - MIN, closedAt) : at),
        };
        if (done) f.completed_at = rfc3339(Math.min(now - MIN, closedAt));
        this.follow_ups.push(f);
      });
    }
    return incident;
  }

  result() {
    return {
      incidents: this.incidents,
      updates: this.updates,
      timeline: this.timeline,
      follow_ups: this.follow_ups,
      relationships: this.relationships,
      channels: this.channels,
    };
  }
}

function typeV2(t) {
  return Object.assign({}, t);
}

function meetCode(n) {
  const h = ulidFor(`meet:${n}`).toLowerCase().replace(/[^a-z]/g, 'x');
  return `${h.slice(3, 6)}-${h.slice(6, 10)}-${h.slice(10, 13)}`;
}

function postmortemFor(n, name) {
  if (n % 2 === 0) return `https://docs.google.com/document/d/1${ulidFor(`pm:${n}`).slice(3).toLowerCase()}x/edit`;
  return `https://www.notion.so/acme-pay/INC-${n}-${slug(name).split('-').slice(0, 6).map((w) => w[0].toUpperCase() + w.slice(1)).join('-')}-${ulidFor(`pm:${n}`).slice(3, 19).toLowerCase()}`;
}

function messageFor(status, t, spec, postmortemUrl) {
  const m = spec.msgs || {};
  switch (status) {
    case 'Investigating':
      return m.investigating || `We're investigating. ${t.lead}`;
    case 'Fixing':
      return m.fixing || `Cause identified: ${t.cause} Working on a fix.`;
    case 'Monitoring':
      return m.monitoring || `Fix in place: ${t.monitoring}`;
    case 'Documenting':
      return m.resolved || `Resolved: ${t.resolution}`;
    case 'Closed':
      return m.closed || (postmortemUrl ? `Postmortem published: ${postmortemUrl} - follow-ups are tracked there. Closing the incident.` : 'All follow-ups are tracked; closing the incident.');
    case 'Paused':
      return m.paused || 'Pausing while we wait for a third party.';
    case 'Declined':
      return m.declined || 'Declining: this alert was a false positive with no customer impact.';
    case 'Canceled':
      return m.canceled || 'Canceling: opened by mistake.';
    case 'Merged':
      return m.merged || 'Merging into another incident as a duplicate.';
    default:
      return m[status] || `Status changed to ${status}.`;
  }
}

// ---------------------------------------------------------------------------------------
// The incidents that matter to the client tests: INC-2 (live, Critical, payments-api) and
// its look-alikes in the past.

const GATEWAY_TRACE = (ms) => `PaymentGatewayTimeout: upstream 504 from acquirer-eu after ${ms}ms
    at GatewayClient.authorise (src/gateway/client.ts:214:13)
    at async AuthorisationService.run (src/authorisation/service.ts:88:22)
    at async POST /v3/payments/authorise (src/http/routes/payments.ts:41:5)`;

function hhmm(ms) {
  return new Date(ms).toISOString().slice(11, 16);
}

function inc2Spec(now) {
  const created = now - 42 * MIN;
  const t = {
    service: 'payments-api', sev: 'Critical', type: 'Production Outage', detection: 'Alert',
    name: 'Payments failing at checkout: PaymentGatewayTimeout (upstream 504)',
    error: 'PaymentGatewayTimeout: upstream 504 from acquirer-eu (POST /v3/authorisations, timeout after 5000ms)',
  };
  const summaryText = [
    `Customers are seeing card payments fail at checkout. \`payments-api\` returns 502/504 to \`checkout-service\` for ~18% of authorisation requests since ${hhmm(created - 9 * MIN)} UTC.`,
    '',
    'Service: payments-api',
    `Error: ${t.error}`,
    'Environment: production (eu-west-1)',
    '',
    '**Impact**',
    '- ~18% of card authorisations failing (p99 latency 5.0s, normally 420ms)',
    '- Checkout conversion down 23% vs. the same hour last week',
    '- Apple Pay and Google Pay affected; PayPal unaffected',
    '',
    '**Links**',
    `- Dashboard: ${dash('payments-api')}`,
    `- Runbook: ${runbook('payments-api', 'gateway-timeouts')}`,
    `- PagerDuty: ${pd('Q3PAY7X2LM9K')}`,
    '',
    '```',
    GATEWAY_TRACE(5000),
    '```',
  ].join('\n');
  return {
    n: 2, special: true, created, t, summary: summaryText, final: 'Investigating', start: 'Triage',
    sev: 'Critical', sevStart: 'High', lead: 'priya', reporter: 'marcus', comms: null, customers: 1840,
    creator: 'alert', alertTitle: '[FIRING] payments-api: authorisation error rate > 5% (PaymentGatewayTimeout)',
    impactLeadMin: 9,
    events: [
      { min: 3, status: 'Investigating', sev: 'High', updater: 'priya', msg: 'Acknowledged. payments-api authorisation error rate is 18% and rising; all failures are PaymentGatewayTimeout with upstream 504 from acquirer-eu. Checking recent deploys and the acquirer status page.' },
      { min: 11, status: 'Investigating', sev: 'Critical', updater: 'priya', msg: 'Escalating to Critical: checkout conversion is down 23% and Apple Pay / Google Pay are affected. No payments-api deploy in the last 24h; the acquirer-eu status page shows no incident yet.' },
      { min: 27, status: 'Investigating', sev: 'Critical', updater: 'marcus', msg: 'The connection pool to acquirer-eu is at its limit (200/200 in use) and gateway p99 is 5.0s. Opened a ticket with the acquirer (case 88213). Evaluating failover to acquirer-us.' },
    ],
    timeline: [
      { min: -9, alert: true, title: 'Alert fired: payments-api authorisation error rate > 5%', description: 'PagerDuty incident Q3PAY7X2LM9K triggered by Datadog monitor "payments-api authorisation errors".' },
      { min: 2, user: 'marcus', title: 'Pinned message from Marcus Chen', description: `Seeing \`PaymentGatewayTimeout: upstream 504 from acquirer-eu\` on ~1 in 5 authorisations since ${hhmm(created - 9 * MIN)}. Nothing deployed today.` },
      { min: 9, user: 'priya', title: 'Checked recent deploys', description: 'Last payments-api deploy was v2.34.1, 26 hours ago. No config changes in the last 24h.' },
      { min: 18, user: 'marcus', title: 'Acquirer status page checked', description: 'https://status.acquirer-eu.example shows all systems operational.' },
      { min: 35, user: 'priya', title: 'Pinned message from Priya Raman', description: 'acquirer-eu connection pool: 200/200 in use, wait queue 1.4k. Graph: ' + dash('payments-api', 'payments-gateway') },
    ],
  };
}

function similarSpecs(at) {
  const common = { services: ['payments-api', 'checkout-service'], special: true, postmortem: true, externalIssue: true };
  return [
    Object.assign({}, common, {
      n: 9, created: at(9), sev: 'Critical', sevStart: 'High', lead: 'marcus', reporter: 'priya', customers: 1210, creator: 'alert',
      t: {
        service: 'payments-api', sev: 'Critical', type: 'Production Outage', detection: 'Alert',
        name: 'PaymentGatewayTimeout errors on payments-api (upstream 504 from acquirer-eu)',
        error: 'PaymentGatewayTimeout: upstream 504 from acquirer-eu after 5000ms (POST /v3/authorisations)',
        lead: 'Card authorisations are failing for ~12% of checkouts. payments-api logs show PaymentGatewayTimeout with upstream 504 from acquirer-eu.',
        env: 'production (eu-west-1)',
        impact: ['~12% of card authorisations failing', 'Checkout conversion down 15%', 'All card schemes affected'],
        dashboard: dash('payments-api'), runbook: runbook('payments-api', 'gateway-timeouts'), pagerduty: pd('Q9GWT4K2ZP1A'),
        trace: GATEWAY_TRACE(5000),
        cause: "The connection pool to acquirer-eu is exhausted: yesterday's config change CHG-4821 reduced max_idle_conns from 200 to 20, so most requests open a new TLS connection and the acquirer edge returns 504 under load.",
        root_cause: 'Gateway connection pool misconfigured (max_idle_conns 200 -> 20) in config change CHG-4821',
        monitoring: 'Reverted the pool config; connection reuse is back to 97% and PaymentGatewayTimeout errors stopped.',
        resolution: 'Reverted the connection pool change (max_idle_conns back to 200, PR #4822). PaymentGatewayTimeout errors dropped to zero within 4 minutes and the authorisation success rate is back to 99.6%.',
        follow_ups: ['Validate gateway pool settings in CI', 'Alert on acquirer connection pool utilisation > 80%'],
      },
    }),
    Object.assign({}, common, {
      n: 27, created: at(27), sev: 'Critical', lead: 'priya', reporter: 'marcus', customers: 2950, creator: 'alert',
      t: {
        service: 'payments-api', sev: 'Critical', type: 'Production Outage', detection: 'Alert',
        name: 'Checkout payments failing with PaymentGatewayTimeout (upstream 504)',
        error: 'PaymentGatewayTimeout: upstream 504 Gateway Timeout from acquirer-eu (POST /v3/authorisations, 5000ms)',
        lead: 'Roughly a quarter of card payments fail at checkout with PaymentGatewayTimeout; the upstream acquirer-eu returns 504.',
        env: 'production (eu-west-1)',
        impact: ['~25% of card authorisations failing for 48 minutes', 'Checkout conversion down 31%', 'Retries by customers caused some double authorisations (voided)'],
        dashboard: dash('payments-api'), runbook: runbook('payments-api', 'gateway-timeouts'), pagerduty: pd('Q27GWTX8MN4R'),
        trace: GATEWAY_TRACE(5000),
        cause: 'acquirer-eu has a regional degradation (their status page now confirms it) and our 5s gateway timeout trips before their internal retries complete.',
        root_cause: 'Acquirer regional degradation (acquirer-eu) combined with a too-tight 5s gateway timeout',
        monitoring: 'Failed over to acquirer-us with the payments.acquirer_failover flag; authorisation success rate is 99.4%.',
        resolution: 'Failed card authorisations over to the acquirer-us route with the `payments.acquirer_failover` feature flag and raised the gateway timeout from 5s to 10s. PaymentGatewayTimeout errors stopped immediately; we failed back once acquirer-eu confirmed recovery.',
        follow_ups: ['Automate acquirer failover on sustained upstream 504s', 'Write the acquirer failover runbook'],
      },
    }),
    Object.assign({}, common, {
      n: 46, created: at(46), sev: 'High', final: 'Documenting', lead: 'marcus', reporter: 'sofia', customers: 640, creator: 'alert',
      t: {
        service: 'payments-api', sev: 'High', type: 'Production Outage', detection: 'Alert',
        name: 'payments-api 504s from upstream gateway after deploy v2.31.0',
        error: 'PaymentGatewayTimeout: upstream 504 from acquirer-eu (TLS handshake timeout after 5000ms)',
        lead: 'Right after deploying payments-api v2.31.0, 9% of authorisations fail with upstream 504 from the payment gateway.',
        impact: ['9% of card authorisations failing for 22 minutes', 'Started at the v2.31.0 deploy'],
        dashboard: dash('payments-api'), runbook: runbook('payments-api', 'gateway-timeouts'), pagerduty: pd('Q46DPLY5RB2C'),
        cause: 'v2.31.0 upgraded the HTTP client, which disabled keep-alive to the gateway: every request does a TLS handshake and the acquirer edge throttles us.',
        root_cause: 'HTTP client upgrade in v2.31.0 disabled keep-alive, causing TLS handshake storms to the gateway',
        monitoring: 'Rolled back to v2.30.4; error rate back to baseline.',
        resolution: 'Rolled back payments-api from v2.31.0 to v2.30.4; upstream 504s stopped within 3 minutes. The HTTP client fix (explicit keep-alive) will ship in v2.31.1.',
        follow_ups: ['Ship v2.31.1 with explicit keep-alive to the gateway', 'Canary payments-api deploys on gateway error rate'],
      },
    }),
  ];
}

function defaultSeed(b) {
  const now = b.now;
  // References are chronological except INC-2, which is always the live incident under
  // investigation (see README). INC-3 is ~118 days old, INC-55 ~4 days.
  const at = (n) => {
    const special = { 1: now - 124 * DAY, 47: null, 53: now - 7.8 * DAY, 54: now - 6.2 * DAY, 55: now - 4.1 * DAY, 56: now - 1.8 * DAY, 57: now - 1.2 * DAY, 58: now - 5 * HOUR, 59: now - 2 * HOUR, 60: now - 3 * MIN };
    if (special[n]) return special[n];
    if (n === 47) return at(46) + 12 * MIN;
    const daysAgo = 118 - ((n - 3) * 114) / 52;
    const jitter = (prng(n)() - 0.5) * 0.6;
    // Times of day spread over working hours and nights.
    return now - (daysAgo + jitter) * DAY;
  };

  b.add({
    n: 1, created: at(1), mode: 'tutorial', special: true, services: [], sev: 'Low', lead: 'priya', reporter: 'priya', creator: 'user',
    t: { name: '[Tutorial] Learning how to run incidents with incident.io', sev: 'Low', type: 'Default', detection: 'Internal report', lead: 'This is a tutorial incident.', cause: 'none', monitoring: 'Tutorial step.', resolution: 'Finished the tutorial.' },
    summary: 'This is a **tutorial** incident. Try changing the status, assigning roles and posting an update.',
  });
  b.add(inc2Spec(now));
  const similar = Object.fromEntries(similarSpecs(at).map((s) => [s.n, s]));

  const roster = {
    3: 'S1', 4: 'C2', 5: 'N2', 6: 'I1', 7: 'U2', 8: 'P1', 10: 'S3', 11: 'C1', 12: ['I2', { mode: 'retrospective', channel: false }],
    13: 'N3', 14: ['U1', { customers: 48000 }], 15: 'P3', 16: ['S2', { final: 'Declined', msgs: { declined: 'Declining: the lag was caused by the planned full reindex announced in #search-eng; no customer impact.' } }],
    17: 'C3', 18: 'I3', 19: 'N1', 20: 'U3', 22: ['C1', { customers: 3100 }], 23: 'S1', 24: ['P2', { customers: 212 }], 26: 'I2', 28: 'N2', 29: 'C2',
    30: ['U2', { final: 'Canceled', msgs: { canceled: "Canceling: the reports were about Okta's own outage (status.okta.com), not our integration." } }],
    31: 'S2', 32: 'I1', 33: ['P1', { mode: 'retrospective', channel: false }], 34: 'N3', 35: 'C3', 36: 'U1', 37: ['I3', { final: 'Declined', msgs: { declined: 'Declining: the OOMKilled alerts came from the load-test cluster, mislabelled as production.' } }],
    38: 'S3', 39: 'P3', 41: 'N1', 42: 'C1', 43: 'U3', 44: 'I2', 45: 'S1', 48: 'N2', 49: 'P2', 50: 'U2', 51: 'C2', 52: 'I1',
    53: ['U2', { final: 'Paused', msgs: { paused: 'Pausing: waiting on Okta support (case 01822931) to confirm a fix on their side. Workaround (password login) communicated to the affected tenants.' } }],
    54: ['S3', { final: 'Documenting' }], 55: 'I3', 56: ['S2', { final: 'Monitoring' }], 57: ['C3', { final: 'Documenting' }], 58: ['N1', { final: 'Fixing' }],
  };

  for (let n = 3; n <= 60; n++) {
    if (similar[n]) {
      b.add(similar[n]);
      continue;
    }
    if (n === 21) {
      b.add({ n, created: at(n), mode: 'test', special: true, sev: 'Low', creator: 'user', lead: 'amelia', reporter: 'zoe', t: Object.assign(TEMPLATES.N2(paramSource(n)), { name: 'Test incident - please ignore', sev: 'Low' }), summary: 'Testing the new on-call escalation policy for notifications. **Not a real incident.**' });
      continue;
    }
    if (n === 25) {
      b.add({
        n, created: at(n), visibility: 'private', special: true, type: 'Security Incident', sev: 'High', lead: 'hannah', reporter: 'tomas', creator: 'user',
        t: {
          service: 'user-auth', sev: 'High', type: 'Security Incident', detection: 'Alert',
          name: 'Credential stuffing attempts against /login',
          error: 'RateLimitExceeded: 41k failed logins/min from 3.2k IPs (ASN 14061)',
          lead: 'A credential stuffing attack against `POST /login` is in progress.',
          impact: ['Failed logins 40x normal', '17 accounts with successful logins from attacker IPs (sessions revoked)'],
          dashboard: dash('user-auth', 'login-security'), runbook: runbook('user-auth', 'credential-stuffing'),
          cause: 'Attack traffic from a hosting provider ASN using a leaked credential list.',
          root_cause: 'Credential stuffing using a third-party leaked credential list',
          monitoring: 'Blocked the ASN at the edge and enforced CAPTCHA after 3 failures.',
          resolution: 'Blocked the attacking ASN at the edge, enforced CAPTCHA after 3 failed logins and force-reset passwords for the 17 affected accounts.',
          follow_ups: ['Enable breached-password detection at signup and login'],
        },
      });
      continue;
    }
    if (n === 40) {
      b.add({
        n, created: at(n), mode: 'test', special: true, sev: 'Critical', lead: 'priya', reporter: 'marcus', creator: 'user', services: ['payments-api'],
        t: {
          service: 'payments-api', sev: 'Critical', type: 'Production Outage', detection: 'Synthetic check',
          name: '[TEST] Game day: PaymentGatewayTimeout on payments-api',
          error: 'PaymentGatewayTimeout: upstream 504 from acquirer-eu (injected by chaos experiment gw-latency-01)',
          lead: 'Game day drill: we inject latency between payments-api and acquirer-eu. **This is not a real incident.**',
          impact: ['Staging only'], runbook: runbook('payments-api', 'gateway-timeouts'),
          cause: 'Injected latency (chaos experiment gw-latency-01).', root_cause: 'Chaos experiment (drill)',
          monitoring: 'Experiment stopped.', resolution: 'Drill complete: the failover runbook worked, took 6 minutes.',
        },
      });
      continue;
    }
    if (n === 47) {
      b.add({
        n, created: at(n), special: true, final: 'Merged', mergedInto: 46, sev: 'High', lead: 'sofia', reporter: 'sofia', creator: 'user', services: ['checkout-service', 'payments-api'],
        t: {
          service: 'checkout-service', sev: 'High', type: 'Default', detection: 'Customer report',
          name: 'Checkout errors spiking',
          error: 'HTTP 502 from payments-api on POST /v3/payments/authorise',
          lead: 'Support reports many customers unable to pay; checkout-service sees 502s from payments-api.',
          impact: ['Customers unable to pay'],
        },
        msgs: { merged: 'Merging into INC-46: same cause (payments-api v2.31.0 upstream 504s).' },
      });
      continue;
    }
    if (n === 59) {
      b.add({
        n, created: at(n), special: true, final: 'Declined', sev: 'Low', lead: 'sofia', reporter: 'daniel', creator: 'alert',
        t: {
          service: 'checkout-service', sev: 'Low', type: 'Default', detection: 'Synthetic check',
          name: 'Synthetic check checkout-eu-web flapping',
          error: 'SyntheticCheckFailed: checkout-eu-web step "pay" failed (card declined)',
          lead: 'The checkout synthetic check is failing intermittently at the payment step.',
          impact: ['None confirmed'],
        },
        msgs: { declined: "Declining: the synthetic check's test card expired; real checkouts were healthy the whole time." },
      });
      continue;
    }
    if (n === 60) {
      b.add({
        n, created: at(n), special: true, final: 'Triage', sev: null, lead: null, reporter: null, comms: null, creator: 'alert', channel: false, summary: null,
        alertTitle: '[FIRING] inventory-api: 5xx rate > 2% on /v2/reservations',
        t: { service: 'inventory-api', type: 'Default', detection: 'Alert', name: 'inventory-api: elevated 5xx on /v2/reservations', error: 'HTTP 503 on POST /v2/reservations' },
      });
      continue;
    }
    const r = roster[n];
    const [tk, extra] = Array.isArray(r) ? r : [r, {}];
    const tpl = TEMPLATES[tk](paramSource(n));
    const spec = Object.assign({ n, created: at(n), t: tk }, extra);
    const finalSt = spec.final || 'Closed';
    if ((finalSt === 'Closed' || finalSt === 'Documenting') && (tpl.sev === 'Critical' || (tpl.sev === 'High' && n % 2 === 1))) spec.postmortem = true;
    if (finalSt === 'Closed' && n % 4 === 0) spec.externalIssue = true;
    if (spec.customers === undefined && tpl.sev !== 'Low' && finalSt !== 'Declined') spec.customers = 50 + ((n * 137) % 900);
    b.add(spec);
  }
  b.relate(9, 27);
  b.relate(27, 46);
  b.relate(46, 47);
  b.relate(14, 36);
  b.relate(19, 41);
}

function demoSeed(b) {
  const now = b.now;
  const created2 = now - 20 * MIN;
  const deployAt = created2 - 20 * MIN; // the same deploy the GitHub/Loki demo fakes show (tests/fakes/lib/demo.js)
  b.add({
    n: 1, created: now - 32 * DAY - 3 * HOUR, special: true, sev: 'High', lead: 'marcus', reporter: 'priya', customers: 720, creator: 'alert', postmortem: true, services: ['payments-api'],
    t: {
      service: 'payments-api', sev: 'High', type: 'Production Outage', detection: 'Alert',
      name: 'payments-api 504s after deploy',
      error: 'PaymentGatewayTimeout: upstream 504 from card-gateway (POST /v3/authorisations, 5000ms)',
      lead: 'Minutes after deploying payments-api v2.29.0, checkout payments started failing with 504s from the card gateway.',
      env: 'production (eu-west-1)',
      impact: ['11% of card payments failing for 19 minutes', 'Checkout conversion down 14%'],
      dashboard: dash('payments-api'), runbook: runbook('payments-api', 'rollback'), pagerduty: pd('Q1DEMO504RBK'),
      trace: GATEWAY_TRACE(5000).replace(/acquirer-eu/g, 'card-gateway'),
      cause: 'v2.29.0 changed the gateway client to open a new connection per request; the card gateway throttles the TLS handshakes and answers 504.',
      root_cause: 'Deploy v2.29.0 disabled connection reuse to the card gateway',
      monitoring: 'Rolled back to v2.28.4; 5xx back to baseline (0.1%).',
      resolution: 'Rolled back payments-api from v2.29.0 to v2.28.4 (`deploy rollback payments-api --to v2.28.4`). The 504s stopped within 2 minutes of the rollback; the fixed client shipped in v2.29.1.',
      follow_ups: ['Canary payments-api deploys on gateway 5xx rate', 'Add connection reuse metric to the payments dashboard'],
    },
  });
  b.add({
    n: 2, created: created2, special: true, sev: 'Critical', sevStart: 'High', lead: 'priya', reporter: 'marcus', comms: null, customers: 900, creator: 'alert', services: ['payments-api', 'checkout-service'],
    final: 'Investigating', start: 'Triage', impactLeadMin: 4,
    alertTitle: '[FIRING] payments-api: 5xx rate > 5% on POST /v3/payments/authorise',
    t: { service: 'payments-api', sev: 'Critical', type: 'Production Outage', detection: 'Alert', name: 'Elevated 5xx on payments-api checkout', error: 'PaymentGatewayTimeout: upstream 504 from card-gateway (POST /v3/authorisations, 5000ms)' },
    summary: [
      `Checkout payments are failing: payments-api returns 5xx for ~7% of \`POST /v3/payments/authorise\` since ${hhmm(created2 - 4 * MIN)} UTC.`,
      '',
      'Service: payments-api',
      'Error: PaymentGatewayTimeout: upstream 504 from card-gateway (POST /v3/authorisations, 5000ms)',
      `Recent change: payments-api v2.35.0 deployed at ${hhmm(deployAt)} UTC`,
      '',
      `- Dashboard: ${dash('payments-api')}`,
      `- PagerDuty: ${pd('Q2DEMO5XXCHK')}`,
    ].join('\n'),
    events: [
      { min: 2, status: 'Investigating', sev: 'High', updater: 'priya', msg: 'Looking into it. 5xx on payments-api is at 7%, all PaymentGatewayTimeout (upstream 504 from card-gateway).' },
      { min: 9, status: 'Investigating', sev: 'Critical', updater: 'priya', msg: `Escalating to Critical. payments-api v2.35.0 went out at ${hhmm(deployAt)} UTC, 16 minutes before the alert.` },
    ],
    timeline: [
      { min: -4, alert: true, title: 'Alert fired: payments-api 5xx rate > 5%', description: 'Datadog monitor "payments-api 5xx" triggered PagerDuty Q2DEMO5XXCHK.' },
      { min: -20, user: 'marcus', title: 'Deploy: payments-api v2.35.0', description: 'Deployed by the CD pipeline (pipeline 5120, PR #412: "Bump payment gateway client to 3.2; shorten upstream timeout").' },
    ],
  });
  const noise = [[3, 'S1', 26], [4, 'U2', 17], [5, 'N1', 9], [6, 'I1', 3]];
  for (const [n, tk, days] of noise) b.add({ n, t: tk, created: now - days * DAY - n * HOUR, postmortem: n % 2 === 1 });
  b.relate(1, 2);
  b.relationships.pop(); // INC-2 is not linked: finding INC-1 is the client's job.
}

function largeSeed(b, count) {
  const now = b.now;
  b.light = true;
  const keys = Object.keys(TEMPLATES);
  const span = 365 * DAY;
  for (let n = 1; n <= count; n++) {
    const created = now - span + ((n - 1) * (span - 30 * MIN)) / Math.max(1, count - 1);
    const left = count - n;
    const final = left === 0 ? 'Triage' : left < 3 ? 'Investigating' : left < 5 ? 'Monitoring' : n % 17 === 0 ? 'Declined' : 'Closed';
    b.add({ n, t: keys[n % keys.length], created, final, customers: (n * 37) % 5000 });
  }
}

function build(seed, now) {
  const b = new Builder(now);
  const m = /^large:(\d+)$/.exec(seed || '');
  if (!seed || seed === 'default') defaultSeed(b);
  else if (seed === 'demo') demoSeed(b);
  else if (seed === 'empty') {
    /* settings only */
  } else if (m) largeSeed(b, Math.min(200000, Number(m[1])));
  else throw new Error(`unknown seed ${seed} (default, demo, empty, large:N)`);
  return b.result();
}

module.exports = { build, slug };

if (require.main === module) {
  const seed = process.argv[2] || 'default';
  const now = process.argv[3] ? Date.parse(process.argv[3]) : Date.now();
  const t0 = Date.now();
  const r = build(seed, now);
  const took = Date.now() - t0;
  const rows = r.incidents
    .slice()
    .sort((a, b) => Number(a.reference.slice(4)) - Number(b.reference.slice(4)))
    .map((i) => {
      const svc = (i.custom_field_entries[0].values.concat(i.custom_field_entries[1].values)).map((v) => (v.value_option ? v.value_option.value : v.value_catalog_entry.name));
      const ageH = (now - Date.parse(i.created_at)) / HOUR;
      return `${i.reference.padEnd(7)} ${i.id} ${(i.severity ? i.severity.name : '-').padEnd(8)} ${i.incident_status.name.padEnd(13)} ${i.mode.padEnd(13)} ${i.visibility.padEnd(7)} ${(ageH < 48 ? ageH.toFixed(1) + 'h' : (ageH / 24).toFixed(1) + 'd').padStart(7)} ${[...new Set(svc)].join(',').padEnd(34)} ${i.slack_channel_id ? '' : '[no channel] '}${i.name}`;
    });
  process.stdout.write(rows.join('\n') + '\n');
  process.stdout.write(`${r.incidents.length} incidents, ${r.updates.length} updates, ${r.timeline.length} timeline items, ${r.follow_ups.length} follow-ups, ${r.relationships.length} relationships, ${r.channels.length} channels (built in ${took} ms)\n`);
}
