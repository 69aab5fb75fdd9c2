/* Specification of the ADS server (xds/server) for requests built by hand with protobuf-c: what
 * it refuses, the wildcard and subscription rules of the xDS protocol in both modes, how ACKs,
 * NACKs and stale nonces are told apart, and the responses' wire form. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "xds/server/ads_server.h"

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/core/v3/base.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "google/rpc/status.pb-c.h"

typedef Envoy__Service__Discovery__V3__DiscoveryRequest sotw_request_t;
typedef Envoy__Service__Discovery__V3__DeltaDiscoveryRequest delta_request_t;
typedef Envoy__Service__Discovery__V3__DiscoveryResponse sotw_response_t;
typedef Envoy__Service__Discovery__V3__DeltaDiscoveryResponse delta_response_t;

#define CDS "type.googleapis.com/envoy.config.cluster.v3.Cluster"
#define EDS "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"

static char err[512];

static ads_srv_resource_t *cluster(const char *name)
{
    Envoy__Config__Cluster__V3__Cluster c = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
    c.name = (char *)name;
    return ads_srv_resource_from_message(&c.base);
}

/* Endpoints of cluster `name`: its cluster_name (field 1) and, from version 2 on, an unknown
 * varint field 7 holding the version, so that each version has bytes of its own. */
static ads_srv_resource_t *endpoints(const char *name, uint32_t version)
{
    uint8_t bytes[64];
    size_t n = strlen(name);
    assert_true(n < 32);
    bytes[0] = 0x0a;
    bytes[1] = (uint8_t)n;
    memcpy(bytes + 2, name, n);
    size_t len = 2 + n;
    if (version > 1) {
        bytes[len++] = 0x38;
        bytes[len++] = (uint8_t)version;
    }
    ads_srv_resource_t *r = ads_srv_resource_new(ADS_SRV_EDS, name, bytes, len);
    assert_non_null(r);
    return r;
}

static void view_set(ads_srv_view_t *v, ads_srv_resource_t **res, size_t n)
{
    assert_true(ads_srv_view_replace(v, res, n, true) >= 0);
    for (size_t i = 0; i < n; i++)
        ads_srv_resource_unref(res[i]);
}

static ads_srv_view_t *view_of(size_t nclusters, size_t nendpoints)
{
    static const char *const names[] = {"a", "b", "c"};
    ads_srv_resource_t *res[6];
    size_t n = 0;
    for (size_t i = 0; i < nclusters; i++)
        res[n++] = cluster(names[i]);
    for (size_t i = 0; i < nendpoints; i++)
        res[n++] = endpoints(names[i], 1);
    ads_srv_view_t *v = ads_srv_view_new();
    view_set(v, res, n);
    return v;
}

static Envoy__Config__Core__V3__Node node_web = ENVOY__CONFIG__CORE__V3__NODE__INIT;

/* ---- requests ------------------------------------------------------------------------------ */

static int feed(ads_srv_stream_t *s, const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len + 1);
    protobuf_c_message_pack(m, buf);
    err[0] = '\0';
    int rc = ads_srv_stream_on_request(s, buf, len, err, sizeof(err));
    free(buf);
    return rc;
}

/* A SotW request: type, nonce, version, names (NULL-terminated). */
static int sotw(ads_srv_stream_t *s, bool node, const char *type, const char *nonce,
                const char *version, const Google__Rpc__Status *error, ...)
{
    char *names[16];
    size_t n = 0;
    va_list ap;
    va_start(ap, error);
    for (char *name; (name = va_arg(ap, char *)) != NULL;)
        names[n++] = name;
    va_end(ap);
    sotw_request_t q = ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_REQUEST__INIT;
    q.node = node ? &node_web : NULL;
    q.type_url = (char *)type;
    q.response_nonce = (char *)nonce;
    q.version_info = (char *)version;
    q.error_detail = (Google__Rpc__Status *)error;
    q.resource_names = names;
    q.n_resource_names = n;
    return feed(s, &q.base);
}

/* A delta request: subscribe and unsubscribe lists (NULL-terminated, may be NULL). */
static int delta(ads_srv_stream_t *s, bool node, const char *type, const char *nonce,
                 const char *const *sub, const char *const *unsub)
{
    delta_request_t q = ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_REQUEST__INIT;
    q.node = node ? &node_web : NULL;
    q.type_url = (char *)type;
    q.response_nonce = (char *)nonce;
    while (sub && sub[q.n_resource_names_subscribe])
        q.n_resource_names_subscribe++;
    while (unsub && unsub[q.n_resource_names_unsubscribe])
        q.n_resource_names_unsubscribe++;
    q.resource_names_subscribe = (char **)sub;
    q.resource_names_unsubscribe = (char **)unsub;
    return feed(s, &q.base);
}

static ads_srv_stream_t *stream(ads_srv_mode_t mode)
{
    ads_srv_stream_opts_t o = {.mode = mode};
    ads_srv_stream_t *s = ads_srv_stream_new(&o);
    assert_non_null(s);
    return s;
}

/* ---- responses ----------------------------------------------------------------------------- */

static sotw_response_t *next_sotw(ads_srv_stream_t *s)
{
    uint8_t *buf;
    size_t len;
    int rc = ads_srv_stream_next_response(s, &buf, &len);
    assert_true(rc >= 0);
    if (rc == 0)
        return NULL;
    sotw_response_t *r = envoy__service__discovery__v3__discovery_response__unpack(NULL, len, buf);
    assert_non_null(r);
    free(buf);
    return r;
}

static delta_response_t *next_delta(ads_srv_stream_t *s)
{
    uint8_t *buf;
    size_t len;
    int rc = ads_srv_stream_next_response(s, &buf, &len);
    assert_true(rc >= 0);
    if (rc == 0)
        return NULL;
    delta_response_t *r =
        envoy__service__discovery__v3__delta_discovery_response__unpack(NULL, len, buf);
    assert_non_null(r);
    free(buf);
    return r;
}

static void free_msg(void *m)
{
    protobuf_c_message_free_unpacked(m, NULL);
}

/* ---- refusals ------------------------------------------------------------------------------ */

static void test_request_that_does_not_decode_is_refused(void **state)
{
    (void)state;
    ads_srv_stream_t *s = stream(ADS_SRV_SOTW);
    const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff};
    assert_int_equal(ads_srv_stream_on_request(s, junk, sizeof(junk), err, sizeof(err)), -EBADMSG);
    assert_string_equal(err, "the request does not decode as a DiscoveryRequest");
    assert_null(ads_srv_stream_node(s));
    assert_int_equal(ads_srv_stream_counters(s)->requests_bad, 1);
    ads_srv_stream_free(s);
}

static void test_first_request_needs_a_node_and_later_ones_the_same(void **state)
{
    (void)state;
    ads_srv_stream_t *s = stream(ADS_SRV_DELTA);
    assert_int_equal(delta(s, false, CDS, NULL, NULL, NULL), -EPROTO);
    assert_string_equal(err, "the stream's first request carries no node");
    assert_int_equal(delta(s, true, CDS, NULL, NULL, NULL), 0);
    assert_string_equal(ads_srv_stream_node(s)->id, "web-1");
    assert_int_equal(delta(s, false, EDS, NULL, NULL, NULL), 0); /* no node later: fine */
    Envoy__Config__Core__V3__Node other = ENVOY__CONFIG__CORE__V3__NODE__INIT;
    other.id = "db-1";
    delta_request_t q = ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_REQUEST__INIT;
    q.node = &other;
    q.type_url = EDS;
    assert_int_equal(feed(s, &q.base), -EPROTO);
    assert_string_equal(err, "a request names node 'db-1', not the stream's first");
    ads_srv_stream_free(s);
}

static void test_request_without_type_or_with_a_long_name_is_refused(void **state)
{
    (void)state;
    ads_srv_stream_t *s = stream(ADS_SRV_SOTW);
    assert_int_equal(sotw(s, true, NULL, NULL, NULL, NULL, NULL), -EPROTO);
    assert_string_equal(err, "a request without type_url");
    char *long_name = malloc(ADS_SRV_NAME_MAX + 2);
    memset(long_name, 'x', ADS_SRV_NAME_MAX + 1);
    long_name[ADS_SRV_NAME_MAX + 1] = '\0';
    assert_int_equal(sotw(s, true, EDS, NULL, NULL, NULL, long_name, NULL), -EPROTO);
    assert_non_null(strstr(err, "over 4096 bytes"));
    long_name[ADS_SRV_NAME_MAX] = '\0';
    assert_int_equal(sotw(s, true, EDS, NULL, NULL, NULL, long_name, NULL), 0);
    free(long_name);
    assert_int_equal(ads_srv_stream_counters(s)->requests_bad, 2);
    ads_srv_stream_free(s);
}

static void test_type_not_served_is_ignored(void **state)
{
    (void)state;
    ads_srv_view_t *v = view_of(1, 0);
    ads_srv_stream_t *s = stream(ADS_SRV_SOTW);
    assert_int_equal(
        sotw(s, true, "type.googleapis.com/envoy.service.runtime.v3.Runtime", NULL, "", NULL, NULL),
        0);
    ads_srv_stream_set_view(s, v);
    assert_false(ads_srv_stream_owes(s));
    assert_null(next_sotw(s));
    assert_int_equal(ads_srv_stream_counters(s)->requests_ignored, 1);
    ads_srv_stream_free(s);
    ads_srv_view_unref(v);
}

/* ---- SotW subscriptions --------------------------------------------------------------------- */

/* The protocol's own example: no names is "*", then "*" and A, then A alone (the wildcard
 * goes), then no names again: nothing at all, as the stream named resources before. */
static void test_sotw_wildcard_follows_the_legacy_rule(void **state)
{
    (void)state;
    ads_srv_view_t *v = view_of(2, 0);
    ads_srv_stream_t *s = stream(ADS_SRV_SOTW);
    ads_srv_stream_set_view(s, v);
    ads_srv_type_status_t st;
    assert_int_equal(sotw(s, true, CDS, NULL, NULL, NULL, NULL), 0);
    sotw_response_t *r = next_sotw(s);
    assert_int_equal(r->n_resources, 2);
    assert_string_equal(r->type_url, CDS);
    assert_string_equal(r->resources[0]->type_url, CDS);
    assert_string_equal(r->nonce, "1");
    char *nonce = strdup(r->nonce), *version = strdup(r->version_info);
    free_msg(r);
    assert_int_equal(sotw(s, false, CDS, nonce, version, NULL, "*", "a", NULL), 0);
    ads_srv_stream_type_status(s, ADS_SRV_CDS, &st);
    assert_true(st.wildcard);
    assert_int_equal(st.names, 1);
    assert_null(next_sotw(s)); /* the same set: nothing owed */
    ads_srv_stream_type_status(s, ADS_SRV_CDS, &st);
    assert_int_equal(st.sync, ADS_SRV_SYNCED);
    assert_int_equal(sotw(s, false, CDS, nonce, version, NULL, "a", NULL), 0);
    ads_srv_stream_type_status(s, ADS_SRV_CDS, &st);
    assert_false(st.wildcard);
    r = next_sotw(s);
    assert_int_equal(r->n_resources, 1);
    free(nonce);
    free(version);
    nonce = strdup(r->nonce);
    version = strdup(r->version_info);
    free_msg(r);
    assert_int_equal(sotw(s, false, CDS, nonce, version, NULL, NULL), 0);
    ads_srv_stream_type_status(s, ADS_SRV_CDS, &st);
    assert_false(st.wildcard);
    assert_int_equal(st.names, 0);
    r = next_sotw(s);
    assert_int_equal(r->n_resources, 0); /* the empty set: the client removes what it had */
    free_msg(r);
    free(nonce);
    free(version);
    ads_srv_stream_free(s);
    ads_srv_view_unref(v);
}

/* Clusters asked for by name: a name added that does not exist is answered with the same set,
 * which is how the client learns it is absent (as a proxyless gRPC client asks). */
static void test_sotw_named_full_set_answers_a_missing_name(void **state)
{
    (void)state;
    ads_srv_view_t *v = view_of(2, 0);
    ads_srv_stream_t *s = stream(ADS_SRV_SOTW);
    ads_srv_stream_set_view(s, v);
    assert_int_equal(sotw(s, true, CDS, NULL, NULL, NULL, "a", NULL), 0);
    sotw_response_t *r = next_sotw(s);
    assert_int_equal(r->n_resources, 1);
    char *nonce = strdup(r->nonce), *version = strdup(r->version_info);
    free_msg(r);
    assert_int_equal(sotw(s, false, CDS, nonce, version, NULL, "a", "missing", NULL), 0);
    r = next_sotw(s);
    assert_non_null(r);
    assert_int_equal(r->n_resources, 1); /* a alone: "missing" is not there */
    free_msg(r);
    /* An ACK that names the same set owes nothing. */
    assert_int_equal(sotw(s, false, CDS, "2", version, NULL, "a", "missing", NULL), 0);
    assert_null(next_sotw(s));
    free(nonce);
    free(version);
    ads_srv_stream_free(s);
    ads_srv_view_unref(v);
}

/* Endpoints go only when they changed, but a name asked for anew is sent again. */
static void test_sotw_named_type_sends_changes_and_names_asked_anew(void **state)
{
    (void)state;
    ads_srv_view_t *v = view_of(0, 2);
    ads_srv_stream_t *s = stream(ADS_SRV_SOTW);
    ads_srv_stream_set_view(s, v);
    assert_int_equal(sotw(s, true, EDS, NULL, NULL, NULL, "a", NULL), 0);
    sotw_response_t *r = next_sotw(s);
    assert_int_equal(r->n_resources, 1);
    free_msg(r);
    assert_int_equal(sotw(s, false, EDS, "1", "x", NULL, "a", "b", NULL), 0);
    r = next_sotw(s);
    assert_int_equal(r->n_resources, 1); /* b only: a is held and unchanged */
    free_msg(r);
    assert_int_equal(sotw(s, false, EDS, "2", "y", NULL, "b", NULL), 0);
    assert_null(next_sotw(s));
    assert_int_equal(sotw(s, false, EDS, "2", "y", NULL, "a", "b", NULL), 0);
    r = next_sotw(s);
    assert_int_equal(r->n_resources, 1); /* a again: asked for anew */
    free_msg(r);
    ads_srv_stream_free(s);
    ads_srv_view_unref(v);
}

static void test_sotw_nack_and_stale_nonce(void **state)
{
    (void)state;
    ads_srv_view_t *v = view_of(0, 1);
    ads_srv_stream_t *s = stream(ADS_SRV_SOTW);
    ads_srv_stream_set_view(s, v);
    assert_int_equal(sotw(s, true, EDS, NULL, NULL, NULL, "a", NULL), 0);
    sotw_response_t *r = next_sotw(s);
    char *v1 = strdup(r->version_info);
    free_msg(r);
    assert_int_equal(sotw(s, false, EDS, "1", v1, NULL, "a", NULL), 0); /* ACK */
    ads_srv_resource_t *res[] = {endpoints("a", 2)};
    view_set(v, res, 1);
    r = next_sotw(s);
    assert_string_equal(r->nonce, "2");
    free_msg(r);
    Google__Rpc__Status status = GOOGLE__RPC__STATUS__INIT;
    status.code = 3;
    status.message = "eds['a']: no";
    /* An answer to nonce 1 now is stale: it changes nothing, not even the names. */
    assert_int_equal(sotw(s, false, EDS, "1", v1, &status, NULL), 0);
    ads_srv_type_status_t st;
    ads_srv_stream_type_status(s, ADS_SRV_EDS, &st);
    assert_int_equal(st.sync, ADS_SRV_STALE);
    assert_int_equal(st.names, 1);
    assert_null(st.last_error);
    assert_int_equal(sotw(s, false, EDS, "2", v1, &status, "a", NULL), 0); /* the NACK */
    ads_srv_stream_type_status(s, ADS_SRV_EDS, &st);
    assert_int_equal(st.sync, ADS_SRV_NACKED);
    assert_string_equal(st.last_error, "eds['a']: no");
    assert_string_equal(st.version_acked, v1);
    assert_null(next_sotw(s)); /* a NACK is not answered with the same again */
    const ads_srv_counters_t *c = ads_srv_stream_counters(s);
    assert_int_equal(c->stale_nonces, 1);
    assert_int_equal(c->nacks, 1);
    assert_int_equal(c->acks, 1);
    free(v1);
    ads_srv_stream_free(s);
    ads_srv_view_unref(v);
}

/* ---- delta subscriptions -------------------------------------------------------------------- */

static const char *const star[] = {"*", NULL};
static const char *const name_a[] = {"a", NULL};

static void test_delta_legacy_wildcard_only_for_listeners_and_clusters(void **state)
{
    (void)state;
    ads_srv_view_t *v = view_of(2, 2);
    ads_srv_stream_t *s = stream(ADS_SRV_DELTA);
    ads_srv_stream_set_view(s, v);
    assert_int_equal(delta(s, true, CDS, NULL, NULL, NULL), 0);
    assert_int_equal(delta(s, false, EDS, NULL, NULL, NULL), 0);
    delta_response_t *r = next_delta(s);
    assert_string_equal(r->type_url, CDS);
    assert_int_equal(r->n_resources, 2);
    assert_string_equal(r->resources[0]->name, "a");
    assert_int_equal(strlen(r->resources[0]->version), 16);
    assert_string_equal(r->resources[0]->resource->type_url, CDS);
    free_msg(r);
    r = next_delta(s);
    assert_string_equal(r->type_url, EDS);
    assert_int_equal(r->n_resources, 0); /* endpoints are never a wildcard */
    free_msg(r);
    assert_null(next_delta(s));
    ads_srv_stream_free(s);
    ads_srv_view_unref(v);
}

/* An explicit "*" and a name; the name unsubscribed is sent again (the wildcard still covers
 * it); "*" unsubscribed removes what only it brought. */
static void test_delta_wildcard_and_names(void **state)
{
    (void)state;
    ads_srv_view_t *v = view_of(2, 0);
    ads_srv_stream_t *s = stream(ADS_SRV_DELTA);
    ads_srv_stream_set_view(s, v);
    const char *const star_a[] = {"*", "a", NULL};
    assert_int_equal(delta(s, true, CDS, NULL, star_a, NULL), 0);
    delta_response_t *r = next_delta(s);
    assert_int_equal(r->n_resources, 2);
    free_msg(r);
    assert_int_equal(delta(s, false, CDS, "1", NULL, name_a), 0);
    r = next_delta(s);
    assert_int_equal(r->n_resources, 1);
    assert_string_equal(r->resources[0]->name, "a");
    free_msg(r);
    assert_int_equal(delta(s, false, CDS, "2", name_a, star), 0);
    r = next_delta(s);
    assert_int_equal(r->n_resources, 1); /* a, asked for again */
    assert_int_equal(r->n_removed_resources, 1);
    assert_string_equal(r->removed_resources[0], "b");
    free_msg(r);
    ads_srv_stream_free(s);
    ads_srv_view_unref(v);
}

/* A stale nonce's answer is ignored, its subscription change is not. */
static void test_delta_stale_nonce_still_subscribes(void **state)
{
    (void)state;
    ads_srv_view_t *v = view_of(0, 2);
    ads_srv_stream_t *s = stream(ADS_SRV_DELTA);
    ads_srv_stream_set_view(s, v);
    assert_int_equal(delta(s, true, EDS, NULL, name_a, NULL), 0);
    free_msg(next_delta(s));
    const char *const name_b[] = {"b", NULL};
    assert_int_equal(delta(s, false, EDS, "0", name_b, NULL), 0);
    assert_int_equal(ads_srv_stream_counters(s)->stale_nonces, 1);
    delta_response_t *r = next_delta(s);
    assert_int_equal(r->n_resources, 1);
    assert_string_equal(r->resources[0]->name, "b");
    free_msg(r);
    /* b asked for again although held: the server must still provide it. */
    assert_int_equal(delta(s, false, EDS, "2", name_b, NULL), 0);
    r = next_delta(s);
    assert_int_equal(r->n_resources, 1);
    free_msg(r);
    ads_srv_stream_free(s);
    ads_srv_view_unref(v);
}

/* ---- resources and views -------------------------------------------------------------------- */

static void test_resource_and_view_checks(void **state)
{
    (void)state;
    errno = 0;
    assert_null(ads_srv_resource_new(ADS_SRV_EDS, "", (const uint8_t *)"", 0));
    assert_int_equal(errno, EINVAL);
    assert_null(ads_srv_resource_new(ADS_SRV_NTYPES, "a", NULL, 0));
    Google__Rpc__Status not_a_resource = GOOGLE__RPC__STATUS__INIT;
    assert_null(ads_srv_resource_from_message(&not_a_resource.base));
    ads_srv_resource_t *a = endpoints("a", 1), *b = endpoints("a", 2);
    assert_string_not_equal(ads_srv_resource_version(a), ads_srv_resource_version(b));
    ads_srv_view_t *v = view_of(1, 0);
    ads_srv_resource_t *twice[] = {a, b};
    assert_int_equal(ads_srv_view_replace(v, twice, 2, true), -EINVAL);
    assert_int_equal(ads_srv_view_count(v, ADS_SRV_CDS), 1); /* nothing changed */
    assert_int_equal(ads_srv_view_replace(v, twice, 1, false), 1);
    assert_int_equal(ads_srv_view_count(v, ADS_SRV_CDS), 1); /* only endpoints replaced */
    assert_ptr_equal(ads_srv_view_find(v, ADS_SRV_EDS, "a"), a);
    ads_srv_resource_unref(a);
    ads_srv_resource_unref(b);
    assert_int_equal(ads_srv_mode_of_method("/envoy.service.discovery.v3."
                                            "AggregatedDiscoveryService/DeltaAggregatedResources"),
                     ADS_SRV_DELTA);
    assert_int_equal(ads_srv_mode_of_method("/envoy.service.discovery.v3."
                                            "AggregatedDiscoveryService/StreamAggregatedResources"),
                     ADS_SRV_SOTW);
    assert_int_equal(ads_srv_mode_of_method("/x/StreamAggregatedResources"), -1);
    assert_int_equal(ads_srv_type_of(CDS), ADS_SRV_CDS);
    assert_int_equal(ads_srv_type_of("type.googleapis.com/nope"), -1);
    ads_srv_view_unref(v);
}

static int setup(void **state)
{
    (void)state;
    node_web.id = "web-1";
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_that_does_not_decode_is_refused),
        cmocka_unit_test(test_sotw_named_full_set_answers_a_missing_name),
        cmocka_unit_test(test_first_request_needs_a_node_and_later_ones_the_same),
        cmocka_unit_test(test_request_without_type_or_with_a_long_name_is_refused),
        cmocka_unit_test(test_type_not_served_is_ignored),
        cmocka_unit_test(test_sotw_wildcard_follows_the_legacy_rule),
        cmocka_unit_test(test_sotw_named_type_sends_changes_and_names_asked_anew),
        cmocka_unit_test(test_sotw_nack_and_stale_nonce),
        cmocka_unit_test(test_delta_legacy_wildcard_only_for_listeners_and_clusters),
        cmocka_unit_test(test_delta_wildcard_and_names),
        cmocka_unit_test(test_delta_stale_nonce_still_subscribes),
        cmocka_unit_test(test_resource_and_view_checks),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
