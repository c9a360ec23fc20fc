/*
 * testutil.h — a tiny assertion helper for the C integration tests.
 *
 * Each CHECK prints "ok   <what>" or "FAIL <file>:<line>: <what> ..." and counts failures; the test's main()
 * ends with `return test_summary("name");`, which prints a total and returns non-zero if anything failed.
 * Checks may run on many threads at once: the counters are atomic and every line is printed with one call.
 */
#ifndef HAMMER_TESTUTIL_H
#define HAMMER_TESTUTIL_H

/* Include this header first: it asks for the POSIX calls (fork, pthreads, clock_gettime) under -std=c11. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hammer.h"

static atomic_int test_checks;
static atomic_int test_failures;

/* Records one check; `quiet` suppresses the "ok" line (for checks made thousands of times). */
static inline int test_check(int cond, int quiet, const char *file, int line, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    atomic_fetch_add(&test_checks, 1);
    if (!cond) {
        atomic_fetch_add(&test_failures, 1);
        fprintf(stdout, "FAIL %s:%d: %s (last_error: \"%s\")\n", file, line, what, hammer_last_error());
        fflush(stdout);
    } else if (!quiet) {
        fprintf(stdout, "ok   %s\n", what);
        fflush(stdout);
    }
    return cond;
}

/* CHECK(cond, "printf-style description", ...): prints ok/FAIL and evaluates to cond. */
#define CHECK(cond, ...) test_check(!!(cond), 0, __FILE__, __LINE__, __VA_ARGS__)
/* CHECK_QUIET: the same, but prints only failures. */
#define CHECK_QUIET(cond, ...) test_check(!!(cond), 1, __FILE__, __LINE__, __VA_ARGS__)

/* CHECK_STATUS(call, expected): runs a hammer_* call and checks the status it returned. */
#define CHECK_STATUS(call, expected)                                                                  \
    do {                                                                                              \
        int check_rc_ = (call);                                                                       \
        test_check(check_rc_ == (expected), 0, __FILE__, __LINE__, "%s -> %d (%s), want %d", #call, \
                   check_rc_, hammer_strerror(check_rc_), (int)(expected));                           \
    } while (0)

/* CHECK_EQ_I64(a, b): two integers are equal. */
#define CHECK_EQ_I64(a, b)                                                                             \
    do {                                                                                               \
        int64_t check_a_ = (int64_t)(a), check_b_ = (int64_t)(b);                                      \
        test_check(check_a_ == check_b_, 0, __FILE__, __LINE__, "%s == %s (%" PRId64 " vs %" PRId64 ")", \
                   #a, #b, check_a_, check_b_);                                                        \
    } while (0)

/* 1 if `haystack` contains `needle`, ignoring ASCII case. */
static inline int test_contains_ci(const char *haystack, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = haystack; *p; p++) {
        size_t i = 0;
        while (i < n && p[i] && (p[i] | 0x20) == (needle[i] | 0x20)) i++;
        if (i == n) return 1;
    }
    return n == 0;
}

/* The URL from argv[1]; exits 2 with a usage line when it is missing. */
static inline const char *test_url(int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '\0') {
        fprintf(stderr, "usage: %s REDIS_URL\n", argv[0]);
        return NULL;
    }
    return argv[1];
}

/* An id unique to this run and process, so tests sharing one Redis never collide: "<name>:<pid>:<ns>". */
static inline void test_unique_id(char *buf, size_t size, const char *name)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(buf, size, "ctest:%s:%ld:%ld%09ld", name, (long)getpid(), (long)ts.tv_sec, (long)ts.tv_nsec);
}

/* Prints the total and returns the exit code for main(). */
static inline int test_summary(const char *name)
{
    int failures = atomic_load(&test_failures);
    printf("%s: %d checks, %d failed\n", name, atomic_load(&test_checks), failures);
    if (failures) printf("FAIL %s\n", name);
    return failures ? 1 : 0;
}

#endif /* HAMMER_TESTUTIL_H */
