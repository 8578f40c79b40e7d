/* Replays the fuzz corpora kept in tests/fuzz/<target>/ through the fuzz targets'
 * checks, without libFuzzer: so every `make test` (and `make asan`, under ASan and
 * UBSan, and the valgrind subset) re-checks every input the fuzzers ever kept,
 * crashers that were fixed included. A broken property aborts with its message. */
#define FOX_FUZZ_REPLAY 1

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>

#define LLVMFuzzerTestOneInput fuzz_webhook_one
#include "../fuzz/fuzz_webhook.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_json_one
#include "../fuzz/fuzz_json.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_http_one
#include "../fuzz/fuzz_http.c"
#undef LLVMFuzzerTestOneInput

#include "harness.h"

/* Runs every file of dir through one; returns how many there were (-1: no dir). */
static int replay_dir(const char *dir, int (*one)(const uint8_t *, size_t)) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        size_t cap = 1 << 16, len = 0;
        uint8_t *buf = malloc(cap);
        size_t got;
        while (buf && (got = fread(buf + len, 1, cap - len, f)) > 0) {
            len += got;
            if (len == cap) {
                uint8_t *nb = realloc(buf, cap *= 2);
                if (!nb) free(buf);
                buf = nb;
            }
        }
        fclose(f);
        if (!buf) continue;
        one(buf, len);
        free(buf);
        n++;
    }
    closedir(d);
    return n;
}

TEST(webhook_corpus) { CHECK(replay_dir("tests/fuzz/webhook", fuzz_webhook_one) > 0); }
TEST(json_corpus) { CHECK(replay_dir("tests/fuzz/json", fuzz_json_one) > 0); }
TEST(http_corpus) { CHECK(replay_dir("tests/fuzz/http", fuzz_http_one) > 0); }

int main(void) {
    return RUN_TESTS();
}
