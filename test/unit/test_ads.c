/* Specification of the ADS client's protocol state machine (xds/ads): what it asks for, how it
 * answers each response (ACK, or NACK with the valid resources applied all the same), what the
 * two modes remove and keep, and what a new stream says. Responses are built with protobuf-c as
 * a management server would send them; requests are decoded from the bytes the client packs.
 * Behaviours the two modes share run in both (test_x_sotw, test_x_delta). */
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
#include "xds/snapshot/resources.h"

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/core/v3/address.pb-c.h"
#include "envoy/config/core/v3/base.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"
#include "google/rpc/status.pb-c.h"

typedef Envoy__Service__Discovery__V3__DiscoveryRequest sotw_request_t;
typedef Envoy__Service__Discovery__V3__DeltaDiscoveryRequest delta_request_t;
typedef Envoy__Config__Cluster__V3__Cluster cluster_t;

/* ---- resources as a server sends them ------------------------------------------------------ */

/* One resource: its name (for a delta Resource) and its Any, both owned. */
typedef struct tres {
    char *name;
    Google__Protobuf__Any *any;
} tres_t;

static tres_t *tres_pack(const char *name, const char *type_url, const ProtobufCMessage *m)
{
    tres_t *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->name = strdup(name);
    r->any = calloc(1, sizeof(*r->any));
    assert_non_null(r->any);
    google__protobuf__any__init(r->any);
    r->any->type_url = strdup(type_url);
    r->any->value.len = protobuf_c_message_get_packed_size(m);
    r->any->value.data = malloc(r->any->value.len + 1);
    protobuf_c_message_pack(m, r->any->value.data);
    return r;
}

static void tres_free(tres_t *r)
{
    free(r->any->type_url);
    free(r->any->value.data);
    free(r->any);
    free(r->name);
    free(r);
}

/* A cluster whose connect_timeout is `seconds` (negative: invalid). */
static tres_t *cluster(const char *name, int64_t seconds)
{
    cluster_t c = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
    Google__Protobuf__Duration d = GOOGLE__PROTOBUF__DURATION__INIT;
    c.name = (char *)name;
    d.seconds = seconds;
    c.connect_timeout = &d;
    return tres_pack(name, ADS_TYPE_CLUSTER, &c.base);
}

static tres_t *listener(const char *name, uint32_t port)
{
    Envoy__Config__Listener__V3__Listener l = ENVOY__CONFIG__LISTENER__V3__LISTENER__INIT;
    Envoy__Config__Core__V3__Address addr = ENVOY__CONFIG__CORE__V3__ADDRESS__INIT;
    Envoy__Config__Core__V3__SocketAddress sa = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__INIT;
    sa.address = "0.0.0.0";
    sa.port_specifier_case = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE;
    sa.port_value = port;
    addr.address_case = ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS;
    addr.socket_address = &sa;
    l.name = (char *)name;
    l.address = &addr;
    return tres_pack(name, ADS_TYPE_LISTENER, &l.base);
}

static tres_t *route(const char *name)
{
    Envoy__Config__Route__V3__RouteConfiguration r =
        ENVOY__CONFIG__ROUTE__V3__ROUTE_CONFIGURATION__INIT;
    r.name = (char *)name;
    return tres_pack(name, ADS_TYPE_ROUTE, &r.base);
}

/* Endpoints of cluster `name`: one endpoint of weight `weight` (0 is invalid), which also tells
 * versions apart. */
static tres_t *endpoints(const char *name, uint32_t weight)
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
    return tres_pack(name, ADS_TYPE_ENDPOINT, &c.base);
}

static tres_t *secret(const char *name)
{
    Envoy__Extensions__TransportSockets__Tls__V3__Secret s =
        ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__INIT;
    s.name = (char *)name;
    return tres_pack(name, ADS_TYPE_SECRET, &s.base);
}

/* An Any of type_url whose bytes are not that message. */
static tres_t *garbage(const char *type_url)
{
    tres_t *r = calloc(1, sizeof(*r));
    r->name = strdup("garbage");
    r->any = calloc(1, sizeof(*r->any));
    google__protobuf__any__init(r->any);
    r->any->type_url = strdup(type_url);
    r->any->value.data = (uint8_t *)strdup("\x0a\xff\xff\xff");
    r->any->value.len = 4;
    return r;
}

/* ---- responses ----------------------------------------------------------------------------- */

static char err[2048];

/* Packs m and hands the bytes to the client. */
static int feed_message(ads_t *a, const ProtobufCMessage *m, ads_result_t *r)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len + 1);
    protobuf_c_message_pack(m, buf);
    err[0] = '\0';
    int rc = ads_on_response(a, buf, len, 1000, r, err, sizeof(err));
    free(buf);
    return rc;
}

/* A response of type with the resources given (a NULL-terminated list, freed): in SotW mode a
 * DiscoveryResponse (version its version_info), in delta mode a DeltaDiscoveryResponse whose
 * Resources carry version, removing the names of `removed` (NULL-terminated; NULL: none). */
static int respond_v(ads_t *a, ads_result_t *r, const char *type, const char *version,
                     const char *nonce, const char *const *removed, va_list ap)
{
    tres_t *res[32];
    size_t n = 0;
    for (tres_t *t; (t = va_arg(ap, tres_t *)) != NULL;)
        res[n++] = t;
    int rc;
    if (ads_mode(a) == ADS_SOTW) {
        Envoy__Service__Discovery__V3__DiscoveryResponse m =
            ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_RESPONSE__INIT;
        Google__Protobuf__Any *anys[32];
        for (size_t i = 0; i < n; i++)
            anys[i] = res[i]->any;
        m.version_info = (char *)version;
        m.type_url = (char *)type;
        m.nonce = (char *)nonce;
        m.n_resources = n;
        m.resources = anys;
        rc = feed_message(a, &m.base, r);
    } else {
        Envoy__Service__Discovery__V3__DeltaDiscoveryResponse m =
            ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_RESPONSE__INIT;
        Envoy__Service__Discovery__V3__Resource rs[32], *prs[32];
        for (size_t i = 0; i < n; i++) {
            envoy__service__discovery__v3__resource__init(&rs[i]);
            rs[i].name = res[i]->name;
            rs[i].version = (char *)version;
            rs[i].resource = res[i]->any;
            prs[i] = &rs[i];
        }
        size_t nremoved = 0;
        while (removed && removed[nremoved])
            nremoved++;
        m.system_version_info = (char *)version;
        m.type_url = (char *)type;
        m.nonce = (char *)nonce;
        m.n_resources = n;
        m.resources = prs;
        m.n_removed_resources = nremoved;
        m.removed_resources = (char **)removed;
        rc = feed_message(a, &m.base, r);
    }
    for (size_t i = 0; i < n; i++)
        tres_free(res[i]);
    return rc;
}

static int respond(ads_t *a, ads_result_t *r, const char *type, const char *version,
                   const char *nonce, ...)
{
    va_list ap;
    va_start(ap, nonce);
    int rc = respond_v(a, r, type, version, nonce, NULL, ap);
    va_end(ap);
    return rc;
}

static int respond_removing(ads_t *a, ads_result_t *r, const char *type, const char *version,
                            const char *nonce, const char *const *removed, ...)
{
    va_list ap;
    va_start(ap, removed);
    int rc = respond_v(a, r, type, version, nonce, removed, ap);
    va_end(ap);
    return rc;
}

/* Responds and checks the client took it with the verdict given. */
#define RESPOND(a, want, ...)                                                                      \
    do {                                                                                           \
        ads_result_t r_;                                                                           \
        assert_int_equal(respond(a, &r_, __VA_ARGS__, NULL), 0);                                   \
        assert_int_equal(r_.verdict, want);                                                        \
        ads_result_free(&r_);                                                                      \
    } while (0)

/* ---- requests ------------------------------------------------------------------------------ */

/* A request of either mode, as the tests look at it; strings point into req. */
typedef struct sent {
    ProtobufCMessage *req;
    const char *type_url, *nonce, *version; /* version: SotW only */
    const char *error;                      /* error_detail.message, or NULL */
    int code;
    bool node;
    char **names; /* SotW resource_names, delta resource_names_subscribe */
    size_t nnames;
    char **unsub; /* delta */
    size_t nunsub;
    Envoy__Service__Discovery__V3__DeltaDiscoveryRequest__InitialResourceVersionsEntry **versions;
    size_t nversions;
} sent_t;

/* The next request the client owes; false when none. */
static bool next_sent(ads_t *a, sent_t *s)
{
    uint8_t *buf;
    size_t len;
    memset(s, 0, sizeof(*s));
    int rc = ads_next_request(a, &buf, &len);
    assert_true(rc >= 0);
    if (rc == 0) {
        assert_null(buf);
        return false;
    }
    if (ads_mode(a) == ADS_SOTW) {
        sotw_request_t *q =
            envoy__service__discovery__v3__discovery_request__unpack(NULL, len, buf);
        assert_non_null(q);
        *s = (sent_t){.req = &q->base,
                      .type_url = q->type_url,
                      .nonce = q->response_nonce,
                      .version = q->version_info,
                      .error = q->error_detail ? q->error_detail->message : NULL,
                      .code = q->error_detail ? q->error_detail->code : 0,
                      .node = q->node != NULL,
                      .names = q->resource_names,
                      .nnames = q->n_resource_names};
    } else {
        delta_request_t *q =
            envoy__service__discovery__v3__delta_discovery_request__unpack(NULL, len, buf);
        assert_non_null(q);
        *s = (sent_t){.req = &q->base,
                      .type_url = q->type_url,
                      .nonce = q->response_nonce,
                      .error = q->error_detail ? q->error_detail->message : NULL,
                      .code = q->error_detail ? q->error_detail->code : 0,
                      .node = q->node != NULL,
                      .names = q->resource_names_subscribe,
                      .nnames = q->n_resource_names_subscribe,
                      .unsub = q->resource_names_unsubscribe,
                      .nunsub = q->n_resource_names_unsubscribe,
                      .versions = q->initial_resource_versions,
                      .nversions = q->n_initial_resource_versions};
    }
    free(buf);
    return true;
}

static void sent_free(sent_t *s)
{
    if (s->req)
        protobuf_c_message_free_unpacked(s->req, NULL);
    memset(s, 0, sizeof(*s));
}

/* The next request, which must exist. */
static sent_t expect_sent(ads_t *a)
{
    sent_t s;
    assert_true(next_sent(a, &s));
    return s;
}

static void expect_no_request(ads_t *a)
{
    sent_t s;
    bool any = next_sent(a, &s);
    if (any)
        fail_msg("unexpected request for %s", s.type_url);
}

/* Sends every request owed (the stream's first ones): nothing is checked. */
static void drain(ads_t *a)
{
    sent_t s;
    while (next_sent(a, &s))
        sent_free(&s);
}

/* The names of s joined by ',' (for one comparison). */
static const char *joined(char **v, size_t n)
{
    static char buf[1024];
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++)
        snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s", i ? "," : "", v[i]);
    return buf;
}

/* ---- clients ------------------------------------------------------------------------------- */

static Envoy__Config__Core__V3__Node test_node = ENVOY__CONFIG__CORE__V3__NODE__INIT;

static ads_t *client(ads_mode_t mode)
{
    test_node.id = "sidecar~10.0.0.1~pod.ns~ns.svc.cluster.local";
    test_node.cluster = "pod.ns";
    ads_opts_t opts = {.mode = mode};
    ads_t *a = ads_new(&test_node, &opts);
    assert_non_null(a);
    return a;
}

static void subscribe(ads_t *a, const char *type, const char *const *names, size_t n)
{
    assert_true(ads_subscribe(a, type, names, n) >= 0);
}

/* A client subscribed to every cluster, whose first request has gone. */
static ads_t *cds_client(ads_mode_t mode)
{
    ads_t *a = client(mode);
    subscribe(a, ADS_TYPE_CLUSTER, NULL, 0);
    drain(a);
    return a;
}

/* A client asking for the endpoints of names[0..n), first request gone. */
static ads_t *eds_client(ads_mode_t mode, const char *const *names, size_t n)
{
    ads_t *a = client(mode);
    subscribe(a, ADS_TYPE_ENDPOINT, names, n);
    drain(a);
    return a;
}

static const ProtobufCMessage *held(ads_t *a, const char *type, const char *name)
{
    ads_resource_info_t info;
    if (ads_find(a, type, name, &info) < 0)
        return NULL;
    return info.msg;
}

static int64_t timeout_of(ads_t *a, const char *name)
{
    const cluster_t *c = (const cluster_t *)held(a, ADS_TYPE_CLUSTER, name);
    assert_non_null(c);
    return c->connect_timeout->seconds;
}

#define BOTH_MODES(fn)                                                                             \
    static void fn##_sotw(void **state)                                                            \
    {                                                                                              \
        (void)state;                                                                               \
        fn(ADS_SOTW);                                                                              \
    }                                                                                              \
    static void fn##_delta(void **state)                                                           \
    {                                                                                              \
        (void)state;                                                                               \
        fn(ADS_DELTA);                                                                             \
    }
#define BOTH(fn) cmocka_unit_test(fn##_sotw), cmocka_unit_test(fn##_delta)

/* ---- both modes ---------------------------------------------------------------------------- */

static void first_requests_go_in_envoys_order(ads_mode_t mode)
{
    ads_t *a = client(mode);
    const char *routes[] = {"r1"}, *eps[] = {"c1"}, *secrets[] = {"s1"};
    subscribe(a, ADS_TYPE_SECRET, secrets, 1);
    subscribe(a, ADS_TYPE_LISTENER, NULL, 0);
    subscribe(a, ADS_TYPE_ROUTE, routes, 1);
    subscribe(a, ADS_TYPE_ENDPOINT, eps, 1);
    subscribe(a, ADS_TYPE_CLUSTER, NULL, 0);
    const char *order[] = {ADS_TYPE_CLUSTER, ADS_TYPE_ENDPOINT, ADS_TYPE_LISTENER, ADS_TYPE_ROUTE,
                           ADS_TYPE_SECRET};
    const char *names[] = {"", "c1", "", "r1", "s1"};
    for (size_t i = 0; i < 5; i++) {
        sent_t s = expect_sent(a);
        assert_string_equal(s.type_url, order[i]);
        assert_string_equal(joined(s.names, s.nnames), names[i]);
        assert_string_equal(s.nonce, "");
        assert_null(s.error);
        assert_true(s.node);
        sent_free(&s);
    }
    expect_no_request(a);
    ads_free(a);
}
BOTH_MODES(first_requests_go_in_envoys_order)

static void valid_response_is_acked_with_its_nonce(ads_mode_t mode)
{
    ads_t *a = cds_client(mode);
    ads_result_t r;
    assert_int_equal(
        respond(a, &r, ADS_TYPE_CLUSTER, "v1", "n1", cluster("a", 1), cluster("b", 2), NULL), 0);
    assert_int_equal(r.verdict, ADS_ACKED);
    assert_string_equal(r.type_url, ADS_TYPE_CLUSTER);
    assert_string_equal(joined(r.added.v, r.added.n), "a,b");
    assert_true(ads_result_changed(&r));
    assert_null(r.error);
    ads_result_free(&r);
    sent_t s = expect_sent(a);
    assert_string_equal(s.type_url, ADS_TYPE_CLUSTER);
    assert_string_equal(s.nonce, "n1");
    assert_null(s.error);
    if (mode == ADS_SOTW)
        assert_string_equal(s.version, "v1");
    sent_free(&s);
    expect_no_request(a);
    assert_int_equal(timeout_of(a, "b"), 2);
    ads_type_status_t st;
    assert_int_equal(ads_type_status(a, ADS_TYPE_CLUSTER, &st), 0);
    assert_string_equal(st.version_info, "v1");
    assert_string_equal(st.nonce, "n1");
    assert_int_equal(st.resources, 2);
    assert_true(st.wildcard);
    ads_free(a);
}
BOTH_MODES(valid_response_is_acked_with_its_nonce)

static void nack_applies_the_valid_resources_and_names_the_bad_one(ads_mode_t mode)
{
    ads_t *a = cds_client(mode);
    RESPOND(a, ADS_ACKED, ADS_TYPE_CLUSTER, "v1", "n1", cluster("a", 1));
    drain(a);
    ads_result_t r;
    assert_int_equal(respond(a, &r, ADS_TYPE_CLUSTER, "v2", "n2", cluster("a", 5),
                             cluster("bad", -1), cluster("c", 3), NULL),
                     0);
    assert_int_equal(r.verdict, ADS_NACKED);
    assert_string_equal(joined(r.updated.v, r.updated.n), "a");
    assert_string_equal(joined(r.added.v, r.added.n), "c");
    assert_string_equal(joined(r.rejected.v, r.rejected.n), "bad");
    assert_string_equal(r.error, "cds['bad'].connect_timeout: duration must not be negative");
    ads_result_free(&r);
    assert_int_equal(timeout_of(a, "a"), 5);
    assert_int_equal(timeout_of(a, "c"), 3);
    assert_null(held(a, ADS_TYPE_CLUSTER, "bad"));

    sent_t s = expect_sent(a);
    assert_string_equal(s.nonce, "n2");
    assert_int_equal(s.code, 3); /* INVALID_ARGUMENT */
    assert_string_equal(s.error, "cds['bad'].connect_timeout: duration must not be negative");
    if (mode == ADS_SOTW)
        assert_string_equal(s.version, "v1"); /* the last good version, not v2 */
    sent_free(&s);
    expect_no_request(a);

    ads_resource_info_t info;
    assert_int_equal(ads_find(a, ADS_TYPE_CLUSTER, "bad", &info), 0);
    assert_null(info.msg);
    assert_string_equal(info.error, "cds['bad'].connect_timeout: duration must not be negative");
    assert_string_equal(info.error_version, "v2");
    ads_type_status_t st;
    ads_type_status(a, ADS_TYPE_CLUSTER, &st);
    assert_string_equal(st.version_info, "v1");
    assert_non_null(st.last_error);
    ads_free(a);
}
BOTH_MODES(nack_applies_the_valid_resources_and_names_the_bad_one)

static void rejected_update_keeps_the_last_good_message(ads_mode_t mode)
{
    ads_t *a = cds_client(mode);
    RESPOND(a, ADS_ACKED, ADS_TYPE_CLUSTER, "v1", "n1", cluster("b", 1));
    RESPOND(a, ADS_NACKED, ADS_TYPE_CLUSTER, "v2", "n2", cluster("b", -4));
    ads_resource_info_t info;
    assert_int_equal(ads_find(a, ADS_TYPE_CLUSTER, "b", &info), 0);
    assert_int_equal(((const cluster_t *)info.msg)->connect_timeout->seconds, 1);
    assert_string_equal(info.version, "v1");
    assert_string_equal(info.error_version, "v2");
    assert_non_null(strstr(info.error, "cds['b'].connect_timeout"));

    ads_result_t r;
    assert_int_equal(respond(a, &r, ADS_TYPE_CLUSTER, "v3", "n3", cluster("b", 2), NULL), 0);
    assert_int_equal(r.verdict, ADS_ACKED);
    assert_string_equal(joined(r.updated.v, r.updated.n), "b");
    ads_result_free(&r);
    assert_int_equal(ads_find(a, ADS_TYPE_CLUSTER, "b", &info), 0);
    assert_null(info.error);
    assert_string_equal(info.version, "v3");
    assert_int_equal(timeout_of(a, "b"), 2);
    ads_free(a);
}
BOTH_MODES(rejected_update_keeps_the_last_good_message)

static void unsubscribed_names_are_ignored(ads_mode_t mode)
{
    const char *names[] = {"a"};
    ads_t *a = eds_client(mode, names, 1);
    ads_result_t r;
    assert_int_equal(respond(a, &r, ADS_TYPE_ENDPOINT, "v1", "n1", endpoints("a", 1),
                             endpoints("z", 0) /* invalid, but not ours */, NULL),
                     0);
    assert_int_equal(r.verdict, ADS_ACKED);
    assert_string_equal(joined(r.added.v, r.added.n), "a");
    assert_int_equal(r.rejected.n, 0);
    ads_result_free(&r);
    assert_non_null(held(a, ADS_TYPE_ENDPOINT, "a"));
    ads_resource_info_t info;
    assert_int_equal(ads_find(a, ADS_TYPE_ENDPOINT, "z", &info), -ENOENT);
    drain(a);
    RESPOND(a, ADS_ACKED, ADS_TYPE_ENDPOINT, "v2", "n2", endpoints("z", 1));
    assert_int_equal(ads_find(a, ADS_TYPE_ENDPOINT, "z", &info), -ENOENT);
    ads_free(a);
}
BOTH_MODES(unsubscribed_names_are_ignored)

static void duplicate_names_are_rejected_and_named_once(ads_mode_t mode)
{
    ads_t *a = cds_client(mode);
    ads_result_t r;
    assert_int_equal(respond(a, &r, ADS_TYPE_CLUSTER, "v1", "n1", cluster("a", 1), cluster("b", 1),
                             cluster("a", 2), NULL),
                     0);
    assert_int_equal(r.verdict, ADS_NACKED);
    assert_string_equal(joined(r.added.v, r.added.n), "b");
    assert_string_equal(joined(r.rejected.v, r.rejected.n), "a");
    assert_string_equal(r.error, "cds['a']: the name appears 2 times in the response");
    ads_result_free(&r);
    assert_null(held(a, ADS_TYPE_CLUSTER, "a"));
    ads_free(a);
}
BOTH_MODES(duplicate_names_are_rejected_and_named_once)

static void resource_of_another_type_is_rejected_alone(ads_mode_t mode)
{
    ads_t *a = cds_client(mode);
    ads_result_t r;
    assert_int_equal(respond(a, &r, ADS_TYPE_CLUSTER, "v1", "n1", cluster("a", 1),
                             listener("l", 80), garbage(ADS_TYPE_CLUSTER), NULL),
                     0);
    assert_int_equal(r.verdict, ADS_NACKED);
    assert_string_equal(joined(r.added.v, r.added.n), "a");
    assert_non_null(r.error);
    /* Both bad ones are named by their place (in delta, by their Resource's name). */
    if (mode == ADS_SOTW) {
        assert_non_null(strstr(r.error, "cds resources[1]: Any holds "
                                        "'type.googleapis.com/envoy.config.listener.v3.Listener'"));
        assert_non_null(strstr(r.error, "cds resources[2]: Any of type "));
    } else {
        assert_non_null(strstr(r.error, "cds['l']: Any holds"));
        assert_non_null(strstr(r.error, "cds['garbage']: Any of type "));
    }
    ads_result_free(&r);
    ads_free(a);
}
BOTH_MODES(resource_of_another_type_is_rejected_alone)

static void malformed_response_is_a_stream_error(ads_mode_t mode)
{
    ads_t *a = cds_client(mode);
    RESPOND(a, ADS_ACKED, ADS_TYPE_CLUSTER, "v1", "n1", cluster("a", 1));
    drain(a);
    const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
    ads_result_t r;
    assert_int_equal(ads_on_response(a, junk, sizeof(junk), 1, &r, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "does not decode"));
    assert_null(r.type_url);
    assert_int_equal(r.added.n + r.updated.n + r.removed.n, 0);
    expect_no_request(a);
    assert_int_equal(timeout_of(a, "a"), 1);
    ads_type_status_t st;
    ads_type_status(a, ADS_TYPE_CLUSTER, &st);
    assert_string_equal(st.nonce, "n1");
    ads_free(a);
}
BOTH_MODES(malformed_response_is_a_stream_error)

static void response_for_a_type_not_subscribed_is_ignored(ads_mode_t mode)
{
    ads_t *a = cds_client(mode);
    ads_result_t r;
    assert_int_equal(respond(a, &r, ADS_TYPE_ROUTE, "v1", "n1", route("r"), NULL), 0);
    assert_int_equal(r.verdict, ADS_IGNORED);
    assert_string_equal(r.type_url, ADS_TYPE_ROUTE);
    ads_result_free(&r);
    assert_int_equal(
        respond(a, &r, "type.googleapis.com/envoy.config.core.v3.Node", "v1", "n1", NULL), 0);
    assert_int_equal(r.verdict, ADS_IGNORED);
    assert_null(r.type_url);
    ads_result_free(&r);
    expect_no_request(a);
    ads_free(a);
}
BOTH_MODES(response_for_a_type_not_subscribed_is_ignored)

static void unchanged_resend_changes_nothing(ads_mode_t mode)
{
    ads_t *a = cds_client(mode);
    RESPOND(a, ADS_ACKED, ADS_TYPE_CLUSTER, "v1", "n1", cluster("a", 1), cluster("b", 1));
    drain(a);
    ads_result_t r;
    assert_int_equal(
        respond(a, &r, ADS_TYPE_CLUSTER, "v2", "n2", cluster("a", 1), cluster("b", 1), NULL), 0);
    assert_int_equal(r.verdict, ADS_ACKED);
    assert_false(ads_result_changed(&r));
    ads_result_free(&r);
    sent_t s = expect_sent(a); /* still answered */
    assert_string_equal(s.nonce, "n2");
    sent_free(&s);
    ads_resource_info_t info;
    ads_find(a, ADS_TYPE_CLUSTER, "a", &info);
    assert_string_equal(info.version, "v2");
    ads_free(a);
}
BOTH_MODES(unchanged_resend_changes_nothing)

/* The caller's hook: refuses route configurations whose name starts with "bad". */
static int refuse_bad(void *ctx, const char *type_url, const ProtobufCMessage *msg, char *e,
                      size_t elen)
{
    int *calls = ctx;
    (*calls)++;
    const Envoy__Config__Route__V3__RouteConfiguration *rc = (const void *)msg;
    if (strcmp(type_url, ADS_TYPE_ROUTE) == 0 && strncmp(rc->name, "bad", 3) == 0) {
        snprintf(e, elen, "virtual_hosts: trial build failed");
        return -EINVAL;
    }
    return 0;
}

static void hook_rejects_a_resource_by_name(ads_mode_t mode)
{
    int calls = 0;
    ads_opts_t opts = {.mode = mode, .validate = refuse_bad, .validate_ctx = &calls};
    ads_t *a = ads_new(NULL, &opts);
    const char *names[] = {"bad1", "good"};
    subscribe(a, ADS_TYPE_ROUTE, names, 2);
    sent_t s = expect_sent(a);
    assert_false(s.node); /* no node given, none sent */
    sent_free(&s);
    ads_result_t r;
    assert_int_equal(respond(a, &r, ADS_TYPE_ROUTE, "v1", "n1", route("good"), route("bad1"), NULL),
                     0);
    assert_int_equal(r.verdict, ADS_NACKED);
    assert_string_equal(r.error, "rds['bad1']: virtual_hosts: trial build failed");
    ads_result_free(&r);
    assert_int_equal(calls, 2);
    assert_non_null(held(a, ADS_TYPE_ROUTE, "good"));
    ads_free(a);
}
BOTH_MODES(hook_rejects_a_resource_by_name)

static void huge_name_is_rejected_cleanly(ads_mode_t mode)
{
    ads_t *a = cds_client(mode);
    char *name = malloc(ADS_NAME_MAX + 2);
    memset(name, 'x', ADS_NAME_MAX + 1);
    name[ADS_NAME_MAX + 1] = '\0';
    ads_result_t r;
    assert_int_equal(
        respond(a, &r, ADS_TYPE_CLUSTER, "v1", "n1", cluster(name, 1), cluster("ok", 1), NULL), 0);
    assert_int_equal(r.verdict, ADS_NACKED);
    assert_string_equal(joined(r.added.v, r.added.n), "ok");
    assert_non_null(strstr(r.error, "is longer than 4096 bytes"));
    assert_true(strlen(r.error) < 300);
    ads_result_free(&r);
    assert_int_equal(ads_subscribe(a, ADS_TYPE_CLUSTER, (const char *const *)&name, 1), -EINVAL);
    free(name);
    ads_free(a);
}
BOTH_MODES(huge_name_is_rejected_cleanly)

static void nack_message_is_capped(ads_mode_t mode)
{
    ads_t *a = cds_client(mode);
    char names[30][300];
    tres_t *bad[30];
    for (int i = 0; i < 30; i++) {
        snprintf(names[i], sizeof(names[i]), "cluster-%02d-%0250d", i, 0);
        bad[i] = cluster(names[i], -1);
    }
    ads_result_t r;
    assert_int_equal(respond(a, &r, ADS_TYPE_CLUSTER, "v1", "n1", bad[0], bad[1], bad[2], bad[3],
                             bad[4], bad[5], bad[6], bad[7], bad[8], bad[9], bad[10], bad[11],
                             bad[12], bad[13], bad[14], bad[15], bad[16], bad[17], bad[18], bad[19],
                             bad[20], bad[21], bad[22], bad[23], bad[24], bad[25], bad[26], bad[27],
                             bad[28], bad[29], NULL),
                     0);
    assert_true(strlen(r.error) <= ADS_ERROR_MAX);
    assert_non_null(strstr(r.error, " more rejected"));
    assert_int_equal(r.rejected.n, 30);
    ads_result_free(&r);
    ads_free(a);
}
BOTH_MODES(nack_message_is_capped)

static void node_goes_in_every_request_by_default(ads_mode_t mode)
{
    ads_t *a = client(mode);
    subscribe(a, ADS_TYPE_CLUSTER, NULL, 0);
    subscribe(a, ADS_TYPE_LISTENER, NULL, 0);
    for (int i = 0; i < 2; i++) {
        sent_t s = expect_sent(a);
        assert_true(s.node);
        sent_free(&s);
    }
    RESPOND(a, ADS_ACKED, ADS_TYPE_CLUSTER, "v1", "n1", cluster("a", 1));
    sent_t s = expect_sent(a);
    assert_true(s.node);
    const Envoy__Config__Core__V3__Node *node =
        mode == ADS_SOTW ? ((sotw_request_t *)s.req)->node : ((delta_request_t *)s.req)->node;
    assert_string_equal(node->id, "sidecar~10.0.0.1~pod.ns~ns.svc.cluster.local");
    assert_string_equal(node->cluster, "pod.ns");
    sent_free(&s);
    ads_free(a);
}
BOTH_MODES(node_goes_in_every_request_by_default)

static void node_only_in_each_streams_first_message(ads_mode_t mode)
{
    ads_opts_t opts = {.mode = mode, .node_on_first_message_only = true};
    ads_t *a = ads_new(&test_node, &opts);
    subscribe(a, ADS_TYPE_CLUSTER, NULL, 0);
    subscribe(a, ADS_TYPE_LISTENER, NULL, 0);
    sent_t s = expect_sent(a);
    assert_true(s.node);
    sent_free(&s);
    s = expect_sent(a);
    assert_false(s.node);
    sent_free(&s);
    RESPOND(a, ADS_ACKED, ADS_TYPE_CLUSTER, "v1", "n1", cluster("a", 1));
    s = expect_sent(a);
    assert_false(s.node);
    sent_free(&s);
    ads_reconnected(a);
    s = expect_sent(a);
    assert_string_equal(s.type_url, ADS_TYPE_CLUSTER);
    assert_true(s.node);
    sent_free(&s);
    s = expect_sent(a);
    assert_false(s.node);
    sent_free(&s);
    expect_no_request(a);
    ads_free(a);
}
BOTH_MODES(node_only_in_each_streams_first_message)

static void resources_fill_the_set_sorted_and_named(ads_mode_t mode)
{
    ads_t *a = client(mode);
    const char *eps[] = {"e1"}, *routes[] = {"r1"}, *secrets[] = {"s1"};
    subscribe(a, ADS_TYPE_CLUSTER, NULL, 0);
    subscribe(a, ADS_TYPE_LISTENER, NULL, 0);
    subscribe(a, ADS_TYPE_ENDPOINT, eps, 1);
    subscribe(a, ADS_TYPE_ROUTE, routes, 1);
    subscribe(a, ADS_TYPE_SECRET, secrets, 1);
    drain(a);
    RESPOND(a, ADS_ACKED, ADS_TYPE_CLUSTER, "v1", "n1", cluster("zeta", 1), cluster("alpha", 1));
    RESPOND(a, ADS_ACKED, ADS_TYPE_LISTENER, "v1", "n2", listener("l", 8080));
    RESPOND(a, ADS_ACKED, ADS_TYPE_ENDPOINT, "v1", "n3", endpoints("e1", 1));
    RESPOND(a, ADS_ACKED, ADS_TYPE_ROUTE, "v1", "n4", route("r1"));
    RESPOND(a, ADS_ACKED, ADS_TYPE_SECRET, "v1", "n5", secret("s1"));
    config_resources_t res = {0};
    assert_int_equal(ads_resources(a, &res), 0);
    assert_int_equal(res.clusters.n, 2);
    assert_string_equal(res.clusters.v[0].name, "alpha");
    assert_string_equal(res.clusters.v[1].name, "zeta");
    assert_string_equal(res.clusters.v[1].origin, "cds");
    assert_int_equal(res.clusters.v[1].index, 1);
    assert_string_equal(((cluster_t *)res.clusters.v[1].msg)->name, "zeta");
    /* Each with its holder, which the snapshot built from the set keeps by reference. */
    assert_non_null(res.clusters.v[1].kept);
    assert_ptr_equal(res.clusters.v[1].kept->msg, res.clusters.v[1].msg);
    assert_string_equal(res.clusters.v[1].kept->name, "zeta");
    assert_int_equal(res.listeners.n, 1);
    assert_int_equal(res.endpoints.n, 1);
    assert_int_equal(res.route_configs.n, 1);
    assert_int_equal(res.secrets.n, 1);
    char where[64];
    assert_string_equal(config_resource_where(&res.listeners.v[0], where, sizeof(where)),
                        "lds['l']");
    assert_int_equal(config_resources_validate(&res, err, sizeof(err)), 0);
    config_resources_free(&res);
    ads_free(a);
}
BOTH_MODES(resources_fill_the_set_sorted_and_named)

static void dump_lists_held_rejected_and_requested(ads_mode_t mode)
{
    const char *names[] = {"a", "b", "c"};
    ads_t *a = eds_client(mode, names, 3);
    RESPOND(a, ADS_ACKED, ADS_TYPE_ENDPOINT, "v1", "n1", endpoints("a", 1));
    /* b: an endpoint of weight 0 is refused (load_balancing_weight must be at least 1). */
    RESPOND(a, ADS_NACKED, ADS_TYPE_ENDPOINT, "v2", "n2", endpoints("b", 0));
    ads_resource_info_t *info;
    size_t n;
    assert_int_equal(ads_dump(a, ADS_TYPE_ENDPOINT, &info, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(info[0].name, "a");
    assert_non_null(info[0].msg);
    assert_string_equal(info[0].version, "v1");
    assert_int_equal(info[0].updated_ms, 1000);
    assert_null(info[0].error);
    assert_string_equal(info[1].name, "b");
    assert_null(info[1].msg);
    assert_non_null(
        strstr(info[1].error, "eds['b'].endpoints[0].lb_endpoints[0].load_balancing_weight"));
    assert_string_equal(info[1].error_version, "v2");
    assert_int_equal(info[1].error_ms, 1000);
    assert_string_equal(info[2].name, "c"); /* asked for, not received */
    assert_null(info[2].msg);
    assert_null(info[2].error);
    free(info);
    assert_int_equal(ads_dump(a, "type.googleapis.com/nope", &info, &n), -EINVAL);
    ads_free(a);
}
BOTH_MODES(dump_lists_held_rejected_and_requested)

static void unsubscribing_a_name_drops_its_resource(ads_mode_t mode)
{
    const char *names[] = {"a", "b"};
    ads_t *a = eds_client(mode, names, 2);
    RESPOND(a, ADS_ACKED, ADS_TYPE_ENDPOINT, "v1", "n1", endpoints("a", 1), endpoints("b", 1));
    drain(a);
    assert_int_equal(ads_subscribe(a, ADS_TYPE_ENDPOINT, names, 1), 1);
    assert_null(held(a, ADS_TYPE_ENDPOINT, "b"));
    config_resources_t res = {0};
    assert_int_equal(ads_resources(a, &res), 0);
    assert_int_equal(res.endpoints.n, 1);
    config_resources_free(&res);
    sent_t s = expect_sent(a);
    if (mode == ADS_SOTW) {
        assert_string_equal(joined(s.names, s.nnames), "a");
        assert_string_equal(s.version, "v1");
        assert_string_equal(s.nonce, "n1");
    } else {
        assert_int_equal(s.nnames, 0);
        assert_string_equal(joined(s.unsub, s.nunsub), "b");
    }
    sent_free(&s);
    expect_no_request(a);
    /* Subscribing the same set again owes nothing. */
    assert_int_equal(ads_subscribe(a, ADS_TYPE_ENDPOINT, names, 1), 0);
    expect_no_request(a);
    ads_free(a);
}
BOTH_MODES(unsubscribing_a_name_drops_its_resource)

/* The names subscribed given again, in another order or with one twice, are the same
 * subscription: nothing is owed. A name added later takes its place among them by name. */
static void resubscribing_the_same_names_owes_nothing(ads_mode_t mode)
{
    const char *names[] = {"b", "d"}, *again[] = {"d", "b", "d"}, *more[] = {"d", "c", "b"};
    ads_t *a = eds_client(mode, names, 2);
    assert_int_equal(ads_subscribe(a, ADS_TYPE_ENDPOINT, names, 2), 0);
    expect_no_request(a);
    assert_int_equal(ads_subscribe(a, ADS_TYPE_ENDPOINT, again, 3), 0);
    expect_no_request(a);
    subscribe(a, ADS_TYPE_ENDPOINT, more, 3);
    sent_t s = expect_sent(a);
    assert_string_equal(joined(s.names, s.nnames), mode == ADS_SOTW ? "b,c,d" : "c");
    sent_free(&s);
    expect_no_request(a);
    ads_free(a);
}
BOTH_MODES(resubscribing_the_same_names_owes_nothing)

static void subscribe_refuses_bad_arguments(ads_mode_t mode)
{
    ads_t *a = client(mode);
    const char *star[] = {"*"}, *empty[] = {""}, *null[] = {NULL};
    assert_int_equal(ads_subscribe(a, "type.googleapis.com/x.Y", NULL, 0), -EINVAL);
    assert_int_equal(ads_subscribe(a, ADS_TYPE_ROUTE, star, 1), -EINVAL);
    assert_int_equal(ads_subscribe(a, ADS_TYPE_ROUTE, empty, 1), -EINVAL);
    assert_int_equal(ads_subscribe(a, ADS_TYPE_ROUTE, null, 1), -EINVAL);
    expect_no_request(a);
    ads_free(a);
}
BOTH_MODES(subscribe_refuses_bad_arguments)

/* ---- state of the world -------------------------------------------------------------------- */

static void test_sotw_cluster_response_is_the_full_set(void **state)
{
    (void)state;
    ads_t *a = cds_client(ADS_SOTW);
    RESPOND(a, ADS_ACKED, ADS_TYPE_CLUSTER, "v1", "n1", cluster("a", 1), cluster("b", 1),
            cluster("c", 1));
    ads_result_t r;
    assert_int_equal(respond(a, &r, ADS_TYPE_CLUSTER, "v2", "n2", cluster("a", 1), NULL), 0);
    assert_string_equal(joined(r.removed.v, r.removed.n), "b,c");
    assert_true(ads_result_changed(&r));
    ads_result_free(&r);
    assert_null(held(a, ADS_TYPE_CLUSTER, "b"));
    ads_resource_info_t info;
    assert_int_equal(ads_find(a, ADS_TYPE_CLUSTER, "c", &info), -ENOENT);
    ads_free(a);
}

static void test_sotw_listener_response_removes_a_rejected_name_it_leaves_out(void **state)
{
    (void)state;
    ads_t *a = client(ADS_SOTW);
    subscribe(a, ADS_TYPE_LISTENER, NULL, 0);
    drain(a);
    RESPOND(a, ADS_NACKED, ADS_TYPE_LISTENER, "v1", "n1", listener("ok", 80),
            listener("bad", 70000));
    ads_resource_info_t info;
    assert_int_equal(ads_find(a, ADS_TYPE_LISTENER, "bad", &info), 0);
    assert_non_null(info.error);
    RESPOND(a, ADS_ACKED, ADS_TYPE_LISTENER, "v2", "n2", listener("ok", 80));
    assert_int_equal(ads_find(a, ADS_TYPE_LISTENER, "bad", &info), -ENOENT);
    ads_type_status_t st;
    ads_type_status(a, ADS_TYPE_LISTENER, &st);
    assert_null(st.last_error);
    assert_string_equal(st.version_info, "v2");
    ads_free(a);
}

static void test_sotw_endpoint_and_route_responses_keep_absent_names(void **state)
{
    (void)state;
    const char *names[] = {"a", "b"};
    ads_t *a = eds_client(ADS_SOTW, names, 2);
    RESPOND(a, ADS_ACKED, ADS_TYPE_ENDPOINT, "v1", "n1", endpoints("a", 1), endpoints("b", 1));
    ads_result_t r;
    assert_int_equal(respond(a, &r, ADS_TYPE_ENDPOINT, "v2", "n2", endpoints("a", 2), NULL), 0);
    assert_int_equal(r.removed.n, 0);
    assert_string_equal(joined(r.updated.v, r.updated.n), "a");
    ads_result_free(&r);
    assert_non_null(held(a, ADS_TYPE_ENDPOINT, "b"));
    ads_free(a);

    a = client(ADS_SOTW);
    subscribe(a, ADS_TYPE_ROUTE, names, 2);
    drain(a);
    RESPOND(a, ADS_ACKED, ADS_TYPE_ROUTE, "v1", "n1", route("a"), route("b"));
    RESPOND(a, ADS_ACKED, ADS_TYPE_ROUTE, "v2", "n2", route("b"));
    assert_non_null(held(a, ADS_TYPE_ROUTE, "a"));
    ads_free(a);
}

static void test_sotw_nameless_rejection_removes_nothing(void **state)
{
    (void)state;
    ads_t *a = cds_client(ADS_SOTW);
    RESPOND(a, ADS_ACKED, ADS_TYPE_CLUSTER, "v1", "n1", cluster("a", 1), cluster("b", 1));
    ads_result_t r;
    assert_int_equal(respond(a, &r, ADS_TYPE_CLUSTER, "v2", "n2", cluster("a", 1),
                             garbage(ADS_TYPE_CLUSTER), NULL),
                     0);
    /* The garbage might have been b: b stays. */
    assert_int_equal(r.verdict, ADS_NACKED);
    assert_int_equal(r.removed.n, 0);
    ads_result_free(&r);
    assert_non_null(held(a, ADS_TYPE_CLUSTER, "b"));
    ads_free(a);
}

static void test_sotw_requests_carry_the_latest_nonce_and_last_acked_version(void **state)
{
    (void)state;
    const char *names[] = {"a"}, *more[] = {"a", "b"};
    ads_t *a = eds_client(ADS_SOTW, names, 1);
    RESPOND(a, ADS_ACKED, ADS_TYPE_ENDPOINT, "v1", "n1", endpoints("a", 1));
    RESPOND(a, ADS_NACKED, ADS_TYPE_ENDPOINT, "v2", "n2", endpoints("a", 0));
    /* Two responses before the client could send: one request, for the newest. */
    sent_t s = expect_sent(a);
    assert_string_equal(s.nonce, "n2");
    assert_string_equal(s.version, "v1");
    assert_non_null(s.error);
    sent_free(&s);
    expect_no_request(a);
    /* A subscription change is no NACK: no error_detail, the same nonce and version. */
    subscribe(a, ADS_TYPE_ENDPOINT, more, 2);
    s = expect_sent(a);
    assert_string_equal(joined(s.names, s.nnames), "a,b");
    assert_string_equal(s.nonce, "n2");
    assert_string_equal(s.version, "v1");
    assert_null(s.error);
    sent_free(&s);
    ads_free(a);
}

static void test_sotw_reconnect_sends_last_acked_version_without_nonce(void **state)
{
    (void)state;
    ads_t *a = client(ADS_SOTW);
    const char *names[] = {"r1", "r2"};
    subscribe(a, ADS_TYPE_LISTENER, NULL, 0);
    subscribe(a, ADS_TYPE_ROUTE, names, 2);
    subscribe(a, ADS_TYPE_SECRET, NULL, 0); /* nothing named: never asked for */
    drain(a);
    RESPOND(a, ADS_ACKED, ADS_TYPE_LISTENER, "lv1", "n1", listener("l", 80));
    RESPOND(a, ADS_ACKED, ADS_TYPE_ROUTE, "rv1", "n2", route("r1"));
    RESPOND(a, ADS_NACKED, ADS_TYPE_LISTENER, "lv2", "n3", listener("l", 70000));
    ads_reconnected(a);
    sent_t s = expect_sent(a);
    assert_string_equal(s.type_url, ADS_TYPE_LISTENER);
    assert_string_equal(s.version, "lv1");
    assert_string_equal(s.nonce, "");
    assert_null(s.error); /* the NACK was for the old stream */
    assert_int_equal(s.nnames, 0);
    sent_free(&s);
    s = expect_sent(a);
    assert_string_equal(s.type_url, ADS_TYPE_ROUTE);
    assert_string_equal(s.version, "rv1");
    assert_string_equal(s.nonce, "");
    assert_string_equal(joined(s.names, s.nnames), "r1,r2");
    sent_free(&s);
    expect_no_request(a);
    assert_non_null(held(a, ADS_TYPE_ROUTE, "r1")); /* what it holds stays */
    ads_free(a);
}

static void test_sotw_unsubscribing_every_name_sends_an_empty_list(void **state)
{
    (void)state;
    const char *names[] = {"a"};
    ads_t *a = eds_client(ADS_SOTW, names, 1);
    assert_int_equal(ads_subscribe(a, ADS_TYPE_ENDPOINT, NULL, 0), 0);
    sent_t s = expect_sent(a);
    assert_string_equal(s.type_url, ADS_TYPE_ENDPOINT);
    assert_int_equal(s.nnames, 0);
    sent_free(&s);
    /* After a new stream an empty list would read as a wildcard: nothing goes. */
    ads_reconnected(a);
    expect_no_request(a);
    ads_free(a);
}

static void test_sotw_wildcard_with_names_asks_for_star(void **state)
{
    (void)state;
    ads_t *a = cds_client(ADS_SOTW);
    const char *names[] = {"on-demand"};
    subscribe(a, ADS_TYPE_CLUSTER, names, 1);
    sent_t s = expect_sent(a);
    assert_string_equal(joined(s.names, s.nnames), "*,on-demand");
    sent_free(&s);
    ads_free(a);
}

/* The next request's bytes (new, the caller's) and its decoding (*q, new); fails without one. */
static uint8_t *raw_request(ads_t *a, size_t *len, sotw_request_t **q)
{
    uint8_t *buf;
    assert_int_equal(ads_next_request(a, &buf, len), 1);
    *q = envoy__service__discovery__v3__discovery_request__unpack(NULL, *len, buf);
    assert_non_null(*q);
    return buf;
}

/* Whether buf (len bytes) is what protobuf-c packs for q (borrowed): the same fields in the
 * same order. */
static bool packs_alike(const uint8_t *buf, size_t len, const sotw_request_t *q)
{
    size_t n = protobuf_c_message_get_packed_size(&q->base);
    uint8_t *again = malloc(n ? n : 1);
    protobuf_c_message_pack(&q->base, again);
    bool same = n == len && memcmp(again, buf, n) == 0;
    free(again);
    return same;
}

/* A SotW request's names are encoded when they change and reused while they stay (every ACK of
 * an endpoint update names every assignment): each request reads as protobuf-c would pack it,
 * with the names of the moment, after a new stream, a change of names and a NACK alike. */
static void test_sotw_requests_name_the_subscription_of_the_moment(void **state)
{
    (void)state;
    char long_name[300];
    memset(long_name, 'x', sizeof(long_name) - 1); /* a length of two varint bytes */
    long_name[sizeof(long_name) - 1] = '\0';
    const char *names[] = {"a", "b", long_name}, *fewer[] = {"a", long_name};
    ads_t *a = eds_client(ADS_SOTW, names, 3);
    for (int round = 0; round < 6; round++) {
        if (round == 1)
            RESPOND(a, ADS_NACKED, ADS_TYPE_ENDPOINT, "v2", "n2", endpoints("a", 0));
        else if (round == 3)
            subscribe(a, ADS_TYPE_ENDPOINT, fewer, 2);
        else if (round == 4)
            ads_reconnected(a);
        else
            RESPOND(a, ADS_ACKED, ADS_TYPE_ENDPOINT, "v1", round ? "n3" : "n1", endpoints("a", 1));
        size_t len;
        sotw_request_t *q;
        uint8_t *buf = raw_request(a, &len, &q);
        assert_true(packs_alike(buf, len, q));
        bool three = round < 3;
        assert_int_equal(q->n_resource_names, three ? 3 : 2);
        assert_string_equal(q->resource_names[0], "a");
        assert_string_equal(q->resource_names[three ? 2 : 1], long_name);
        if (three)
            assert_string_equal(q->resource_names[1], "b");
        assert_string_equal(q->version_info, "v1");
        assert_true((q->error_detail != NULL) == (round == 1));
        assert_true(q->node != NULL);
        protobuf_c_message_free_unpacked(&q->base, NULL);
        free(buf);
        expect_no_request(a);
    }
    assert_null(held(a, ADS_TYPE_ENDPOINT, "b")); /* unsubscribed: its message went */
    ads_free(a);
}

/* ---- delta --------------------------------------------------------------------------------- */

static void test_delta_adds_updates_and_removes(void **state)
{
    (void)state;
    ads_t *a = cds_client(ADS_DELTA);
    RESPOND(a, ADS_ACKED, ADS_TYPE_CLUSTER, "1", "n1", cluster("a", 1), cluster("b", 1));
    ads_result_t r;
    /* A delta response names what changes: c is new, a updated, b stays. */
    assert_int_equal(
        respond(a, &r, ADS_TYPE_CLUSTER, "2", "n2", cluster("c", 1), cluster("a", 9), NULL), 0);
    assert_string_equal(joined(r.added.v, r.added.n), "c");
    assert_string_equal(joined(r.updated.v, r.updated.n), "a");
    assert_int_equal(r.removed.n, 0);
    ads_result_free(&r);
    assert_non_null(held(a, ADS_TYPE_CLUSTER, "b"));
    const char *gone[] = {"b", "never-had", NULL};
    assert_int_equal(respond_removing(a, &r, ADS_TYPE_CLUSTER, "3", "n3", gone, NULL), 0);
    assert_int_equal(r.verdict, ADS_ACKED);
    assert_string_equal(joined(r.removed.v, r.removed.n), "b");
    ads_result_free(&r);
    assert_null(held(a, ADS_TYPE_CLUSTER, "b"));
    assert_int_equal(timeout_of(a, "a"), 9);
    ads_resource_info_t info;
    ads_find(a, ADS_TYPE_CLUSTER, "c", &info);
    assert_string_equal(info.version, "2");
    ads_type_status_t st;
    ads_type_status(a, ADS_TYPE_CLUSTER, &st);
    assert_string_equal(st.version_info, "3"); /* system_version_info */
    ads_free(a);
}

static void test_delta_removed_name_stays_subscribed(void **state)
{
    (void)state;
    const char *names[] = {"a"};
    ads_t *a = eds_client(ADS_DELTA, names, 1);
    RESPOND(a, ADS_ACKED, ADS_TYPE_ENDPOINT, "1", "n1", endpoints("a", 1));
    const char *gone[] = {"a", NULL};
    ads_result_t r;
    assert_int_equal(respond_removing(a, &r, ADS_TYPE_ENDPOINT, "2", "n2", gone, NULL), 0);
    assert_string_equal(joined(r.removed.v, r.removed.n), "a");
    ads_result_free(&r);
    ads_resource_info_t info;
    assert_int_equal(ads_find(a, ADS_TYPE_ENDPOINT, "a", &info), 0); /* still asked for */
    assert_null(info.msg);
    RESPOND(a, ADS_ACKED, ADS_TYPE_ENDPOINT, "3", "n3", endpoints("a", 2));
    assert_non_null(held(a, ADS_TYPE_ENDPOINT, "a"));
    ads_free(a);
}

static void test_delta_answers_every_response_in_order(void **state)
{
    (void)state;
    ads_t *a = cds_client(ADS_DELTA);
    RESPOND(a, ADS_ACKED, ADS_TYPE_CLUSTER, "1", "n1", cluster("a", 1));
    RESPOND(a, ADS_NACKED, ADS_TYPE_CLUSTER, "2", "n2", cluster("b", -1));
    RESPOND(a, ADS_ACKED, ADS_TYPE_CLUSTER, "3", "n3", cluster("c", 1));
    const char *nonces[] = {"n1", "n2", "n3"};
    for (int i = 0; i < 3; i++) {
        sent_t s = expect_sent(a);
        assert_string_equal(s.nonce, nonces[i]);
        assert_int_equal(s.nnames + s.nunsub + s.nversions, 0);
        if (i == 1) {
            assert_int_equal(s.code, 3);
            assert_non_null(strstr(s.error, "cds['b'].connect_timeout"));
        } else {
            assert_null(s.error);
        }
        sent_free(&s);
    }
    expect_no_request(a);
    ads_free(a);
}

static void test_delta_subscribes_and_unsubscribes_by_name(void **state)
{
    (void)state;
    const char *ab[] = {"a", "b"}, *bc[] = {"b", "c"};
    ads_t *a = client(ADS_DELTA);
    subscribe(a, ADS_TYPE_ROUTE, ab, 2);
    sent_t s = expect_sent(a);
    assert_string_equal(joined(s.names, s.nnames), "a,b");
    assert_int_equal(s.nunsub, 0);
    sent_free(&s);
    RESPOND(a, ADS_ACKED, ADS_TYPE_ROUTE, "1", "n1", route("a"), route("b"));
    subscribe(a, ADS_TYPE_ROUTE, bc, 2);
    /* The ACK and the change go together. */
    s = expect_sent(a);
    assert_string_equal(s.nonce, "n1");
    assert_string_equal(joined(s.names, s.nnames), "c");
    assert_string_equal(joined(s.unsub, s.nunsub), "a");
    sent_free(&s);
    expect_no_request(a);
    assert_null(held(a, ADS_TYPE_ROUTE, "a"));
    ads_free(a);
}

static void resubscribing_before_the_request_goes_keeps_the_resource(ads_mode_t mode)
{
    const char *ab[] = {"a", "b"};
    ads_t *a = client(mode);
    subscribe(a, ADS_TYPE_ROUTE, ab, 2);
    drain(a);
    RESPOND(a, ADS_ACKED, ADS_TYPE_ROUTE, "1", "n1", route("a"), route("b"));
    drain(a);
    assert_int_equal(ads_subscribe(a, ADS_TYPE_ROUTE, ab, 1), 1); /* b leaves... */
    assert_null(held(a, ADS_TYPE_ROUTE, "b"));
    assert_int_equal(ads_subscribe(a, ADS_TYPE_ROUTE, ab, 2), 1); /* ...and comes back */
    assert_non_null(held(a, ADS_TYPE_ROUTE, "b"));
    /* The server was never told b left, so it will not send b again: the client keeps it. */
    if (mode == ADS_SOTW) {
        sent_t s = expect_sent(a);
        assert_string_equal(joined(s.names, s.nnames), "a,b");
        sent_free(&s);
    }
    expect_no_request(a);
    assert_non_null(held(a, ADS_TYPE_ROUTE, "b"));
    /* Once the request that drops it has gone, it is gone. */
    assert_int_equal(ads_subscribe(a, ADS_TYPE_ROUTE, ab, 1), 1);
    drain(a);
    assert_int_equal(ads_subscribe(a, ADS_TYPE_ROUTE, ab, 2), 0);
    assert_null(held(a, ADS_TYPE_ROUTE, "b"));
    ads_free(a);
}
BOTH_MODES(resubscribing_before_the_request_goes_keeps_the_resource)

static void test_delta_reconnect_sends_initial_resource_versions(void **state)
{
    (void)state;
    const char *names[] = {"a", "b"};
    ads_t *a = client(ADS_DELTA);
    subscribe(a, ADS_TYPE_CLUSTER, NULL, 0);
    subscribe(a, ADS_TYPE_ENDPOINT, names, 2);
    drain(a);
    RESPOND(a, ADS_ACKED, ADS_TYPE_CLUSTER, "s1", "n1", cluster("x", 1), cluster("y", 1));
    RESPOND(a, ADS_ACKED, ADS_TYPE_CLUSTER, "s2", "n2", cluster("y", 2));
    RESPOND(a, ADS_ACKED, ADS_TYPE_ENDPOINT, "e1", "n3", endpoints("a", 1));
    ads_reconnected(a);
    sent_t s = expect_sent(a);
    assert_string_equal(s.type_url, ADS_TYPE_CLUSTER);
    assert_int_equal(s.nnames, 0); /* the wildcard, as at first */
    assert_string_equal(s.nonce, "");
    assert_true(s.node);
    assert_int_equal(s.nversions, 2);
    assert_string_equal(s.versions[0]->key, "x");
    assert_string_equal(s.versions[0]->value, "s1");
    assert_string_equal(s.versions[1]->key, "y");
    assert_string_equal(s.versions[1]->value, "s2");
    sent_free(&s);
    s = expect_sent(a);
    assert_string_equal(s.type_url, ADS_TYPE_ENDPOINT);
    assert_string_equal(joined(s.names, s.nnames), "a,b");
    assert_int_equal(s.nversions, 1);
    assert_string_equal(s.versions[0]->key, "a");
    assert_string_equal(s.versions[0]->value, "e1");
    sent_free(&s);
    expect_no_request(a);
    /* Later requests carry no versions. */
    RESPOND(a, ADS_ACKED, ADS_TYPE_CLUSTER, "s3", "n4", cluster("z", 1));
    s = expect_sent(a);
    assert_int_equal(s.nversions, 0);
    sent_free(&s);
    ads_free(a);
}

static void test_delta_wildcard_with_names_subscribes_star_once(void **state)
{
    (void)state;
    ads_t *a = cds_client(ADS_DELTA);
    const char *one[] = {"od1"}, *two[] = {"od1", "od2"};
    subscribe(a, ADS_TYPE_CLUSTER, one, 1);
    sent_t s = expect_sent(a);
    assert_string_equal(joined(s.names, s.nnames), "*,od1");
    sent_free(&s);
    subscribe(a, ADS_TYPE_CLUSTER, two, 2);
    s = expect_sent(a);
    assert_string_equal(joined(s.names, s.nnames), "od2");
    sent_free(&s);
    ads_reconnected(a);
    s = expect_sent(a);
    assert_string_equal(joined(s.names, s.nnames), "*,od1,od2");
    sent_free(&s);
    ads_free(a);
}

static void test_delta_resource_both_updated_and_removed_is_rejected(void **state)
{
    (void)state;
    ads_t *a = cds_client(ADS_DELTA);
    RESPOND(a, ADS_ACKED, ADS_TYPE_CLUSTER, "1", "n1", cluster("a", 1));
    const char *gone[] = {"a", NULL};
    ads_result_t r;
    assert_int_equal(respond_removing(a, &r, ADS_TYPE_CLUSTER, "2", "n2", gone, cluster("a", 2),
                                      cluster("b", 1), NULL),
                     0);
    assert_int_equal(r.verdict, ADS_NACKED);
    assert_string_equal(r.error, "cds['a']: the response both updates and removes it");
    assert_string_equal(joined(r.added.v, r.added.n), "b");
    assert_int_equal(r.removed.n, 0);
    ads_result_free(&r);
    assert_int_equal(timeout_of(a, "a"), 1);
    ads_free(a);
}

/* Feeds a delta response with one Resource built by hand. */
static int delta_one(ads_t *a, ads_result_t *r, Envoy__Service__Discovery__V3__Resource *res)
{
    Envoy__Service__Discovery__V3__DeltaDiscoveryResponse m =
        ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_RESPONSE__INIT;
    m.type_url = ADS_TYPE_CLUSTER;
    m.nonce = "n";
    m.n_resources = 1;
    m.resources = &res;
    return feed_message(a, &m.base, r);
}

static void test_delta_resource_name_must_match_its_message(void **state)
{
    (void)state;
    ads_t *a = cds_client(ADS_DELTA);
    tres_t *c = cluster("inner", 1);
    Envoy__Service__Discovery__V3__Resource res = ENVOY__SERVICE__DISCOVERY__V3__RESOURCE__INIT;
    res.name = "outer";
    res.resource = c->any;
    ads_result_t r;
    assert_int_equal(delta_one(a, &r, &res), 0);
    assert_string_equal(r.error, "cds['outer']: the resource's name is 'inner'");
    ads_result_free(&r);
    /* No name at all. */
    res.name = "";
    assert_int_equal(delta_one(a, &r, &res), 0);
    assert_string_equal(r.error, "cds resources[0]: the Resource has no name");
    ads_result_free(&r);
    /* Named by resource_name instead. */
    Envoy__Service__Discovery__V3__ResourceName rn =
        ENVOY__SERVICE__DISCOVERY__V3__RESOURCE_NAME__INIT;
    rn.name = "inner";
    res.resource_name = &rn;
    assert_int_equal(delta_one(a, &r, &res), 0);
    assert_int_equal(r.verdict, ADS_ACKED);
    ads_result_free(&r);
    assert_non_null(held(a, ADS_TYPE_CLUSTER, "inner"));
    tres_free(c);
    ads_free(a);
}

static void test_delta_ttl_heartbeat_changes_nothing(void **state)
{
    (void)state;
    ads_t *a = cds_client(ADS_DELTA);
    RESPOND(a, ADS_ACKED, ADS_TYPE_CLUSTER, "1", "n1", cluster("a", 1));
    Envoy__Service__Discovery__V3__Resource res = ENVOY__SERVICE__DISCOVERY__V3__RESOURCE__INIT;
    Google__Protobuf__Duration ttl = GOOGLE__PROTOBUF__DURATION__INIT;
    ttl.seconds = 30;
    res.name = "a";
    res.ttl = &ttl;
    ads_result_t r;
    assert_int_equal(delta_one(a, &r, &res), 0);
    assert_int_equal(r.verdict, ADS_ACKED);
    assert_false(ads_result_changed(&r));
    ads_result_free(&r);
    res.ttl = NULL; /* no body and no TTL: a broken resource */
    assert_int_equal(delta_one(a, &r, &res), 0);
    assert_string_equal(r.error, "cds['a']: the Resource has no resource");
    ads_result_free(&r);
    assert_int_equal(timeout_of(a, "a"), 1);
    ads_free(a);
}

static void test_method_names_the_mode(void **state)
{
    (void)state;
    ads_t *s = client(ADS_SOTW), *d = client(ADS_DELTA);
    assert_string_equal(ads_method(s), "/envoy.service.discovery.v3.AggregatedDiscoveryService/"
                                       "StreamAggregatedResources");
    assert_string_equal(ads_method(d), "/envoy.service.discovery.v3.AggregatedDiscoveryService/"
                                       "DeltaAggregatedResources");
    ads_free(s);
    ads_free(d);
    ads_free(NULL);
}

static void test_resource_where_names_by_place_or_by_name(void **state)
{
    (void)state;
    char where[300], name[400];
    config_resource_t placed = {.origin = "static_resources.clusters", .index = 2};
    assert_string_equal(config_resource_where(&placed, where, sizeof(where)),
                        "static_resources.clusters[2]");
    config_resource_t named = {.origin = "cds", .index = 7, .name = "outbound|80||web"};
    assert_string_equal(config_resource_where(&named, where, sizeof(where)),
                        "cds['outbound|80||web']");
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    named.name = name;
    config_resource_where(&named, where, sizeof(where));
    assert_int_equal(strlen(where), strlen("cds['']") + 200 + 3);
    assert_non_null(strstr(where, "nnn...']"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(first_requests_go_in_envoys_order),
        BOTH(valid_response_is_acked_with_its_nonce),
        BOTH(nack_applies_the_valid_resources_and_names_the_bad_one),
        BOTH(rejected_update_keeps_the_last_good_message),
        BOTH(unsubscribed_names_are_ignored),
        BOTH(duplicate_names_are_rejected_and_named_once),
        BOTH(resource_of_another_type_is_rejected_alone),
        BOTH(malformed_response_is_a_stream_error),
        BOTH(response_for_a_type_not_subscribed_is_ignored),
        BOTH(unchanged_resend_changes_nothing),
        BOTH(hook_rejects_a_resource_by_name),
        BOTH(huge_name_is_rejected_cleanly),
        BOTH(nack_message_is_capped),
        BOTH(node_goes_in_every_request_by_default),
        BOTH(node_only_in_each_streams_first_message),
        BOTH(resources_fill_the_set_sorted_and_named),
        BOTH(dump_lists_held_rejected_and_requested),
        BOTH(unsubscribing_a_name_drops_its_resource),
        BOTH(resubscribing_the_same_names_owes_nothing),
        BOTH(subscribe_refuses_bad_arguments),
        BOTH(resubscribing_before_the_request_goes_keeps_the_resource),
        cmocka_unit_test(test_sotw_cluster_response_is_the_full_set),
        cmocka_unit_test(test_sotw_listener_response_removes_a_rejected_name_it_leaves_out),
        cmocka_unit_test(test_sotw_endpoint_and_route_responses_keep_absent_names),
        cmocka_unit_test(test_sotw_nameless_rejection_removes_nothing),
        cmocka_unit_test(test_sotw_requests_carry_the_latest_nonce_and_last_acked_version),
        cmocka_unit_test(test_sotw_reconnect_sends_last_acked_version_without_nonce),
        cmocka_unit_test(test_sotw_unsubscribing_every_name_sends_an_empty_list),
        cmocka_unit_test(test_sotw_wildcard_with_names_asks_for_star),
        cmocka_unit_test(test_sotw_requests_name_the_subscription_of_the_moment),
        cmocka_unit_test(test_delta_adds_updates_and_removes),
        cmocka_unit_test(test_delta_removed_name_stays_subscribed),
        cmocka_unit_test(test_delta_answers_every_response_in_order),
        cmocka_unit_test(test_delta_subscribes_and_unsubscribes_by_name),
        cmocka_unit_test(test_delta_reconnect_sends_initial_resource_versions),
        cmocka_unit_test(test_delta_wildcard_with_names_subscribes_star_once),
        cmocka_unit_test(test_delta_resource_both_updated_and_removed_is_rejected),
        cmocka_unit_test(test_delta_resource_name_must_match_its_message),
        cmocka_unit_test(test_delta_ttl_heartbeat_changes_nothing),
        cmocka_unit_test(test_method_names_the_mode),
        cmocka_unit_test(test_resource_where_names_by_place_or_by_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
