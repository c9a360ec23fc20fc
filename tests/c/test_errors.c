/*
 * test_errors.c — hammer_last_error() belongs to the calling thread, and never shows a password.
 *   - Two threads fail differently, in lock step, ROUNDS times: after both have failed, each still reads its own text.
 *   - A thread that never failed reads "", whatever the others did.
 *   - A failed open with a password in the URL does not echo the password.
 *
 *   build/tests/test_errors REDIS_URL
 */
#include "testutil.h"

#include <pthread.h>

#define ROUNDS 200

static pthread_barrier_t barrier;

typedef struct failer {
    const char *name;
    int (*fail)(void);   /* makes one call that fails, returns its status */
    int want_status;
    const char *word;    /* the text must mention this */
    char first[512];     /* the text of the first round */
    int bad_rounds;      /* rounds where the thread read another text than its own */
} failer;

static int fail_null_handle(void)
{
    return hammer_count_hit(NULL, "id", 1, 1, 1, NULL);
}

static int fail_no_expiry(void)
{
    hammer_t *h = NULL;
    return hammer_open("redis://127.0.0.1:1/?prefix=x&expiry_ms=0", &h);
}

static void *failing_thread(void *arg)
{
    failer *f = arg;
    for (int round = 0; round < ROUNDS; round++) {
        int rc = f->fail();
        char mine[512];
        snprintf(mine, sizeof mine, "%s", hammer_last_error());
        if (round == 0) {
            snprintf(f->first, sizeof f->first, "%s", mine);
            CHECK(rc == f->want_status, "%s: status %d == %d", f->name, rc, f->want_status);
            CHECK(test_contains_ci(mine, f->word), "%s: own text \"%s\" mentions \"%s\"", f->name, mine, f->word);
        }
        pthread_barrier_wait(&barrier); /* both threads have failed */
        const char *now = hammer_last_error();
        if (strcmp(now, mine) != 0 || strcmp(mine, f->first) != 0) f->bad_rounds++;
        pthread_barrier_wait(&barrier); /* both have read before either fails again */
    }
    return NULL;
}

static void *quiet_thread(void *arg)
{
    (void)arg;
    const char *e = hammer_last_error();
    CHECK(e != NULL && e[0] == '\0', "a thread that never failed reads \"\" (read \"%s\")", e ? e : "(null)");
    return NULL;
}

static void test_two_threads(void)
{
    failer a = {.name = "thread A (NULL handle)", .fail = fail_null_handle, .want_status = HAMMER_ERR_INVALID,
                .word = "handle"};
    failer b = {.name = "thread B (expiry_ms=0)", .fail = fail_no_expiry, .want_status = HAMMER_ERR_INVALID,
                .word = "expiry_ms"};
    pthread_barrier_init(&barrier, NULL, 2);
    pthread_t ta, tb;
    int ok_a = pthread_create(&ta, NULL, failing_thread, &a) == 0;
    int ok_b = ok_a && pthread_create(&tb, NULL, failing_thread, &b) == 0;
    if (!CHECK(ok_a && ok_b, "pthread_create")) {
        return; /* a lone thread waits at the barrier; exit() ends it */
    }
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_barrier_destroy(&barrier);
    CHECK(strcmp(a.first, b.first) != 0, "the two failures have different texts (\"%s\" / \"%s\")", a.first, b.first);
    CHECK(a.bad_rounds == 0, "%s read its own text in all %d rounds (%d not)", a.name, ROUNDS, a.bad_rounds);
    CHECK(b.bad_rounds == 0, "%s read its own text in all %d rounds (%d not)", b.name, ROUNDS, b.bad_rounds);

    /* The main thread never failed so far, either. */
    CHECK(hammer_last_error()[0] == '\0', "the main thread reads \"\" after other threads failed (read \"%s\")",
          hammer_last_error());
}

static void test_quiet_thread_after_failure(void)
{
    CHECK_STATUS(hammer_get_bucket(NULL, "id", 1, NULL), HAMMER_ERR_INVALID);
    CHECK(hammer_last_error()[0] != '\0', "main thread: own failure text \"%s\"", hammer_last_error());
    pthread_t t;
    if (CHECK(pthread_create(&t, NULL, quiet_thread, NULL) == 0, "pthread_create")) pthread_join(t, NULL);
}

/* Inserts "user:password@" after the scheme of a redis:// URL; 0 if the URL has another form. */
static int url_with_password(char *buf, size_t size, const char *url, const char *userinfo)
{
    const char *scheme = "redis://";
    if (strncmp(url, scheme, strlen(scheme)) != 0 || strchr(url, '@') != NULL) return 0;
    snprintf(buf, size, "%s%s@%s", scheme, userinfo, url + strlen(scheme));
    return 1;
}

static void test_no_password_in_errors(const char *url)
{
    const char *secret = "s3cretPassw0rd";
    hammer_t *h = NULL;

    /* Unreachable server: the message names the address, not the password. */
    int rc = hammer_open("redis://:s3cretPassw0rd@127.0.0.1:1/?expiry_ms=1000&connect_timeout_ms=500", &h);
    CHECK(rc == HAMMER_ERR_CONNECT && h == NULL, "open with a password on a closed port -> CONNECT (%d)", rc);
    CHECK(hammer_last_error()[0] != '\0' && strstr(hammer_last_error(), secret) == NULL,
          "unreachable: \"%s\" does not contain the password", hammer_last_error());

    /* A bad option after the password: still not echoed. */
    rc = hammer_open("redis://:s3cretPassw0rd@127.0.0.1:1/?expiry_ms=1000&bogus=1", &h);
    CHECK(rc == HAMMER_ERR_INVALID && h == NULL, "open with an unknown option -> INVALID (%d)", rc);
    CHECK(hammer_last_error()[0] != '\0' && strstr(hammer_last_error(), secret) == NULL,
          "bad option: \"%s\" does not contain the password", hammer_last_error());

    /* The test server has no password: AUTH fails, and the message does not show the one we sent. */
    char with_pw[4096];
    if (url_with_password(with_pw, sizeof with_pw, url, "someuser:s3cretPassw0rd")) {
        rc = hammer_open(with_pw, &h);
        CHECK(rc != HAMMER_OK && h == NULL, "open with a wrong user/password fails (%d: %s)", rc,
              hammer_strerror(rc));
        CHECK(hammer_last_error()[0] != '\0' && strstr(hammer_last_error(), secret) == NULL,
              "wrong password: \"%s\" does not contain the password", hammer_last_error());
        hammer_close(h);
    }
}

int main(int argc, char **argv)
{
    const char *url = test_url(argc, argv);
    if (url == NULL) return 2;
    test_two_threads();
    test_quiet_thread_after_failure();
    test_no_password_in_errors(url);
    return test_summary("test_errors");
}
