/*
 * hiredis_pipeline.c — the reference of the "64 ops in flight" benchmark (issue 17): one thread, one bare hiredis
 * connection, keeping DEPTH commands in flight with the very EVALSHA that hammer_hit sends for a fixed window (the
 * script of lua/fixed_window.lua, its keys and arguments laid out as Handle.fillLimiter lays them out), formatting
 * the keys and numbers of every command as a real caller would, and reading the replies as they come: DEPTH
 * commands appended, then one more appended for each reply read (redisAppendCommandArgv + redisGetReply, which
 * writes what was appended whenever it runs out of replies to return).
 *
 *   hiredis_pipeline PORT SHA1 SCRIPT_FILE PREFIX N DEPTH TAG
 *
 * The script (SCRIPT_FILE, as lua/generate.py puts it together) is loaded first with SCRIPT LOAD, and the run stops
 * if Redis's SHA is not SHA1 (the one the library sends). Hits on 64 ids "bench_pipe:TAG:0..63", a fixed window of
 * 10^9 a minute with the caller's clock, so every hit is allowed; every reply is checked (5 integers, allowed).
 * Prints: calls=N seconds=<timed part> rate=<hits/s> depth=DEPTH.
 */
#include "bench_util.h"

#include <inttypes.h>

#include <hiredis/hiredis.h>

#define IDS 64
#define LIMIT "1000000000"
#define PERIOD_MS 60000

static char ids[IDS][64];

static void append_hit(redisContext *c, const char *sha, const char *prefix, long i)
{
    /* Handle.fillLimiter: numkeys 2, the window's bucket (prefix id ':' window) and the index, then algorithm 0,
     * mode h, limit, period_ms, capacity (the limit, for a window), cost, now_ms. */
    int64_t now = wall_ms();
    char key[256], index[256], period[24], ts[24];
    snprintf(key, sizeof key, "%s%s:%" PRId64, prefix, ids[i % IDS], now / PERIOD_MS);
    snprintf(index, sizeof index, "%s%s:index", prefix, ids[i % IDS]);
    snprintf(period, sizeof period, "%d", PERIOD_MS);
    snprintf(ts, sizeof ts, "%" PRId64, now);
    const char *argv[] = { "EVALSHA", sha, "2", key, index, "0", "h", LIMIT, period, LIMIT, "1", ts };
    size_t lens[12];
    for (int j = 0; j < 12; j++) lens[j] = strlen(argv[j]);
    if (redisAppendCommandArgv(c, 12, argv, lens) != REDIS_OK) DIE("append: %s", c->errstr);
}

static void check_reply(redisContext *c, redisReply *r)
{
    if (!r) DIE("EVALSHA: %s", c->errstr);
    if (r->type == REDIS_REPLY_ERROR) DIE("EVALSHA: %s", r->str);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 5) DIE("EVALSHA: unexpected reply type %d", r->type);
    for (size_t j = 0; j < 5; j++)
        if (r->element[j]->type != REDIS_REPLY_INTEGER) DIE("EVALSHA: element %zu is not an integer", j);
    if (r->element[0]->integer != 1) DIE("EVALSHA: a hit was denied");
}

/* n hits with up to depth in flight; returns the seconds taken. */
static double pipelined(redisContext *c, const char *sha, const char *prefix, long n, long depth)
{
    long sent = 0;
    double t0 = mono_s();
    while (sent < n && sent < depth) append_hit(c, sha, prefix, sent++);
    for (long got = 0; got < n; got++) {
        void *p = NULL;
        if (redisGetReply(c, &p) != REDIS_OK) DIE("read: %s", c->errstr);
        check_reply(c, p);
        freeReplyObject(p);
        if (sent < n) append_hit(c, sha, prefix, sent++);
    }
    return mono_s() - t0;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) DIE("cannot open %s", path);
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap && !(buf = realloc(buf, cap = cap ? 2 * cap : 8192))) DIE("out of memory");
        size_t k = fread(buf + n, 1, cap - n, f);
        if (k == 0) break;
        n += k;
    }
    fclose(f);
    *len = n;
    return buf;
}

int main(int argc, char **argv)
{
    if (argc != 8) DIE("usage: hiredis_pipeline PORT SHA1 SCRIPT_FILE PREFIX N DEPTH TAG");
    int port = (int)arg_long(argv[1], "PORT");
    const char *sha = argv[2], *prefix = argv[4];
    long n = arg_long(argv[5], "N"), depth = arg_long(argv[6], "DEPTH");
    if (depth < 1 || depth > 4096) DIE("DEPTH: 1 .. 4096");
    for (int i = 0; i < IDS; i++) snprintf(ids[i], sizeof ids[i], "bench_pipe:%.40s:%d", argv[7], i);

    struct timeval tv = { 10, 0 };
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (!c || c->err) DIE("connect: %s", c ? c->errstr : "out of memory");
    redisSetTimeout(c, tv);

    size_t len = 0;
    char *src = read_file(argv[3], &len);
    redisReply *r = redisCommand(c, "SCRIPT LOAD %b", src, len);
    if (!r) DIE("SCRIPT LOAD: %s", c->errstr);
    if (r->type != REDIS_REPLY_STRING) DIE("SCRIPT LOAD: unexpected reply type %d: %s", r->type, r->str ? r->str : "");
    if (strcmp(r->str, sha) != 0) DIE("SCRIPT LOAD gave %s, the library sends %s", r->str, sha);
    freeReplyObject(r);
    free(src);

    pipelined(c, sha, prefix, 200, depth);       /* warm-up, as bench_async's */
    double dt = pipelined(c, sha, prefix, n, depth);
    redisFree(c);
    printf("calls=%ld seconds=%.4f rate=%.1f depth=%ld\n", n, dt, n / dt, depth);
    return 0;
}
