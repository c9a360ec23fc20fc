/*
 * test_limit_procs.c — CHILDREN processes x THREADS threads hit one limiter at one fixed time (hammer_hit_at), for
 * each of the five algorithms with limit LIMIT: exactly LIMIT hits are allowed in total, however the calls
 * interleave. Each child opens its own handle (shared by its threads; a handle never crosses fork()) and writes its
 * per-algorithm totals of allowed hits and failed calls to a pipe; the parent sums them.
 *
 *   build/tests/test_limit_procs REDIS_URL
 */
#include "testutil.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/wait.h>

#define CHILDREN 4
#define THREADS  8
#define HITS     8       /* per thread and algorithm: 4 x 8 x 8 = 256 tries for LIMIT */
#define LIMIT    100
#define PERIOD   60000
#define NOW      INT64_C(1700000040000)
#define ALGS     5

static const char *const NAMES[] = {"fixed window", "sliding window", "token bucket", "leaky bucket", "gcra"};

typedef struct totals {
    int64_t allowed[ALGS];
    int64_t failed[ALGS];
    int64_t bad[ALGS];     /* decisions that break a rule: allowed with retry, denied without, remaining > limit */
} totals;

typedef struct worker {
    hammer_t *h;
    const char *base;
    pthread_barrier_t *start;
    totals t;
} worker;

static void limit_id(char *buf, size_t size, const char *base, int a)
{
    snprintf(buf, size, "%s:%d", base, a);
}

static void *run(void *arg)
{
    worker *w = arg;
    pthread_barrier_wait(w->start);
    char id[ALGS][160];
    hammer_limit lim[ALGS];
    for (int a = 0; a < ALGS; a++) {
        limit_id(id[a], sizeof id[a], w->base, a);
        memset(&lim[a], 0, sizeof lim[a]);
        lim[a].algorithm = a;
        lim[a].limit = LIMIT;
        lim[a].period_ms = PERIOD;
    }
    /* Interleave the algorithms so every limiter sees contention from the start. */
    for (int i = 0; i < HITS; i++)
        for (int a = 0; a < ALGS; a++) {
            hammer_decision d;
            int rc = hammer_hit_at(w->h, id[a], &lim[a], 1, NOW, &d);
            if (rc != HAMMER_OK) {
                if (w->t.failed[a]++ == 0)
                    printf("FAIL pid %ld: hammer_hit_at(%s) -> %d (%s): %s\n", (long)getpid(), NAMES[a], rc,
                           hammer_strerror(rc), hammer_last_error());
                continue;
            }
            if (d.allowed) w->t.allowed[a]++;
            if ((d.allowed && d.retry_after_ms != 0) || (!d.allowed && d.retry_after_ms <= 0) ||
                d.remaining < 0 || d.remaining > LIMIT || d.limit != LIMIT)
                w->t.bad[a]++;
        }
    return NULL;
}

/* A child's life: THREADS threads on one handle; totals to `fd`. Exit 0 when the totals were written. */
static int child(const char *url, const char *base, int fd)
{
    totals sum;
    memset(&sum, 0, sizeof sum);
    hammer_t *h = NULL;
    int rc = hammer_open(url, &h);
    if (rc != HAMMER_OK) {
        printf("FAIL child %ld: hammer_open -> %d (%s): %s\n", (long)getpid(), rc, hammer_strerror(rc),
               hammer_last_error());
        return 3;
    }
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, THREADS);
    worker w[THREADS];
    pthread_t tid[THREADS];
    int started = 0;
    for (int i = 0; i < THREADS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].h = h;
        w[i].base = base;
        w[i].start = &start;
    }
    for (int i = 0; i < THREADS; i++) {
        if (pthread_create(&tid[i], NULL, run, &w[i]) != 0) {
            printf("FAIL child %ld: pthread_create %d\n", (long)getpid(), i);
            _exit(4); /* the started threads wait at the barrier forever: leave at once */
        }
        started++;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(tid[i], NULL);
        for (int a = 0; a < ALGS; a++) {
            sum.allowed[a] += w[i].t.allowed[a];
            sum.failed[a] += w[i].t.failed[a];
            sum.bad[a] += w[i].t.bad[a];
        }
    }
    pthread_barrier_destroy(&start);
    hammer_close(h);
    return write(fd, &sum, sizeof sum) == (ssize_t)sizeof sum ? 0 : 5;
}

int main(int argc, char **argv)
{
    const char *url = test_url(argc, argv);
    if (url == NULL) return 2;
    char base[128];
    test_unique_id(base, sizeof base, "limit-procs");

    int fds[CHILDREN][2];
    pid_t pids[CHILDREN];
    int forked = 0;
    fflush(stdout); /* nothing buffered may be printed twice */
    for (int i = 0; i < CHILDREN; i++) {
        if (!CHECK(pipe(fds[i]) == 0, "pipe %d", i)) break;
        pid_t p = fork();
        if (p == 0) {
            close(fds[i][0]);
            int status = child(url, base, fds[i][1]);
            fflush(stdout);
            _exit(status);
        }
        close(fds[i][1]);
        if (!CHECK(p > 0, "fork child %d", i)) {
            close(fds[i][0]);
            break;
        }
        pids[forked++] = p;
    }

    totals all;
    memset(&all, 0, sizeof all);
    int reported = 0;
    for (int i = 0; i < forked; i++) {
        totals t;
        ssize_t n = read(fds[i][0], &t, sizeof t);
        close(fds[i][0]);
        int status = 0;
        pid_t w = waitpid(pids[i], &status, 0);
        int ok = CHECK(w == pids[i] && WIFEXITED(status) && WEXITSTATUS(status) == 0 && n == (ssize_t)sizeof t,
                       "child %d (pid %ld): %d threads x %d hits x %d algorithms, exited 0 and reported totals "
                       "(WIFEXITED %d, code or signal %d, read %zd)",
                       i, (long)pids[i], THREADS, HITS, ALGS, WIFEXITED(status),
                       WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), n);
        if (!ok) continue;
        reported++;
        for (int a = 0; a < ALGS; a++) {
            all.allowed[a] += t.allowed[a];
            all.failed[a] += t.failed[a];
            all.bad[a] += t.bad[a];
        }
    }
    CHECK(reported == CHILDREN, "%d of %d children reported", reported, CHILDREN);

    hammer_t *h = NULL;
    CHECK_STATUS(hammer_open(url, &h), HAMMER_OK);
    for (int a = 0; a < ALGS; a++) {
        int64_t tries = (int64_t)reported * THREADS * HITS;
        CHECK(all.failed[a] == 0 && all.bad[a] == 0, "%s: no failed call, no inconsistent decision (%" PRId64
              " failed, %" PRId64 " inconsistent)", NAMES[a], all.failed[a], all.bad[a]);
        CHECK(all.allowed[a] == LIMIT, "%s: exactly %d of %" PRId64 " concurrent hits allowed (got %" PRId64 ")",
              NAMES[a], LIMIT, tries, all.allowed[a]);
        if (h == NULL) continue;
        char id[160];
        limit_id(id, sizeof id, base, a);
        hammer_limit lim = {a, LIMIT, PERIOD, 0};
        hammer_decision d;
        CHECK_STATUS(hammer_peek_at(h, id, &lim, NOW, &d), HAMMER_OK);
        CHECK(!d.allowed && d.remaining == 0 && d.count == LIMIT, "%s: afterwards the limiter is exactly full (count %"
              PRId64 ")", NAMES[a], d.count);
        CHECK_STATUS(hammer_delete_buckets(h, id, NULL), HAMMER_OK);
    }
    hammer_close(h);
    return test_summary("test_limit_procs");
}
