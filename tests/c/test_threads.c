/*
 * test_threads.c — THREADS threads x HITS hits on one bucket lose nothing:
 *   1. through ONE shared handle whose pool (pool_size=4) is smaller than the number of threads;
 *   2. through one handle per thread.
 * Every hit returns the count right after it, so the THREADS * HITS returned counts must be exactly 1..THREADS*HITS,
 * each once, and the bucket must end at THREADS * HITS.
 *
 *   build/tests/test_threads REDIS_URL
 */
#include "testutil.h"

#include <pthread.h>
#include <stdlib.h>

#define THREADS 16
#define HITS    1000
#define TOTAL   (THREADS * HITS)

typedef struct run {
    const char *url;         /* per-thread handles open this */
    hammer_t *shared;        /* or all threads use this one */
    const char *id;
    atomic_uchar *seen;      /* seen[c] counts how often count c was returned; TOTAL + 1 entries */
    atomic_int errors;
    atomic_int out_of_range;
} run;

static void *worker(void *arg)
{
    run *r = arg;
    hammer_t *h = r->shared;
    if (h == NULL && hammer_open(r->url, &h) != HAMMER_OK) {
        CHECK(0, "worker: hammer_open");
        atomic_fetch_add(&r->errors, 1);
        return NULL;
    }
    for (int i = 0; i < HITS; i++) {
        int64_t count = 0;
        int rc = hammer_count_hit(h, r->id, 42, 1000 + i, 1, &count);
        if (!CHECK_QUIET(rc == HAMMER_OK, "worker: hammer_count_hit -> %d (%s)", rc, hammer_strerror(rc))) {
            atomic_fetch_add(&r->errors, 1);
            break;
        }
        if (count < 1 || count > TOTAL) atomic_fetch_add(&r->out_of_range, 1);
        else atomic_fetch_add(&r->seen[count], 1);
    }
    if (r->shared == NULL) hammer_close(h);
    return NULL;
}

/* Runs THREADS workers on a fresh id and checks the result; `shared` is NULL for one handle per thread. */
static void hammer_from_threads(const char *label, const char *url, hammer_t *shared, hammer_t *reader)
{
    char id[128];
    test_unique_id(id, sizeof id, label);
    run r = {.url = url, .shared = shared, .id = id, .seen = calloc(TOTAL + 1, sizeof(atomic_uchar))};
    atomic_init(&r.errors, 0);
    atomic_init(&r.out_of_range, 0);
    if (!CHECK(r.seen != NULL, "%s: calloc", label)) return;

    pthread_t t[THREADS];
    int started = 0;
    for (int i = 0; i < THREADS; i++)
        if (CHECK_QUIET(pthread_create(&t[i], NULL, worker, &r) == 0, "%s: pthread_create %d", label, i)) started++;
        else break;
    for (int i = 0; i < started; i++) pthread_join(t[i], NULL);

    CHECK(started == THREADS, "%s: %d threads started", label, started);
    CHECK(atomic_load(&r.errors) == 0, "%s: no call failed (%d failed)", label, atomic_load(&r.errors));
    CHECK(atomic_load(&r.out_of_range) == 0, "%s: every returned count is in 1..%d (%d were not)", label, TOTAL,
          atomic_load(&r.out_of_range));
    int missing = 0, repeated = 0;
    for (int c = 1; c <= TOTAL; c++) {
        unsigned n = atomic_load(&r.seen[c]);
        if (n == 0) missing++;
        if (n > 1) repeated++;
    }
    CHECK(missing == 0 && repeated == 0, "%s: the returned counts are exactly 1..%d, each once (%d missing, %d repeated)",
          label, TOTAL, missing, repeated);

    hammer_bucket b;
    CHECK_STATUS(hammer_get_bucket(reader, id, 42, &b), HAMMER_OK);
    CHECK(b.found == 1 && b.count == TOTAL, "%s: bucket count %" PRId64 " == %d threads x %d hits", label, b.count,
          THREADS, HITS);
    int64_t deleted = 0;
    CHECK_STATUS(hammer_delete_buckets(reader, id, &deleted), HAMMER_OK);
    CHECK_EQ_I64(deleted, 1);
    free((void *)r.seen);
}

int main(int argc, char **argv)
{
    const char *arg = test_url(argc, argv);
    if (arg == NULL) return 2;
    char url[4096];
    snprintf(url, sizeof url, "%s%cpool_size=4", arg, strchr(arg, '?') ? '&' : '?');

    hammer_t *h = NULL;
    CHECK_STATUS(hammer_open(url, &h), HAMMER_OK);
    if (h == NULL) return test_summary("test_threads");

    hammer_from_threads("one-handle", url, h, h);
    hammer_from_threads("handle-per-thread", url, NULL, h);

    hammer_close(h);
    return test_summary("test_threads");
}
