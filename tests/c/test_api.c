/*
 * test_api.c — every call of include/hammer.h against a real redis-server: happy paths, out-parameters cleared on
 * failure, bad arguments, static text, version, pinned values and struct layout.
 *
 *   build/tests/test_api REDIS_URL
 */
#include "testutil.h"

#include <stddef.h>
#include <stdlib.h>

/* hammer_last_error() is not empty and mentions `word` (case-insensitive): the message names what was wrong. */
static void check_last_error_mentions(const char *call, const char *word)
{
    const char *e = hammer_last_error();
    CHECK(e != NULL && e[0] != '\0', "%s: hammer_last_error() is not empty", call);
    CHECK(e != NULL && test_contains_ci(e, word), "%s: hammer_last_error() \"%s\" mentions \"%s\"", call,
          e ? e : "(null)", word);
}

static void test_constants(void)
{
    CHECK_EQ_I64(HAMMER_OK, 0);
    CHECK_EQ_I64(HAMMER_ERR_INVALID, 1);
    CHECK_EQ_I64(HAMMER_ERR_CONNECT, 2);
    CHECK_EQ_I64(HAMMER_ERR_TIMEOUT, 3);
    CHECK_EQ_I64(HAMMER_ERR_REDIS, 4);
    CHECK_EQ_I64(HAMMER_ERR_PROTOCOL, 5);
    CHECK_EQ_I64(HAMMER_ERR_NOMEM, 6);
    CHECK_EQ_I64(HAMMER_ERR_INTERNAL, 7);
}

static void test_version(void)
{
    const char *v = hammer_version();
    CHECK(v != NULL, "hammer_version() is not NULL");
    if (v == NULL) return;
    CHECK(strcmp(v, HAMMER_VERSION_STRING) == 0, "hammer_version() \"%s\" == HAMMER_VERSION_STRING \"%s\"", v,
          HAMMER_VERSION_STRING);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", HAMMER_VERSION_MAJOR, HAMMER_VERSION_MINOR, HAMMER_VERSION_PATCH);
    CHECK(strcmp(v, want) == 0, "hammer_version() \"%s\" == MAJOR.MINOR.PATCH \"%s\"", v, want);
}

static void test_strerror(void)
{
    const char *texts[8];
    for (int s = HAMMER_OK; s <= HAMMER_ERR_INTERNAL; s++) {
        texts[s] = hammer_strerror(s);
        CHECK(texts[s] != NULL && texts[s][0] != '\0', "hammer_strerror(%d) = \"%s\"", s,
              texts[s] ? texts[s] : "(null)");
    }
    int distinct = 1;
    for (int a = 0; a < 8; a++)
        for (int b = a + 1; b < 8; b++)
            if (texts[a] && texts[b] && strcmp(texts[a], texts[b]) == 0) distinct = 0;
    CHECK(distinct, "hammer_strerror() gives each status its own text");

    const int unknown[] = {99, -1, 8, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *t = hammer_strerror(unknown[i]);
        CHECK(t != NULL && t[0] != '\0', "hammer_strerror(%d) = \"%s\" (unknown status)", unknown[i],
              t ? t : "(null)");
        CHECK(t != NULL && texts[0] != NULL && strcmp(t, texts[0]) != 0,
              "hammer_strerror(%d) is not the text of HAMMER_OK", unknown[i]);
    }
}

static void test_open_errors(const char *url)
{
    hammer_t *h = (hammer_t *)&h; /* garbage that must be cleared */
    CHECK_STATUS(hammer_open(NULL, &h), HAMMER_ERR_INVALID);
    CHECK(h == NULL, "hammer_open(NULL config) sets *out = NULL");
    check_last_error_mentions("hammer_open(NULL config)", "config");

    CHECK_STATUS(hammer_open(url, NULL), HAMMER_ERR_INVALID);
    check_last_error_mentions("hammer_open(url, NULL)", "out");

    h = (hammer_t *)&h;
    CHECK_STATUS(hammer_open("redis://127.0.0.1:6379/?expiry_ms=0", &h), HAMMER_ERR_INVALID);
    CHECK(h == NULL, "hammer_open(expiry_ms=0) sets *out = NULL");
    check_last_error_mentions("hammer_open(expiry_ms=0)", "expiry_ms");

    h = (hammer_t *)&h;
    CHECK_STATUS(hammer_open("http://127.0.0.1:6379/?expiry_ms=1000", &h), HAMMER_ERR_INVALID);
    CHECK(h == NULL, "hammer_open(http scheme) sets *out = NULL");

    /* Port 1 on loopback: nothing listens there, so the connection is refused at once. */
    h = (hammer_t *)&h;
    CHECK_STATUS(hammer_open("redis://127.0.0.1:1/?expiry_ms=1000&connect_timeout_ms=500", &h), HAMMER_ERR_CONNECT);
    CHECK(h == NULL, "hammer_open(unreachable) sets *out = NULL");
    CHECK(hammer_last_error()[0] != '\0', "hammer_open(unreachable): hammer_last_error() = \"%s\"",
          hammer_last_error());
}

static void test_happy_path(hammer_t *h, const char *id)
{
    const int64_t bucket = 123456;
    int64_t count = -1;

    CHECK_STATUS(hammer_count_hit(h, id, bucket, 1000, 1, &count), HAMMER_OK);
    CHECK_EQ_I64(count, 1);
    CHECK_STATUS(hammer_count_hit(h, id, bucket, 1500, 5, &count), HAMMER_OK);
    CHECK_EQ_I64(count, 6);
    CHECK_STATUS(hammer_count_hit(h, id, bucket, 1700, 0, &count), HAMMER_OK);
    CHECK_EQ_I64(count, 6);
    CHECK_STATUS(hammer_count_hit(h, id, bucket, 2000, 2, NULL), HAMMER_OK); /* count_out may be NULL */

    hammer_bucket b;
    memset(&b, 0xAB, sizeof b);
    CHECK_STATUS(hammer_get_bucket(h, id, bucket, &b), HAMMER_OK);
    CHECK_EQ_I64(b.found, 1);
    CHECK_EQ_I64(b.bucket, bucket);
    CHECK_EQ_I64(b.count, 8);
    CHECK_EQ_I64(b.created, 1000); /* the first hit's time, kept by later hits */
    CHECK_EQ_I64(b.updated, 2000); /* the latest hit's time */

    /* get_bucket changes nothing. */
    CHECK_STATUS(hammer_get_bucket(h, id, bucket, &b), HAMMER_OK);
    CHECK_EQ_I64(b.count, 8);

    /* A bucket that does not exist: found 0 and zeros. */
    memset(&b, 0xAB, sizeof b);
    CHECK_STATUS(hammer_get_bucket(h, id, bucket + 1, &b), HAMMER_OK);
    CHECK_EQ_I64(b.found, 0);
    CHECK_EQ_I64(b.bucket, bucket + 1);
    CHECK_EQ_I64(b.count, 0);
    CHECK_EQ_I64(b.created, 0);
    CHECK_EQ_I64(b.updated, 0);

    /* Large numbers travel exactly. */
    const int64_t big = INT64_C(9007199254740993); /* 2^53 + 1: not representable as a double */
    CHECK_STATUS(hammer_count_hit(h, id, -7, big, big, &count), HAMMER_OK);
    CHECK_EQ_I64(count, big);
    CHECK_STATUS(hammer_get_bucket(h, id, -7, &b), HAMMER_OK);
    CHECK_EQ_I64(b.count, big);
    CHECK_EQ_I64(b.created, big);
    CHECK_EQ_I64(b.bucket, -7);

    /* Two more buckets, then delete: every bucket of the id goes, and only those. */
    char other[256];
    snprintf(other, sizeof other, "%s:x", id);
    CHECK_STATUS(hammer_count_hit(h, other, bucket, 1000, 1, NULL), HAMMER_OK);
    CHECK_STATUS(hammer_count_hit(h, id, bucket + 2, 3000, 1, NULL), HAMMER_OK);

    int64_t deleted = -1;
    CHECK_STATUS(hammer_delete_buckets(h, id, &deleted), HAMMER_OK);
    CHECK_EQ_I64(deleted, 3); /* buckets `bucket`, -7 and `bucket + 2` */
    CHECK_STATUS(hammer_get_bucket(h, id, bucket, &b), HAMMER_OK);
    CHECK_EQ_I64(b.found, 0);
    CHECK_STATUS(hammer_get_bucket(h, other, bucket, &b), HAMMER_OK);
    CHECK(b.found == 1 && b.count == 1, "delete_buckets(id) leaves the buckets of id + \":x\"");

    deleted = -1;
    CHECK_STATUS(hammer_delete_buckets(h, id, &deleted), HAMMER_OK);
    CHECK_EQ_I64(deleted, 0); /* nothing left */
    CHECK_STATUS(hammer_delete_buckets(h, other, NULL), HAMMER_OK); /* deleted_out may be NULL */
    CHECK_STATUS(hammer_get_bucket(h, other, bucket, &b), HAMMER_OK);
    CHECK_EQ_I64(b.found, 0);

    /* The empty id is an id like any other. */
    CHECK_STATUS(hammer_delete_buckets(h, "", NULL), HAMMER_OK);
    CHECK_STATUS(hammer_count_hit(h, "", bucket, 1000, 4, &count), HAMMER_OK);
    CHECK_EQ_I64(count, 4);
    CHECK_STATUS(hammer_delete_buckets(h, "", &deleted), HAMMER_OK);
    CHECK_EQ_I64(deleted, 1);
}

static void test_bad_arguments(hammer_t *h, const char *id)
{
    int64_t count = 12345;
    CHECK_STATUS(hammer_count_hit(NULL, id, 1, 1000, 1, &count), HAMMER_ERR_INVALID);
    CHECK_EQ_I64(count, 0);
    check_last_error_mentions("hammer_count_hit(NULL handle)", "handle");

    count = 12345;
    CHECK_STATUS(hammer_count_hit(h, NULL, 1, 1000, 1, &count), HAMMER_ERR_INVALID);
    CHECK_EQ_I64(count, 0);
    check_last_error_mentions("hammer_count_hit(NULL id)", "id");

    count = 12345;
    CHECK_STATUS(hammer_count_hit(h, id, 1, 1000, -1, &count), HAMMER_ERR_INVALID);
    CHECK_EQ_I64(count, 0);
    check_last_error_mentions("hammer_count_hit(increment -1)", "increment");
    CHECK_STATUS(hammer_count_hit(h, id, 1, 1000, INT64_MIN, &count), HAMMER_ERR_INVALID);

    hammer_bucket b;
    memset(&b, 0xAB, sizeof b);
    CHECK_STATUS(hammer_get_bucket(NULL, id, 5, &b), HAMMER_ERR_INVALID);
    CHECK(b.found == 0 && b.count == 0 && b.created == 0 && b.updated == 0,
          "hammer_get_bucket(NULL handle) clears *out");
    check_last_error_mentions("hammer_get_bucket(NULL handle)", "handle");

    memset(&b, 0xAB, sizeof b);
    CHECK_STATUS(hammer_get_bucket(h, NULL, 5, &b), HAMMER_ERR_INVALID);
    CHECK(b.found == 0 && b.count == 0 && b.created == 0 && b.updated == 0,
          "hammer_get_bucket(NULL id) clears *out");
    check_last_error_mentions("hammer_get_bucket(NULL id)", "id");

    CHECK_STATUS(hammer_get_bucket(h, id, 5, NULL), HAMMER_ERR_INVALID);
    check_last_error_mentions("hammer_get_bucket(NULL out)", "out");

    int64_t deleted = 12345;
    CHECK_STATUS(hammer_delete_buckets(NULL, id, &deleted), HAMMER_ERR_INVALID);
    CHECK_EQ_I64(deleted, 0);
    check_last_error_mentions("hammer_delete_buckets(NULL handle)", "handle");

    deleted = 12345;
    CHECK_STATUS(hammer_delete_buckets(h, NULL, &deleted), HAMMER_ERR_INVALID);
    CHECK_EQ_I64(deleted, 0);
    check_last_error_mentions("hammer_delete_buckets(NULL id)", "id");

    /* None of the refused calls wrote anything. */
    CHECK_STATUS(hammer_get_bucket(h, id, 1, &b), HAMMER_OK);
    CHECK_EQ_I64(b.found, 0);

    /* A count that would pass INT64_MAX is refused, and the bucket keeps its count. */
    CHECK_STATUS(hammer_count_hit(h, id, 2, 1000, INT64_MAX, &count), HAMMER_OK);
    CHECK_EQ_I64(count, INT64_MAX);
    count = 12345;
    CHECK_STATUS(hammer_count_hit(h, id, 2, 1001, 1, &count), HAMMER_ERR_INVALID);
    CHECK_EQ_I64(count, 0);
    CHECK(hammer_last_error()[0] != '\0', "overflow: hammer_last_error() = \"%s\"", hammer_last_error());
    CHECK_STATUS(hammer_get_bucket(h, id, 2, &b), HAMMER_OK);
    CHECK_EQ_I64(b.count, INT64_MAX);
    CHECK_STATUS(hammer_delete_buckets(h, id, NULL), HAMMER_OK);

    hammer_close(NULL); /* a no-op; reaching the next line is the check */
    CHECK(1, "hammer_close(NULL) is a no-op");
}

/* expiry_ms is needed by count_hit alone: a URL without it opens, count_hit and count_hits are HAMMER_ERR_INVALID
 * naming it (nothing sent), and the other calls work. */
static void test_without_expiry(const char *url, const char *id)
{
    char bare[1024];
    const char *e = strstr(url, "expiry_ms=");
    if (!CHECK(e != NULL && strlen(url) < sizeof bare, "the test URL has expiry_ms")) return;
    const char *rest = e + strcspn(e, "&");
    if (*rest == '&') rest++;
    snprintf(bare, sizeof bare, "%.*s%s", (int)(e - url), url, rest);
    hammer_t *h = NULL;
    CHECK_STATUS(hammer_open(bare, &h), HAMMER_OK);
    if (h == NULL) return;
    int64_t n = -1;
    CHECK_STATUS(hammer_count_hit(h, id, 1, 1000, 1, &n), HAMMER_ERR_INVALID);
    CHECK(n == 0, "count_hit without expiry_ms clears *count_out");
    check_last_error_mentions("hammer_count_hit without expiry_ms", "expiry_ms");
    hammer_count_request reqs[2] = {HAMMER_COUNT_REQUEST_INIT, HAMMER_COUNT_REQUEST_INIT};
    reqs[0].id = reqs[1].id = id;
    int64_t counts[2];
    int st[2];
    CHECK_STATUS(hammer_count_hits(h, reqs, 2, counts, st), HAMMER_ERR_INVALID);
    CHECK(st[0] == HAMMER_ERR_INVALID && st[1] == HAMMER_ERR_INVALID, "count_hits: each request refused");
    check_last_error_mentions("hammer_count_hits without expiry_ms", "expiry_ms");
    hammer_bucket b;
    CHECK_STATUS(hammer_get_bucket(h, id, 1, &b), HAMMER_OK);
    CHECK(!b.found, "nothing was counted");
    hammer_limit lim = HAMMER_LIMIT_INIT(HAMMER_GCRA, 5, 1000);
    hammer_decision d;
    CHECK_STATUS(hammer_hit(h, id, &lim, 1, &d), HAMMER_OK);
    CHECK(d.allowed, "hammer_hit works without expiry_ms");
    CHECK_STATUS(hammer_check_rate(h, id, 60000, 5, 1, &d), HAMMER_OK);
    CHECK(d.allowed && d.count == 1, "hammer_check_rate works without expiry_ms");
    CHECK_STATUS(hammer_delete_buckets(h, id, &n), HAMMER_OK);
    hammer_close(h);
}

int main(int argc, char **argv)
{
    const char *url = test_url(argc, argv);
    if (url == NULL) return 2;

    test_constants();
    test_version();
    test_strerror();
    test_open_errors(url);

    hammer_t *h = NULL;
    CHECK_STATUS(hammer_open(url, &h), HAMMER_OK);
    CHECK(h != NULL, "hammer_open(url) gives a handle");
    if (h == NULL) return test_summary("test_api");

    char id[128];
    test_unique_id(id, sizeof id, "api");
    CHECK_STATUS(hammer_delete_buckets(h, id, NULL), HAMMER_OK);
    test_happy_path(h, id);
    test_bad_arguments(h, id);
    test_without_expiry(url, id);

    hammer_close(h);
    return test_summary("test_api");
}
