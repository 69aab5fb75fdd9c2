/* HTTP connections and new snapshots: between requests a connection moves to the worker's
 * newest snapshot (its listener of the same name, its chain of equal config hash and that
 * chain's connection manager config), so that route (RDS), cluster (CDS) and endpoint (EDS)
 * updates reach keep-alive connections at their next request, as in Envoy. A connection whose
 * chain changed or went away drains instead, as on a listener's removal, and is reset if it is
 * still open when the drain time (--drain-time-s) is over. */
#include <errno.h>
#include <string.h>

#include "proxy/core/log.h"
#include "proxy/http/hcm_conn.h"
#include "proxy/listener/chain_match.h"
#include "proxy/net/tls_io.h"

int hcm_binding_find(const hcm_binding_t *from, snapshot_t *to, hcm_binding_t *out)
{
    const snap_listener_t *l = snapshot_find_listener(to, from->listener->name);
    const snap_chain_t *ch = l ? chain_find_by_hash(l, from->chain->config_hash) : NULL;
    if (ch == NULL)
        return -ENOENT;
    /* The same FilterChain message builds the same filters: the connection manager is at the
     * same place in the new chain. */
    const snap_chain_t *was = from->chain;
    size_t i = 0;
    while (i < was->n_filters && was->filters[i].config != (const void *)from->cfg)
        i++;
    if (i == was->n_filters || i >= ch->n_filters || ch->filters[i].ops != was->filters[i].ops)
        return -ENOENT;
    const hcm_config_t *cfg = ch->filters[i].config;
    /* The connection is counted out at close through the config it holds then: the counters
     * must be those it was counted into at accept. Stats of equal names have equal ids, so
     * this holds unless the listener's stat_prefix or its global-limit setting changed. */
    const snap_listener_t *wl = from->listener;
    if (l->ignore_global_cx_limit != wl->ignore_global_cx_limit ||
        l->st.downstream_cx_active != wl->st.downstream_cx_active ||
        l->st.downstream_cx_destroy != wl->st.downstream_cx_destroy ||
        cfg->st.downstream_cx_active != from->cfg->st.downstream_cx_active ||
        (ch->tls == NULL) != (was->tls == NULL))
        return -ESTALE;
    *out = (hcm_binding_t){.snap = to, .listener = l, .chain = ch, .cfg = cfg};
    return 0;
}

/* c takes the place to (borrowed; a reference to its snapshot is taken) and drops its old
 * snapshot. What c kept of the old one is re-pointed: its TLS endpoint holds its own reference
 * to the engine it was made with, and its x-forwarded-client-cert element is its own copy. */
static void move_to(hcm_conn_t *c, const hcm_binding_t *to)
{
    snapshot_t *old = c->snap;
    c->snap = snapshot_ref(to->snap);
    c->listener = to->listener;
    c->chain = to->chain;
    c->cfg = to->cfg;
    if (c->tls)
        c->tls_own_id = tls_config_spiffe_id(to->chain->tls->engine);
    snapshot_unref(old);
}

/* Where c runs now. */
static hcm_binding_t binding_of(const hcm_conn_t *c)
{
    return (hcm_binding_t){
        .snap = c->snap, .listener = c->listener, .chain = c->chain, .cfg = c->cfg};
}

void hcm_rebind(hcm_conn_t *c)
{
    if (c->close_after || listener_retired(c->wl))
        return; /* its last request: it serves it where it is */
    hcm_binding_t from = binding_of(c), to;
    int rc = hcm_binding_find(&from, c->worker->snap, &to);
    if (rc < 0) {
        log_debug("hcm: listener '%s': the connection's filter chain changed: it drains",
                  c->listener->name);
        c->close_after = true;
        if (c->drain_due_ms == 0)
            c->drain_due_ms = worker_drain_deadline(c->worker);
        return;
    }
    move_to(c, &to);
}

void hcm_drain_for_config(hcm_conn_t *c)
{
    if (c->drain_due_ms == 0)
        c->drain_due_ms = worker_drain_deadline(c->worker);
    hcm_drain_conn(c);
}

void hcm_rebind_all(worker_t *w)
{
    hcm_conn_t *c = w->hcm_conns, *next;
    for (; c; c = next) {
        next = c->next;
        if (c->drain_due_ms != 0)
            continue; /* drains already, by the deadline an earlier snapshot gave it */
        if (listener_retired(c->wl)) {
            hcm_drain_for_config(c);
            continue;
        }
        if (c->snap == w->snap)
            continue;
        hcm_binding_t from = binding_of(c), to;
        if (hcm_binding_find(&from, w->snap, &to) < 0)
            hcm_drain_for_config(c);
        else if (!c->close_after && c->state == HCM_WAIT_HEAD)
            move_to(c, &to); /* idle: it lets go of the old snapshot now */
    }
}

uint64_t hcm_drain_expired(worker_t *w, uint64_t now)
{
    uint64_t next_due = 0;
    unsigned n = 0;
    hcm_conn_t *c = w->hcm_conns, *next;
    for (; c; c = next) {
        next = c->next;
        if (c->drain_due_ms == 0)
            continue;
        if (c->drain_due_ms > now) {
            if (next_due == 0 || c->drain_due_ms < next_due)
                next_due = c->drain_due_ms;
            continue;
        }
        hcm_flag_streams(c, "LR"); /* reset here, as at the end of the drain at SIGTERM */
        hcm_close(c, true);
        n++;
    }
    if (n)
        log_info("worker %u: drain time over: %u HTTP connection(s) of a changed or removed "
                 "listener reset",
                 w->index, n);
    return next_due;
}
