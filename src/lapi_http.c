/* fox.http.core: request, listen, encode, decode, stats. Bindings only: the transport
 * is httpc.c (client) and httpd.c (server). */
#include <ctype.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fox/httpc.h"
#include "fox/httpd.h"
#include "fox/lapi.h"
#include "fox/log.h"
#include "fox/sched.h"
#include "fox/vm.h"

#define HTTP_SERVER_MT "fox.http.server"
#define HTTP_DEFAULT_TIMEOUT 30.0
#define HTTP_DEFAULT_HANDLER_TIMEOUT 300.0

/* ---- helpers ------------------------------------------------------------------- */

/* Field key of the table at idx as a number > 0 (or dflt when nil). Raises otherwise. */
static double lapi_http_opt_positive(lua_State *L, int idx, const char *key, double dflt) {
    lua_getfield(L, idx, key);
    double v = dflt;
    if (!lua_isnil(L, -1)) {
        int isnum = 0;
        v = lua_tonumberx(L, -1, &isnum);
        if (!isnum || !(v > 0))
            luaL_error(L, "fox.http: %s must be a number > 0 (got %s)", key, luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return v;
}

/* Field key of the table at idx as an integer in [lo, hi] (or dflt when nil). */
static lua_Integer lapi_http_opt_integer(lua_State *L, int idx, const char *key,
                                         lua_Integer dflt, lua_Integer lo, lua_Integer hi) {
    lua_getfield(L, idx, key);
    lua_Integer v = dflt;
    if (!lua_isnil(L, -1)) {
        int isnum = 0;
        v = lua_tointegerx(L, -1, &isnum);
        if (!isnum || v < lo || v > hi)
            luaL_error(L, "fox.http: %s must be an integer from %I to %I", key, lo, hi);
    }
    lua_pop(L, 1);
    return v;
}

/* Field key of the table at idx as a string (NULL when nil); stays on the stack. */
static const char *lapi_http_opt_string(lua_State *L, int idx, const char *key, size_t *len) {
    lua_getfield(L, idx, key);
    if (lua_isnil(L, -1)) {
        if (len) *len = 0;
        return NULL;
    }
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "fox.http: %s must be a string (got %s)", key, luaL_typename(L, -1));
    return lua_tolstring(L, -1, len);
}

/* Pushes name lower-cased (HTTP header names are case-insensitive). */
static void lapi_http_push_lower(lua_State *L, const char *name) {
    luaL_Buffer b;
    size_t n = strlen(name);
    char *p = luaL_buffinitsize(L, &b, n);
    for (size_t i = 0; i < n; i++) p[i] = (char)tolower((unsigned char)name[i]);
    luaL_pushresultsize(&b, n);
}

/* t[lower(name)] = value, or "old, value" when the name repeats. t at idx (absolute). */
static void lapi_http_add_header(lua_State *L, int idx, const char *name, const char *value) {
    lapi_http_push_lower(L, name);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, idx) == LUA_TNIL) {
        lua_pop(L, 1);
        lua_pushstring(L, value);
    } else {
        lua_pushliteral(L, ", ");
        lua_pushstring(L, value);
        lua_concat(L, 3);
    }
    lua_rawset(L, idx);
}

/* ---- request ------------------------------------------------------------------- */

typedef struct http_call {
    sched_wait wait;
    httpc_transfer *x;
} http_call;

static void lapi_http_call_done(httpc_transfer *x, void *ud) {
    (void)x;
    http_call *c = ud;
    sched_wake(&c->wait);
}

/* Results of request(): the response table, or nil, err. */
static int lapi_http_call_push(lua_State *L, sched_wait *w) {
    http_call *c = (http_call *)w;
    const httpc_result *r = httpc_transfer_result(c->x);
    if (!r || !r->ok) {
        lua_pushnil(L);
        lua_pushstring(L, r ? r->error : "request did not finish");
        return 2;
    }
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, r->status);
    lua_setfield(L, -2, "status");
    lua_createtable(L, 0, (int)r->nheaders);
    int h = lua_gettop(L);
    for (size_t i = 0; i < r->nheaders; i++)
        lapi_http_add_header(L, h, r->headers[i].name, r->headers[i].value);
    lua_setfield(L, -2, "headers");
    lua_pushlstring(L, r->body ? r->body : "", r->body_len);
    lua_setfield(L, -2, "body");
    return 1;
}

static void lapi_http_call_release(sched_wait *w, int cancelled) {
    (void)cancelled;
    http_call *c = (http_call *)w;
    httpc_transfer_free(c->x); /* stops a running transfer: it never wakes us */
    free(c);
}

/* Appends a header value (string or number) as name, value to the flat list at
 * flat (absolute index); n counts the strings so far. */
static void lapi_http_flat_add(lua_State *L, int flat, int *n, int name_idx, int value_idx) {
    int t = lua_type(L, value_idx);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
        luaL_error(L, "fox.http.request: header '%s' must be a string, a number or an array "
                      "of them (got %s)", lua_tostring(L, name_idx), lua_typename(L, t));
    size_t len;
    lua_pushvalue(L, value_idx);
    const char *v = lua_tolstring(L, -1, &len);
    if (strlen(v) != len)
        luaL_error(L, "fox.http.request: header '%s' contains a NUL byte", lua_tostring(L, name_idx));
    lua_pushvalue(L, name_idx);
    lua_rawseti(L, flat, ++*n);
    lua_rawseti(L, flat, ++*n);
}

/* Validates opts.headers (at idx) into a flat Lua array {name, value, ...} pushed on
 * the stack; returns the number of strings. */
static int lapi_http_collect_headers(lua_State *L, int opts) {
    int n = 0;
    lua_newtable(L);
    int flat = lua_gettop(L);
    lua_getfield(L, opts, "headers");
    int hs = lua_gettop(L);
    if (lua_isnil(L, hs)) {
        lua_pop(L, 1);
        return 0;
    }
    if (!lua_istable(L, hs)) luaL_error(L, "fox.http.request: headers must be a table");
    lua_pushnil(L);
    while (lua_next(L, hs)) {
        int key = lua_gettop(L) - 1, val = key + 1;
        size_t klen;
        if (lua_type(L, key) != LUA_TSTRING)
            luaL_error(L, "fox.http.request: header names must be strings");
        const char *k = lua_tolstring(L, key, &klen);
        if (strlen(k) != klen) luaL_error(L, "fox.http.request: header name contains a NUL byte");
        if (lua_istable(L, val)) {
            lua_Integer m = luaL_len(L, val);
            for (lua_Integer i = 1; i <= m; i++) {
                lua_geti(L, val, i);
                lapi_http_flat_add(L, flat, &n, key, lua_gettop(L));
                lua_pop(L, 1);
            }
        } else {
            lapi_http_flat_add(L, flat, &n, key, val);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1); /* headers */
    return n;
}

/* request{method=, url=, headers=, body=, timeout=, queue_timeout=, max_body=, redirects=}
 *   -> {status=, headers=, body=} | nil, err
 * request(url) is request{url=url}. Yields the task until the response is complete. */
static int lapi_http_request(lua_State *L) {
    if (lua_type(L, 1) == LUA_TSTRING) {
        lua_createtable(L, 0, 1);
        lua_pushvalue(L, 1);
        lua_setfield(L, -2, "url");
        lua_replace(L, 1);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    httpc_request req;
    memset(&req, 0, sizeof req);

    size_t mlen = 0;
    const char *m = lapi_http_opt_string(L, 1, "method", &mlen);
    char method[32] = "GET";
    if (m) {
        if (mlen == 0 || mlen >= sizeof method) luaL_error(L, "fox.http.request: invalid method");
        for (size_t i = 0; i <= mlen; i++) method[i] = (char)toupper((unsigned char)m[i]);
    }
    req.method = method;
    size_t ulen = 0;
    req.url = lapi_http_opt_string(L, 1, "url", &ulen);
    if (!req.url) luaL_error(L, "fox.http.request: url is required");
    if (strlen(req.url) != ulen) luaL_error(L, "fox.http.request: url contains a NUL byte");
    req.body = lapi_http_opt_string(L, 1, "body", &req.body_len);
    req.timeout = lapi_http_opt_positive(L, 1, "timeout", HTTP_DEFAULT_TIMEOUT);
    req.queue_timeout = lapi_http_opt_positive(L, 1, "queue_timeout", HTTPC_DEFAULT_QUEUE_TIMEOUT);
    req.max_body = (size_t)lapi_http_opt_integer(L, 1, "max_body", (lua_Integer)HTTPC_DEFAULT_MAX_BODY,
                                                 1, (lua_Integer)1 << 40);
    req.max_redirects = (long)lapi_http_opt_integer(L, 1, "redirects", 0, 0, 50);

    int nstr = lapi_http_collect_headers(L, 1);
    int flat = lua_gettop(L);
    const char **hv = lua_newuserdatauv(L, (size_t)(nstr ? nstr : 1) * sizeof *hv, 0);
    for (int i = 0; i < nstr; i++) {
        lua_rawgeti(L, flat, i + 1);
        hv[i] = lua_tostring(L, -1); /* kept alive by flat */
        lua_pop(L, 1);
    }
    req.headers = hv;
    req.nheaders = (size_t)nstr / 2;

    http_call *c = calloc(1, sizeof *c);
    if (!c) return luaL_error(L, "fox.http.request: out of memory");
    c->wait.push = lapi_http_call_push;
    c->wait.release = lapi_http_call_release;
    char err[1024];
    c->x = httpc_start(&req, lapi_http_call_done, c, err, sizeof err);
    if (!c->x) {
        free(c);
        return luaL_error(L, "fox.http.request: %s", err);
    }
    /* httpc copied the request: drop the options, the header list and its userdata now
     * rather than keep them on this yielded frame until the response arrives. */
    lua_settop(L, 0);
    /* On failure sched_suspend releases c (stopping the transfer) and raises. */
    return sched_suspend(L, &c->wait);
}

/* ---- listen -------------------------------------------------------------------- */

typedef struct http_server {
    httpd_server *srv;      /* NULL once closed */
    vm_gen *g;
    int handler_ref;
    int self_ref;           /* anchors this userdata until close() */
    int port;
    double handler_timeout;
    char host[256];
    char handler_name[256]; /* "module.function": resolved per request in the current generation */
} http_server;

/* Protected: pushes the Lua view of the request (lightuserdata at 1). */
static int lapi_http_push_req(lua_State *L) {
    httpd_request *r = lua_touserdata(L, 1);
    size_t len;
    lua_createtable(L, 0, 9);
    int t = lua_gettop(L);
    lua_pushstring(L, httpd_request_method(r));
    lua_setfield(L, t, "method");
    const char *path = httpd_request_path(r, &len);
    lua_pushlstring(L, path, len);
    lua_setfield(L, t, "path");
    lua_pushstring(L, httpd_request_query(r));
    lua_setfield(L, t, "query");
    lua_pushstring(L, httpd_request_uri(r));
    lua_setfield(L, t, "uri");
    size_t n = httpd_request_header_count(r);
    lua_createtable(L, 0, (int)n);
    int h = lua_gettop(L);
    for (size_t i = 0; i < n; i++) {
        const char *name, *value;
        httpd_request_header(r, i, &name, &value);
        lapi_http_add_header(L, h, name, value);
    }
    lua_setfield(L, t, "headers");
    const char *body = httpd_request_body(r, &len);
    lua_pushlstring(L, body, len);
    lua_setfield(L, t, "body");
    lua_pushstring(L, httpd_request_remote_addr(r));
    lua_setfield(L, t, "remote_addr");
    lua_pushinteger(L, httpd_request_remote_port(r));
    lua_setfield(L, t, "remote_port");
    return 1;
}

static void lapi_http_log_failure(const char *what, httpd_request *r, const char *task,
                                  const char *error) {
    const char *kv[] = {"method", httpd_request_method(r), "path", httpd_request_path(r, NULL),
                        "task",   task,                    "error", error};
    log_event(LOG_LEVEL_ERROR, what, kv, LOG_PAIRS(kv));
}

static void lapi_http_reply_500(httpd_request *r) {
    httpd_request_clear_headers(r);
    httpd_request_reply(r, 500, "internal server error\n", 22);
}

/* Protected: sends the handler's result table (at 1) for the request (lightuserdata at
 * 2). Raises on a malformed result, before anything is sent. */
static int lapi_http_send_result(lua_State *L) {
    httpd_request *r = lua_touserdata(L, 2);
    char err[512];
    lua_settop(L, 2);
    lua_getfield(L, 1, "status");
    lua_Integer status = 200;
    if (!lua_isnil(L, 3)) {
        int isnum = 0;
        status = lua_tointegerx(L, 3, &isnum);
        if (!isnum || status < 200 || status > 599)
            return luaL_error(L, "the handler returned an invalid status (%s)",
                              luaL_tolstring(L, 3, NULL));
    }
    lua_getfield(L, 1, "headers");
    if (!lua_isnil(L, 4)) {
        if (!lua_istable(L, 4)) return luaL_error(L, "the handler's headers must be a table");
        lua_pushnil(L);
        while (lua_next(L, 4)) {
            if (lua_type(L, -2) != LUA_TSTRING)
                return luaL_error(L, "the handler's header names must be strings");
            const char *name = lua_tostring(L, -2);
            int many = lua_istable(L, -1);
            lua_Integer count = many ? luaL_len(L, -1) : 1;
            for (lua_Integer i = 1; i <= count; i++) {
                if (many) lua_geti(L, -1, i);
                else lua_pushvalue(L, -1);
                int t = lua_type(L, -1);
                if (t != LUA_TSTRING && t != LUA_TNUMBER)
                    return luaL_error(L, "the handler's header '%s' must be a string", name);
                if (httpd_request_add_header(r, name, lua_tostring(L, -1), err, sizeof err) != 0)
                    return luaL_error(L, "%s", err);
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
    }
    lua_getfield(L, 1, "body");
    size_t len = 0;
    const char *body = NULL;
    if (!lua_isnil(L, 5)) {
        if (lua_type(L, 5) != LUA_TSTRING)
            return luaL_error(L, "the handler's body must be a string (got %s)", luaL_typename(L, 5));
        body = lua_tolstring(L, 5, &len);
    }
    httpd_request_reply(r, (int)status, body, len); /* nothing may raise after this */
    return 0;
}

/* The handler task ended: send its result (or a 500). Never raises. */
static void lapi_http_handler_done(fox_task *t, int ok, lua_State *L, int nres, void *ud) {
    httpd_request *r = ud;
    const char *task = sched_task_name(t);
    if (!ok) {
        const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(no message)";
        lapi_http_log_failure("http.handler_failed", r, task, msg);
        lapi_http_reply_500(r);
        return;
    }
    if (nres < 1 || !lua_istable(L, -nres)) {
        char msg[128];
        snprintf(msg, sizeof msg, "the handler returned %s, expected a table {status=, headers=, body=}",
                 nres < 1 ? "nothing" : lua_typename(L, lua_type(L, -nres)));
        lapi_http_log_failure("http.handler_failed", r, task, msg);
        lapi_http_reply_500(r);
        return;
    }
    int top = lua_gettop(L);
    if (lua_status(L) != LUA_OK || !lua_checkstack(L, 8)) {
        lapi_http_log_failure("http.handler_failed", r, task, "cannot read the handler's result");
        lapi_http_reply_500(r);
        return;
    }
    lua_pushcfunction(L, lapi_http_send_result);
    lua_pushvalue(L, top - nres + 1);
    lua_pushlightuserdata(L, r);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
        const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(no message)";
        lapi_http_log_failure("http.handler_failed", r, task, msg);
        lapi_http_reply_500(r);
    }
    lua_settop(L, top);
}

/* Protected: pushes require(module)[function] for "module.function" (string at 1). */
static int lapi_http_resolve_handler(lua_State *L) {
    const char *name = lua_tostring(L, 1);
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name || !dot[1]) return luaL_error(L, "handler '%s' is not 'module.function'", name);
    lua_getglobal(L, "require");
    lua_pushlstring(L, name, (size_t)(dot - name));
    lua_call(L, 1, 1);
    if (!lua_istable(L, -1)) return luaL_error(L, "handler '%s': the module is not a table", name);
    lua_getfield(L, -1, dot + 1);
    if (!lua_isfunction(L, -1)) return luaL_error(L, "handler '%s' is not a function", name);
    return 1;
}

/* httpd callback: runs the server's handler as its own task. A handler named by string
 * runs in the generation current at the time of the request, so a hot reload changes
 * the code that answers without closing the listener. */
static void lapi_http_on_request(httpd_request *r, void *ud) {
    http_server *s = ud;
    vm_gen *g = s->g;
    if (s->handler_name[0] && vm_current()) g = vm_current();
    lua_State *L = g->L;
    int top = lua_gettop(L);
    char err[256];
    if (!lua_checkstack(L, 4)) {
        lapi_http_log_failure("http.request_dropped", r, "-", "Lua stack exhausted");
        httpd_request_reply(r, 503, "server busy\n", 12);
        return;
    }
    if (s->handler_name[0]) {
        lua_pushcfunction(L, lapi_http_resolve_handler);
        lua_pushstring(L, s->handler_name);
        if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
            lapi_http_log_failure("http.handler_missing", r, "-", lua_tostring(L, -1));
            lua_settop(L, top);
            lapi_http_reply_500(r);
            return;
        }
    } else {
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->handler_ref);
    }
    lua_pushcfunction(L, lapi_http_push_req);
    lua_pushlightuserdata(L, r);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(no message)";
        lapi_http_log_failure("http.request_dropped", r, "-", msg);
        lua_settop(L, top);
        httpd_request_reply(r, 503, "server busy\n", 12);
        return;
    }
    char name[160];
    snprintf(name, sizeof name, "http %s %.120s", httpd_request_method(r), httpd_request_path(r, NULL));
    sched_opts o = {name, s->handler_timeout, 0};
    fox_task *t = sched_spawn(g, L, 1, &o, err, sizeof err);
    if (!t) {
        lua_settop(L, top);
        lapi_http_log_failure("http.request_dropped", r, name, err);
        httpd_request_reply(r, 503, "server busy\n", 12);
        return;
    }
    sched_on_done(t, lapi_http_handler_done, r);
}

static http_server *lapi_http_check_server(lua_State *L, int idx) {
    return luaL_checkudata(L, idx, HTTP_SERVER_MT);
}

/* Stops the server; release_gen 0 only from __gc while the generation is closing. */
static void lapi_http_server_stop(lua_State *L, http_server *s, int release_gen) {
    if (!s->srv) return;
    httpd_close(s->srv);
    s->srv = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, s->handler_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, s->self_ref);
    s->handler_ref = s->self_ref = LUA_NOREF;
    if (release_gen) vm_gen_release(s->g);
}

/* server:close(): stop accepting; requests in flight are still answered. */
static int lapi_http_server_close(lua_State *L) {
    lapi_http_server_stop(L, lapi_http_check_server(L, 1), 1);
    return 0;
}

static int lapi_http_server_gc(lua_State *L) {
    /* Only reachable when the generation itself is closed (the server anchors itself). */
    lapi_http_server_stop(L, lapi_http_check_server(L, 1), 0);
    return 0;
}

static int lapi_http_server_index(lua_State *L) {
    http_server *s = lapi_http_check_server(L, 1);
    const char *key = luaL_checkstring(L, 2);
    if (strcmp(key, "port") == 0) lua_pushinteger(L, s->port);
    else if (strcmp(key, "host") == 0) lua_pushstring(L, s->host);
    else if (strcmp(key, "closed") == 0) lua_pushboolean(L, s->srv == NULL);
    else if (strcmp(key, "close") == 0) lua_pushcfunction(L, lapi_http_server_close);
    else lua_pushnil(L);
    return 1;
}

static int lapi_http_server_tostring(lua_State *L) {
    http_server *s = lapi_http_check_server(L, 1);
    lua_pushfstring(L, "fox.http.server(%s:%d%s)", s->host, s->port, s->srv ? "" : ", closed");
    return 1;
}

/* listen{host=, port=, max_body=, max_header=, timeout=, request_timeout=,
 *        max_connections=, handler_timeout=, handler=}
 *   -> server | nil, err
 * Each request runs handler(req) in its own task; the server and its generation stay
 * alive until server:close(). handler may be a "module.function" name instead, looked
 * up in the current generation for every request (so it follows hot reloads). */
static int lapi_http_listen(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    httpd_opts o;
    memset(&o, 0, sizeof o);
    o.host = lapi_http_opt_string(L, 1, "host", NULL);
    o.port = (int)lapi_http_opt_integer(L, 1, "port", 0, 0, 65535);
    o.max_body = (size_t)lapi_http_opt_integer(L, 1, "max_body", (lua_Integer)HTTPD_DEFAULT_MAX_BODY,
                                                1, (lua_Integer)1 << 40);
    o.max_header = (size_t)lapi_http_opt_integer(L, 1, "max_header",
                                                 (lua_Integer)HTTPD_DEFAULT_MAX_HEADER, 256,
                                                 (lua_Integer)1 << 30);
    o.timeout = lapi_http_opt_positive(L, 1, "timeout", HTTPD_DEFAULT_TIMEOUT);
    o.request_timeout = lapi_http_opt_positive(L, 1, "request_timeout", HTTPD_DEFAULT_REQUEST_TIMEOUT);
    o.max_connections = (size_t)lapi_http_opt_integer(L, 1, "max_connections", 0, 1, 1000000);
    double handler_timeout = lapi_http_opt_positive(L, 1, "handler_timeout",
                                                    HTTP_DEFAULT_HANDLER_TIMEOUT);
    lua_getfield(L, 1, "handler");
    int by_name = lua_type(L, -1) == LUA_TSTRING;
    if (!lua_isfunction(L, -1) && !by_name)
        return luaL_error(L, "fox.http.listen: handler must be a function or a 'module.function' name");
    if (by_name && (lua_rawlen(L, -1) >= sizeof(((http_server *)0)->handler_name) ||
                    !strchr(lua_tostring(L, -1), '.')))
        return luaL_error(L, "fox.http.listen: handler name must be 'module.function'");
    int handler = lua_gettop(L);
    vm_gen *g = vm_gen_of(L);
    if (!g) return luaL_error(L, "fox.http.listen: not inside a fox generation");

    http_server *s = lua_newuserdatauv(L, sizeof *s, 0);
    memset(s, 0, sizeof *s);
    s->handler_ref = s->self_ref = LUA_NOREF;
    s->g = g;
    s->handler_timeout = handler_timeout;
    if (by_name) snprintf(s->handler_name, sizeof s->handler_name, "%s", lua_tostring(L, handler));
    luaL_setmetatable(L, HTTP_SERVER_MT);
    int ud = lua_gettop(L);
    lua_pushvalue(L, handler);
    s->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, ud);
    s->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    char err[512];
    httpd_server *srv = httpd_listen(&o, lapi_http_on_request, s, err, sizeof err);
    if (!srv) {
        luaL_unref(L, LUA_REGISTRYINDEX, s->handler_ref);
        luaL_unref(L, LUA_REGISTRYINDEX, s->self_ref);
        s->handler_ref = s->self_ref = LUA_NOREF;
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    s->srv = srv;
    s->port = httpd_server_port(srv);
    snprintf(s->host, sizeof s->host, "%s", httpd_server_host(srv));
    vm_gen_retain(g);
    lua_settop(L, ud);
    return 1;
}

/* ---- encoding, stats ----------------------------------------------------------- */

/* encode(s) -> s percent-encoded (RFC 3986 unreserved characters kept). */
static int lapi_http_encode(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, len * 3 + 1);
    luaL_pushresultsize(&b, httpc_percent_encode(s, len, out));
    return 1;
}

/* decode(s [, plus_as_space]) -> s with %XX escapes decoded. */
static int lapi_http_decode(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    int plus = lua_toboolean(L, 2);
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, len + 1);
    luaL_pushresultsize(&b, httpc_percent_decode(s, len, out, plus));
    return 1;
}

/* stats() -> {transfers=, queued=, active=, requests=, connections=, connections_accepted=,
 *   connections_rejected=, requests_timed_out=, listener_replies={[status]=n}}: live client
 *   transfers (of which queued for a slot and attached to libcurl), server requests and
 *   connections, and the listeners' counters. */
static int lapi_http_stats(lua_State *L) {
    const httpd_stats *st = httpd_get_stats();
    lua_createtable(L, 0, 9);
    lua_pushinteger(L, (lua_Integer)httpc_live_transfers());
    lua_setfield(L, -2, "transfers");
    lua_pushinteger(L, (lua_Integer)httpc_queued_transfers());
    lua_setfield(L, -2, "queued");
    lua_pushinteger(L, (lua_Integer)httpc_active_transfers());
    lua_setfield(L, -2, "active");
    lua_pushinteger(L, (lua_Integer)httpd_live_requests());
    lua_setfield(L, -2, "requests");
    lua_pushinteger(L, (lua_Integer)st->connections_open);
    lua_setfield(L, -2, "connections");
    lua_pushinteger(L, (lua_Integer)st->connections_accepted);
    lua_setfield(L, -2, "connections_accepted");
    lua_pushinteger(L, (lua_Integer)st->connections_rejected);
    lua_setfield(L, -2, "connections_rejected");
    lua_pushinteger(L, (lua_Integer)st->requests_timed_out);
    lua_setfield(L, -2, "requests_timed_out");
    lua_newtable(L);
    for (int status = 100; status < 600; status++) {
        if (!st->listener_replies[status]) continue;
        lua_pushinteger(L, (lua_Integer)st->listener_replies[status]);
        lua_rawseti(L, -2, status);
    }
    lua_setfield(L, -2, "listener_replies");
    return 1;
}

int luaopen_fox_http_core(lua_State *L) {
    static const luaL_Reg server_meta[] = {
        {"__index", lapi_http_server_index},
        {"__gc", lapi_http_server_gc},
        {"__close", lapi_http_server_close},
        {"__tostring", lapi_http_server_tostring},
        {NULL, NULL},
    };
    static const luaL_Reg funcs[] = {
        {"request", lapi_http_request},
        {"listen", lapi_http_listen},
        {"encode", lapi_http_encode},
        {"decode", lapi_http_decode},
        {"stats", lapi_http_stats},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, HTTP_SERVER_MT)) luaL_setfuncs(L, server_meta, 0);
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
