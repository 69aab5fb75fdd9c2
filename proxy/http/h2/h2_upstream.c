/* The HTTP/2 upstream codec: a protocol-neutral request becomes a stream on a pooled HTTP/2
 * connection (pseudo-headers from the head, fields lowercased, the fields of one hop dropped,
 * the body through a deferred data provider, trailers as a last HEADERS frame), and the stream's
 * frames come back as head, body and trailer events. Response bytes are handed on only while the
 * router reads (pause/resume) and given back to the peer's flow-control window only once handed
 * on, so a slow client holds the upstream back instead of filling memory. Heap memory the state
 * owns (request queue, trailers, a response head, bytes held while paused) is freed whenever the
 * codec lets its stream go. */
#include "proxy/http/h2/h2_upstream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/core/log.h"
#include "proxy/http/http_stream.h"
#include "proxy/upstream/h2_pool.h"

#define H2_UP_MAX_HEAD   (96 * 1024)   /* response head or trailer bytes */
#define H2_UP_HIGH_WATER (1024 * 1024) /* unsent request bytes before congested() */

typedef struct h2_field {
    uint32_t name_off, name_len, value_off, value_len;
} h2_field_t;

/* Bytes with a read offset. */
typedef struct h2_bytes {
    char *data;
    size_t off, len, cap;
} h2_bytes_t;

typedef struct h2_up {
    h2_stream_t hs; /* the link to the connection (attached from start to the end) */
    void *owner;
    const http_up_events_t *ev;
    bool https;          /* the cluster speaks TLS: :scheme https */
    bool head_request;   /* a HEAD: the response has no body whatever follows its head */
    bool head_done;      /* the final response head was handed on */
    bool response_seen;  /* a frame of the response arrived */
    bool resp_ended;     /* END_STREAM arrived (its end handed on, or pending) */
    bool end_pending;    /* the end (or trailers_pending) waits for resume */
    bool trailers_ready; /* the pending end is the trailers in hb/fields */
    bool paused;
    bool delivering; /* inside resume's hand-on */
    bool body_end;   /* the whole request body is queued */
    bool congested;  /* congested() said so: on_drained is owed */
    int status;
    h2_bytes_t q;    /* request body not yet taken by the session */
    h2_bytes_t pend; /* response body held while paused */
    h2_bytes_t hb;   /* the current header block's names and values */
    h2_field_t *fields;
    uint32_t n_fields, cap_fields;
    nghttp2_nv *trailers; /* request trailers (names and values in trailer_buf) */
    size_t n_trailers;
    char *trailer_buf;
} h2_up_t;

static void up_free(h2_up_t *u)
{
    free(u->q.data);
    free(u->pend.data);
    free(u->hb.data);
    free(u->fields);
    free(u->trailers);
    free(u->trailer_buf);
    u->q = u->pend = u->hb = (h2_bytes_t){0};
    u->fields = NULL;
    u->n_fields = u->cap_fields = 0;
    u->trailers = NULL;
    u->trailer_buf = NULL;
    u->n_trailers = 0;
}

/* Appends len bytes to b; 0 or -ENOMEM. */
static int bytes_put(h2_bytes_t *b, const void *data, size_t len)
{
    if (b->off && b->off == b->len)
        b->off = b->len = 0;
    if (b->len + len > b->cap) {
        if (b->off) { /* room at the front first */
            memmove(b->data, b->data + b->off, b->len - b->off);
            b->len -= b->off;
            b->off = 0;
        }
        if (b->len + len > b->cap) {
            size_t cap = b->cap ? b->cap : 4096;
            while (cap < b->len + len)
                cap *= 2;
            char *d = realloc(b->data, cap);
            if (d == NULL)
                return -ENOMEM;
            b->data = d;
            b->cap = cap;
        }
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

static size_t bytes_unread(const h2_bytes_t *b)
{
    return b->len - b->off;
}

/* ---- events from the connection ------------------------------------------------------------ */

static void up_on_ready(void *owner, int status)
{
    h2_up_t *u = owner;
    if (status < 0) {
        log_debug("router: HTTP/2 connection failed: %s", uv_strerror(status));
        up_free(u);
        u->ev->on_reset(u->owner, HTTP_UP_CONNECT_FAILED, false);
        return;
    }
    u->ev->on_ready(u->owner);
}

static int up_on_header(void *owner, const nghttp2_frame *frame, const uint8_t *name,
                        size_t name_len, const uint8_t *value, size_t value_len)
{
    (void)frame;
    h2_up_t *u = owner;
    u->response_seen = true;
    if (!u->head_done && name_len == 7 && memcmp(name, ":status", 7) == 0) {
        int st = 0;
        for (size_t i = 0; i < value_len && i < 3; i++)
            st = st * 10 + (value[i] - '0');
        u->status = st;
        return 0;
    }
    if (name_len && name[0] == ':')
        return 0; /* nghttp2 vouched for the pseudo-headers */
    if (u->hb.len + name_len + value_len > H2_UP_MAX_HEAD)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* reset: too large (a bad head) */
    if (u->n_fields == u->cap_fields) {
        uint32_t cap = u->cap_fields ? u->cap_fields * 2 : 32;
        h2_field_t *f = realloc(u->fields, cap * sizeof(*f));
        if (f == NULL)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        u->fields = f;
        u->cap_fields = cap;
    }
    h2_field_t *f = &u->fields[u->n_fields];
    f->name_off = (uint32_t)u->hb.len;
    f->name_len = (uint32_t)name_len;
    if (bytes_put(&u->hb, name, name_len) < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    f->value_off = (uint32_t)u->hb.len;
    f->value_len = (uint32_t)value_len;
    if (bytes_put(&u->hb, value, value_len) < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    u->n_fields++;
    return 0;
}

/* The collected block as a header list (v: the caller's, room for n_fields). */
static http_headers_t block_headers(h2_up_t *u, http_header_t *v)
{
    for (uint32_t i = 0; i < u->n_fields; i++) {
        const h2_field_t *f = &u->fields[i];
        v[i] = (http_header_t){.name = u->hb.data + f->name_off,
                               .name_len = f->name_len,
                               .value = u->hb.data + f->value_off,
                               .value_len = f->value_len};
    }
    return (http_headers_t){.v = v, .n = u->n_fields, .cap = u->n_fields};
}

static void block_reset(h2_up_t *u)
{
    u->hb.off = u->hb.len = 0;
    u->n_fields = 0;
}

static int64_t content_length_of(const http_headers_t *h)
{
    const http_header_t *f = http_headers_find(h, "content-length");
    if (f == NULL || f->value_len == 0 || f->value_len > 18)
        return -1;
    int64_t v = 0;
    for (uint32_t i = 0; i < f->value_len; i++) {
        if (f->value[i] < '0' || f->value[i] > '9')
            return -1;
        v = v * 10 + (f->value[i] - '0');
    }
    return v;
}

/* The trailers collected: handed on, ending the response. Returns the event's result. */
static int deliver_trailers(h2_up_t *u)
{
    http_header_t *v = malloc((u->n_fields ? u->n_fields : 1) * sizeof(*v));
    if (v == NULL)
        return u->ev->on_data(u->owner, NULL, 0, true); /* the trailers are lost, not the body */
    http_headers_t t = block_headers(u, v);
    int rc = t.n ? u->ev->on_trailers(u->owner, &t) : u->ev->on_data(u->owner, NULL, 0, true);
    free(v);
    return rc;
}

/* The final response head: handed on, with its end when HEADERS ended the stream (or the
 * request was a HEAD: a server that still sends an empty DATA to end it is not waited for). */
static int deliver_head(h2_up_t *u, bool end)
{
    end |= u->head_request;
    http_header_t stack[64];
    http_header_t *v = u->n_fields <= 64 ? stack : malloc(u->n_fields * sizeof(*v));
    if (v == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    http_headers_t h = block_headers(u, v);
    http_response_head_t head = {
        .status = u->status,
        .headers = h,
        .content_length = content_length_of(&h),
        .has_body = !end,
    };
    u->head_done = true;
    if (end)
        u->resp_ended = true;
    int rc = u->ev->on_head(u->owner, &head);
    if (v != stack)
        free(v);
    if (rc < 0)
        return 0; /* the stream ended: u is gone */
    block_reset(u);
    if (end)
        u->ev->on_data(u->owner, NULL, 0, true);
    return 0;
}

static int up_on_frame(void *owner, const nghttp2_frame *frame)
{
    h2_up_t *u = owner;
    bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    if (frame->hd.type == NGHTTP2_HEADERS) {
        if (!u->head_done) {
            if (u->status < 200) { /* 1xx: we answered 100 Continue ourselves */
                block_reset(u);
                return 0;
            }
            return deliver_head(u, end);
        }
        /* Trailers (nghttp2 lets a HEADERS after the head through only with END_STREAM). */
        u->resp_ended = true;
        if (u->paused || bytes_unread(&u->pend)) {
            u->end_pending = u->trailers_ready = true;
            return 0;
        }
        deliver_trailers(u);
        return 0;
    }
    if (frame->hd.type == NGHTTP2_DATA && end) {
        if (u->resp_ended)
            return 0; /* a HEAD's end, handed on with its head */
        u->resp_ended = true;
        if (u->paused || bytes_unread(&u->pend)) {
            u->end_pending = true;
            return 0;
        }
        u->ev->on_data(u->owner, NULL, 0, true);
    }
    return 0;
}

static int up_on_data(void *owner, const uint8_t *data, size_t len)
{
    h2_up_t *u = owner;
    u->response_seen = true;
    if (u->resp_ended)
        return 0; /* after a HEAD's end: nothing more is handed on */
    if (u->paused || bytes_unread(&u->pend)) {
        /* Held unconsumed: the stream's window bounds what can pile up here. */
        return bytes_put(&u->pend, data, len) < 0 ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE : 0;
    }
    if (u->ev->on_data(u->owner, (const char *)data, len, false) < 0)
        return 0; /* the stream ended: u is gone */
    h2_stream_consume(&u->hs, len);
    return 0;
}

static ssize_t up_read_body(void *owner, uint8_t *buf, size_t len, uint32_t *flags)
{
    h2_up_t *u = owner;
    size_t n = bytes_unread(&u->q);
    if (n > len)
        n = len;
    if (n) {
        memcpy(buf, u->q.data + u->q.off, n);
        u->q.off += n;
    }
    if (u->congested && bytes_unread(&u->q) < H2_UP_HIGH_WATER / 2) {
        u->congested = false;
        h2_stream_want_flushed(&u->hs); /* on_drained once this output left */
    }
    if (bytes_unread(&u->q))
        return (ssize_t)n;
    if (!u->body_end)
        return n ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (u->n_trailers) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        if (h2_stream_submit_trailer(&u->hs, u->trailers, u->n_trailers) != 0)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return (ssize_t)n;
}

static void up_on_close(void *owner, const h2_close_info_t *why)
{
    h2_up_t *u = owner;
    if (u->resp_ended && why->error_code == NGHTTP2_NO_ERROR)
        return; /* a clean end; what is pending goes on at resume */
    if (u->resp_ended && !u->end_pending)
        return; /* the response was whole; the router releases the stream */
    log_debug("router: HTTP/2 stream %d on %s closed (code %u%s%s%s)", u->hs.id,
              h2_stream_label(&u->hs), why->error_code, why->peer_reset ? ", by the peer" : "",
              why->refused ? ", refused" : "", why->conn_lost ? ", connection lost" : "");
    up_free(u);
    if (why->malformed && !why->conn_lost) {
        log_debug("router: HTTP/2 upstream sent an invalid response (stream reset, code %u)",
                  why->error_code);
        u->ev->on_reset(u->owner, u->head_done ? HTTP_UP_BAD_BODY : HTTP_UP_BAD_HEAD, false);
        return;
    }
    bool retryable = why->conn_lost ? !u->response_seen && u->hs.reused : why->refused;
    u->ev->on_reset(u->owner, HTTP_UP_CLOSED, retryable);
}

static void up_on_flushed(void *owner)
{
    h2_up_t *u = owner;
    u->ev->on_drained(u->owner);
}

static const h2_stream_cbs_t up_cbs = {
    .on_ready = up_on_ready,
    .on_header = up_on_header,
    .on_frame = up_on_frame,
    .on_data = up_on_data,
    .read_body = up_read_body,
    .on_close = up_on_close,
    .on_flushed = up_on_flushed,
};

/* ---- the codec's operations ---------------------------------------------------------------- */

static int h2up_start(void *st, struct worker *w, const snap_cluster_t *c, int ep,
                      const struct sockaddr *addr, void *owner, const http_up_events_t *ev,
                      bool *ready)
{
    h2_up_t *u = st;
    u->owner = owner;
    u->ev = ev;
    u->https = c->tls != NULL;
    return h2_stream_attach(&u->hs, w, c, ep, addr, u, &up_cbs, ready);
}

static bool name_eq(const char *a, size_t alen, const char *lower)
{
    size_t n = strlen(lower);
    if (alen != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = a[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        if (c != lower[i])
            return false;
    }
    return true;
}

/* Whether the Connection field's value (borrowed) lists the name (borrowed). */
static bool connection_lists(const http_header_t *conn, const http_header_t *f)
{
    const char *p = conn->value, *end = conn->value + conn->value_len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *tok = p;
        while (p < end && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        if (p > tok && (size_t)(p - tok) == f->name_len) {
            char lower[64];
            size_t n = f->name_len < sizeof(lower) - 1 ? f->name_len : sizeof(lower) - 1;
            for (size_t i = 0; i < n; i++)
                lower[i] =
                    (char)(f->name[i] >= 'A' && f->name[i] <= 'Z' ? f->name[i] + 32 : f->name[i]);
            lower[n] = '\0';
            if (name_eq(tok, (size_t)(p - tok), lower))
                return true;
        }
    }
    return false;
}

/* Whether f goes on an HTTP/2 request: not a field of one hop, not framing, not Host. */
static bool field_goes(const http_header_t *f, const http_header_t *conn)
{
    static const char *const dropped[] = {"connection",        "keep-alive", "proxy-connection",
                                          "transfer-encoding", "upgrade",    "host",
                                          "content-length"};
    for (size_t i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++)
        if (name_eq(f->name, f->name_len, dropped[i]))
            return false;
    if (name_eq(f->name, f->name_len, "te"))
        return f->value_len == 8 && name_eq(f->value, 8, "trailers");
    if (f->name_len && f->name[0] == ':')
        return false;
    return conn == NULL || !connection_lists(conn, f);
}

static nghttp2_nv make_nv(const char *name, size_t nlen, const char *value, size_t vlen)
{
    return (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, nlen, vlen, NGHTTP2_NV_FLAG_NONE};
}

/* Lowercases n bytes of src into dst; returns dst. */
static char *lower_into(char *dst, const char *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (char)(src[i] >= 'A' && src[i] <= 'Z' ? src[i] + 32 : src[i]);
    return dst;
}

static int h2up_send_head(void *st, const http_request_head_t *h, const char *body, size_t body_len,
                          bool end, bool *retryable)
{
    h2_up_t *u = st;
    *retryable = false;
    if (u->hs.conn == NULL)
        return -ENOTCONN;
    if (h->connect || h->upgrade) {
        log_debug("router: CONNECT and upgrades are not carried over HTTP/2 upstreams");
        h2_stream_release(&u->hs, NGHTTP2_CANCEL);
        up_free(u);
        return -EPROTONOSUPPORT;
    }
    u->head_request = h->method_len == 4 && memcmp(h->method, "HEAD", 4) == 0;
    const http_headers_t *all = &h->headers;
    const http_header_t *conn = http_headers_find(all, "connection");
    const http_header_t *host = http_headers_find(all, "host");
    size_t names = 0;
    for (uint32_t i = 0; i < all->n; i++)
        names += all->v[i].name_len;
    nghttp2_nv stack_nv[64];
    size_t cap = all->n + 5;
    nghttp2_nv *nv = cap <= 64 ? stack_nv : malloc(cap * sizeof(*nv));
    char lower_stack[2048];
    char *lower = names + 24 <= sizeof(lower_stack) ? lower_stack : malloc(names + 24);
    if (nv == NULL || lower == NULL) {
        if (nv != stack_nv)
            free(nv);
        if (lower != lower_stack)
            free(lower);
        h2_stream_release(&u->hs, NGHTTP2_CANCEL);
        up_free(u);
        return -ENOMEM;
    }
    size_t n = 0;
    nv[n++] = make_nv(":method", 7, h->method, h->method_len);
    nv[n++] = make_nv(":scheme", 7, u->https ? "https" : "http", u->https ? 5 : 4);
    if (h->authority_len)
        nv[n++] = make_nv(":authority", 10, h->authority, h->authority_len);
    else if (host)
        nv[n++] = make_nv(":authority", 10, host->value, host->value_len);
    nv[n++] = h->path_len ? make_nv(":path", 5, h->path, h->path_len) : make_nv(":path", 5, "/", 1);
    char *lp = lower;
    for (uint32_t i = 0; i < all->n; i++) {
        const http_header_t *f = &all->v[i];
        if (!field_goes(f, conn))
            continue;
        nv[n++] =
            make_nv(lower_into(lp, f->name, f->name_len), f->name_len, f->value, f->value_len);
        lp += f->name_len;
    }
    if (h->content_length >= 0)
        nv[n++] = make_nv("content-length", 14, lp, http_u64(lp, (uint64_t)h->content_length));
    bool with_body = h->has_body;
    int rc = body_len ? bytes_put(&u->q, body, body_len) : 0;
    u->body_end = end;
    bool refused = false;
    if (rc == 0)
        rc = h2_stream_submit(&u->hs, nv, n, with_body, &refused);
    else
        h2_stream_release(&u->hs, NGHTTP2_CANCEL);
    if (nv != stack_nv)
        free(nv);
    if (lower != lower_stack)
        free(lower);
    if (rc < 0) {
        *retryable = refused;
        up_free(u);
        return rc;
    }
    return 0;
}

/* Copies the request trailers (borrowed) into u, names lowercased. */
static int keep_trailers(h2_up_t *u, const http_headers_t *t)
{
    size_t bytes = 0;
    for (uint32_t i = 0; i < t->n; i++)
        bytes += t->v[i].name_len + t->v[i].value_len;
    u->trailers = calloc(t->n, sizeof(*u->trailers));
    u->trailer_buf = malloc(bytes + 1);
    if (u->trailers == NULL || u->trailer_buf == NULL)
        return -ENOMEM;
    char *p = u->trailer_buf;
    for (uint32_t i = 0; i < t->n; i++) {
        const http_header_t *f = &t->v[i];
        char *name = lower_into(p, f->name, f->name_len);
        p += f->name_len;
        memcpy(p, f->value, f->value_len);
        u->trailers[u->n_trailers++] = make_nv(name, f->name_len, p, f->value_len);
        p += f->value_len;
    }
    return 0;
}

static int h2up_send_data(void *st, const char *data, size_t len, bool end,
                          const http_headers_t *trailers)
{
    h2_up_t *u = st;
    if (u->hs.conn == NULL) {
        up_free(u);
        return -ENOTCONN;
    }
    int rc = len ? bytes_put(&u->q, data, len) : 0;
    if (rc == 0 && end && trailers && trailers->n && u->trailers == NULL)
        rc = keep_trailers(u, trailers);
    if (rc < 0) {
        h2_stream_release(&u->hs, NGHTTP2_CANCEL);
        up_free(u);
        return rc;
    }
    if (end)
        u->body_end = true;
    if (bytes_unread(&u->q) > H2_UP_HIGH_WATER)
        u->congested = true;
    h2_stream_resume_body(&u->hs);
    return 0;
}

static bool h2up_congested(const void *st)
{
    const h2_up_t *u = st;
    return u->hs.conn && bytes_unread(&u->q) > H2_UP_HIGH_WATER;
}

static void h2up_pause(void *st)
{
    h2_up_t *u = st;
    u->paused = true;
}

static void h2up_resume(void *st)
{
    h2_up_t *u = st;
    u->paused = false;
    if (u->delivering)
        return;
    size_t n = bytes_unread(&u->pend);
    if (n) {
        u->delivering = true;
        int rc = u->ev->on_data(u->owner, u->pend.data + u->pend.off, n, false);
        if (rc < 0)
            return; /* the stream ended: u is gone */
        u->delivering = false;
        u->pend.off = u->pend.len = 0;
        h2_stream_consume(&u->hs, n);
        if (u->paused)
            return;
    }
    if (u->end_pending) {
        u->end_pending = false;
        if (u->trailers_ready)
            deliver_trailers(u);
        else
            u->ev->on_data(u->owner, NULL, 0, true);
    }
}

static void h2up_release(void *st, bool complete)
{
    h2_up_t *u = st;
    h2_stream_release(&u->hs, complete ? NGHTTP2_NO_ERROR : NGHTTP2_CANCEL);
    up_free(u);
}

static bool h2up_reused(const void *st)
{
    const h2_up_t *u = st;
    return u->hs.conn && u->hs.reused;
}

const http_up_codec_t h2_upstream_codec = {
    .name = "http/2",
    .state_size = sizeof(h2_up_t),
    .start = h2up_start,
    .send_head = h2up_send_head,
    .send_data = h2up_send_data,
    .congested = h2up_congested,
    .pause = h2up_pause,
    .resume = h2up_resume,
    .release = h2up_release,
    .reused = h2up_reused,
};
