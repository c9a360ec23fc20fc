/*
 * test_batch_memory.c — a large batch does not leave its buffers behind (issue 17): a connection's command and
 * argument buffers kept their peak size for the handle's life (132 MB after one batch of 1024 requests with 60 KB
 * ids; 20 KB ids here). Now a batch has at most 8 chunks in flight and buffers past 1 MiB are given back: the process's resident
 * memory after the batch (malloc_trim'd) is within a few MB of before.
 *
 *   build/tests/test_batch_memory REDIS_URL
 */
#define _GNU_SOURCE
#include "testutil.h"

#include <malloc.h>
#include <stdlib.h>

static double rss_mb(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL) return -1;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = -1;
    fclose(f);
    return (double)resident * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
}

int main(int argc, char **argv)
{
    const char *url = test_url(argc, argv);
    if (url == NULL) return 2;
    char slow[1024];   /* a chunk of 128 requests is 2.5 MB: room for a loaded machine */
    snprintf(slow, sizeof slow, "%s%stimeout_ms=5000", url, strchr(url, '?') ? "&" : "?");
    hammer_t *h = NULL;
    if (!CHECK(hammer_open(slow, &h) == HAMMER_OK, "open")) return test_summary("test_batch_memory");
    enum { N = 1024, L = 20000 };
    char *ids = malloc((size_t)N * (L + 1));
    hammer_count_request *reqs = calloc(N, sizeof *reqs);
    int64_t *counts = calloc(N, sizeof *counts);
    if (!CHECK(ids && reqs && counts, "buffers for the requests")) return test_summary("test_batch_memory");
    char tag[32];
    snprintf(tag, sizeof tag, "mem:%d:%ld:", (int)getpid(), (long)time(NULL));
    for (int i = 0; i < N; i++) {
        char *p = ids + (size_t)i * (L + 1);
        memset(p, 'x', L);
        p[L] = '\0';
        int n = snprintf(p, 40, "%s%d", tag, i);
        p[n] = 'x';
        reqs[i].id = p;
        reqs[i].bucket = 1;
        reqs[i].now_ms = 1000;
        reqs[i].increment = 1;
    }
    int64_t c = 0;
    CHECK_STATUS(hammer_count_hit(h, "mem:warm", 1, 1000, 1, &c), HAMMER_OK);
    malloc_trim(0);
    double before = rss_mb();
    CHECK_STATUS(hammer_count_hits(h, reqs, N, counts, NULL), HAMMER_OK);
    int ones = 0;
    for (int i = 0; i < N; i++) ones += counts[i] == 1;
    CHECK(ones == N, "every request counted once (%d of %d)", ones, N);
    malloc_trim(0);
    double after = rss_mb();
    CHECK(before > 0 && after - before < 8, "resident memory after the batch: %.1f MB -> %.1f MB (+%.1f, < 8)",
          before, after, after - before);
    for (int i = 0; i < N; i++) {
        int64_t deleted = 0;
        hammer_delete_buckets(h, reqs[i].id, &deleted);
    }
    hammer_close(h);
    free(ids);
    free(reqs);
    free(counts);
    return test_summary("test_batch_memory");
}
