/* libFuzzer target: fox's HTTP server glue, raw bytes -> evhttp -> httpd.c ->
 * lapi_http.c (the request as a Lua table, the handler as a task, its result back to
 * bytes) -> the webhook receiver (scripts/fox/webhook_receiver.lua) -> fox.webhook.
 *
 * Each input is written, as is, to a fresh loopback connection to a fox.http server
 * in this process; then the client half-closes and reads until the server closes. The
 * loop runs in between, so this is the path of a real hostile client, minus the
 * network. The handler (Lua, below) checks the request table's shape, lets the real
 * webhook receiver handle the request with a stub queue and state store, and lets the
 * request pick its own response status and headers (X-Fuzz-Status, X-Fuzz-Header,
 * X-Fuzz-Name) so the result validation of lapi_http.c sees hostile values too. A
 * "webhook-signature: {sig}" header is replaced by the correct signature (and a
 * "webhook-timestamp: {now}" by the time) before the receiver runs, so the fuzzer gets
 * past verification to the JSON and event handling.
 *
 * Checked, beyond "no crash, no sanitizer report":
 *   - the request table has the documented fields and types, header names lower case;
 *   - the receiver never raises and answers only 200, 202, 400, 401, 405, 413, 415 or 503,
 *     and answers 2xx only to a request whose signature verifies (checked again here);
 *   - no log line ever contains the webhook secret (registered for redaction, as
 *     fox.config does), even when the request carries it;
 *   - after each connection: no live request or task is left, the generation's Lua
 *     stack is back where it was, and the server still answers. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fox/httpd.h"
#include "fuzz_fox.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_SECRET "whsec_c2VjcmV0LWZvci10aGUtZnV6emVyLTAxMjM0NTY3"

static const char *fuzz_http_chunk =
    "local http = require('fox.http')\n"
    "local receiver = require('fox.webhook_receiver')\n"
    "local webhook = require('fox.webhook')\n"
    "local SECRET = ...\n"
    "local st = { get = function() return nil end, set = function() return true end }\n"
    "local queue = { enqueue = function(_, id, meta)\n"
    "  if type(id) ~= 'string' or id == '' or type(meta) ~= 'table' then fuzz_fail('bad enqueue') end\n"
    "  return true end }\n"
    "local env = { cfg = { webhook_secret = SECRET, webhook_tolerance = 300, max_body = 32768 },\n"
    "  st = st, queue = queue }\n"
    "local ALLOWED = { [200] = true, [202] = true, [400] = true, [401] = true, [405] = true, [415] = true,\n"
    "  [413] = true, [503] = true }\n"
    "local FIELDS = { method = 'string', path = 'string', query = 'string', uri = 'string',\n"
    "  headers = 'table', body = 'string', remote_addr = 'string', remote_port = 'number' }\n"
    "local function handler(req)\n"
    "  fuzz_cover()\n"
    "  for k, t in pairs(FIELDS) do\n"
    "    if type(req[k]) ~= t then fuzz_fail('req.' .. k .. ' is ' .. type(req[k])) end\n"
    "  end\n"
    "  for k, v in pairs(req.headers) do\n"
    "    if type(k) ~= 'string' or type(v) ~= 'string' then fuzz_fail('header types') end\n"
    "    if k ~= k:lower() then fuzz_fail('header name not lower case: ' .. k) end\n"
    "  end\n"
    "  if #req.body > 65536 then fuzz_fail('body over max_body reached the handler') end\n"
    "  local h = req.headers\n"
    "  local signed = false\n"
    "  if h['webhook-timestamp'] == '{now}' then h['webhook-timestamp'] = tostring(os.time()) end\n"
    "  if h['webhook-signature'] == '{sig}' and h['webhook-id'] and h['webhook-timestamp'] then\n"
    "    h['webhook-signature'] = webhook.sign(SECRET, h['webhook-id'], h['webhook-timestamp'], req.body)\n"
    "    signed = true\n"
    "  end\n"
    "  local ok, resp = pcall(receiver.handle, req, env)\n"
    "  if not ok then fuzz_fail('the receiver raised: ' .. tostring(resp)) end\n"
    "  if type(resp) ~= 'table' or not ALLOWED[resp.status] then\n"
    "    fuzz_fail('unexpected answer ' .. tostring(type(resp) == 'table' and resp.status))\n"
    "  end\n"
    "  if resp.status < 300 and not webhook.verify(SECRET, h, req.body, { tolerance = 300 }) then\n"
    "    fuzz_fail('accepted a request without a valid signature')\n"
    "  end\n"
    "  if signed then fuzz_feature('signed') end\n"
    "  fuzz_feature(tostring(resp.status) .. resp.body:gsub('[%d]', ''))\n"
    "  if h['x-fuzz-status'] then resp.status = math.tointeger(tonumber(h['x-fuzz-status'])) or h['x-fuzz-status'] end\n"
    "  if h['x-fuzz-header'] then\n"
    "    resp.headers = { ['X-Echo'] = h['x-fuzz-header'], [h['x-fuzz-name'] or 'X-Name'] = { 'a', h['x-fuzz-header'] } }\n"
    "  end\n"
    "  return resp\n"
    "end\n"
    "local server = assert(http.listen({ host = '127.0.0.1', port = 0, max_body = 65536,\n"
    "  max_header = 8192, timeout = 2, handler_timeout = 5, handler = handler }))\n"
    "return server.port\n";

static int fuzz_http_port;
static size_t fuzz_http_base_tasks;

/* Every log line passes here: none may carry the secret, even when a client sends it
 * back to us (it is registered for redaction, as fox.config does for every secret). */
static void fuzz_http_sink(const char *line, size_t len, void *ud) {
    (void)ud;
    static const char secret[] = FUZZ_SECRET;
    if (len >= sizeof secret - 1 && memmem(line, len, secret, sizeof secret - 1)) {
        fprintf(stderr, "fuzz_http: the secret reached a log line: %.*s\n", (int)len, line);
        abort();
    }
    if (getenv("FUZZ_HTTP_VERBOSE")) fwrite(line, 1, len, stderr);
}

static void fuzz_http_init(void) {
    vm_gen *g = fuzz_fox_start();
    lua_State *L = g->L;
    log_set_sink(fuzz_http_sink, NULL);
    log_redact_add(FUZZ_SECRET, strlen(FUZZ_SECRET), NULL);
    log_set_level(LOG_LEVEL_DEBUG); /* every line goes through the sink's check */
    const char *chunk = fuzz_http_chunk;
    if (luaL_loadbuffer(L, chunk, strlen(chunk), "=fuzz_http") != LUA_OK) {
        fprintf(stderr, "fuzz_http: %s\n", lua_tostring(L, -1));
        exit(2);
    }
    lua_pushstring(L, FUZZ_SECRET);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        fprintf(stderr, "fuzz_http: %s\n", lua_tostring(L, -1));
        exit(2);
    }
    fuzz_http_port = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    fuzz_http_base_tasks = sched_live_tasks();
}

typedef struct client {
    int fd;
    const uint8_t *data;
    size_t size, sent;
    int done;
    struct event *ev;
} client;

static void fuzz_http_on_io(evutil_socket_t fd, short what, void *arg) {
    client *c = arg;
    if (what & EV_WRITE) {
        while (c->sent < c->size) {
            ssize_t n = send(fd, c->data + c->sent, c->size - c->sent, MSG_NOSIGNAL);
            if (n > 0) {
                c->sent += (size_t)n;
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
            c->sent = c->size; /* the server closed on us: fine */
        }
        shutdown(fd, SHUT_WR);
        event_del(c->ev);
        event_assign(c->ev, loop_base(), fd, EV_READ | EV_PERSIST, fuzz_http_on_io, c);
        event_add(c->ev, NULL);
        return;
    }
    char buf[16384];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n > 0) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        c->done = 1; /* EOF or reset: the server is done with us */
        event_del(c->ev);
        return;
    }
}

static int fuzz_http_deadline_hit;
static void fuzz_http_on_deadline(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what, (void)arg;
    fuzz_http_deadline_hit = 1;
}

/* Runs the loop until *flag or seconds pass; returns *flag. */
static int fuzz_http_run_until(const int *flag, double seconds) {
    fuzz_http_deadline_hit = 0;
    struct event *t = evtimer_new(loop_base(), fuzz_http_on_deadline, NULL);
    struct timeval tv = {(time_t)seconds, (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6)};
    evtimer_add(t, &tv);
    while (!*flag && !fuzz_http_deadline_hit) event_base_loop(loop_base(), EVLOOP_ONCE);
    event_free(t);
    return *flag;
}

static int fuzz_http_idle(void) {
    return httpd_live_requests() == 0 && sched_live_tasks() == fuzz_http_base_tasks;
}

/* One connection: sends bytes, half-closes, waits for the server to close. Returns 1
 * when the server closed within the time limit. */
static int fuzz_http_exchange(const uint8_t *data, size_t size) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) abort();
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)fuzz_http_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) abort();
    client c = {fd, data, size, 0, 0, NULL};
    c.ev = event_new(loop_base(), fd, EV_WRITE | EV_PERSIST, fuzz_http_on_io, &c);
    event_add(c.ev, NULL);
    int ok = fuzz_http_run_until(&c.done, 8.0);
    event_free(c.ev);
    close(fd);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!fuzz_http_port) fuzz_http_init();
    lua_State *L = vm_current()->L;
    int top = lua_gettop(L);
    if (!fuzz_http_exchange(data, size)) {
        fprintf(stderr, "fuzz_http: the server kept the connection open for 8 s\n");
        abort();
    }
    /* Frees and task ends may lag the close by a loop turn or two. */
    int idle = fuzz_http_idle();
    for (int i = 0; i < 200 && !idle; i++) {
        event_base_loop(loop_base(), EVLOOP_NONBLOCK);
        if (!(idle = fuzz_http_idle())) usleep(1000);
    }
    if (!idle) {
        fprintf(stderr, "fuzz_http: %zu requests and %zu tasks still live after the connection closed\n",
                httpd_live_requests(), sched_live_tasks() - fuzz_http_base_tasks);
        abort();
    }
    if (lua_gettop(L) != top) {
        fprintf(stderr, "fuzz_http: the Lua stack grew by %d\n", lua_gettop(L) - top);
        abort();
    }
    /* The server still answers a plain request. */
    static const char ping[] = "GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    if (size % 64 == 0 && !fuzz_http_exchange((const uint8_t *)ping, sizeof ping - 1)) {
        fprintf(stderr, "fuzz_http: the server stopped answering\n");
        abort();
    }
    return 0;
}
