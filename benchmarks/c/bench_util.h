/*
 * bench_util.h — shared helpers of the benchmark programs (timing, argument parsing, failure exit).
 * Every program prints its result as one line of key=value pairs that benchmarks/run.py parses.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include <sys/resource.h>

static inline double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wall-clock milliseconds: the time base callers pass as now_ms. */
/* CPU time (user + system) of the whole process so far, in seconds. */
static inline double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static inline int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline long arg_long(const char *s, const char *what)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (!s[0] || *end || v < 0) {
        fprintf(stderr, "bad %s: %s\n", what, s);
        exit(2);
    }
    return v;
}

#define DIE(...) do { fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)

/* Runs fn on `threads` threads (1..256), the t-th given args + t * size; each waits on *start (a barrier for
 * threads + 1) when ready. Returns the seconds from the barrier's release to the last thread's end. */
static inline double timed_threads(long threads, void *(*fn)(void *), void *args, size_t size,
                                   pthread_barrier_t *start)
{
    pthread_t tid[256];
    if (threads < 1 || threads > 256) DIE("threads must be 1..256");
    for (long t = 0; t < threads; t++)
        if (pthread_create(&tid[t], NULL, fn, (char *)args + (size_t)t * size) != 0) DIE("pthread_create");
    pthread_barrier_wait(start);
    double t0 = mono_s();
    for (long t = 0; t < threads; t++) pthread_join(tid[t], NULL);
    return mono_s() - t0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static inline double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#endif
