/*
 * example.c — rate-limit a burst of requests with libhammer.
 *
 *   cc example.c $(pkg-config --cflags --libs hammer) -o example
 *   HAMMER_URL='redis://127.0.0.1:6379/?expiry_ms=60000' ./example      (or: ./example URL)
 *
 * A client sends a burst of requests; each one is allowed while its fixed window (WINDOW_MS long) has seen at most
 * LIMIT hits, and denied after that. Every request, allowed or denied, is counted with hammer_count_hit on
 * bucket = now_ms / WINDOW_MS, exactly as Hammer's check_rate does. Then the example reads the bucket back and
 * resets the client with hammer_delete_buckets.
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

#define LIMIT     5     /* requests allowed per window */
#define WINDOW_MS 1000  /* window length */
#define REQUESTS  12    /* more than twice LIMIT: some are denied even if the burst straddles two windows */

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

/* The outcome of one request. */
typedef struct decision {
    int allowed;     /* 1: pass, 0: deny */
    int64_t count;   /* hits counted in the window, this one included */
    int64_t bucket;  /* the window the hit went to */
} decision;

/* A limiter decides one request of `id` at time `now`. Returns HAMMER_OK and fills *out, or an error status. */
typedef int (*limiter_fn)(hammer_t *h, const char *id, int64_t now, decision *out);

/* Fixed window, Hammer's check_rate: count the hit in bucket now / WINDOW_MS, allow while count <= LIMIT. */
static int fixed_window(hammer_t *h, const char *id, int64_t now, decision *out)
{
    out->bucket = now / WINDOW_MS;
    int rc = hammer_count_hit(h, id, out->bucket, now, 1, &out->count);
    out->allowed = rc == HAMMER_OK && out->count <= LIMIT;
    return rc;
}

static const struct {
    const char *name;
    limiter_fn decide;
} limiters[] = {
    {"fixed window", fixed_window},
};

/* Sends REQUESTS requests of `id` through one limiter and prints each decision; then shows and resets the bucket. */
static int run_burst(hammer_t *h, const char *id, const char *name, limiter_fn decide)
{
    printf("%s: %d requests, limit %d per %d ms, id \"%s\"\n", name, REQUESTS, LIMIT, WINDOW_MS, id);
    int allowed = 0, denied = 0;
    decision d = {0, 0, 0};
    for (int i = 1; i <= REQUESTS; i++) {
        int rc = decide(h, id, now_ms(), &d);
        if (rc != HAMMER_OK) return report("limiter", rc);
        printf("  request %2d: %-7s (count %" PRId64 " in window %" PRId64 ")\n", i, d.allowed ? "allowed" : "denied",
               d.count, d.bucket);
        if (d.allowed) allowed++;
        else denied++;
    }
    printf("  %d allowed, %d denied\n", allowed, denied);

    hammer_bucket b;
    int rc = hammer_get_bucket(h, id, d.bucket, &b);
    if (rc != HAMMER_OK) return report("hammer_get_bucket", rc);
    if (b.found)
        printf("  bucket %" PRId64 ": count %" PRId64 ", created %" PRId64 ", updated %" PRId64 "\n", b.bucket, b.count,
               b.created, b.updated);
    else
        printf("  bucket %" PRId64 ": not found\n", b.bucket);

    int64_t deleted = 0;
    rc = hammer_delete_buckets(h, id, &deleted);
    if (rc != HAMMER_OK) return report("hammer_delete_buckets", rc);
    printf("  reset: %" PRId64 " bucket(s) deleted\n", deleted);
    return HAMMER_OK;
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : getenv("HAMMER_URL");
    if (url == NULL || *url == '\0') {
        fprintf(stderr, "usage: %s REDIS_URL   (or set HAMMER_URL)\n"
                        "  e.g. redis://127.0.0.1:6379/?expiry_ms=60000\n", argv[0]);
        return 2;
    }
    printf("libhammer %s (header %s)\n", hammer_version(), HAMMER_VERSION_STRING);

    hammer_t *h = NULL;
    int rc = hammer_open(url, &h);
    if (rc != HAMMER_OK) {
        report("hammer_open", rc);
        return 1;
    }

    /* A client id unique to this run, so runs never share counters. */
    char id[64];
    snprintf(id, sizeof id, "example:%ld:%" PRId64, (long)getpid(), now_ms());

    for (size_t i = 0; i < sizeof limiters / sizeof limiters[0] && rc == HAMMER_OK; i++)
        rc = run_burst(h, id, limiters[i].name, limiters[i].decide);

    hammer_close(h);
    return rc == HAMMER_OK ? 0 : 1;
}
