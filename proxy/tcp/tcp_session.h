/* The byte relay behind tcp_proxy (and, later, HTTP Upgrade/CONNECT tunnels): connects to a
 * cluster endpoint and copies both ways with backpressure, half-close, connect and idle
 * timeouts, and resets propagated as resets; either side may speak TLS. */
#ifndef REMORA_RELAY_H
#define REMORA_RELAY_H

#include <stdint.h>

#include "proxy/listener/network_filter.h"
#include "xds/snapshot/snapshot.h"

struct worker;

typedef struct tcp_proxy_stat_ids {
    stat_id_t downstream_cx_total;
    stat_id_t downstream_cx_no_route;
    stat_id_t downstream_cx_rx_bytes_total;
    stat_id_t downstream_cx_tx_bytes_total;
    stat_id_t idle_timeout;
    stat_id_t upstream_flush_total;
} tcp_proxy_stat_ids_t;

/* Takes conn->tcp, conn->initial and conn->tls (a terminated downstream TLS endpoint, freed once
 * the handle is closed; initial and tls are set to NULL in conn) and relays to an endpoint of
 * cluster (borrowed from conn->snap, which the relay keeps a reference to), over TLS when the
 * cluster has an UpstreamTlsContext. tst is borrowed from the filter config (kept alive by that
 * reference). idle_timeout_ms 0 disables the idle timeout. Returns -ENOMEM without taking anything
 * when it cannot allocate the relay; otherwise always takes the connection: on failure it resets
 * the downstream itself and returns 0. */
int relay_start(accepted_conn_t *conn, const snap_cluster_t *cluster,
                const tcp_proxy_stat_ids_t *tst, uint64_t idle_timeout_ms);

/* Resets and closes every relay of the worker (w borrowed; worker thread, at stop). */
void relay_abort_all(struct worker *w);

/* Worker: w (borrowed)->snap was replaced; forgets the upstream TLS sessions saved for client
 * configs it no longer has (upstream_connect_snapshot_installed: the saved sessions are the
 * upstream connections', the pools' included). Sessions whose listener it closed, or whose
 * chain the listener of that name no longer has (no chain of equal config_hash), go on until
 * the drain deadline (worker_drain_deadline). */
void relay_snapshot_installed(struct worker *w);

/* The worker's drain timer (w borrowed): closes, both ways, the sessions whose drain deadline
 * is at or before now. Returns the earliest deadline of the others, or 0. */
uint64_t relay_drain_expired(struct worker *w, uint64_t now);

#endif
