/*
 * bench_core.c — benchmarks of the core API (hammer_count_hit, hammer_delete_buckets). Modes:
 *
 *   bench_core single  URL N same|distinct TAG   N calls from one thread; prints ops_per_sec
 *   bench_core single  URL N slots:LO-HI TAG     as distinct, with ids whose hash slot is in LO..HI (on a
 *                                                 cluster: ids of one master, made before the timed calls)
 *   bench_core threads URL THREADS N              N calls split over THREADS threads on ONE handle; ops_per_sec
 *   bench_core delete  URL ROUNDS BUCKETS TAG    per round: BUCKETS count_hit (untimed), then one timed
 *                                                 hammer_delete_buckets; prints median_us and mean_us per delete
 *   bench_core cpu     URL K                      K calls of hammer_count_hit on one id (for callgrind; K = 0
 *                                                 measures open + close alone)
 *
 * TAG makes the ids of one run distinct from every other run's.
 */
#include "bench_util.h"

#include <inttypes.h>
#include <pthread.h>

#include "hammer.h"

#define WARMUP 200

static hammer_t *open_or_die(const char *url)
{
    hammer_t *h = NULL;
    int st = hammer_open(url, &h);
    if (st != HAMMER_OK) DIE("hammer_open: %s: %s", hammer_strerror(st), hammer_last_error());
    return h;
}

static void hit_or_die(hammer_t *h, const char *id, int64_t bucket, int64_t now)
{
    int64_t count = 0;
    int st = hammer_count_hit(h, id, bucket, now, 1, &count);
    if (st != HAMMER_OK || count < 1) DIE("hammer_count_hit: %s: %s", hammer_strerror(st), hammer_last_error());
}

/* Redis Cluster's hash slot of an id: CRC16-XMODEM of the id (the library braces it: {id}), modulo 16384. */
static unsigned slot_of(const char *id)
{
    unsigned crc = 0;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++) {
        crc ^= (unsigned)*p << 8;
        for (int k = 0; k < 8; k++) crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
    return crc & 16383;
}

static int run_single(const char *url, long n, const char *mode, const char *tag)
{
    unsigned lo = 0, hi = 0;
    int in_slots = sscanf(mode, "slots:%u-%u", &lo, &hi) == 2 && lo <= hi && hi < 16384;
    int distinct = in_slots || strcmp(mode, "distinct") == 0;
    if (!distinct && strcmp(mode, "same") != 0) DIE("mode must be same, distinct or slots:LO-HI");
    char (*ids)[64] = NULL;
    if (in_slots) {
        if (n < 1 || n > 10000000) DIE("N must be from 1 to 10000000");
        ids = malloc((size_t)n * sizeof *ids);
        if (!ids) DIE("out of memory");
        for (long i = 0, k = 0; i < n; k++) {
            snprintf(ids[i], sizeof ids[i], "bench:s:%s:%ld", tag, k);
            unsigned s = slot_of(ids[i]);
            if (s >= lo && s <= hi) i++;
        }
    }
    hammer_t *h = open_or_die(url);
    char id[128];
    for (int i = 0; i < WARMUP; i++) {     /* the same kind of call as the timed ones */
        snprintf(id, sizeof id, distinct ? "bench:warmup:%s:%d" : "bench:warmup:%s", tag, i);
        hit_or_die(h, id, 1, wall_ms());
    }
    snprintf(id, sizeof id, "bench:same:%s", tag);
    double t0 = mono_s(), c0 = cpu_s();
    for (long i = 0; i < n; i++) {
        int64_t now = wall_ms();
        if (in_slots) hit_or_die(h, ids[i], now / 60000, now);
        else {
            if (distinct) snprintf(id, sizeof id, "bench:d:%s:%ld", tag, i);
            hit_or_die(h, id, now / 60000, now);
        }
    }
    double dt = mono_s() - t0, cpu = cpu_s() - c0;
    hammer_close(h);
    free(ids);
    printf("ops_per_sec=%.1f calls=%ld seconds=%.4f cpu_us_per_call=%.2f\n", n / dt, n, dt, cpu * 1e6 / n);
    return 0;
}

typedef struct {
    hammer_t *h;
    pthread_barrier_t *start;
    long calls;
    int index;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *w = p;
    char id[64];
    snprintf(id, sizeof id, "bench:thread:%d", w->index);
    for (int i = 0; i < WARMUP / 4; i++) hit_or_die(w->h, id, 1, wall_ms());
    pthread_barrier_wait(w->start);
    for (long i = 0; i < w->calls; i++) {
        int64_t now = wall_ms();
        hit_or_die(w->h, id, now / 60000, now);
    }
    return NULL;
}

static int run_threads(const char *url, long threads, long n)
{
    if (threads < 1 || threads > 256) DIE("threads must be 1..256");
    hammer_t *h = open_or_die(url);
    worker_arg args[256];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    for (long t = 0; t < threads; t++) args[t] = (worker_arg){ h, &start, n / threads + (t < n % threads), (int)t };
    double dt = timed_threads(threads, worker, args, sizeof args[0], &start);
    pthread_barrier_destroy(&start);
    hammer_close(h);
    printf("ops_per_sec=%.1f calls=%ld threads=%ld seconds=%.4f\n", n / dt, n, threads, dt);
    return 0;
}

static int run_delete(const char *url, long rounds, long buckets, const char *tag)
{
    if (rounds < 1) DIE("rounds must be >= 1");
    hammer_t *h = open_or_die(url);
    double *us = malloc(sizeof(double) * (size_t)rounds);
    if (!us) DIE("out of memory");
    double total = 0;
    char id[128];
    for (int i = 0; i < WARMUP / 4; i++) {
        hit_or_die(h, "bench:del:warmup", i, wall_ms());
        hammer_delete_buckets(h, "bench:del:warmup", NULL);
    }
    for (long r = 0; r < rounds; r++) {
        snprintf(id, sizeof id, "bench:del:%s:%ld", tag, r);
        int64_t now = wall_ms();
        for (long b = 0; b < buckets; b++) hit_or_die(h, id, now / 1000 + b, now);
        int64_t deleted = -1;
        double t0 = mono_s();
        int st = hammer_delete_buckets(h, id, &deleted);
        double dt = mono_s() - t0;
        if (st != HAMMER_OK) DIE("hammer_delete_buckets: %s: %s", hammer_strerror(st), hammer_last_error());
        if (deleted != buckets) DIE("hammer_delete_buckets deleted %" PRId64 " keys, expected %ld", deleted, buckets);
        us[r] = dt * 1e6;
        total += us[r];
    }
    hammer_close(h);
    printf("mean_us=%.2f median_us=%.2f rounds=%ld buckets=%ld\n", total / rounds, median(us, (size_t)rounds),
           rounds, buckets);
    free(us);
    return 0;
}

static int run_cpu(const char *url, long k)
{
    hammer_t *h = open_or_die(url);
    int64_t now = 1700000000000;
    for (long i = 0; i < k; i++) hit_or_die(h, "bench:cpu", now / 60000, now + i % 1000);
    hammer_close(h);
    printf("calls=%ld\n", k);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 6 && strcmp(argv[1], "single") == 0)
        return run_single(argv[2], arg_long(argv[3], "N"), argv[4], argv[5]);
    if (argc >= 5 && strcmp(argv[1], "threads") == 0)
        return run_threads(argv[2], arg_long(argv[3], "THREADS"), arg_long(argv[4], "N"));
    if (argc >= 6 && strcmp(argv[1], "delete") == 0)
        return run_delete(argv[2], arg_long(argv[3], "ROUNDS"), arg_long(argv[4], "BUCKETS"), argv[5]);
    if (argc >= 4 && strcmp(argv[1], "cpu") == 0)
        return run_cpu(argv[2], arg_long(argv[3], "K"));
    fprintf(stderr, "usage: see the comment at the top of bench_core.c\n");
    return 2;
}
