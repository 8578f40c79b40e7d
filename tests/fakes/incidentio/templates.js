'use strict';
// Incident content for the seeds: realistic names, markdown summaries, update messages and
// resolutions, per service. Each template is a function of a small parameter source `p`
// (deterministic per incident number), returning the content fields used by seed.js.

const { ORG } = require('./settings');

const D = ORG.domain;
const dash = (svc, board) => `https://grafana.${D}/d/${board || svc + '-overview'}/${svc}?orgId=1&from=now-6h&to=now`;
const runbook = (svc, slug) => `https://runbooks.${D}/${svc}/${slug}`;
const pd = (id) => `https://acme-pay.pagerduty.com/incidents/${id}`;
const sentry = (svc, id) => `https://sentry.${D}/organizations/acme-pay/issues/${id}/?project=${svc}`;

// Builds a markdown summary in one of several styles so clients see the variety real
// incidents have: some with `Service:`/`Error:` lines, bullets, fenced traces, links.
function summary(t, style) {
  const links = [];
  if (t.dashboard) links.push(`- Dashboard: ${t.dashboard}`);
  if (t.runbook) links.push(`- Runbook: ${t.runbook}`);
  if (t.pagerduty) links.push(`- PagerDuty: ${t.pagerduty}`);
  if (t.sentry) links.push(`- Sentry: ${t.sentry}`);
  const impact = (t.impact || []).map((b) => `- ${b}`).join('\n');
  switch (style % 4) {
    case 0:
      return [
        t.lead,
        '',
        `Service: ${t.service}`,
        `Error: ${t.error}`,
        t.env ? `Environment: ${t.env}` : null,
        '',
        '**Impact**',
        impact,
        '',
        '**Links**',
        links.join('\n'),
        t.trace ? '\n```\n' + t.trace + '\n```' : null,
      ].filter((x) => x !== null).join('\n');
    case 1:
      return [
        t.lead,
        '',
        `Service: ${t.service}`,
        `Error: ${t.error}`,
        '',
        links.join('\n'),
      ].join('\n');
    case 2:
      return [
        `${t.lead} The error we see in \`${t.service}\` logs is \`${t.error}\`.`,
        '',
        impact,
      ].join('\n');
    default:
      return [
        "### What's happening",
        t.lead,
        '',
        '### Impact',
        impact,
        '',
        '### Useful links',
        links.join('\n'),
        t.trace ? '\n```text\n' + t.trace + '\n```' : null,
      ].filter((x) => x !== null).join('\n');
  }
}

// p: { n, int(lo, hi), pick(list), hex(len) }
const TEMPLATES = {
  // ------------------------------------------------------------------ payments-api
  P1: (p) => {
    const depth = p.int(20, 90) * 1000;
    return {
      service: 'payments-api', sev: 'Medium', type: 'Degraded Performance', detection: 'Alert',
      name: 'Refund webhooks delayed from payments-api',
      error: `RefundWebhookDispatchLag: queue depth ${depth} > 10000 (consumer group refund-dispatcher)`,
      lead: `Merchants are receiving \`refund.succeeded\` webhooks late, up to ${p.int(20, 70)} minutes behind.`,
      impact: [`${depth.toLocaleString('en-US')} webhooks queued`, 'Refunds themselves succeed; only notifications are late', 'Support tickets from 3 large merchants'],
      dashboard: dash('payments-api', 'payments-webhooks'), runbook: runbook('payments-api', 'webhook-backlog'), pagerduty: pd('Q' + p.hex(12)),
      cause: 'The refund-dispatcher consumer group stalled after a Kafka partition rebalance; consumers are stuck in a rebalance loop.',
      root_cause: 'Consumer group stuck in a rebalance loop because max.poll.interval.ms was lower than the batch processing time',
      monitoring: 'Dispatcher pods restarted with max.poll.interval.ms=600000; backlog is draining at ~1.2k/s.',
      resolution: `Restarted the refund-dispatcher pods and raised max.poll.interval.ms to 600000. The backlog of ${depth} webhooks drained in ${p.int(25, 50)} minutes; delivery latency back under 5s.`,
      follow_ups: ['Alert on refund webhook queue depth > 5000 for 5 minutes', 'Make batch size adaptive in refund-dispatcher'],
    };
  },
  P2: (p) => {
    const dup = p.int(40, 260);
    return {
      service: 'payments-api', sev: 'High', type: 'Default', detection: 'Customer report',
      name: 'Duplicate charges reported for Apple Pay on payments-api',
      error: 'IdempotencyKeyConflict: idempotency key reused with a different request body',
      lead: `Customers report being charged twice for a single Apple Pay order. We have found ${dup} affected orders so far.`,
      impact: [`${dup} orders charged twice`, 'Only iOS app 7.4.x with Apple Pay', 'Customer support volume up 4x'],
      dashboard: dash('payments-api'), sentry: sentry('payments-api', p.int(4000000, 4999999)),
      trace: 'IdempotencyKeyConflict: idempotency key reused with a different request body\n    at IdempotencyStore.claim (src/idempotency/store.ts:77:11)\n    at async ChargeHandler.handle (src/charges/handler.ts:52:7)',
      cause: 'The iOS app regenerates the idempotency key when retrying after a 3-D Secure redirect, so retries create a new charge.',
      root_cause: 'iOS client regenerated idempotency keys on retry after a 3DS redirect',
      monitoring: 'Server-side dedupe on (order_id, amount) within 10 minutes is deployed; no new duplicates in 30 minutes.',
      resolution: `Shipped server-side dedupe on (order_id, amount) within a 10 minute window and refunded all ${dup} duplicate charges. iOS fix is in review for 7.4.3.`,
      follow_ups: ['Ship iOS 7.4.3 with stable idempotency keys', 'Add duplicate-charge detector to the payments reconciliation job'],
    };
  },
  P3: (p) => ({
    service: 'payments-api', sev: 'Low', type: 'Default', detection: 'Internal report',
    name: 'payments-api: currency conversion using stale FX rates',
    error: `StaleFxRates: newest rate for EUR/GBP is ${p.int(26, 40)}h old (max 24h)`,
    lead: 'Finance noticed FX rates used for display prices have not been updated since yesterday.',
    impact: ['Displayed prices in GBP off by up to 0.8%', 'Charges use the acquirer rate, so no money was lost'],
    dashboard: dash('payments-api', 'fx-rates'),
    cause: 'The fx-rates-sync cron job was disabled during last week\'s scheduler migration.',
    root_cause: 'FX rate sync cron job left disabled after the scheduler migration',
    monitoring: 'Cron job re-enabled and rates backfilled; watching the next two scheduled runs.',
    resolution: 'Re-enabled the fx-rates-sync cron job in the new scheduler and backfilled rates. Added a staleness check to the payments-api readiness probe.',
    follow_ups: ['Audit all cron jobs migrated to the new scheduler'],
  }),
  // ------------------------------------------------------------------ checkout-service
  C1: (p) => {
    const p99 = (p.int(70, 120) / 10).toFixed(1);
    return {
      service: 'checkout-service', sev: 'High', type: 'Production Outage', detection: 'Alert',
      name: 'checkout-service 504 Gateway Timeout from ingress',
      error: 'upstream timed out (110: Connection timed out) while reading response header from upstream, upstream: "http://10.42.7.19:8080/cart/price"',
      lead: `The ingress returns 504 for ${p.int(8, 30)}% of \`POST /cart/price\` requests; p99 latency is ${p99}s.`,
      env: 'production (eu-west-1)',
      impact: [`${p.int(8, 30)}% of cart pricing requests fail`, 'Customers cannot reach the payment step', 'Mobile and web affected'],
      dashboard: dash('checkout-service'), runbook: runbook('checkout-service', 'ingress-504'), pagerduty: pd('Q' + p.hex(12)),
      cause: 'A slow cart-pricing query (sequential scan on cart_items.promo_id) is saturating the database connection pool.',
      root_cause: 'Missing index on cart_items.promo_id after a schema migration caused slow pricing queries and pool exhaustion',
      monitoring: 'Index created concurrently; p99 is down to 310ms and 504s stopped. Monitoring for an hour.',
      resolution: `Added the missing index on cart_items.promo_id (CREATE INDEX CONCURRENTLY). p99 for /cart/price dropped from ${p99}s to 310ms and ingress 504s stopped.`,
      follow_ups: ['Add migration lint that flags dropped indexes', 'Alert on DB pool saturation for checkout-service'],
    };
  },
  C2: (p) => ({
    service: 'checkout-service', sev: 'Medium', type: 'Default', detection: 'Customer report',
    name: 'Promo codes rejected at checkout',
    error: 'PromoValidationError: promo code expired (valid_until=2024-11-30T23:59:59+01:00)',
    lead: `Valid promo codes are rejected as expired for customers in ${p.pick(['Germany', 'France', 'Spain', 'the Netherlands'])}.`,
    impact: ['Promo codes rejected during the last hour of their validity', `About ${p.int(300, 900)} failed checkouts`],
    sentry: sentry('checkout-service', p.int(4000000, 4999999)),
    cause: 'After upgrading the date library, promo validity is compared in server local time instead of UTC.',
    root_cause: 'Timezone handling regression in promo validation after a date library upgrade',
    monitoring: 'Pinned the previous date library version; promo rejections back to baseline.',
    resolution: 'Rolled checkout-service back to the previous date library version (v5.12.3) so validity is compared in UTC again; affected customers got a goodwill voucher.',
    follow_ups: ['Add timezone test cases to promo validation'],
  }),
  C3: (p) => ({
    service: 'checkout-service', sev: 'High', type: 'Production Outage', detection: 'Alert',
    name: 'Cart page returning 500s after enabling new-cart-summary',
    error: "TypeError: Cannot read properties of undefined (reading 'lineItems')",
    lead: 'The cart page fails with HTTP 500 for customers with a saved cart, right after the `new-cart-summary` feature flag went to 50%.',
    impact: [`${p.int(15, 45)}% of cart page views fail`, 'Only customers with saved carts from before the migration'],
    dashboard: dash('checkout-service'), sentry: sentry('checkout-service', p.int(4000000, 4999999)),
    trace: "TypeError: Cannot read properties of undefined (reading 'lineItems')\n    at summarizeCart (src/cart/summary.ts:31:24)\n    at CartController.show (src/cart/controller.ts:118:19)",
    cause: 'Saved carts created before the cart schema migration have no `summary` object, which the new code path assumes.',
    root_cause: 'New cart summary code assumed a field missing on carts saved before the schema migration',
    monitoring: 'Flag new-cart-summary turned off; 500s are gone. Watching.',
    resolution: 'Disabled the new-cart-summary feature flag, which stopped the 500s immediately. A fix that handles legacy carts shipped the next day behind the flag.',
    follow_ups: ['Backfill summary for legacy saved carts', 'Require canary at 5% for checkout flags'],
  }),
  // ------------------------------------------------------------------ user-auth
  U1: (p) => ({
    service: 'user-auth', sev: 'Critical', type: 'Production Outage', detection: 'Alert',
    name: 'Logins failing: token refresh returns 401',
    error: `JWTVerificationError: no signing key found for kid "${p.hex(8).toLowerCase()}"`,
    lead: 'Users are being logged out and cannot log back in: token refresh returns 401 for every session older than 2 hours.',
    env: 'production (all regions)',
    impact: ['All sessions older than 2h invalid', 'Logins for mobile apps failing', 'Checkout blocked for logged-out users'],
    dashboard: dash('user-auth'), runbook: runbook('user-auth', 'jwks-rotation'), pagerduty: pd('Q' + p.hex(12)),
    trace: 'JWTVerificationError: no signing key found for kid\n    at verifyToken (auth/jwt/verify.go:88)\n    at (*RefreshHandler).ServeHTTP (auth/http/refresh.go:41)',
    cause: 'The scheduled JWKS key rotation removed the previous signing key before the tokens it signed had expired.',
    root_cause: 'JWKS rotation removed the previous signing key while tokens signed with it were still valid',
    monitoring: 'Previous key re-published in the JWKS; refresh success rate back to 99.9%.',
    resolution: 'Re-published the previous signing key in the JWKS endpoint; sessions recovered without users having to log in again. Rotation now keeps the old key for 2x the token lifetime.',
    follow_ups: ['Keep retired signing keys for twice the token lifetime', 'Synthetic check for token refresh'],
  }),
  U2: (p) => ({
    service: 'user-auth', sev: 'High', type: 'Default', detection: 'Customer report',
    name: 'SSO logins failing for Okta tenants',
    error: 'SAMLResponseError: Assertion is not yet valid (NotBefore is in the future)',
    lead: `Enterprise customers using Okta SSO cannot log in; ${p.int(3, 12)} tenants affected.`,
    impact: ['SSO logins fail for Okta tenants', 'Password logins unaffected'],
    runbook: runbook('user-auth', 'sso-failures'),
    cause: 'Clock skew of ~90s on two auth nodes after the NTP configuration changed in the base image.',
    root_cause: 'Clock skew on auth nodes after NTP misconfiguration in the base image',
    monitoring: 'chrony configuration restored on all nodes; SSO success rate recovered.',
    resolution: 'Restored the chrony configuration on all user-auth nodes and allowed 120s clock skew in SAML validation. SSO logins work for all tenants again.',
    follow_ups: ['Alert on clock skew > 5s on any node'],
  }),
  U3: (p) => ({
    service: 'user-auth', sev: 'Low', type: 'Degraded Performance', detection: 'Internal report',
    name: 'Password reset emails slow to arrive',
    error: `EmailSendLatencyHigh: p95 ${p.int(4, 12)}m for template password_reset`,
    lead: 'Password reset emails are taking several minutes to arrive.',
    impact: ['Password reset emails delayed', 'Some users requested multiple resets'],
    dashboard: dash('notifications', 'email-delivery'),
    cause: 'Password reset emails share a queue with a large marketing send.',
    root_cause: 'Transactional and marketing emails shared one send queue',
    monitoring: 'Transactional emails moved to a priority queue.',
    resolution: 'Moved transactional templates (password reset, OTP) to a dedicated priority queue; p95 back to 8s.',
    follow_ups: ['Separate transactional and marketing sending quotas'],
  }),
  // ------------------------------------------------------------------ search
  S1: (p) => ({
    service: 'search', sev: 'Medium', type: 'Degraded Performance', detection: 'Alert',
    name: 'Search latency p99 above 3s',
    error: `Elasticsearch cluster health YELLOW: ${p.int(2, 9)} unassigned shards (node es-data-${p.int(1, 9)} disk watermark exceeded)`,
    lead: `Search p99 latency is ${(p.int(30, 60) / 10).toFixed(1)}s (normally 400ms).`,
    impact: ['Slow search results on web and mobile', 'Autocomplete timing out'],
    dashboard: dash('search', 'elasticsearch'), runbook: runbook('search', 'cluster-yellow'),
    cause: 'A data node hit the high disk watermark, shards were unassigned and the remaining nodes are overloaded.',
    root_cause: 'Elasticsearch data node ran out of disk and its shards became unassigned',
    monitoring: 'Disk expanded and shards rerouted; cluster is green again.',
    resolution: 'Expanded the data node disk from 500Gi to 1Ti and rerouted the unassigned shards; cluster back to GREEN and p99 at 380ms.',
    follow_ups: ['Alert at 75% disk on Elasticsearch data nodes'],
  }),
  S2: (p) => {
    const lag = (p.int(8, 30) / 10).toFixed(1);
    return {
      service: 'search', sev: 'Medium', type: 'Degraded Performance', detection: 'Alert',
      name: 'Search results stale: indexer lag',
      error: `IndexerLagHigh: consumer lag ${lag}M messages on topic catalog-changes`,
      lead: `New and updated products take up to ${p.int(20, 90)} minutes to appear in search.`,
      impact: ['Price changes not reflected in search results', 'Out-of-stock products still shown'],
      dashboard: dash('search', 'indexer'), runbook: runbook('search', 'indexer-lag'),
      cause: `The indexer cannot keep up after the catalog bulk import; lag is ${lag}M messages.`,
      root_cause: 'Indexer throughput too low for the catalog bulk import',
      monitoring: 'Indexer scaled from 4 to 12 workers; lag is going down.',
      resolution: 'Scaled the indexer from 4 to 12 workers; the lag cleared in 50 minutes. Bulk imports are now rate limited.',
      follow_ups: ['Autoscale the indexer on consumer lag'],
    };
  },
  S3: (p) => ({
    service: 'search', sev: 'Low', type: 'Default', detection: 'Customer report',
    name: 'Search returns no results for queries with accents',
    error: 'analyzer "product_text" has no asciifolding filter (mapping v14)',
    lead: 'Queries like "crème" or "café" return no results.',
    impact: ['Queries with accented characters return empty results', `About ${p.int(1, 4)}% of queries affected`],
    cause: 'Mapping v14 dropped the asciifolding filter from the product_text analyzer.',
    root_cause: 'asciifolding filter dropped from the analyzer in mapping v14',
    monitoring: 'Reindex with the fixed mapping is running.',
    resolution: 'Restored the asciifolding filter in mapping v15 and reindexed; accented queries return results again.',
    follow_ups: ['Add search relevance tests for accented queries'],
  }),
  // ------------------------------------------------------------------ notifications
  N1: (p) => ({
    service: 'notifications', sev: 'High', type: 'Degraded Performance', detection: 'Alert',
    name: 'Push notifications delayed up to 15 minutes',
    error: 'APNsError: 429 TooManyProviderTokenUpdates',
    lead: 'Push notifications to iOS devices are delayed by up to 15 minutes; order status pushes are affected.',
    impact: ['iOS pushes delayed', `${p.int(100, 400)}k notifications queued`, 'Android unaffected'],
    dashboard: dash('notifications', 'push-delivery'), runbook: runbook('notifications', 'apns-throttling'), pagerduty: pd('Q' + p.hex(12)),
    cause: 'We create a new APNs provider token for every request since the last deploy, and Apple is throttling us.',
    root_cause: 'APNs provider token regenerated per request instead of cached',
    monitoring: 'Provider token cached for 50 minutes; queue draining.',
    resolution: 'Cached the APNs provider token for 50 minutes instead of regenerating it per request; the push queue drained in 20 minutes.',
    follow_ups: ['Alert on APNs 429 responses'],
  }),
  N2: (p) => ({
    service: 'notifications', sev: 'Medium', type: 'Default', detection: 'Alert',
    name: 'Email bounce rate spike on SES',
    error: `SESBounceRateHigh: bounce rate ${(p.int(50, 90) / 10).toFixed(1)}% (account at risk above 10%)`,
    lead: 'Our SES bounce rate is close to the level where AWS pauses sending.',
    impact: ['Risk of SES account suspension', 'No customer-visible impact yet'],
    dashboard: dash('notifications', 'email-delivery'),
    cause: 'A marketing list import contained thousands of invalid addresses.',
    root_cause: 'Marketing list import with invalid addresses',
    monitoring: 'Campaign paused and invalid addresses suppressed.',
    resolution: 'Paused the campaign, removed the imported list and added its addresses to the suppression list; bounce rate back to 0.4%.',
    follow_ups: ['Validate addresses on list import'],
  }),
  N3: (p) => ({
    service: 'notifications', sev: 'High', type: 'Production Outage', detection: 'Customer report',
    name: 'SMS one-time passwords not delivered in Brazil',
    error: 'TwilioError 30008: Unknown error (carrier route BR-01 unavailable)',
    lead: 'Customers in Brazil do not receive SMS one-time passwords and cannot complete login or checkout.',
    impact: ['SMS OTP fails for Brazilian numbers', 'Logins with 2FA blocked in BR'],
    runbook: runbook('notifications', 'sms-failover'),
    cause: 'Our SMS provider has a carrier route outage in Brazil.',
    root_cause: 'SMS provider carrier route outage in Brazil',
    monitoring: 'BR traffic failed over to the secondary provider; delivery at 98%.',
    resolution: 'Failed Brazilian SMS traffic over to the secondary provider; OTP delivery recovered to 98%. Failover is now automatic per country.',
    follow_ups: ['Automatic per-country SMS provider failover'],
  }),
  // ------------------------------------------------------------------ inventory-api
  I1: (p) => ({
    service: 'inventory-api', sev: 'High', type: 'Default', detection: 'Alert',
    name: 'inventory-api deadlocks on stock reservation',
    error: 'ERROR: deadlock detected (SQLSTATE 40P01) in ReserveStock',
    lead: `Stock reservations fail intermittently with deadlocks; ${p.int(2, 9)}% of orders cannot reserve stock.`,
    impact: ['Orders failing at the reservation step', 'Retries succeed after a few seconds'],
    dashboard: dash('inventory-api'), sentry: sentry('inventory-api', p.int(4000000, 4999999)),
    trace: 'pq: deadlock detected\n    at inventory/store.(*Store).ReserveStock (store/reserve.go:142)\n    at inventory/api.(*Handler).Reserve (api/reserve.go:57)',
    cause: 'Two code paths lock stock rows in different orders (by SKU vs by warehouse).',
    root_cause: 'Inconsistent row lock ordering between reservation and restock code paths',
    monitoring: 'inventory-api v3.8.2 with consistent lock ordering is deployed; no deadlocks since.',
    resolution: 'Changed ReserveStock to lock rows in SKU order like the restock path and deployed inventory-api v3.8.2; deadlocks stopped.',
    follow_ups: ['Add a deadlock alert on the inventory database'],
  }),
  I2: (p) => ({
    service: 'inventory-api', sev: 'Medium', type: 'Default', detection: 'Internal report',
    name: 'Stock levels out of sync with the warehouse',
    error: `WMSSyncLag: last successful sync ${p.int(40, 180)} minutes ago`,
    lead: 'Stock levels shown on the site do not match the warehouse management system.',
    impact: ['Some products oversold', 'Some in-stock products shown as unavailable'],
    dashboard: dash('inventory-api', 'wms-sync'),
    cause: 'The WMS sync job crashed on a malformed SKU and has not restarted.',
    root_cause: 'WMS sync job crashed on a malformed SKU and did not restart',
    monitoring: 'Sync re-run from the last checkpoint.',
    resolution: 'Skipped the malformed SKU, re-ran the WMS sync from the last checkpoint and added an alert on sync lag.',
    follow_ups: ['Make the WMS sync skip and report malformed records'],
  }),
  I3: (p) => ({
    service: 'inventory-api', sev: 'High', type: 'Production Outage', detection: 'Alert',
    name: 'inventory-api pods OOMKilled after traffic spike',
    error: 'OOMKilled: container inventory-api exceeded memory limit 1Gi (exit code 137)',
    lead: 'inventory-api pods are crash looping with OOMKilled during the flash sale.',
    impact: ['Product pages show "availability unknown"', 'Add to cart failing intermittently'],
    dashboard: dash('inventory-api'), runbook: runbook('inventory-api', 'oomkilled'), pagerduty: pd('Q' + p.hex(12)),
    cause: 'An in-process availability cache is unbounded and grows with the number of SKUs viewed.',
    root_cause: 'Unbounded in-process availability cache',
    monitoring: 'Memory limit raised to 2Gi and cache bounded to 50k entries; pods stable.',
    resolution: 'Raised the memory limit from 1Gi to 2Gi and bounded the availability cache to 50k entries (LRU); no restarts since.',
    follow_ups: ['Load test inventory-api at 3x flash sale traffic'],
  }),
};

module.exports = { TEMPLATES, summary, dash, runbook, pd, sentry };
