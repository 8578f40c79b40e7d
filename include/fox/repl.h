#ifndef FOX_REPL_H
#define FOX_REPL_H
#include "fox/vm.h"

extern const char *repl_usage;
/* Runs the REPL on generation g until end of input. On a terminal: line editing,
 * history (~/.fox_history), multi-line chunks, Ctrl-C interrupts the running chunk.
 * Otherwise reads chunks from stdin and prints each one's results. Every chunk runs as
 * a task, so HTTP calls and sleeps work. Returns the exit status. */
int repl_run(vm_gen *g);
#endif
