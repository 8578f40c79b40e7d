/* The RSS floor of fox's dependencies, for the memory benchmark: a program linked with
 * exactly fox's libraries (pkg-config lua5.4 libevent libcurl libcrypto sqlite3 libedit)
 * that does nothing but report VmRSS at the start of main (the dynamic loader has mapped
 * and relocated every library) and after curl_global_init (OpenSSL and the rest of
 * libcurl's dependency chain initialised), as fox does at start-up; then what one
 * transfer waiting in a curl multi handle costs (2000 easy handles with a URL and a
 * small POST body added to a multi limited to 256 connections, as fox's httpc does,
 * before and after one curl_multi_perform towards a closed port).
 *   cc -O2 -o rss_floor bench/rss_floor.c $(pkg-config --libs ...)   (bench/run.sh) */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A "Field:   N kB" line of a /proc/self file, in KiB (-1 when absent). */
static long proc_kib(const char *file, const char *field) {
    FILE *f = fopen(file, "r");
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0) v = atol(line + n);
    fclose(f);
    return v;
}

static long rss_kib(void) { return proc_kib("/proc/self/status", "VmRSS:"); }

static size_t discard(char *p, size_t size, size_t n, void *ud) {
    (void)p;
    (void)ud;
    return size * n;
}

int main(void) {
    enum { N = 2000 };
    long start = rss_kib();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    long after = rss_kib();
    /* the anonymous part (heaps, stacks, libraries' writable data): what a process
     * owns, unlike file-backed code pages shared with every process using them */
    long anon = proc_kib("/proc/self/smaps_rollup", "Anonymous:");
    printf("floor_start_kib=%ld\nfloor_curl_kib=%ld\nfloor_curl_anon_kib=%ld\n", start, after, anon);
    CURLM *multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 256L);
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, 32L);
    for (int i = 0; i < N; i++) {
        CURL *e = curl_easy_init();
        curl_easy_setopt(e, CURLOPT_URL, "http://127.0.0.1:9/api/v1/query_range");
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, "query=up&start=1&end=2&step=15");
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
        curl_multi_add_handle(multi, e);
    }
    long added = rss_kib();
    int running = 0;
    curl_multi_perform(multi, &running);
    long performed = rss_kib();
    printf("floor_transfer_added_bytes=%ld\nfloor_transfer_started_bytes=%ld\n",
           (added - after) * 1024 / N, (performed - after) * 1024 / N);
    return 0;
}
