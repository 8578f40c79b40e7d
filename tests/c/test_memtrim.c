/* memtrim: when the daemon trims, and that a trim gives freed heap back to the kernel. */
#include <stdlib.h>
#include <string.h>
#include <valgrind/valgrind.h>

#include "fox/memtrim.h"
#include "harness.h"
#include "loop_helpers.h"

/* Under ASan or valgrind their allocator replaces glibc's: malloc_trim has nothing to
 * give back, so only the decision and the watch are checked there. */
#if defined(__SANITIZE_ADDRESS__)
#define MEMTRIM_GLIBC_MALLOC 0
#else
#define MEMTRIM_GLIBC_MALLOC (!RUNNING_ON_VALGRIND)
#endif

enum { BLOCKS = 1024, BLOCK = 32768 }; /* 32 MiB in blocks below the mmap threshold: on the heap */
static char *blocks[BLOCKS];

/* Fills the heap, then frees every other block: 16 MiB free in holes that cannot
 * coalesce, so glibc can neither shrink the heap's top nor reuse them as one piece. */
static void fragment_heap(void) {
    for (int i = 0; i < BLOCKS; i++) {
        blocks[i] = malloc(BLOCK);
        if (blocks[i]) memset(blocks[i], 0x5a, BLOCK);
    }
    for (int i = 0; i < BLOCKS; i += 2) {
        free(blocks[i]);
        blocks[i] = NULL;
    }
}

static void free_blocks(void) {
    for (int i = 0; i < BLOCKS; i++) {
        free(blocks[i]);
        blocks[i] = NULL;
    }
}

TEST(trims_only_when_quiet_twice_and_grown) {
    size_t base = (size_t)20 << 20;
    CHECK(!memtrim_due(0, base + MEMTRIM_GROWTH * 4, base));
    CHECK(!memtrim_due(1, base + MEMTRIM_GROWTH * 4, base));
    CHECK(memtrim_due(2, base + MEMTRIM_GROWTH + 1, base));
    CHECK(memtrim_due(5, base + MEMTRIM_GROWTH * 4, base));
    CHECK(!memtrim_due(2, base + MEMTRIM_GROWTH, base));
    CHECK(!memtrim_due(9, base / 2, base));
}

TEST(a_trim_returns_freed_heap_to_the_kernel) {
    fragment_heap();
    size_t before = memtrim_rss();
    CHECK(before > 0);
    size_t released = memtrim_now();
    size_t after = memtrim_rss();
    if (MEMTRIM_GLIBC_MALLOC) {
        CHECK(released >= (size_t)8 << 20); /* of the 16 MiB of holes */
        CHECK(after + ((size_t)8 << 20) <= before);
    }
    free_blocks();
}

TEST(the_watch_trims_a_quiet_process_that_grew) {
    char err[128];
    unsigned long trims = memtrim_count();
    CHECK_EQ_INT(memtrim_watch(err, sizeof err), 0);
    fragment_heap(); /* grown by 32 MiB since the watch started, half of it free */
    double end = loop_now() + 4 * MEMTRIM_INTERVAL + 5;
    while (memtrim_count() == trims && loop_now() < end) run_for(0.1);
    CHECK_EQ_INT(memtrim_count(), trims + 1);
    /* Quiet and no longer growing: no further trim. */
    run_for(3 * MEMTRIM_INTERVAL);
    CHECK_EQ_INT(memtrim_count(), trims + 1);
    memtrim_stop();
    free_blocks();
}

int main(void) {
    char err[256];
    if (loop_init(err, sizeof err) != 0) {
        fprintf(stderr, "loop_init: %s\n", err);
        return 2;
    }
    int rc = RUN_TESTS();
    loop_free();
    return rc;
}
