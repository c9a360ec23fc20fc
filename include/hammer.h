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
 * fork(): a child process may go on using a handle its parent opened (a server that forks workers after opening
 * it). On its first call the child drops the inherited connections without sending anything on them (closing the
 * file descriptors only), forgets what was in flight at the fork (locks, breaker, statistics) and connects afresh;
 * the parent's connections are never touched by the child and keep working. Calls still in progress in other
 * threads of the parent at the moment of the fork are not continued in the child (those threads do not exist there),
 * and no lock they held holds up the child; but fork while other threads make their first call of a kind and the
 * child may wait forever on the Swift runtime's locks (see docs/c-api.md). Only fork() is covered: exec'd programs
 * open their own handle.
 *
 * Errors: every function returns a status (HAMMER_OK or HAMMER_ERR_*) and writes its results through
 * out-parameters, which it clears first. hammer_strerror(status) is static text for a status;
 * hammer_last_error() is the detail of the calling thread's latest failure. Statuses follow errno and Redis's
 * codes, never the text of messages, so they do not change with the host's locale.
 *
 * Dropped connections: a connection that fails or times out, or that receives a reply the library cannot use (not
 * RESP, a header larger than any reply of the library, a type or shape the call did not ask for, or bytes beyond
 * the call's replies), is closed and never lent again; the call fails (HAMMER_ERR_PROTOCOL for an unusable reply)
 * and nothing is resent, so no call ever reads a reply meant for another. Batches the same: a chunk of an
 * unexpected shape fails the whole batch with HAMMER_ERR_PROTOCOL.
 *
 * Time: every now_ms (arguments and the created/updated fields) is Unix time in milliseconds (CLOCK_REALTIME, or
 * the caller's own clock for the *_at calls); durations are milliseconds. A call blocks at most
 * connect_timeout_ms + timeout_ms (the URL's options; 2 s by default), pool wait included, also while Redis is
 * down, frozen or slow; with scan_delete=true, hammer_delete_buckets blocks that long per SCAN step. One deadline,
 * from the call's start, covers the wait for a pooled connection, a connect when one is needed (name resolution,
 * TCP, AUTH, SELECT and PING, within connect_timeout_ms) and every write and read of its commands (within
 * timeout_ms of the first), however slowly the server sends; no command is written once it has passed. Batches
 * are written in chunks of up to 128 requests, at most 8 chunks in flight, each chunk's reply awaited timeout_ms
 * from the previous reply: a large batch takes as long as Redis needs, and ends within timeout_ms of Redis's last
 * answer when Redis stops answering (then the requests answered keep their results, the others are
 * HAMMER_ERR_TIMEOUT).
 *
 * Ids are any bytes up to the first NUL, at most HAMMER_MAX_ID_BYTES (65536); longer ids are HAMMER_ERR_INVALID.
 *
 * ABI: the library is libhammer.so.1 and exports hammer_* only. Within 1.x: functions, statuses, enum values and
 * the offsets and sizes of every struct below are kept; new functions and statuses are added. Structs grow only
 * where this header says how:
 *   - out-structs (hammer_bucket, hammer_decision, hammer_inspection) end in reserved space that the library
 *     clears; a later 1.x may put fields there (zero meaning "unknown"), so their size never changes;
 *   - in-structs (hammer_limit, the batch requests) end in reserved fields the caller sets to 0 (any initializer
 *     does: `hammer_limit lim = {.algorithm = HAMMER_GCRA, .limit = 10, .period_ms = 1000};`, or positionally
 *     `{HAMMER_GCRA, 10, 1000, 0}`, which gcc's -Wextra reports as missing initializers unless
 *     -Wno-missing-field-initializers; the INIT macros, HAMMER_LIMIT_INIT(...) and HAMMER_*_REQUEST_INIT, set every
 *     field); a later 1.x may give them a meaning in which 0 keeps today's behaviour, and
 *     this version refuses a non-zero one with HAMMER_ERR_INVALID, so no caller can depend on garbage there;
 *   - hammer_stats_t starts with `size`, which the caller sets to sizeof(hammer_stats_t): the library writes no
 *     byte past it, so a caller built against an older 1.x keeps working with a newer library, and a newer caller
 *     learns from `size` on return how much an older library filled.
 * 1.1 added (a program that uses them needs libhammer 1.1: check hammer_version_number() >= 10100): the sliding
 * counter (HAMMER_SLIDING_COUNTER), several limits in one decision (hammer_hit_all, hammer_peek_all and their _at
 * forms, hammer_hit_all_many, hammer_decision.decided_by), HAMMER_NOW and the *_INIT macros, hammer_stats_t's
 * deny_cache_hits, the URL options lazy_connect and deny_cache and the memory:// backend, and the non-blocking
 * calls (hammer_submit, hammer_fd, hammer_drain, hammer_pending, hammer_shutdown, hammer_op, hammer_completion,
 * HAMMER_OP_*).
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

#define HAMMER_VERSION_MAJOR 1
#define HAMMER_VERSION_MINOR 1
#define HAMMER_VERSION_PATCH 0
#define HAMMER_VERSION_STRING "1.1.0"
/* MAJOR * 10000 + MINOR * 100 + PATCH, as hammer_version_number() returns it: compare with < and >. */
#define HAMMER_VERSION_NUMBER (HAMMER_VERSION_MAJOR * 10000 + HAMMER_VERSION_MINOR * 100 + HAMMER_VERSION_PATCH)

#define HAMMER_MAX_ID_BYTES 65536

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
/* Every status, now and in any 1.x, is below HAMMER_STATUS_LIMIT (the length of hammer_stats_t.errors). */
#define HAMMER_STATUS_LIMIT 16

typedef struct hammer hammer_t;   /* opaque; ONE handle is safe to use from many threads at once */

/* One fixed-window bucket, as Hammer's get_bucket returns it. */
typedef struct hammer_bucket {
    int64_t bucket;    /* window number, as passed in */
    int64_t count;     /* hits counted */
    int64_t created;   /* now_ms of the first hit */
    int64_t updated;   /* now_ms of the latest hit */
    int32_t found;     /* 0: no such bucket, and count/created/updated are 0 */
    int32_t reserved32;
    int64_t reserved[2];   /* cleared by the library; see ABI above */
} hammer_bucket;

/*! hammer_open() :
 *  Opens a handle on the Redis server named by `config`, a URL:
 *      redis://[[user]:password@]host[:port][/db][?opt=val&...]
 *      rediss://[[user]:password@]host[:port][/db][?opt=val&...]     (TLS, OpenSSL 3)
 *      redis+sentinel://[[user]:password@]host1:port1[,host2:port2...]/service_name[/db][?opt=val&...]
 *      rediss+sentinel://...                                           (Sentinel; TLS to sentinels and nodes)
 *      unix:///path/to/redis.sock[?db=N&opt=val...]
 *      redis+cluster://[[user]:password@]host:port[,host:port...][/0][?opt=val&...]   (Redis Cluster: the hosts
 *          are seeds, one reachable is enough; db must be 0; ids may not be empty nor start with '}';
 *          rediss+cluster:// is the same over TLS, with the TLS options)
 *  user and password (percent-decoded) authenticate with AUTH (an ACL user when user is given); db (default 0)
 *  is SELECTed, from the path or the option db=N. IPv6 hosts go in brackets; the port defaults to 6379.
 *  Options: expiry_ms (1 ms .. 100 years: TTL of count_hit's buckets; needed by count_hit and count_hits only, which
 *  without it are HAMMER_ERR_INVALID naming expiry_ms), prefix (default "Hammer:Redis:"),
 *  connect_timeout_ms (default 1000), timeout_ms (a call's commands, default 1000), pool_size (default 8, 1..1024),
 *  spin_us (default 100, 0..1000: microseconds a call polls for its reply before sleeping, while the process has
 *  no more calls in progress than the CPUs it may use, by its affinity mask and cgroup CPU quota; 0 never polls),
 *  clock=local|redis (time source of hammer_check_rate/hammer_hit, default local),
 *  on_error=error|allow|deny (what decision calls return while Redis cannot answer, default error),
 *  fallback=none|local (decide in-process with the same limits while Redis cannot answer, default none),
 *  scan_delete=true|false (hammer_delete_buckets also finds buckets other clients wrote, default false),
 *  deny_cache=ENTRIES (0 .. 10^7, default 0 = off: a denial from Redis that says when a unit hit can pass again is
 *  kept in-process, and later hammer_hit / hammer_peek calls (and hammer_hit_many requests with now_ms < 0) of
 *  that id and limit on the handle's clock are denied there until then, with the decision Redis would give: same
 *  count and limit, remaining 0, retry_after_ms and reset_after_ms counting down; at most ENTRIES entries, the
 *  least recently used dropped first; a reset through this handle (hammer_delete_buckets) drops the id's entries; a
 *  reset made by another process is not seen, so until the time Redis named this process may deny what Redis would
 *  allow. The *_at calls, check_rate(s) and cost 0 always go to Redis; hammer_stats_t.deny_cache_hits counts the
 *  local denials),
 *  lazy_connect=true|false (true: hammer_open checks the URL and TLS files but does not connect; the first calls
 *  do, and while Redis cannot be reached on_error / fallback answer them; default false),
 *  hash_tags=true|false (keys as <prefix>{<id>}:<suffix>, so an id's keys share a cluster slot; default false,
 *  always true on a cluster; with it the prefix may not hold '{' or '}', and empty ids or ids starting with '}' are
 *  HAMMER_ERR_INVALID).
 *  TLS options (rediss:// only; the names of redis-py): ssl_ca_certs=FILE and ssl_ca_path=DIR (the CAs to trust;
 *  default the system's trust store), ssl_certfile=FILE and ssl_keyfile=FILE (a client certificate and its key,
 *  PEM without a passphrase), ssl_cert_reqs=required|none (none verifies nothing: for tests), ssl_check_hostname=
 *  true|false (false checks the chain only), ssl_server_name=NAME (SNI and the name verified, instead of the
 *  host), ssl_min_version=TLSv1.2|TLSv1.3 (default TLSv1.2). The handshake counts toward connect_timeout_ms; TLS
 *  failures are HAMMER_ERR_CONNECT with OpenSSL's reason, files that cannot be loaded HAMMER_ERR_INVALID.
 *  Sentinel options: sentinel_user, sentinel_password (the sentinels' credentials; user and password are the data
 *  nodes'). The master is found as Redis's client guide says (SENTINEL MASTER, then ROLE) and confirmed every
 *  100 ms while calls are made and after any failure; during a failover calls fail with HAMMER_ERR_CONNECT, and
 *  connections to an old master are closed. A service no sentinel knows is HAMMER_ERR_INVALID.
 *  memory://?expiry_ms=N[&clock=local] needs no Redis: the handle keeps its state in the process (tests, a
 *  single process, `make demo` without a server). Every call, algorithm and batch answers as against Redis, step
 *  by step, TTLs included (run on the monotonic clock); the state is the handle's own (another handle, or another
 *  process, shares none of it), its memory is what is live (expired state is dropped as calls meet it). The other
 *  options mean nothing without Redis and are HAMMER_ERR_INVALID, as is clock=redis. hammer_stats counts calls as
 *  usual, with connections 0. After fork() a child keeps a copy of the state as it was, and each process then
 *  counts its own hits (the ids of a shard another thread was changing at that instant start empty).
 *  Anything malformed, unknown or out of range is HAMMER_ERR_INVALID. Connects once to check the server and
 *  credentials (a cluster: reads the slot map), and reads INFO server and COMMAND INFO: a server older than Redis
 *  6.2 (Valkey: any), or one that lacks a command the library sends, is HAMMER_ERR_REDIS with the version found and
 *  the version needed (a user denied INFO or COMMAND by its ACL is not checked so). With lazy_connect=true none of
 *  this happens at open: the first calls connect, the first connection made checks the server, and a refusal then
 *  answers that call and every later one (HAMMER_ERR_REDIS, never on_error's or fallback's answer).
 *  @return HAMMER_OK and the handle in *out, or an error status and *out = NULL. */
HAMMER_API int hammer_open(const char *config, hammer_t **out);

/*! hammer_count_hit() :
 *  Needs expiry_ms in the URL (else HAMMER_ERR_INVALID, naming it). Adds `increment` (>= 0) hits to bucket `bucket` of `id`, stamped `now_ms`: count += increment, updated = now_ms
 *  (the first hit also sets created = now_ms), and the bucket lives expiry_ms to expiry_ms + 1 s after its latest
 *  hit, as with Hammer's Elixir Redis backend (which sets whole seconds, expiry_ms / 1000 + 1): its TTL is set to
 *  expiry_ms + 1 s and set again once it has fallen below expiry_ms. One atomic step, one round trip.
 *  `id` is any NUL-terminated bytes, empty included (with hash_tags / on a cluster: not empty, not starting with '}').
 *  @return HAMMER_OK and the bucket's new count in *count_out (may be NULL), or an error status. */
HAMMER_API int hammer_count_hit(hammer_t *h, const char *id, int64_t bucket, int64_t now_ms, int64_t increment,
                                int64_t *count_out);

/*! hammer_get_bucket() :
 *  Reads bucket `bucket` of `id` without changing it. out->found is 0 when there is no such bucket.
 *  @return HAMMER_OK, or an error status. */
HAMMER_API int hammer_get_bucket(hammer_t *h, const char *id, int64_t bucket, hammer_bucket *out);

/*! hammer_delete_buckets() :
 *  Deletes the buckets and limiter state of exactly `id` (never those of other ids, whatever bytes `id` holds).
 *  This is Hammer's reset. By default it deletes the buckets in the id's index, which are: every bucket this
 *  library created (count_hit, check_rate, fixed window), and a bucket another client (Hammer's Elixir Redis
 *  backend) created once this library's count_hit has set its TTL again, which count_hit does when it finds that
 *  TTL below expiry_ms or above expiry_ms + 1 s (the Elixir backend sets expiry_ms / 1000 + 1 s at each of its hits,
 *  so: a count_hit more than a second after the Elixir backend's latest hit on that bucket). Other buckets of the
 *  id (those the Elixir backend hit within the second before each of this library's count_hits on them, or that
 *  this library reached only through check_rate or the fixed window) are deleted with scan_delete=true only. Its
 *  cost grows with the id's own keys, not with the size of the keyspace: one Redis script call per 1000 of them.
 *  @return HAMMER_OK and the number of keys deleted in *deleted_out (may be NULL), or an error status. */
HAMMER_API int hammer_delete_buckets(hammer_t *h, const char *id, int64_t *deleted_out);

/*! hammer_close() : closes the handle and its connections. NULL is a no-op. No call may be in flight.
 *  A second close of the same handle, or a call on a closed handle, is caught (a no-op, or HAMMER_ERR_INVALID)
 *  as long as the handle's memory has not been reused by the allocator; after that it is undefined, as is closing
 *  a handle while another thread is inside a call on it. */
HAMMER_API void hammer_close(hammer_t *h);

/*! hammer_strerror() : static text for a status; never NULL, also for unknown values. */
HAMMER_API const char *hammer_strerror(int status);

/*! hammer_last_error() : detail of the calling thread's latest failure ("" if none). Valid until the thread's
 *  next hammer_* call. Never contains a password. */
HAMMER_API const char *hammer_last_error(void);

/*! hammer_version() : "MAJOR.MINOR.PATCH" of the library, to compare with HAMMER_VERSION_STRING. */
HAMMER_API const char *hammer_version(void);

/*! hammer_version_number() : the library's HAMMER_VERSION_NUMBER (e.g. 10100 for 1.1.0). */
HAMMER_API unsigned hammer_version_number(void);


/* ------------------------------------------------------------------------------------------------------------
 * Rate limiting: Hammer's own calls on the fixed-window buckets above, and five algorithms.
 * A denied decision is HAMMER_OK with allowed = 0, not an error. Times are milliseconds.
 * ------------------------------------------------------------------------------------------------------------ */

typedef struct hammer_decision {
    int32_t allowed;          /* 1 allow, 0 deny */
    int64_t count;            /* usage after this call (hits in window, or bucket level in hits, rounded up) */
    int64_t limit;
    int64_t remaining;        /* how many more unit hits would pass now; 0 when denied */
    int64_t retry_after_ms;   /* 0 when allowed; else the wait after which this same hit can pass (rounded up);
                                 -1 when it can never pass (cost above the limiter's capacity) */
    int64_t reset_after_ms;   /* wait until the limiter is fully reset: the fixed window's end, the sliding
                                 window holding no hits, the bucket full (token) or empty (leaky, GCRA) */
    int32_t degraded;         /* 1 when Redis could not answer and the on_error / fallback policy decided */
    int32_t decided_by;       /* of several limits (hammer_hit_all ...): the index in the caller's array of the
                                 limit that decided (count and limit are its own): when denied, the one with the
                                 longest retry_after_ms (-1 the longest), when allowed the one with the least
                                 remaining; ties go to the first. 0 for a single limit. */
    int64_t reserved[4];      /* cleared by the library; see ABI above */
} hammer_decision;

/* Hammer's inspect_bucket: the current fixed window of `id`, without side effect. */
typedef struct hammer_inspection {
    int64_t count;              /* hits counted in the current window */
    int64_t remaining;          /* limit - count, at least 0 */
    int64_t ms_to_next_bucket;  /* time until the window ends */
    int64_t created;            /* now_ms of the window's first hit; 0 when none */
    int64_t updated;            /* now_ms of its latest hit; 0 when none */
    int64_t reserved[3];        /* cleared by the library; see ABI above */
} hammer_inspection;

/*! hammer_check_rate() :
 *  Hammer's check_rate(id, scale_ms, limit) / check_rate_inc: counts `increment` (>= 0) hits in bucket
 *  now_ms / scale_ms of `id` (the bucket layout above, so Elixir's Hammer shares it), even when denied, and allows when
 *  the count is at most `limit`. One round trip. hammer_delete_buckets(id) is the reset. The bucket's TTL is set
 *  at its first hit, to the window's end and one second (unlike count_hit's: the window's end is known then).
 *  @return HAMMER_OK and the decision in *out, or an error status. */
HAMMER_API int hammer_check_rate(hammer_t *h, const char *id, int64_t scale_ms, int64_t limit, int64_t increment,
                                 hammer_decision *out);

/*! hammer_check_rate_at() : hammer_check_rate at the caller's time `now_ms` (tests, replays, Hammer's `now`).
 *  Decisions use `now_ms`, but stored state expires on Redis's clock, in real time: each *_at call sets the TTLs
 *  its state needs from `now_ms` on (and a second) from the moment it runs, so a replay slower than real time may
 *  find state gone that its own times would still count. */
HAMMER_API int hammer_check_rate_at(hammer_t *h, const char *id, int64_t scale_ms, int64_t limit, int64_t increment,
                                    int64_t now_ms, hammer_decision *out);

/*! hammer_inspect_bucket() : Hammer's inspect_bucket, without side effect. */
HAMMER_API int hammer_inspect_bucket(hammer_t *h, const char *id, int64_t scale_ms, int64_t limit,
                                     hammer_inspection *out);

/* Algorithms (values pinned, append only). When to pick which:
 *  FIXED_WINDOW    cheapest; counts per calendar window (Hammer's buckets); allows up to 2x limit across a boundary.
 *  SLIDING_WINDOW  exact: never more than `limit` in ANY period_ms; memory grows with the hits in a window.
 *  TOKEN_BUCKET    steady rate `limit` per period_ms with bursts up to `burst`; constant memory.
 *  LEAKY_BUCKET    the same meter seen as a level that leaks at `limit` per period_ms, capacity `burst`.
 *  GCRA            the token bucket's decisions stored as one timestamp (as redis-cell / redis_rate).
 *  SLIDING_COUNTER constant memory, close to SLIDING_WINDOW: two fixed windows, the previous one weighted by its
 *                  overlap with the sliding window (Cloudflare's approximation; `limits`' sliding window counter).
 *                  A cost c passes when prev * (period_ms - e) + (cur + c) * period_ms <= limit * period_ms, e the
 *                  ms into the current window, in exact integers. Error bound against the exact log: never more
 *                  than `limit` in a calendar window of period_ms, and at most limit + floor(limit * e / period_ms)
 *                  (< 2 x limit) in a sliding one ending e ms into a window; the excess needs the previous window's
 *                  hits crowded at its end. State: one hash field per period_ms of the id. */
enum {
    HAMMER_FIXED_WINDOW = 0,
    HAMMER_SLIDING_WINDOW = 1,
    HAMMER_TOKEN_BUCKET = 2,
    HAMMER_LEAKY_BUCKET = 3,
    HAMMER_GCRA = 4,
    HAMMER_SLIDING_COUNTER = 5
};

typedef struct hammer_limit {
    int32_t algorithm;   /* HAMMER_FIXED_WINDOW ... HAMMER_SLIDING_COUNTER */
    int64_t limit;       /* hits allowed per period (the refill / leak rate for the buckets), 1 .. 10^9 */
    int64_t period_ms;   /* 1 .. 10 years; the two windows take both whole ranges, the buckets, GCRA and the
                            sliding counter need capacity (burst, or limit) x period_ms <= 2^52 (exact in Lua's
                            doubles: 10^6 per day, 10^4 per 10 years), else HAMMER_ERR_INVALID */
    int64_t burst;       /* bucket capacity / burst tolerance; 0 means = limit; ignored by the windows and the
                            sliding counter */
    int64_t reserved[2]; /* set to 0 (an initializer does); see ABI above */
} hammer_limit;
/* Every field in order, so C and C++ alike and -Wextra stay quiet:
 *     hammer_limit lim = HAMMER_LIMIT_INIT(HAMMER_GCRA, 10, 1000);   then lim.burst = 20; if wanted */
#define HAMMER_LIMIT_INIT(algorithm, limit, period_ms) { (algorithm), (limit), (period_ms), 0, { 0, 0 } }

/*! hammer_hit() :
 *  Takes `cost` hits (0 .. 10^9) from the limiter `lim` of `id`, if they fit; a denied hit changes nothing.
 *  Cost 0 is always allowed and changes nothing; a cost above the capacity is denied with retry_after_ms = -1.
 *  Time is the library's clock, or Redis's TIME with clock=redis in the URL. One atomic step, one round trip.
 *  @return HAMMER_OK and the decision in *out, or an error status. */
HAMMER_API int hammer_hit(hammer_t *h, const char *id, const hammer_limit *lim, int64_t cost, hammer_decision *out);

/*! hammer_peek() : whether a hit of cost 1 would pass now, without side effect: `allowed` as that hit would get it,
 *  count and remaining as they stand (nothing taken); when denied, retry_after_ms as that hit would get it. */
HAMMER_API int hammer_peek(hammer_t *h, const char *id, const hammer_limit *lim, hammer_decision *out);

/*! hammer_hit_at() : hammer_hit at the caller's time `now_ms` (0 .. 2^47): tests, replays, Hammer's `now`.
 *  As with hammer_check_rate_at, state TTLs run on Redis's clock. */
HAMMER_API int hammer_hit_at(hammer_t *h, const char *id, const hammer_limit *lim, int64_t cost, int64_t now_ms,
                             hammer_decision *out);

/*! hammer_peek_at() : hammer_peek at the caller's time `now_ms`. */
HAMMER_API int hammer_peek_at(hammer_t *h, const char *id, const hammer_limit *lim, int64_t now_ms,
                              hammer_decision *out);

/* ------------------------------------------------------------------------------------------------------------
 * Several limits at once ("10 per second and 1000 per day"): one atomic step, one round trip.
 * ------------------------------------------------------------------------------------------------------------ */
#define HAMMER_MAX_LIMITS 16

/*! hammer_hit_all() :
 *  Takes `cost` hits from every limit lims[0..n-1] of `id` (1 <= n <= HAMMER_MAX_LIMITS, any mix of algorithms),
 *  if they all pass; otherwise none is charged. A limit repeated in the array counts once. A limit whose
 *  algorithm's state no other limit of the call would share keeps the state it has alone with hammer_hit (the same
 *  limit is the same state in both calls). Limits that would share one (two token buckets, two sliding windows,
 *  two GCRAs or two leaky buckets; two sliding counters or two fixed windows of one period) each get a state of
 *  their own, named by their parameters (README: "Several limits"), which hammer_delete_buckets deletes too. Two
 *  fixed windows of periods so close that their window numbers meet now are HAMMER_ERR_INVALID: give one another
 *  period, or use another id.
 *  The decision is the most restrictive: allowed when every limit passes, remaining the least of theirs; when
 *  denied, remaining 0 and retry_after_ms the longest wait of the limits that deny (-1 when one never passes), after
 *  which the same call passes; reset_after_ms the longest of all; decided_by names the limit, count and limit are
 *  its own. Statistics count one decision. With hash_tags / on a cluster the id's keys share one slot.
 *  @return HAMMER_OK and the decision in *out, or an error status. */
HAMMER_API int hammer_hit_all(hammer_t *h, const char *id, const hammer_limit *lims, size_t n, int64_t cost,
                              hammer_decision *out);

/*! hammer_hit_all_at() : hammer_hit_all at the caller's time `now_ms` (0 .. 2^47). */
HAMMER_API int hammer_hit_all_at(hammer_t *h, const char *id, const hammer_limit *lims, size_t n, int64_t cost,
                                 int64_t now_ms, hammer_decision *out);

/*! hammer_peek_all() : whether a hit of cost 1 would pass every limit now, without side effect: allowed when every
 *  peek allows, remaining the least as it stands; when denied, the wait the hit would get. */
HAMMER_API int hammer_peek_all(hammer_t *h, const char *id, const hammer_limit *lims, size_t n,
                               hammer_decision *out);

/*! hammer_peek_all_at() : hammer_peek_all at the caller's time `now_ms`. */
HAMMER_API int hammer_peek_all_at(hammer_t *h, const char *id, const hammer_limit *lims, size_t n, int64_t now_ms,
                                  hammer_decision *out);

/* ------------------------------------------------------------------------------------------------------------
 * Batches: many requests sent as one pipeline on one connection. Each request gets its own status and result;
 * the call returns HAMMER_OK when every request succeeded, else the first failing request's status.
 * `statuses` may be NULL. n may be 0; at most 1,000,000 per call. A request whose reserved fields are not 0 fails
 * alone with HAMMER_ERR_INVALID.
 * Each request struct has an INIT macro that sets every field (C and C++ alike): the defaults below, then set the
 * rest, e.g.  hammer_hit_request r = HAMMER_HIT_REQUEST_INIT;  r.id = "user:1"; r.lim = &lim;
 * A zeroed request ({0}, memset, calloc) is valid too, with cost / increment 0.
 * ------------------------------------------------------------------------------------------------------------ */

/* now_ms of a hit request: the handle's clock (CLOCK_REALTIME, or Redis's TIME with clock=redis), as hammer_hit. */
#define HAMMER_NOW (-1)

typedef struct hammer_count_request {
    const char *id;
    int64_t bucket;
    int64_t now_ms;        /* stamped in the bucket, as hammer_count_hit's (count_hit has no clock: set it) */
    int64_t increment;
    int64_t reserved[2];   /* set to 0 */
} hammer_count_request;
/* id NULL, bucket 0, now_ms 0, increment 1: set id, bucket and now_ms. */
#define HAMMER_COUNT_REQUEST_INIT { NULL, 0, 0, 1, { 0, 0 } }

typedef struct hammer_hit_request {
    const char *id;
    const hammer_limit *lim;
    int64_t cost;
    int64_t now_ms;      /* HAMMER_NOW, any value < 0, or 0: the handle's clock (as hammer_hit), so that a zeroed
                            request decides now; 1 .. 2^47: that time (as hammer_hit_at). A replay at Unix time 0
                            uses hammer_hit_at. */
    int64_t reserved[2]; /* set to 0 */
} hammer_hit_request;
/* id and lim NULL, cost 1, now_ms HAMMER_NOW: set id and lim. */
#define HAMMER_HIT_REQUEST_INIT { NULL, NULL, 1, HAMMER_NOW, { 0, 0 } }

typedef struct hammer_check_request {
    const char *id;
    int64_t scale_ms;
    int64_t limit;
    int64_t increment;
    int64_t reserved[2];   /* set to 0 */
} hammer_check_request;
/* id NULL, scale_ms 0, limit 0, increment 1: set id, scale_ms and limit. */
#define HAMMER_CHECK_REQUEST_INIT { NULL, 0, 0, 1, { 0, 0 } }

/*! hammer_count_hits() : hammer_count_hit for each of reqs[0..n-1]; counts_out[i] gets the new count (or 0). Without
 *  expiry_ms in the URL every request fails with HAMMER_ERR_INVALID. */
HAMMER_API int hammer_count_hits(hammer_t *h, const hammer_count_request *reqs, size_t n, int64_t *counts_out,
                                 int *statuses);

/*! hammer_hit_many() : hammer_hit / hammer_hit_at for each request; out[i] gets its decision. */
HAMMER_API int hammer_hit_many(hammer_t *h, const hammer_hit_request *reqs, size_t n, hammer_decision *out,
                               int *statuses);

/*! hammer_check_rates() : hammer_check_rate for each request; out[i] gets its decision. */
HAMMER_API int hammer_check_rates(hammer_t *h, const hammer_check_request *reqs, size_t n, hammer_decision *out,
                                  int *statuses);

typedef struct hammer_multi_request {
    const char *id;
    const hammer_limit *lims;   /* n_lims limits, 1 .. HAMMER_MAX_LIMITS */
    size_t n_lims;
    int64_t cost;
    int64_t now_ms;             /* 0 or negative: the handle's clock (as hammer_hit_all); else as hammer_hit_all_at */
    int64_t reserved[2];        /* set to 0 */
} hammer_multi_request;

/*! hammer_hit_all_many() : hammer_hit_all / hammer_hit_all_at for each request; out[i] gets its decision. */
HAMMER_API int hammer_hit_all_many(hammer_t *h, const hammer_multi_request *reqs, size_t n, hammer_decision *out,
                                   int *statuses);

/* ------------------------------------------------------------------------------------------------------------
 * Statistics of a handle since it was opened.
 * ------------------------------------------------------------------------------------------------------------ */
typedef struct hammer_stats_t {
    uint32_t size;           /* in: sizeof(hammer_stats_t) (HAMMER_STATS_INIT sets it); out: bytes the library filled */
    uint32_t spin_cpus;      /* CPUs this process may use (affinity mask and cgroup CPU quota), which bound polling */
    uint64_t calls;          /* requests answered, failed or refused for their arguments (each of a batch) */
    uint64_t allowed;        /* decisions that allowed */
    uint64_t denied;         /* decisions that denied */
    uint64_t errors[HAMMER_STATUS_LIMIT];  /* failed requests by status (errors[HAMMER_ERR_CONNECT], ...); [0] is 0 */
    uint64_t reconnects;     /* connections (re)opened, the first ones included */
    uint64_t degraded;       /* decisions made by on_error / fallback while Redis could not answer */
    int64_t  p50_us;         /* latency of calls (a batch is one call), within 1/16 of the value */
    int64_t  p99_us;
    int64_t  p999_us;
    int64_t  connections;    /* connections open now */
    /* Redis Cluster (redis+cluster://; 0 elsewhere). Requests the cluster redirected, each counted per request: */
    uint64_t cluster_moved;        /* MOVED: the slot had moved for good (the map is patched and read again) */
    uint64_t cluster_ask;          /* ASK: the key was being migrated (resent once to the importing node) */
    uint64_t cluster_tryagain;     /* TRYAGAIN: the slot was being migrated (resent after a pause) */
    uint64_t cluster_down;         /* CLUSTERDOWN: the slot was not served (resent after a pause, map read again) */
    uint64_t cluster_map_reads;    /* slot map reads (CLUSTER SHARDS), the one at open included */
    uint64_t cluster_nodes;        /* masters in the slot map now */
    /* The deny cache (deny_cache=ENTRIES; 0 elsewhere): */
    uint64_t deny_cache_hits;      /* decisions denied in-process from the cache (also counted in calls and denied) */
} hammer_stats_t;
#ifdef __cplusplus
#  define HAMMER_STATS_INIT { sizeof(hammer_stats_t) }
#else
#  define HAMMER_STATS_INIT { .size = sizeof(hammer_stats_t) }
#endif

/*! hammer_stats() : copies the handle's statistics (since it was opened, or since the fork that made this
 *  process) to *out. out->size must be at least 208 bytes (the fields up to `connections`; 256 up to the cluster's,
 *  264 with deny_cache_hits); the library clears and fills the first min(out->size, its own sizeof(hammer_stats_t)) bytes, never one
 *  past them, and sets out->size to that number.
 *  @return HAMMER_OK, or HAMMER_ERR_INVALID for a NULL handle or out, or a size below 208. */
HAMMER_API int hammer_stats(hammer_t *h, hammer_stats_t *out);


/* ------------------------------------------------------------------------------------------------------------
 * Non-blocking calls (completions), for event loops (epoll, libuv, asyncio ...): hammer_submit queues calls and
 * returns at once. An op of one command (every kind but HAMMER_OP_DELETE_BUCKETS) is written by the submitting
 * thread itself on an idle pooled connection of its pool (the single Redis's, or its cluster node's: a "lane", up to 8 ops in flight on it, replies
 * matched in order), and hammer_drain reads its reply: an op alone in flight costs no thread hand-off (the blocking
 * calls of those kinds use an idle lane the same way, the calling thread reading it). The other ops, and
 * those that find no idle connection, go to the I/O thread of their pool (started by the first op queued for it;
 * a handle that never submits has none; one per pool, so one per cluster node, at most 16, and one for ops whose
 * node the cluster's map names no more, during a failover), which takes everything
 * queued and sends it as pipelined batches (the batch calls' machinery, on every URL kind), so that ops in flight
 * together share round trips and a node that is slow or gone delays only its own ops. hammer_fd() is readable while
 * completions wait or replies have come; hammer_drain() reads those replies and takes the completions without
 * blocking. Policies (on_error, fallback, deny_cache, clock) and statistics are those of the blocking calls (each op
 * counts as a batch request).
 * Deadlines: an op may take connect_timeout_ms + timeout_ms from its submit (one written on a lane: timeout_ms from
 * its write, within that); one still queued then completes as HAMMER_ERR_TIMEOUT without being sent; a decision
 * that times out is answered by on_error / fallback when set. One op sent fails alone, as in a batch. Ops in flight together may run
 * in any order (by kind, in pipelines): to order two ops, submit the second once the first has completed.
 * Threads: hammer_submit and hammer_drain may be called from any threads, also at once.
 * fork(): the child gets a fresh engine (no thread, nothing queued, no completions; call hammer_fd again there:
 * the parent's descriptor is not the child's).
 * ------------------------------------------------------------------------------------------------------------ */

/* What an op calls (values pinned, append only): the blocking call of the same name. */
enum {
    HAMMER_OP_COUNT_HIT = 1,       /* id, bucket, now_ms, amount (increment)    -> value: the new count */
    HAMMER_OP_GET_BUCKET = 2,      /* id, bucket                                -> bucket */
    HAMMER_OP_DELETE_BUCKETS = 3,  /* id                                        -> value: keys deleted */
    HAMMER_OP_CHECK_RATE = 4,      /* id, scale_ms, limit, amount (increment)   -> decision */
    HAMMER_OP_CHECK_RATE_AT = 5,   /* ... and now_ms                            -> decision */
    HAMMER_OP_INSPECT_BUCKET = 6,  /* id, scale_ms, limit                       -> inspection */
    HAMMER_OP_HIT = 7,             /* id, lims (one limit), amount (cost)       -> decision */
    HAMMER_OP_HIT_AT = 8,          /* ... and now_ms                            -> decision */
    HAMMER_OP_PEEK = 9,            /* id, lims (one limit)                      -> decision */
    HAMMER_OP_PEEK_AT = 10,        /* ... and now_ms                            -> decision */
    HAMMER_OP_HIT_ALL = 11,        /* id, lims, n_lims, amount (cost)           -> decision */
    HAMMER_OP_HIT_ALL_AT = 12,     /* ... and now_ms                            -> decision */
    HAMMER_OP_PEEK_ALL = 13,       /* id, lims, n_lims                          -> decision */
    HAMMER_OP_PEEK_ALL_AT = 14     /* ... and now_ms                            -> decision */
};

/* One call to make. The fields an op's kind does not name are ignored (reserved must be 0). */
typedef struct hammer_op {
    int32_t kind;               /* HAMMER_OP_* */
    int32_t reserved32;         /* set to 0 */
    uint64_t tag;               /* the caller's, handed back in the completion (need not be unique) */
    const char *id;
    const hammer_limit *lims;   /* HIT / PEEK: one limit; *_ALL: n_lims limits */
    size_t n_lims;              /* *_ALL: 1 .. HAMMER_MAX_LIMITS */
    int64_t bucket;             /* COUNT_HIT, GET_BUCKET */
    int64_t scale_ms;           /* CHECK_RATE, INSPECT_BUCKET */
    int64_t limit;              /* CHECK_RATE, INSPECT_BUCKET */
    int64_t amount;             /* COUNT_HIT, CHECK_RATE: the increment; HIT, HIT_ALL: the cost (PEEK: 1) */
    int64_t now_ms;             /* COUNT_HIT: the time stamped; the *_AT kinds: the time decided at */
    int64_t reserved[4];        /* set to 0 */
} hammer_op;
/* Every field in order: kind, tag and id, amount 1, the rest 0; then set what the kind needs. */
#define HAMMER_OP_INIT(kind, tag, id) { (kind), 0, (tag), (id), NULL, 0, 0, 0, 0, 1, 0, { 0, 0, 0, 0 } }

#define HAMMER_MESSAGE_BYTES 256

/* One finished op. Only the result its kind names is set; the others are 0. */
typedef struct hammer_completion {
    uint64_t tag;                   /* the op's */
    int32_t status;                 /* HAMMER_OK, or the failure (as the blocking call would return) */
    int32_t kind;                   /* the op's */
    int64_t value;                  /* COUNT_HIT: the new count; DELETE_BUCKETS: keys deleted */
    hammer_decision decision;       /* CHECK_RATE*, HIT*, PEEK* */
    hammer_bucket bucket;           /* GET_BUCKET */
    hammer_inspection inspection;   /* INSPECT_BUCKET */
    int64_t reserved[4];            /* cleared by the library */
    char message[HAMMER_MESSAGE_BYTES];  /* the failure's detail (hammer_last_error's text), NUL-terminated
                                            and cut to fit; "" with HAMMER_OK */
} hammer_completion;

/*! hammer_submit() :
 *  Queues ops[0..n-1] (0 <= n <= 1,000,000) and returns without waiting for the network. Everything an op points
 *  to (id, lims) is copied: the caller may free or reuse it on return. Each op is checked as its blocking call
 *  checks its arguments; one that fails completes with HAMMER_ERR_INVALID (through hammer_drain, as any other),
 *  and the others go on. Every op submitted completes exactly once, unless the handle is closed first.
 *  @return HAMMER_OK (every op queued or completed as invalid), HAMMER_ERR_INVALID for a NULL or closed handle,
 *  ops NULL with n > 0, or n too large (then nothing is queued), HAMMER_ERR_NOMEM / HAMMER_ERR_INTERNAL when no
 *  I/O thread could be started (nothing queued). */
HAMMER_API int hammer_submit(hammer_t *h, const hammer_op *ops, size_t n);

/*! hammer_fd() :
 *  A file descriptor (an epoll set owned by the handle: do not read, write or close it) that is readable while
 *  completions wait to be drained or replies to ops in flight have come; watch it for reading in any loop (epoll,
 *  poll, libuv's uv_poll, asyncio's add_reader), then hammer_drain until it returns fewer than asked (a wake-up for
 *  part of a reply may give none). Level-triggered: it stays readable until every completion has been drained and
 *  every reply that came read. The same descriptor for the handle's life (in this process).
 *  @return the descriptor (>= 0), or -1 for a NULL or closed handle, or when none could be made (hammer_last_error). */
HAMMER_API int hammer_fd(hammer_t *h);

/*! hammer_drain() :
 *  Reads the replies that have come (without waiting), then moves up to `max` completions, oldest first, to
 *  out[0..].
 *  @return how many it moved (0 when none waits, or for a NULL or closed handle, or out NULL with max > 0). */
HAMMER_API size_t hammer_drain(hammer_t *h, hammer_completion *out, size_t max);

/*! hammer_pending() : ops submitted and not yet drained (queued, in flight, or completed and waiting). */
HAMMER_API size_t hammer_pending(hammer_t *h);

/*! hammer_shutdown() :
 *  Ends the non-blocking calls without blocking, so that every op submitted gets its completion: later
 *  hammer_submit calls fail with HAMMER_ERR_INVALID, the ops still queued (not sent) complete now as
 *  HAMMER_ERR_INVALID, and the ops in flight complete as they would have (their results, or their timeouts, within
 *  their deadlines), except one that a cluster redirects meanwhile: Redis did not run it, and it completes as
 *  HAMMER_ERR_INVALID unsent too. Keep watching hammer_fd and draining until hammer_pending() is 0, then
 *  hammer_close: every tag has then completed exactly once (a loop that keeps per-op state can free it). Blocking calls keep working until
 *  hammer_close. Idempotent; a fork()ed child's engine is a fresh one, not shut down.
 *  @return HAMMER_OK, or HAMMER_ERR_INVALID for a NULL or closed handle. */
HAMMER_API int hammer_shutdown(hammer_t *h);

/* hammer_close() with ops pending: ops still queued are dropped unsent, the I/O threads' ops in flight finish first
 * (within their deadlines: close never waits longer), ops written on a lane run on Redis but their replies are not
 * waited for, and completions not drained are dropped with the handle (hammer_shutdown first, to drain them all). */

#ifdef __cplusplus
}
#endif
#endif /* HAMMER_H */
