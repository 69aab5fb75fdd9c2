/* The HTTP/2 downstream codec of the connection manager, on nghttp2: every request stream the
 * client opens is a stream of the connection manager, with a protocol-neutral head built from
 * its pseudo-headers and fields; responses go back as HEADERS, DATA and trailing HEADERS.
 * nghttp2 enforces the framing rules (malformed frames, forbidden connection-specific fields,
 * uppercase names, content-length against DATA) with a stream or connection error of its own;
 * h2_guard.c adds the flood rules nghttp2 lacks (a broken one is answered with GOAWAY and the
 * connection closes).
 *
 * Flow control: the windows open again only as the connection manager takes a stream's bytes;
 * a stream whose router is not ready (or whose upstream is congested) holds what arrived, up to
 * its window, without opening it. Response bytes wait in the stream's own queue until nghttp2
 * sends them within the client's windows; the router stops reading its upstream while that queue
 * is over its high-water mark.
 *
 * Ownership: the codec's per-stream state (h2s_t) is malloc'd at the request's HEADERS and freed
 * when nghttp2 closes the stream, which may be after the connection manager's stream ended (the
 * last response bytes still to send); it reaches that stream only while the stream's serial is
 * the one it saw. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "proxy/core/log.h"
#include "proxy/grpc/grpc_h2out.h"
#include "proxy/http/h2/h2_guard.h"
#include "proxy/http/h2/h2_server.h"
#include "proxy/http/hcm_codec.h"

#define H2S_MAX_STREAMS   100           /* SETTINGS_MAX_CONCURRENT_STREAMS */
#define H2S_STREAM_WINDOW (256 * 1024)  /* SETTINGS_INITIAL_WINDOW_SIZE */
#define H2S_CONN_WINDOW   (1024 * 1024) /* the connection's window */
#define H2S_OUT_HIGH      (1024 * 1024) /* a stream's unsent response bytes: congested */
#define H2S_MAX_ACKS      1000          /* outbound SETTINGS/PING acks queued: a flood */
#define H2S_BLOCK_SLACK   16384 /* a header block's encoded bytes beyond max_request_headers_kb */

typedef struct h2s h2s_t;

typedef struct h2_server {
    nghttp2_session *session;
    grpc_h2out_t out;
    h2s_t *all; /* every stream's state, freed here at the end if nghttp2 did not close it */
    h2_guard_t guard;
    /* Output waits for the end of the loop turn (flush_soon), so that the frames of every
     * stream answered in one turn leave in one write. */
    uv_check_t check;
    bool flush_pending;
    bool goaway_sent; /* draining: the GOAWAY went (h2_drain, or after a last stream) */
} h2_server_t;

/* Bytes in a queue: one buffer that grows, with what was sent cut from its front lazily. */
typedef struct h2_queue {
    char *buf;
    size_t len, off, cap;
} h2_queue_t;

struct h2s {
    hcm_conn_t *c;
    h2s_t *prev, *next; /* h2_server_t.all */
    http_stream_t *s;   /* the connection manager's stream while serial matches */
    uint32_t serial;
    int32_t id;
    uint64_t begin_ms; /* when its HEADERS came */
    bool client_reset; /* the client sent RST_STREAM */
    /* the request */
    bool head_done;    /* the request's HEADERS were handed on */
    bool in_trailers;  /* a second HEADERS: the request's trailers */
    bool header_error; /* too many or too large fields: answered 431 at the end of the head */
    size_t head_bytes;
    http_headers_t trailers;
    const char *scheme;
    uint32_t scheme_len;
    h2_queue_t held; /* request body bytes not yet taken (not consumed from the window) */
    bool held_end;   /* the request ended after what is held */
    bool paused;     /* the upstream is congested: bytes are held */
    /* the response */
    h2_queue_t out;
    bool out_end;       /* the response body is complete after what is queued */
    bool out_deferred;  /* the data source said DEFERRED: resume it when bytes come */
    bool out_submitted; /* the response HEADERS were submitted */
    nghttp2_nv *out_trailers;
    size_t n_out_trailers;
    char *out_trailer_mem;
    bool drained_owed; /* congested() said yes: on_downstream_drained when it falls to half */
};

static void h2_flush(hcm_conn_t *c);
static void h2_flush_soon(hcm_conn_t *c);

static h2_server_t *h2_of(const hcm_conn_t *c)
{
    return c->h2;
}

static h2s_t *h2s_of(const hcm_conn_t *c, int32_t id)
{
    return nghttp2_session_get_stream_user_data(h2_of(c)->session, id);
}

/* The connection manager's stream of st, or NULL once it has ended. */
static http_stream_t *live(const h2s_t *st)
{
    return st->s && st->s->serial == st->serial ? st->s : NULL;
}

static int queue_put(h2_queue_t *q, const char *data, size_t len)
{
    if (q->off && q->off == q->len)
        q->off = q->len = 0;
    if (q->len + len > q->cap) {
        if (q->off) { /* reclaim the sent front first */
            memmove(q->buf, q->buf + q->off, q->len - q->off);
            q->len -= q->off;
            q->off = 0;
        }
        size_t cap = q->cap ? q->cap : 16384;
        while (cap < q->len + len)
            cap *= 2;
        if (cap != q->cap) {
            char *b = realloc(q->buf, cap);
            if (b == NULL)
                return -ENOMEM;
            q->buf = b;
            q->cap = cap;
        }
    }
    memcpy(q->buf + q->len, data, len);
    q->len += len;
    return 0;
}

static size_t queue_size(const h2_queue_t *q)
{
    return q->len - q->off;
}

static void h2s_free(h2_server_t *h, h2s_t *st)
{
    if (st->prev)
        st->prev->next = st->next;
    else
        h->all = st->next;
    if (st->next)
        st->next->prev = st->prev;
    free(st->held.buf);
    free(st->out.buf);
    free(st->out_trailers);
    free(st->out_trailer_mem);
    free(st);
}

/* ---- the request ------------------------------------------------------------------------- */

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    hcm_conn_t *c = user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    h2_server_t *h = h2_of(c);
    if (h->goaway_sent) { /* draining: no new streams */
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_REFUSED_STREAM);
        return 0;
    }
    if (c->snap != c->worker->snap)
        hcm_rebind(c); /* the new stream runs with the newest config; older ones keep theirs */
    if (c->close_after) {
        /* Its listener went away or its chain changed (hcm_rebind): this stream is its last,
         * and the client hears so at once. */
        h->goaway_sent = true;
        nghttp2_submit_goaway(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR,
                              NULL, 0);
    }
    h2s_t *st = calloc(1, sizeof(*st));
    http_stream_t *s = st ? hcm_stream_begin(c) : NULL;
    if (s == NULL) {
        free(st);
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_REFUSED_STREAM);
        return 0;
    }
    hcm_stream_pin(s);
    st->c = c;
    st->next = h2_of(c)->all;
    if (st->next)
        st->next->prev = st;
    h2_of(c)->all = st;
    st->s = s;
    st->serial = s->serial;
    st->id = frame->hd.stream_id;
    st->begin_ms = hcm_now(c);
    s->id = frame->hd.stream_id;
    s->head.proto = HTTP_PROTO_2;
    s->head.content_length = -1;
    s->head.headers.cap = 16;
    s->head.headers.v = http_stream_alloc(s, 16 * sizeof(http_header_t));
    stats_inc(c->worker->stats, c->cfg->st.downstream_rq_http2_total);
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, st);
    if (s->head.headers.v == NULL)
        st->header_error = true;
    return 0;
}

/* Appends a field to h, copied into the stream's arena. */
static int add_field(http_stream_t *s, http_headers_t *h, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen)
{
    return http_stream_header_add(s, h, (const char *)name, nlen, (const char *)value, vlen);
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
    (void)flags;
    hcm_conn_t *c = user;
    h2s_t *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    http_stream_t *s = st ? live(st) : NULL;
    if (s == NULL || st->header_error)
        return 0;
    if (st->head_done) { /* trailers */
        if (nlen && name[0] == ':')
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* no pseudo-headers in trailers */
        st->in_trailers = true;
        if (add_field(s, &st->trailers, name, nlen, value, vlen) < 0)
            st->header_error = true;
        return 0;
    }
    st->head_bytes += nlen + vlen + 32;
    if (st->head_bytes > c->cfg->max_head_bytes || s->head.headers.n >= c->cfg->max_headers) {
        st->header_error = true;
        return 0;
    }
    http_request_head_t *h = &s->head;
    char *copy = nlen && name[0] == ':' ? http_stream_alloc(s, vlen + 1) : NULL;
    if (copy) {
        memcpy(copy, value, vlen);
        copy[vlen] = '\0';
    }
#define PSEUDO(lit) (nlen == sizeof(lit) - 1 && memcmp(name, lit, nlen) == 0)
    if (PSEUDO(":method")) {
        h->method = copy;
        h->method_len = (uint32_t)vlen;
    } else if (PSEUDO(":path")) {
        h->path = copy;
        h->path_len = (uint32_t)vlen;
    } else if (PSEUDO(":authority")) {
        h->authority = copy;
        h->authority_len = (uint32_t)vlen;
    } else if (PSEUDO(":scheme")) {
        st->scheme = copy;
        st->scheme_len = (uint32_t)vlen;
    } else if (nlen && name[0] == ':') {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* :protocol and others: not supported */
    } else if (add_field(s, &h->headers, name, nlen, value, vlen) < 0) {
        st->header_error = true;
    }
#undef PSEUDO
    if (nlen && name[0] == ':' && copy == NULL)
        st->header_error = true;
    return 0;
}

/* The request's head is complete: checks, then the connection manager takes it. */
static void request_head(hcm_conn_t *c, h2s_t *st, bool end_stream)
{
    http_stream_t *s = live(st);
    if (s == NULL)
        return;
    st->head_done = true;
    http_request_head_t *h = &s->head;
    if (st->header_error) {
        stats_inc(c->worker->stats, c->cfg->st.downstream_rq_too_large);
        s->req_body_done = true;
        http_stream_local_reply(s, 431, "request headers too large\n", "DPE");
        return;
    }
    const http_header_t *cl = http_headers_find(&h->headers, "content-length");
    if (cl) {
        uint64_t v = 0;
        for (uint32_t i = 0; i < cl->value_len; i++)
            v = v * 10 + (uint64_t)(cl->value[i] - '0'); /* nghttp2 checked the digits */
        h->content_length = (int64_t)v;
    }
    if (h->authority_len == 0) {
        const http_header_t *host = http_headers_find(&h->headers, "host");
        if (host) {
            h->authority = host->value;
            h->authority_len = host->value_len;
        }
    }
    h->connect = h->method_len == 7 && memcmp(h->method, "CONNECT", 7) == 0;
    h->has_body = !end_stream;
    s->req_body_done = end_stream;
    if (end_stream)
        s->req_done_ms = 0;
    if (h->connect) {
        /* CONNECT over HTTP/2 (RFC 9113 §8.5) is not relayed: a stream of bytes would need the
         * tunnel path of an HTTP/2 stream, which is not built. */
        http_stream_local_reply(s, 501, "CONNECT over HTTP/2 is not supported\n", NULL);
        return;
    }
    if (hcm_stream_permit(s) < 0)
        return;
    hcm_stream_headers(s);
}

/* Hands held request bytes (and the end) to the stream while it takes them, and gives the
 * window back for what it took. */
static void deliver_held(hcm_conn_t *c, h2s_t *st)
{
    http_stream_t *s = live(st);
    if (s == NULL || st->paused || !hcm_stream_wants_body(s))
        return;
    size_t n = queue_size(&st->held);
    if (n == 0 && !st->held_end)
        return;
    uint32_t serial = s->serial;
    bool end = st->held_end;
    st->held_end = false;
    const http_headers_t *t = end && st->trailers.n ? &st->trailers : NULL;
    const char *data = st->held.buf + st->held.off;
    st->held.off = st->held.len; /* taken, whatever the stream does with it */
    int rc = hcm_stream_body(s, data, n, n, end, t);
    if (n)
        nghttp2_session_consume(h2_of(c)->session, st->id, n);
    if (rc == HTTP_STREAM_ENDED || hcm_stream_gone(s, serial))
        return;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *user)
{
    (void)flags;
    hcm_conn_t *c = user;
    h2s_t *st = nghttp2_session_get_stream_user_data(session, id);
    http_stream_t *s = st ? live(st) : NULL;
    if (s == NULL || s->req_body_done) {
        nghttp2_session_consume(session, id, len); /* nobody reads it: dropped */
        return 0;
    }
    if (queue_put(&st->held, (const char *)data, len) < 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    deliver_held(c, st);
    return 0;
}

/* Every frame's header, before its payload: the guard's counts. */
static int on_begin_frame(nghttp2_session *session, const nghttp2_frame_hd *hd, void *user)
{
    (void)session;
    hcm_conn_t *c = user;
    return h2_guard_frame_begin(&h2_of(c)->guard, hd) ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    (void)session;
    hcm_conn_t *c = user;
    h2_guard_frame_sent(&h2_of(c)->guard, frame->hd.type);
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    hcm_conn_t *c = user;
    bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    if (frame->hd.type == NGHTTP2_DATA &&
        h2_guard_data_recv(&h2_of(c)->guard, frame->hd.length,
                           frame->hd.length - frame->data.padlen, end))
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    h2s_t *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (st && frame->hd.type == NGHTTP2_RST_STREAM)
        st->client_reset = true; /* nghttp2 closes the stream next (on_stream_close) */
    if (st == NULL || (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA))
        return 0;
    if (frame->hd.type == NGHTTP2_HEADERS && !st->head_done) {
        request_head(c, st, end);
        return 0;
    }
    if (end && live(st)) {
        st->held_end = true;
        deliver_held(c, st);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t id, uint32_t error_code, void *user)
{
    hcm_conn_t *c = user;
    h2s_t *st = nghttp2_session_get_stream_user_data(session, id);
    if (st == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(session, id, NULL);
    /* A stream the client reset before its response was complete, soon after it opened it. */
    bool premature =
        st->client_reset && !st->out_end && hcm_now(c) - st->begin_ms < H2G_RESET_PREMATURE_MS;
    h2_guard_stream_closed(&h2_of(c)->guard, premature); /* judged after this input */
    http_stream_t *s = live(st);
    if (s) {
        /* Closed before its response ended: the client reset it, or the session did. */
        stats_inc(c->worker->stats, error_code == NGHTTP2_NO_ERROR || error_code == NGHTTP2_CANCEL
                                        ? c->cfg->st.http2_rx_reset
                                        : c->cfg->st.http2_rx_messaging_error);
        s->flags = "DC";
        st->s = NULL;
        hcm_end_stream(s, true);
    }
    h2s_free(h2_of(c), st);
    return 0;
}

/* ---- the response ------------------------------------------------------------------------ */

static ssize_t read_out(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length,
                        uint32_t *data_flags, nghttp2_data_source *source, void *user)
{
    (void)source;
    hcm_conn_t *c = user;
    h2s_t *st = nghttp2_session_get_stream_user_data(session, id);
    if (st == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    size_t n = queue_size(&st->out);
    if (n > length)
        n = length;
    if (n) {
        memcpy(buf, st->out.buf + st->out.off, n);
        st->out.off += n;
    }
    if (queue_size(&st->out) == 0 && st->out_end) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        if (st->n_out_trailers) {
            *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            nghttp2_submit_trailer(session, id, st->out_trailers, st->n_out_trailers);
        }
    } else if (n == 0) {
        st->out_deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    http_stream_t *s = live(st);
    if (st->drained_owed && s && queue_size(&st->out) <= H2S_OUT_HIGH / 2 &&
        !hcm_down_congested(c)) {
        st->drained_owed = false;
        hcm_filters_downstream_drained(s);
    }
    return (ssize_t)n;
}

/* The name lowercased into the stream's arena (HTTP/2 field names are lowercase), or NULL. */
static const char *lower_name(http_stream_t *s, const http_header_t *f)
{
    char *p = http_stream_alloc(s, f->name_len ? f->name_len : 1);
    if (p == NULL)
        return NULL;
    for (uint32_t i = 0; i < f->name_len; i++) {
        char ch = f->name[i];
        p[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
    }
    return p;
}

/* A field for nghttp2, which copies it when it is submitted: the slices may point into an
 * upstream's read buffer, which moves on once the call returns. */
static nghttp2_nv nv(const char *name, size_t nlen, const char *value, size_t vlen)
{
    return (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, nlen, vlen, NGHTTP2_NV_FLAG_NONE};
}

/* Submits the response HEADERS: :status, the fields, a content-length when known. */
static int submit_head(http_stream_t *s, h2s_t *st, int status, const http_headers_t *fields,
                       int64_t content_length, bool has_body)
{
    size_t max = (fields ? fields->n : 0) + 3;
    nghttp2_nv *v = http_stream_alloc(s, max * sizeof(*v));
    char *num = http_stream_alloc(s, 48);
    if (v == NULL || num == NULL)
        return -ENOMEM;
    size_t n = 0;
    size_t sl = http_u64(num, (uint64_t)status);
    v[n++] = nv(":status", 7, num, sl);
    for (uint32_t i = 0; fields && i < fields->n; i++) {
        const http_header_t *f = &fields->v[i];
        const char *name = lower_name(s, f);
        if (name == NULL)
            return -ENOMEM;
        v[n++] = nv(name, f->name_len, f->value, f->value_len);
    }
    if (content_length >= 0) {
        size_t cl = http_u64(num + 24, (uint64_t)content_length);
        v[n++] = nv("content-length", 14, num + 24, cl);
    }
    nghttp2_data_provider dp = {.read_callback = read_out};
    st->out_submitted = true;
    int rv = nghttp2_submit_response(h2_of(s->conn)->session, st->id, v, n, has_body ? &dp : NULL);
    return rv == 0 ? 0 : -EPROTO;
}

static int h2_encode_head(http_stream_t *s, const http_response_head_t *resp)
{
    h2s_t *st = h2s_of(s->conn, s->id);
    if (st == NULL)
        return -ENOTCONN;
    if (!resp->has_body)
        st->out_end = true;
    return submit_head(s, st, resp->status, &s->resp_headers, resp->content_length, resp->has_body);
}

static int h2_flush_head(http_stream_t *s)
{
    h2_flush_soon(s->conn);
    return 0;
}

/* Copies trailer fields into memory of st's own (they are sent after the stream has ended). */
static int keep_trailers(h2s_t *st, const http_headers_t *t)
{
    size_t bytes = 0;
    for (uint32_t i = 0; i < t->n; i++)
        bytes += t->v[i].name_len + t->v[i].value_len;
    st->out_trailers = calloc(t->n, sizeof(nghttp2_nv));
    st->out_trailer_mem = malloc(bytes ? bytes : 1);
    if (st->out_trailers == NULL || st->out_trailer_mem == NULL)
        return -ENOMEM;
    char *p = st->out_trailer_mem;
    for (uint32_t i = 0; i < t->n; i++) {
        const http_header_t *f = &t->v[i];
        for (uint32_t k = 0; k < f->name_len; k++) {
            char ch = f->name[k];
            p[k] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
        }
        memcpy(p + f->name_len, f->value, f->value_len);
        st->out_trailers[i] = nv(p, f->name_len, p + f->name_len, f->value_len);
        p += f->name_len + f->value_len;
    }
    st->n_out_trailers = t->n;
    return 0;
}

static int h2_encode_body(http_stream_t *s, const char *data, size_t len, bool end,
                          const http_headers_t *trailers)
{
    hcm_conn_t *c = s->conn;
    h2s_t *st = h2s_of(c, s->id);
    if (st == NULL)
        return 0; /* the client reset it: nothing to send */
    s->bytes_out += len;
    if ((len && queue_put(&st->out, data, len) < 0) ||
        (end && trailers && trailers->n && keep_trailers(st, trailers) < 0)) {
        nghttp2_submit_rst_stream(h2_of(c)->session, NGHTTP2_FLAG_NONE, st->id,
                                  NGHTTP2_INTERNAL_ERROR);
        h2_flush(c);
        return 0;
    }
    if (end)
        st->out_end = true;
    if (st->out_deferred) {
        st->out_deferred = false;
        nghttp2_session_resume_data(h2_of(c)->session, st->id);
    }
    if (!end)
        h2_flush_soon(c);
    return 0;
}

static int h2_local_reply(http_stream_t *s, int status, const char *body)
{
    h2s_t *st = h2s_of(s->conn, s->id);
    if (st == NULL)
        return 0;
    if (s->grpc) {
        /* A gRPC caller gets a gRPC status it can read: a trailers-only response (HTTP 200,
         * grpc-status and grpc-message in the one HEADERS frame). */
        char code[8];
        size_t clen = http_u64(code, (uint64_t)hcm_grpc_status(s, status));
        size_t mlen = 0;
        const char *msg = hcm_grpc_message(s, body, &mlen);
        http_header_t f[3] = {{"content-type", "application/grpc", 12, 16},
                              {"grpc-status", code, 11, (uint32_t)clen},
                              {"grpc-message", msg ? msg : "", 12, (uint32_t)mlen}};
        http_headers_t fields = {.v = f, .n = 3, .cap = 3};
        st->out_end = true;
        s->grpc_status = hcm_grpc_status(s, status);
        s->status = 200;
        return submit_head(s, st, 200, &fields, -1, false);
    }
    size_t blen = body ? strlen(body) : 0;
    http_header_t ct = {"content-type", "text/plain", 12, 10};
    http_headers_t fields = {.v = &ct, .n = 1, .cap = 1};
    s->bytes_out += blen;
    if (blen && queue_put(&st->out, body, blen) < 0)
        return -ENOMEM;
    st->out_end = true;
    return submit_head(s, st, status, &fields, (int64_t)blen, blen > 0);
}

static void h2_reset_stream(http_stream_t *s)
{
    hcm_conn_t *c = s->conn;
    h2s_t *st = h2s_of(c, s->id);
    stats_inc(c->worker->stats, c->cfg->st.http2_tx_reset);
    if (st) {
        st->s = NULL;
        nghttp2_submit_rst_stream(h2_of(c)->session, NGHTTP2_FLAG_NONE, st->id,
                                  NGHTTP2_INTERNAL_ERROR);
    }
    hcm_end_stream(s, true);
    h2_flush(c);
}

static int h2_no_tunnel(http_stream_t *s)
{
    h2_reset_stream(s); /* no Upgrade or CONNECT reaches an HTTP/2 stream's router */
    return HTTP_STREAM_ENDED;
}

static int h2_tunnel_data(http_stream_t *s, const char *data, size_t len, bool end)
{
    (void)data;
    (void)len;
    (void)end;
    return h2_no_tunnel(s);
}

static void h2_pause_body(http_stream_t *s)
{
    h2s_t *st = h2s_of(s->conn, s->id);
    if (st)
        st->paused = true;
}

static bool h2_congested(const http_stream_t *s)
{
    h2s_t *st = h2s_of(s->conn, s->id);
    if (st == NULL)
        return false;
    if (queue_size(&st->out) > H2S_OUT_HIGH || hcm_down_congested(s->conn)) {
        st->drained_owed = true;
        return true;
    }
    return false;
}

static void h2_stream_finished(hcm_conn_t *c, http_stream_t *s)
{
    h2s_t *st = h2s_of(c, s->id);
    if (st)
        st->s = NULL; /* what it queued is sent on its own */
    if (c->streams == NULL)
        hcm_set_idle(c, c->cfg->idle_timeout_ms);
    h2_flush_soon(c);
}

static void h2_drain(hcm_conn_t *c)
{
    h2_server_t *h = h2_of(c);
    c->close_after = true;
    if (!h->goaway_sent) {
        h->goaway_sent = true;
        nghttp2_submit_goaway(h->session, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(h->session), NGHTTP2_NO_ERROR,
                              NULL, 0);
    }
    h2_flush(c);
}

/* ---- input and output -------------------------------------------------------------------- */

/* Writes what the session has to send; closes the connection once it has nothing more to do
 * (draining with no stream left, or the session is over). */
static void h2_flush(hcm_conn_t *c)
{
    if (c->state == HCM_CLOSING)
        return;
    h2_server_t *h = h2_of(c);
    if (!grpc_h2out_flush(&h->out, h->session) || c->state == HCM_CLOSING)
        return;
    bool done = !nghttp2_session_want_read(h->session) && !nghttp2_session_want_write(h->session);
    if (c->close_after && c->streams == NULL && !nghttp2_session_want_write(h->session))
        done = true;
    if (done && !grpc_h2out_busy(&h->out)) {
        hcm_close(c, false);
        return;
    }
    c->state = c->streams ? HCM_IN_STREAM : HCM_WAIT_HEAD;
}

static void on_check(uv_check_t *check)
{
    hcm_conn_t *c = check->data;
    h2_server_t *h = h2_of(c);
    uv_check_stop(check);
    h->flush_pending = false;
    h2_flush(c);
}

/* Flushes at the end of this loop turn, after every callback of the turn has queued its frames. */
static void h2_flush_soon(hcm_conn_t *c)
{
    h2_server_t *h = h2_of(c);
    if (c->state == HCM_CLOSING || h->flush_pending)
        return;
    h->flush_pending = true;
    uv_check_start(&h->check, on_check);
}

/* Hands held request bytes to the streams that take them now. */
static void h2_process(hcm_conn_t *c)
{
    if (c->state == HCM_CLOSING)
        return;
    http_stream_t *s = c->streams;
    while (s && c->state != HCM_CLOSING) {
        http_stream_t *next = s->next;
        uint32_t serial = s->serial;
        h2s_t *st = h2s_of(c, s->id);
        if (st && st->paused && !c->paused) /* resumed (hcm_resume) */
            st->paused = false;
        if (st && (queue_size(&st->held) || st->held_end))
            deliver_held(c, st);
        s = hcm_stream_gone(s, serial) ? c->streams : next;
    }
    h2_flush_soon(c);
}

/* The client broke an abuse rule: counted, GOAWAY, closed once it is written. */
static void h2_cut(hcm_conn_t *c, h2_guard_verdict_t v)
{
    h2_server_t *h = h2_of(c);
    const hcm_stat_ids_t *st = &c->cfg->st;
    stat_id_t id = v == H2G_EMPTY_FRAMES      ? st->http2_inbound_empty_frames_flood
                   : v == H2G_PRIORITY_FLOOD  ? st->http2_inbound_priority_frames_flood
                   : v == H2G_WINDOW_FLOOD    ? st->http2_inbound_window_update_frames_flood
                   : v == H2G_CONTROL_FLOOD   ? st->http2_outbound_control_flood
                   : v == H2G_HEADER_OVERFLOW ? st->http2_header_overflow
                                              : st->downstream_rq_too_many_premature_resets;
    stats_inc(c->worker->stats, id);
    log_debug("hcm: HTTP/2 client cut off (rule %d)", (int)v);
    /* nghttp2 may have queued a GOAWAY of its own (a flood): then this one is refused. */
    nghttp2_session_terminate_session(h->session, h2_guard_goaway_code(v));
    hcm_flag_streams(c, "DPE");
    h2_flush(c);
    if (c->state != HCM_CLOSING)
        hcm_close(c, false);
}

static void h2_input(hcm_conn_t *c, ssize_t nread)
{
    h2_server_t *h = h2_of(c);
    if (nread == UV_ENOBUFS)
        nread = 0; /* the buffer is full: feed what it holds */
    if (nread < 0) {
        hcm_flag_streams(c, "DC");
        hcm_close(c, c->streams != NULL);
        return;
    }
    c->in.len += (size_t)nread;
    c->last_activity = hcm_now(c);
    ssize_t rv = nghttp2_session_mem_recv(h->session, (const uint8_t *)c->in.data, c->in.len);
    if (c->state == HCM_CLOSING)
        return;
    c->in.len = 0;
    h2_guard_verdict_t v = rv < 0 ? h2_guard_session_error(&h->guard, (int)rv) : h->guard.verdict;
    if (v != H2G_OK) {
        h2_cut(c, v);
        return;
    }
    if (rv < 0) {
        log_debug("hcm: HTTP/2 session error: %s", nghttp2_strerror((int)rv));
        stats_inc(c->worker->stats, c->cfg->st.downstream_cx_protocol_error);
        hcm_flag_streams(c, "DPE");
        h2_flush(c); /* the GOAWAY nghttp2 queued for the error, when it did */
        if (c->state != HCM_CLOSING)
            hcm_close(c, false);
        return;
    }
    h2_flush_soon(c);
    if (c->state != HCM_CLOSING)
        conn_buf_trim(&c->worker->pool, &c->in);
}

/* ---- the output's hooks ------------------------------------------------------------------ */

static bool out_closed(void *owner)
{
    const hcm_conn_t *c = owner;
    return c->state == HCM_CLOSING;
}

static void out_fail(void *owner, int error, const char *why)
{
    hcm_conn_t *c = owner;
    log_debug("hcm: HTTP/2 output failed: %s (%s)", why, uv_strerror(error));
    hcm_flag_streams(c, "DC");
    hcm_close(c, true);
}

static void out_flush(void *owner)
{
    h2_flush(owner);
}

static const grpc_h2out_ops_t h2_out_ops = {
    .closed = out_closed,
    .fail = out_fail,
    .flush = out_flush,
};

int h2_server_start(hcm_conn_t *c)
{
    h2_server_t *h = calloc(1, sizeof(*h));
    nghttp2_session_callbacks *cbs = NULL;
    nghttp2_option *opt = NULL;
    if (h == NULL || nghttp2_session_callbacks_new(&cbs) != 0 || nghttp2_option_new(&opt) != 0)
        goto fail;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, on_begin_frame);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    h2_guard_options(opt, H2S_MAX_ACKS);
    h2_guard_init(&h->guard, (size_t)c->cfg->max_head_bytes + H2S_BLOCK_SLACK);
    if (nghttp2_session_server_new2(&h->session, cbs, c, opt) != 0)
        goto fail;
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    opt = NULL;
    cbs = NULL;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2S_MAX_STREAMS},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2S_STREAM_WINDOW},
    };
    if (nghttp2_submit_settings(h->session, NGHTTP2_FLAG_NONE, iv, 2) != 0 ||
        nghttp2_session_set_local_window_size(h->session, NGHTTP2_FLAG_NONE, 0, H2S_CONN_WINDOW) !=
            0)
        goto fail;
    grpc_h2out_init(&h->out, (uv_stream_t *)c->tcp, &h2_out_ops, c);
    uv_check_init(&c->worker->loop, &h->check);
    h->check.data = c;
    if (c->tls)
        grpc_h2out_use_tls(&h->out, c->tls);
    c->h2 = h;
    c->codec = &h2_server_codec;
    /* A connection that came in as its listener went away keeps close_after: its first stream
     * is served and is its last (on_begin_headers sends the GOAWAY then). */
    stats_inc(c->worker->stats, c->cfg->st.downstream_cx_http2_total);
    stats_add(c->worker->stats, c->cfg->st.downstream_cx_http2_active, 1);
    return 0;
fail:
    if (opt)
        nghttp2_option_del(opt);
    if (cbs)
        nghttp2_session_callbacks_del(cbs);
    if (h && h->session)
        nghttp2_session_del(h->session);
    free(h);
    return -ENOMEM;
}

unsigned h2_server_close(hcm_conn_t *c, uv_close_cb cb)
{
    h2_server_t *h = c->h2;
    if (h == NULL)
        return 0;
    uv_check_stop(&h->check);
    uv_close((uv_handle_t *)&h->check, cb);
    return 1;
}

void h2_server_free(hcm_conn_t *c)
{
    h2_server_t *h = c->h2;
    if (h == NULL)
        return;
    stats_add(c->worker->stats, c->cfg->st.downstream_cx_http2_active, -1);
    nghttp2_session_del(h->session);
    while (h->all)
        h2s_free(h, h->all);
    grpc_h2out_free(&h->out);
    free(h);
    c->h2 = NULL;
}

const hcm_codec_t h2_server_codec = {
    .name = "h2",
    .input = h2_input,
    .process = h2_process,
    .encode_head = h2_encode_head,
    .flush_head = h2_flush_head,
    .encode_body = h2_encode_body,
    .local_reply = h2_local_reply,
    .connect_established = h2_no_tunnel,
    .start_tunnel = h2_no_tunnel,
    .tunnel_data = h2_tunnel_data,
    .stream_finished = h2_stream_finished,
    .drain = h2_drain,
    .reset_stream = h2_reset_stream,
    .pause_body = h2_pause_body,
    .congested = h2_congested,
};
