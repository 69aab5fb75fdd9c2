/* Header changes on a stream: what filters call (add, set, remove) and the route's header
 * operations (Envoy's request/response_headers_to_add and _to_remove). New strings live in the
 * stream's arena. */
#include <errno.h>
#include <string.h>

#include "proxy/http/hcm_conn.h"
#include "proxy/core/strbuf.h"
#include "proxy/net/tls_io.h"

http_headers_t *http_stream_request_headers(http_stream_t *s)
{
    return &s->req.headers;
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
void hcm_apply_header_ops(http_stream_t *s, http_headers_t *h, const route_header_ops_t *ops)
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

void hcm_apply_request_ops(http_stream_t *s, const route_header_ops_t *ops)
{
    hcm_apply_header_ops(s, &s->req.headers, ops);
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

void hcm_apply_xfcc(hcm_conn_t *c, http_stream_t *s)
{
    http_headers_t *h = &s->req.headers;
    hcm_xfcc_mode_t mode = c->cfg->xfcc;
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
