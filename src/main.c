/* fox: the command line. `run`, `repl`, `check`, `version` and `help` are here; every
 * other subcommand is the Lua module fox.cli.NAME, run as a task. */
#include <dirent.h>
#include <lauxlib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fox/log.h"
#include "fox/loop.h"
#include "fox/memtrim.h"
#include "fox/repl.h"
#include "fox/sched.h"
#include "fox/vm.h"

static const char *main_usage =
    "usage: fox <command> [options]\n"
    "\n"
    "commands:\n"
    "  run FILE [ARGS...]   run a Lua script as a task (arg holds ARGS)\n"
    "  repl                 interactive Lua prompt (reads chunks from stdin when piped)\n"
    "  check                load every script and report syntax and load errors\n"
    "  serve                run the daemon (webhooks, poller, investigations)\n"
    "  tools                list the incident tools and their input schemas\n"
    "  tool NAME [--param value ...]   run one tool and print its JSON result\n"
    "  investigate INC-123  run the playbook now (--dry-run prints, posts nothing)\n"
    "  replay --since 30d   dry-run the playbook over past incidents (try a change first)\n"
    "  doctor               check keys, tokens and connectivity\n"
    "  mcp                  serve the tools over the Model Context Protocol (stdio)\n"
    "  version              print the version\n"
    "  help                 this text\n"
    "\n"
    "Every command takes --help. Environment: FOX_SCRIPT_PATH (scripts directory),\n"
    "FOX_MEMORY_LIMIT (per generation, e.g. 256M), FOX_TASK_CPU_LIMIT (seconds a task may\n"
    "run without yielding), FOX_LOG_LEVEL, FOX_LOG_FORMAT (logfmt|json).\n";

static int main_exit_status;

/* Prints "fox: <msg>" on stderr with registered secrets scrubbed: a script or command
 * that fails with a secret in its error must not show it (DESIGN: secrets never reach
 * errors or crash output). */
static void main_print_error(const char *msg) {
    if (!msg) msg = "(error)";
    char *clean = log_redact_string(msg, strlen(msg), NULL);
    fprintf(stderr, "fox: %s\n", clean ? clean : "(error; out of memory while printing it)");
    free(clean);
}

static void main_usage_error(const char *fmt, const char *what) {
    fprintf(stderr, "fox: ");
    fprintf(stderr, fmt, what);
    fprintf(stderr, "\n\n%s", main_usage);
}

static vm_gen *main_start(void) {
    char err[1024], dir[4096];
    if (loop_init(err, sizeof err) < 0 || sched_init(err, sizeof err) < 0) {
        fprintf(stderr, "fox: %s\n", err);
        exit(1);
    }
    vm_opts o = {.script_dir = vm_default_script_dir(dir, sizeof dir)};
    vm_gen *g = vm_gen_new(&o, err, sizeof err);
    if (!g) {
        fprintf(stderr, "fox: cannot start the Lua runtime (scripts in %s): %s\n", dir, err);
        exit(1);
    }
    vm_set_current(g);
    return g;
}

static void main_finish(vm_gen *g) {
    (void)g;
    fflush(stdout);
    fflush(stderr);
    exit(main_exit_status);
}

/* The main task of `fox run` or a Lua subcommand: on error print it and stop with 1;
 * on success an integer result is the exit status. The loop then runs on until the
 * script's servers and spawned tasks are done. */
static void main_task_done(fox_task *t, int ok, lua_State *L, int nres, void *ud) {
    int stop_on_success = ud != NULL;
    if (!ok) {
        const char *tb = sched_task_traceback(t);
        main_print_error(tb ? tb : lua_tostring(L, -1));
        main_exit_status = 1;
        loop_stop();
        return;
    }
    if (nres > 0 && lua_isinteger(L, -nres)) main_exit_status = (int)lua_tointeger(L, -nres);
    if (stop_on_success) loop_stop();
}

static int main_cmd_run(int argc, char **argv) {
    if (argc < 1 || strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
        printf("usage: fox run FILE [ARGS...]\n\nRuns FILE as a task. The global `arg` holds "
               "ARGS (arg[0] is FILE) and the chunk receives them as `...`.\nExit status 1 "
               "with the error and a traceback if the script fails.\n");
        return argc < 1 ? 2 : 0;
    }
    vm_gen *g = main_start();
    lua_State *L = g->L;
    lua_createtable(L, argc, 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);
    }
    lua_setglobal(L, "arg");
    const char *file = strcmp(argv[0], "-") == 0 ? NULL : argv[0];
    if (luaL_loadfile(L, file) != LUA_OK) {
        main_print_error(lua_tostring(L, -1));
        return 1;
    }
    for (int i = 1; i < argc; i++) lua_pushstring(L, argv[i]);
    char err[256];
    /* The script in the foreground (Ctrl-C stops it) may compute for longer without
     * yielding than the tasks it spawns; FOX_TASK_CPU_LIMIT still overrides. */
    sched_opts o = {.name = argv[0], .cpu_limit = getenv("FOX_TASK_CPU_LIMIT") ? 0 : 30};
    fox_task *t = sched_spawn(g, L, argc - 1, &o, err, sizeof err);
    if (!t) {
        fprintf(stderr, "fox: %s\n", err);
        return 1;
    }
    sched_on_done(t, main_task_done, NULL);
    loop_run();
    main_finish(g);
    return main_exit_status;
}

/* Runs require("fox.cli.NAME")(args) as a task; its integer result is the exit status. */
static int main_cmd_lua(const char *name, int argc, char **argv) {
    vm_gen *g = main_start();
    lua_State *L = g->L;
    char module[128];
    snprintf(module, sizeof module, "fox/cli/%s.lua", name);
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", g->script_dir, module);
    struct stat st;
    if (strchr(name, '/') || strchr(name, '.') || stat(path, &st) != 0) {
        main_usage_error("unknown command '%s'", name);
        return 2;
    }
    lua_getglobal(L, "require");
    lua_pushfstring(L, "fox.cli.%s", name);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_isfunction(L, -1)) {
        lua_pushfstring(L, "cannot load command '%s': %s", name,
                        lua_isstring(L, -1) ? lua_tostring(L, -1) : "the module must return a function");
        main_print_error(lua_tostring(L, -1));
        return 1;
    }
    lua_createtable(L, argc, 0);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i + 1);
    }
    char err[256];
    sched_opts o = {.name = name, .cpu_limit = 60};
    fox_task *t = sched_spawn(g, L, 1, &o, err, sizeof err);
    if (!t) {
        fprintf(stderr, "fox: %s\n", err);
        return 1;
    }
    sched_on_done(t, main_task_done, (void *)1);
    /* The daemon gives memory back after bursts (its loop runs until stopped, so the
     * periodic check cannot keep a finished command alive). */
    if (strcmp(name, "serve") == 0 && memtrim_watch(err, sizeof err) != 0)
        fprintf(stderr, "fox: %s\n", err);
    loop_run();
    main_finish(g);
    return main_exit_status;
}

/* Loads (compiles) every .lua under dir; reports "file:line: message" per failure. */
static int main_check_dir(lua_State *L, const char *dir, int *files) {
    int failures = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            failures += main_check_dir(L, path, files);
            continue;
        }
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".lua") != 0) continue;
        (*files)++;
        if (luaL_loadfile(L, path) != LUA_OK) {
            fprintf(stderr, "%s\n", lua_tostring(L, -1));
            failures++;
        }
        lua_pop(L, 1);
    }
    closedir(d);
    return failures;
}

static int main_cmd_check(int argc, char **argv) {
    if (argc > 0 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
        printf("usage: fox check\n\nCompiles every script under the script path, then loads "
               "(requires) each module,\nand reports syntax and load errors as file:line: "
               "message. Exit 1 on any error.\n");
        return 0;
    }
    if (argc > 0) {
        main_usage_error("check: unknown option '%s'", argv[0]);
        return 2;
    }
    vm_gen *g = main_start();
    lua_State *L = g->L;
    int files = 0;
    int failures = main_check_dir(L, g->script_dir, &files);
    if (failures == 0) {
        /* Loading runs each module's top level (no I/O by convention). */
        lua_getglobal(L, "require");
        lua_pushstring(L, "fox.check");
        if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_isfunction(L, -1)) {
            lua_pushstring(L, g->script_dir);
            if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
                fprintf(stderr, "%s\n", lua_tostring(L, -1));
                failures++;
            } else {
                failures += (int)lua_tointeger(L, -1);
            }
        } else {
            fprintf(stderr, "%s\n", lua_tostring(L, -1));
            failures++;
        }
        lua_settop(L, 0);
    }
    if (failures) {
        fprintf(stderr, "fox check: %d error%s in %s\n", failures, failures == 1 ? "" : "s",
                g->script_dir);
        return 1;
    }
    printf("fox check: %d scripts ok in %s\n", files, g->script_dir);
    return 0;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) {
        fputs(main_usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        fputs(main_usage, stdout);
        return 0;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        if (argc > 2 && strcmp(argv[2], "--help") == 0) {
            printf("usage: fox version\n\nPrints fox's version and the Lua it embeds.\n");
            return 0;
        }
        printf("fox %s (%s)\n", FOX_VERSION, LUA_RELEASE);
        return 0;
    }
    if (strcmp(cmd, "run") == 0) return main_cmd_run(argc - 2, argv + 2);
    if (strcmp(cmd, "check") == 0) return main_cmd_check(argc - 2, argv + 2);
    if (strcmp(cmd, "repl") == 0) {
        if (argc > 2 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
            fputs(repl_usage, stdout);
            return 0;
        }
        if (argc > 2) {
            main_usage_error("repl: unknown option '%s'", argv[2]);
            return 2;
        }
        vm_gen *g = main_start();
        main_exit_status = repl_run(g);
        main_finish(g);
        return main_exit_status;
    }
    if (cmd[0] == '-') {
        main_usage_error("unknown option '%s'", cmd);
        return 2;
    }
    return main_cmd_lua(cmd, argc - 2, argv + 2);
}
