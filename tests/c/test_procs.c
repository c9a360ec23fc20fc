/*
 * test_procs.c — CHILDREN processes hitting one bucket lose nothing. Each child opens its own handle (test_fork.c
 * covers children that use the parent's), hits HITS times and exits 0 only if every call succeeded; the parent then reads the exact total.
 * The parent opens and uses its own handle before forking, as a pre-forking server would, and keeps using it after.
 *
 *   build/tests/test_procs REDIS_URL
 */
#include "testutil.h"

#include <stdlib.h>
#include <sys/wait.h>

#define CHILDREN 4
#define HITS     1000

/* A child's whole life: its exit status is the number of failed calls (capped), 0 when all went well. */
static int child(const char *url, const char *id)
{
    hammer_t *h = NULL;
    int rc = hammer_open(url, &h);
    if (rc != HAMMER_OK) {
        printf("FAIL child %ld: hammer_open -> %d (%s): %s\n", (long)getpid(), rc, hammer_strerror(rc),
               hammer_last_error());
        return 100;
    }
    int failed = 0;
    for (int i = 0; i < HITS; i++) {
        int64_t count = 0;
        rc = hammer_count_hit(h, id, 7, 1000 + i, 1, &count);
        if (rc != HAMMER_OK || count < 1 || count > CHILDREN * HITS) {
            if (failed++ < 3)
                printf("FAIL child %ld: hammer_count_hit -> %d (%s), count %" PRId64 ": %s\n", (long)getpid(), rc,
                       hammer_strerror(rc), count, hammer_last_error());
        }
    }
    hammer_close(h);
    return failed > 99 ? 99 : failed;
}

int main(int argc, char **argv)
{
    const char *url = test_url(argc, argv);
    if (url == NULL) return 2;
    char id[128];
    test_unique_id(id, sizeof id, "procs");

    hammer_t *h = NULL;
    CHECK_STATUS(hammer_open(url, &h), HAMMER_OK);
    if (h == NULL) return test_summary("test_procs");
    CHECK_STATUS(hammer_delete_buckets(h, id, NULL), HAMMER_OK);

    fflush(stdout); /* nothing buffered may be printed twice */
    pid_t pids[CHILDREN];
    int forked = 0;
    for (int i = 0; i < CHILDREN; i++) {
        pid_t p = fork();
        if (p == 0) {
            int status = child(url, id);
            fflush(stdout);
            _exit(status);
        }
        if (!CHECK(p > 0, "fork child %d", i)) break;
        pids[forked++] = p;
    }
    for (int i = 0; i < forked; i++) {
        int status = 0;
        pid_t w = waitpid(pids[i], &status, 0);
        CHECK(w == pids[i] && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "child %d (pid %ld) made %d hits and exited 0 (WIFEXITED %d, exit code or signal %d)", i,
              (long)pids[i], HITS, WIFEXITED(status), WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    }

    hammer_bucket b;
    CHECK_STATUS(hammer_get_bucket(h, id, 7, &b), HAMMER_OK);
    CHECK(b.found == 1 && b.count == (int64_t)forked * HITS, "bucket count %" PRId64 " == %d children x %d hits",
          b.count, forked, HITS);
    CHECK(forked == CHILDREN, "%d children forked", forked);
    int64_t deleted = 0;
    CHECK_STATUS(hammer_delete_buckets(h, id, &deleted), HAMMER_OK);
    CHECK_EQ_I64(deleted, 1);
    hammer_close(h);
    return test_summary("test_procs");
}
