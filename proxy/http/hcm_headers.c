/* Header changes on a stream: what filters call (add, set, remove), the route's header
 * operations (Envoy's request/response_headers_to_add and _to_remove), and the proxy headers the
 * connection manager adds to every request (x-request-id, x-forwarded-*). New strings live in
 * the stream's arena. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proxy/http/hcm_conn.h"
#include "base/strbuf.h"
#include "proxy/net/tls_io.h"

http_headers_t *http_stream_request_headers(http_stream_t *s)
{
    return &s->head.headers;
}

http_headers_t *http_stream_response_headers(http_stream_t *s)
{
    return &s->resp_headers;
}

static int headers_grow(arena_t *a, http_headers_t *h)
{
    uint32_t cap = h->cap ? h->cap * 2 : 16;
    http_header_t *v = arena_alloc(a, cap * sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    if (h->n)
        memcpy(v, h->v, h->n * sizeof(*v));
    h->v = v;
    h->cap = cap;
    return 0;
}

int http_stream_header_add(http_stream_t *s, http_headers_t *h, const char *name, size_t name_len,
                           const char *value, size_t value_len)
{
    if (h->n == h->cap && headers_grow(&s->arena, h) < 0)
        return -ENOMEM;
    char *n = arena_strndup(&s->arena, name, name_len);
    char *v = arena_strndup(&s->arena, value, value_len);
    if (n == NULL || v == NULL)
        return -ENOMEM;
    h->v[h->n++] = (http_header_t){n, v, (uint32_t)name_len, (uint32_t)value_len};
    return 0;
}

void http_headers_remove(http_headers_t *h, const char *lower)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < h->n; i++)
        if (!http_name_is(&h->v[i], lower))
            h->v[k++] = h->v[i];
    h->n = k;
}

int http_stream_header_set(http_stream_t *s, http_headers_t *h, const char *lower,
                           const char *value, size_t value_len)
{
    http_headers_remove(h, lower);
    return http_stream_header_add(s, h, lower, strlen(lower), value, value_len);
}

/* Applies a route/vhost/table header_ops block (Envoy's header_to_add / headers_to_remove). */
void http_stream_apply_header_ops(http_stream_t *s, http_headers_t *h,
                                  const route_header_ops_t *ops)
{
    for (size_t i = 0; i < ops->n_remove; i++)
        http_headers_remove(h, ops->remove[i]);
    for (size_t i = 0; i < ops->n_add; i++) {
        const route_header_add_t *a = &ops->add[i];
        size_t vlen = strlen(a->value);
        if (vlen == 0 && !a->keep_empty_value)
            continue;
        bool present = http_headers_find(h, a->name) != NULL;
        switch (a->action) {
        case HDR_ADD_IF_ABSENT:
            if (!present)
                http_stream_header_add(s, h, a->name, strlen(a->name), a->value, vlen);
            break;
        case HDR_OVERWRITE_IF_EXISTS:
            if (present)
                http_stream_header_set(s, h, a->name, a->value, vlen);
            break;
        case HDR_OVERWRITE_IF_EXISTS_OR_ADD:
            http_stream_header_set(s, h, a->name, a->value, vlen);
            break;
        default:
            http_stream_header_add(s, h, a->name, strlen(a->name), a->value, vlen);
            break;
        }
    }
}

/* ---- x-forwarded-client-cert (forward_client_cert_details) -------------------------------- */

/* This hop's element, Envoy's order: By (our SPIFFE ID), Hash (the client certificate's
 * SHA-256), then Subject, URI and DNS as set_current_client_cert_details asks. Cert and Chain
 * (URL-encoded PEM) are not written. Built once per connection: the peer cannot change. */
static const char *xfcc_element(hcm_conn_t *c)
{
    if (c->xfcc)
        return c->xfcc;
    const tls_session_t *ts = tls_io_session(c->tls);
    const hcm_xfcc_details_t *d = &c->cfg->xfcc_set;
    strbuf_t sb = {0};
    const char *by = c->tls_own_id;
    char hash[65];
    if (by)
        sb_printf(&sb, "By=%s", by);
    if (tls_session_peer_cert_sha256(ts, hash) == 0)
        sb_printf(&sb, "%sHash=%s", sb.len ? ";" : "", hash);
    identity_cert_info_t info;
    if ((d->subject || d->uri || d->dns) && tls_session_peer_cert_info(ts, 0, &info) == 0) {
        if (d->subject)
            sb_printf(&sb, "%sSubject=\"%s\"", sb.len ? ";" : "", info.subject);
        for (size_t i = 0; i < info.n_sans; i++) {
            bool uri = info.sans[i].type == IDENTITY_SAN_URI;
            if (uri ? d->uri : d->dns)
                sb_printf(&sb, "%s%s=%s", sb.len ? ";" : "", uri ? "URI" : "DNS",
                          info.sans[i].value);
        }
        identity_cert_info_free(&info);
    }
    c->xfcc = sb_take(&sb);
    return c->xfcc;
}

static void apply_xfcc(hcm_conn_t *c, http_stream_t *s)
{
    http_headers_t *h = &s->head.headers;
    hcm_xfcc_mode_t mode = s->cfg->xfcc;
    if (mode == HCM_XFCC_ALWAYS_FORWARD_ONLY || (mode == HCM_XFCC_FORWARD_ONLY && c->tls))
        return;
    if (c->tls == NULL || mode == HCM_XFCC_SANITIZE || mode == HCM_XFCC_FORWARD_ONLY) {
        http_headers_remove(h, "x-forwarded-client-cert");
        return;
    }
    const char *el = xfcc_element(c);
    if (el == NULL)
        return;
    size_t n = strlen(el);
    const http_header_t *old = http_headers_find(h, "x-forwarded-client-cert");
    if (mode == HCM_XFCC_APPEND_FORWARD && old && old->value_len) {
        size_t len = old->value_len + 1 + n;
        char *v = arena_alloc(&s->arena, len + 1);
        if (v == NULL)
            return;
        memcpy(v, old->value, old->value_len);
        v[old->value_len] = ',';
        memcpy(v + old->value_len + 1, el, n + 1);
        http_stream_header_set(s, h, "x-forwarded-client-cert", v, len);
        return;
    }
    http_stream_header_set(s, h, "x-forwarded-client-cert", el, n);
}

/* ---- proxy headers ----------------------------------------------------------------------- */

/* xxxxxxxx-xxxx-4xxx-Yxxx-xxxxxxxxxxxx from 128 random bits (Y is 8..b), NUL-terminated. */
static void format_uuid4(char out[37], uint64_t a, uint64_t b)
{
    static const char hex[] = "0123456789abcdef";
    a = (a & ~0xf000ull) | 0x4000ull;                 /* version 4 */
    b = (b & ~(0xc000ull << 48)) | (0x8000ull << 48); /* variant 10 */
    uint64_t parts[2] = {a, b};
    int o = 0;
    for (int i = 0; i < 32; i++) {
        if (i == 8 || i == 12 || i == 16 || i == 20)
            out[o++] = '-';
        uint64_t w = parts[i / 16];
        out[o++] = hex[(w >> (60 - 4 * (i % 16))) & 0xf];
    }
    out[o] = '\0';
}

void hcm_add_proxy_headers(hcm_conn_t *c, http_stream_t *s)
{
    const hcm_config_t *cfg = s->cfg;
    http_headers_t *h = &s->head.headers;
    const http_header_t *rid = http_headers_find(h, "x-request-id");
    if (rid == NULL && cfg->generate_request_id) {
        /* A version-4 UUID from the worker's generator: unique enough to trace a request. */
        uint64_t a = c->worker->rng =
            c->worker->rng * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t b = c->worker->rng =
            c->worker->rng * 6364136223846793005ull + 1442695040888963407ull;
        format_uuid4(s->request_id, a, b);
        http_stream_header_add(s, h, "x-request-id", 12, s->request_id, 36);
    } else if (rid) {
        snprintf(s->request_id, sizeof(s->request_id), "%.*s", (int)rid->value_len, rid->value);
    }
    if (http_headers_find(h, "x-forwarded-proto") == NULL)
        http_stream_header_add(s, h, "x-forwarded-proto", 17, c->tls ? "https" : "http",
                               c->tls ? 5 : 4);
    apply_xfcc(c, s);
    if (cfg->use_remote_address && !cfg->skip_xff_append && c->peer[0]) {
        const http_header_t *xff = http_headers_find(h, "x-forwarded-for");
        size_t plen = strlen(c->peer);
        if (xff) {
            size_t n = xff->value_len + 2 + plen;
            char *v = arena_alloc(&s->arena, n + 1);
            if (v) {
                snprintf(v, n + 1, "%.*s, %s", (int)xff->value_len, xff->value, c->peer);
                http_stream_header_set(s, h, "x-forwarded-for", v, n);
            }
        } else {
            http_stream_header_add(s, h, "x-forwarded-for", 15, c->peer, plen);
        }
    }
}
