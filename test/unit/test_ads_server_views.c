/* Specification of the ADS server's views per type (xds/server): a stream served each type from
 * another view gets what one view holding everything gives it; a replace of a shared view tells
 * only the streams served the replaced types from it; streams share the view's resources. And a
 * state-of-the-world request that repeats its subscription (every EDS ACK of a sidecar) is taken
 * as unchanged, whatever else it carries, while a changed or reordered list is taken as it is. */
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
#include "envoy/service/discovery/v3/discovery.pb-c.h"

typedef Envoy__Service__Discovery__V3__DiscoveryRequest sotw_request_t;
typedef Envoy__Service__Discovery__V3__DeltaDiscoveryRequest delta_request_t;
typedef Envoy__Service__Discovery__V3__DiscoveryResponse sotw_response_t;

#define CDS "type.googleapis.com/envoy.config.cluster.v3.Cluster"
#define EDS "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"

static char err[512];

/* A cluster whose bytes differ by version (an unknown varint field 99). */
static ads_srv_resource_t *cluster(const char *name, uint32_t version)
{
    uint8_t bytes[64];
    size_t n = strlen(name);
    bytes[0] = 0x0a;
    bytes[1] = (uint8_t)n;
    memcpy(bytes + 2, name, n);
    size_t len = 2 + n;
    bytes[len++] = 0x98; /* field 99, varint */
    bytes[len++] = 0x06;
    bytes[len++] = (uint8_t)version;
    ads_srv_resource_t *r = ads_srv_resource_new(ADS_SRV_CDS, name, bytes, len);
    assert_non_null(r);
    return r;
}

/* Endpoints of cluster `name`, their bytes differing by version (an unknown varint field 7). */
static ads_srv_resource_t *endpoints(const char *name, uint32_t version)
{
    uint8_t bytes[64];
    size_t n = strlen(name);
    bytes[0] = 0x0a;
    bytes[1] = (uint8_t)n;
    memcpy(bytes + 2, name, n);
    bytes[2 + n] = 0x38;
    bytes[3 + n] = (uint8_t)version;
    ads_srv_resource_t *r = ads_srv_resource_new(ADS_SRV_EDS, name, bytes, 4 + n);
    assert_non_null(r);
    return r;
}

/* Replaces v's types that res[0..n) holds (every type: all) and drops the list's references. */
static int replace(ads_srv_view_t *v, ads_srv_resource_t **res, size_t n, bool all)
{
    int rc = ads_srv_view_replace(v, res, n, all);
    for (size_t i = 0; i < n; i++)
        ads_srv_resource_unref(res[i]);
    return rc;
}

/* ---- streams ------------------------------------------------------------------------------- */

static Envoy__Config__Core__V3__Node node_web = ENVOY__CONFIG__CORE__V3__NODE__INIT;

typedef struct peer {
    ads_srv_stream_t *s;
    int owed_calls;
} peer_t;

static void on_owed(void *ctx, ads_srv_stream_t *s)
{
    peer_t *p = ctx;
    assert_ptr_equal(p->s, s);
    p->owed_calls++;
}

static void peer_open(peer_t *p, ads_srv_mode_t mode)
{
    memset(p, 0, sizeof(*p));
    ads_srv_stream_opts_t o = {.mode = mode, .owed = on_owed, .ctx = p};
    p->s = ads_srv_stream_new(&o);
    assert_non_null(p->s);
}

static int feed_bytes(ads_srv_stream_t *s, const uint8_t *buf, size_t len)
{
    err[0] = '\0';
    return ads_srv_stream_on_request(s, buf, len, err, sizeof(err));
}

static int feed(ads_srv_stream_t *s, const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len + 1);
    protobuf_c_message_pack(m, buf);
    int rc = feed_bytes(s, buf, len);
    free(buf);
    return rc;
}

/* A SotW request of type with nonce and names[0..n). */
static int sotw(ads_srv_stream_t *s, const char *type, const char *nonce, char **names, size_t n)
{
    sotw_request_t q = ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_REQUEST__INIT;
    q.node = &node_web;
    q.type_url = (char *)type;
    q.response_nonce = (char *)nonce;
    q.resource_names = names;
    q.n_resource_names = n;
    return feed(s, &q.base);
}

/* A delta request of type with nonce, subscribing to names[0..n). */
static int delta(ads_srv_stream_t *s, const char *type, const char *nonce, char **names, size_t n)
{
    delta_request_t q = ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_REQUEST__INIT;
    q.node = &node_web;
    q.type_url = (char *)type;
    q.response_nonce = (char *)nonce;
    q.resource_names_subscribe = names;
    q.n_resource_names_subscribe = n;
    return feed(s, &q.base);
}

static int request(ads_srv_stream_t *s, const char *type, const char *nonce, char **names, size_t n)
{
    return ads_srv_stream_mode(s) == ADS_SRV_DELTA ? delta(s, type, nonce, names, n)
                                                   : sotw(s, type, nonce, names, n);
}

typedef struct raw {
    uint8_t *buf;
    size_t len;
} raw_t;

/* Every response s owes now, as built (the caller frees each buf). */
static size_t drain(ads_srv_stream_t *s, raw_t *out, size_t cap)
{
    size_t n = 0;
    for (;;) {
        uint8_t *buf;
        size_t len;
        int rc = ads_srv_stream_next_response(s, &buf, &len);
        assert_true(rc >= 0);
        if (rc == 0)
            return n;
        assert_true(n < cap);
        out[n++] = (raw_t){buf, len};
    }
}

/* ACKs the last response of s: its type and nonce, and in SotW names[0..n) again (a delta ACK
 * names nothing). */
static void ack_last(ads_srv_stream_t *s, char **names, size_t n)
{
    const ads_srv_response_info_t *info = ads_srv_stream_last_response(s);
    assert_non_null(info);
    char nonce[32];
    snprintf(nonce, sizeof(nonce), "%s", info->nonce);
    bool d = ads_srv_stream_mode(s) == ADS_SRV_DELTA;
    assert_int_equal(request(s, ads_srv_type_url(info->type), nonce, d ? NULL : names, d ? 0 : n),
                     0);
}

/* ---- views per type ------------------------------------------------------------------------- */

static char *eds_names[] = {"a", "b"};

/* The same requests on a stream served everything from one view and on a stream served clusters
 * and endpoints from a view each: the same responses, byte for byte, before and after a change. */
static void same_responses(ads_srv_mode_t mode)
{
    ads_srv_view_t *one = ads_srv_view_new(), *c = ads_srv_view_new(), *e = ads_srv_view_new();
    ads_srv_resource_t *all[] = {cluster("a", 1), cluster("b", 1), endpoints("a", 1),
                                 endpoints("b", 1)};
    assert_int_equal(ads_srv_view_replace(one, all, 4, true), 4);
    assert_int_equal(ads_srv_view_replace(c, all, 2, true), 2);
    assert_int_equal(ads_srv_view_replace(e, all + 2, 2, true), 2);
    for (size_t i = 0; i < 4; i++)
        ads_srv_resource_unref(all[i]);
    peer_t p1, p2;
    peer_open(&p1, mode);
    peer_open(&p2, mode);
    ads_srv_stream_set_view(p1.s, one);
    assert_int_equal(ads_srv_stream_set_type_view(p2.s, ADS_SRV_CDS, c), 0);
    assert_int_equal(ads_srv_stream_set_type_view(p2.s, ADS_SRV_EDS, e), 0);
    assert_int_equal(ads_srv_stream_set_type_view(p2.s, ADS_SRV_NTYPES, e), -EINVAL);
    assert_ptr_equal(ads_srv_stream_type_view(p2.s, ADS_SRV_EDS), e);
    assert_null(ads_srv_stream_type_view(p2.s, ADS_SRV_LDS));
    for (int round = 0; round < 3; round++) {
        if (round == 1) { /* a change of the endpoints of a */
            ads_srv_resource_t *nw[] = {endpoints("a", 2), endpoints("b", 1)};
            ads_srv_resource_t *nw2[] = {ads_srv_resource_ref(nw[0]), ads_srv_resource_ref(nw[1])};
            assert_int_equal(replace(one, nw, 2, false), 1);
            assert_int_equal(replace(e, nw2, 2, true), 1);
        } else if (round == 2) { /* a cluster removed */
            ads_srv_resource_t *nw[] = {cluster("a", 1)};
            ads_srv_resource_t *nw2[] = {ads_srv_resource_ref(nw[0])};
            assert_int_equal(replace(one, nw, 1, false), 1);
            assert_int_equal(replace(c, nw2, 1, true), 1);
        }
        peer_t *ps[] = {&p1, &p2};
        raw_t got[2][4];
        size_t n[2];
        for (int i = 0; i < 2; i++) {
            if (round == 0) {
                assert_int_equal(request(ps[i]->s, CDS, NULL, NULL, 0), 0);
                assert_int_equal(request(ps[i]->s, EDS, NULL, eds_names, 2), 0);
            }
            n[i] = drain(ps[i]->s, got[i], 4);
        }
        assert_int_equal(n[0], n[1]);
        assert_int_equal(n[0], round == 0 ? 2 : 1);
        for (size_t k = 0; k < n[0]; k++) {
            assert_int_equal(got[0][k].len, got[1][k].len);
            assert_memory_equal(got[0][k].buf, got[1][k].buf, got[0][k].len);
            free(got[0][k].buf);
            free(got[1][k].buf);
        }
        for (int i = 0; i < 2; i++) {
            ack_last(ps[i]->s,
                     ads_srv_stream_last_response(ps[i]->s)->type == ADS_SRV_EDS ? eds_names : NULL,
                     ads_srv_stream_last_response(ps[i]->s)->type == ADS_SRV_EDS ? 2 : 0);
            assert_false(ads_srv_stream_owes(ps[i]->s));
        }
    }
    for (int t = 0; t < ADS_SRV_NTYPES; t++) {
        ads_srv_type_status_t s1, s2;
        ads_srv_stream_type_status(p1.s, (ads_srv_type_t)t, &s1);
        ads_srv_stream_type_status(p2.s, (ads_srv_type_t)t, &s2);
        assert_int_equal(s1.sync, s2.sync);
        assert_string_equal(s1.version_sent, s2.version_sent);
    }
    ads_srv_stream_free(p1.s);
    ads_srv_stream_free(p2.s);
    ads_srv_view_unref(one);
    ads_srv_view_unref(c);
    ads_srv_view_unref(e);
}

static void test_type_views_give_what_one_view_gives_sotw(void **state)
{
    (void)state;
    same_responses(ADS_SRV_SOTW);
}

static void test_type_views_give_what_one_view_gives_delta(void **state)
{
    (void)state;
    same_responses(ADS_SRV_DELTA);
}

/* Two streams share an endpoints view and each has a clusters view of its own; then a third view
 * serves one stream's endpoints and the other's clusters. A replace wakes exactly the streams
 * served a type it changed from the view. */
static void test_replace_of_a_type_view_wakes_only_its_streams(void **state)
{
    (void)state;
    ads_srv_view_t *e = ads_srv_view_new(), *c1 = ads_srv_view_new(), *c2 = ads_srv_view_new();
    ads_srv_resource_t *r[] = {endpoints("a", 1), endpoints("b", 1)};
    replace(e, r, 2, true);
    ads_srv_resource_t *r1[] = {cluster("a", 1)};
    replace(c1, r1, 1, true);
    ads_srv_resource_t *r2[] = {cluster("a", 1)};
    replace(c2, r2, 1, true);
    peer_t p1, p2;
    peer_open(&p1, ADS_SRV_SOTW);
    peer_open(&p2, ADS_SRV_SOTW);
    peer_t *ps[] = {&p1, &p2};
    for (int i = 0; i < 2; i++) {
        ads_srv_stream_set_type_view(ps[i]->s, ADS_SRV_CDS, i == 0 ? c1 : c2);
        ads_srv_stream_set_type_view(ps[i]->s, ADS_SRV_EDS, e);
        assert_int_equal(sotw(ps[i]->s, CDS, NULL, NULL, 0), 0);
        assert_int_equal(sotw(ps[i]->s, EDS, NULL, eds_names, 2), 0);
        raw_t got[4];
        size_t n = drain(ps[i]->s, got, 4);
        assert_int_equal(n, 2);
        for (size_t k = 0; k < n; k++)
            free(got[k].buf);
        ack_last(ps[i]->s, eds_names, 2);
        assert_false(ads_srv_stream_owes(ps[i]->s));
    }
    /* s1's clusters change: s1 only. */
    ads_srv_resource_t *r3[] = {cluster("a", 2)};
    assert_int_equal(replace(c1, r3, 1, true), 1);
    assert_int_equal(p1.owed_calls, 1);
    assert_int_equal(p2.owed_calls, 0);
    assert_false(ads_srv_stream_owes(p2.s));
    raw_t got[4];
    assert_int_equal(drain(p1.s, got, 4), 1);
    free(got[0].buf);
    assert_int_equal(ads_srv_stream_last_response(p1.s)->type, ADS_SRV_CDS);
    /* The shared endpoints change: both, and an EDS response each. */
    ads_srv_resource_t *r4[] = {endpoints("a", 2), endpoints("b", 1)};
    assert_int_equal(replace(e, r4, 2, true), 1);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ps[i]->owed_calls, i == 0 ? 2 : 1);
        assert_int_equal(drain(ps[i]->s, got, 4), 1);
        free(got[0].buf);
        const ads_srv_response_info_t *info = ads_srv_stream_last_response(ps[i]->s);
        assert_int_equal(info->type, ADS_SRV_EDS);
        assert_int_equal(info->n_resources, 1);
        assert_string_equal(ads_srv_resource_name(info->resources[0]), "a");
    }
    /* A view serving s1's endpoints and s2's clusters: a replace of both types that changes only
     * endpoints wakes s1 alone; one that changes only clusters wakes s2 alone. */
    ads_srv_view_t *x = ads_srv_view_new();
    ads_srv_resource_t *r5[] = {cluster("a", 1), endpoints("a", 2), endpoints("b", 1)};
    replace(x, r5, 3, true);
    ads_srv_stream_set_type_view(p1.s, ADS_SRV_EDS, x);
    ads_srv_stream_set_type_view(p2.s, ADS_SRV_CDS, x);
    for (int i = 0; i < 2; i++) {
        while (drain(ps[i]->s, got, 4) > 0)
            free(got[0].buf);
        ps[i]->owed_calls = 0;
    }
    ads_srv_resource_t *r6[] = {cluster("a", 1), endpoints("a", 3), endpoints("b", 1)};
    assert_int_equal(replace(x, r6, 3, true), 1);
    assert_int_equal(p1.owed_calls, 1);
    assert_int_equal(p2.owed_calls, 0);
    ads_srv_resource_t *r7[] = {cluster("a", 3), endpoints("a", 3), endpoints("b", 1)};
    assert_int_equal(replace(x, r7, 3, true), 1);
    assert_int_equal(p1.owed_calls, 1);
    assert_int_equal(p2.owed_calls, 1);
    ads_srv_stream_free(p1.s);
    ads_srv_stream_free(p2.s);
    /* The streams' references were their own: the views outlive them, and then go. */
    ads_srv_view_unref(e);
    ads_srv_view_unref(c1);
    ads_srv_view_unref(c2);
    ads_srv_view_unref(x);
}

/* Streams served endpoints from one view carry the view's resource itself: one copy of the
 * encoded assignment, however many streams send it. */
static void test_type_view_resources_are_shared_by_pointer(void **state)
{
    (void)state;
    ads_srv_view_t *e = ads_srv_view_new();
    ads_srv_resource_t *r[] = {endpoints("a", 1)};
    replace(e, r, 1, true);
    peer_t p[3];
    char *names[] = {"a"};
    for (int i = 0; i < 3; i++) {
        peer_open(&p[i], i == 2 ? ADS_SRV_DELTA : ADS_SRV_SOTW);
        ads_srv_stream_set_type_view(p[i].s, ADS_SRV_EDS, e);
        assert_int_equal(request(p[i].s, EDS, NULL, names, 1), 0);
        raw_t got[2];
        assert_int_equal(drain(p[i].s, got, 2), 1);
        free(got[0].buf);
        const ads_srv_response_info_t *info = ads_srv_stream_last_response(p[i].s);
        assert_int_equal(info->n_resources, 1);
        assert_ptr_equal(info->resources[0], ads_srv_view_find(e, ADS_SRV_EDS, "a"));
    }
    for (int i = 0; i < 3; i++)
        ads_srv_stream_free(p[i].s);
    ads_srv_view_unref(e);
}

/* ---- SotW: an ACK that repeats its subscription ------------------------------------------- */

static ads_srv_view_t *endpoints_view(void)
{
    ads_srv_view_t *v = ads_srv_view_new();
    ads_srv_resource_t *r[] = {endpoints("a", 1), endpoints("b", 1), endpoints("c", 1)};
    replace(v, r, 3, true);
    return v;
}

static size_t drain_free(ads_srv_stream_t *s)
{
    raw_t got[8];
    size_t n = drain(s, got, 8);
    for (size_t i = 0; i < n; i++)
        free(got[i].buf);
    return n;
}

static void test_sotw_same_names_again_keep_the_subscription(void **state)
{
    (void)state;
    ads_srv_view_t *v = endpoints_view();
    peer_t p;
    peer_open(&p, ADS_SRV_SOTW);
    ads_srv_stream_set_view(p.s, v);
    char *ab[] = {"a", "b"};
    assert_int_equal(sotw(p.s, EDS, NULL, ab, 2), 0);
    assert_int_equal(drain_free(p.s), 1);
    for (int i = 0; i < 3; i++) { /* the ACK, then the same request twice more */
        ack_last(p.s, ab, 2);
        assert_false(ads_srv_stream_owes(p.s));
    }
    /* Each answers the newest response: an ACK each, and still the two names. */
    ads_srv_type_status_t st;
    ads_srv_stream_type_status(p.s, ADS_SRV_EDS, &st);
    assert_int_equal(st.sync, ADS_SRV_SYNCED);
    assert_int_equal(st.names, 2);
    assert_int_equal(ads_srv_stream_counters(p.s)->acks, 3);
    assert_int_equal(ads_srv_stream_counters(p.s)->requests, 4);
    /* Still subscribed to a and b, not c: a change of b is sent, one of c is not. */
    ads_srv_resource_t *r[] = {endpoints("a", 1), endpoints("b", 2), endpoints("c", 2)};
    replace(v, r, 3, true);
    assert_int_equal(drain_free(p.s), 1);
    const ads_srv_response_info_t *info = ads_srv_stream_last_response(p.s);
    assert_int_equal(info->n_resources, 1);
    assert_string_equal(ads_srv_resource_name(info->resources[0]), "b");
    ack_last(p.s, ab, 2);
    assert_int_equal(ads_srv_stream_counters(p.s)->acks, 4);
    ads_srv_stream_free(p.s);
    ads_srv_view_unref(v);
}

static void test_sotw_changed_or_reordered_names_are_taken_as_they_are(void **state)
{
    (void)state;
    ads_srv_view_t *v = endpoints_view();
    peer_t p;
    peer_open(&p, ADS_SRV_SOTW);
    ads_srv_stream_set_view(p.s, v);
    char *ab[] = {"a", "b"}, *ba[] = {"b", "a"}, *abc[] = {"a", "b", "c"}, *a[] = {"a"};
    assert_int_equal(sotw(p.s, EDS, NULL, ab, 2), 0);
    assert_int_equal(drain_free(p.s), 1);
    ack_last(p.s, ba, 2); /* reordered: the same subscription */
    assert_false(ads_srv_stream_owes(p.s));
    ack_last(p.s, abc, 3); /* c added: sent */
    assert_int_equal(drain_free(p.s), 1);
    const ads_srv_response_info_t *info = ads_srv_stream_last_response(p.s);
    assert_int_equal(info->n_resources, 1);
    assert_string_equal(ads_srv_resource_name(info->resources[0]), "c");
    ack_last(p.s, a, 1); /* b and c dropped: a change of either is not sent */
    assert_false(ads_srv_stream_owes(p.s));
    ads_srv_type_status_t st;
    ads_srv_stream_type_status(p.s, ADS_SRV_EDS, &st);
    assert_int_equal(st.names, 1);
    ads_srv_resource_t *r[] = {endpoints("a", 1), endpoints("b", 2), endpoints("c", 2)};
    replace(v, r, 3, true);
    assert_false(ads_srv_stream_owes(p.s));
    /* A stale nonce's request is ignored, names and all; the same names with the current nonce
     * then are a change, not a repeat. */
    char nonce[32];
    snprintf(nonce, sizeof(nonce), "%s", ads_srv_stream_last_response(p.s)->nonce);
    assert_int_equal(sotw(p.s, EDS, "0", abc, 3), 0);
    assert_int_equal(ads_srv_stream_counters(p.s)->stale_nonces, 1);
    assert_false(ads_srv_stream_owes(p.s));
    assert_int_equal(sotw(p.s, EDS, nonce, abc, 3), 0);
    assert_int_equal(drain_free(p.s), 1);
    assert_int_equal(ads_srv_stream_last_response(p.s)->n_resources, 2);
    ads_srv_stream_free(p.s);
    ads_srv_view_unref(v);
}

/* The names need not come together on the wire: a request with a name after its type_url and
 * another field in between is the same subscription as the names in one run. */
static void test_sotw_names_spread_over_the_request_are_one_subscription(void **state)
{
    (void)state;
    ads_srv_view_t *v = endpoints_view();
    peer_t p;
    peer_open(&p, ADS_SRV_SOTW);
    ads_srv_stream_set_view(p.s, v);
    char *ab[] = {"a", "b"};
    assert_int_equal(sotw(p.s, EDS, NULL, ab, 2), 0);
    assert_int_equal(drain_free(p.s), 1);
    char nonce[32];
    snprintf(nonce, sizeof(nonce), "%s", ads_srv_stream_last_response(p.s)->nonce);
    /* resource_names "a", type_url, response_nonce, resource_names "b" */
    uint8_t buf[256];
    size_t n = 0, url = strlen(EDS), nl = strlen(nonce);
    buf[n++] = 0x1a, buf[n++] = 1, buf[n++] = 'a';
    buf[n++] = 0x22, buf[n++] = (uint8_t)url;
    memcpy(buf + n, EDS, url), n += url;
    buf[n++] = 0x2a, buf[n++] = (uint8_t)nl;
    memcpy(buf + n, nonce, nl), n += nl;
    buf[n++] = 0x1a, buf[n++] = 1, buf[n++] = 'b';
    assert_int_equal(feed_bytes(p.s, buf, n), 0);
    assert_int_equal(ads_srv_stream_counters(p.s)->acks, 1);
    assert_false(ads_srv_stream_owes(p.s));
    /* The same spread request again (its nonce is still the newest): nothing changes. */
    assert_int_equal(feed_bytes(p.s, buf, n), 0);
    assert_int_equal(ads_srv_stream_counters(p.s)->acks, 2);
    ads_srv_type_status_t st;
    ads_srv_stream_type_status(p.s, ADS_SRV_EDS, &st);
    assert_int_equal(st.names, 2);
    /* Cut short inside the last name: refused as before, nothing changed. */
    assert_int_equal(feed_bytes(p.s, buf, n - 1), -EBADMSG);
    ads_srv_stream_type_status(p.s, ADS_SRV_EDS, &st);
    assert_int_equal(st.names, 2);
    ads_srv_stream_free(p.s);
    ads_srv_view_unref(v);
}

int main(void)
{
    node_web.id = "web-1";
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_views_give_what_one_view_gives_sotw),
        cmocka_unit_test(test_type_views_give_what_one_view_gives_delta),
        cmocka_unit_test(test_replace_of_a_type_view_wakes_only_its_streams),
        cmocka_unit_test(test_type_view_resources_are_shared_by_pointer),
        cmocka_unit_test(test_sotw_same_names_again_keep_the_subscription),
        cmocka_unit_test(test_sotw_changed_or_reordered_names_are_taken_as_they_are),
        cmocka_unit_test(test_sotw_names_spread_over_the_request_are_one_subscription),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
