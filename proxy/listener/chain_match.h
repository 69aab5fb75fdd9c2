/* Filter-chain matching, run by the workers at accept: which filter chain of a listener takes a
 * connection (Envoy's order of criteria), and whether a listener filter's filter_disabled
 * predicate turns the filter off for it. Reads the snapshot only. */
#ifndef REMORA_LISTENER_CHAIN_MATCH_H
#define REMORA_LISTENER_CHAIN_MATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "xds/snapshot/snapshot.h"

/* What the listener knows about a connection when it picks the filter chain. All borrowed. */
typedef struct chain_conn_info {
    const struct sockaddr *dst;
    bool tls;                /* the tls_inspector saw a ClientHello; false: raw_buffer */
    const char *server_name; /* the ClientHello's SNI, or NULL */
    /* The ClientHello's ALPN list, or the one protocol the http_inspector detected. */
    const char *const *app_protocols;
    size_t n_app_protocols;
} chain_conn_info_t;

/* Picks the filter chain the Envoy way, criterion by criterion: chains for the destination
 * port before port-less chains; the longest matching destination prefix before chains without
 * prefixes; an exact server name, then the longest "*.suffix", before chains without
 * server_names; a chain naming the transport protocol, then one naming an application protocol,
 * before chains naming none. A chain must match every criterion it has. Falls back to the
 * default chain; NULL when nothing matches. l and ci are borrowed; returns a pointer into l. */
const snap_chain_t *chain_select(const snap_listener_t *l, const chain_conn_info_t *ci);

/* chain_select for a plaintext connection: no SNI, at most one detected protocol (borrowed;
 * NULL: none). l and dst borrowed; returns a pointer into l. */
const snap_chain_t *chain_select_plain(const snap_listener_t *l, const struct sockaddr *dst,
                                       const char *app_protocol);

/* The chain of l (borrowed) built from the same FilterChain message as a chain of hash
 * config_hash (snap_chain_t.config_hash), default chain included: where a connection of that
 * chain goes on under a new snapshot. Returns a pointer into l, or NULL when l has none (the
 * chain changed or went away). */
const snap_chain_t *chain_find_by_hash(const snap_listener_t *l, uint64_t config_hash);

/* Whether the compiled filter_disabled predicate p (borrowed) holds for a connection to
 * dest_port, i.e. whether the listener filter it belongs to is off for that connection. */
bool chain_pred_eval(const snap_pred_t *p, uint32_t dest_port);

#endif
