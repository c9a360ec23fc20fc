/*
 * hiredis_evalsha.c — the reference of the client-CPU benchmark: a minimal C hiredis loop sending the same
 * EVALSHA as hammer_count_hit (same script SHA, same keys, same arguments), formatting the keys and numbers of
 * every call as a real caller would, and freeing each reply.
 *
 *   hiredis_evalsha PORT SHA1 PREFIX EXPIRY_MS K     K calls on id "bench:cpu" (K = 0: connect + free alone)
 */
#include "bench_util.h"

#include <inttypes.h>

#include <hiredis/hiredis.h>

int main(int argc, char **argv)
{
    if (argc != 6) DIE("usage: hiredis_evalsha PORT SHA1 PREFIX EXPIRY_MS K");
    int port = (int)arg_long(argv[1], "PORT");
    const char *sha = argv[2], *prefix = argv[3];
    long expiry = arg_long(argv[4], "EXPIRY_MS"), k = arg_long(argv[5], "K");
    const char *id = "bench:cpu";
    struct timeval tv = { 1, 0 };
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (!c || c->err) DIE("connect: %s", c ? c->errstr : "out of memory");
    redisSetTimeout(c, tv);
    int64_t now = 1700000000000;
    for (long i = 0; i < k; i++) {
        int64_t t = now + i % 1000, bucket = now / 60000;
        char key[256], index[256], inc[24], ts[24], ttl[24], b[24];
        snprintf(key, sizeof key, "%s%s:%" PRId64, prefix, id, bucket);
        snprintf(index, sizeof index, "%s%s:index", prefix, id);
        snprintf(inc, sizeof inc, "%d", 1);
        snprintf(ts, sizeof ts, "%" PRId64, t);
        snprintf(ttl, sizeof ttl, "%ld", expiry);
        snprintf(b, sizeof b, "%" PRId64, bucket);
        const char *argv2[] = { "EVALSHA", sha, "2", key, index, inc, ts, ttl, b };
        size_t lens[9];
        for (int j = 0; j < 9; j++) lens[j] = strlen(argv2[j]);
        redisReply *r = redisCommandArgv(c, 9, argv2, lens);
        if (!r) DIE("EVALSHA: %s", c->errstr);
        if (r->type != REDIS_REPLY_INTEGER) DIE("EVALSHA: unexpected reply type %d: %s", r->type, r->str ? r->str : "");
        freeReplyObject(r);
    }
    redisFree(c);
    printf("calls=%ld\n", k);
    return 0;
}
