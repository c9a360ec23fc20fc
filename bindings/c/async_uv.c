/*
 * async_uv.c — libhammer's non-blocking calls on a libuv loop (uv_poll_t on hammer_fd), keeping many ops in flight.
 *
 *   cc async_uv.c $(pkg-config --cflags --libs hammer) -luv -o async_uv      (Debian: libuv1-dev)
 *   ./async_uv URL [OPS [DEPTH]]        (or HAMMER_URL=...; defaults: 20000 ops, 64 in flight)
 *
 * The same work as async_epoll.c: CLIENTS clients, LIMIT hits a minute each (a sliding window), DEPTH hits in
 * flight. libuv watches the handle's descriptor; its callback drains the completions and submits more, and the
 * loop ends when every op has completed (the poll handle is closed, nothing else keeps the loop alive).
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>

#include "hammer.h"

#define CLIENTS 100
#define LIMIT   50
#define BATCH   256

struct state {
    hammer_t *h;
    hammer_limit lim;
    char ids[CLIENTS][64];
    long total, depth, submitted, completed, allowed, denied, errors, max_in_flight;
    hammer_op *ops;
    hammer_completion done[BATCH];
    int failed;
};

/* Tops up to DEPTH ops in flight. */
static void top_up(struct state *s)
{
    long room = s->depth - (s->submitted - s->completed), n = 0;
    while (n < room && s->submitted + n < s->total) {
        long t = s->submitted + n;
        hammer_op o = HAMMER_OP_INIT(HAMMER_OP_HIT, (uint64_t)t, s->ids[t % CLIENTS]);
        o.lims = &s->lim;
        s->ops[n++] = o;
    }
    if (n == 0) return;
    int rc = hammer_submit(s->h, s->ops, (size_t)n);
    if (rc != HAMMER_OK) {
        fprintf(stderr, "hammer_submit: %s: %s\n", hammer_strerror(rc), hammer_last_error());
        s->failed = 1;
        return;
    }
    s->submitted += n;
    if (s->submitted - s->completed > s->max_in_flight) s->max_in_flight = s->submitted - s->completed;
}

static void on_readable(uv_poll_t *poll, int status, int events)
{
    struct state *s = poll->data;
    (void)events;
    if (status < 0) {   /* the descriptor itself failed: nothing more can be drained */
        fprintf(stderr, "uv_poll: %s\n", uv_strerror(status));
        s->failed = 1;
        uv_poll_stop(poll);
        uv_close((uv_handle_t *)poll, NULL);
        return;
    }
    size_t m;
    while ((m = hammer_drain(s->h, s->done, BATCH)) > 0) {
        for (size_t i = 0; i < m; i++) {
            if (s->done[i].status != HAMMER_OK) {
                if (s->errors++ < 5) fprintf(stderr, "op %" PRIu64 ": %s: %s\n", s->done[i].tag,
                                             hammer_strerror(s->done[i].status), s->done[i].message);
            } else if (s->done[i].decision.allowed) {
                s->allowed++;
            } else {
                s->denied++;
            }
        }
        s->completed += (long)m;
        if (m < BATCH) break;
    }
    if (!s->failed) top_up(s);
    /* Once a submit failed, no more are made, and the ops in flight still complete (hammer_shutdown): the loop
     * ends when the last of them has been drained. */
    if (s->failed) hammer_shutdown(s->h);
    if ((s->failed && hammer_pending(s->h) == 0) || s->completed >= s->total) {
        uv_poll_stop(poll);
        uv_close((uv_handle_t *)poll, NULL);
    }
}

int main(int argc, char **argv)
{
    static struct state s;
    const char *url = argc > 1 ? argv[1] : getenv("HAMMER_URL");
    s.total = argc > 2 ? atol(argv[2]) : 20000;
    s.depth = argc > 3 ? atol(argv[3]) : 64;
    if (!url || s.total < 1 || s.depth < 1 || s.depth > 100000) {
        fprintf(stderr, "usage: %s URL [OPS [DEPTH]]   (or HAMMER_URL=URL %s)\n", argv[0], argv[0]);
        return 2;
    }
    int rc = hammer_open(url, &s.h);
    if (rc != HAMMER_OK) {
        fprintf(stderr, "hammer_open: %s: %s\n", hammer_strerror(rc), hammer_last_error());
        return 1;
    }
    for (int c = 0; c < CLIENTS; c++) snprintf(s.ids[c], sizeof s.ids[c], "async_uv:%ld:%d", (long)getpid(), c);
    hammer_limit lim = HAMMER_LIMIT_INIT(HAMMER_SLIDING_WINDOW, LIMIT, 60000);
    s.lim = lim;
    s.ops = calloc((size_t)s.depth, sizeof *s.ops);
    if (!s.ops) return 1;

    uv_loop_t *loop = uv_default_loop();
    uv_poll_t poll;
    int fd = hammer_fd(s.h);
    if (fd < 0 || uv_poll_init(loop, &poll, fd) != 0) {
        fprintf(stderr, "hammer_fd / uv_poll_init failed: %s\n", hammer_last_error());
        return 1;
    }
    poll.data = &s;
    uv_poll_start(&poll, UV_READABLE, on_readable);
    top_up(&s);
    uv_run(loop, UV_RUN_DEFAULT);

    printf("async_uv: %ld ops, %ld in flight at most: %ld allowed, %ld denied, %ld errors\n", s.completed,
           s.max_in_flight, s.allowed, s.denied, s.errors);
    printf("expected: %ld allowed (%d clients x %d), the rest denied\n",
           s.total >= (long)CLIENTS * LIMIT ? (long)CLIENTS * LIMIT : -1L, CLIENTS, LIMIT);
    uv_loop_close(loop);
    free(s.ops);
    hammer_close(s.h);
    return s.errors == 0 && !s.failed && s.completed == s.total ? 0 : 1;
}
