/* The ADS streams: each gRPC call to StreamAggregatedResources or DeltaAggregatedResources is an
 * ADS server stream; its first request names the node, which picks its group of sidecars and the
 * view each type is served from; its responses are built one at a time, each once HTTP/2 has
 * taken the last and while the responses in flight over all streams stay under a budget, so a
 * slow reader only ever gets the newest version of what it owes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp/cp_internal.h"

#include "envoy/config/core/v3/base.pb-c.h"
#include "proxy/core/log.h"
#include "xds/view/view_node.h"

#define ADS_SOTW_PATH                                                                              \
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
#define ADS_DELTA_PATH                                                                             \
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"

/* Bytes of responses handed to calls and not yet taken by HTTP/2, over every stream, past which
 * no stream builds another until some are taken: 1,000 sidecars reconnecting at once ask for
 * about 1.3 MB each, which would otherwise all be built at once and held until their sockets
 * take them. */
#define PUMP_BUDGET (16u << 20)

static const char *const TYPE_KEYS[ADS_SRV_NTYPES] = {"CDS", "EDS", "LDS", "RDS", "SDS"};

/* The budget outlives cp while the responses it counts are still held by calls being freed. */
struct cp_pump_budget {
    cp_t *cp;        /* NULL once cp has stopped */
    size_t inflight; /* bytes of the responses out */
    size_t outs;     /* responses out */
};

/* A response handed to a call, until HTTP/2 has taken the whole of it. */
typedef struct cp_out {
    cp_pump_budget_t *budget;
    cp_stream_t *st; /* NULL once the stream has closed */
    uint8_t *buf;
    size_t len;
} cp_out_t;

static void unlink_stream(cp_t *cp, cp_stream_t *st)
{
    if (st->prev)
        st->prev->next = st->next;
    else
        cp->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
}

/* Puts st at the end of the streams to pump, once. */
static void enqueue(cp_stream_t *st)
{
    cp_t *cp = st->cp;
    if (st->queued)
        return;
    st->queued = true;
    st->pump_next = NULL;
    if (cp->pump_tail)
        cp->pump_tail->pump_next = st;
    else
        cp->pump_list = st;
    cp->pump_tail = st;
}

static void dequeue(cp_t *cp, cp_stream_t *st)
{
    cp_stream_t *prev = NULL;
    for (cp_stream_t *p = cp->pump_list; p; prev = p, p = p->pump_next)
        if (p == st) {
            if (prev)
                prev->pump_next = st->pump_next;
            else
                cp->pump_list = st->pump_next;
            if (cp->pump_tail == st)
                cp->pump_tail = prev;
            break;
        }
    st->queued = false;
    st->pump_next = NULL;
}

static void on_pump_idle(uv_idle_t *h);

/* HTTP/2 took the whole response (or the call dropped it): the stream may build its next one,
 * and the budget has room again. Runs from inside the gRPC server: only counts and queues. */
static void out_release(void *arg)
{
    cp_out_t *o = arg;
    cp_pump_budget_t *b = o->budget;
    b->inflight -= o->len;
    b->outs--;
    if (o->st) {
        o->st->out = NULL;
        enqueue(o->st);
    }
    free(o->buf);
    free(o);
    if (b->cp == NULL) {
        if (b->outs == 0)
            free(b);
        return;
    }
    if (b->cp->pump_list && b->cp->pump_idle && b->inflight < PUMP_BUDGET)
        uv_idle_start(b->cp->pump_idle, on_pump_idle); /* a no-op when started already */
}

/* Builds and hands over the next response st owes, one at a time: the next only once HTTP/2 has
 * taken the last, so a slow reader only ever gets the newest version of what it owes, and only
 * while the budget has room (else st waits in the queue). */
static void pump(cp_stream_t *st)
{
    cp_t *cp = st->cp;
    while (st->call && st->out == NULL) {
        if (cp->budget->inflight >= PUMP_BUDGET) {
            enqueue(st);
            return;
        }
        uint8_t *buf = NULL;
        size_t len = 0;
        int rc = ads_srv_stream_next_response(st->s, &buf, &len);
        cp_out_t *o = rc > 0 ? malloc(sizeof(*o)) : NULL;
        if (rc > 0 && o == NULL) {
            free(buf);
            rc = -ENOMEM;
        }
        if (rc <= 0) {
            if (rc < 0)
                log_warn("xds: %s: building a response: %s", st->node_id, strerror(-rc));
            return;
        }
        const ads_srv_response_info_t *info = ads_srv_stream_last_response(st->s);
        if (info && info->type < ADS_SRV_NTYPES)
            stats_inc(cp->stats.slots, cp->stats.pushes[info->type]);
        stats_add(cp->stats.slots, cp->stats.bytes_sent, (int64_t)len);
        *o = (cp_out_t){.budget = cp->budget, .st = st, .buf = buf, .len = len};
        st->out = o;
        cp->budget->inflight += len;
        cp->budget->outs++;
        if (grpc_scall_send_shared(st->call, buf, len, out_release, o) < 0)
            return; /* released already */
    }
}

/* Called by the ADS view, from within its replace: only queue the stream. */
static void on_owed(void *ctx, ads_srv_stream_t *s)
{
    (void)s;
    enqueue(ctx);
}

void cp_streams_pump_queued(cp_t *cp)
{
    /* Each stream queued now gets one turn; one that waits for the budget is queued again. */
    cp_stream_t *last = cp->pump_tail;
    while (cp->pump_list && cp->budget->inflight < PUMP_BUDGET) {
        cp_stream_t *st = cp->pump_list;
        dequeue(cp, st);
        pump(st);
        if (st == last)
            break;
    }
    if (cp->pump_idle && (cp->pump_list == NULL || cp->budget->inflight >= PUMP_BUDGET))
        uv_idle_stop(cp->pump_idle);
}

static void on_pump_idle(uv_idle_t *h)
{
    cp_streams_pump_queued(h->data);
}

static void on_start(grpc_scall_t *call, void *user)
{
    cp_t *cp = user;
    int mode = ads_srv_mode_of_method(grpc_scall_path(call));
    cp_stream_t *st = calloc(1, sizeof(*st));
    ads_srv_stream_opts_t o = {.mode = mode == ADS_SRV_DELTA ? ADS_SRV_DELTA : ADS_SRV_SOTW,
                               .owed = on_owed,
                               .totals = &cp->totals};
    if (st)
        o.ctx = st;
    if (st == NULL || (st->s = ads_srv_stream_new(&o)) == NULL) {
        free(st);
        grpc_scall_finish(call, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL, 0);
        return;
    }
    st->cp = cp;
    st->call = call;
    snprintf(st->node_id, sizeof(st->node_id), "(unknown)");
    st->next = cp->streams;
    if (cp->streams)
        cp->streams->prev = st;
    cp->streams = st;
    grpc_scall_set_user(call, st);
}

/* The group of sidecars of the stream's node: its pod and namespace from the node id and
 * Istio's metadata; its service account from the pod the mesh knows (a node's own word for it
 * is taken only when the mesh has no such pod yet). */
static int attach(cp_stream_t *st)
{
    cp_t *cp = st->cp;
    const Envoy__Config__Core__V3__Node *node = ads_srv_stream_node(st->s);
    view_node_t vn;
    if (view_node_from_proto(node, &vn) < 0)
        return -EINVAL;
    snprintf(st->node_id, sizeof(st->node_id), "%s", node->id ? node->id : "");
    snprintf(st->cluster, sizeof(st->cluster), "%s", node->cluster ? node->cluster : "");
    const char *sa = vn.service_account ? vn.service_account : "default";
    if (vn.pod && vn.namespace_) {
        const mesh_object_t *pod = mesh_index_get(cp->index, MESH_POD, vn.namespace_, vn.pod);
        if (pod)
            sa = pod->pod.service_account;
    }
    if (cp->tls) {
        /* A sidecar gets only the config and certificate of the identity it proved. */
        char want[CA_SPIFFE_ID_MAX + 1];
        const char *peer = grpc_scall_peer_id(st->call);
        snprintf(want, sizeof(want), "spiffe://%s/ns/%s/sa/%s", cp->opts.trust_domain,
                 vn.namespace_, sa);
        if (peer == NULL || strcmp(peer, want) != 0) {
            snprintf(st->deny, sizeof(st->deny),
                     "node %s is %s, but its client certificate names %s", st->node_id, want,
                     peer ? peer : "no SPIFFE ID");
            return -EACCES;
        }
    }
    st->pv = cp_pview_get(cp, vn.namespace_, vn.pod, sa, vn.proxyless);
    if (st->pv == NULL)
        return -ENOMEM;
    for (int t = 0; t < ADS_SRV_NTYPES; t++)
        if (st->pv->tv[t])
            ads_srv_stream_set_type_view(st->s, (ads_srv_type_t)t, st->pv->tv[t]->v);
    cp->nstreams_with_node++;
    stats_add(cp->stats.slots, cp->stats.connected, 1);
    log_info("xds: %s connected (%s, group %s)", st->node_id,
             ads_srv_stream_mode(st->s) == ADS_SRV_DELTA ? "delta" : "state of the world",
             st->pv->key);
    return 0;
}

static void on_message(grpc_scall_t *call, const uint8_t *msg, size_t len, void *user)
{
    cp_stream_t *st = user;
    cp_t *cp = st->cp;
    /* The state before (copied: a status's strings live until the stream's next request). */
    struct {
        ads_srv_sync_t sync;
        char acked[64];
    } before[ADS_SRV_NTYPES];
    for (int t = 0; t < ADS_SRV_NTYPES; t++) {
        ads_srv_type_status_t ts;
        ads_srv_stream_type_status(st->s, (ads_srv_type_t)t, &ts);
        before[t].sync = ts.sync;
        snprintf(before[t].acked, sizeof(before[t].acked), "%s", ts.version_acked);
    }
    uint64_t acks0 = ads_srv_stream_counters(st->s)->acks;
    uint64_t nacks0 = ads_srv_stream_counters(st->s)->nacks;
    char err[512];
    int rc = ads_srv_stream_on_request(st->s, msg, len, err, sizeof(err));
    if (rc < 0) {
        log_warn("xds: %s: bad request: %s", st->node_id, err);
        grpc_scall_finish(call, GRPC_INVALID_ARGUMENT, err, NULL, 0);
        return;
    }
    if (st->pv == NULL && ads_srv_stream_node(st->s)) {
        rc = attach(st);
        if (rc == -EACCES) {
            log_warn("xds: refused: %s", st->deny);
            grpc_scall_finish(call, GRPC_PERMISSION_DENIED, st->deny, NULL, 0);
            return;
        }
        if (rc < 0) {
            grpc_scall_finish(call, GRPC_INVALID_ARGUMENT,
                              rc == -EINVAL ? "the node names no namespace: want the id "
                                              "<pod>.<namespace> or metadata NAMESPACE"
                                            : "out of memory",
                              NULL, 0);
            return;
        }
    }
    const ads_srv_counters_t *c = ads_srv_stream_counters(st->s);
    if (c->acks != acks0 || c->nacks != nacks0)
        for (int t = 0; t < ADS_SRV_NTYPES; t++) {
            ads_srv_type_status_t now;
            ads_srv_stream_type_status(st->s, (ads_srv_type_t)t, &now);
            if (strcmp(now.version_acked, before[t].acked) != 0 ||
                (now.sync == ADS_SRV_SYNCED && before[t].sync != ADS_SRV_SYNCED))
                stats_inc(cp->stats.slots, cp->stats.acks[t]);
            if (now.sync == ADS_SRV_NACKED && now.last_error && before[t].sync != ADS_SRV_NACKED) {
                stats_inc(cp->stats.slots, cp->stats.rejects[t]);
                log_warn("xds: %s NACKed %s version %s: %s", st->node_id, TYPE_KEYS[t],
                         now.version_sent, now.last_error);
            }
        }
    pump(st);
}

void cp_streams_set_type_view(cp_t *cp, const cp_pview_t *pv, ads_srv_type_t t, ads_srv_view_t *v)
{
    for (cp_stream_t *st = cp->streams; st; st = st->next)
        if (st->pv == pv && ads_srv_stream_set_type_view(st->s, t, v) == 0 &&
            ads_srv_stream_owes(st->s))
            on_owed(st, st->s);
}

static void on_writable(grpc_scall_t *call, void *user)
{
    (void)call;
    pump(user);
}

static void on_close(grpc_scall_t *call, int code, const char *message, void *user)
{
    (void)call;
    cp_stream_t *st = user;
    if (st == NULL)
        return;
    cp_t *cp = st->cp;
    if (st->pv) {
        log_info("xds: %s disconnected (%d%s%s)", st->node_id, code, message[0] ? ": " : "",
                 message);
        cp->nstreams_with_node--;
        stats_add(cp->stats.slots, cp->stats.connected, -1);
    }
    if (st->queued)
        dequeue(cp, st);
    if (st->out)
        st->out->st = NULL; /* the call frees it later */
    unlink_stream(cp, st);
    ads_srv_stream_free(st->s);
    cp_pview_release(cp, st->pv);
    free(st);
}

static const grpc_method_ops_t ADS_OPS = {
    .on_start = on_start,
    .on_message = on_message,
    .on_writable = on_writable,
    .on_close = on_close,
};

static void on_idle_closed(uv_handle_t *h)
{
    free(h);
}

void cp_streams_stop(cp_t *cp)
{
    if (cp->pump_idle) {
        uv_idle_stop(cp->pump_idle);
        uv_close((uv_handle_t *)cp->pump_idle, on_idle_closed);
        cp->pump_idle = NULL;
    }
    if (cp->budget) {
        cp->budget->cp = NULL;
        if (cp->budget->outs == 0)
            free(cp->budget);
        cp->budget = NULL;
    }
}

int cp_streams_register(cp_t *cp)
{
    cp->budget = calloc(1, sizeof(*cp->budget));
    cp->pump_idle = malloc(sizeof(*cp->pump_idle));
    if (cp->budget == NULL || cp->pump_idle == NULL) {
        free(cp->pump_idle);
        cp->pump_idle = NULL;
        return -ENOMEM;
    }
    cp->budget->cp = cp;
    uv_idle_init(cp->loop, cp->pump_idle);
    cp->pump_idle->data = cp;

    grpc_server_opts_t o = {.tls = cp->tls,
                            .keepalive_interval_ms = cp->opts.keepalive_ms,
                            .max_concurrent_streams = 16,
                            .max_recv_message = 4u << 20};
    int rc = grpc_server_new(cp->loop, &o, &cp->grpc);
    if (rc == 0)
        rc = grpc_server_add_method(cp->grpc, ADS_SOTW_PATH, &ADS_OPS, cp);
    if (rc == 0)
        rc = grpc_server_add_method(cp->grpc, ADS_DELTA_PATH, &ADS_OPS, cp);
    return rc;
}

static const char *sync_name(ads_srv_sync_t s)
{
    switch (s) {
    case ADS_SRV_SYNCED:
        return "SYNCED";
    case ADS_SRV_STALE:
        return "STALE";
    case ADS_SRV_NACKED:
        return "NACKED";
    default:
        return "NOT SENT";
    }
}

json_t *cp_streams_syncz(void *ctx)
{
    cp_t *cp = ctx;
    json_t *list = json_array();
    for (cp_stream_t *st = cp->streams; st && list; st = st->next) {
        if (st->pv == NULL)
            continue;
        json_t *types = json_object();
        for (int t = 0; t < ADS_SRV_NTYPES; t++) {
            ads_srv_type_status_t s;
            if (ads_srv_stream_type_status(st->s, (ads_srv_type_t)t, &s) < 0 ||
                s.sync == ADS_SRV_NOT_REQUESTED)
                continue;
            json_t *o = json_pack("{s:s, s:s, s:s}", "state", sync_name(s.sync), "sent",
                                  s.version_sent, "acked", s.version_acked);
            if (o && s.sync == ADS_SRV_NACKED && s.last_error)
                json_object_set_new(o, "error", json_string(s.last_error));
            json_object_set_new(types, TYPE_KEYS[t], o);
        }
        json_array_append_new(
            list, json_pack("{s:s, s:s, s:s, s:s, s:o}", "node", st->node_id, "cluster",
                            st->cluster, "group", st->pv->key, "mode",
                            ads_srv_stream_mode(st->s) == ADS_SRV_DELTA ? "delta" : "sotw", "types",
                            types));
    }
    return json_pack("{s:o}", "proxies", list);
}
