/* OpenSSL 3 for the TLS transport: the calls Swift cannot make itself (OpenSSL's function-like macros, callbacks),
 * as small static functions. */
#ifndef HAMMER_COPENSSL_SHIM_H
#define HAMMER_COPENSSL_SHIM_H

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

static inline int hammer_ssl_ctx_set_min_version(SSL_CTX *ctx, int version)
{
    return (int)SSL_CTX_set_min_proto_version(ctx, version);
}

/* Never a passphrase prompt on the host's terminal: an encrypted key fails to load instead. */
static int hammer_no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf; (void)size; (void)rwflag; (void)u;
    return 0;
}

static inline void hammer_ssl_ctx_setup(SSL_CTX *ctx)
{
    SSL_CTX_set_default_passwd_cb(ctx, hammer_no_password);
    /* A close without close_notify is an EOF like any other: RESP replies delimit themselves, so a truncated one
     * cannot pass for a whole one. No renegotiation. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_clear_mode(ctx, SSL_MODE_AUTO_RETRY);
    /* A record's header and body in one recv(), and a reply's records together when they came together. */
    SSL_CTX_set_read_ahead(ctx, 1);
}

/* Notes on the session that the server asked for a client certificate we do not have: with TLS 1.3 the server
 * refuses only after the handshake, by closing, and the note turns that close into a message that says why. */
static int hammer_client_cert_cb(SSL *ssl, X509 **x509, EVP_PKEY **pkey)
{
    (void)x509; (void)pkey;
    SSL_set_app_data(ssl, (void *)1);
    return 0;
}

static inline void hammer_ssl_ctx_note_cert_requests(SSL_CTX *ctx)
{
    SSL_CTX_set_client_cert_cb(ctx, hammer_client_cert_cb);
}

static inline int hammer_ssl_cert_requested(const SSL *ssl) { return SSL_get_app_data(ssl) != NULL; }

static inline long hammer_ssl_set_sni(SSL *ssl, const char *name)
{
    return SSL_set_tlsext_host_name(ssl, name);
}

static inline int hammer_err_reason(unsigned long e) { return ERR_GET_REASON(e); }

/* A socket BIO that sends with MSG_NOSIGNAL: writing to a peer that closed must not raise SIGPIPE in the host. */
static int hammer_bio_write(BIO *b, const char *buf, int len)
{
    int fd = (int)(intptr_t)BIO_get_data(b);
    ssize_t n;
    do {
        n = send(fd, buf, (size_t)len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    BIO_clear_retry_flags(b);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_write(b);
    return (int)n;
}

static int hammer_bio_read(BIO *b, char *buf, int len)
{
    int fd = (int)(intptr_t)BIO_get_data(b);
    ssize_t n;
    do {
        n = recv(fd, buf, (size_t)len, 0);
    } while (n < 0 && errno == EINTR);
    BIO_clear_retry_flags(b);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_read(b);
    return (int)n;
}

static long hammer_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b; (void)num; (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int hammer_bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

/* The method, made once by the caller (a Swift static). */
static inline BIO_METHOD *hammer_bio_method_new(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "hammer socket");
    if (!m) return NULL;
    BIO_meth_set_write(m, hammer_bio_write);
    BIO_meth_set_read(m, hammer_bio_read);
    BIO_meth_set_ctrl(m, hammer_bio_ctrl);
    BIO_meth_set_create(m, hammer_bio_create);
    return m;
}

static inline BIO *hammer_bio_new(BIO_METHOD *m, int fd)
{
    BIO *b = BIO_new(m);
    if (b) BIO_set_data(b, (void *)(intptr_t)fd);
    return b;
}

/* The DNS and IP names of the server's certificate, for a message ("DNS:localhost, IP:127.0.0.1"), or its subject
 * when it has none. Read from the chain the server sent, which is kept also when its verification failed. */
static inline void hammer_ssl_peer_names(SSL *ssl, char *out, size_t size)
{
    if (size == 0) return;
    out[0] = 0;
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
    X509 *cert = chain && sk_X509_num(chain) > 0 ? sk_X509_value(chain, 0) : SSL_get0_peer_certificate(ssl);
    if (!cert) return;
    size_t used = 0;
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    if (names) {
        for (int i = 0; i < sk_GENERAL_NAME_num(names) && used + 1 < size; i++) {
            const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
            char item[300];
            if (g->type == GEN_DNS) {
                int n = ASN1_STRING_length(g->d.dNSName);
                snprintf(item, sizeof item, "DNS:%.*s", n > 255 ? 255 : n,
                         (const char *)ASN1_STRING_get0_data(g->d.dNSName));
            } else if (g->type == GEN_IPADD) {
                char ip[INET6_ADDRSTRLEN] = "?";
                int n = ASN1_STRING_length(g->d.iPAddress);
                const unsigned char *d = ASN1_STRING_get0_data(g->d.iPAddress);
                if (n == 4) inet_ntop(AF_INET, d, ip, sizeof ip);
                else if (n == 16) inet_ntop(AF_INET6, d, ip, sizeof ip);
                snprintf(item, sizeof item, "IP:%s", ip);
            } else {
                continue;
            }
            int w = snprintf(out + used, size - used, "%s%s", used ? ", " : "", item);
            if (w < 0) break;
            used += (size_t)w;
        }
        GENERAL_NAMES_free(names);
    }
    if (used == 0) X509_NAME_oneline(X509_get_subject_name(cert), out, (int)size);
}

#endif
