/*
 * bench_async.c — one thread keeping DEPTH hits in flight with the non-blocking calls (hammer_submit, epoll on
 * hammer_fd, hammer_drain) against the same thread making blocking hammer_hit calls, on one redis-server.
 *
 *   bench_async URL N DEPTH [ROUNDS [both|async]]
 *
 * ROUNDS rounds, each of N blocking hits then N hits with DEPTH in flight (order reversed every round, so the
 * machine's load weighs on both alike); a fixed window of 10^9 a minute on 64 ids, so every hit is allowed.
 * Prints: blocking=<hits/s> async=<hits/s> depth=DEPTH.
 * With "async", only the hits in flight (after a warm-up of blocking calls): prints async=, calls= and seconds=,
 * for benchmarks/run.py to set against another program run by run (hiredis_pipeline.c).
 */
#include "bench_util.h"

#include <sys/epoll.h>
#include <unistd.h>

#include "hammer.h"

static hammer_limit lim = HAMMER_LIMIT_INIT(HAMMER_FIXED_WINDOW, 1000000000, 60000);
static char ids[64][48];

static double blocking(hammer_t *h, long n)
{
    double t0 = mono_s();
    for (long i = 0; i < n; i++) {
        hammer_decision d;
        if (hammer_hit(h, ids[i % 64], &lim, 1, &d) != HAMMER_OK || !d.allowed) {
            fprintf(stderr, "hammer_hit failed: %s\n", hammer_last_error());
            exit(1);
        }
    }
    return mono_s() - t0;
}

static double in_flight(hammer_t *h, int ep, long n, long depth)
{
    static hammer_op ops[4096];
    static hammer_completion done[4096];
    long submitted = 0, completed = 0;
    double t0 = mono_s();
    while (completed < n) {
        long k = 0;
        while (submitted + k < n && submitted + k - completed < depth) {
            hammer_op o = HAMMER_OP_INIT(HAMMER_OP_HIT, (uint64_t)(submitted + k), ids[(submitted + k) % 64]);
            o.lims = &lim;
            ops[k++] = o;
        }
        if (k && hammer_submit(h, ops, (size_t)k) != HAMMER_OK) { fprintf(stderr, "submit failed\n"); exit(1); }
        submitted += k;
        struct epoll_event ev;
        if (epoll_wait(ep, &ev, 1, 10000) != 1) { fprintf(stderr, "no completion\n"); exit(1); }
        size_t m = hammer_drain(h, done, 4096);
        for (size_t i = 0; i < m; i++) {
            if (done[i].status != HAMMER_OK || !done[i].decision.allowed) {
                fprintf(stderr, "op failed: %s\n", done[i].message);
                exit(1);
            }
        }
        completed += (long)m;
    }
    return mono_s() - t0;
}

int main(int argc, char **argv)
{
    if (argc < 4) { fprintf(stderr, "usage: %s URL N DEPTH [ROUNDS [both|async]]\n", argv[0]); return 2; }
    long n = arg_long(argv[2], "N"), depth = arg_long(argv[3], "DEPTH");
    long rounds = argc > 4 ? arg_long(argv[4], "ROUNDS") : 2;
    int async_only = argc > 5 && strcmp(argv[5], "async") == 0;
    if (argc > 5 && !async_only && strcmp(argv[5], "both") != 0) { fprintf(stderr, "mode: both or async\n"); return 2; }
    if (depth < 1 || depth > 4096) { fprintf(stderr, "DEPTH: 1 .. 4096\n"); return 2; }
    hammer_t *h = NULL;
    if (hammer_open(argv[1], &h) != HAMMER_OK) { fprintf(stderr, "open: %s\n", hammer_last_error()); return 1; }
    for (int i = 0; i < 64; i++) snprintf(ids[i], sizeof ids[i], "bench_async:%d:%d", (int)getpid(), i);
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN };
    ev.data.fd = hammer_fd(h);
    epoll_ctl(ep, EPOLL_CTL_ADD, ev.data.fd, &ev);
    blocking(h, 200);            /* warm-up: connections, scripts, the I/O thread */
    in_flight(h, ep, 200, depth);
    double sb = 0, sa = 0;
    if (async_only) {
        for (long r = 0; r < rounds; r++) sa += in_flight(h, ep, n, depth);
        printf("async=%.1f calls=%ld seconds=%.4f depth=%ld\n", rounds * n / sa, rounds * n, sa, depth);
        hammer_close(h);
        return 0;
    }
    for (long r = 0; r < rounds; r++) {
        if (r % 2 == 0) { sb += blocking(h, n); sa += in_flight(h, ep, n, depth); }
        else { sa += in_flight(h, ep, n, depth); sb += blocking(h, n); }
    }
    printf("blocking=%.1f async=%.1f depth=%ld\n", rounds * n / sb, rounds * n / sa, depth);
    hammer_close(h);
    return 0;
}
