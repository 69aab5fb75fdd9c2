/* Reaching an endpoint of a cluster: the one place an upstream connection is admitted by the
 * circuit breaker, connected (connect_timeout, upstream_bind_config, TCP_NODELAY), made TLS when
 * the cluster has an UpstreamTlsContext (resuming the session last saved for the cluster and
 * endpoint), counted in the cluster's stats, and counted out again at close. Its owners, the
 * tcp_proxy relay and the HTTP/1.1 pools, embed it and keep their own data path: once connected
 * the socket (and its TLS session) is theirs to read and write. */
#ifndef REMORA_UPSTREAM_CONNECT_H
#define REMORA_UPSTREAM_CONNECT_H

#include <stdbool.h>
#include <uv.h>

#include "proxy/core/worker.h"
#include "proxy/net/tls_io.h"
#include "xds/snapshot/snapshot.h"

typedef struct upstream_connect_ops {
    /* The connection is usable (status 0: connected and, with TLS, the handshake done), or it
     * failed (a negative libuv error: UV_ETIMEDOUT when connect_timeout passed, UV_EPROTO for a
     * failed handshake), already counted and logged; the owner then closes it. Never called
     * from within upstream_connect_start. */
    void (*connected)(void *owner, int status);
    /* The owner's read callbacks for the socket. With TLS they are started at connect, for the
     * handshake: while upstream_connect_handshaking, alloc gives room with tls_io_alloc(tls)
     * and read hands what arrived to upstream_connect_read. Without TLS the owner starts
     * reading once connected. */
    uv_alloc_cb alloc;
    uv_read_cb read;
} upstream_connect_ops_t;

/* An endpoint's address: IPv4 or IPv6, the families clusters hold (a sockaddr_storage would
 * add a hundred bytes to every connection). */
typedef union upstream_addr {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
} upstream_addr_t;

typedef enum {
    UPSTREAM_CONNECT_NONE,      /* not started, or refused by the circuit breaker */
    UPSTREAM_CONNECT_TCP,       /* TCP connect in flight */
    UPSTREAM_CONNECT_HANDSHAKE, /* connected; the TLS handshake runs (still under the timeout) */
    UPSTREAM_CONNECT_OPEN,      /* usable: the owner's */
    UPSTREAM_CONNECT_FAILED,    /* reported to the owner, which closes it */
    UPSTREAM_CONNECT_CLOSED,
} upstream_connect_state_t;

typedef struct upstream_connect {
    uv_tcp_t tcp;     /* data is the owner's, for its read callbacks */
    uv_timer_t timer; /* the connect timeout; the owner's to use (data too) once connected */
    uv_connect_t req;
    tls_io_t *tls; /* with an UpstreamTlsContext: the session over tcp (owned) */
    worker_t *worker;
    const snap_cluster_t *cluster; /* borrowed: the owner holds its snapshot */
    upstream_addr_t addr;
    void *owner;
    const upstream_connect_ops_t *ops;
    upstream_connect_state_t state;
    bool counted; /* holds a place in the cluster's cx_active and upstream_cx_active */
} upstream_connect_t;

/* Starts connecting c (the owner's memory, zeroed) on worker w to addr (borrowed; copied), an
 * endpoint of cluster (borrowed), for owner (borrowed) with ops (borrowed; static). Returns:
 * 0: ops->connected follows; UV_EBUSY: the cluster has max_connections open (counted in
 * upstream_cx_overflow), c is untouched and needs no close; another negative libuv error: the
 * connect could not start (counted as a connect failure), c must be closed. With TLS, c->tls
 * exists once this returns anything but UV_EBUSY. */
int upstream_connect_start(upstream_connect_t *c, worker_t *w, const snap_cluster_t *cluster,
                           const struct sockaddr *addr, void *owner,
                           const upstream_connect_ops_t *ops);

/* Whether c (borrowed) has handles to close (upstream_connect_start returned anything but
 * UV_EBUSY). */
static inline bool upstream_connect_started(const upstream_connect_t *c)
{
    return c->state != UPSTREAM_CONNECT_NONE;
}

/* Whether reads of c's (borrowed) socket belong to the TLS handshake (see upstream_connect_ops_t).
 */
static inline bool upstream_connect_handshaking(const upstream_connect_t *c)
{
    return c->state == UPSTREAM_CONNECT_HANDSHAKE;
}

/* A read of c's (borrowed) socket during the handshake (nread as libuv's read callback has it;
 * positive: ciphertext in the room tls_io_alloc gave). May call ops->connected. */
void upstream_connect_read(upstream_connect_t *c, ssize_t nread);

/* Counts c (borrowed; its memory stays the owner's) out (upstream_cx_active, its place in
 * cx_active) and closes its socket, with a reset (SO_LINGER 0) when `reset`, and its timer. cb runs
 * once per handle, twice, with the handle's data set to `data` (borrowed); the owner frees c's
 * memory once both ran, after upstream_connect_free. Only for a started c, once. */
void upstream_connect_close(upstream_connect_t *c, bool reset, void *data, uv_close_cb cb);

/* Frees what c (borrowed; its memory the owner's) owns (its TLS session), once its handles are
 * closed (write callbacks, which use the session, all run before the close callbacks). */
void upstream_connect_free(upstream_connect_t *c);

/* Whether connections made with TLS contexts a and b (borrowed; NULL: plaintext) are
 * interchangeable: both plaintext, or the same engine config (certificate, key, trust bundle,
 * ALPN, suites: the snapshot builder gives equal contexts the same one across builds), the same
 * SNI and the same expected peer SANs. A context awaiting its SDS secret matches nothing. */
bool upstream_connect_same_tls(const tls_context_config_t *a, const tls_context_config_t *b);

/* Worker thread, w (borrowed)->snap just replaced: forgets the TLS sessions saved for client
 * configs the new snapshot no longer has (a rotated certificate, a removed cluster). */
void upstream_connect_snapshot_installed(worker_t *w);

/* Worker thread, at stop, after its last connection: frees every saved TLS session. */
void upstream_connect_forget_sessions(void);

#endif
