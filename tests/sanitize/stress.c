/*
 * stress.c — many threads on one hammer_t mixing every exported call, plus open/close cycles, for a bounded time.
 * Built against the sanitizer builds of the library (mk/sanitize.mk: make asan-stress / tsan-stress) and run
 * against a real redis-server; an ASan or TSan report, or any unexpected status, fails it.
 *
 *   stress REDIS_URL [SECONDS]        (SECONDS defaults to 3; REDIS_URL carries expiry_ms)
 *
 * Each worker loops over a fixed schedule of operations until the deadline:
 *   - count_hit / get_bucket / delete_buckets on the worker's own id (whose counts it can predict exactly) and on
 *     one id shared by every thread (contention on one key);
 *   - check_rate(_at), inspect_bucket, hit / peek / hit_at / peek_at for each of the five algorithms;
 *   - the three batch calls, with valid and invalid requests mixed in one array;
 *   - hammer_stats, hammer_strerror, hammer_version, hammer_last_error;
 *   - every argument error the API defines (NULL pointers, over-long ids, out-of-range numbers): HAMMER_ERR_INVALID
 *     with a non-empty hammer_last_error() on the calling thread.
 * One more thread opens and closes handles (to the server, to a refused port, with bad URLs) in a loop.
 * Exits 0 when every status was the expected one, 1 otherwise (each failure is printed as "FAIL ...").
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hammer.h"

#define WORKERS 6
#define LONG_ID (65536 + 1)   /* one byte over the id limit */

static const char *url;
/* memory:// has no connection; a Redis handle at least one once it has been used. */
static int64_t min_connections = 1;
static char refused_url[128];
static int64_t deadline_ms;
static hammer_t *shared;
static char shared_id[64];
static char *long_id;         /* LONG_ID bytes of 'x' and a NUL: refused with HAMMER_ERR_INVALID */
static char *max_id;          /* exactly 65536 bytes: accepted */

static atomic_long calls;
static atomic_long failures;
static atomic_long open_cycles;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Records one call's status; prints the first few unexpected ones. Returns 1 when rc == want. */
static int expect(int rc, int want, const char *what, int line)
{
    atomic_fetch_add(&calls, 1);
    const char *detail = hammer_last_error();
    int ok = rc == want && detail != NULL;
    /* After a failure the calling thread's detail must say something. */
    if (ok && rc != HAMMER_OK && detail[0] == '\0') ok = 0;
    if (!ok && atomic_fetch_add(&failures, 1) < 20) {
        fprintf(stdout, "FAIL stress.c:%d: %s -> %d (%s), want %d; last_error \"%s\"\n", line, what, rc,
                hammer_strerror(rc), want, detail ? detail : "(NULL)");
        fflush(stdout);
    }
    return ok;
}

#define EXPECT(call, want) expect((call), (want), #call, __LINE__)
#define CHECK(cond)                                                                              \
    do {                                                                                         \
        if (!(cond) && atomic_fetch_add(&failures, 1) < 20) {                                     \
            fprintf(stdout, "FAIL stress.c:%d: %s\n", __LINE__, #cond);                           \
            fflush(stdout);                                                                      \
        }                                                                                        \
    } while (0)

static const hammer_limit limits[6] = {
    {HAMMER_FIXED_WINDOW, 50, 1000, 0},
    {HAMMER_SLIDING_WINDOW, 50, 1000, 0},
    {HAMMER_TOKEN_BUCKET, 50, 1000, 80},
    {HAMMER_LEAKY_BUCKET, 50, 1000, 80},
    {HAMMER_GCRA, 50, 1000, 10},
    {HAMMER_SLIDING_COUNTER, 50, 1000, 0},
};

static int valid_decision(const hammer_decision *d)
{
    return (d->allowed == 0 || d->allowed == 1) && d->count >= 0 && d->remaining >= 0 && d->retry_after_ms >= -1 &&
           d->reset_after_ms >= 0 && (d->degraded == 0 || d->degraded == 1);
}

/* Every argument error: each must be HAMMER_ERR_INVALID, and clear its out-parameters. */
static void bad_arguments(hammer_t *h, const char *id)
{
    hammer_decision d;
    hammer_bucket b;
    hammer_inspection in;
    hammer_stats_t st = HAMMER_STATS_INIT;
    int64_t n = 77;
    hammer_limit bad = limits[0];

    EXPECT(hammer_count_hit(NULL, id, 1, 1, 1, &n), HAMMER_ERR_INVALID);
    CHECK(n == 0);
    EXPECT(hammer_count_hit(h, NULL, 1, 1, 1, NULL), HAMMER_ERR_INVALID);
    EXPECT(hammer_count_hit(h, id, 1, 1, -1, NULL), HAMMER_ERR_INVALID);
    EXPECT(hammer_count_hit(h, long_id, 1, 1, 1, NULL), HAMMER_ERR_INVALID);
    EXPECT(hammer_get_bucket(h, id, 1, NULL), HAMMER_ERR_INVALID);
    EXPECT(hammer_get_bucket(NULL, id, 1, &b), HAMMER_ERR_INVALID);
    EXPECT(hammer_get_bucket(h, long_id, 1, &b), HAMMER_ERR_INVALID);
    CHECK(b.found == 0 && b.count == 0);
    EXPECT(hammer_delete_buckets(h, NULL, &n), HAMMER_ERR_INVALID);
    EXPECT(hammer_delete_buckets(NULL, id, NULL), HAMMER_ERR_INVALID);
    EXPECT(hammer_check_rate(h, id, 0, 10, 1, &d), HAMMER_ERR_INVALID);
    EXPECT(hammer_check_rate(h, id, 1000, 0, 1, &d), HAMMER_ERR_INVALID);
    EXPECT(hammer_check_rate(h, id, 1000, 10, -1, &d), HAMMER_ERR_INVALID);
    EXPECT(hammer_check_rate(h, id, INT64_MAX, INT64_MAX, INT64_MAX, &d), HAMMER_ERR_INVALID);
    EXPECT(hammer_check_rate(h, id, 1000, 10, 1, NULL), HAMMER_ERR_INVALID);
    EXPECT(hammer_check_rate_at(h, id, 1000, 10, 1, -1, &d), HAMMER_ERR_INVALID);
    EXPECT(hammer_check_rate_at(h, id, 1000, 10, 1, INT64_MAX, &d), HAMMER_ERR_INVALID);
    CHECK(d.allowed == 0 && d.count == 0);
    EXPECT(hammer_inspect_bucket(h, id, INT64_MIN, 10, &in), HAMMER_ERR_INVALID);
    EXPECT(hammer_inspect_bucket(h, NULL, 1000, 10, &in), HAMMER_ERR_INVALID);
    EXPECT(hammer_inspect_bucket(h, id, 1000, 10, NULL), HAMMER_ERR_INVALID);
    EXPECT(hammer_hit(h, id, NULL, 1, &d), HAMMER_ERR_INVALID);
    EXPECT(hammer_hit(h, id, &limits[0], -1, &d), HAMMER_ERR_INVALID);
    EXPECT(hammer_hit(h, id, &limits[0], INT64_MAX, &d), HAMMER_ERR_INVALID);
    EXPECT(hammer_hit(h, long_id, &limits[0], 1, &d), HAMMER_ERR_INVALID);
    bad.algorithm = 6;   /* one past HAMMER_SLIDING_COUNTER */
    EXPECT(hammer_hit(h, id, &bad, 1, &d), HAMMER_ERR_INVALID);
    bad.algorithm = -1;
    EXPECT(hammer_peek(h, id, &bad, &d), HAMMER_ERR_INVALID);
    bad = limits[2];
    bad.burst = -1;
    EXPECT(hammer_hit(h, id, &bad, 1, &d), HAMMER_ERR_INVALID);
    bad.burst = INT64_MAX;
    EXPECT(hammer_hit(h, id, &bad, 1, &d), HAMMER_ERR_INVALID);
    bad = limits[1];
    bad.period_ms = INT64_MIN;
    EXPECT(hammer_peek_at(h, id, &bad, 1, &d), HAMMER_ERR_INVALID);
    bad = limits[3];
    bad.limit = 1000000000;
    bad.burst = 0;
    bad.period_ms = 315360000000;  /* capacity (= limit) * period over 2^52 */
    EXPECT(hammer_hit(h, id, &bad, 1, &d), HAMMER_ERR_INVALID);
    EXPECT(hammer_hit_at(h, id, &limits[4], 1, -5, &d), HAMMER_ERR_INVALID);
    EXPECT(hammer_hit_at(h, id, &limits[4], 1, (int64_t)1 << 48, &d), HAMMER_ERR_INVALID);
    EXPECT(hammer_peek_at(NULL, id, &limits[4], 1, &d), HAMMER_ERR_INVALID);
    EXPECT(hammer_hit(h, id, &limits[0], 1, NULL), HAMMER_ERR_INVALID);
    CHECK(d.allowed == 0 && d.limit == 0);
    EXPECT(hammer_stats(h, NULL), HAMMER_ERR_INVALID);
    EXPECT(hammer_stats(NULL, &st), HAMMER_ERR_INVALID);

    /* Batches: NULL handle, NULL arrays, n over the limit. */
    hammer_count_request cr = {id, 1, 1, 1};
    hammer_hit_request hr = {id, &limits[0], 1, -1};
    hammer_check_request kr = {id, 1000, 10, 1};
    int64_t counts[1];
    int statuses[1];
    EXPECT(hammer_count_hits(NULL, &cr, 1, counts, statuses), HAMMER_ERR_INVALID);
    EXPECT(hammer_count_hits(h, NULL, 1, counts, statuses), HAMMER_ERR_INVALID);
    EXPECT(hammer_count_hits(h, &cr, 1, NULL, statuses), HAMMER_ERR_INVALID);
    EXPECT(hammer_count_hits(h, &cr, 1000001, counts, statuses), HAMMER_ERR_INVALID);
    EXPECT(hammer_count_hits(h, &cr, (size_t)-1, counts, statuses), HAMMER_ERR_INVALID);
    EXPECT(hammer_hit_many(h, &hr, 1, NULL, NULL), HAMMER_ERR_INVALID);
    EXPECT(hammer_hit_many(h, NULL, 1, &d, NULL), HAMMER_ERR_INVALID);
    EXPECT(hammer_hit_many(h, &hr, (size_t)INT64_MAX + 1, &d, NULL), HAMMER_ERR_INVALID);
    EXPECT(hammer_check_rates(h, &kr, 1, NULL, statuses), HAMMER_ERR_INVALID);
    EXPECT(hammer_check_rates(NULL, &kr, 1, &d, statuses), HAMMER_ERR_INVALID);
    /* n = 0 is a no-op that succeeds, even with NULL arrays. */
    EXPECT(hammer_count_hits(h, NULL, 0, NULL, NULL), HAMMER_OK);
    EXPECT(hammer_hit_many(h, NULL, 0, NULL, NULL), HAMMER_OK);
    EXPECT(hammer_check_rates(h, NULL, 0, NULL, NULL), HAMMER_OK);

    hammer_close(NULL);
    CHECK(hammer_strerror(-1) != NULL && hammer_strerror(1 << 30) != NULL && hammer_strerror(INT32_MIN) != NULL);
    CHECK(strcmp(hammer_version(), HAMMER_VERSION_STRING) == 0);
}

/* Batches with valid and invalid requests mixed: each request gets its own status, the call the first failure. */
static void batches(hammer_t *h, const char *id, int64_t round)
{
    enum { N = 12 };
    hammer_count_request cr[N];
    hammer_hit_request hr[N];
    hammer_check_request kr[N];
    int64_t counts[N];
    hammer_decision out[N];
    int st[N];
    hammer_limit bad = {HAMMER_GCRA, 0, 1000, 0};
    for (int i = 0; i < N; i++) {
        cr[i] = (hammer_count_request){id, 1000 + round % 7, 5, 1};
        hr[i] = (hammer_hit_request){id, &limits[i % 5], 1, i % 2 ? -1 : 1000000 + round};
        kr[i] = (hammer_check_request){id, 1000, 100, 1};
    }
    EXPECT(hammer_count_hits(h, cr, N, counts, st), HAMMER_OK);
    for (int i = 1; i < N; i++) CHECK(st[i] == HAMMER_OK && counts[i] > counts[i - 1]);
    EXPECT(hammer_hit_many(h, hr, N, out, st), HAMMER_OK);
    for (int i = 0; i < N; i++) CHECK(st[i] == HAMMER_OK && valid_decision(&out[i]));
    EXPECT(hammer_check_rates(h, kr, N, out, NULL), HAMMER_OK);
    for (int i = 0; i < N; i++) CHECK(valid_decision(&out[i]));

    /* Invalid requests at 3, 5 and 8; the others still succeed. */
    cr[3].increment = -1;
    cr[5].id = NULL;
    cr[8].id = long_id;
    hr[3].lim = NULL;
    hr[5].lim = &bad;
    hr[8].cost = -3;
    hr[9].now_ms = INT64_MAX;
    kr[3].scale_ms = 0;
    kr[5].id = NULL;
    kr[8].increment = INT64_MIN;
    EXPECT(hammer_count_hits(h, cr, N, counts, st), HAMMER_ERR_INVALID);
    for (int i = 0; i < N; i++)
        CHECK(st[i] == ((i == 3 || i == 5 || i == 8) ? HAMMER_ERR_INVALID : HAMMER_OK));
    CHECK(counts[3] == 0 && counts[5] == 0 && counts[8] == 0 && counts[4] > 0);
    EXPECT(hammer_hit_many(h, hr, N, out, st), HAMMER_ERR_INVALID);
    for (int i = 0; i < N; i++)
        CHECK(st[i] == ((i == 3 || i == 5 || i == 8 || i == 9) ? HAMMER_ERR_INVALID : HAMMER_OK));
    CHECK(out[3].limit == 0 && out[4].limit == limits[4].limit);
    EXPECT(hammer_check_rates(h, kr, N, out, st), HAMMER_ERR_INVALID);
    for (int i = 0; i < N; i++)
        CHECK(st[i] == ((i == 3 || i == 5 || i == 8) ? HAMMER_ERR_INVALID : HAMMER_OK));
}

typedef struct worker_arg {
    int index;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *w = p;
    char own[160], sub[200];
    snprintf(own, sizeof own, "%s:w%d", shared_id, w->index);
    int64_t expected = 0;   /* the own id's bucket 7 count, which only this thread touches */
    hammer_decision d;
    hammer_bucket b;
    hammer_inspection in;
    hammer_stats_t st = HAMMER_STATS_INIT;
    int64_t n;
    for (int64_t round = 0; mono_ms() < deadline_ms; round++) {
        /* Fixed-window buckets of the own id: counts are exact. */
        EXPECT(hammer_count_hit(shared, own, 7, wall_ms(), 2, &n), HAMMER_OK);
        expected += 2;
        CHECK(n == expected);
        EXPECT(hammer_get_bucket(shared, own, 7, &b), HAMMER_OK);
        CHECK(b.found == 1 && b.count == expected && b.bucket == 7 && b.created > 0 && b.updated >= b.created);
        EXPECT(hammer_count_hit(shared, own, INT64_MIN, INT64_MIN, 0, &n), HAMMER_OK);
        EXPECT(hammer_count_hit(shared, own, INT64_MAX - round, INT64_MAX, INT64_MAX, &n), HAMMER_OK);
        CHECK(n == INT64_MAX);
        /* count + 1 overflows: Redis refuses the increment (the library says HAMMER_ERR_INVALID), the bucket
         * keeps its count. */
        EXPECT(hammer_count_hit(shared, own, INT64_MAX - round, 1, 1, &n), HAMMER_ERR_INVALID);
        CHECK(n == 0);
        EXPECT(hammer_get_bucket(shared, own, INT64_MAX - round, &b), HAMMER_OK);
        CHECK(b.found == 1 && b.count == INT64_MAX && b.created == INT64_MAX);

        /* The shared id: every thread at once. */
        EXPECT(hammer_count_hit(shared, shared_id, round % 3, wall_ms(), 1, &n), HAMMER_OK);
        CHECK(n >= 1);
        EXPECT(hammer_get_bucket(shared, shared_id, round % 3, &b), HAMMER_OK);
        CHECK(b.found == 1 && b.count >= 1);
        EXPECT(hammer_check_rate(shared, shared_id, 1000, 1000000, 1, &d), HAMMER_OK);
        CHECK(valid_decision(&d) && d.limit == 1000000);
        EXPECT(hammer_check_rate_at(shared, own, 60000, 5, 1, 1000 + round, &d), HAMMER_OK);
        CHECK(valid_decision(&d) && d.limit == 5);
        EXPECT(hammer_inspect_bucket(shared, shared_id, 1000, 1000000, &in), HAMMER_OK);
        CHECK(in.count >= 0 && in.remaining >= 0 && in.ms_to_next_bucket >= 0);

        for (int a = 0; a < 6; a++) {
            snprintf(sub, sizeof sub, "%s:a%d", own, a);
            EXPECT(hammer_hit(shared, shared_id, &limits[a], 1, &d), HAMMER_OK);
            CHECK(valid_decision(&d) && d.limit == limits[a].limit);
            EXPECT(hammer_peek(shared, sub, &limits[a], &d), HAMMER_OK);
            CHECK(valid_decision(&d));
            EXPECT(hammer_hit_at(shared, sub, &limits[a], 1 + round % 3, 1000000 + round * 10, &d), HAMMER_OK);
            CHECK(valid_decision(&d));
            EXPECT(hammer_peek_at(shared, sub, &limits[a], 1000000 + round * 10, &d), HAMMER_OK);
            CHECK(valid_decision(&d));
            /* Cost above capacity: denied, never passes. */
            EXPECT(hammer_hit_at(shared, sub, &limits[a], 1000000000, 1000000 + round * 10, &d), HAMMER_OK);
            CHECK(d.allowed == 0 && (a < 2 || d.retry_after_ms == -1));
            EXPECT(hammer_hit(shared, sub, &limits[a], 0, &d), HAMMER_OK);
            CHECK(d.allowed == 1);
        }

        batches(shared, own, round);
        bad_arguments(shared, own);
        if (round % 4 == 0) {
            EXPECT(hammer_get_bucket(shared, max_id, 1, &b), HAMMER_OK);
            CHECK(b.found == 0);
        }

        EXPECT(hammer_stats(shared, &st), HAMMER_OK);
        CHECK(st.calls > 0 && st.errors[0] == 0 && st.connections >= min_connections && st.p50_us <= st.p999_us);
        if (round % 8 == 7) {
            EXPECT(hammer_delete_buckets(shared, own, &n), HAMMER_OK);
            CHECK(n >= 1);
            expected = 0;
            EXPECT(hammer_get_bucket(shared, own, 7, &b), HAMMER_OK);
            CHECK(b.found == 0);
        }
    }
    EXPECT(hammer_delete_buckets(shared, own, NULL), HAMMER_OK);
    return NULL;
}

/* The non-blocking calls on the shared handle, while the workers make blocking calls on it: 64 ops in flight of
 * every kind, each tag completed exactly once. */
static void *async_worker(void *p)
{
    (void)p;
    enum { DEPTH = 64 };
    static unsigned char seen[1 << 20];
    char id[200];
    snprintf(id, sizeof id, "%s:async", shared_id);
    int fd = hammer_fd(shared);
    CHECK(fd >= 0);
    uint64_t submitted = 0, completed = 0;
    hammer_op ops[DEPTH];
    hammer_completion done[DEPTH];
    while (fd >= 0 && (mono_ms() < deadline_ms || completed < submitted) && submitted < sizeof seen) {
        int n = 0;
        while (mono_ms() < deadline_ms && submitted + (uint64_t)n - completed < DEPTH && submitted + (uint64_t)n < sizeof seen) {
            uint64_t t = submitted + (uint64_t)n;
            static const int kinds[] = { HAMMER_OP_COUNT_HIT, HAMMER_OP_HIT, HAMMER_OP_PEEK, HAMMER_OP_CHECK_RATE,
                                         HAMMER_OP_HIT_ALL, HAMMER_OP_GET_BUCKET, HAMMER_OP_INSPECT_BUCKET };
            hammer_op o = HAMMER_OP_INIT(kinds[t % 7], t, id);
            o.lims = &limits[t % 5];
            o.n_lims = 1;
            o.scale_ms = 1000;
            o.limit = 1000000;
            o.now_ms = 1;
            ops[n++] = o;
        }
        if (n > 0) {
            EXPECT(hammer_submit(shared, ops, (size_t)n), HAMMER_OK);
            submitted += (uint64_t)n;
        }
        struct pollfd pf = { fd, POLLIN, 0 };
        if (poll(&pf, 1, 5000) != 1) { CHECK(0); break; }
        size_t m = hammer_drain(shared, done, DEPTH);
        for (size_t i = 0; i < m; i++) {
            CHECK(done[i].tag < submitted && !seen[done[i].tag]);
            if (done[i].tag < sizeof seen) seen[done[i].tag] = 1;
            EXPECT(done[i].status, HAMMER_OK);
        }
        completed += m;
    }
    CHECK(completed == submitted && hammer_pending(shared) == 0);
    return NULL;
}

/* Opens and closes handles while the workers run: to the server, to a refused port, and with bad URLs. */
static void *opener(void *p)
{
    (void)p;
    static const char *bad_urls[] = {
        "", "redis://h/?expiry_ms=", "redis://127.0.0.1:0/?expiry_ms=1", "redis://127.0.0.1/?expiry_ms=0",
        "redis://127.0.0.1/?expiry_ms=1&expiry_ms=2", "unix://relative?expiry_ms=1", "http://x/?expiry_ms=1",
        "redis://[::1/?expiry_ms=1", "redis://h:99999/?expiry_ms=1", "redis://h/?expiry_ms=1&pool_size=0",
        "redis://h/?expiry_ms=1&bogus=1", "redis://%zz@h/?expiry_ms=1", "redis://h/?expiry_ms=1#frag",
        "redis://h/x?expiry_ms=1",
    };
    while (mono_ms() < deadline_ms) {
        hammer_t *h = (hammer_t *)1;
        hammer_decision d;
        int64_t n;
        if (EXPECT(hammer_open(url, &h), HAMMER_OK)) {
            EXPECT(hammer_count_hit(h, shared_id, 99, 1, 1, &n), HAMMER_OK);
            EXPECT(hammer_hit(h, shared_id, &limits[open_cycles % 5], 1, &d), HAMMER_OK);
            /* Closed with ops pending: those queued are dropped, those in flight finish first. */
            hammer_op ops[16];
            for (int i = 0; i < 16; i++) {
                ops[i] = (hammer_op)HAMMER_OP_INIT(HAMMER_OP_HIT, (uint64_t)i, shared_id);
                ops[i].lims = &limits[i % 5];
            }
            EXPECT(hammer_submit(h, ops, 16), HAMMER_OK);
            hammer_close(h);
        }
        h = (hammer_t *)1;
        EXPECT(hammer_open(refused_url, &h), HAMMER_ERR_CONNECT);
        CHECK(h == NULL);
        for (size_t i = 0; i < sizeof bad_urls / sizeof bad_urls[0]; i++) {
            h = (hammer_t *)1;
            EXPECT(hammer_open(bad_urls[i], &h), HAMMER_ERR_INVALID);
            CHECK(h == NULL);
            hammer_close(h);
        }
        EXPECT(hammer_open(NULL, &h), HAMMER_ERR_INVALID);
        EXPECT(hammer_open(url, NULL), HAMMER_ERR_INVALID);
        EXPECT(hammer_open(long_id, &h), HAMMER_ERR_INVALID);
        atomic_fetch_add(&open_cycles, 1);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s REDIS_URL [SECONDS]\n", argv[0]);
        return 2;
    }
    url = argv[1];
    if (strncmp(url, "memory://", 9) == 0) min_connections = 0;
    int seconds = argc > 2 ? atoi(argv[2]) : 3;
    if (seconds < 1 || seconds > 600) seconds = 3;
    /* A loopback port nothing listens on (port 1 needs root to bind, and nothing does here). */
    snprintf(refused_url, sizeof refused_url, "redis://127.0.0.1:1/?expiry_ms=1000&connect_timeout_ms=500");
    snprintf(shared_id, sizeof shared_id, "stress:%ld:%" PRId64, (long)getpid(), wall_ms());
    long_id = malloc(LONG_ID + 1);
    max_id = malloc(65536 + 1);
    if (!long_id || !max_id) return 2;
    memset(long_id, 'x', LONG_ID);
    long_id[LONG_ID] = 0;
    memset(max_id, 'y', 65536);
    max_id[65536] = 0;

    if (hammer_open(url, &shared) != HAMMER_OK) {
        fprintf(stdout, "FAIL hammer_open(%s): %s\n", url, hammer_last_error());
        return 1;
    }
    deadline_ms = mono_ms() + seconds * 1000;
    pthread_t t[WORKERS + 2];
    worker_arg args[WORKERS];
    int started = 0;
    for (int i = 0; i < WORKERS; i++) {
        args[i].index = i;
        if (pthread_create(&t[started], NULL, worker, &args[i]) == 0) started++;
    }
    if (pthread_create(&t[started], NULL, opener, NULL) == 0) started++;
    if (pthread_create(&t[started], NULL, async_worker, NULL) == 0) started++;
    for (int i = 0; i < started; i++) pthread_join(t[i], NULL);
    CHECK(started == WORKERS + 2);

    hammer_stats_t st = HAMMER_STATS_INIT;
    EXPECT(hammer_stats(shared, &st), HAMMER_OK);
    CHECK(st.calls > 0 && st.connections >= min_connections);
    EXPECT(hammer_delete_buckets(shared, shared_id, NULL), HAMMER_OK);
    hammer_close(shared);
    free(long_id);
    free(max_id);

    long f = atomic_load(&failures);
    printf("stress: %ld calls, %ld open cycles, %ld unexpected\n", atomic_load(&calls), atomic_load(&open_cycles), f);
    return f ? 1 : 0;
}
