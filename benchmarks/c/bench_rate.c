/*
 * bench_rate.c — hammer_check_rate (Hammer's check_rate) from one thread, for the comparison with a bare INCR.
 * Compiled by benchmarks/run.py only when include/hammer.h and libhammer.so both have hammer_check_rate.
 *
 *   bench_rate URL N TAG      N decisions on one id (scale 60 s, a limit never reached); prints ops_per_sec
 */
#include "bench_util.h"

#include "hammer.h"

int main(int argc, char **argv)
{
    if (argc != 4) DIE("usage: bench_rate URL N TAG");
    long n = arg_long(argv[2], "N");
    hammer_t *h = NULL;
    int st = hammer_open(argv[1], &h);
    if (st != HAMMER_OK) DIE("hammer_open: %s: %s", hammer_strerror(st), hammer_last_error());
    char id[128];
    snprintf(id, sizeof id, "bench:rate:%s", argv[3]);
    hammer_decision d;
    for (int i = 0; i < 200; i++) hammer_check_rate(h, "bench:rate:warmup", 60000, 1000000000, 1, &d);
    double t0 = mono_s();
    for (long i = 0; i < n; i++) {
        st = hammer_check_rate(h, id, 60000, 1000000000, 1, &d);
        if (st != HAMMER_OK || !d.allowed) DIE("hammer_check_rate: %s: %s", hammer_strerror(st), hammer_last_error());
    }
    double dt = mono_s() - t0;
    hammer_close(h);
    printf("ops_per_sec=%.1f calls=%ld seconds=%.4f\n", n / dt, n, dt);
    return 0;
}
