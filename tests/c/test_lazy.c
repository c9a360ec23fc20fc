/*
 * test_lazy.c — lazy_connect=true (issue 18): a service can start while Redis is down.
 *   - With nothing listening, hammer_open still succeeds (and still refuses a bad URL or TLS file); without the
 *     option it fails with HAMMER_ERR_CONNECT as before.
 *   - The calls then connect: while Redis cannot be reached, on_error=allow / deny and fallback=local answer the
 *     decisions (degraded) from the first call; on_error=error and count_hit return HAMMER_ERR_CONNECT.
 *   - Against the live server given, a lazy handle works from its first call.
 *
 *   build/tests/test_lazy REDIS_URL
 */
#include "testutil.h"

#define DOWN "redis://127.0.0.1:1/?expiry_ms=60000&connect_timeout_ms=300&lazy_connect=true"

static void test_down(void)
{
    hammer_t *h = NULL;
    int rc = hammer_open("redis://127.0.0.1:1/?expiry_ms=60000&connect_timeout_ms=300", &h);
    CHECK(rc == HAMMER_ERR_CONNECT && h == NULL, "without lazy_connect, open on a closed port -> CONNECT (%d)", rc);
    rc = hammer_open(DOWN "&bogus=1", &h);
    CHECK(rc == HAMMER_ERR_INVALID && h == NULL, "lazy_connect still refuses an unknown option (%d)", rc);
    rc = hammer_open("rediss://127.0.0.1:1/?expiry_ms=60000&lazy_connect=true&ssl_ca_certs=/nonexistent/ca.pem", &h);
    CHECK(rc == HAMMER_ERR_INVALID && h == NULL, "lazy_connect still loads the TLS files at open (%d)", rc);

    hammer_limit lim = {HAMMER_TOKEN_BUCKET, 3, 3600000, 0, {0, 0}};
    const char *policies[] = {"&on_error=allow", "&on_error=deny", "&fallback=local", ""};
    for (int p = 0; p < 4; p++) {
        char url[256];
        snprintf(url, sizeof url, "%s%s", DOWN, policies[p]);
        h = NULL;
        rc = hammer_open(url, &h);
        if (!CHECK(rc == HAMMER_OK && h != NULL, "open with Redis down, lazy_connect=true%s -> OK (%d)", policies[p], rc))
            continue;
        int allowed = 0, degraded = 0, connect_errors = 0;
        for (int i = 0; i < 5; i++) {
            hammer_decision d;
            rc = hammer_hit(h, "lazy", &lim, 1, &d);
            if (rc == HAMMER_OK) {
                allowed += d.allowed;
                degraded += d.degraded;
            } else if (rc == HAMMER_ERR_CONNECT) {
                connect_errors++;
            }
        }
        if (p == 0) CHECK(allowed == 5 && degraded == 5, "on_error=allow: 5 of 5 allowed, degraded (%d, %d)", allowed, degraded);
        if (p == 1) CHECK(allowed == 0 && degraded == 5, "on_error=deny: 5 of 5 denied, degraded (%d, %d)", allowed, degraded);
        if (p == 2) CHECK(allowed == 3 && degraded == 5, "fallback=local: the limit of 3 holds in-process (%d, %d)", allowed, degraded);
        if (p == 3) CHECK(connect_errors == 5, "on_error=error: 5 of 5 CONNECT (%d)", connect_errors);
        int64_t count = -1;
        CHECK_STATUS(hammer_count_hit(h, "lazy", 1, 1000, 1, &count), HAMMER_ERR_CONNECT);
        hammer_close(h);
    }
}

static void test_up(const char *url)
{
    char lazy[1024];
    snprintf(lazy, sizeof lazy, "%s%slazy_connect=true", url, strchr(url, '?') ? "&" : "?");
    hammer_t *h = NULL;
    int rc = hammer_open(lazy, &h);
    if (!CHECK(rc == HAMMER_OK && h != NULL, "lazy open on the live server -> OK (%d)", rc)) return;
    hammer_stats_t st = {.size = sizeof st};
    CHECK_STATUS(hammer_stats(h, &st), HAMMER_OK);
    CHECK_EQ_I64(st.connections, 0);
    char id[64];
    snprintf(id, sizeof id, "lazy:%d:%ld", (int)getpid(), (long)time(NULL));
    int64_t count = 0;
    CHECK_STATUS(hammer_count_hit(h, id, 1, 1000, 2, &count), HAMMER_OK);
    CHECK_EQ_I64(count, 2);
    int64_t deleted = 0;
    CHECK_STATUS(hammer_delete_buckets(h, id, &deleted), HAMMER_OK);
    hammer_close(h);
}

int main(int argc, char **argv)
{
    const char *url = test_url(argc, argv);
    if (url == NULL) return 2;
    test_down();
    test_up(url);
    return test_summary("test_lazy");
}
