/*
 * async_epoll.c — libhammer's non-blocking calls driven by a plain epoll loop, keeping many ops in flight.
 *
 *   cc async_epoll.c $(pkg-config --cflags --libs hammer) -o async_epoll
 *   ./async_epoll URL [OPS [DEPTH]]        (or HAMMER_URL=...; defaults: 20000 ops, 64 in flight)
 *
 * CLIENTS clients each send OPS / CLIENTS requests, limited to LIMIT per minute (a sliding window): the loop keeps
 * DEPTH hits submitted at all times (hammer_submit), watches hammer_fd() with epoll, and on each wake-up drains
 * the completions (hammer_drain), tallies them by tag and submits more. The library's I/O thread sends the ops
 * in flight together as pipelines; this thread never waits for Redis. The same loop can watch sockets, timers and
 * anything else an epoll set holds.
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "hammer.h"

#define CLIENTS 100
#define LIMIT   50      /* hits per client per minute */
#define BATCH   256     /* completions taken per hammer_drain */

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : getenv("HAMMER_URL");
    long total = argc > 2 ? atol(argv[2]) : 20000;
    long depth = argc > 3 ? atol(argv[3]) : 64;
    if (!url || total < 1 || depth < 1 || depth > 100000) {
        fprintf(stderr, "usage: %s URL [OPS [DEPTH]]   (or HAMMER_URL=URL %s)\n", argv[0], argv[0]);
        return 2;
    }
    hammer_t *h = NULL;
    int rc = hammer_open(url, &h);
    if (rc != HAMMER_OK) {
        fprintf(stderr, "hammer_open: %s: %s\n", hammer_strerror(rc), hammer_last_error());
        return 1;
    }
    /* Each run's own ids, so that every client starts with LIMIT hits to spend. */
    char ids[CLIENTS][64];
    for (int c = 0; c < CLIENTS; c++) snprintf(ids[c], sizeof ids[c], "async_epoll:%ld:%d", (long)getpid(), c);
    hammer_limit lim = HAMMER_LIMIT_INIT(HAMMER_SLIDING_WINDOW, LIMIT, 60000);

    int fd = hammer_fd(h);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
    if (fd < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        perror("epoll");
        return 1;
    }

    long submitted = 0, completed = 0, allowed = 0, denied = 0, errors = 0, max_in_flight = 0;
    hammer_op *ops = calloc((size_t)depth, sizeof *ops);
    hammer_completion *done = calloc(BATCH, sizeof *done);
    if (!ops || !done) return 1;
    while (completed < total) {
        /* Top up to DEPTH in flight with one submit; the tag says which request it is. */
        long room = depth - (submitted - completed), n = 0;
        while (n < room && submitted + n < total) {
            long t = submitted + n;
            hammer_op o = HAMMER_OP_INIT(HAMMER_OP_HIT, (uint64_t)t, ids[t % CLIENTS]);
            o.lims = &lim;
            ops[n++] = o;
        }
        if (n > 0) {
            rc = hammer_submit(h, ops, (size_t)n);   /* the ids and the limit are copied: ops may be reused now */
            if (rc != HAMMER_OK) {
                fprintf(stderr, "hammer_submit: %s: %s\n", hammer_strerror(rc), hammer_last_error());
                return 1;
            }
            submitted += n;
            if (submitted - completed > max_in_flight) max_in_flight = submitted - completed;
        }
        struct epoll_event got[4];
        int k = epoll_wait(ep, got, 4, 10000);
        if (k < 0) { perror("epoll_wait"); return 1; }
        if (k == 0) { fprintf(stderr, "no completion for 10 s\n"); return 1; }
        size_t m;
        while ((m = hammer_drain(h, done, BATCH)) > 0) {
            for (size_t i = 0; i < m; i++) {
                if (done[i].status != HAMMER_OK) {
                    if (errors++ < 5) fprintf(stderr, "op %" PRIu64 ": %s: %s\n", done[i].tag,
                                              hammer_strerror(done[i].status), done[i].message);
                } else if (done[i].decision.allowed) {
                    allowed++;
                } else {
                    denied++;
                }
            }
            completed += (long)m;
            if (m < BATCH) break;
        }
    }
    printf("async_epoll: %ld ops, %ld in flight at most: %ld allowed, %ld denied, %ld errors\n", completed,
           max_in_flight, allowed, denied, errors);
    printf("expected: %ld allowed (%d clients x %d), the rest denied\n",
           total >= (long)CLIENTS * LIMIT ? (long)CLIENTS * LIMIT : -1L, CLIENTS, LIMIT);
    close(ep);
    free(ops);
    free(done);
    hammer_close(h);
    return errors == 0 ? 0 : 1;
}
