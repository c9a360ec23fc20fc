/*
 * example.c — rate-limit a burst of requests with libhammer.
 *
 *   cc example.c $(pkg-config --cflags --libs hammer) -o example
 *   HAMMER_URL='redis://127.0.0.1:6379/?expiry_ms=60000' ./example      (or: ./example URL)
 *   HAMMER_URL='memory://?expiry_ms=60000' ./example                     (no Redis: state in the process)
 *
 * A client sends a burst of REQUESTS requests, and each limiter decides them with the same limit: LIMIT requests
 * per WINDOW_MS. First Hammer's own check_rate (the fixed-window buckets Elixir's Hammer uses, so both can share
 * them), then the five algorithms of hammer_hit, each with one line on when to pick it. Every decision prints
 * whether it passed, the usage, how many more would pass now (remaining) and, when denied, how long to wait
 * (retry_after_ms; -1 would mean never). Then the client is reset with hammer_delete_buckets, and the handle's
 * statistics are printed.
 *
 * To show another limiter, write a function with the signature of `limiter_fn` and add a line to `limiters[]`.
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "hammer.h"

#define LIMIT     3     /* requests allowed per window */
#define WINDOW_MS 1000  /* window length (period_ms) */
#define REQUESTS  7     /* more than twice LIMIT: some are denied even if the burst straddles two windows */

/* Wall-clock milliseconds, the time base Hammer uses. */
static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Prints a failed call: the static text of its status and this thread's detail. Returns the status. */
static int report(const char *what, int status)
{
    fprintf(stderr, "%s failed: %s (%d): %s\n", what, hammer_strerror(status), status, hammer_last_error());
    return status;
}

/* A limiter decides one request of `id`. Returns HAMMER_OK and fills *out, or an error status. */
typedef int (*limiter_fn)(hammer_t *h, const char *id, hammer_decision *out);

/* Hammer's check_rate(id, scale_ms, limit): counts the request in window now / WINDOW_MS, even when it is denied. */
static int check_rate(hammer_t *h, const char *id, hammer_decision *out)
{
    return hammer_check_rate(h, id, WINDOW_MS, LIMIT, 1, out);
}

/* One request of cost 1 through an algorithm; a denied request takes nothing. */
static int hit(hammer_t *h, const char *id, int32_t algorithm, hammer_decision *out)
{
    hammer_limit lim = {.algorithm = algorithm, .limit = LIMIT, .period_ms = WINDOW_MS}; /* burst 0: = LIMIT */
    return hammer_hit(h, id, &lim, 1, out);
}

static int fixed_window(hammer_t *h, const char *id, hammer_decision *out)
{
    return hit(h, id, HAMMER_FIXED_WINDOW, out);
}
static int sliding_window(hammer_t *h, const char *id, hammer_decision *out)
{
    return hit(h, id, HAMMER_SLIDING_WINDOW, out);
}
static int token_bucket(hammer_t *h, const char *id, hammer_decision *out)
{
    return hit(h, id, HAMMER_TOKEN_BUCKET, out);
}
static int leaky_bucket(hammer_t *h, const char *id, hammer_decision *out)
{
    return hit(h, id, HAMMER_LEAKY_BUCKET, out);
}
static int gcra(hammer_t *h, const char *id, hammer_decision *out)
{
    return hit(h, id, HAMMER_GCRA, out);
}

static const struct {
    const char *name;
    const char *when;   /* when to pick it */
    limiter_fn decide;
} limiters[] = {
    {"check_rate", "Hammer's own call on its fixed windows, shared with Elixir's Hammer; denied requests count too",
     check_rate},
    {"fixed window", "cheapest; counts per calendar window; allows up to 2x limit across a boundary", fixed_window},
    {"sliding window", "exact: never more than limit in any window; memory grows with the hits", sliding_window},
    {"token bucket", "steady rate with bursts up to `burst`; constant memory", token_bucket},
    {"leaky bucket", "the token bucket seen as a level that leaks at the rate; capacity `burst`", leaky_bucket},
    {"gcra", "the token bucket's decisions stored as one timestamp (as redis-cell, redis_rate)", gcra},
};
#define LIMITERS (sizeof limiters / sizeof limiters[0])

/* Sends REQUESTS requests of `id` through one limiter and prints each decision. */
static int run_burst(hammer_t *h, const char *id, const char *name, const char *when, limiter_fn decide)
{
    printf("\n%s: %s\n", name, when);
    int allowed = 0, denied = 0;
    for (int i = 1; i <= REQUESTS; i++) {
        hammer_decision d;
        int rc = decide(h, id, &d);
        if (rc != HAMMER_OK) return report(name, rc);
        printf("  request %d: %-7s count %" PRId64 ", remaining %" PRId64 ", retry_after_ms %" PRId64 "\n", i,
               d.allowed ? "allowed" : "denied", d.count, d.remaining, d.retry_after_ms);
        if (d.allowed) allowed++;
        else denied++;
    }
    printf("  %d allowed, %d denied\n", allowed, denied);
    return HAMMER_OK;
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : getenv("HAMMER_URL");
    if (url == NULL || *url == '\0') {
        fprintf(stderr, "usage: %s REDIS_URL   (or set HAMMER_URL)\n"
                        "  e.g. redis://127.0.0.1:6379/?expiry_ms=60000, or memory://?expiry_ms=60000 (no server)\n", argv[0]);
        return 2;
    }
    printf("libhammer %s (header %s)\n", hammer_version(), HAMMER_VERSION_STRING);

    hammer_t *h = NULL;
    int rc = hammer_open(url, &h);
    if (rc != HAMMER_OK) {
        report("hammer_open", rc);
        return 1;
    }

    /* A client id unique to this run, so runs never share counters; each limiter gets its own. */
    char base[64], ids[LIMITERS][96];
    snprintf(base, sizeof base, "example:%ld:%" PRId64, (long)getpid(), now_ms());
    for (size_t i = 0; i < LIMITERS; i++) snprintf(ids[i], sizeof ids[i], "%s:%zu", base, i);
    printf("%d requests at once through each limiter, limit %d per %d ms, client \"%s\"\n", REQUESTS, LIMIT,
           WINDOW_MS, base);

    for (size_t i = 0; i < LIMITERS && rc == HAMMER_OK; i++) {
        rc = run_burst(h, ids[i], limiters[i].name, limiters[i].when, limiters[i].decide);
        if (rc == HAMMER_OK && limiters[i].decide == check_rate) {
            /* Hammer's inspect_bucket: the current window, read without counting. */
            hammer_inspection in;
            rc = hammer_inspect_bucket(h, ids[i], WINDOW_MS, LIMIT, &in);
            if (rc != HAMMER_OK) report("hammer_inspect_bucket", rc);
            else
                printf("  inspect_bucket: count %" PRId64 ", remaining %" PRId64 ", next window in %" PRId64 " ms\n",
                       in.count, in.remaining, in.ms_to_next_bucket);
        }
    }

    /* Hammer's reset: every limiter's state of the client. */
    int64_t deleted = 0;
    for (size_t i = 0; i < LIMITERS && rc == HAMMER_OK; i++) {
        int64_t n = 0;
        rc = hammer_delete_buckets(h, ids[i], &n);
        if (rc != HAMMER_OK) report("hammer_delete_buckets", rc);
        deleted += n;
    }
    if (rc == HAMMER_OK) printf("\nreset: %" PRId64 " keys deleted\n", deleted);

    hammer_stats_t s = HAMMER_STATS_INIT;
    if (rc == HAMMER_OK && (rc = hammer_stats(h, &s)) == HAMMER_OK)
        printf("stats: %" PRIu64 " calls, %" PRIu64 " allowed, %" PRIu64 " denied, latency p50 %" PRId64
               " us, p99 %" PRId64 " us\n",
               s.calls, s.allowed, s.denied, s.p50_us, s.p99_us);

    hammer_close(h);
    return rc == HAMMER_OK ? 0 : 1;
}
