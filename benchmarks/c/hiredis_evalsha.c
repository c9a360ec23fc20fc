/*
 * hiredis_evalsha.c — the reference of the client-CPU benchmark: a minimal C hiredis loop sending the same
 * EVALSHA as hammer_count_hit (same script SHA, same keys, same arguments), formatting the keys and numbers of
 * every call as a real caller would, and freeing each reply.
 *
 *   hiredis_evalsha PORT SHA1 PREFIX EXPIRY_MS K           K calls on id "bench:cpu" (K = 0: connect + free alone)
 *   hiredis_evalsha PORT SHA1 PREFIX EXPIRY_MS K THREADS   K calls split over THREADS threads, each with its own
 *                                                          connection and id; prints calls= and seconds= (the
 *                                                          floor of a scripted decision from N threads)
 */
#include "bench_util.h"

#include <inttypes.h>

#include <hiredis/hiredis.h>

typedef struct {
    int port;
    const char *sha, *prefix;
    long expiry, calls;
    char id[64];
    pthread_barrier_t *start;
} loop_arg;

static void *loop(void *p)
{
    loop_arg *a = p;
    struct timeval tv = { 1, 0 };
    redisContext *c = redisConnectWithTimeout("127.0.0.1", a->port, tv);
    if (!c || c->err) DIE("connect: %s", c ? c->errstr : "out of memory");
    redisSetTimeout(c, tv);
    if (a->start) pthread_barrier_wait(a->start);
    int64_t now = 1700000000000;
    for (long i = 0; i < a->calls; i++) {
        int64_t t = now + i % 1000, bucket = now / 60000;
        char key[256], index[256], inc[24], ts[24], ttl[24], b[24];
        snprintf(key, sizeof key, "%s%s:%" PRId64, a->prefix, a->id, bucket);
        snprintf(index, sizeof index, "%s%s:index", a->prefix, a->id);
        snprintf(inc, sizeof inc, "%d", 1);
        snprintf(ts, sizeof ts, "%" PRId64, t);
        snprintf(ttl, sizeof ttl, "%ld", a->expiry);
        snprintf(b, sizeof b, "%" PRId64, bucket);
        const char *argv2[] = { "EVALSHA", a->sha, "2", key, index, inc, ts, ttl, b };
        size_t lens[9];
        for (int j = 0; j < 9; j++) lens[j] = strlen(argv2[j]);
        redisReply *r = redisCommandArgv(c, 9, argv2, lens);
        if (!r) DIE("EVALSHA: %s", c->errstr);
        if (r->type != REDIS_REPLY_INTEGER) DIE("EVALSHA: unexpected reply type %d: %s", r->type, r->str ? r->str : "");
        freeReplyObject(r);
    }
    redisFree(c);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 6 && argc != 7) DIE("usage: hiredis_evalsha PORT SHA1 PREFIX EXPIRY_MS K [THREADS]");
    loop_arg base = { (int)arg_long(argv[1], "PORT"), argv[2], argv[3], arg_long(argv[4], "EXPIRY_MS"),
                      arg_long(argv[5], "K"), "bench:cpu", NULL };
    if (argc == 6) {
        loop(&base);
        printf("calls=%ld\n", base.calls);
        return 0;
    }
    long threads = arg_long(argv[6], "THREADS");
    if (threads < 1 || threads > 256) DIE("THREADS must be 1..256");
    loop_arg args[256];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    for (long t = 0; t < threads; t++) {
        args[t] = base;
        args[t].calls = base.calls / threads + (t < base.calls % threads);
        args[t].start = &start;
        snprintf(args[t].id, sizeof args[t].id, "bench:hiredis:%ld", t);
    }
    double dt = timed_threads(threads, loop, args, sizeof args[0], &start);
    pthread_barrier_destroy(&start);
    printf("calls=%ld threads=%ld seconds=%.4f\n", base.calls, threads, dt);
    return 0;
}
