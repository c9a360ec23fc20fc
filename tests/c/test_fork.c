/*
 * test_fork.c — children that go on using the handle their parent opened (a pre-forking server) never share the
 * parent's connections: every count each process gets is its own. Per round, the parent and CHILDREN children hit
 * at once, each its own fresh bucket (counts must be exactly 1, 2, 3, ...) and one shared bucket (all counts
 * distinct, and Redis's total equals the OK returns). Then the same while another thread of the parent is inside
 * calls at the moment of each fork. Last, a storm: STORM_FORKS quick forks while STORM_THREADS threads are inside
 * calls (one reads statistics only, the others hit, get buckets and read statistics), so that any lock the library
 * has may be held at a fork: the child's first calls must not wait for a parent's thread. Each child makes its
 * calls under an alarm, so a lock the child inherited held shows as a child killed, not as a hung test.
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
#define STORM_THREADS 3
#define STORM_FORKS   300

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
    int stats_only;   /* the storm's statistics reader: hammer_stats takes every lock the topology has */
    atomic_int warm;  /* the storm thread has made each of its calls many times */
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

/* A storm thread: count_hit, get_bucket, hit, statistics, without pause (or statistics only). */
static void *storm_thread(void *arg)
{
    struct busy *b = arg;
    hammer_limit lim = HAMMER_LIMIT_INIT(HAMMER_SLIDING_COUNTER, 1000000000, 1000);
    while (!atomic_load(&b->stop)) {
        int64_t c = 0;
        hammer_bucket bk;
        hammer_decision d;
        hammer_stats_t s = HAMMER_STATS_INIT;
        int rc = b->stats_only ? HAMMER_OK : hammer_count_hit(b->h, b->id, 1, 1000, 1, &c);
        if (rc == HAMMER_OK && !b->stats_only) rc = hammer_get_bucket(b->h, b->id, 1, &bk);
        if (rc == HAMMER_OK && !b->stats_only) rc = hammer_hit(b->h, b->id, &lim, 1, &d);
        if (rc == HAMMER_OK) rc = hammer_stats(b->h, &s);
        if (rc != HAMMER_OK && b->wrong++ < 3)
            printf("FAIL storm thread: status %d: %s\n", rc, hammer_last_error());
        if (++b->calls == 100) atomic_store(&b->warm, 1);
    }
    return NULL;
}

/* Forks while STORM_THREADS threads are inside calls; every child makes its calls within 10 s of an alarm. */
static void storm(hammer_t *h, const char *base)
{
    struct busy bs[STORM_THREADS];
    pthread_t ts[STORM_THREADS];
    int started = 0;
    for (int i = 0; i < STORM_THREADS; i++) {
        memset(&bs[i], 0, sizeof bs[i]);
        bs[i].h = h;
        bs[i].stats_only = i == 0;
        snprintf(bs[i].id, sizeof bs[i].id, "%s:storm:%d", base, i);
        if (pthread_create(&ts[i], NULL, storm_thread, &bs[i]) != 0) break;
        started++;
    }
    CHECK(started == STORM_THREADS, "%d storm threads started", started);
    /* Forks once the threads are past their first calls: the first call of each kind in a process instantiates
     * Swift type metadata under the Swift runtime's own locks, which a fork at that moment would leave held in the
     * child (as any runtime's: POSIX promises a multithreaded program's child only async-signal-safe functions).
     * In a steady state no call takes them (seen with gdb: none in 8 s of this storm's calls). */
    for (int i = 0, waited = 0; i < started && waited < 10000; ) {
        if (atomic_load(&bs[i].warm)) { i++; continue; }
        nanosleep(&(struct timespec){ .tv_sec = 0, .tv_nsec = 1000000 }, NULL);
        waited++;
    }
    int ok = 0, killed = 0, failed = 0;
    fflush(stdout);
    for (int i = 0; i < STORM_FORKS; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            alarm(10);
            char own[220];
            snprintf(own, sizeof own, "%s:storm-child:%ld", base, (long)getpid());
            int64_t c = 0;
            hammer_bucket bk;
            hammer_stats_t s = HAMMER_STATS_INIT;
            int bad = hammer_count_hit(h, own, 1, 1000, 1, &c) != HAMMER_OK || c != 1;
            bad |= hammer_get_bucket(h, own, 1, &bk) != HAMMER_OK || bk.count != 1;
            bad |= hammer_stats(h, &s) != HAMMER_OK;
            bad |= hammer_delete_buckets(h, own, NULL) != HAMMER_OK;
            _exit(bad);
        }
        if (pid < 0) { failed++; continue; }
        int status = 0;
        waitpid(pid, &status, 0);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) ok++;
        else if (WIFSIGNALED(status)) { killed++; break; }   /* one is enough, and each costs the alarm's wait */
        else failed++;
    }
    for (int i = 0; i < STORM_THREADS; i++) atomic_store(&bs[i].stop, 1);
    int64_t calls = 0, wrong = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(ts[i], NULL);
        calls += bs[i].calls;
        wrong += bs[i].wrong;
        hammer_delete_buckets(h, bs[i].id, NULL);
    }
    CHECK(ok == STORM_FORKS, "storm: %d of %d children forked amid %" PRId64 " calls made their own calls "
          "(%d killed by the alarm or a signal, %d failed)", ok, STORM_FORKS, calls, killed, failed);
    CHECK(wrong == 0, "storm: the parent's threads got no failure (%" PRId64 ")", wrong);
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

    storm(h, base);

    hammer_stats_t s = HAMMER_STATS_INIT;
    CHECK_STATUS(hammer_stats(h, &s), HAMMER_OK);
    /* pool_size is per node on a cluster. */
    int64_t nodes = s.cluster_nodes > 0 ? (int64_t)s.cluster_nodes : 1;
    CHECK(s.connections <= 4 * nodes, "the parent's pools are still within pool_size (%" PRId64 " open, %" PRId64
          " node(s))", s.connections, nodes);
    hammer_close(h);
    return test_summary("test_fork");
}
