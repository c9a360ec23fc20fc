/*
 * loops.c — K count_hit decisions, by libhammer or by a bare hiredis loop sending the same EVALSHA, for counting
 * allocations per call (tests/test_alloc.py runs it under count_malloc.so with K = 0 and K = N).
 *
 *   loops hammer URL K           K x hammer_count_hit on one id (open and close included, K = 0: those alone)
 *   loops hiredis PORT SHA K     K x EVALSHA of the count_hit script on the same kind of keys
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "hammer.h"

int main(int argc, char **argv)
{
    if (argc < 4) return 2;
    long k = atol(argv[argc - 1]);
    int64_t now = 1700000000000, bucket = now / 60000;
    if (strcmp(argv[1], "hammer") == 0) {
        hammer_t *h = NULL;
        if (hammer_open(argv[2], &h) != HAMMER_OK) { fprintf(stderr, "open: %s\n", hammer_last_error()); return 1; }
        for (long i = 0; i < k; i++) {
            int64_t count;
            if (hammer_count_hit(h, "alloc:test", bucket, now + i, 1, &count) != HAMMER_OK) {
                fprintf(stderr, "count_hit: %s\n", hammer_last_error());
                return 1;
            }
        }
        hammer_close(h);
        return 0;
    }
    if (argc != 5) return 2;
    struct timeval tv = { 2, 0 };
    redisContext *c = redisConnectWithTimeout("127.0.0.1", atoi(argv[2]), tv);
    if (!c || c->err) return 1;
    for (long i = 0; i < k; i++) {
        char key[64], ts[24], b[24];
        snprintf(key, sizeof key, "Hammer:Redis:alloc:hiredis:%" PRId64, bucket);
        snprintf(ts, sizeof ts, "%" PRId64, now + i);
        snprintf(b, sizeof b, "%" PRId64, bucket);
        const char *args[] = { "EVALSHA", argv[3], "2", key, "Hammer:Redis:alloc:hiredis:index", "1", ts, "60000", b };
        size_t lens[9];
        for (int j = 0; j < 9; j++) lens[j] = strlen(args[j]);
        redisReply *r = redisCommandArgv(c, 9, args, lens);
        if (!r || r->type != REDIS_REPLY_INTEGER) { fprintf(stderr, "EVALSHA failed\n"); return 1; }
        freeReplyObject(r);
    }
    redisFree(c);
    return 0;
}
