/*
 * test_abi.c — the 1.0 ABI of include/hammer.h: pinned values, sizes and offsets (checked when this file compiles),
 * and at run time the rules that let it grow: reserved space cleared in results and refused when not 0 in
 * requests, hammer_stats_t's size honoured both ways, the version number, and closed handles caught.
 *
 *   build/tests/test_abi REDIS_URL
 */
#include "testutil.h"

#include <stddef.h>
#include <stdlib.h>

#define PINNED(cond) _Static_assert(cond, #cond)

/* Statuses, algorithms and limits: values pinned for all of 1.x. */
PINNED(HAMMER_OK == 0 && HAMMER_ERR_INVALID == 1 && HAMMER_ERR_CONNECT == 2 && HAMMER_ERR_TIMEOUT == 3);
PINNED(HAMMER_ERR_REDIS == 4 && HAMMER_ERR_PROTOCOL == 5 && HAMMER_ERR_NOMEM == 6 && HAMMER_ERR_INTERNAL == 7);
PINNED(HAMMER_STATUS_LIMIT == 16);
PINNED(HAMMER_FIXED_WINDOW == 0 && HAMMER_SLIDING_WINDOW == 1 && HAMMER_TOKEN_BUCKET == 2);
PINNED(HAMMER_LEAKY_BUCKET == 3 && HAMMER_GCRA == 4 && HAMMER_SLIDING_COUNTER == 5);
PINNED(HAMMER_MAX_ID_BYTES == 65536 && HAMMER_MAX_LIMITS == 16);
PINNED(HAMMER_VERSION_NUMBER == HAMMER_VERSION_MAJOR * 10000 + HAMMER_VERSION_MINOR * 100 + HAMMER_VERSION_PATCH);

/* The 1.0 layouts (x86_64 / aarch64 LP64): a field may never move, a size may never change, except
 * hammer_stats_t, which may only grow at its end. */
PINNED(sizeof(hammer_bucket) == 56);
PINNED(offsetof(hammer_bucket, bucket) == 0 && offsetof(hammer_bucket, count) == 8);
PINNED(offsetof(hammer_bucket, created) == 16 && offsetof(hammer_bucket, updated) == 24);
PINNED(offsetof(hammer_bucket, found) == 32 && offsetof(hammer_bucket, reserved) == 40);

PINNED(sizeof(hammer_decision) == 88);
PINNED(offsetof(hammer_decision, allowed) == 0 && offsetof(hammer_decision, count) == 8);
PINNED(offsetof(hammer_decision, limit) == 16 && offsetof(hammer_decision, remaining) == 24);
PINNED(offsetof(hammer_decision, retry_after_ms) == 32 && offsetof(hammer_decision, reset_after_ms) == 40);
PINNED(offsetof(hammer_decision, degraded) == 48 && offsetof(hammer_decision, reserved) == 56);
PINNED(offsetof(hammer_decision, decided_by) == 52);   /* 1.0's reserved32, 0 for a single limit */

PINNED(sizeof(hammer_inspection) == 64);
PINNED(offsetof(hammer_inspection, count) == 0 && offsetof(hammer_inspection, remaining) == 8);
PINNED(offsetof(hammer_inspection, ms_to_next_bucket) == 16 && offsetof(hammer_inspection, created) == 24);
PINNED(offsetof(hammer_inspection, updated) == 32 && offsetof(hammer_inspection, reserved) == 40);

PINNED(sizeof(hammer_limit) == 48);
PINNED(offsetof(hammer_limit, algorithm) == 0 && offsetof(hammer_limit, limit) == 8);
PINNED(offsetof(hammer_limit, period_ms) == 16 && offsetof(hammer_limit, burst) == 24);
PINNED(offsetof(hammer_limit, reserved) == 32);

PINNED(sizeof(hammer_count_request) == 48);
PINNED(offsetof(hammer_count_request, id) == 0 && offsetof(hammer_count_request, bucket) == 8);
PINNED(offsetof(hammer_count_request, now_ms) == 16 && offsetof(hammer_count_request, increment) == 24);
PINNED(offsetof(hammer_count_request, reserved) == 32);
PINNED(sizeof(hammer_hit_request) == 48);
PINNED(offsetof(hammer_hit_request, id) == 0 && offsetof(hammer_hit_request, lim) == 8);
PINNED(offsetof(hammer_hit_request, cost) == 16 && offsetof(hammer_hit_request, now_ms) == 24);
PINNED(offsetof(hammer_hit_request, reserved) == 32);
PINNED(sizeof(hammer_check_request) == 48);
PINNED(offsetof(hammer_check_request, id) == 0 && offsetof(hammer_check_request, scale_ms) == 8);
PINNED(offsetof(hammer_check_request, limit) == 16 && offsetof(hammer_check_request, increment) == 24);
PINNED(offsetof(hammer_check_request, reserved) == 32);
PINNED(sizeof(hammer_multi_request) == 56);
PINNED(offsetof(hammer_multi_request, id) == 0 && offsetof(hammer_multi_request, lims) == 8);
PINNED(offsetof(hammer_multi_request, n_lims) == 16 && offsetof(hammer_multi_request, cost) == 24);
PINNED(offsetof(hammer_multi_request, now_ms) == 32 && offsetof(hammer_multi_request, reserved) == 40);

/* The completions (1.x additions, appended): op kinds and both structs pinned as 1.0's. */
PINNED(HAMMER_OP_COUNT_HIT == 1 && HAMMER_OP_GET_BUCKET == 2 && HAMMER_OP_DELETE_BUCKETS == 3);
PINNED(HAMMER_OP_CHECK_RATE == 4 && HAMMER_OP_CHECK_RATE_AT == 5 && HAMMER_OP_INSPECT_BUCKET == 6);
PINNED(HAMMER_OP_HIT == 7 && HAMMER_OP_HIT_AT == 8 && HAMMER_OP_PEEK == 9 && HAMMER_OP_PEEK_AT == 10);
PINNED(HAMMER_OP_HIT_ALL == 11 && HAMMER_OP_HIT_ALL_AT == 12 && HAMMER_OP_PEEK_ALL == 13 && HAMMER_OP_PEEK_ALL_AT == 14);
PINNED(HAMMER_MESSAGE_BYTES == 256);
PINNED(sizeof(hammer_op) == 112);
PINNED(offsetof(hammer_op, kind) == 0 && offsetof(hammer_op, reserved32) == 4 && offsetof(hammer_op, tag) == 8);
PINNED(offsetof(hammer_op, id) == 16 && offsetof(hammer_op, lims) == 24 && offsetof(hammer_op, n_lims) == 32);
PINNED(offsetof(hammer_op, bucket) == 40 && offsetof(hammer_op, scale_ms) == 48 && offsetof(hammer_op, limit) == 56);
PINNED(offsetof(hammer_op, amount) == 64 && offsetof(hammer_op, now_ms) == 72 && offsetof(hammer_op, reserved) == 80);
PINNED(sizeof(hammer_completion) == 520);
PINNED(offsetof(hammer_completion, tag) == 0 && offsetof(hammer_completion, status) == 8);
PINNED(offsetof(hammer_completion, kind) == 12 && offsetof(hammer_completion, value) == 16);
PINNED(offsetof(hammer_completion, decision) == 24 && offsetof(hammer_completion, bucket) == 112);
PINNED(offsetof(hammer_completion, inspection) == 168 && offsetof(hammer_completion, reserved) == 232);
PINNED(offsetof(hammer_completion, message) == 264);

/* The handle's clock in a hit request, and the INIT macros' values (static initializers: constant expressions). */
PINNED(HAMMER_NOW == -1);
static const hammer_limit LIMIT_INIT = HAMMER_LIMIT_INIT(HAMMER_GCRA, 10, 1000);
static const hammer_count_request COUNT_INIT = HAMMER_COUNT_REQUEST_INIT;
static const hammer_hit_request HIT_INIT = HAMMER_HIT_REQUEST_INIT;
static const hammer_check_request CHECK_INIT = HAMMER_CHECK_REQUEST_INIT;

static void test_init_macros(void)
{
    CHECK(LIMIT_INIT.algorithm == HAMMER_GCRA && LIMIT_INIT.limit == 10 && LIMIT_INIT.period_ms == 1000 &&
              LIMIT_INIT.burst == 0 && LIMIT_INIT.reserved[0] == 0 && LIMIT_INIT.reserved[1] == 0,
          "HAMMER_LIMIT_INIT(alg, limit, period_ms): those three, burst and reserved 0");
    CHECK(COUNT_INIT.id == NULL && COUNT_INIT.bucket == 0 && COUNT_INIT.now_ms == 0 && COUNT_INIT.increment == 1 &&
              COUNT_INIT.reserved[0] == 0 && COUNT_INIT.reserved[1] == 0,
          "HAMMER_COUNT_REQUEST_INIT: increment 1, the rest 0");
    CHECK(HIT_INIT.id == NULL && HIT_INIT.lim == NULL && HIT_INIT.cost == 1 && HIT_INIT.now_ms == HAMMER_NOW &&
              HIT_INIT.reserved[0] == 0 && HIT_INIT.reserved[1] == 0,
          "HAMMER_HIT_REQUEST_INIT: cost 1, now_ms HAMMER_NOW, the rest 0");
    CHECK(CHECK_INIT.id == NULL && CHECK_INIT.scale_ms == 0 && CHECK_INIT.limit == 0 && CHECK_INIT.increment == 1 &&
              CHECK_INIT.reserved[0] == 0 && CHECK_INIT.reserved[1] == 0,
          "HAMMER_CHECK_REQUEST_INIT: increment 1, the rest 0");
}

#define STATS_1_0 208   /* the least a caller may pass: the fields up to connections */
PINNED(sizeof(hammer_stats_t) == 264);
PINNED(offsetof(hammer_stats_t, size) == 0 && offsetof(hammer_stats_t, spin_cpus) == 4);
PINNED(offsetof(hammer_stats_t, calls) == 8 && offsetof(hammer_stats_t, allowed) == 16);
PINNED(offsetof(hammer_stats_t, denied) == 24 && offsetof(hammer_stats_t, errors) == 32);
PINNED(offsetof(hammer_stats_t, reconnects) == 160 && offsetof(hammer_stats_t, degraded) == 168);
PINNED(offsetof(hammer_stats_t, p50_us) == 176 && offsetof(hammer_stats_t, p99_us) == 184);
PINNED(offsetof(hammer_stats_t, p999_us) == 192 && offsetof(hammer_stats_t, connections) == 200);
PINNED(offsetof(hammer_stats_t, cluster_moved) == 208 && offsetof(hammer_stats_t, cluster_ask) == 216);
PINNED(offsetof(hammer_stats_t, cluster_tryagain) == 224 && offsetof(hammer_stats_t, cluster_down) == 232);
PINNED(offsetof(hammer_stats_t, cluster_map_reads) == 240 && offsetof(hammer_stats_t, cluster_nodes) == 248);
PINNED(offsetof(hammer_stats_t, deny_cache_hits) == 256);

static int all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0) return 0;
    return 1;
}

static void test_version_number(void)
{
    CHECK(hammer_version_number() == HAMMER_VERSION_NUMBER, "hammer_version_number() %u == %d",
          hammer_version_number(), HAMMER_VERSION_NUMBER);
    char want[32];
    snprintf(want, sizeof want, "%u.%u.%u", hammer_version_number() / 10000, hammer_version_number() / 100 % 100,
             hammer_version_number() % 100);
    CHECK(strcmp(hammer_version(), want) == 0, "hammer_version() \"%s\" spells the number (%s)", hammer_version(),
          want);
}

/* Results: the library clears the reserved space, whatever the caller left there. */
static void test_reserved_results(hammer_t *h, const char *id)
{
    hammer_limit lim = {HAMMER_TOKEN_BUCKET, 5, 1000, 0};
    hammer_decision d;
    memset(&d, 0xff, sizeof d);
    CHECK_STATUS(hammer_hit(h, id, &lim, 1, &d), HAMMER_OK);
    CHECK(d.allowed == 1 && d.decided_by == 0 && all_zero(d.reserved, sizeof d.reserved),
          "hammer_hit clears hammer_decision's reserved space, and decided_by is 0 for a single limit");

    hammer_limit two[2] = {{HAMMER_SLIDING_COUNTER, 100, 60000, 0}, {HAMMER_TOKEN_BUCKET, 5, 1000, 0}};
    memset(&d, 0xff, sizeof d);
    CHECK_STATUS(hammer_hit_all(h, id, two, 2, 1, &d), HAMMER_OK);
    CHECK(d.allowed == 1 && d.decided_by == 1 && d.remaining == 3 && all_zero(d.reserved, sizeof d.reserved),
          "hammer_hit_all clears the reserved space and names the token bucket (decided_by %d)", d.decided_by);

    hammer_bucket b;
    memset(&b, 0xff, sizeof b);
    CHECK_STATUS(hammer_get_bucket(h, id, 1, &b), HAMMER_OK);
    CHECK(b.found == 0 && b.reserved32 == 0 && all_zero(b.reserved, sizeof b.reserved),
          "hammer_get_bucket clears hammer_bucket's reserved space");

    hammer_inspection in;
    memset(&in, 0xff, sizeof in);
    CHECK_STATUS(hammer_inspect_bucket(h, id, 60000, 10, &in), HAMMER_OK);
    CHECK(all_zero(in.reserved, sizeof in.reserved), "hammer_inspect_bucket clears hammer_inspection's reserved");

    hammer_decision many[2];
    memset(many, 0xff, sizeof many);
    hammer_hit_request hr[2] = {{id, &lim, 1, -1}, {id, &lim, 0, -1}};
    CHECK_STATUS(hammer_hit_many(h, hr, 2, many, NULL), HAMMER_OK);
    CHECK(all_zero(many[0].reserved, sizeof many[0].reserved) && all_zero(many[1].reserved, sizeof many[1].reserved),
          "hammer_hit_many clears each decision's reserved space (stride = sizeof(hammer_decision))");
}

/* Requests: a reserved field that is not 0 is refused, alone, before anything is sent. */
static void test_reserved_requests(hammer_t *h, const char *id)
{
    hammer_limit bad = {HAMMER_GCRA, 5, 1000, 0};
    bad.reserved[1] = 7;
    hammer_decision d;
    CHECK_STATUS(hammer_hit(h, id, &bad, 1, &d), HAMMER_ERR_INVALID);
    CHECK(test_contains_ci(hammer_last_error(), "reserved"), "the message names the reserved field: \"%s\"",
          hammer_last_error());
    CHECK_STATUS(hammer_peek(h, id, &bad, &d), HAMMER_ERR_INVALID);

    hammer_limit lim = {HAMMER_GCRA, 5, 1000, 0};
    hammer_hit_request hr[3] = {{id, &lim, 1, -1}, {id, &lim, 1, -1}, {id, &bad, 1, -1}};
    hr[1].reserved[0] = 1;
    hammer_decision out[3];
    int st[3];
    CHECK_STATUS(hammer_hit_many(h, hr, 3, out, st), HAMMER_ERR_INVALID);
    CHECK(st[0] == HAMMER_OK && st[1] == HAMMER_ERR_INVALID && st[2] == HAMMER_ERR_INVALID,
          "hit_many: only the requests with reserved fields set fail (%d %d %d)", st[0], st[1], st[2]);

    hammer_count_request cr[2] = {{id, 3, 1000, 1}, {id, 3, 1000, 1}};
    cr[0].reserved[1] = -1;
    int64_t counts[2];
    CHECK_STATUS(hammer_count_hits(h, cr, 2, counts, st), HAMMER_ERR_INVALID);
    CHECK(st[0] == HAMMER_ERR_INVALID && st[1] == HAMMER_OK && counts[1] == 1,
          "count_hits: the request with a reserved field fails alone (%d %d, count %lld)", st[0], st[1],
          (long long)counts[1]);

    hammer_check_request kr[2] = {{id, 60000, 5, 1}, {id, 60000, 5, 1}};
    kr[1].reserved[0] = 1;
    CHECK_STATUS(hammer_check_rates(h, kr, 2, out, st), HAMMER_ERR_INVALID);
    CHECK(st[0] == HAMMER_OK && st[1] == HAMMER_ERR_INVALID, "check_rates: the request with a reserved field fails");

    hammer_multi_request mr[2] = {{id, &lim, 1, 1, 0}, {id, &lim, 1, 1, 0}};
    mr[0].reserved[0] = 2;
    CHECK_STATUS(hammer_hit_all_many(h, mr, 2, out, st), HAMMER_ERR_INVALID);
    CHECK(st[0] == HAMMER_ERR_INVALID && st[1] == HAMMER_OK && out[1].allowed == 1,
          "hit_all_many: the request with a reserved field fails alone (%d %d)", st[0], st[1]);
    hammer_limit two[2] = {lim, bad};
    CHECK_STATUS(hammer_hit_all(h, id, two, 2, 1, &d), HAMMER_ERR_INVALID);
    CHECK(test_contains_ci(hammer_last_error(), "lims[1]") && test_contains_ci(hammer_last_error(), "reserved"),
          "hit_all: the message names the limit and its reserved field: \"%s\"", hammer_last_error());
}

/* hammer_stats_t: never a byte past the caller's size; an older caller's struct keeps working. */
static void test_stats_size(hammer_t *h)
{
    struct {
        hammer_stats_t s;
        unsigned char canary[64];
    } old;
    memset(&old, 0xab, sizeof old);
    old.s.size = STATS_1_0; /* a caller that knows the fields up to connections only (the smallest allowed) */
    CHECK_STATUS(hammer_stats(h, &old.s), HAMMER_OK);
    int untouched = 1;
    for (size_t i = 0; i < sizeof old.canary; i++) untouched &= old.canary[i] == 0xab;
    const unsigned char *raw = (const unsigned char *)&old.s;
    for (size_t i = STATS_1_0; i < sizeof old.s; i++) untouched &= raw[i] == 0xab;
    CHECK(untouched && old.s.size == STATS_1_0 && old.s.connections >= 1,
          "a 208-byte hammer_stats_t: filled (%lld connections), size stays %u, nothing written past it",
          (long long)old.s.connections, old.s.size);

    struct {
        hammer_stats_t s;
        unsigned char later[64];
    } newer;
    memset(&newer, 0xcd, sizeof newer);
    newer.s.size = (uint32_t)sizeof newer; /* a caller built against a later, larger header */
    CHECK_STATUS(hammer_stats(h, &newer.s), HAMMER_OK);
    untouched = 1;
    for (size_t i = 0; i < sizeof newer.later; i++) untouched &= newer.later[i] == 0xcd;
    CHECK(newer.s.size == sizeof(hammer_stats_t) && untouched,
          "a larger hammer_stats_t: size says %u bytes were filled, the rest is left alone", newer.s.size);

    hammer_stats_t small = HAMMER_STATS_INIT;
    small.size = STATS_1_0 - 8;
    CHECK_STATUS(hammer_stats(h, &small), HAMMER_ERR_INVALID);
    CHECK(test_contains_ci(hammer_last_error(), "size"), "a size below 208 is refused: \"%s\"", hammer_last_error());
    hammer_stats_t unset;
    memset(&unset, 0, sizeof unset);
    CHECK_STATUS(hammer_stats(h, &unset), HAMMER_ERR_INVALID);

    hammer_stats_t s = HAMMER_STATS_INIT;
    CHECK_STATUS(hammer_stats(h, &s), HAMMER_OK);
    CHECK(s.spin_cpus >= 1, "spin_cpus %u >= 1", s.spin_cpus);
}

/* A closed handle is caught while its memory has not been reused. */
static void test_closed_handle(const char *url, const char *id)
{
    hammer_t *h = NULL;
    CHECK_STATUS(hammer_open(url, &h), HAMMER_OK);
    if (h == NULL) return;
    hammer_close(h);
    int64_t n = -1;
    CHECK_STATUS(hammer_count_hit(h, id, 1, 1000, 1, &n), HAMMER_ERR_INVALID);
    CHECK(n == 0 && test_contains_ci(hammer_last_error(), "not open"), "a call on a closed handle: \"%s\"",
          hammer_last_error());
    hammer_close(h); /* a second close is a no-op */
    CHECK(1, "a second hammer_close returned");
}

int main(int argc, char **argv)
{
    const char *url = test_url(argc, argv);
    if (url == NULL) return 2;
    char id[128];
    test_unique_id(id, sizeof id, "abi");
    test_version_number();
    test_init_macros();
    hammer_t *h = NULL;
    CHECK_STATUS(hammer_open(url, &h), HAMMER_OK);
    if (h == NULL) return test_summary("test_abi");
    test_reserved_results(h, id);
    test_reserved_requests(h, id);
    test_stats_size(h);
    hammer_delete_buckets(h, id, NULL);
    hammer_close(h);
    test_closed_handle(url, id);
    return test_summary("test_abi");
}
