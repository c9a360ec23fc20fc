/*
 * bench_deny.c — one id hit far over its limit, with or without the deny cache (the URL says which):
 *
 *   bench_deny URL N LIMIT ID    N calls of hammer_hit (cost 1) on ID against a fixed window of LIMIT hits per
 *                                10^11 ms (one window for the whole run); prints calls, seconds, allowed, denied
 *                                and the handle's deny_cache_hits
 */
#include "bench_util.h"

#include <inttypes.h>

#include "hammer.h"

int main(int argc, char **argv)
{
    if (argc != 5) DIE("usage: bench_deny URL N LIMIT ID");
    long n = arg_long(argv[2], "N"), limit = arg_long(argv[3], "LIMIT");
    hammer_t *h = NULL;
    int st = hammer_open(argv[1], &h);
    if (st != HAMMER_OK) DIE("hammer_open: %s: %s", hammer_strerror(st), hammer_last_error());
    hammer_limit lim = {.algorithm = HAMMER_FIXED_WINDOW, .limit = limit, .period_ms = 100000000000};
    long allowed = 0, denied = 0;
    double t0 = mono_s();
    for (long i = 0; i < n; i++) {
        hammer_decision d;
        st = hammer_hit(h, argv[4], &lim, 1, &d);
        if (st != HAMMER_OK) DIE("hammer_hit: %s: %s", hammer_strerror(st), hammer_last_error());
        if (d.allowed) allowed++; else denied++;
    }
    double secs = mono_s() - t0;
    hammer_stats_t s = HAMMER_STATS_INIT;
    if (hammer_stats(h, &s) != HAMMER_OK) DIE("hammer_stats: %s", hammer_last_error());
    printf("calls=%ld seconds=%.6f allowed=%ld denied=%ld deny_cache_hits=%" PRIu64 "\n", n, secs, allowed, denied,
           s.deny_cache_hits);
    hammer_close(h);
    return 0;
}
