/*
 * bench_batch.c — batches (one pipeline per call) against single calls, same requests, one thread.
 * Compiled by benchmarks/run.py only when include/hammer.h and libhammer.so both have the batch calls.
 *
 *   bench_batch URL count|hit batch|single N SIZE TAG
 *       N decisions over SIZE ids ("bench:batch:TAG:<j>"): `batch` sends each SIZE requests as one
 *       hammer_count_hits / hammer_hit_many call; `single` sends the same requests one by one with
 *       hammer_count_hit / hammer_hit. Prints ops_per_sec (decisions per second).
 * hit uses a fixed window of 10^9 hits per minute, so every decision allows.
 */
#include "bench_util.h"

#include "hammer.h"

#define MAX_BATCH 4096

int main(int argc, char **argv)
{
    if (argc != 7) DIE("usage: bench_batch URL count|hit batch|single N SIZE TAG");
    int hit = strcmp(argv[2], "hit") == 0;
    if (!hit && strcmp(argv[2], "count") != 0) DIE("kind must be count or hit");
    int single = strcmp(argv[3], "single") == 0;
    if (!single && strcmp(argv[3], "batch") != 0) DIE("mode must be batch or single");
    long n = arg_long(argv[4], "N"), batch = arg_long(argv[5], "SIZE");
    if (batch < 1 || batch > MAX_BATCH) DIE("SIZE must be 1..%d", MAX_BATCH);
    hammer_t *h = NULL;
    int st = hammer_open(argv[1], &h);
    if (st != HAMMER_OK) DIE("hammer_open: %s: %s", hammer_strerror(st), hammer_last_error());

    static char ids[MAX_BATCH][96];
    static hammer_count_request creq[MAX_BATCH];
    static hammer_hit_request hreq[MAX_BATCH];
    static int64_t counts[MAX_BATCH];
    static hammer_decision dec[MAX_BATCH];
    static int statuses[MAX_BATCH];
    hammer_limit lim = { HAMMER_FIXED_WINDOW, 1000000000, 60000, 0 };
    for (long j = 0; j < batch; j++) snprintf(ids[j], sizeof ids[j], "bench:batch:%s:%ld", argv[6], j);

    long done = 0;
    double t0 = 0;
    for (int pass = 0; pass < 2; pass++) {          /* pass 0: warm-up of 200 decisions; pass 1: timed */
        long todo = pass ? n : 200;
        if (pass) t0 = mono_s();
        for (done = 0; done < todo;) {
            long m = todo - done < batch ? todo - done : batch;
            int64_t now = wall_ms();
            st = HAMMER_OK;
            if (single) {
                for (long j = 0; j < m && st == HAMMER_OK; j++)
                    st = hit ? hammer_hit(h, ids[j], &lim, 1, &dec[j])
                             : hammer_count_hit(h, ids[j], now / 60000, now, 1, &counts[j]);
            } else if (hit) {
                for (long j = 0; j < m; j++) hreq[j] = (hammer_hit_request){ ids[j], &lim, 1, -1 };
                st = hammer_hit_many(h, hreq, (size_t)m, dec, statuses);
            } else {
                for (long j = 0; j < m; j++) creq[j] = (hammer_count_request){ ids[j], now / 60000, now, 1 };
                st = hammer_count_hits(h, creq, (size_t)m, counts, statuses);
            }
            if (st != HAMMER_OK) DIE("%s: %s: %s", argv[2], hammer_strerror(st), hammer_last_error());
            for (long j = 0; hit && j < m; j++)
                if (!dec[j].allowed) DIE("a decision was denied");
            done += m;
        }
    }
    double dt = mono_s() - t0;
    hammer_close(h);
    printf("ops_per_sec=%.1f calls=%ld size=%ld mode=%s seconds=%.4f\n", n / dt, n, batch, argv[3], dt);
    return 0;
}
