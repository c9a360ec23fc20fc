/*
 * bench_local.c — the cost of a decision made in the process: fallback=local while Redis is down, or memory://.
 * A sliding window's log is filled with SIZE hits at distinct times (untimed), then M more hits are timed, each
 * one ms later than the one before in a window of SIZE ms, so that the log holds SIZE entries throughout.
 *
 *   bench_local URL SIZES M THREADS
 *
 * THREADS: a comma-separated list of thread counts (1: none).
 *
 * SIZES: comma-separated log sizes. The M timed hits go in 10 blocks, and the median block's time per decision is
 * printed (a block that a busy machine preempted does not count). With THREADS > 1, each size is also run on THREADS
 * threads at once, each on an id of its own, and the decisions/s of all of them are printed beside the one-thread
 * figure. When URL is not
 * memory://, the program opens the handle, prints "ready" and waits for a line on stdin (the driver stops Redis
 * meanwhile), so that every decision is the fallback's. Prints one line of key=value pairs per size.
 */
#include "bench_util.h"

#include <inttypes.h>

#include "hammer.h"

struct job {
    hammer_t *h;
    char id[64];
    int64_t size, m, t0;
    pthread_barrier_t *start;   /* threads: every log filled before any is timed */
    double fill_s, run_s, start_s, end_s;
    double block_us[10];   /* per decision, each tenth of the timed hits */
};


static void hit_at(hammer_t *h, const char *id, const hammer_limit *lim, int64_t now)
{
    hammer_decision d;
    int st = hammer_hit_at(h, id, lim, 1, now, &d);
    if (st != HAMMER_OK) DIE("hammer_hit_at: %s: %s", hammer_strerror(st), hammer_last_error());
    if (!d.allowed) DIE("hammer_hit_at: denied at count %" PRId64, d.count);
}

static void *run(void *arg)
{
    struct job *j = arg;
    /* One hit a ms in a window of `size` ms: each timed hit drops the oldest entry, so the log stays at `size`. */
    hammer_limit lim = {HAMMER_SLIDING_WINDOW, j->size + 10, j->size, 0, {0, 0}};
    double a = mono_s();
    for (int64_t i = 0; i < j->size; i++) hit_at(j->h, j->id, &lim, j->t0 + i);
    if (j->start) pthread_barrier_wait(j->start);
    double b = j->start_s = mono_s();
    int64_t per = j->m / 10 > 0 ? j->m / 10 : 1;
    for (int k = 0; k < 10; k++) {
        double kb = mono_s();
        for (int64_t i = k * per; i < (k + 1) * per && i < j->m; i++) hit_at(j->h, j->id, &lim, j->t0 + j->size + i);
        j->block_us[k] = (mono_s() - kb) * 1e6 / (double)per;
    }
    j->end_s = mono_s();
    j->fill_s = b - a;
    j->run_s = j->end_s - b;
    return NULL;
}

/* The median of a job's blocks: the time per decision while it was running, whatever else ran between blocks. */
static double median_block(struct job *j)
{
    qsort(j->block_us, 10, sizeof j->block_us[0], cmp_double);
    return (j->block_us[4] + j->block_us[5]) / 2;
}

/* THREADS jobs at once; returns the seconds from the barrier (all logs filled) to the last thread's end, and in
 * *block_us the median over the threads of their median block (us per decision): it grows when the threads wait
 * for each other (a shared lock), not when the machine has fewer cores than threads. */
static double run_threads(hammer_t *h, long threads, int64_t size, int64_t m, const char *tag, int64_t t0,
                          double *block_us)
{
    struct job jobs[64];
    pthread_t tid[64];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    for (long t = 0; t < threads; t++) {
        jobs[t] = (struct job){.h = h, .size = size, .m = m, .t0 = t0, .start = &start};
        snprintf(jobs[t].id, sizeof jobs[t].id, "bench_local:%s:%" PRId64 ":%ld", tag, size, t);
    }
    for (long t = 0; t < threads; t++)
        if (pthread_create(&tid[t], NULL, run, &jobs[t]) != 0) DIE("pthread_create");
    pthread_barrier_wait(&start);
    for (long t = 0; t < threads; t++) pthread_join(tid[t], NULL);
    double medians[64];
    for (long t = 0; t < threads; t++) medians[t] = median_block(&jobs[t]);
    qsort(medians, (size_t)threads, sizeof medians[0], cmp_double);
    *block_us = threads % 2 ? medians[threads / 2] : (medians[threads / 2 - 1] + medians[threads / 2]) / 2;
    double go = jobs[0].start_s, last = jobs[0].end_s;
    for (long t = 1; t < threads; t++) {
        if (jobs[t].start_s < go) go = jobs[t].start_s;
        if (jobs[t].end_s > last) last = jobs[t].end_s;
    }
    pthread_barrier_destroy(&start);
    return last - go;
}

int main(int argc, char **argv)
{
    if (argc != 5) DIE("usage: bench_local URL SIZES M THREADS");
    const char *url = argv[1];
    int64_t m = arg_long(argv[3], "M");
    long counts[8], nthreads = 0;
    char *tl = strdup(argv[4]);
    for (char *t = strtok(tl, ","); t && nthreads < 8; t = strtok(NULL, ",")) {
        counts[nthreads] = arg_long(t, "THREADS");
        if (counts[nthreads] < 1 || counts[nthreads] > 64) DIE("THREADS must be 1..64");
        nthreads++;
    }
    free(tl);
    hammer_t *h = NULL;
    int st = hammer_open(url, &h);
    if (st != HAMMER_OK) DIE("hammer_open: %s: %s", hammer_strerror(st), hammer_last_error());
    if (strncmp(url, "memory://", 9) != 0) {
        printf("ready\n");
        fflush(stdout);
        char line[16];
        if (!fgets(line, sizeof line, stdin)) DIE("no go line");
    }
    int64_t t0 = wall_ms() - 1000;
    char *sizes = strdup(argv[2]);
    for (char *s = strtok(sizes, ","); s; s = strtok(NULL, ",")) {
        int64_t size = arg_long(s, "size");
        struct job one = {.h = h, .size = size, .m = m, .t0 = t0};
        snprintf(one.id, sizeof one.id, "bench_local:one:%" PRId64, size);
        run(&one);
        double med = median_block(&one);
        printf("size=%" PRId64 " fill_s=%.3f us_per_decision=%.3f min_block=%.3f max_block=%.3f", size, one.fill_s,
               med, one.block_us[0], one.block_us[9]);
        if (nthreads > 1 || counts[0] > 1) {
            double b1 = 0, bn = 0;
            double one_s = run_threads(h, 1, size, m, "t1", t0, &b1);
            printf(" one_thread_per_s=%.0f one_thread_block_us=%.3f", (double)m / one_s, b1);
            for (long k = 0; k < nthreads; k++) {
                if (counts[k] == 1) continue;
                char tag[16];
                snprintf(tag, sizeof tag, "t%ld", counts[k]);
                double many_s = run_threads(h, counts[k], size, m, tag, t0, &bn);
                printf(" threads_%ld_per_s=%.0f threads_%ld_block_us=%.3f", counts[k],
                       (double)(m * counts[k]) / many_s, counts[k], bn);
            }
        }
        printf("\n");
        fflush(stdout);
    }
    hammer_stats_t stats = HAMMER_STATS_INIT;
    if (hammer_stats(h, &stats) == HAMMER_OK)
        printf("calls=%" PRIu64 " degraded=%" PRIu64 "\n", stats.calls, stats.degraded);
    free(sizes);
    hammer_close(h);
    return 0;
}
