-- fox.conf.lua: the configuration of `fox serve` (and of `fox investigate`).
--
-- fox looks for it in --config FILE, then $FOX_CONFIG, then ./fox.conf.lua; without
-- one every key takes its default. It is a Lua table evaluated in a sandbox: no
-- require, no io, no os.execute. Its only helper is env("NAME" [, default]), which reads
-- the environment variable NAME, else the file named by NAME_FILE. Secrets come that
-- way and are never written here. `fox check` validates this file: an unknown key or a
-- wrong type is an error naming the key (and the closest valid one).
--
-- Every key below shows its default unless the comment says otherwise.
-- docs/configuration.md describes each in full.
return {
  -- Listener: POST /webhooks/incident-io, GET /healthz, GET /metrics.
  -- --listen HOST:PORT overrides it. Keep it on loopback behind a TLS proxy.
  listen = "127.0.0.1:8080",

  -- Durable state (one SQLite file, fox.db): the queue, what was investigated and
  -- posted, the poll cursor, recent webhook ids. --state-dir and $FOX_STATE_DIR
  -- override it. Relative paths are relative to fox's working directory.
  state_dir = "./var",

  -- incident.io webhooks: the endpoint's signing secret (whsec_...). Without one the
  -- webhook endpoint answers 503 and the poller is on.
  webhook_secret = env("INCIDENT_IO_WEBHOOK_SECRET"),
  webhook_tolerance = 300,       -- seconds a delivery's timestamp may be off (replays)
  max_body = 1048576,            -- bytes; larger deliveries get 413
  request_timeout = 60,          -- seconds to send one whole request (slow clients are cut off)
  -- max_connections = 4096,     -- open connections; one more is closed at once

  -- Polling: lists incidents created since the last poll (with an overlap), and after
  -- downtime catches up on up to max_catch_up seconds. Default: on only when no webhook
  -- secret is set. Webhooks and polling together never investigate an incident twice.
  -- poll = true,
  poll_interval = 30,
  poll_overlap = 120,
  max_catch_up = 86400,

  -- The investigation queue.
  concurrency = 8,               -- investigations at once
  investigation_timeout = 120,   -- seconds one investigation may take
  max_attempts = 3,              -- runs of one incident (failed fetches, crashes) before giving up
  retry_delay = 30,              -- seconds before a failed fetch is retried
  drain_timeout = 30,            -- on SIGTERM/SIGINT, seconds to let running ones finish
  record_ttl = 30 * 86400,       -- seconds fox remembers an incident it handled

  -- The playbook: a module on the script path, or a .lua file (relative to this file).
  playbook = "playbooks.investigate",
  playbook_options = {},         -- handed to the playbook as ctx.options

  -- Which incidents are not investigated (policies/skip.lua, or your own module/file).
  skip_policy = "policies.skip",
  skip = {
    modes = { "test", "tutorial" },
    status_categories = { "declined", "merged", "canceled" },
    name_patterns = {},          -- Lua patterns on the lower-cased name, e.g. "^%[drill%]"
  },

  -- The incident.io API. The key should be read-only ("View data"); by default it
  -- comes from $INCIDENT_IO_API_KEY or the file named by $INCIDENT_IO_API_KEY_FILE
  -- (re-read on SIGHUP, so a rotated key file is picked up by a reload).
  incidentio = {
    -- api_key = env("INCIDENT_IO_API_KEY"),
    -- base_url = "https://api.incident.io",
    -- timeout = 15,
  },

  -- Settings of the default playbook (docs/playbooks.md); examples:
  -- custom_context = "Our critical services are payments-api, checkout-service, and user-auth.",
  -- sources = { prometheus = { url = "http://prometheus:9090" } },

  -- log_level = "info",         -- debug | info | warn | error
  -- log_format = "logfmt",      -- logfmt | json
}
