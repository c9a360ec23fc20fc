/*
 * hammer.h — the Redis backend of the Hammer rate limiter, as a C library.
 *
 * Buckets live in Redis as hashes "<prefix><id>:<bucket>" (prefix "Hammer:Redis:" by default) with the fields
 * count, created and updated, exactly as Hammer's Elixir Redis backend writes them, so C, Python and Elixir
 * services can share counters.
 *
 * Threads: one hammer_t may be used from any number of threads at once. It keeps a pool of Redis connections
 * (pool_size in the URL); each call borrows one for the length of the call.
 *
 * Errors: every function returns a status (HAMMER_OK or HAMMER_ERR_*) and writes its results through
 * out-parameters, which it clears first. hammer_strerror(status) is static text for a status;
 * hammer_last_error() is the detail of the calling thread's latest failure.
 *
 * ABI: statuses, enums and struct layouts are append only. The library is libhammer.so.0 and exports
 * hammer_* only.
 */
#ifndef HAMMER_H
#define HAMMER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#  define HAMMER_API __attribute__((visibility("default")))
#else
#  define HAMMER_API
#endif

#define HAMMER_VERSION_MAJOR 0
#define HAMMER_VERSION_MINOR 1
#define HAMMER_VERSION_PATCH 0
#define HAMMER_VERSION_STRING "0.1.0"

/* Statuses: values are pinned, append only. */
enum {
    HAMMER_OK           = 0,
    HAMMER_ERR_INVALID  = 1,  /* bad argument or configuration */
    HAMMER_ERR_CONNECT  = 2,  /* Redis unreachable, refused, or connection lost */
    HAMMER_ERR_TIMEOUT  = 3,  /* connect or command timed out */
    HAMMER_ERR_REDIS    = 4,  /* Redis answered with an error (NOAUTH, WRONGTYPE, OOM, ...) */
    HAMMER_ERR_PROTOCOL = 5,  /* reply of an unexpected shape */
    HAMMER_ERR_NOMEM    = 6,
    HAMMER_ERR_INTERNAL = 7
};

typedef struct hammer hammer_t;   /* opaque; ONE handle is safe to use from many threads at once */

/* One fixed-window bucket, as Hammer's get_bucket returns it. */
typedef struct hammer_bucket {
    int64_t bucket;    /* window number, as passed in */
    int64_t count;     /* hits counted */
    int64_t created;   /* now_ms of the first hit */
    int64_t updated;   /* now_ms of the latest hit */
    int32_t found;     /* 0: no such bucket, and count/created/updated are 0 */
} hammer_bucket;

/*! hammer_open() :
 *  Opens a handle on the Redis server named by `config`, a URL:
 *      redis://[[user]:password@]host[:port][/db][?opt=val&...]
 *      unix:///path/to/redis.sock[?db=N&opt=val...]
 *  Options: expiry_ms (mandatory, > 0: TTL of buckets), prefix (default "Hammer:Redis:"),
 *  connect_timeout_ms (default 1000), timeout_ms (per command, default 1000), pool_size (default 8, 1..1024),
 *  clock=local|redis (time source of hammer_check_rate/hammer_hit, default local).
 *  Connects once to check the server and credentials.
 *  @return HAMMER_OK and the handle in *out, or an error status and *out = NULL. */
HAMMER_API int hammer_open(const char *config, hammer_t **out);

/*! hammer_count_hit() :
 *  Adds `increment` (>= 0) hits to bucket `bucket` of `id`, stamped `now_ms`: count += increment, created is set
 *  on the bucket's first hit, updated = now_ms, TTL = expiry_ms. One atomic step, one round trip.
 *  `id` is any NUL-terminated bytes, empty included.
 *  @return HAMMER_OK and the bucket's new count in *count_out (may be NULL), or an error status. */
HAMMER_API int hammer_count_hit(hammer_t *h, const char *id, int64_t bucket, int64_t now_ms, int64_t increment,
                                int64_t *count_out);

/*! hammer_get_bucket() :
 *  Reads bucket `bucket` of `id` without changing it. out->found is 0 when there is no such bucket.
 *  @return HAMMER_OK, or an error status. */
HAMMER_API int hammer_get_bucket(hammer_t *h, const char *id, int64_t bucket, hammer_bucket *out);

/*! hammer_delete_buckets() :
 *  Deletes every bucket and limiter state of exactly `id` (never those of other ids, whatever bytes `id` holds).
 *  This is Hammer's reset. Its cost grows with the id's own keys, not with the size of the keyspace.
 *  @return HAMMER_OK and the number of keys deleted in *deleted_out (may be NULL), or an error status. */
HAMMER_API int hammer_delete_buckets(hammer_t *h, const char *id, int64_t *deleted_out);

/*! hammer_close() : closes the handle and its connections. NULL is a no-op. No call may be in flight. */
HAMMER_API void hammer_close(hammer_t *h);

/*! hammer_strerror() : static text for a status; never NULL, also for unknown values. */
HAMMER_API const char *hammer_strerror(int status);

/*! hammer_last_error() : detail of the calling thread's latest failure ("" if none). Valid until the thread's
 *  next hammer_* call. Never contains a password. */
HAMMER_API const char *hammer_last_error(void);

/*! hammer_version() : "MAJOR.MINOR.PATCH" of the library, to compare with HAMMER_VERSION_STRING. */
HAMMER_API const char *hammer_version(void);

#ifdef __cplusplus
}
#endif
#endif /* HAMMER_H */
