#ifndef FOX_TEST_HARNESS_H
#define FOX_TEST_HARNESS_H
/* A tiny unit-test harness: TEST(name) defines a test; RUN_TESTS() in main runs all. */
#include <stdio.h>
#include <string.h>

typedef void (*harness_fn)(void);
static struct { const char *name; harness_fn fn; } harness_tests[256];
static int harness_count, harness_current_failed;

#define TEST(tname)                                                                   \
    static void test_##tname(void);                                                   \
    __attribute__((constructor)) static void register_##tname(void) {                 \
        harness_tests[harness_count].name = #tname;                                   \
        harness_tests[harness_count++].fn = test_##tname;                             \
    }                                                                                 \
    static void test_##tname(void)

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "  FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);         \
            harness_current_failed = 1;                                               \
        }                                                                             \
    } while (0)
#define CHECK_EQ_INT(a, b)                                                            \
    do {                                                                              \
        long long va_ = (long long)(a), vb_ = (long long)(b);                         \
        if (va_ != vb_) {                                                             \
            fprintf(stderr, "  FAIL %s:%d: %s == %lld, expected %lld\n", __FILE__,    \
                    __LINE__, #a, va_, vb_);                                          \
            harness_current_failed = 1;                                               \
        }                                                                             \
    } while (0)
#define CHECK_EQ_STR(a, b)                                                            \
    do {                                                                              \
        const char *sa_ = (a), *sb_ = (b);                                            \
        if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0) {                                  \
            fprintf(stderr, "  FAIL %s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__,\
                    __LINE__, #a, sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");        \
            harness_current_failed = 1;                                               \
        }                                                                             \
    } while (0)

static inline int harness_run(const char *file) {
    int passed = 0, failed = 0;
    for (int i = 0; i < harness_count; i++) {
        harness_current_failed = 0;
        harness_tests[i].fn();
        if (harness_current_failed) {
            failed++;
            fprintf(stderr, "not ok %s\n", harness_tests[i].name);
        } else {
            passed++;
        }
    }
    printf("c %s: %d passed, %d failed\n", file, passed, failed);
    return failed ? 1 : 0;
}
#define RUN_TESTS() harness_run(__FILE__)
#endif
