/* test_async.c — the non-blocking calls (hammer_submit / hammer_fd / hammer_drain) against a real Redis: thousands
 * of ops in flight, each tag completed exactly once with the result Redis's state says; every op kind against its
 * blocking call; bad ops completing as HAMMER_ERR_INVALID; close with ops pending; shutdown then drain (each op
 * completed once, Redis holding exactly those that completed OK); fork. Usage: test_async URL */
#include "testutil.h"

#include <poll.h>
#include <stdlib.h>
#include <sys/wait.h>

static char prefix[64];

/* Waits (poll on hammer_fd) and drains until `want` completions came; returns how many came. */
static size_t collect(hammer_t *h, hammer_completion *out, size_t want)
{
    size_t got = 0;
    int fd = hammer_fd(h);
    while (got < want) {
        struct pollfd p = { fd, POLLIN, 0 };
        int r = poll(&p, 1, 10000);
        if (r <= 0) break;   /* 10 s without a completion: the caller's checks fail */
        got += hammer_drain(h, out + got, want - got);
    }
    return got;
}

static void test_many_in_flight(hammer_t *h)
{
    enum { IDS = 40, PER = 125, N = IDS * PER };   /* 5000 ops */
    static hammer_completion done[N];
    static int seen[N];
    static int counts[IDS][PER + 1];
    char ids[IDS][80];
    for (int k = 0; k < IDS; k++) snprintf(ids[k], sizeof ids[k], "%smany:%d", prefix, k);
    /* Submitted in slices of varied sizes while completions are drained, so ops are in flight at every stage. */
    size_t submitted = 0, got = 0;
    int fd = hammer_fd(h);
    CHECK(fd >= 0, "hammer_fd -> %d", fd);
    while (submitted < N || got < N) {
        if (submitted < N) {
            size_t n = 1 + (submitted * 7919) % 257;
            if (n > N - submitted) n = N - submitted;
            hammer_op ops[257];
            for (size_t j = 0; j < n; j++) {
                size_t t = submitted + j;
                hammer_op o = HAMMER_OP_INIT(HAMMER_OP_COUNT_HIT, (uint64_t)t * 3 + 11, ids[t % IDS]);
                o.bucket = 7;
                o.now_ms = 1000 + (int64_t)t;
                ops[j] = o;
            }
            int rc = hammer_submit(h, ops, n);
            if (!CHECK_QUIET(rc == HAMMER_OK, "submit slice -> %d", rc)) return;
            submitted += n;
        }
        struct pollfd p = { fd, POLLIN, 0 };
        if (poll(&p, 1, submitted < N ? 0 : 10000) < 0) break;
        size_t k = hammer_drain(h, done + got, N - got);
        if (k == 0 && submitted >= N && !(p.revents & POLLIN)) break;
        got += k;
    }
    CHECK(got == N, "%d ops completed (got %zu)", N, got);
    int bad = 0, dup = 0, wrong = 0;
    for (size_t i = 0; i < got; i++) {
        uint64_t t = (done[i].tag - 11) / 3;
        if ((done[i].tag - 11) % 3 != 0 || t >= N) { wrong++; continue; }
        if (seen[t]++) dup++;
        if (done[i].status != HAMMER_OK || done[i].kind != HAMMER_OP_COUNT_HIT) { bad++; continue; }
        int64_t c = done[i].value;
        if (c < 1 || c > PER) { wrong++; continue; }
        counts[t % IDS][c]++;
    }
    CHECK(bad == 0 && dup == 0 && wrong == 0, "every tag once, OK, a count in range (bad %d dup %d wrong %d)", bad, dup, wrong);
    int missing = 0;
    for (int t = 0; t < N; t++) if (seen[t] != 1) missing++;
    CHECK(missing == 0, "no tag missing (%d)", missing);
    /* Each id's ops got the counts 1..PER, each once (every hit counted, no reply crossed), and Redis holds PER. */
    int spread = 0, stored = 0;
    for (int k = 0; k < IDS; k++) {
        for (int c = 1; c <= PER; c++) if (counts[k][c] != 1) spread++;
        hammer_bucket b;
        if (hammer_get_bucket(h, ids[k], 7, &b) != HAMMER_OK || b.count != PER) stored++;
    }
    CHECK(spread == 0, "each id's completions hold the counts 1..%d once each (%d off)", PER, spread);
    CHECK(stored == 0, "Redis holds %d hits for every id (%d differ)", PER, stored);
    CHECK(hammer_pending(h) == 0, "nothing pending once all is drained (%zu)", hammer_pending(h));
    CHECK(hammer_drain(h, done, 1) == 0, "drain with nothing waiting -> 0");
    struct pollfd p = { fd, POLLIN, 0 };
    CHECK(poll(&p, 1, 0) == 0, "the descriptor is not readable once drained");
}

static int find(const hammer_completion *c, size_t n, uint64_t tag)
{
    for (size_t i = 0; i < n; i++) if (c[i].tag == tag) return (int)i;
    return -1;
}

static int same_decision(const hammer_decision *a, const hammer_decision *b)
{
    return a->allowed == b->allowed && a->count == b->count && a->limit == b->limit && a->remaining == b->remaining &&
           a->retry_after_ms == b->retry_after_ms && a->degraded == b->degraded && a->decided_by == b->decided_by;
}

/* Each kind once, at fixed times where the call has them, against the blocking call on a twin id. */
static void test_kinds(hammer_t *h)
{
    char a[96], b[96];
    snprintf(a, sizeof a, "%skinds:a", prefix);
    snprintf(b, sizeof b, "%skinds:b", prefix);
    hammer_limit lims[2] = { HAMMER_LIMIT_INIT(HAMMER_TOKEN_BUCKET, 5, 60000), HAMMER_LIMIT_INIT(HAMMER_SLIDING_WINDOW, 3, 1000) };
    const int64_t T = 1700000000000;
    hammer_op ops[16];
    int n = 0;
    hammer_op o;
    o = (hammer_op)HAMMER_OP_INIT(HAMMER_OP_COUNT_HIT, 1, a); o.bucket = 3; o.now_ms = 55; o.amount = 4; ops[n++] = o;
    o = (hammer_op)HAMMER_OP_INIT(HAMMER_OP_CHECK_RATE_AT, 2, a); o.scale_ms = 1000; o.limit = 2; o.amount = 3; o.now_ms = T; ops[n++] = o;
    o = (hammer_op)HAMMER_OP_INIT(HAMMER_OP_HIT_AT, 3, a); o.lims = &lims[0]; o.amount = 2; o.now_ms = T; ops[n++] = o;
    o = (hammer_op)HAMMER_OP_INIT(HAMMER_OP_PEEK_AT, 4, a); o.lims = &lims[1]; o.now_ms = T; ops[n++] = o;
    o = (hammer_op)HAMMER_OP_INIT(HAMMER_OP_HIT_ALL_AT, 5, a); o.lims = lims; o.n_lims = 2; o.amount = 1; o.now_ms = T + 1; ops[n++] = o;
    o = (hammer_op)HAMMER_OP_INIT(HAMMER_OP_PEEK_ALL_AT, 6, a); o.lims = lims; o.n_lims = 2; o.now_ms = T + 2; ops[n++] = o;
    CHECK_STATUS(hammer_submit(h, ops, (size_t)n), HAMMER_OK);
    hammer_completion c[16];
    CHECK(collect(h, c, (size_t)n) == (size_t)n, "the %d ops of every kind completed", n);
    int64_t cnt = 0;
    hammer_decision d;
    CHECK_STATUS(hammer_count_hit(h, b, 3, 55, 4, &cnt), HAMMER_OK);
    int i = find(c, (size_t)n, 1);
    CHECK(i >= 0 && c[i].status == HAMMER_OK && c[i].value == cnt && c[i].kind == HAMMER_OP_COUNT_HIT, "count_hit: %lld",
          i >= 0 ? (long long)c[i].value : -1LL);
    CHECK_STATUS(hammer_check_rate_at(h, b, 1000, 2, 3, T, &d), HAMMER_OK);
    i = find(c, (size_t)n, 2);
    CHECK(i >= 0 && c[i].status == HAMMER_OK && same_decision(&c[i].decision, &d) && c[i].decision.allowed == 0,
          "check_rate_at: as the blocking call (denied, count 3)");
    CHECK_STATUS(hammer_hit_at(h, b, &lims[0], 2, T, &d), HAMMER_OK);
    i = find(c, (size_t)n, 3);
    CHECK(i >= 0 && same_decision(&c[i].decision, &d) && d.allowed == 1 && d.remaining == 3, "hit_at: as the blocking call");
    CHECK_STATUS(hammer_peek_at(h, b, &lims[1], T, &d), HAMMER_OK);
    i = find(c, (size_t)n, 4);
    CHECK(i >= 0 && same_decision(&c[i].decision, &d), "peek_at: as the blocking call");
    CHECK_STATUS(hammer_hit_all_at(h, b, lims, 2, 1, T + 1, &d), HAMMER_OK);
    i = find(c, (size_t)n, 5);
    CHECK(i >= 0 && same_decision(&c[i].decision, &d), "hit_all_at: as the blocking call (decided_by %d)", d.decided_by);
    CHECK_STATUS(hammer_peek_all_at(h, b, lims, 2, T + 2, &d), HAMMER_OK);
    i = find(c, (size_t)n, 6);
    CHECK(i >= 0 && same_decision(&c[i].decision, &d), "peek_all_at: as the blocking call (allowed %d/%d count %lld/%lld "
          "remaining %lld/%lld retry %lld/%lld by %d/%d)", c[i].decision.allowed, d.allowed, (long long)c[i].decision.count,
          (long long)d.count, (long long)c[i].decision.remaining, (long long)d.remaining,
          (long long)c[i].decision.retry_after_ms, (long long)d.retry_after_ms, c[i].decision.decided_by, d.decided_by);

    /* Then the reads and the reset, after the writes above are in. */
    n = 0;
    o = (hammer_op)HAMMER_OP_INIT(HAMMER_OP_GET_BUCKET, 7, a); o.bucket = 3; ops[n++] = o;
    o = (hammer_op)HAMMER_OP_INIT(HAMMER_OP_GET_BUCKET, 8, a); o.bucket = 4; ops[n++] = o;
    o = (hammer_op)HAMMER_OP_INIT(HAMMER_OP_INSPECT_BUCKET, 9, a); o.scale_ms = 60000; o.limit = 10; ops[n++] = o;
    o = (hammer_op)HAMMER_OP_INIT(HAMMER_OP_CHECK_RATE, 10, a); o.scale_ms = 60000; o.limit = 10; o.amount = 2; ops[n++] = o;
    o = (hammer_op)HAMMER_OP_INIT(HAMMER_OP_HIT, 11, a); o.lims = &lims[0]; o.amount = 1; ops[n++] = o;
    o = (hammer_op)HAMMER_OP_INIT(HAMMER_OP_PEEK, 12, a); o.lims = &lims[0]; ops[n++] = o;
    o = (hammer_op)HAMMER_OP_INIT(HAMMER_OP_HIT_ALL, 13, a); o.lims = lims; o.n_lims = 2; ops[n++] = o;
    o = (hammer_op)HAMMER_OP_INIT(HAMMER_OP_PEEK_ALL, 14, a); o.lims = lims; o.n_lims = 2; ops[n++] = o;
    CHECK_STATUS(hammer_submit(h, ops, (size_t)n), HAMMER_OK);
    CHECK(collect(h, c, (size_t)n) == (size_t)n, "the second %d ops completed", n);
    hammer_bucket bk;
    CHECK_STATUS(hammer_get_bucket(h, b, 3, &bk), HAMMER_OK);
    i = find(c, (size_t)n, 7);
    CHECK(i >= 0 && c[i].status == HAMMER_OK && c[i].bucket.found == 1 && c[i].bucket.count == bk.count &&
          c[i].bucket.created == 55 && c[i].bucket.bucket == 3, "get_bucket: found, count %lld", (long long)bk.count);
    i = find(c, (size_t)n, 8);
    CHECK(i >= 0 && c[i].status == HAMMER_OK && c[i].bucket.found == 0 && c[i].bucket.bucket == 4, "get_bucket: not found");
    i = find(c, (size_t)n, 9);
    CHECK(i >= 0 && c[i].status == HAMMER_OK && c[i].inspection.remaining == 10 - c[i].inspection.count &&
          c[i].inspection.ms_to_next_bucket > 0, "inspect_bucket");
    i = find(c, (size_t)n, 10);
    CHECK(i >= 0 && c[i].status == HAMMER_OK && c[i].decision.allowed == 1 && c[i].decision.limit == 10, "check_rate");
    for (uint64_t t = 11; t <= 14; t++) {
        i = find(c, (size_t)n, t);
        CHECK(i >= 0 && c[i].status == HAMMER_OK && c[i].decision.limit > 0 && c[i].message[0] == 0,
              "op %d (kind %d) decided", (int)t, i >= 0 ? c[i].kind : -1);
    }
    o = (hammer_op)HAMMER_OP_INIT(HAMMER_OP_DELETE_BUCKETS, 15, a);
    CHECK_STATUS(hammer_submit(h, &o, 1), HAMMER_OK);
    CHECK(collect(h, c, 1) == 1 && c[0].tag == 15 && c[0].status == HAMMER_OK && c[0].value > 0,
          "delete_buckets deleted %lld keys", (long long)c[0].value);
    CHECK_STATUS(hammer_get_bucket(h, a, 3, &bk), HAMMER_OK);
    CHECK(bk.found == 0, "the bucket is gone after the async reset");
}

static void test_invalid(hammer_t *h)
{
    hammer_limit bad = HAMMER_LIMIT_INIT(HAMMER_GCRA, 0, 1000);
    hammer_op ops[6];
    ops[0] = (hammer_op)HAMMER_OP_INIT(99, 100, "x");
    ops[1] = (hammer_op)HAMMER_OP_INIT(HAMMER_OP_HIT, 101, NULL);
    ops[2] = (hammer_op)HAMMER_OP_INIT(HAMMER_OP_HIT, 102, "x");             /* lims NULL */
    ops[3] = (hammer_op)HAMMER_OP_INIT(HAMMER_OP_HIT, 103, "x"); ops[3].lims = &bad;
    ops[4] = (hammer_op)HAMMER_OP_INIT(HAMMER_OP_HIT_ALL, 104, "x"); ops[4].lims = &bad; ops[4].n_lims = 17;
    ops[5] = (hammer_op)HAMMER_OP_INIT(HAMMER_OP_COUNT_HIT, 105, "x"); ops[5].reserved[2] = 1;
    CHECK_STATUS(hammer_submit(h, ops, 6), HAMMER_OK);
    hammer_completion c[6];
    CHECK(collect(h, c, 6) == 6, "6 bad ops completed");
    for (uint64_t t = 100; t <= 105; t++) {
        int i = find(c, 6, t);
        CHECK(i >= 0 && c[i].status == HAMMER_ERR_INVALID && c[i].message[0] != 0 && strlen(c[i].message) < HAMMER_MESSAGE_BYTES,
              "bad op %d: INVALID (%s)", (int)t, i >= 0 ? c[i].message : "missing");
    }
    CHECK_STATUS(hammer_submit(NULL, ops, 1), HAMMER_ERR_INVALID);
    CHECK_STATUS(hammer_submit(h, NULL, 1), HAMMER_ERR_INVALID);
    CHECK_STATUS(hammer_submit(h, NULL, 0), HAMMER_OK);
    CHECK(hammer_fd(NULL) == -1, "hammer_fd(NULL) -> -1");
    CHECK(hammer_drain(NULL, c, 1) == 0 && hammer_drain(h, NULL, 1) == 0, "drain with NULLs -> 0");
}

static void test_close_pending(const char *url)
{
    hammer_t *h = NULL;
    if (hammer_open(url, &h) != HAMMER_OK) { CHECK(0, "open for close test"); return; }
    char id[96];
    snprintf(id, sizeof id, "%sclose", prefix);
    hammer_op ops[500];
    for (int i = 0; i < 500; i++) { ops[i] = (hammer_op)HAMMER_OP_INIT(HAMMER_OP_COUNT_HIT, (uint64_t)i, id); ops[i].now_ms = 1; }
    int rc = HAMMER_OK;
    for (int k = 0; k < 8 && rc == HAMMER_OK; k++) rc = hammer_submit(h, ops, 500);
    CHECK(rc == HAMMER_OK && hammer_pending(h) > 0, "4000 ops pending before close (%zu)", hammer_pending(h));
    hammer_close(h);   /* must neither hang nor crash; what was sent ran, what was queued was dropped */
    hammer_t *h2 = NULL;
    CHECK_STATUS(hammer_open(url, &h2), HAMMER_OK);
    hammer_bucket b;
    CHECK_STATUS(hammer_get_bucket(h2, id, 0, &b), HAMMER_OK);
    CHECK(b.count >= 0 && b.count <= 4000, "close with ops pending: %lld of 4000 ran, none twice", (long long)b.count);
    hammer_close(h2);
}

static void test_shutdown(const char *url)
{
    hammer_t *h = NULL;
    if (hammer_open(url, &h) != HAMMER_OK) { CHECK(0, "open for shutdown test"); return; }
    enum { N = 4000 };
    static hammer_completion done[N + 1];
    static int seen[N];
    char id[96];
    snprintf(id, sizeof id, "%sshutdown", prefix);
    hammer_op ops[500];
    int rc = HAMMER_OK;
    for (int k = 0; k < N / 500 && rc == HAMMER_OK; k++) {
        for (int i = 0; i < 500; i++) {
            ops[i] = (hammer_op)HAMMER_OP_INIT(HAMMER_OP_COUNT_HIT, (uint64_t)(k * 500 + i), id);
            ops[i].now_ms = 1;
        }
        rc = hammer_submit(h, ops, 500);
    }
    CHECK_STATUS(rc, HAMMER_OK);
    CHECK_STATUS(hammer_shutdown(h), HAMMER_OK);
    CHECK_STATUS(hammer_shutdown(h), HAMMER_OK);   /* idempotent */
    CHECK_STATUS(hammer_submit(h, ops, 1), HAMMER_ERR_INVALID);
    size_t got = collect(h, done, N);
    CHECK(hammer_drain(h, done + got, 1) == 0 && hammer_pending(h) == 0,
          "after shutdown, every op drained and nothing pending (%zu)", hammer_pending(h));
    long long ok = 0, unsent = 0, other = 0, twice = 0;
    for (size_t i = 0; i < got; i++) {
        if (done[i].tag >= N) { other++; continue; }
        if (seen[done[i].tag]++) twice++;
        if (done[i].status == HAMMER_OK) ok++;
        else if (done[i].status == HAMMER_ERR_INVALID) unsent++;
        else other++;
    }
    CHECK(got == N && twice == 0 && other == 0, "every tag completed exactly once (%zu, twice %lld, other %lld)",
          got, twice, other);
    /* What completed OK ran; what completed as unsent never reached Redis: Redis holds exactly the OKs. */
    hammer_bucket b;
    CHECK_STATUS(hammer_get_bucket(h, id, 0, &b), HAMMER_OK);
    CHECK(b.count == ok, "Redis counted the %lld ops that completed OK (%lld; %lld unsent)", ok, (long long)b.count,
          unsent);
    hammer_close(h);
    CHECK_STATUS(hammer_shutdown(NULL), HAMMER_ERR_INVALID);
    /* Before any submit (no engine yet): the engine made later starts shut down. */
    if (hammer_open(url, &h) != HAMMER_OK) { CHECK(0, "open for early shutdown"); return; }
    CHECK_STATUS(hammer_shutdown(h), HAMMER_OK);
    CHECK_STATUS(hammer_submit(h, ops, 1), HAMMER_ERR_INVALID);
    CHECK(hammer_pending(h) == 0 && hammer_fd(h) >= 0, "shut down before any submit: nothing pending, fd still given");
    hammer_close(h);
}

static void test_fork(hammer_t *h)
{
    char id[96];
    snprintf(id, sizeof id, "%sfork", prefix);
    hammer_op o = HAMMER_OP_INIT(HAMMER_OP_COUNT_HIT, 1, id);
    o.now_ms = 1;
    CHECK_STATUS(hammer_submit(h, &o, 1), HAMMER_OK);   /* the parent's engine runs */
    hammer_completion c[64];
    CHECK(collect(h, c, 1) == 1 && c[0].value == 1, "parent: first op");
    int parent_fd = hammer_fd(h);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        /* The child: a fresh engine, its own descriptor; its ops complete in the child only. */
        int ok = hammer_pending(h) == 0;
        int fd = hammer_fd(h);
        ok = ok && fd >= 0 && fd != parent_fd;
        hammer_op ops[50];
        for (int i = 0; i < 50; i++) { ops[i] = o; ops[i].tag = 1000 + (uint64_t)i; }
        ok = ok && hammer_submit(h, ops, 50) == HAMMER_OK;
        size_t got = collect(h, c, 50);
        for (size_t i = 0; i < got; i++) ok = ok && c[i].status == HAMMER_OK && c[i].tag >= 1000;
        _exit(ok && got == 50 ? 0 : 1);
    }
    hammer_op ops[50];
    for (int i = 0; i < 50; i++) { ops[i] = o; ops[i].tag = 2000 + (uint64_t)i; }
    CHECK_STATUS(hammer_submit(h, ops, 50), HAMMER_OK);
    size_t got = collect(h, c, 50);
    int mine = 0;
    for (size_t i = 0; i < got; i++) mine += c[i].status == HAMMER_OK && c[i].tag >= 2000 && c[i].tag < 2050;
    CHECK(got == 50 && mine == 50, "parent: its 50 ops completed in the parent (%zu, %d)", got, mine);
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: a fresh engine, 50 ops completed there");
    hammer_bucket b;
    CHECK_STATUS(hammer_get_bucket(h, id, 0, &b), HAMMER_OK);
    CHECK(b.count == 101, "Redis counted 1 + 50 + 50 hits (%lld)", (long long)b.count);
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : getenv("HAMMER_URL") ? getenv("HAMMER_URL") : "redis://127.0.0.1:6379/?expiry_ms=60000";
    snprintf(prefix, sizeof prefix, "async:%d:", (int)getpid());
    hammer_t *h = NULL;
    CHECK_STATUS(hammer_open(url, &h), HAMMER_OK);
    if (!h) return test_summary("test_async");
    CHECK(hammer_pending(h) == 0 && hammer_drain(h, NULL, 0) == 0, "a new handle: nothing pending");
    test_many_in_flight(h);
    test_kinds(h);
    test_invalid(h);
    test_fork(h);
    test_close_pending(url);
    test_shutdown(url);
    hammer_close(h);
    return test_summary("test_async");
}
