/* What the listener offers a network (L4) filter: each filter is a const ops struct (the set the
 * proxy ships is in filters/registry.c, which the snapshot builder finds them through). A
 * filter owns its parsed config (held by the snapshot) and, as the terminal filter of a chain,
 * takes over the accepted connection. */
#ifndef REMORA_NETWORK_FILTER_H
#define REMORA_NETWORK_FILTER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/stats.h"

struct snapshot;
struct snap_listener;
struct snap_chain;
struct worker;
struct worker_listener;
struct uv_tcp_s;

/* A connection a listener accepted and matched to a chain. */
typedef struct accepted_conn {
    struct uv_tcp_s *tcp;  /* initialised, accepted handle; the filter takes it on success */
    struct worker *worker; /* borrowed */
    stats_slots_t *stats;  /* the worker's stat slots */
    struct snapshot *snap; /* borrowed; the filter takes its own reference if it keeps any */
    const struct snap_listener *listener;
    const struct snap_chain *chain;
    /* The worker listener it came in on (borrowed; kept alive until the connection is counted
     * out): it holds a place in its open-connection count, and whoever takes the connection
     * passes it to listener_conn_closed. listener_retired(wl) tells that it stopped accepting
     * (its listener was removed or replaced), for protocols that drain then. */
    struct worker_listener *wl;
    /* SO_ORIGINAL_DST, or the local address; ss_family is 0 when the listener needs neither
     * (no chain matches on the destination and no passthrough). */
    struct sockaddr_storage orig_dst;
    /* Bytes protocol detection already read (a pool slab, or NULL); the filter takes them and
     * must process them before anything read later. */
    char *initial;
    size_t initial_len;
    const char *app_protocol; /* "http/1.1", "http/1.0", "h2c" from detection, or NULL */
    /* The chain's DownstreamTlsContext: the finished server-side TLS endpoint over tcp (the
     * filter takes it and frees it after the handle closed), or NULL for plaintext. Records
     * the client sent after its handshake may already wait inside it: decrypt before the
     * first socket read. initial is NULL then. */
    struct tls_io *tls;
} accepted_conn_t;

typedef struct net_filter_ops {
    const char *name;     /* "envoy.filters.network.tcp_proxy" */
    const char *type_url; /* "type.googleapis.com/envoy.extensions...TcpProxy" */
    /* Parses `any` (a Google__Protobuf__Any*, borrowed) into a new config in *out. snap is the
     * snapshot being built: its clusters are already in place. Stats go into `stats`. */
    int (*config_parse)(const void *any, const struct snapshot *snap, stats_store_t *stats,
                        void **out, char *err, size_t errlen);
    void (*config_free)(void *config);
    /* Takes over conn->tcp. Returns 0, or a negative error if it did not take the handle (the
     * listener then resets and closes it). */
    int (*on_accept)(accepted_conn_t *conn, const void *config);
    /* Optional: called by each worker about once a second (and as it stops), e.g. to flush its
     * access-log buffers. */
    void (*on_worker_tick)(const void *config, unsigned worker_index);
} net_filter_ops_t;

#endif
