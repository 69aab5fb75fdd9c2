/* One ADS call on the serving side: the requests it takes (the node of the first, the
 * subscriptions per type, ACKs and NACKs told by their nonce), what a view change makes it owe,
 * and what proxy-status reads of it. Responses are built in ads_server_response.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xds/server/ads_server_internal.h"

#include "envoy/config/core/v3/base.pb-c.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "google/rpc/status.pb-c.h"

typedef Envoy__Service__Discovery__V3__DiscoveryRequest sotw_request_t;
typedef Envoy__Service__Discovery__V3__DeltaDiscoveryRequest delta_request_t;

static bool full_set(ads_srv_type_t t)
{
    return t == ADS_SRV_CDS || t == ADS_SRV_LDS;
}

void ads_srv_count(ads_srv_stream_t *s, size_t field_offset, size_t n)
{
    *(uint64_t *)((char *)&s->counters + field_offset) += n;
    if (s->opts.totals)
        *(uint64_t *)((char *)s->opts.totals + field_offset) += n;
}

ads_srv_stream_t *ads_srv_stream_new(const ads_srv_stream_opts_t *opts)
{
    ads_srv_stream_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->opts = *opts;
    for (int t = 0; t < ADS_SRV_NTYPES; t++)
        if ((s->types[t].version_acked = strdup("")) == NULL) {
            ads_srv_stream_free(s);
            return NULL;
        }
    return s;
}

void ads_srv_release_last(ads_srv_stream_t *s)
{
    for (size_t i = 0; i < s->nlast_res; i++)
        ads_srv_resource_unref(s->last_res[i]);
    free(s->last_res);
    s->last_res = NULL;
    s->nlast_res = 0;
}

void ads_srv_stream_free(ads_srv_stream_t *s)
{
    if (s == NULL)
        return;
    ads_srv_stream_set_view(s, NULL);
    for (int t = 0; t < ADS_SRV_NTYPES; t++) {
        ads_srv_tstate_t *ts = &s->types[t];
        ads_srv_table_clear(&ts->table);
        free(ts->pending);
        free(ts->initial_version);
        free(ts->version_acked);
        free(ts->last_error);
    }
    ads_srv_release_last(s);
    if (s->first)
        protobuf_c_message_free_unpacked(s->first, NULL);
    free(s);
}

const Envoy__Config__Core__V3__Node *ads_srv_stream_node(const ads_srv_stream_t *s)
{
    return s->node;
}

ads_srv_mode_t ads_srv_stream_mode(const ads_srv_stream_t *s)
{
    return s->opts.mode;
}

const ads_srv_counters_t *ads_srv_stream_counters(const ads_srv_stream_t *s)
{
    return &s->counters;
}

static bool type_owes(const ads_srv_stream_t *s, ads_srv_type_t t)
{
    const ads_srv_tstate_t *ts = &s->types[t];
    return s->views[t] && ts->requested && (!ts->answered || ts->full || ts->npending);
}

bool ads_srv_stream_owes(const ads_srv_stream_t *s)
{
    for (int t = 0; t < ADS_SRV_NTYPES; t++)
        if (type_owes(s, (ads_srv_type_t)t))
            return true;
    return false;
}

int ads_srv_stream_set_type_view(ads_srv_stream_t *s, ads_srv_type_t t, ads_srv_view_t *v)
{
    if ((unsigned)t >= ADS_SRV_NTYPES)
        return -EINVAL;
    if (s->views[t] == v)
        return 0;
    if (s->views[t]) {
        ads_srv_view_detach(s->views[t], t, s);
        ads_srv_view_unref(s->views[t]);
    }
    s->views[t] = v ? ads_srv_view_ref(v) : NULL;
    if (v)
        ads_srv_view_attach(v, t, s);
    s->types[t].full = true; /* another view: compare everything with what was sent */
    return 0;
}

void ads_srv_stream_set_view(ads_srv_stream_t *s, ads_srv_view_t *v)
{
    for (int t = 0; t < ADS_SRV_NTYPES; t++)
        ads_srv_stream_set_type_view(s, (ads_srv_type_t)t, v);
}

const ads_srv_view_t *ads_srv_stream_type_view(const ads_srv_stream_t *s, ads_srv_type_t t)
{
    return (unsigned)t < ADS_SRV_NTYPES ? s->views[t] : NULL;
}

void ads_srv_stream_touch(ads_srv_stream_t *s, ads_srv_type_t t, const ads_srv_resource_t *r,
                          const char *name)
{
    ads_srv_tstate_t *ts = &s->types[t];
    (void)r;
    if (!ts->requested || ts->full)
        return;
    bool before = ads_srv_stream_owes(s);
    ads_srv_entry_t *e = ads_srv_table_find(&ts->table, name);
    if (!(ts->wildcard && full_set(t)) && (e == NULL || !(e->subscribed || e->sent)))
        return; /* a name the stream neither asked for nor holds */
    if (s->opts.mode == ADS_SRV_SOTW && full_set(t))
        ts->full = true; /* the whole set goes again */
    else if (e == NULL && (e = ads_srv_table_get(&ts->table, name)) == NULL)
        ts->full = true; /* out of memory: a rescan finds it */
    else if (ads_srv_pending_add(ts, e) < 0)
        ts->full = true;
    if (!before)
        s->wake = true;
}

void ads_srv_stream_notify(ads_srv_stream_t *s)
{
    if (!s->wake)
        return;
    s->wake = false;
    if (s->opts.owed)
        s->opts.owed(s->opts.ctx, s);
}

/* ---- status -------------------------------------------------------------------------------- */

int ads_srv_stream_type_status(const ads_srv_stream_t *s, ads_srv_type_t t,
                               ads_srv_type_status_t *out)
{
    if ((unsigned)t >= ADS_SRV_NTYPES)
        return -EINVAL;
    const ads_srv_tstate_t *ts = &s->types[t];
    memset(out, 0, sizeof(*out));
    if (!ts->requested)
        out->sync = ADS_SRV_NOT_REQUESTED;
    else if (!ts->answered)
        out->sync = ADS_SRV_NOT_SENT;
    else if (ts->nacked)
        out->sync = ADS_SRV_NACKED;
    else if (ts->acked && !type_owes(s, t))
        out->sync = ADS_SRV_SYNCED;
    else
        out->sync = ADS_SRV_STALE;
    out->version_sent = ts->version_sent;
    out->nonce = ts->nonce;
    out->version_acked = ts->version_acked;
    out->last_error = ts->last_error;
    out->last_error_code = ts->last_error_code;
    out->wildcard = ts->wildcard;
    out->names = ts->names;
    return 0;
}

/* ---- requests ------------------------------------------------------------------------------ */

static int fail(char *err, size_t errlen, int rc, const char *fmt, const char *what)
{
    if (errlen)
        snprintf(err, errlen, fmt, what);
    return rc;
}

/* The checks every request passes before it changes anything. */
static int check_names(char *const *names, size_t n, char *err, size_t errlen)
{
    if (n > ADS_SRV_NAMES_MAX)
        return fail(err, errlen, -EPROTO, "%s: more names than a stream may subscribe to",
                    "request");
    for (size_t i = 0; i < n; i++)
        if (names[i] == NULL || strlen(names[i]) > ADS_SRV_NAME_MAX)
            return fail(err, errlen, -EPROTO, "%s: a resource name over 4096 bytes", "request");
    return 0;
}

static int check_node(ads_srv_stream_t *s, const Envoy__Config__Core__V3__Node *node, char *err,
                      size_t errlen)
{
    if (s->node == NULL && node == NULL)
        return fail(err, errlen, -EPROTO, "%s", "the stream's first request carries no node");
    if (s->node && node && strcmp(s->node->id ? s->node->id : "", node->id ? node->id : "") != 0)
        return fail(err, errlen, -EPROTO, "a request names node '%s', not the stream's first",
                    node->id ? node->id : "");
    return 0;
}

/* The answer to the newest response of ts: an ACK, or a NACK with its error. version (borrowed)
 * is what the client now runs, or NULL to keep the last one. */
static int take_answer(ads_srv_stream_t *s, ads_srv_tstate_t *ts, const char *version,
                       const Google__Rpc__Status *error)
{
    char *acked = version ? strdup(version) : NULL;
    if (version && acked == NULL)
        return -ENOMEM;
    if (error) {
        char *msg = strdup(error->message ? error->message : "");
        if (msg == NULL) {
            free(acked);
            return -ENOMEM;
        }
        free(ts->last_error);
        ts->last_error = msg;
        ts->last_error_code = error->code;
        ts->nacked = true;
        ts->acked = false;
        ADS_SRV_COUNT(s, nacks, 1);
    } else {
        ts->nacked = false;
        ts->acked = true;
        ADS_SRV_COUNT(s, acks, 1);
    }
    if (acked) {
        free(ts->version_acked);
        ts->version_acked = acked;
    }
    return 0;
}

static bool nonce_current(const ads_srv_tstate_t *ts, const char *nonce)
{
    return ts->answered && ts->nonce[0] && strcmp(nonce, ts->nonce) == 0;
}

static void unsubscribe(ads_srv_tstate_t *ts, ads_srv_entry_t *e)
{
    e->subscribed = false;
    e->tell_absent = false;
    ts->names--;
}

/* SotW: resource_names is the whole subscription. For listeners and clusters "*", or no names
 * while the stream never named any, is the wildcard. */
static int sotw_subscribe(ads_srv_stream_t *s, ads_srv_type_t t, const sotw_request_t *req)
{
    ads_srv_tstate_t *ts = &s->types[t];
    bool star = false, changed = !ts->requested;
    for (size_t i = 0; i < req->n_resource_names; i++) {
        const char *name = req->resource_names[i];
        if (full_set(t) && strcmp(name, "*") == 0) {
            star = true;
            continue;
        }
        ads_srv_entry_t *e = ads_srv_table_get(&ts->table, name);
        if (e == NULL)
            return -ENOMEM;
        if (!e->subscribed) {
            e->subscribed = true;
            ads_srv_entry_hold(ts, e, false, 0); /* asked for anew: sent again, held or not */
            ts->names++;
            changed = true;
            if (!full_set(t) && ads_srv_pending_add(ts, e) < 0)
                ts->full = true;
        }
        e->tell_absent = true; /* scratch: named by this request */
    }
    for (size_t i = 0; i < ts->table.nbuckets; i++)
        for (ads_srv_entry_t *e = ts->table.buckets[i]; e; e = e->next) {
            if (e->subscribed && !e->tell_absent) {
                unsubscribe(ts, e);
                ads_srv_entry_hold(ts, e, false, 0);
                changed = true;
            }
            e->tell_absent = false;
        }
    if (req->n_resource_names)
        ts->explicit_seen = true;
    bool wildcard = full_set(t) && (star || (req->n_resource_names == 0 && !ts->explicit_seen));
    if (wildcard != ts->wildcard || (changed && full_set(t)))
        ts->full = true;
    ts->wildcard = wildcard;
    ads_srv_table_sweep(&ts->table);
    return 0;
}

/* ws: what the request named, as it came on the wire (NULL: not scanned); names_same: its
 * resource_names are those of the subscription taken last (req then carries none: they were not
 * decoded). */
static int sotw_request(ads_srv_stream_t *s, ads_srv_type_t t, const sotw_request_t *req,
                        const ads_srv_wire_scan_t *ws, bool names_same)
{
    ads_srv_tstate_t *ts = &s->types[t];
    const char *nonce = req->response_nonce ? req->response_nonce : "";
    if (nonce[0] && ts->answered) {
        if (!nonce_current(ts, nonce)) {
            /* "The management server should not send a DiscoveryResponse for any
             * DiscoveryRequest that has a stale nonce": the newer response is answered later. */
            ADS_SRV_COUNT(s, stale_nonces, 1);
            ADS_SRV_COUNT(s, requests_ignored, 1);
            return 0;
        }
        int rc = take_answer(s, ts, req->version_info, req->error_detail);
        if (rc < 0)
            return rc;
    } else if (!ts->requested && req->version_info && req->version_info[0]) {
        if ((ts->initial_version = strdup(req->version_info)) == NULL)
            return -ENOMEM;
    }
    int rc = names_same ? 0 : sotw_subscribe(s, t, req);
    /* The subscription taken, as the wire said it: the next request that repeats it is not
     * decoded name by name again. */
    ts->names_known = rc == 0 && ws;
    ts->names_wire_hash = ws ? ws->names_hash : 0;
    ts->names_wire_count = ws ? ws->names : 0;
    ts->requested = true;
    ADS_SRV_COUNT(s, requests, 1);
    return rc;
}

/* Delta: the client's first request of a type lists what it holds; the server does not send
 * those again while they are unchanged. */
static int delta_initial(ads_srv_tstate_t *ts, const delta_request_t *req)
{
    for (size_t i = 0; i < req->n_initial_resource_versions; i++) {
        const char *name = req->initial_resource_versions[i]->key;
        const char *version = req->initial_resource_versions[i]->value;
        ads_srv_entry_t *e = name ? ads_srv_table_get(&ts->table, name) : NULL;
        if (name && e == NULL)
            return -ENOMEM;
        if (e == NULL)
            continue;
        char *end = NULL;
        unsigned long long h = version ? strtoull(version, &end, 16) : 0;
        ads_srv_entry_hold(ts, e, true, (end && *end == '\0' && strlen(version) == 16) ? h : 0);
    }
    return 0;
}

static int delta_subscribe(ads_srv_tstate_t *ts, ads_srv_type_t t, const delta_request_t *req,
                           bool first)
{
    for (size_t i = 0; i < req->n_resource_names_subscribe; i++) {
        const char *name = req->resource_names_subscribe[i];
        ts->explicit_seen = true;
        if (full_set(t) && strcmp(name, "*") == 0) {
            ts->wildcard = true;
            ts->full = true;
            continue;
        }
        ads_srv_entry_t *e = ads_srv_table_get(&ts->table, name);
        if (e == NULL)
            return -ENOMEM;
        if (!e->subscribed) {
            e->subscribed = true;
            ts->names++;
        }
        /* "the server must still provide those resources in the response" even when it
         * believes the client has them, unless the client just said it holds that version. */
        if (!(first && e->sent))
            ads_srv_entry_hold(ts, e, false, 0);
        e->tell_absent = true;
        if (ads_srv_pending_add(ts, e) < 0)
            ts->full = true;
    }
    for (size_t i = 0; i < req->n_resource_names_unsubscribe; i++) {
        const char *name = req->resource_names_unsubscribe[i];
        if (full_set(t) && strcmp(name, "*") == 0) {
            ts->wildcard = false;
            ts->full = true; /* what only the wildcard brought is removed */
            continue;
        }
        ads_srv_entry_t *e = ads_srv_table_find(&ts->table, name);
        if (e == NULL || !e->subscribed)
            continue; /* "it can simply ignore these phantom unsubscriptions" */
        unsubscribe(ts, e);
        if (ts->wildcard && full_set(t)) {
            /* Still wanted through the wildcard: the client cannot tell, so it is sent again,
             * or removed when the wildcard does not cover it. */
            ads_srv_entry_hold(ts, e, true, 0);
            if (ads_srv_pending_add(ts, e) < 0)
                ts->full = true;
        } else {
            ads_srv_entry_hold(ts, e, false, 0);
        }
    }
    return 0;
}

static int delta_request(ads_srv_stream_t *s, ads_srv_type_t t, const delta_request_t *req)
{
    ads_srv_tstate_t *ts = &s->types[t];
    const char *nonce = req->response_nonce ? req->response_nonce : "";
    bool first = !ts->requested;
    if (nonce[0] && ts->answered) {
        int rc;
        /* A stale nonce's answer is ignored, but "the server must honor changes to the
         * subscription state even if the nonce is stale". */
        if (!nonce_current(ts, nonce))
            ADS_SRV_COUNT(s, stale_nonces, 1);
        else if ((rc = take_answer(s, ts, req->error_detail ? NULL : ts->version_sent,
                                   req->error_detail)) < 0)
            return rc;
    }
    int rc = first ? delta_initial(ts, req) : 0;
    if (rc == 0)
        rc = delta_subscribe(ts, t, req, first);
    if (first) {
        if (full_set(t) && req->n_resource_names_subscribe == 0 &&
            req->n_resource_names_unsubscribe == 0)
            ts->wildcard = true; /* the legacy wildcard */
        ts->full = true;
    }
    ads_srv_table_sweep(&ts->table);
    ts->requested = true;
    ADS_SRV_COUNT(s, requests, 1);
    return rc;
}

static int first_request(ads_srv_stream_t *s, ProtobufCMessage *m,
                         const Envoy__Config__Core__V3__Node *node)
{
    if (s->node || node == NULL)
        return 0;
    s->first = m;
    s->node = node;
    return 1;
}

/* SotW: whether buf repeats the resource_names of the last request of its type, by the scan
 * ws of it. */
static bool sotw_names_repeated(const ads_srv_stream_t *s, const ads_srv_wire_scan_t *ws)
{
    if (ws->type_url == NULL || ws->names == 0)
        return false;
    for (int t = 0; t < ADS_SRV_NTYPES; t++) {
        const char *url = ads_srv_type_url((ads_srv_type_t)t);
        if (strlen(url) != ws->type_url_len || memcmp(url, ws->type_url, ws->type_url_len) != 0)
            continue;
        const ads_srv_tstate_t *ts = &s->types[t];
        return ts->requested && ts->names_known && ts->names_wire_hash == ws->names_hash &&
               ts->names_wire_count == ws->names;
    }
    return false;
}

/* Decodes a request; a SotW one that repeats its type's last resource_names is decoded without
 * them (*names_same), and *ws (zeroed when not SotW or not scanned: *scanned) says what it
 * named. */
static ProtobufCMessage *decode(ads_srv_stream_t *s, const uint8_t *buf, size_t len,
                                ads_srv_wire_scan_t *ws, bool *scanned, bool *names_same)
{
    bool delta = s->opts.mode == ADS_SRV_DELTA;
    *scanned = *names_same = false;
    if (delta)
        return protobuf_c_message_unpack(
            &envoy__service__discovery__v3__delta_discovery_request__descriptor, NULL, len, buf);
    const ProtobufCMessageDescriptor *d =
        &envoy__service__discovery__v3__discovery_request__descriptor;
    *scanned = ads_srv_wire_scan(buf, len, ws) == 0;
    if (!*scanned || !sotw_names_repeated(s, ws))
        return protobuf_c_message_unpack(d, NULL, len, buf);
    uint8_t *rest = malloc(len - ws->names_bytes + 1);
    if (rest == NULL)
        return protobuf_c_message_unpack(d, NULL, len, buf);
    size_t n = ads_srv_wire_strip_names(buf, len, rest);
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, n, rest);
    free(rest);
    *names_same = m != NULL;
    return m ? m : protobuf_c_message_unpack(d, NULL, len, buf);
}

int ads_srv_stream_on_request(ads_srv_stream_t *s, const uint8_t *buf, size_t len, char *err,
                              size_t errlen)
{
    bool delta = s->opts.mode == ADS_SRV_DELTA;
    ads_srv_wire_scan_t ws;
    bool scanned, names_same;
    ProtobufCMessage *m = decode(s, buf, len, &ws, &scanned, &names_same);
    if (m == NULL) {
        ADS_SRV_COUNT(s, requests_bad, 1);
        return fail(err, errlen, -EBADMSG, "the request does not decode as a %s",
                    delta ? "DeltaDiscoveryRequest" : "DiscoveryRequest");
    }
    const sotw_request_t *sr = delta ? NULL : (const sotw_request_t *)m;
    const delta_request_t *dr = delta ? (const delta_request_t *)m : NULL;
    const Envoy__Config__Core__V3__Node *node = delta ? dr->node : sr->node;
    const char *type_url = delta ? dr->type_url : sr->type_url;
    int rc = check_node(s, node, err, errlen);
    if (rc == 0 && (type_url == NULL || type_url[0] == '\0'))
        rc = fail(err, errlen, -EPROTO, "%s", "a request without type_url");
    if (rc == 0 && delta)
        rc = check_names(dr->resource_names_subscribe, dr->n_resource_names_subscribe, err, errlen);
    if (rc == 0 && delta)
        rc = check_names(dr->resource_names_unsubscribe, dr->n_resource_names_unsubscribe, err,
                         errlen);
    if (rc == 0 && !delta)
        rc = check_names(sr->resource_names, sr->n_resource_names, err, errlen);
    int t = rc == 0 ? ads_srv_type_of(type_url) : -1;
    if (rc == 0 && t >= 0 &&
        s->types[t].names + (delta ? dr->n_resource_names_subscribe : 0) > ADS_SRV_NAMES_MAX)
        rc = fail(err, errlen, -EPROTO, "%s: more names than a stream may subscribe to", "request");
    if (rc < 0) {
        ADS_SRV_COUNT(s, requests_bad, 1);
        protobuf_c_message_free_unpacked(m, NULL);
        return rc;
    }
    bool kept = first_request(s, m, node) > 0;
    if (t < 0) {
        ADS_SRV_COUNT(s, requests_ignored, 1); /* a type this server does not serve */
    } else {
        rc = delta ? delta_request(s, t, dr)
                   : sotw_request(s, t, sr, scanned ? &ws : NULL, names_same);
        if (rc < 0)
            fail(err, errlen, rc, "%s", "out of memory");
    }
    if (!kept)
        protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}
