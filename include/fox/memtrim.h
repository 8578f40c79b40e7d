#ifndef FOX_MEMTRIM_H
#define FOX_MEMTRIM_H
/* Giving memory back after a burst. glibc keeps what a burst freed (hundreds of MiB
 * after a thousand investigations) in its free lists, so RSS stays at the peak. While
 * the daemon serves, a check every MEMTRIM_INTERVAL seconds sees whether it is quiet
 * (no HTTP transfer and no served request alive, at this check and the one before)
 * and RSS has grown by MEMTRIM_GROWTH since the last trim; if so it collects every Lua
 * generation's garbage and calls malloc_trim(0), which returns free pages to the
 * kernel. Memory still in use stays; a trim that releases little resets the baseline,
 * so a steady daemon is not trimmed again and again. */
#include <stddef.h>

#define MEMTRIM_INTERVAL 2.0
#define MEMTRIM_GROWTH ((size_t)8 << 20)

/* Starts the periodic check on loop_base() (a persistent timer: call it only for a
 * process whose loop runs until stopped, i.e. `fox serve`). 0 / -1 with err. */
int memtrim_watch(char *err, size_t errlen);
/* Stops the check. Safe when not started. */
void memtrim_stop(void);
/* Collects every generation's garbage and trims the malloc heap now. Returns the
 * resident bytes released (0 when RSS did not drop). Never call it from inside Lua. */
size_t memtrim_now(void);
/* The decision: trim when quiet for two checks in a row and rss exceeds the RSS after
 * the last trim by more than MEMTRIM_GROWTH. */
int memtrim_due(int quiet_checks, size_t rss, size_t rss_after_last_trim);
/* Resident set size of this process in bytes (0 if unknown). */
size_t memtrim_rss(void);
/* Trims done since the process started. */
unsigned long memtrim_count(void);
#endif
