/*
 * test_locale.c — statuses do not depend on the host's locale (issue 9.3). A host that called setlocale() with a
 * German or French locale gets translated strerror() texts; the library must still tell a timeout from a refused
 * connection, since it classifies by errno:
 *   - nothing listens on the port             -> HAMMER_ERR_CONNECT
 *   - a listener that never answers the PING  -> HAMMER_ERR_TIMEOUT (at open)
 *   - a server that goes silent after the open -> HAMMER_ERR_TIMEOUT (a command)
 * and the real server at REDIS_URL still works under that locale.
 *
 *   build/tests/test_locale REDIS_URL
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <locale.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

/* A TCP listener on a free loopback port; returns its fd and sets *port. */
static int listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("listener");
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* The RESP arrays (commands) that start in buf[0..n): a '*' at the start or after a CRLF (none of the open's
 * arguments starts with one). */
static int commands_in(const char *buf, ssize_t n)
{
    int k = 0;
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == '*' && (i == 0 || (i >= 2 && buf[i - 2] == '\r' && buf[i - 1] == '\n'))) k++;
    return k;
}

/* Answers each connection's open: its PING with +PONG, then INFO server and COMMAND INFO (pipelined) as a server
 * that knows neither (hammer_open does not judge such a server); then stays silent (the connection stays open). */
static void *pong_then_silence(void *arg)
{
    int fd = *(int *)arg;
    for (;;) {
        int c = accept(fd, NULL, NULL);
        if (c < 0) return NULL;
        char buf[4096];
        if (read(c, buf, sizeof buf) <= 0 || write(c, "+PONG\r\n", 7) != 7) {
            close(c);
            continue;
        }
        int seen = 0;
        ssize_t n;
        while (seen < 2 && (n = read(c, buf, sizeof buf)) > 0) seen += commands_in(buf, n);
        static const char unknown[] = "-ERR unknown command\r\n-ERR unknown command\r\n";
        if (seen < 2 || write(c, unknown, sizeof unknown - 1) != (ssize_t)(sizeof unknown - 1)) close(c);
    }
}

static double elapsed_ms(struct timespec t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
}

static void run(const char *locale, const char *redis_url, int silent_port, int mute_port)
{
    CHECK(setlocale(LC_ALL, locale) != NULL, "setlocale(LC_ALL, \"%s\") (Debian's locales-all)", locale);
    /* The locale took: the system's texts are no longer English. */
    CHECK(!test_contains_ci(strerror(ETIMEDOUT), "timed out"), "%s: strerror(ETIMEDOUT) is \"%s\"", locale,
          strerror(ETIMEDOUT));

    char url[256];
    hammer_t *h = NULL;
    struct timespec t0;

    /* Refused: a port that was just free. */
    int port = 0, fd = listener(&port);
    close(fd);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/?expiry_ms=1000&connect_timeout_ms=300&timeout_ms=300", port);
    CHECK_STATUS(hammer_open(url, &h), HAMMER_ERR_CONNECT);
    CHECK(h == NULL, "%s: no handle after a refused open", locale);

    /* A listener whose accept queue takes the connection, but nobody ever answers the PING. */
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/?expiry_ms=1000&connect_timeout_ms=200&timeout_ms=200",
             silent_port);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_STATUS(hammer_open(url, &h), HAMMER_ERR_TIMEOUT);
    double ms = elapsed_ms(t0);
    CHECK(ms >= 190 && ms < 600, "%s: the open timed out after %.0f ms (connect_timeout_ms=200)", locale, ms);

    /* A server that answers the PING, then nothing: the command times out. */
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/?expiry_ms=1000&connect_timeout_ms=200&timeout_ms=200",
             mute_port);
    h = NULL;
    CHECK_STATUS(hammer_open(url, &h), HAMMER_OK);
    int64_t count = -1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_STATUS(hammer_count_hit(h, "locale", 1, 1700000000000, 1, &count), HAMMER_ERR_TIMEOUT);
    ms = elapsed_ms(t0);
    CHECK(ms >= 190 && ms < 600, "%s: the command timed out after %.0f ms (timeout_ms=200)", locale, ms);
    hammer_close(h);

    /* The real server, under the same locale. */
    char id[128];
    test_unique_id(id, sizeof id, "locale");
    h = NULL;
    CHECK_STATUS(hammer_open(redis_url, &h), HAMMER_OK);
    CHECK_STATUS(hammer_count_hit(h, id, 1, 1700000000000, 1, &count), HAMMER_OK);
    CHECK_EQ_I64(count, 1);
    hammer_delete_buckets(h, id, &count);
    hammer_close(h);
    setlocale(LC_ALL, "C");
}

int main(int argc, char **argv)
{
    const char *url = test_url(argc, argv);
    if (!url) return 2;
    int silent_port = 0, mute_port = 0;
    int silent = listener(&silent_port);   /* never accepted */
    int mute = listener(&mute_port);
    if (silent < 0 || mute < 0) return 1;
    pthread_t t;
    pthread_create(&t, NULL, pong_then_silence, &mute);
    pthread_detach(t);
    run("de_DE.UTF-8", url, silent_port, mute_port);
    run("fr_FR.UTF-8", url, silent_port, mute_port);
    printf("ok   statuses are the same in German and French\n");
    return test_summary("test_locale");
}
