/*
 * test_limits.c — the rate-limit API from C: the five algorithms of hammer_hit_at / hammer_peek_at, Hammer's
 * hammer_check_rate_at and hammer_inspect_bucket, every bad parameter, the reset of every algorithm's state by
 * hammer_delete_buckets, clock=redis, and the pinned ABI (struct sizes, field offsets, enum values).
 *
 * Every decision is made at an explicit time (hammer_hit_at), so nothing depends on how fast the test runs; the
 * periods are a minute or more, so no key's TTL (real time) can run out while a sequence is in progress.
 *
 *   build/tests/test_limits REDIS_URL
 */
#include "testutil.h"

#include <limits.h>
#include <netdb.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>

#define L  5                         /* limit of the main sequences */
#define P  60000                     /* period_ms */
#define T0 INT64_C(1700000040000)    /* a multiple of P: a fixed window starts here */

#define NALG 6                       /* HAMMER_FIXED_WINDOW .. HAMMER_SLIDING_COUNTER */

static const char *const NAMES[] = {"fixed window", "sliding window", "token bucket", "leaky bucket", "gcra",
                                    "sliding counter"};

static hammer_limit limit_of(int32_t algorithm, int64_t limit, int64_t period, int64_t burst)
{
    hammer_limit l;
    memset(&l, 0, sizeof l);
    l.algorithm = algorithm;
    l.limit = limit;
    l.period_ms = period;
    l.burst = burst;
    return l;
}

/* "<base>:<what>:<algorithm>" */
static void id_of(char *buf, size_t size, const char *base, const char *what, int algorithm)
{
    snprintf(buf, size, "%s:%s:%d", base, what, algorithm);
}

static int decision_is_zero(const hammer_decision *d)
{
    return d->allowed == 0 && d->count == 0 && d->limit == 0 && d->remaining == 0 && d->retry_after_ms == 0 &&
           d->reset_after_ms == 0 && d->degraded == 0;
}

static int same_decision(const hammer_decision *a, const hammer_decision *b)
{
    return a->allowed == b->allowed && a->count == b->count && a->limit == b->limit && a->remaining == b->remaining &&
           a->retry_after_ms == b->retry_after_ms && a->reset_after_ms == b->reset_after_ms &&
           a->degraded == b->degraded;
}

static void garble(void *p, size_t n) { memset(p, 0x5a, n); }

/* ------------------------------------------------------------------------------------------------------------ */

/* A burst of L unit hits at T0 passes with remaining counting down; the next is denied until exactly T0 + retry. */
static void test_burst(hammer_t *h, const char *base, int a)
{
    char id[256];
    id_of(id, sizeof id, base, "burst", a);
    hammer_limit lim = limit_of(a, L, P, 0);
    hammer_decision d, d2, before;

    /* A fresh id: peek sees full capacity, twice the same, and changes nothing. */
    CHECK_STATUS(hammer_peek_at(h, id, &lim, T0, &d), HAMMER_OK);
    CHECK(d.allowed == 1 && d.remaining == L && d.count == 0 && d.limit == L && d.retry_after_ms == 0 &&
              d.reset_after_ms == 0 && d.degraded == 0,
          "%s: fresh peek allowed, remaining %" PRId64 " == %d, count %" PRId64 ", reset %" PRId64, NAMES[a],
          d.remaining, L, d.count, d.reset_after_ms);
    CHECK_STATUS(hammer_peek_at(h, id, &lim, T0, &d2), HAMMER_OK);
    CHECK(same_decision(&d, &d2), "%s: a second peek decides the same", NAMES[a]);

    /* Cost 0 on a fresh id: allowed, nothing taken. */
    CHECK_STATUS(hammer_hit_at(h, id, &lim, 0, T0, &d), HAMMER_OK);
    CHECK(d.allowed == 1 && d.retry_after_ms == 0 && d.remaining == L && d.count == 0,
          "%s: cost 0 on a fresh id allowed, remaining %" PRId64 ", count %" PRId64, NAMES[a], d.remaining, d.count);

    /* Cost above capacity on a fresh id: denied forever, nothing taken. */
    CHECK_STATUS(hammer_hit_at(h, id, &lim, L + 1, T0, &d), HAMMER_OK);
    CHECK(d.allowed == 0 && d.retry_after_ms == -1 && d.remaining == 0 && d.limit == L,
          "%s: cost %d > capacity %d denied with retry_after_ms %" PRId64 " == -1", NAMES[a], L + 1, L,
          d.retry_after_ms);

    int counted_down = 1;
    for (int i = 1; i <= L; i++) {
        CHECK_STATUS(hammer_hit_at(h, id, &lim, 1, T0, &d), HAMMER_OK);
        if (!CHECK(d.allowed == 1 && d.count == i && d.remaining == L - i && d.retry_after_ms == 0 && d.limit == L &&
                       d.degraded == 0,
                   "%s: hit %d of %d allowed, count %" PRId64 ", remaining %" PRId64 " == %d, retry %" PRId64,
                   NAMES[a], i, L, d.count, d.remaining, L - i, d.retry_after_ms))
            counted_down = 0;
    }
    CHECK(counted_down, "%s: remaining counted down from %d to 0", NAMES[a], L - 1);
    /* Every algorithm forgets the burst at T0 after one period, except the counter: it weighs in the next window too. */
    CHECK_EQ_I64(d.reset_after_ms, a == HAMMER_SLIDING_COUNTER ? 2 * P : P);

    /* Peek when exhausted: denied, and the same twice. */
    CHECK_STATUS(hammer_peek_at(h, id, &lim, T0, &before), HAMMER_OK);
    CHECK(before.allowed == 0 && before.retry_after_ms > 0 && before.remaining == 0,
          "%s: peek after the burst denied, retry %" PRId64 " > 0", NAMES[a], before.retry_after_ms);

    /* The next unit hit is denied with a computed wait. */
    CHECK_STATUS(hammer_hit_at(h, id, &lim, 1, T0, &d), HAMMER_OK);
    CHECK(d.allowed == 0 && d.retry_after_ms > 0 && d.remaining == 0 && d.count == L && d.limit == L,
          "%s: hit %d denied, retry_after_ms %" PRId64 " > 0, count %" PRId64 ", remaining %" PRId64, NAMES[a],
          L + 1, d.retry_after_ms, d.count, d.remaining);
    /* The windows wait for the period's end; the buckets for one unit; the counter for its full window to weigh
     * L - 1 in the next: P + P / L. */
    int64_t expect_retry = (a == HAMMER_FIXED_WINDOW || a == HAMMER_SLIDING_WINDOW) ? P
                           : a == HAMMER_SLIDING_COUNTER ? P + P / L : P / L;
    CHECK(d.retry_after_ms == expect_retry, "%s: retry_after_ms %" PRId64 " == %" PRId64, NAMES[a],
          d.retry_after_ms, expect_retry);
    CHECK(same_decision(&d, &before), "%s: the denied hit decided as the peek before it", NAMES[a]);
    int64_t retry = d.retry_after_ms;

    /* A denied hit, cost 0, cost above capacity and peeks changed nothing. */
    CHECK_STATUS(hammer_hit_at(h, id, &lim, 0, T0, &d), HAMMER_OK);
    CHECK(d.allowed == 1 && d.retry_after_ms == 0 && d.remaining == 0 && d.count == L,
          "%s: cost 0 when exhausted allowed, remaining %" PRId64 ", count %" PRId64, NAMES[a], d.remaining, d.count);
    CHECK_STATUS(hammer_hit_at(h, id, &lim, L + 1, T0, &d), HAMMER_OK);
    CHECK(d.allowed == 0 && d.retry_after_ms == -1, "%s: cost %d when exhausted: retry_after_ms %" PRId64 " == -1",
          NAMES[a], L + 1, d.retry_after_ms);
    CHECK_STATUS(hammer_peek_at(h, id, &lim, T0, &d), HAMMER_OK);
    CHECK(same_decision(&d, &before), "%s: state unchanged by denied hit, cost 0 and cost > capacity", NAMES[a]);

    /* One ms early is still too early; exactly retry_after_ms later the same hit passes. */
    CHECK_STATUS(hammer_peek_at(h, id, &lim, T0 + retry - 1, &d), HAMMER_OK);
    CHECK(d.allowed == 0 && d.retry_after_ms == 1, "%s: at T0 + retry - 1 still denied, retry %" PRId64 " == 1",
          NAMES[a], d.retry_after_ms);
    CHECK_STATUS(hammer_hit_at(h, id, &lim, 1, T0 + retry, &d), HAMMER_OK);
    CHECK(d.allowed == 1 && d.retry_after_ms == 0, "%s: hit at T0 + retry_after_ms (%" PRId64 ") allowed", NAMES[a],
          retry);
    CHECK_STATUS(hammer_delete_buckets(h, id, NULL), HAMMER_OK);
}

/* Costs above one: cost L passes at once on a fresh id; burst > limit for the buckets; windows ignore burst. */
static void test_costs_and_burst(hammer_t *h, const char *base, int a)
{
    char id[256];
    hammer_decision d;
    int bucket = a == HAMMER_TOKEN_BUCKET || a == HAMMER_LEAKY_BUCKET || a == HAMMER_GCRA;

    id_of(id, sizeof id, base, "cost", a);
    hammer_limit lim = limit_of(a, L, P, 0);
    CHECK_STATUS(hammer_hit_at(h, id, &lim, 3, T0, &d), HAMMER_OK);
    CHECK(d.allowed == 1 && d.count == 3 && d.remaining == L - 3, "%s: cost 3 allowed, count %" PRId64 " remaining %"
          PRId64, NAMES[a], d.count, d.remaining);
    CHECK_STATUS(hammer_hit_at(h, id, &lim, 3, T0, &d), HAMMER_OK);
    CHECK(d.allowed == 0 && d.retry_after_ms > 0 && d.count == 3,
          "%s: a second cost 3 denied (3 + 3 > %d), retry %" PRId64 ", count %" PRId64 " unchanged", NAMES[a], L,
          d.retry_after_ms, d.count);
    int64_t retry = d.retry_after_ms;
    if (bucket) /* one unit leaks or refills every P / L ms: room for 3 more after one more unit */
        CHECK_EQ_I64(retry, P / L);
    CHECK_STATUS(hammer_hit_at(h, id, &lim, 2, T0, &d), HAMMER_OK);
    CHECK(d.allowed == 1 && d.remaining == 0, "%s: cost 2 still fits exactly, remaining %" PRId64, NAMES[a],
          d.remaining);
    CHECK_STATUS(hammer_delete_buckets(h, id, NULL), HAMMER_OK);

    /* burst = 2 * limit: the buckets hold 2L, the windows still L. */
    id_of(id, sizeof id, base, "burst2", a);
    lim = limit_of(a, L, P, 2 * L);
    int64_t cap = bucket ? 2 * L : L;
    CHECK_STATUS(hammer_hit_at(h, id, &lim, cap + 1, T0, &d), HAMMER_OK);
    CHECK(d.allowed == 0 && d.retry_after_ms == -1, "%s burst %d: cost %" PRId64 " above capacity -> retry %" PRId64
          " == -1", NAMES[a], 2 * L, cap + 1, d.retry_after_ms);
    int all = 1;
    for (int64_t i = 1; i <= cap; i++) {
        CHECK_STATUS(hammer_hit_at(h, id, &lim, 1, T0, &d), HAMMER_OK);
        if (!CHECK_QUIET(d.allowed == 1 && d.remaining == cap - i, "%s burst %d: hit %" PRId64 " allowed, remaining %"
                         PRId64, NAMES[a], 2 * L, i, d.remaining))
            all = 0;
    }
    CHECK(all, "%s burst %d: %" PRId64 " unit hits at one instant allowed", NAMES[a], 2 * L, cap);
    CHECK_STATUS(hammer_hit_at(h, id, &lim, 1, T0, &d), HAMMER_OK);
    CHECK(d.allowed == 0 && d.retry_after_ms == (bucket ? P / L : a == HAMMER_SLIDING_COUNTER ? P + P / L : P),
          "%s burst %d: hit %" PRId64 " denied, retry %" PRId64, NAMES[a], 2 * L, cap + 1, d.retry_after_ms);
    CHECK_STATUS(hammer_hit_at(h, id, &lim, 1, T0 + d.retry_after_ms, &d), HAMMER_OK);
    CHECK(d.allowed == 1, "%s burst %d: allowed after the wait", NAMES[a], 2 * L);
    CHECK_STATUS(hammer_delete_buckets(h, id, NULL), HAMMER_OK);

    /* Cost 0 and L on a fresh id with a cost above the capacity first. */
    id_of(id, sizeof id, base, "whole", a);
    lim = limit_of(a, L, P, 0);
    CHECK_STATUS(hammer_hit_at(h, id, &lim, L, T0 + 17, &d), HAMMER_OK);
    CHECK(d.allowed == 1 && d.count == L && d.remaining == 0, "%s: cost %d (the whole capacity) allowed at once",
          NAMES[a], L);
    CHECK_STATUS(hammer_delete_buckets(h, id, NULL), HAMMER_OK);
}

/* ------------------------------------------------------------------------------------------------------------ */

/* A bad-parameter case of the hit / peek calls. */
typedef struct bad_case {
    const char *what;
    int null_handle, null_id, null_lim;
    hammer_limit lim;
    int64_t cost, now;
    const char *needle;   /* the message names the culprit */
    int peek_too;         /* the case applies to peek (which has no cost) */
} bad_case;

static void check_invalid(int rc, const hammer_decision *d, const char *call, const char *what, const char *needle)
{
    const char *msg = hammer_last_error();
    CHECK(rc == HAMMER_ERR_INVALID && msg[0] != '\0' && test_contains_ci(msg, needle) && decision_is_zero(d),
          "%s with %s -> %d (want %d), message \"%s\" names \"%s\", out zeroed %d", call, what, rc,
          HAMMER_ERR_INVALID, msg, needle, decision_is_zero(d));
}

static void test_bad_parameters(hammer_t *h, const char *base)
{
    char id[256];
    id_of(id, sizeof id, base, "bad", 0);
    const hammer_limit ok = limit_of(HAMMER_TOKEN_BUCKET, L, P, 0);
    const int64_t now = T0;
    bad_case cases[] = {
        {"NULL handle", 1, 0, 0, ok, 1, now, "handle is NULL", 1},
        {"NULL id", 0, 1, 0, ok, 1, now, "id is NULL", 1},
        {"NULL lim", 0, 0, 1, ok, 1, now, "lim is NULL", 1},
        {"algorithm 6", 0, 0, 0, limit_of(6, L, P, 0), 1, now, "algorithm", 1},
        {"algorithm -1", 0, 0, 0, limit_of(-1, L, P, 0), 1, now, "algorithm", 1},
        {"algorithm INT32_MAX", 0, 0, 0, limit_of(INT32_MAX, L, P, 0), 1, now, "algorithm", 1},
        {"limit 0", 0, 0, 0, limit_of(HAMMER_GCRA, 0, P, 0), 1, now, "limit", 1},
        {"limit -1", 0, 0, 0, limit_of(HAMMER_GCRA, -1, P, 0), 1, now, "limit", 1},
        {"limit 10^9 + 1", 0, 0, 0, limit_of(HAMMER_FIXED_WINDOW, 1000000001, 1, 0), 1, now, "limit", 1},
        {"limit INT64_MAX", 0, 0, 0, limit_of(HAMMER_SLIDING_WINDOW, INT64_MAX, P, 0), 1, now, "limit", 1},
        {"limit INT64_MIN", 0, 0, 0, limit_of(HAMMER_SLIDING_WINDOW, INT64_MIN, P, 0), 1, now, "limit", 1},
        {"period 0", 0, 0, 0, limit_of(HAMMER_LEAKY_BUCKET, L, 0, 0), 1, now, "period", 1},
        {"period -1", 0, 0, 0, limit_of(HAMMER_LEAKY_BUCKET, L, -1, 0), 1, now, "period", 1},
        {"period 10 years + 1", 0, 0, 0, limit_of(HAMMER_FIXED_WINDOW, 1, INT64_C(315360000001), 0), 1, now,
         "period", 1},
        {"period INT64_MAX", 0, 0, 0, limit_of(HAMMER_TOKEN_BUCKET, L, INT64_MAX, 0), 1, now, "period", 1},
        {"burst -1", 0, 0, 0, limit_of(HAMMER_TOKEN_BUCKET, L, P, -1), 1, now, "burst", 1},
        {"burst 10^9 + 1", 0, 0, 0, limit_of(HAMMER_TOKEN_BUCKET, L, 1, 1000000001), 1, now, "burst", 1},
        {"burst INT64_MAX", 0, 0, 0, limit_of(HAMMER_GCRA, L, P, INT64_MAX), 1, now, "burst", 1},
        {"limit and period INT64_MAX", 0, 0, 0, limit_of(HAMMER_GCRA, INT64_MAX, INT64_MAX, 0), 1, now, "limit", 1},
        {"limit * period over 2^52 (10^9 x 10^7)", 0, 0, 0, limit_of(HAMMER_GCRA, 1000000000, 10000000, 0),
         1, now, "period", 1},
        {"limit * period over 2^52 (10^9 x 10 years)", 0, 0, 0,
         limit_of(HAMMER_TOKEN_BUCKET, 1000000000, INT64_C(315360000000), 0), 1, now, "period", 1},
        {"burst * period over 2^52 (10^9 x 10^7)", 0, 0, 0, limit_of(HAMMER_TOKEN_BUCKET, 1, 10000000, 1000000000),
         1, now, "burst", 1},
        {"burst * period over 2^52 (10^9 x 10 years)", 0, 0, 0,
         limit_of(HAMMER_LEAKY_BUCKET, 1, INT64_C(315360000000), 1000000000), 1, now, "burst", 1},
        {"cost -1", 0, 0, 0, ok, -1, now, "cost", 0},
        {"cost INT64_MIN", 0, 0, 0, ok, INT64_MIN, now, "cost", 0},
        {"cost 10^9 + 1", 0, 0, 0, ok, 1000000001, now, "cost", 0},
        {"cost INT64_MAX", 0, 0, 0, ok, INT64_MAX, now, "cost", 0},
        {"now -1", 0, 0, 0, ok, 1, -1, "now", 1},
        {"now INT64_MIN", 0, 0, 0, ok, 1, INT64_MIN, "now", 1},
        {"now 2^47 + 1", 0, 0, 0, ok, 1, (INT64_C(1) << 47) + 1, "now", 1},
        {"now INT64_MAX", 0, 0, 0, ok, 1, INT64_MAX, "now", 1},
    };
    hammer_decision d;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bad_case *c = &cases[i];
        hammer_t *hh = c->null_handle ? NULL : h;
        const char *cid = c->null_id ? NULL : id;
        const hammer_limit *cl = c->null_lim ? NULL : &c->lim;
        int about_now = c->now != now;

        garble(&d, sizeof d);
        check_invalid(hammer_hit_at(hh, cid, cl, c->cost, c->now, &d), &d, "hammer_hit_at", c->what, c->needle);
        if (c->peek_too) {
            garble(&d, sizeof d);
            check_invalid(hammer_peek_at(hh, cid, cl, c->now, &d), &d, "hammer_peek_at", c->what, c->needle);
        }
        if (!about_now) { /* the calls on the handle's clock take no time argument */
            garble(&d, sizeof d);
            check_invalid(hammer_hit(hh, cid, cl, c->cost, &d), &d, "hammer_hit", c->what, c->needle);
            if (c->peek_too) {
                garble(&d, sizeof d);
                check_invalid(hammer_peek(hh, cid, cl, &d), &d, "hammer_peek", c->what, c->needle);
            }
        }
    }
    /* NULL out: refused with a message, whatever else is right. */
    CHECK_STATUS(hammer_hit_at(h, id, &ok, 1, now, NULL), HAMMER_ERR_INVALID);
    CHECK(test_contains_ci(hammer_last_error(), "out is NULL"), "hammer_hit_at NULL out: \"%s\"", hammer_last_error());
    CHECK_STATUS(hammer_hit(h, id, &ok, 1, NULL), HAMMER_ERR_INVALID);
    CHECK_STATUS(hammer_peek_at(h, id, &ok, now, NULL), HAMMER_ERR_INVALID);
    CHECK_STATUS(hammer_peek(h, id, &ok, NULL), HAMMER_ERR_INVALID);
    CHECK(test_contains_ci(hammer_last_error(), "out is NULL"), "hammer_peek NULL out: \"%s\"", hammer_last_error());

    /* None of the refused calls touched the id: a peek sees full capacity. */
    CHECK_STATUS(hammer_peek_at(h, id, &ok, now, &d), HAMMER_OK);
    CHECK(d.allowed == 1 && d.remaining == L, "refused calls left the id untouched (remaining %" PRId64 ")",
          d.remaining);

    /* The bounds themselves are accepted. */
    hammer_limit edge = limit_of(HAMMER_TOKEN_BUCKET, 1000000000, 1, 0);
    CHECK_STATUS(hammer_hit_at(h, id, &edge, 1000000000, 0, &d), HAMMER_OK);
    CHECK(d.allowed == 1 && d.remaining == 0, "limit 10^9, period 1, cost 10^9 at now 0 allowed");
    edge = limit_of(HAMMER_GCRA, 1, INT64_C(315360000000), 14280); /* 14280 x 10 years < 2^52 < 14281 x 10 years */
    CHECK_STATUS(hammer_hit_at(h, id, &edge, 1, INT64_C(1) << 47, &d), HAMMER_OK);
    CHECK(d.allowed == 1 && d.remaining == 14279, "period 10 years, burst 14280 at now 2^47 allowed, remaining %"
          PRId64, d.remaining);
    CHECK_STATUS(hammer_delete_buckets(h, id, NULL), HAMMER_OK);

    /* check_rate / check_rate_at / inspect_bucket refuse their bad parameters too. */
    struct {
        const char *what;
        int null_handle, null_id;
        int64_t scale, limit, inc, now;
        const char *needle;
    } cr[] = {
        {"NULL handle", 1, 0, P, L, 1, now, "handle is NULL"},
        {"NULL id", 0, 1, P, L, 1, now, "id is NULL"},
        {"scale 0", 0, 0, 0, L, 1, now, "scale"},
        {"scale -1", 0, 0, -1, L, 1, now, "scale"},
        {"scale INT64_MAX", 0, 0, INT64_MAX, L, 1, now, "scale"},
        {"limit 0", 0, 0, P, 0, 1, now, "limit"},
        {"limit -1", 0, 0, P, -1, 1, now, "limit"},
        {"limit INT64_MAX", 0, 0, P, INT64_MAX, 1, now, "limit"},
        {"increment -1", 0, 0, P, L, -1, now, "increment"},
        {"increment INT64_MAX", 0, 0, P, L, INT64_MAX, now, "increment"},
        {"now -1", 0, 0, P, L, 1, -1, "now"},
        {"now INT64_MAX", 0, 0, P, L, 1, INT64_MAX, "now"},
    };
    hammer_inspection in;
    for (size_t i = 0; i < sizeof cr / sizeof cr[0]; i++) {
        hammer_t *hh = cr[i].null_handle ? NULL : h;
        const char *cid = cr[i].null_id ? NULL : id;
        garble(&d, sizeof d);
        check_invalid(hammer_check_rate_at(hh, cid, cr[i].scale, cr[i].limit, cr[i].inc, cr[i].now, &d), &d,
                      "hammer_check_rate_at", cr[i].what, cr[i].needle);
        if (cr[i].now != now) continue;
        garble(&d, sizeof d);
        check_invalid(hammer_check_rate(hh, cid, cr[i].scale, cr[i].limit, cr[i].inc, &d), &d, "hammer_check_rate",
                      cr[i].what, cr[i].needle);
        if (cr[i].inc != 1) continue;
        garble(&in, sizeof in);
        int rc = hammer_inspect_bucket(hh, cid, cr[i].scale, cr[i].limit, &in);
        const char *msg = hammer_last_error();
        CHECK(rc == HAMMER_ERR_INVALID && test_contains_ci(msg, cr[i].needle) && in.count == 0 && in.remaining == 0 &&
                  in.ms_to_next_bucket == 0 && in.created == 0 && in.updated == 0,
              "hammer_inspect_bucket with %s -> %d, message \"%s\", out zeroed", cr[i].what, rc, msg);
    }
    CHECK_STATUS(hammer_check_rate_at(h, id, P, L, 1, now, NULL), HAMMER_ERR_INVALID);
    CHECK_STATUS(hammer_check_rate(h, id, P, L, 1, NULL), HAMMER_ERR_INVALID);
    CHECK_STATUS(hammer_inspect_bucket(h, id, P, L, NULL), HAMMER_ERR_INVALID);
    CHECK(test_contains_ci(hammer_last_error(), "out is NULL"), "hammer_inspect_bucket NULL out: \"%s\"",
          hammer_last_error());
    hammer_bucket b;
    CHECK_STATUS(hammer_get_bucket(h, id, now / P, &b), HAMMER_OK);
    CHECK(b.found == 0, "refused check_rate calls wrote no bucket");
}

/* ------------------------------------------------------------------------------------------------------------ */

/* Hammer's check_rate: counted even when denied, allowed iff count <= limit, retry = time to the window's end. */
static void test_check_rate(hammer_t *h, const char *base)
{
    char id[256];
    id_of(id, sizeof id, base, "check", 0);
    const int64_t start = T0 + 100; /* 100 ms into window T0 / P */
    hammer_decision d;
    int ok = 1;
    for (int i = 1; i <= L + 3; i++) {
        int64_t t = start + 10 * i;
        CHECK_STATUS(hammer_check_rate_at(h, id, P, L, 1, t, &d), HAMMER_OK);
        int allowed = i <= L;
        int64_t left = T0 + P - t;
        if (!CHECK(d.allowed == allowed && d.count == i && d.limit == L && d.remaining == (allowed ? L - i : 0) &&
                       d.retry_after_ms == (allowed ? 0 : left) && d.reset_after_ms == left,
                   "check_rate %d at +%" PRId64 ": allowed %d == %d, count %" PRId64 ", remaining %" PRId64
                   ", retry %" PRId64 " (window ends in %" PRId64 "), reset %" PRId64,
                   i, t - T0, d.allowed, allowed, d.count, d.remaining, d.retry_after_ms, left, d.reset_after_ms))
            ok = 0;
    }
    CHECK(ok, "check_rate: %d allowed then denied, the count going on to %d", L, L + 3);

    /* The seed's bucket layout: bucket now / scale, count with denied hits, created/updated stamps. */
    hammer_bucket b;
    CHECK_STATUS(hammer_get_bucket(h, id, T0 / P, &b), HAMMER_OK);
    CHECK(b.found && b.count == L + 3 && b.created == start + 10 && b.updated == start + 10 * (L + 3),
          "bucket %" PRId64 ": count %" PRId64 " == %d, created %" PRId64 ", updated %" PRId64, T0 / P, b.count, L + 3,
          b.created, b.updated);

    /* Increment 0 counts nothing and says whether the window is over; a bigger increment jumps. */
    CHECK_STATUS(hammer_check_rate_at(h, id, P, L, 0, start + 500, &d), HAMMER_OK);
    CHECK(d.allowed == 0 && d.count == L + 3, "increment 0 when over: denied, count %" PRId64 " unchanged", d.count);
    CHECK_STATUS(hammer_check_rate_at(h, id, P, L + 3, 0, start + 500, &d), HAMMER_OK);
    CHECK(d.allowed == 1 && d.remaining == 0, "increment 0 with limit == count: allowed, remaining 0");

    /* The next window starts over. */
    CHECK_STATUS(hammer_check_rate_at(h, id, P, L, 3, T0 + P, &d), HAMMER_OK);
    CHECK(d.allowed == 1 && d.count == 3 && d.remaining == L - 3 && d.reset_after_ms == P,
          "next window: increment 3 allowed, count %" PRId64 ", remaining %" PRId64, d.count, d.remaining);
    CHECK_STATUS(hammer_check_rate_at(h, id, P, L, 3, T0 + P + 1, &d), HAMMER_OK);
    CHECK(d.allowed == 0 && d.count == 6 && d.retry_after_ms == P - 1,
          "next window: a second increment 3 denied (count %" PRId64 " > %d), retry %" PRId64, d.count, L,
          d.retry_after_ms);

    /* check_rate and hit on the fixed window share the seed's buckets: a hit sees the counted hits. */
    hammer_limit fw = limit_of(HAMMER_FIXED_WINDOW, 10, P, 0);
    CHECK_STATUS(hammer_peek_at(h, id, &fw, T0 + P + 2, &d), HAMMER_OK);
    CHECK(d.allowed == 1 && d.remaining == 4, "fixed-window peek sees check_rate's count 6 of 10 (remaining %" PRId64
          ")", d.remaining);

    int64_t deleted = 0;
    CHECK_STATUS(hammer_delete_buckets(h, id, &deleted), HAMMER_OK);
    CHECK_EQ_I64(deleted, 2);
    CHECK_STATUS(hammer_check_rate_at(h, id, P, L, 1, start, &d), HAMMER_OK);
    CHECK(d.allowed == 1 && d.count == 1, "after delete_buckets (Hammer's reset) the window counts from 1 again");
    CHECK_STATUS(hammer_delete_buckets(h, id, NULL), HAMMER_OK);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* inspect_bucket reads the current window (the handle's clock) without changing it. A 10-year scale keeps
 * the test far from a window boundary (the next one is in December 2029). */
static void test_inspect_bucket(hammer_t *h, const char *base)
{
    char id[256];
    id_of(id, sizeof id, base, "inspect", 0);
    const int64_t scale = INT64_C(315360000000), lim = 4;
    hammer_inspection in, in2;
    hammer_decision d;

    int64_t before = wall_ms();
    CHECK_STATUS(hammer_inspect_bucket(h, id, scale, lim, &in), HAMMER_OK);
    int64_t after = wall_ms();
    int64_t end = (before / scale + 1) * scale;
    CHECK(in.count == 0 && in.remaining == lim && in.created == 0 && in.updated == 0,
          "inspect of a fresh id: count 0, remaining %" PRId64 ", created 0, updated 0", in.remaining);
    CHECK(in.ms_to_next_bucket >= end - after - 1 && in.ms_to_next_bucket <= end - before + 1,
          "ms_to_next_bucket %" PRId64 " is the time to the window's end (%" PRId64 " .. %" PRId64 ")",
          in.ms_to_next_bucket, end - after, end - before);

    int64_t t1 = wall_ms(), t2 = t1 + 5;
    CHECK_STATUS(hammer_check_rate_at(h, id, scale, lim, 2, t1, &d), HAMMER_OK);
    CHECK_STATUS(hammer_check_rate_at(h, id, scale, lim, 1, t2, &d), HAMMER_OK);
    CHECK_STATUS(hammer_inspect_bucket(h, id, scale, lim, &in), HAMMER_OK);
    CHECK(in.count == 3 && in.remaining == lim - 3 && in.created == t1 && in.updated == t2,
          "inspect: count %" PRId64 " == 3, remaining %" PRId64 ", created %" PRId64 " == %" PRId64 ", updated %" PRId64
          " == %" PRId64, in.count, in.remaining, in.created, t1, in.updated, t2);
    CHECK_STATUS(hammer_inspect_bucket(h, id, scale, lim, &in2), HAMMER_OK);
    CHECK(in2.count == in.count && in2.created == in.created && in2.updated == in.updated &&
              in2.remaining == in.remaining,
          "a second inspect sees the same bucket (no side effect)");
    hammer_bucket b;
    CHECK_STATUS(hammer_get_bucket(h, id, t1 / scale, &b), HAMMER_OK);
    CHECK(b.found && b.count == 3 && b.updated == t2, "get_bucket agrees: count %" PRId64 ", updated %" PRId64,
          b.count, b.updated);

    CHECK_STATUS(hammer_check_rate_at(h, id, scale, lim, 3, t2 + 1, &d), HAMMER_OK);
    CHECK(d.allowed == 0 && d.count == 6, "check_rate over the limit counted (count %" PRId64 ")", d.count);
    CHECK_STATUS(hammer_inspect_bucket(h, id, scale, lim, &in), HAMMER_OK);
    CHECK(in.count == 6 && in.remaining == 0, "inspect over the limit: count %" PRId64 ", remaining %" PRId64 " == 0",
          in.count, in.remaining);

    /* hammer_check_rate on the handle's clock lands in the same window. */
    CHECK_STATUS(hammer_check_rate(h, id, scale, 10, 1, &d), HAMMER_OK);
    CHECK(d.allowed == 1 && d.count == 7 && d.remaining == 3, "hammer_check_rate (clock) counts in the same window: %"
          PRId64, d.count);
    CHECK_STATUS(hammer_delete_buckets(h, id, NULL), HAMMER_OK);
    CHECK_STATUS(hammer_inspect_bucket(h, id, scale, lim, &in), HAMMER_OK);
    CHECK(in.count == 0 && in.created == 0, "inspect after reset: count 0");
}

/* ------------------------------------------------------------------------------------------------------------ */

/* Exhausts every algorithm (and a check_rate window) of `id` at T0. */
static void exhaust(hammer_t *h, const char *id)
{
    hammer_decision d;
    int ok = 1;
    for (int a = 0; a < NALG; a++) {
        hammer_limit lim = limit_of(a, L, P, 0);
        if (hammer_hit_at(h, id, &lim, L, T0, &d) != HAMMER_OK || !d.allowed) ok = 0;
    }
    for (int i = 0; i <= L; i++)
        if (hammer_check_rate_at(h, id, 7 * P, L, 1, T0, &d) != HAMMER_OK) ok = 0;
    CHECK(ok, "\"%s\": every algorithm and a check_rate window used up", id);
}

/* 1 when every algorithm of `id` is exhausted at T0 (peeks deny) and its check_rate window is over. */
static int exhausted(hammer_t *h, const char *id, int *fresh)
{
    hammer_decision d;
    int all = 1, none = 1;
    for (int a = 0; a < NALG; a++) {
        hammer_limit lim = limit_of(a, L, P, 0);
        if (hammer_peek_at(h, id, &lim, T0, &d) != HAMMER_OK) return all = none = 0;
        if (d.allowed) all = 0;
        if (!d.allowed || d.remaining != L) none = 0;
    }
    if (hammer_check_rate_at(h, id, 7 * P, L, 0, T0, &d) != HAMMER_OK) return 0;
    if (d.allowed) all = 0;
    if (d.count != 0) none = 0;
    *fresh = none;
    return all;
}

static void test_delete(hammer_t *h)
{
    /* The handle has a prefix of its own (see main), so the ids can be the plain bytes "a", "a:x", "a*". */
    const char *ids[] = {"a", "a:x", "a*"};
    for (int i = 0; i < 3; i++) exhaust(h, ids[i]);
    int fresh = 0;
    for (int i = 0; i < 3; i++)
        CHECK(exhausted(h, ids[i], &fresh) && !fresh, "\"%s\" exhausted before any delete", ids[i]);

    int64_t deleted = 0;
    CHECK_STATUS(hammer_delete_buckets(h, "a", &deleted), HAMMER_OK);
    /* 2 fixed windows (hit and check_rate) + sliding log and meta + token + leaky + gcra + sliding counter */
    CHECK(deleted >= 8 && deleted <= 9, "delete_buckets(\"a\") deleted %" PRId64 " keys (8 states, + index?)",
          deleted);
    CHECK(!exhausted(h, "a", &fresh) && fresh, "\"a\": every algorithm has full capacity again");
    CHECK(exhausted(h, "a:x", &fresh), "\"a:x\" untouched by delete(\"a\")");
    CHECK(exhausted(h, "a*", &fresh), "\"a*\" untouched by delete(\"a\")");

    /* A fresh burst on "a" gets the whole capacity of every algorithm at the very instant it was exhausted. */
    hammer_decision d;
    int all = 1;
    for (int a = 0; a < NALG; a++) {
        hammer_limit lim = limit_of(a, L, P, 0);
        for (int i = 1; i <= L; i++)
            if (hammer_hit_at(h, "a", &lim, 1, T0, &d) != HAMMER_OK || !d.allowed || d.remaining != L - i) all = 0;
        if (hammer_hit_at(h, "a", &lim, 1, T0, &d) != HAMMER_OK || d.allowed) all = 0;
    }
    CHECK(all, "\"a\" after reset: %d hits allowed and one denied for each algorithm", L);
    CHECK_STATUS(hammer_delete_buckets(h, "a", NULL), HAMMER_OK);
    exhaust(h, "a");

    CHECK_STATUS(hammer_delete_buckets(h, "a*", &deleted), HAMMER_OK);
    CHECK(deleted >= 7, "delete_buckets(\"a*\") deleted %" PRId64 " keys", deleted);
    CHECK(exhausted(h, "a:x", &fresh), "\"a:x\" untouched by delete(\"a*\") (no glob)");
    CHECK(!exhausted(h, "a*", &fresh) && fresh, "\"a*\" fresh after its delete");
    CHECK(exhausted(h, "a", &fresh), "\"a\" untouched by delete(\"a*\")");

    CHECK_STATUS(hammer_delete_buckets(h, "a:x", &deleted), HAMMER_OK);
    CHECK(deleted >= 7, "delete_buckets(\"a:x\") deleted %" PRId64 " keys", deleted);
    CHECK(exhausted(h, "a", &fresh), "\"a\" untouched by delete(\"a:x\")");
    CHECK_STATUS(hammer_delete_buckets(h, "a", &deleted), HAMMER_OK);
    CHECK_STATUS(hammer_delete_buckets(h, "a", &deleted), HAMMER_OK);
    CHECK_EQ_I64(deleted, 0);
}

/* ------------------------------------------------------------------------------------------------------------ */

/* Redis's TIME in ms, through a raw RESP connection to the server of `url` (redis://host:port or unix://path).
 * Returns -1 on failure. */
static int64_t redis_time_ms(const char *url)
{
    int fd = -1;
    char buf[512];
    if (strncmp(url, "unix://", 7) == 0) {
        struct sockaddr_un sa;
        memset(&sa, 0, sizeof sa);
        sa.sun_family = AF_UNIX;
        size_t n = strcspn(url + 7, "?");
        if (n >= sizeof sa.sun_path) return -1;
        memcpy(sa.sun_path, url + 7, n);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) goto fail;
    } else if (strncmp(url, "redis://", 8) == 0) {
        const char *p = url + 8, *end = p + strcspn(p, "/?");
        const char *at = memchr(p, '@', (size_t)(end - p));
        if (at) p = at + 1; /* the tests' servers need no password */
        char host[256] = "127.0.0.1", port[16] = "6379";
        const char *colon = NULL;
        if (*p == '[') {
            const char *rb = memchr(p, ']', (size_t)(end - p));
            if (!rb || (size_t)(rb - p - 1) >= sizeof host) return -1;
            memcpy(host, p + 1, (size_t)(rb - p - 1));
            host[rb - p - 1] = 0;
            colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
        } else {
            colon = memchr(p, ':', (size_t)(end - p));
            size_t hl = (size_t)((colon ? colon : end) - p);
            if (hl >= sizeof host) return -1;
            if (hl) {
                memcpy(host, p, hl);
                host[hl] = 0;
            }
        }
        if (colon) {
            size_t pl = (size_t)(end - colon - 1);
            if (pl >= sizeof port) return -1;
            memcpy(port, colon + 1, pl);
            port[pl] = 0;
        }
        struct addrinfo hints, *ai = NULL;
        memset(&hints, 0, sizeof hints);
        hints.ai_socktype = SOCK_STREAM;
        if (getaddrinfo(host, port, &hints, &ai) != 0) return -1;
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        int c = fd >= 0 ? connect(fd, ai->ai_addr, ai->ai_addrlen) : -1;
        freeaddrinfo(ai);
        if (c != 0) goto fail;
    } else {
        return -1;
    }
    static const char cmd[] = "*1\r\n$4\r\nTIME\r\n";
    if (write(fd, cmd, sizeof cmd - 1) != (ssize_t)(sizeof cmd - 1)) goto fail;
    /* *2\r\n$10\r\n<sec>\r\n$6\r\n<usec>\r\n : read until four CRLFs after the header */
    size_t got = 0;
    int lines = 0;
    while (lines < 5 && got < sizeof buf - 1) {
        ssize_t r = read(fd, buf + got, sizeof buf - 1 - got);
        if (r <= 0) goto fail;
        for (ssize_t i = 0; i < r; i++)
            if (buf[got + (size_t)i] == '\n') lines++;
        got += (size_t)r;
    }
    buf[got] = 0;
    close(fd);
    long long sec = 0, usec = 0;
    if (sscanf(buf, "*2\r\n$%*d\r\n%lld\r\n$%*d\r\n%lld", &sec, &usec) != 2) return -1;
    return (int64_t)sec * 1000 + usec / 1000;
fail:
    if (fd >= 0) close(fd);
    return -1;
}

/* clock=redis: hammer_hit / hammer_peek decide at Redis's TIME; hammer_hit_at still at the caller's time. */
static void test_clock_redis(const char *url, const char *base)
{
    char u[2048];
    snprintf(u, sizeof u, "%s%sclock=redis", url, strchr(url, '?') ? "&" : "?");
    hammer_t *h = NULL;
    CHECK_STATUS(hammer_open(u, &h), HAMMER_OK);
    if (h == NULL) return;
    char id[256];
    id_of(id, sizeof id, base, "clock", 1);
    hammer_decision d;

    /* A sliding-window hit at an explicit time one day ahead; a peek on Redis's clock then reads Redis's now back
     * exactly: retry = ahead_time + period - now. */
    const int64_t day = 86400000, period = 2 * day;
    int64_t r0 = redis_time_ms(url);
    CHECK(r0 > 0, "Redis TIME read through a raw connection: %" PRId64, r0);
    int64_t ahead = (r0 > 0 ? r0 : wall_ms()) + day;
    hammer_limit sw = limit_of(HAMMER_SLIDING_WINDOW, 1, period, 0);
    CHECK_STATUS(hammer_hit_at(h, id, &sw, 1, ahead, &d), HAMMER_OK);
    CHECK(d.allowed == 1 && d.reset_after_ms == period, "clock=redis: hit_at uses the caller's time (reset %" PRId64
          " == period)", d.reset_after_ms);
    int64_t before = redis_time_ms(url);
    CHECK_STATUS(hammer_peek(h, id, &sw, &d), HAMMER_OK);
    int64_t after = redis_time_ms(url);
    int64_t now = ahead + period - d.retry_after_ms;
    CHECK(d.allowed == 0 && before > 0 && before <= now && now <= after,
          "clock=redis: the peek decided at %" PRId64 ", within Redis TIME %" PRId64 " .. %" PRId64, now, before,
          after);

    /* The same readout from a hit on a second id. */
    char id2[256];
    id_of(id2, sizeof id2, base, "clock", 2);
    CHECK_STATUS(hammer_hit_at(h, id2, &sw, 1, ahead, &d), HAMMER_OK);
    before = redis_time_ms(url);
    CHECK_STATUS(hammer_hit(h, id2, &sw, 1, &d), HAMMER_OK);
    after = redis_time_ms(url);
    now = ahead + period - d.retry_after_ms;
    CHECK(d.allowed == 0 && before <= now && now <= after,
          "clock=redis: the hit decided at %" PRId64 ", within Redis TIME %" PRId64 " .. %" PRId64, now, before,
          after);

    /* Fresh ids on Redis's clock: sane decisions for every algorithm. */
    int sane = 1;
    for (int a = 0; a < NALG; a++) {
        char id3[256];
        id_of(id3, sizeof id3, base, "clock-fresh", a);
        hammer_limit lim = limit_of(a, L, INT64_C(315360000000), 0); /* the next fixed window starts in 2029 */
        if (hammer_peek(h, id3, &lim, &d) != HAMMER_OK || !d.allowed || d.remaining != L) sane = 0;
        if (hammer_hit(h, id3, &lim, 2, &d) != HAMMER_OK || !d.allowed || d.remaining != L - 2) sane = 0;
        if (hammer_hit(h, id3, &lim, L, &d) != HAMMER_OK || d.allowed || d.retry_after_ms <= 0) sane = 0;
        if (a == HAMMER_FIXED_WINDOW && (d.retry_after_ms > lim.period_ms || d.reset_after_ms > lim.period_ms))
            sane = 0;
        hammer_delete_buckets(h, id3, NULL);
    }
    CHECK(sane, "clock=redis: every algorithm allows 2 of %d, then denies %d with a wait", L, L);

    /* check_rate on Redis's clock counts in the window of Redis's now. */
    before = redis_time_ms(url);
    CHECK_STATUS(hammer_check_rate(h, id, P, L, 1, &d), HAMMER_OK);
    after = redis_time_ms(url);
    int64_t end_lo = (before / P + 1) * P - after, end_hi = (after / P + 1) * P - before;
    CHECK(d.allowed == 1 && d.count == 1 && (d.reset_after_ms >= end_lo || before / P != after / P) &&
              d.reset_after_ms <= end_hi && d.reset_after_ms > 0,
          "clock=redis: check_rate's window ends in %" PRId64 " ms (Redis TIME says %" PRId64 " .. %" PRId64 ")",
          d.reset_after_ms, end_lo, end_hi);

    hammer_delete_buckets(h, id, NULL);
    hammer_delete_buckets(h, id2, NULL);
    hammer_close(h);
}

int main(int argc, char **argv)
{
    const char *url = test_url(argc, argv);
    if (url == NULL) return 2;

    char base[128];
    test_unique_id(base, sizeof base, "limits");
    hammer_t *h = NULL;
    CHECK_STATUS(hammer_open(url, &h), HAMMER_OK);
    if (h == NULL) return test_summary("test_limits");

    for (int a = 0; a < NALG; a++) {
        test_burst(h, base, a);
        test_costs_and_burst(h, base, a);
    }
    test_bad_parameters(h, base);
    test_check_rate(h, base);
    test_inspect_bucket(h, base);
    test_clock_redis(url, base);
    hammer_close(h);

    /* A handle with a prefix of its own, for the delete test's short ids. */
    char u[2048];
    snprintf(u, sizeof u, "%s%sprefix=%s:", url, strchr(url, '?') ? "&" : "?", base);
    hammer_t *hp = NULL;
    CHECK_STATUS(hammer_open(u, &hp), HAMMER_OK);
    if (hp) test_delete(hp);
    hammer_close(hp);
    return test_summary("test_limits");
}
