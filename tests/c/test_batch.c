/*
 * test_batch.c — the batch calls and the statistics: hammer_hit_many, hammer_count_hits and hammer_check_rates each
 * decide exactly as the same requests made one by one (on twin ids), per-request statuses with bad requests mixed in,
 * n = 0 and NULL arrays, and hammer_stats counting calls, allowed and denied exactly.
 *
 *   build/tests/test_batch REDIS_URL
 */
#include "testutil.h"

#include <stdlib.h>

#define N   64
#define IDS 3
#define T0  INT64_C(1700000040000)

static const char *const NAMES[] = {"fixed window", "sliding window", "token bucket", "leaky bucket", "gcra"};

static int same_decision(const hammer_decision *a, const hammer_decision *b)
{
    return a->allowed == b->allowed && a->count == b->count && a->limit == b->limit && a->remaining == b->remaining &&
           a->retry_after_ms == b->retry_after_ms && a->reset_after_ms == b->reset_after_ms &&
           a->degraded == b->degraded;
}

static int decision_is_zero(const hammer_decision *d)
{
    return d->allowed == 0 && d->count == 0 && d->limit == 0 && d->remaining == 0 && d->retry_after_ms == 0 &&
           d->reset_after_ms == 0 && d->degraded == 0;
}

static void print_decision(const char *what, int i, const hammer_decision *d)
{
    printf("     %s[%d]: allowed %d count %" PRId64 " limit %" PRId64 " remaining %" PRId64 " retry %" PRId64
           " reset %" PRId64 " degraded %d\n",
           what, i, d->allowed, d->count, d->limit, d->remaining, d->retry_after_ms, d->reset_after_ms, d->degraded);
}

/* 64 requests over 3 ids x 5 algorithms, costs 0..3 and some above capacity, times moving forward: one hit_many on
 * ids "b<k>" equals hammer_hit_at one by one on ids "s<k>". */
static void test_hit_many_equals_sequential(hammer_t *h, const char *base)
{
    char bid[IDS][160], sid[IDS][160];
    for (int k = 0; k < IDS; k++) {
        snprintf(bid[k], sizeof bid[k], "%s:b%d", base, k);
        snprintf(sid[k], sizeof sid[k], "%s:s%d", base, k);
    }
    hammer_limit lims[6];
    for (int a = 0; a < 6; a++) {
        memset(&lims[a], 0, sizeof lims[a]);
        lims[a].algorithm = a;
        lims[a].limit = 3;
        lims[a].period_ms = 10000;
        lims[a].burst = a >= HAMMER_TOKEN_BUCKET ? 4 : 0;
    }
    hammer_hit_request batch[N], seq[N];
    for (int i = 0; i < N; i++) {
        int k = i % IDS, a = (i / IDS) % 6;
        int64_t cost = (i * 7) % 4;              /* 0..3 */
        if (i % 13 == 5) cost = 5;               /* above every capacity here: retry -1 */
        int64_t now = T0 + (int64_t)i * 450;     /* refills and window ends happen along the way */
        batch[i] = (hammer_hit_request){bid[k], &lims[a], cost, now};
        seq[i] = (hammer_hit_request){sid[k], &lims[a], cost, now};
    }
    hammer_decision out[N], one[N];
    int statuses[N];
    memset(out, 0x5a, sizeof out);
    for (int i = 0; i < N; i++) statuses[i] = -77;
    CHECK_STATUS(hammer_hit_many(h, batch, N, out, statuses), HAMMER_OK);
    int all_ok = 1, same = 1, allowed = 0, denied = 0, never = 0;
    for (int i = 0; i < N; i++) {
        if (statuses[i] != HAMMER_OK) all_ok = 0;
        int rc = hammer_hit_at(h, seq[i].id, seq[i].lim, seq[i].cost, seq[i].now_ms, &one[i]);
        if (rc != HAMMER_OK) all_ok = 0;
        if (!same_decision(&out[i], &one[i])) {
            if (same) printf("     request %d: %s cost %" PRId64 " at +%" PRId64 "\n", i,
                             NAMES[seq[i].lim->algorithm], seq[i].cost, seq[i].now_ms - T0);
            if (same) print_decision("batch", i, &out[i]), print_decision("single", i, &one[i]);
            same = 0;
        }
        if (out[i].allowed) allowed++;
        else denied++;
        if (out[i].retry_after_ms == -1) never++;
    }
    CHECK(all_ok, "hit_many: %d statuses and %d single calls all HAMMER_OK", N, N);
    CHECK(same, "hit_many of %d requests == the same %d hammer_hit_at calls one by one (every field)", N, N);
    CHECK(allowed > 0 && denied > 0 && never > 0, "the sequence mixes allowed (%d), denied (%d) and never (%d)",
          allowed, denied, never);

    /* The state the batch left equals the sequential one: peeks agree for every id and algorithm. */
    int peeks = 1;
    for (int k = 0; k < IDS; k++)
        for (int a = 0; a < 6; a++) {
            hammer_decision pb, ps;
            if (hammer_peek_at(h, bid[k], &lims[a], T0 + N * 450, &pb) != HAMMER_OK ||
                hammer_peek_at(h, sid[k], &lims[a], T0 + N * 450, &ps) != HAMMER_OK || !same_decision(&pb, &ps))
                peeks = 0;
        }
    CHECK(peeks, "after the batch, peeks on batch ids == peeks on sequential ids");

    /* now_ms < 0: the handle's clock, as hammer_hit. */
    char cid[160];
    snprintf(cid, sizeof cid, "%s:clock", base);
    hammer_hit_request r[2] = {{cid, &lims[HAMMER_TOKEN_BUCKET], 1, -1}, {cid, &lims[HAMMER_TOKEN_BUCKET], 2, -1}};
    CHECK_STATUS(hammer_hit_many(h, r, 2, out, NULL), HAMMER_OK);
    CHECK(out[0].allowed && out[0].remaining == 3 && out[1].allowed && out[1].remaining == 1,
          "hit_many with now_ms -1 (clock): remaining %" PRId64 " then %" PRId64, out[0].remaining, out[1].remaining);

    for (int k = 0; k < IDS; k++) {
        hammer_delete_buckets(h, bid[k], NULL);
        hammer_delete_buckets(h, sid[k], NULL);
    }
    hammer_delete_buckets(h, cid, NULL);
}

/* Bad requests mixed in: each gets its status and a zeroed decision, the others are decided, the call returns the
 * first failure's status and hammer_last_error() names that request. */
static void test_hit_many_statuses(hammer_t *h, const char *base)
{
    char id[160];
    snprintf(id, sizeof id, "%s:mixed", base);
    hammer_limit ok = {HAMMER_SLIDING_WINDOW, 4, 60000, 0};
    hammer_limit bad_alg = {7, 4, 60000, 0};
    hammer_limit bad_period = {HAMMER_GCRA, 4, 0, 0};
    hammer_limit overflow = {HAMMER_TOKEN_BUCKET, 1000000000, 1000000000, 0};
    hammer_hit_request reqs[] = {
        {id, &ok, 1, T0},            /* 0 ok: allowed, remaining 3 */
        {id, &ok, -1, T0},           /* 1 cost -1 */
        {id, &ok, 1, T0},            /* 2 ok: remaining 2 */
        {id, NULL, 1, T0},           /* 3 NULL lim */
        {NULL, &ok, 1, T0},          /* 4 NULL id */
        {id, &bad_alg, 1, T0},       /* 5 algorithm 7 */
        {id, &ok, 2, T0},            /* 6 ok: remaining 0 */
        {id, &bad_period, 1, T0},    /* 7 period 0 */
        {id, &overflow, 1, T0},      /* 8 limit * period over 2^52 */
        {id, &ok, 1, INT64_MAX},     /* 9 now too large */
        {id, &ok, 1, T0},            /* 10 ok: denied (4 of 4 used) */
    };
    enum { M = sizeof reqs / sizeof reqs[0] };
    const int want[M] = {0, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0};
    hammer_decision out[M];
    int statuses[M];
    memset(out, 0x5a, sizeof out);
    for (int i = 0; i < M; i++) statuses[i] = -77;
    int rc = hammer_hit_many(h, reqs, M, out, statuses);
    const char *msg = hammer_last_error();
    CHECK(rc == HAMMER_ERR_INVALID && test_contains_ci(msg, "request 1") && test_contains_ci(msg, "cost"),
          "hit_many with bad requests -> %d (the first failure's status), message \"%s\" names request 1", rc, msg);
    int st = 1, zeroed = 1;
    for (int i = 0; i < M; i++) {
        if (statuses[i] != (want[i] ? HAMMER_ERR_INVALID : HAMMER_OK)) st = 0;
        if (want[i] && !decision_is_zero(&out[i])) zeroed = 0;
    }
    CHECK(st, "statuses[i]: HAMMER_ERR_INVALID for the 7 bad requests, HAMMER_OK for the 4 good ones");
    CHECK(zeroed, "the bad requests' decisions are zeroed");
    CHECK(out[0].allowed && out[0].remaining == 3 && out[2].allowed && out[2].remaining == 2 && out[6].allowed &&
              out[6].remaining == 0 && !out[10].allowed && out[10].retry_after_ms == 60000,
          "the good requests were decided in order around the bad ones (remaining 3, 2, 0, then denied)");

    /* statuses NULL: the same return, the good requests still decided. */
    hammer_delete_buckets(h, id, NULL);
    memset(out, 0x5a, sizeof out);
    rc = hammer_hit_many(h, reqs, M, out, NULL);
    CHECK(rc == HAMMER_ERR_INVALID && out[0].allowed && out[6].allowed && !out[10].allowed &&
              decision_is_zero(&out[3]),
          "statuses NULL: -> %d, good requests decided, bad ones zeroed", rc);

    /* A failing request later than a good one: the first failure is what counts, not the first request. */
    hammer_hit_request tail[] = {{id, &ok, 1, T0 + 120000}, {id, &ok, 1, -5}, {id, &bad_alg, 1, T0}};
    int st3[3];
    rc = hammer_hit_many(h, tail, 3, out, st3);
    msg = hammer_last_error();
    CHECK(st3[0] == HAMMER_OK && st3[1] == HAMMER_OK && out[1].allowed, "now_ms -5 means the clock: OK");
    CHECK(st3[2] == HAMMER_ERR_INVALID, "the third request (algorithm 7) failed alone");
    CHECK(rc == HAMMER_ERR_INVALID && test_contains_ci(msg, "request 2"), "-> %d, message names request 2: \"%s\"",
          rc, msg);
    hammer_delete_buckets(h, id, NULL);
}

/* A zeroed request ({0}, memset, calloc) and one from HAMMER_HIT_REQUEST_INIT decide on the handle's clock, not at
 * Unix time 0: the hit they log is still in a sliding window of a minute when peeked at now (at time 0 it would
 * have left it long ago). The other INIT macros make requests that work once their id and numbers are set. */
static void test_zeroed_and_init_requests(hammer_t *h, const char *base)
{
    char zid[160], iid[160];
    snprintf(zid, sizeof zid, "%s:zeroed", base);
    snprintf(iid, sizeof iid, "%s:init", base);
    hammer_limit lim = HAMMER_LIMIT_INIT(HAMMER_SLIDING_WINDOW, 2, 60000);
    hammer_hit_request r[2];
    memset(r, 0, sizeof r);
    r[0].id = zid, r[0].lim = &lim, r[0].cost = 1;   /* now_ms 0 */
    r[1] = (hammer_hit_request)HAMMER_HIT_REQUEST_INIT;
    r[1].id = iid, r[1].lim = &lim;
    hammer_decision out[2], p;
    int st[2];
    CHECK_STATUS(hammer_hit_many(h, r, 2, out, st), HAMMER_OK);
    CHECK(out[0].allowed && out[1].allowed && out[0].count == 1 && out[1].count == 1,
          "zeroed and INIT hit requests are allowed (count %" PRId64 ", %" PRId64 ")", out[0].count, out[1].count);
    for (int i = 0; i < 2; i++) {
        CHECK_STATUS(hammer_peek(h, r[i].id, &lim, &p), HAMMER_OK);
        CHECK(p.count == 1 && p.reset_after_ms > 50000,
              "%s request: its hit is in the window now (count %" PRId64 ", reset in %" PRId64 " ms)",
              i ? "INIT" : "zeroed", p.count, p.reset_after_ms);
    }
    /* HAMMER_NOW and any value below 0: the same clock. */
    r[0].now_ms = HAMMER_NOW, r[1].now_ms = -12345;
    CHECK_STATUS(hammer_hit_many(h, r, 2, out, st), HAMMER_OK);
    CHECK(out[0].count == 2 && out[1].count == 2, "HAMMER_NOW and -12345: the clock too (count 2, 2)");

    hammer_count_request c = HAMMER_COUNT_REQUEST_INIT;
    c.id = iid, c.bucket = 7, c.now_ms = T0;
    int64_t n = 0;
    CHECK_STATUS(hammer_count_hits(h, &c, 1, &n, NULL), HAMMER_OK);
    CHECK(n == 1, "HAMMER_COUNT_REQUEST_INIT counts one hit (%" PRId64 ")", n);
    hammer_check_request k = HAMMER_CHECK_REQUEST_INIT;
    k.id = iid, k.scale_ms = 60000, k.limit = 5;
    CHECK_STATUS(hammer_check_rates(h, &k, 1, out, NULL), HAMMER_OK);
    CHECK(out[0].allowed && out[0].count == 1, "HAMMER_CHECK_REQUEST_INIT checks one hit (count %" PRId64 ")",
          out[0].count);
    hammer_delete_buckets(h, zid, NULL);
    hammer_delete_buckets(h, iid, NULL);
}

/* count_hits: the same new counts as hammer_count_hit one by one; bad increments get their own status. */
static void test_count_hits(hammer_t *h, const char *base)
{
    enum { M = 40 };
    char bid[IDS][160], sid[IDS][160];
    for (int k = 0; k < IDS; k++) {
        snprintf(bid[k], sizeof bid[k], "%s:cb%d", base, k);
        snprintf(sid[k], sizeof sid[k], "%s:cs%d", base, k);
    }
    hammer_count_request batch[M], seq[M];
    for (int i = 0; i < M; i++) {
        int k = i % IDS;
        int64_t bucket = 1000 + (i / 7) % 2, inc = (i * 5) % 4, now = T0 + i;
        batch[i] = (hammer_count_request){bid[k], bucket, now, inc};
        seq[i] = (hammer_count_request){sid[k], bucket, now, inc};
    }
    int64_t counts[M], one[M];
    int statuses[M];
    for (int i = 0; i < M; i++) counts[i] = -77, statuses[i] = -77;
    CHECK_STATUS(hammer_count_hits(h, batch, M, counts, statuses), HAMMER_OK);
    int same = 1, ok = 1, grew = 0;
    for (int i = 0; i < M; i++) {
        if (statuses[i] != HAMMER_OK) ok = 0;
        if (hammer_count_hit(h, seq[i].id, seq[i].bucket, seq[i].now_ms, seq[i].increment, &one[i]) != HAMMER_OK)
            ok = 0;
        if (counts[i] != one[i]) {
            if (same) printf("     request %d: batch %" PRId64 ", single %" PRId64 "\n", i, counts[i], one[i]);
            same = 0;
        }
        if (counts[i] > 3) grew = 1;
    }
    CHECK(ok, "count_hits: every status and single call HAMMER_OK");
    CHECK(same && grew, "count_hits of %d requests == hammer_count_hit one by one (counts grow past 3: %d)", M, grew);
    int buckets = 1;
    for (int k = 0; k < IDS; k++)
        for (int64_t b = 1000; b <= 1001; b++) {
            hammer_bucket x, y;
            if (hammer_get_bucket(h, bid[k], b, &x) != HAMMER_OK || hammer_get_bucket(h, sid[k], b, &y) != HAMMER_OK ||
                !x.found || x.count != y.count || x.created != y.created || x.updated != y.updated)
                buckets = 0;
        }
    CHECK(buckets, "the buckets the batch wrote == those the single calls wrote (count, created, updated)");

    hammer_count_request mixed[] = {{bid[0], 5, T0, 2}, {bid[0], 5, T0, -1}, {NULL, 5, T0, 1}, {bid[0], 5, T0, 3}};
    int st[4];
    int64_t c4[4] = {-1, -1, -1, -1};
    int rc = hammer_count_hits(h, mixed, 4, c4, st);
    CHECK(rc == HAMMER_ERR_INVALID && st[0] == 0 && st[1] == HAMMER_ERR_INVALID && st[2] == HAMMER_ERR_INVALID &&
              st[3] == 0 && c4[0] == 2 && c4[1] == 0 && c4[2] == 0 && c4[3] == 5,
          "count_hits with increment -1 and NULL id mixed in: -> %d, statuses %d %d %d %d, counts %" PRId64 " %" PRId64
          " %" PRId64 " %" PRId64, rc, st[0], st[1], st[2], st[3], c4[0], c4[1], c4[2], c4[3]);
    CHECK(test_contains_ci(hammer_last_error(), "request 1"), "message names request 1: \"%s\"", hammer_last_error());

    for (int k = 0; k < IDS; k++) {
        hammer_delete_buckets(h, bid[k], NULL);
        hammer_delete_buckets(h, sid[k], NULL);
    }
}

/* check_rates: the same decisions as hammer_check_rate one by one. The scale is 10 years, so both runs fall in one
 * window (the next starts in December 2029) and the comparison does not depend on timing. */
static void test_check_rates(hammer_t *h, const char *base)
{
    enum { M = 24 };
    const int64_t scale = INT64_C(315360000000);
    char bid[2][160], sid[2][160];
    for (int k = 0; k < 2; k++) {
        snprintf(bid[k], sizeof bid[k], "%s:rb%d", base, k);
        snprintf(sid[k], sizeof sid[k], "%s:rs%d", base, k);
    }
    hammer_check_request batch[M], seq[M];
    for (int i = 0; i < M; i++) {
        int k = i % 2;
        int64_t limit = 5 + k * 5, inc = i % 3;
        batch[i] = (hammer_check_request){bid[k], scale, limit, inc};
        seq[i] = (hammer_check_request){sid[k], scale, limit, inc};
    }
    hammer_decision out[M], one;
    int statuses[M];
    CHECK_STATUS(hammer_check_rates(h, batch, M, out, statuses), HAMMER_OK);
    int same = 1, ok = 1, allowed = 0, denied = 0;
    for (int i = 0; i < M; i++) {
        if (statuses[i] != HAMMER_OK) ok = 0;
        if (hammer_check_rate(h, seq[i].id, seq[i].scale_ms, seq[i].limit, seq[i].increment, &one) != HAMMER_OK) ok = 0;
        /* The same fields but the waits, which count down with the clock between the two runs. */
        if (out[i].allowed != one.allowed || out[i].count != one.count || out[i].limit != one.limit ||
            out[i].remaining != one.remaining || (out[i].retry_after_ms > 0) != (one.retry_after_ms > 0) ||
            out[i].reset_after_ms < one.reset_after_ms || out[i].degraded != one.degraded) {
            if (same) print_decision("batch", i, &out[i]), print_decision("single", i, &one);
            same = 0;
        }
        if (out[i].allowed) allowed++;
        else denied++;
    }
    CHECK(ok, "check_rates: every status and single call HAMMER_OK");
    CHECK(same && allowed > 0 && denied > 0,
          "check_rates of %d == hammer_check_rate one by one (%d allowed, %d denied, counted even when denied)", M,
          allowed, denied);
    CHECK(out[M - 2].count == out[M - 4].count + (M - 2) % 3, "the count goes on while denied: %" PRId64,
          out[M - 2].count);

    hammer_check_request mixed[] = {{bid[0], scale, 0, 1}, {bid[0], scale, 5, 0}, {bid[0], -1, 5, 1}};
    int st[3];
    int rc = hammer_check_rates(h, mixed, 3, out, st);
    CHECK(rc == HAMMER_ERR_INVALID && st[0] == HAMMER_ERR_INVALID && st[1] == HAMMER_OK &&
              st[2] == HAMMER_ERR_INVALID && decision_is_zero(&out[0]) && out[1].count > 0 && decision_is_zero(&out[2]),
          "check_rates with limit 0 and scale -1 mixed in: -> %d, statuses %d %d %d", rc, st[0], st[1], st[2]);
    CHECK(test_contains_ci(hammer_last_error(), "request 0"), "message names request 0: \"%s\"", hammer_last_error());
    for (int k = 0; k < 2; k++) {
        hammer_delete_buckets(h, bid[k], NULL);
        hammer_delete_buckets(h, sid[k], NULL);
    }
}

/* n = 0 is a no-op whatever the arrays; NULL arrays with n > 0 and a NULL handle are refused. */
static void test_empty_and_null(hammer_t *h, const char *base)
{
    char id[160];
    snprintf(id, sizeof id, "%s:null", base);
    hammer_limit lim = {HAMMER_GCRA, 2, 1000, 0};
    hammer_hit_request hr = {id, &lim, 1, T0};
    hammer_count_request cr = {id, 1, T0, 1};
    hammer_check_request kr = {id, 1000, 2, 1};
    hammer_decision d;
    int64_t c;
    int st = -77;

    CHECK_STATUS(hammer_hit_many(h, NULL, 0, NULL, NULL), HAMMER_OK);
    CHECK_STATUS(hammer_count_hits(h, NULL, 0, NULL, NULL), HAMMER_OK);
    CHECK_STATUS(hammer_check_rates(h, NULL, 0, NULL, NULL), HAMMER_OK);
    CHECK_STATUS(hammer_hit_many(h, &hr, 0, &d, &st), HAMMER_OK);
    CHECK_STATUS(hammer_count_hits(h, &cr, 0, &c, &st), HAMMER_OK);
    CHECK_STATUS(hammer_check_rates(h, &kr, 0, &d, &st), HAMMER_OK);
    CHECK(st == -77, "n = 0 writes no status");

    CHECK_STATUS(hammer_hit_many(h, NULL, 1, &d, &st), HAMMER_ERR_INVALID);
    CHECK(test_contains_ci(hammer_last_error(), "reqs"), "NULL reqs named: \"%s\"", hammer_last_error());
    CHECK_STATUS(hammer_hit_many(h, &hr, 1, NULL, &st), HAMMER_ERR_INVALID);
    CHECK(test_contains_ci(hammer_last_error(), "out"), "NULL out named: \"%s\"", hammer_last_error());
    CHECK_STATUS(hammer_count_hits(h, NULL, 1, &c, &st), HAMMER_ERR_INVALID);
    CHECK_STATUS(hammer_count_hits(h, &cr, 1, NULL, &st), HAMMER_ERR_INVALID);
    CHECK_STATUS(hammer_check_rates(h, NULL, 1, &d, &st), HAMMER_ERR_INVALID);
    CHECK_STATUS(hammer_check_rates(h, &kr, 1, NULL, &st), HAMMER_ERR_INVALID);
    CHECK_STATUS(hammer_hit_many(NULL, &hr, 1, &d, &st), HAMMER_ERR_INVALID);
    CHECK(test_contains_ci(hammer_last_error(), "handle"), "NULL handle named: \"%s\"", hammer_last_error());
    CHECK_STATUS(hammer_count_hits(NULL, &cr, 1, &c, &st), HAMMER_ERR_INVALID);
    CHECK_STATUS(hammer_check_rates(NULL, &kr, 1, &d, &st), HAMMER_ERR_INVALID);
    CHECK_STATUS(hammer_hit_many(h, &hr, (size_t)1000001, &d, NULL), HAMMER_ERR_INVALID);
    CHECK_STATUS(hammer_hit_many(h, &hr, SIZE_MAX, &d, NULL), HAMMER_ERR_INVALID);
    CHECK_STATUS(hammer_count_hits(h, &cr, SIZE_MAX, &c, NULL), HAMMER_ERR_INVALID);
    CHECK_STATUS(hammer_check_rates(h, &kr, SIZE_MAX, &d, NULL), HAMMER_ERR_INVALID);

    /* None of that touched the id. */
    hammer_bucket b;
    CHECK_STATUS(hammer_get_bucket(h, id, 1, &b), HAMMER_OK);
    CHECK(b.found == 0, "refused batches wrote nothing");
    CHECK_STATUS(hammer_peek_at(h, id, &lim, T0, &d), HAMMER_OK);
    CHECK(d.allowed && d.remaining == 2, "refused batches took nothing (remaining %" PRId64 ")", d.remaining);

    /* One request: the same as the single call. */
    hammer_decision single;
    char id2[160];
    snprintf(id2, sizeof id2, "%s:null2", base);
    CHECK_STATUS(hammer_hit_many(h, &hr, 1, &d, &st), HAMMER_OK);
    CHECK_STATUS(hammer_hit_at(h, id2, &lim, 1, T0, &single), HAMMER_OK);
    CHECK(st == 0 && same_decision(&d, &single), "a batch of one == the single call");
    hammer_delete_buckets(h, id, NULL);
    hammer_delete_buckets(h, id2, NULL);
}

/* hammer_stats: exact call, allowed and denied counts on a handle of the test's own; ordered percentiles. */
static void test_stats(const char *url, const char *base)
{
    hammer_t *h = NULL;
    CHECK_STATUS(hammer_open(url, &h), HAMMER_OK);
    if (h == NULL) return;
    hammer_stats_t s0, s1;
    memset(&s0, 0x5a, sizeof s0);
    CHECK_STATUS(hammer_stats(h, &s0), HAMMER_OK);
    CHECK(s0.allowed == 0 && s0.denied == 0 && s0.errors[0] == 0 && s0.degraded == 0 && s0.connections >= 1 &&
              s0.reconnects >= 1,
          "a new handle: 0 allowed, 0 denied, %" PRId64 " connection(s) open, %" PRIu64 " opened", s0.connections,
          s0.reconnects);

    char id[160];
    snprintf(id, sizeof id, "%s:stats", base);
    hammer_limit lim = {HAMMER_TOKEN_BUCKET, 3, 60000, 0};
    hammer_decision d;
    uint64_t calls = 0, allowed = 0, denied = 0;
    for (int i = 0; i < 10; i++) { /* 3 allowed, 7 denied */
        CHECK_STATUS(hammer_hit_at(h, id, &lim, 1, T0, &d), HAMMER_OK);
        calls++;
        if (d.allowed) allowed++;
        else denied++;
    }
    CHECK_STATUS(hammer_peek_at(h, id, &lim, T0, &d), HAMMER_OK); /* a peek is a decision too */
    calls++;
    if (d.allowed) allowed++;
    else denied++;
    hammer_hit_request hr[6];
    for (int i = 0; i < 6; i++) hr[i] = (hammer_hit_request){id, &lim, 1, T0 + 20000 * i};
    hammer_decision out[6];
    CHECK_STATUS(hammer_hit_many(h, hr, 6, out, NULL), HAMMER_OK);
    for (int i = 0; i < 6; i++) {
        calls++;
        if (out[i].allowed) allowed++;
        else denied++;
    }
    char cid[170];
    snprintf(cid, sizeof cid, "%s:stats-check", base);
    hammer_check_request kr[4];
    for (int i = 0; i < 4; i++) kr[i] = (hammer_check_request){cid, INT64_C(315360000000), 2, 1};
    CHECK_STATUS(hammer_check_rates(h, kr, 4, out, NULL), HAMMER_OK);
    for (int i = 0; i < 4; i++) {
        calls++;
        if (out[i].allowed) allowed++;
        else denied++;
    }
    hammer_count_request cr[3] = {{cid, 9, T0, 1}, {cid, 9, T0, 1}, {cid, 9, T0, 1}};
    int64_t counts[3];
    CHECK_STATUS(hammer_count_hits(h, cr, 3, counts, NULL), HAMMER_OK);
    calls += 3; /* counted, but not decisions */
    int64_t count = 0;
    CHECK_STATUS(hammer_count_hit(h, cid, 9, T0, 1, &count), HAMMER_OK);
    calls++;

    memset(&s1, 0x5a, sizeof s1);
    CHECK_STATUS(hammer_stats(h, &s1), HAMMER_OK);
    CHECK(s1.calls - s0.calls == calls, "stats: %" PRIu64 " calls == %" PRIu64 " requests made", s1.calls - s0.calls,
          calls);
    CHECK(s1.allowed - s0.allowed == allowed && s1.denied - s0.denied == denied && allowed > 0 && denied > 0,
          "stats: allowed %" PRIu64 " == %" PRIu64 ", denied %" PRIu64 " == %" PRIu64, s1.allowed - s0.allowed,
          allowed, s1.denied - s0.denied, denied);
    uint64_t errors = 0;
    for (int i = 0; i < 8; i++) errors += s1.errors[i];
    CHECK(errors == 0 && s1.degraded == 0, "stats: no errors, nothing degraded");
    CHECK(s1.p50_us > 0 && s1.p50_us <= s1.p99_us && s1.p99_us <= s1.p999_us,
          "stats: 0 < p50 %" PRId64 " <= p99 %" PRId64 " <= p999 %" PRId64 " (us)", s1.p50_us, s1.p99_us, s1.p999_us);
    CHECK(s1.connections >= 1 && s1.connections <= 8, "stats: %" PRId64 " connections open (pool_size 8)",
          s1.connections);

    hammer_stats_t z;
    memset(&z, 0x5a, sizeof z);
    CHECK_STATUS(hammer_stats(NULL, &z), HAMMER_ERR_INVALID);
    CHECK(z.calls == 0 && z.allowed == 0 && z.denied == 0 && z.p50_us == 0 && z.p999_us == 0 && z.connections == 0,
          "hammer_stats(NULL handle) zeroes *out");
    CHECK_STATUS(hammer_stats(h, NULL), HAMMER_ERR_INVALID);
    CHECK(test_contains_ci(hammer_last_error(), "out"), "NULL out named: \"%s\"", hammer_last_error());

    hammer_delete_buckets(h, id, NULL);
    hammer_delete_buckets(h, cid, NULL);
    hammer_close(h);
}

int main(int argc, char **argv)
{
    const char *url = test_url(argc, argv);
    if (url == NULL) return 2;
    char base[128];
    test_unique_id(base, sizeof base, "batch");
    hammer_t *h = NULL;
    CHECK_STATUS(hammer_open(url, &h), HAMMER_OK);
    if (h == NULL) return test_summary("test_batch");

    test_hit_many_equals_sequential(h, base);
    test_hit_many_statuses(h, base);
    test_zeroed_and_init_requests(h, base);
    test_count_hits(h, base);
    test_check_rates(h, base);
    test_empty_and_null(h, base);
    hammer_close(h);
    test_stats(url, base);
    return test_summary("test_batch");
}
