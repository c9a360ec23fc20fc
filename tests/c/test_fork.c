/*
 * test_fork.c — children that go on using the handle their parent opened (a pre-forking server) never share the
 * parent's connections: every count each process gets is its own. Per round, the parent and CHILDREN children hit
 * at once, each its own fresh bucket (counts must be exactly 1, 2, 3, ...) and one shared bucket (all counts
 * distinct, and Redis's total equals the OK returns). Then the same while another thread of the parent is inside
 * calls at the moment of each fork.
 *
 *   build/tests/test_fork REDIS_URL
 */
#include "testutil.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/wait.h>

#define CHILDREN 4
#define ROUNDS   12
#define HITS     150

/* One process's part of a round: HITS hits on its own bucket and on the shared one, interleaved. Writes its
 * shared counts to `fd` (-1: keep them in `shared`), returns the number of wrong answers. */
static int hit_round(hammer_t *h, const char *own, const char *shared_id, int64_t *shared, int fd)
{
    int wrong = 0;
    for (int i = 0; i < HITS; i++) {
        int64_t c = 0;
        int rc = hammer_count_hit(h, own, 1, 1000, 1, &c);
        if (rc != HAMMER_OK || c != i + 1) {
            if (wrong++ < 3)
                printf("FAIL pid %ld: own bucket hit %d -> status %d, count %" PRId64 " (want %d): %s\n",
                       (long)getpid(), i + 1, rc, c, i + 1, hammer_last_error());
        }
        c = 0;
        rc = hammer_count_hit(h, shared_id, 1, 1000, 1, &c);
        if (rc != HAMMER_OK) {
            if (wrong++ < 3) printf("FAIL pid %ld: shared hit -> status %d: %s\n", (long)getpid(), rc, hammer_last_error());
            c = 0;
        }
        shared[i] = c;
    }
    if (fd >= 0) {
        size_t left = sizeof(int64_t) * HITS;
        const char *p = (const char *)shared;
        while (left > 0) {
            ssize_t w = write(fd, p, left);
            if (w <= 0) break;
            p += w;
            left -= (size_t)w;
        }
    }
    return wrong;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* One round: fork CHILDREN, everyone hits, then the shared counts must be 1..N exactly once each. */
static void round_(hammer_t *h, const char *base, int r)
{
    char shared_id[200];
    snprintf(shared_id, sizeof shared_id, "%s:shared:%d", base, r);
    static int64_t all[(CHILDREN + 1) * HITS];
    pid_t pids[CHILDREN];
    int fds[CHILDREN];
    int forked = 0;
    fflush(stdout);
    for (int i = 0; i < CHILDREN; i++) {
        int p[2];
        if (!CHECK(pipe(p) == 0, "pipe")) break;
        pid_t pid = fork();
        if (pid == 0) {
            close(p[0]);
            char own[220];
            snprintf(own, sizeof own, "%s:own:%d:%ld", base, r, (long)getpid());
            int64_t counts[HITS];
            int wrong = hit_round(h, own, shared_id, counts, p[1]);
            hammer_delete_buckets(h, own, NULL);
            fflush(stdout);
            _exit(wrong > 99 ? 99 : wrong);
        }
        close(p[1]);
        if (!CHECK(pid > 0, "fork")) { close(p[0]); break; }
        pids[forked] = pid;
        fds[forked++] = p[0];
    }
    char own[220];
    snprintf(own, sizeof own, "%s:own:%d:%ld", base, r, (long)getpid());
    int wrong = hit_round(h, own, shared_id, all, -1);
    CHECK_QUIET(wrong == 0, "round %d: the parent's own counts were 1..%d and every call succeeded", r, HITS);
    hammer_delete_buckets(h, own, NULL);
    int n = HITS;
    for (int i = 0; i < forked; i++) {
        size_t want = sizeof(int64_t) * HITS, got = 0;
        char *p = (char *)(all + n);
        while (got < want) {
            ssize_t k = read(fds[i], p + got, want - got);
            if (k <= 0) break;
            got += (size_t)k;
        }
        close(fds[i]);
        int status = 0;
        waitpid(pids[i], &status, 0);
        CHECK_QUIET(WIFEXITED(status) && WEXITSTATUS(status) == 0 && got == want,
                    "round %d: child %d's own counts were 1..%d and every call succeeded (exit %d, signal %d)", r, i,
                    HITS, WIFEXITED(status) ? WEXITSTATUS(status) : -1, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        n += HITS;
    }
    qsort(all, (size_t)n, sizeof all[0], cmp64);
    int distinct = 1;
    for (int i = 0; i < n; i++) distinct &= all[i] == i + 1;
    CHECK_QUIET(distinct, "round %d: the %d shared counts are exactly 1..%d, each once", r, n, n);
    hammer_bucket b;
    CHECK_STATUS(hammer_get_bucket(h, shared_id, 1, &b), HAMMER_OK);
    CHECK_QUIET(b.count == n, "round %d: Redis's shared total %" PRId64 " == %d OK returns", r, b.count, n);
    hammer_delete_buckets(h, shared_id, NULL);
}

struct busy {
    hammer_t *h;
    char id[200];
    atomic_int stop;
    int wrong;
    int64_t calls;
};

/* The parent's other thread: hits its own bucket without pause, so forks happen while it is inside calls. */
static void *busy_thread(void *arg)
{
    struct busy *b = arg;
    while (!atomic_load(&b->stop)) {
        int64_t c = 0;
        int rc = hammer_count_hit(b->h, b->id, 1, 1000, 1, &c);
        b->calls++;
        if (rc != HAMMER_OK || c != b->calls) {
            if (b->wrong++ < 3)
                printf("FAIL busy thread: hit %" PRId64 " -> status %d, count %" PRId64 ": %s\n", b->calls, rc, c,
                       hammer_last_error());
            b->calls = c; /* resynchronise, so one wrong answer is counted once */
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const char *url = test_url(argc, argv);
    if (url == NULL) return 2;
    char base[128];
    test_unique_id(base, sizeof base, "fork");
    char u[2048];
    snprintf(u, sizeof u, "%s%spool_size=4", url, strchr(url, '?') ? "&" : "?");
    hammer_t *h = NULL;
    CHECK_STATUS(hammer_open(u, &h), HAMMER_OK);
    if (h == NULL) return test_summary("test_fork");

    for (int r = 0; r < ROUNDS; r++) round_(h, base, r);

    /* Forks while another thread of the parent is inside calls. */
    struct busy b = {.h = h};
    snprintf(b.id, sizeof b.id, "%s:busy", base);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, busy_thread, &b) == 0, "busy thread started");
    for (int r = ROUNDS; r < 2 * ROUNDS; r++) round_(h, base, r);
    atomic_store(&b.stop, 1);
    pthread_join(t, NULL);
    CHECK(b.wrong == 0 && b.calls > 0, "the parent's busy thread got its own counts 1..%" PRId64 " throughout",
          b.calls);
    hammer_delete_buckets(h, b.id, NULL);

    hammer_stats_t s = HAMMER_STATS_INIT;
    CHECK_STATUS(hammer_stats(h, &s), HAMMER_OK);
    CHECK(s.connections <= 4, "the parent's pool is still within pool_size (%" PRId64 " open)", s.connections);
    hammer_close(h);
    return test_summary("test_fork");
}
