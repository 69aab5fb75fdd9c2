/* Specification of the ADS server's protocol state machine (xds/server) against the project's
 * own client state machine (xds/ads): the two talk through byte buffers, in both modes. What a
 * view change owes, to which streams, and what a client that NACKs, lags behind or reconnects
 * gets. Requests built by hand for the protocol's edge cases are in test_ads_server_requests.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "xds/ads/ads.h"
#include "xds/server/ads_server.h"

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/core/v3/address.pb-c.h"
#include "envoy/config/core/v3/base.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"

/* ---- resources ----------------------------------------------------------------------------- */

/* A cluster whose connect_timeout is `seconds` (negative: the client rejects it). */
static ads_srv_resource_t *cluster(const char *name, int64_t seconds)
{
    Envoy__Config__Cluster__V3__Cluster c = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
    Google__Protobuf__Duration d = GOOGLE__PROTOBUF__DURATION__INIT;
    c.name = (char *)name;
    d.seconds = seconds;
    c.connect_timeout = &d;
    ads_srv_resource_t *r = ads_srv_resource_from_message(&c.base);
    assert_non_null(r);
    return r;
}

/* Endpoints of cluster `name`: one endpoint of weight `weight`, which tells versions apart. */
static ads_srv_resource_t *endpoints(const char *name, uint32_t weight)
{
    Envoy__Config__Endpoint__V3__ClusterLoadAssignment c =
        ENVOY__CONFIG__ENDPOINT__V3__CLUSTER_LOAD_ASSIGNMENT__INIT;
    Envoy__Config__Endpoint__V3__LocalityLbEndpoints loc =
        ENVOY__CONFIG__ENDPOINT__V3__LOCALITY_LB_ENDPOINTS__INIT;
    Envoy__Config__Endpoint__V3__LbEndpoint ep = ENVOY__CONFIG__ENDPOINT__V3__LB_ENDPOINT__INIT;
    Google__Protobuf__UInt32Value w = GOOGLE__PROTOBUF__UINT32_VALUE__INIT;
    Envoy__Config__Endpoint__V3__LocalityLbEndpoints *locs[] = {&loc};
    Envoy__Config__Endpoint__V3__LbEndpoint *eps[] = {&ep};
    w.value = weight;
    ep.load_balancing_weight = &w;
    loc.n_lb_endpoints = 1;
    loc.lb_endpoints = eps;
    c.cluster_name = (char *)name;
    c.n_endpoints = 1;
    c.endpoints = locs;
    ads_srv_resource_t *r = ads_srv_resource_from_message(&c.base);
    assert_non_null(r);
    return r;
}

static ads_srv_resource_t *listener(const char *name, uint32_t port)
{
    Envoy__Config__Listener__V3__Listener l = ENVOY__CONFIG__LISTENER__V3__LISTENER__INIT;
    Envoy__Config__Core__V3__Address addr = ENVOY__CONFIG__CORE__V3__ADDRESS__INIT;
    Envoy__Config__Core__V3__SocketAddress sa = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__INIT;
    sa.address = "127.0.0.1";
    sa.port_specifier_case = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE;
    sa.port_value = port;
    addr.address_case = ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS;
    addr.socket_address = &sa;
    l.name = (char *)name;
    l.address = &addr;
    ads_srv_resource_t *r = ads_srv_resource_from_message(&l.base);
    assert_non_null(r);
    return r;
}

/* Replaces every type of v with the resources given (NULL-terminated; the list's references
 * are dropped after). Returns what changed. */
static int set_view(ads_srv_view_t *v, ...)
{
    ads_srv_resource_t *res[32];
    size_t n = 0;
    va_list ap;
    va_start(ap, v);
    for (ads_srv_resource_t *r; (r = va_arg(ap, ads_srv_resource_t *)) != NULL;)
        res[n++] = r;
    va_end(ap);
    int rc = ads_srv_view_replace(v, res, n, true);
    for (size_t i = 0; i < n; i++)
        ads_srv_resource_unref(res[i]);
    return rc;
}

/* ---- a client and a server stream ---------------------------------------------------------- */

typedef struct peer {
    ads_t *client;
    ads_srv_stream_t *stream;
    int owed_calls; /* the stream's owed hook */
} peer_t;

/* What one pump brought to the client. */
typedef struct pumped {
    int responses, requests;
    size_t added, updated, removed, rejected;
    int nacked;
} pumped_t;

static void on_owed(void *ctx, ads_srv_stream_t *s)
{
    peer_t *p = ctx;
    assert_ptr_equal(p->stream, s);
    p->owed_calls++;
}

static const char *const eds_names[] = {"a", "b"};

/* A client of mode `delta` subscribed to clusters and listeners (wildcard) and to endpoints
 * `a` and `b`, and its server stream on view v. */
static void peer_open(peer_t *p, bool delta, ads_srv_view_t *v)
{
    Envoy__Config__Core__V3__Node node = ENVOY__CONFIG__CORE__V3__NODE__INIT;
    node.id = "sidecar~10.0.0.1~web-1.default~default.svc.cluster.local";
    node.cluster = "web";
    ads_opts_t copts = {.mode = delta ? ADS_DELTA : ADS_SOTW};
    memset(p, 0, sizeof(*p));
    p->client = ads_new(&node, &copts);
    assert_non_null(p->client);
    assert_true(ads_subscribe(p->client, ADS_TYPE_CLUSTER, NULL, 0) >= 0);
    assert_true(ads_subscribe(p->client, ADS_TYPE_LISTENER, NULL, 0) >= 0);
    assert_true(ads_subscribe(p->client, ADS_TYPE_ENDPOINT, eds_names, 2) >= 0);
    ads_srv_stream_opts_t sopts = {
        .mode = delta ? ADS_SRV_DELTA : ADS_SRV_SOTW, .owed = on_owed, .ctx = p};
    p->stream = ads_srv_stream_new(&sopts);
    assert_non_null(p->stream);
    (void)v;
}

static void peer_close(peer_t *p)
{
    ads_srv_stream_free(p->stream);
    ads_free(p->client);
}

/* Carries every request the client owes to the server. */
static int send_requests(peer_t *p)
{
    uint8_t *buf;
    size_t len;
    char err[256];
    int n = 0;
    while (ads_next_request(p->client, &buf, &len) > 0) {
        int rc = ads_srv_stream_on_request(p->stream, buf, len, err, sizeof(err));
        if (rc != 0)
            fail_msg("the server refused a request of the client: %s", err);
        free(buf);
        n++;
    }
    return n;
}

/* Carries one response owed by the server to the client; false when none. */
static bool deliver_one(peer_t *p, pumped_t *out)
{
    uint8_t *buf;
    size_t len;
    char err[256];
    int rc = ads_srv_stream_next_response(p->stream, &buf, &len);
    assert_true(rc >= 0);
    if (rc == 0)
        return false;
    ads_result_t r;
    if (ads_on_response(p->client, buf, len, 1000, &r, err, sizeof(err)) != 0)
        fail_msg("the client refused a response of the server: %s", err);
    free(buf);
    out->responses++;
    out->added += r.added.n;
    out->updated += r.updated.n;
    out->removed += r.removed.n;
    out->rejected += r.rejected.n;
    out->nacked += r.verdict == ADS_NACKED;
    ads_result_free(&r);
    return true;
}

/* Lets the two talk until neither has anything to say. */
static pumped_t pump(peer_t *p)
{
    pumped_t out = {0};
    for (int round = 0; round < 100; round++) {
        int n = send_requests(p);
        out.requests += n;
        bool any = false;
        while (deliver_one(p, &out))
            any = true;
        if (n == 0 && !any)
            return out;
    }
    fail_msg("the client and the server never settle");
    return out;
}

/* The first requests, the node read, the stream put on v, then everything settled. */
static pumped_t peer_start(peer_t *p, ads_srv_view_t *v)
{
    send_requests(p);
    assert_non_null(ads_srv_stream_node(p->stream));
    assert_string_equal(ads_srv_stream_node(p->stream)->cluster, "web");
    ads_srv_stream_set_view(p->stream, v);
    return pump(p);
}

static ads_srv_type_status_t status_of(const peer_t *p, ads_srv_type_t t)
{
    ads_srv_type_status_t st;
    assert_int_equal(ads_srv_stream_type_status(p->stream, t, &st), 0);
    return st;
}

static void assert_synced(const peer_t *p, ads_srv_type_t t)
{
    ads_srv_type_status_t st = status_of(p, t);
    assert_int_equal(st.sync, ADS_SRV_SYNCED);
    assert_string_equal(st.version_acked, st.version_sent);
}

/* The weight of the endpoints of `name` the client holds, or 0. */
static uint32_t client_weight(const peer_t *p, const char *name)
{
    ads_resource_info_t info;
    if (ads_find(p->client, ADS_TYPE_ENDPOINT, name, &info) != 0 || info.msg == NULL)
        return 0;
    const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *c = (const void *)info.msg;
    return c->endpoints[0]->lb_endpoints[0]->load_balancing_weight->value;
}

static size_t client_count(const peer_t *p, const char *type_url)
{
    ads_type_status_t st;
    assert_int_equal(ads_type_status(p->client, type_url, &st), 0);
    return st.resources;
}

static ads_srv_view_t *standard_view(void)
{
    ads_srv_view_t *v = ads_srv_view_new();
    assert_non_null(v);
    assert_int_equal(set_view(v, cluster("a", 1), cluster("b", 1), endpoints("a", 1),
                              endpoints("b", 1), listener("in", 15006), NULL),
                     5);
    return v;
}

/* ---- tests --------------------------------------------------------------------------------- */

static void initial_config(bool delta)
{
    ads_srv_view_t *v = standard_view();
    peer_t p;
    peer_open(&p, delta, v);
    pumped_t got = peer_start(&p, v);
    assert_int_equal(got.responses, 3); /* clusters, endpoints, listeners */
    assert_int_equal(got.added, 5);
    assert_int_equal(got.nacked, 0);
    assert_int_equal(client_count(&p, ADS_TYPE_CLUSTER), 2);
    assert_int_equal(client_count(&p, ADS_TYPE_ENDPOINT), 2);
    assert_int_equal(client_count(&p, ADS_TYPE_LISTENER), 1);
    assert_synced(&p, ADS_SRV_CDS);
    assert_synced(&p, ADS_SRV_EDS);
    assert_synced(&p, ADS_SRV_LDS);
    assert_int_equal(status_of(&p, ADS_SRV_RDS).sync, ADS_SRV_NOT_REQUESTED);
    const ads_srv_counters_t *c = ads_srv_stream_counters(p.stream);
    assert_int_equal(c->acks, 3);
    assert_int_equal(c->resources_sent[ADS_SRV_CDS], 2);
    assert_true(c->bytes_sent > 0);
    assert_false(ads_srv_stream_owes(p.stream));
    peer_close(&p);
    ads_srv_view_unref(v);
}

static void test_initial_config_sotw(void **state)
{
    (void)state;
    initial_config(false);
}

static void test_initial_config_delta(void **state)
{
    (void)state;
    initial_config(true);
}

/* Two views share everything but the endpoints of `a`; a change of those in one view owes a
 * response to its stream only, and carries that one resource. */
static void update_reaches_only_its_view(bool delta)
{
    ads_srv_view_t *v1 = standard_view(), *v2 = standard_view();
    peer_t p1, p2;
    peer_open(&p1, delta, v1);
    peer_open(&p2, delta, v2);
    peer_start(&p1, v1);
    peer_start(&p2, v2);
    assert_int_equal(set_view(v1, cluster("a", 1), cluster("b", 1), endpoints("a", 7),
                              endpoints("b", 1), listener("in", 15006), NULL),
                     1);
    assert_int_equal(p1.owed_calls, 1);
    assert_int_equal(p2.owed_calls, 0);
    assert_false(ads_srv_stream_owes(p2.stream));
    pumped_t got = pump(&p1);
    assert_int_equal(got.responses, 1);
    assert_int_equal(got.updated, 1);
    const ads_srv_response_info_t *last = ads_srv_stream_last_response(p1.stream);
    assert_int_equal(last->type, ADS_SRV_EDS);
    assert_int_equal(last->n_resources, 1);
    assert_string_equal(ads_srv_resource_name(last->resources[0]), "a");
    assert_int_equal(client_weight(&p1, "a"), 7);
    assert_int_equal(client_weight(&p2, "a"), 1);
    assert_int_equal(pump(&p2).responses, 0);
    assert_synced(&p1, ADS_SRV_EDS);
    peer_close(&p1);
    peer_close(&p2);
    ads_srv_view_unref(v1);
    ads_srv_view_unref(v2);
}

static void test_update_reaches_only_its_view_sotw(void **state)
{
    (void)state;
    update_reaches_only_its_view(false);
}

static void test_update_reaches_only_its_view_delta(void **state)
{
    (void)state;
    update_reaches_only_its_view(true);
}

/* New objects of the same content change nothing; a change of a name nobody subscribes to owes
 * nothing either. */
static void unchanged_not_resent(bool delta)
{
    ads_srv_view_t *v = standard_view();
    peer_t p;
    peer_open(&p, delta, v);
    peer_start(&p, v);
    uint64_t sent = ads_srv_stream_counters(p.stream)->bytes_sent;
    assert_int_equal(set_view(v, cluster("a", 1), cluster("b", 1), endpoints("a", 1),
                              endpoints("b", 1), listener("in", 15006), NULL),
                     0);
    assert_int_equal(set_view(v, cluster("a", 1), cluster("b", 1), endpoints("a", 1),
                              endpoints("b", 1), endpoints("unwatched", 3), listener("in", 15006),
                              NULL),
                     1);
    assert_false(ads_srv_stream_owes(p.stream));
    assert_int_equal(p.owed_calls, 0);
    assert_int_equal(pump(&p).responses, 0);
    assert_int_equal(ads_srv_stream_counters(p.stream)->bytes_sent, sent);
    peer_close(&p);
    ads_srv_view_unref(v);
}

static void test_unchanged_not_resent_sotw(void **state)
{
    (void)state;
    unchanged_not_resent(false);
}

static void test_unchanged_not_resent_delta(void **state)
{
    (void)state;
    unchanged_not_resent(true);
}

/* A cluster the client rejects: the NACK is recorded with its error, the version the client
 * runs stays the previous one, and a fixed cluster is ACKed again. */
static void nack_recorded(bool delta)
{
    ads_srv_view_t *v = standard_view();
    peer_t p;
    peer_open(&p, delta, v);
    peer_start(&p, v);
    ads_srv_type_status_t before = status_of(&p, ADS_SRV_CDS);
    char good[17];
    strcpy(good, before.version_acked);
    set_view(v, cluster("a", 1), cluster("b", -5), endpoints("a", 1), endpoints("b", 1),
             listener("in", 15006), NULL);
    pumped_t got = pump(&p);
    assert_int_equal(got.nacked, 1);
    ads_srv_type_status_t st = status_of(&p, ADS_SRV_CDS);
    assert_int_equal(st.sync, ADS_SRV_NACKED);
    assert_non_null(st.last_error);
    assert_non_null(strstr(st.last_error, "cds['b'].connect_timeout"));
    assert_int_equal(st.last_error_code, 3);
    assert_string_equal(st.version_acked, good);
    assert_string_not_equal(st.version_sent, good);
    assert_int_equal(ads_srv_stream_counters(p.stream)->nacks, 1);
    set_view(v, cluster("a", 1), cluster("b", 2), endpoints("a", 1), endpoints("b", 1),
             listener("in", 15006), NULL);
    got = pump(&p);
    assert_int_equal(got.nacked, 0);
    assert_synced(&p, ADS_SRV_CDS);
    assert_non_null(status_of(&p, ADS_SRV_CDS).last_error); /* the last NACK's, kept */
    peer_close(&p);
    ads_srv_view_unref(v);
}

static void test_nack_recorded_sotw(void **state)
{
    (void)state;
    nack_recorded(false);
}

static void test_nack_recorded_delta(void **state)
{
    (void)state;
    nack_recorded(true);
}

/* The client's ACK of a response the server has since replaced answers a stale nonce: ignored,
 * and the type stays stale until the newer response is ACKed. */
static void stale_nonce_ignored(bool delta)
{
    ads_srv_view_t *v = standard_view();
    peer_t p;
    peer_open(&p, delta, v);
    peer_start(&p, v);
    set_view(v, cluster("a", 1), cluster("b", 1), endpoints("a", 2), endpoints("b", 1),
             listener("in", 15006), NULL);
    pumped_t got = {0};
    assert_true(deliver_one(&p, &got)); /* the client holds the ACK of it, unsent */
    set_view(v, cluster("a", 1), cluster("b", 1), endpoints("a", 3), endpoints("b", 1),
             listener("in", 15006), NULL);
    uint8_t *buf;
    size_t len;
    assert_int_equal(ads_srv_stream_next_response(p.stream, &buf, &len), 1); /* still unread */
    char acked[17];
    strcpy(acked, status_of(&p, ADS_SRV_EDS).version_acked);
    send_requests(&p); /* the ACK of the first */
    assert_int_equal(ads_srv_stream_counters(p.stream)->stale_nonces, 1);
    ads_srv_type_status_t st = status_of(&p, ADS_SRV_EDS);
    assert_int_equal(st.sync, ADS_SRV_STALE);
    assert_string_equal(st.version_acked, acked);
    char err[256];
    ads_result_t r;
    assert_int_equal(ads_on_response(p.client, buf, len, 1000, &r, err, sizeof(err)), 0);
    ads_result_free(&r);
    free(buf);
    pump(&p);
    assert_synced(&p, ADS_SRV_EDS);
    assert_int_equal(client_weight(&p, "a"), 3);
    peer_close(&p);
    ads_srv_view_unref(v);
}

static void test_stale_nonce_ignored_sotw(void **state)
{
    (void)state;
    stale_nonce_ignored(false);
}

static void test_stale_nonce_ignored_delta(void **state)
{
    (void)state;
    stale_nonce_ignored(true);
}

/* A slow reader that lets three versions go by gets the newest only, once. */
static void slow_reader_gets_newest(bool delta)
{
    ads_srv_view_t *v = standard_view();
    peer_t p;
    peer_open(&p, delta, v);
    peer_start(&p, v);
    for (uint32_t w = 2; w <= 4; w++)
        set_view(v, cluster("a", 1), cluster("b", 1), endpoints("a", w), endpoints("b", 1),
                 listener("in", 15006), NULL);
    assert_int_equal(p.owed_calls, 1); /* told once: it owed nothing before the first */
    pumped_t got = pump(&p);
    assert_int_equal(got.responses, 1);
    assert_int_equal(got.updated, 1);
    assert_int_equal(client_weight(&p, "a"), 4);
    assert_synced(&p, ADS_SRV_EDS);
    peer_close(&p);
    ads_srv_view_unref(v);
}

static void test_slow_reader_gets_newest_sotw(void **state)
{
    (void)state;
    slow_reader_gets_newest(false);
}

static void test_slow_reader_gets_newest_delta(void **state)
{
    (void)state;
    slow_reader_gets_newest(true);
}

/* Two streams on one view carry the very same resource objects: held once, encoded once. */
static void test_streams_of_one_view_share_resources(void **state)
{
    (void)state;
    ads_srv_view_t *v = standard_view();
    peer_t p1, p2;
    peer_open(&p1, false, v);
    peer_open(&p2, true, v);
    peer_start(&p1, v);
    peer_start(&p2, v);
    set_view(v, cluster("a", 1), cluster("b", 1), endpoints("a", 9), endpoints("b", 1),
             listener("in", 15006), NULL);
    pump(&p1);
    pump(&p2);
    const ads_srv_response_info_t *l1 = ads_srv_stream_last_response(p1.stream);
    const ads_srv_response_info_t *l2 = ads_srv_stream_last_response(p2.stream);
    assert_int_equal(l1->n_resources, 1);
    assert_int_equal(l2->n_resources, 1);
    assert_ptr_equal(l1->resources[0], l2->resources[0]);
    assert_ptr_equal(l1->resources[0], ads_srv_view_find(v, ADS_SRV_EDS, "a"));
    /* the same resources held make the same version, whatever the mode */
    assert_string_equal(l1->version, l2->version);
    size_t n1, n2;
    assert_ptr_equal(ads_srv_resource_bytes(l1->resources[0], &n1),
                     ads_srv_resource_bytes(l2->resources[0], &n2));
    peer_close(&p1);
    peer_close(&p2);
    ads_srv_view_unref(v);
}

/* SotW: a removed cluster goes by leaving the whole set; delta: by removed_resources, and a
 * missing endpoint set is said absent. An unsubscribed name owes nothing. */
static void test_delta_unsubscribe_and_removed(void **state)
{
    (void)state;
    ads_srv_view_t *v = ads_srv_view_new();
    set_view(v, cluster("a", 1), endpoints("a", 1), NULL);
    peer_t p;
    peer_open(&p, true, v);
    pumped_t got = peer_start(&p, v);
    assert_int_equal(client_count(&p, ADS_TYPE_ENDPOINT), 1);
    assert_int_equal(ads_srv_stream_counters(p.stream)->removed_sent[ADS_SRV_EDS], 1); /* b */
    (void)got;
    const char *only_a[] = {"a"};
    assert_true(ads_subscribe(p.client, ADS_TYPE_ENDPOINT, only_a, 1) >= 0);
    got = pump(&p);
    assert_int_equal(got.requests, 1);
    assert_int_equal(got.responses, 0);
    assert_int_equal(status_of(&p, ADS_SRV_EDS).names, 1);
    /* b appearing now concerns nobody; a going away is said. */
    assert_int_equal(set_view(v, cluster("a", 1), endpoints("b", 1), NULL), 2);
    got = pump(&p);
    assert_int_equal(got.responses, 1);
    assert_int_equal(got.removed, 1);
    assert_int_equal(client_count(&p, ADS_TYPE_ENDPOINT), 0);
    /* A cluster removed from the view leaves the client's set. */
    assert_int_equal(set_view(v, endpoints("b", 1), NULL), 1);
    got = pump(&p);
    assert_int_equal(got.removed, 1);
    assert_int_equal(client_count(&p, ADS_TYPE_CLUSTER), 0);
    assert_synced(&p, ADS_SRV_CDS);
    peer_close(&p);
    ads_srv_view_unref(v);
}

static void test_sotw_removed_cluster_leaves_the_set(void **state)
{
    (void)state;
    ads_srv_view_t *v = standard_view();
    peer_t p;
    peer_open(&p, false, v);
    peer_start(&p, v);
    set_view(v, cluster("a", 1), endpoints("a", 1), endpoints("b", 1), listener("in", 15006), NULL);
    pumped_t got = pump(&p);
    assert_int_equal(got.responses, 1);
    assert_int_equal(got.removed, 1);
    const ads_srv_response_info_t *last = ads_srv_stream_last_response(p.stream);
    assert_int_equal(last->type, ADS_SRV_CDS);
    assert_int_equal(last->n_resources, 1); /* the whole set: what is left */
    assert_int_equal(client_count(&p, ADS_TYPE_CLUSTER), 1);
    assert_synced(&p, ADS_SRV_CDS);
    peer_close(&p);
    ads_srv_view_unref(v);
}

/* A client that reconnects with what it holds gets nothing it has (delta:
 * initial_resource_versions; SotW: listeners and clusters at the version it names), and what
 * changed meanwhile. */
static void reconnect(bool delta)
{
    ads_srv_view_t *v = standard_view();
    peer_t p;
    peer_open(&p, delta, v);
    peer_start(&p, v);
    ads_srv_stream_free(p.stream);
    set_view(v, cluster("a", 1), cluster("b", 1), endpoints("a", 5), endpoints("b", 1),
             listener("in", 15006), NULL);
    ads_reconnected(p.client);
    ads_srv_stream_opts_t sopts = {.mode = delta ? ADS_SRV_DELTA : ADS_SRV_SOTW};
    p.stream = ads_srv_stream_new(&sopts);
    pumped_t got = peer_start(&p, v);
    assert_int_equal(got.updated, 1);
    assert_int_equal(got.added + got.removed, 0);
    const ads_srv_counters_t *c = ads_srv_stream_counters(p.stream);
    assert_int_equal(c->resources_sent[ADS_SRV_CDS] + c->resources_sent[ADS_SRV_LDS], 0);
    /* delta: endpoints a only; SotW named types resend what is asked for anew */
    assert_int_equal(c->resources_sent[ADS_SRV_EDS], delta ? 1 : 2);
    assert_int_equal(client_weight(&p, "a"), 5);
    assert_synced(&p, ADS_SRV_CDS);
    assert_synced(&p, ADS_SRV_EDS);
    assert_synced(&p, ADS_SRV_LDS);
    peer_close(&p);
    ads_srv_view_unref(v);
}

static void test_reconnect_sends_only_what_changed_sotw(void **state)
{
    (void)state;
    reconnect(false);
}

static void test_reconnect_sends_only_what_changed_delta(void **state)
{
    (void)state;
    reconnect(true);
}

/* A stream moved to another view owes what differs between them. */
static void test_stream_moved_to_another_view(void **state)
{
    (void)state;
    ads_srv_view_t *v1 = standard_view(), *v2 = ads_srv_view_new();
    set_view(v2, cluster("a", 1), cluster("b", 1), endpoints("a", 8), endpoints("b", 1),
             listener("in", 15006), NULL);
    peer_t p;
    peer_open(&p, true, v1);
    peer_start(&p, v1);
    ads_srv_stream_set_view(p.stream, v2);
    pumped_t got = pump(&p);
    assert_int_equal(got.responses, 1);
    assert_int_equal(got.updated, 1);
    assert_int_equal(client_weight(&p, "a"), 8);
    ads_srv_view_unref(v1); /* the stream holds no reference to v1 any more */
    assert_int_equal(set_view(v2, NULL), 5);
    pump(&p);
    assert_int_equal(client_count(&p, ADS_TYPE_CLUSTER), 0);
    assert_int_equal(client_count(&p, ADS_TYPE_LISTENER), 0);
    peer_close(&p);
    ads_srv_view_unref(v2);
}

static void test_totals_are_counted_across_streams(void **state)
{
    (void)state;
    ads_srv_view_t *v = standard_view();
    ads_srv_counters_t totals = {0};
    peer_t p1, p2;
    peer_open(&p1, false, v);
    peer_open(&p2, true, v);
    ads_srv_stream_free(p1.stream);
    ads_srv_stream_free(p2.stream);
    ads_srv_stream_opts_t o1 = {.mode = ADS_SRV_SOTW, .totals = &totals};
    ads_srv_stream_opts_t o2 = {.mode = ADS_SRV_DELTA, .totals = &totals};
    p1.stream = ads_srv_stream_new(&o1);
    p2.stream = ads_srv_stream_new(&o2);
    peer_start(&p1, v);
    peer_start(&p2, v);
    assert_int_equal(totals.acks, 6);
    assert_int_equal(totals.responses[ADS_SRV_CDS], 2);
    assert_int_equal(totals.resources_sent[ADS_SRV_EDS], 4);
    assert_int_equal(totals.bytes_sent, ads_srv_stream_counters(p1.stream)->bytes_sent +
                                            ads_srv_stream_counters(p2.stream)->bytes_sent);
    peer_close(&p1);
    peer_close(&p2);
    ads_srv_view_unref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_initial_config_sotw),
        cmocka_unit_test(test_initial_config_delta),
        cmocka_unit_test(test_update_reaches_only_its_view_sotw),
        cmocka_unit_test(test_update_reaches_only_its_view_delta),
        cmocka_unit_test(test_unchanged_not_resent_sotw),
        cmocka_unit_test(test_unchanged_not_resent_delta),
        cmocka_unit_test(test_nack_recorded_sotw),
        cmocka_unit_test(test_nack_recorded_delta),
        cmocka_unit_test(test_stale_nonce_ignored_sotw),
        cmocka_unit_test(test_stale_nonce_ignored_delta),
        cmocka_unit_test(test_slow_reader_gets_newest_sotw),
        cmocka_unit_test(test_slow_reader_gets_newest_delta),
        cmocka_unit_test(test_streams_of_one_view_share_resources),
        cmocka_unit_test(test_delta_unsubscribe_and_removed),
        cmocka_unit_test(test_sotw_removed_cluster_leaves_the_set),
        cmocka_unit_test(test_reconnect_sends_only_what_changed_sotw),
        cmocka_unit_test(test_reconnect_sends_only_what_changed_delta),
        cmocka_unit_test(test_stream_moved_to_another_view),
        cmocka_unit_test(test_totals_are_counted_across_streams),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
