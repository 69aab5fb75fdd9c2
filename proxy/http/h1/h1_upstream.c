/* The HTTP/1.1 upstream codec: frames a protocol-neutral request as HTTP/1.1 (its own
 * Content-Length or chunked framing, the hop-by-hop fields of the client's hop dropped), sends
 * it on a pooled connection, and parses the response back into head, body and trailer events
 * (1xx skipped, a 101 to an upgrade turning the connection into a tunnel). The connection goes
 * back to its pool only when both messages ended cleanly and the server keeps it alive. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/core/log.h"
#include "proxy/http/h1/h1_upstream.h"
#include "proxy/http/h1/http1.h"
#include "proxy/http/http_stream.h"
#include "proxy/upstream/h1_pool.h"

#define H1_UP_MAX_HEAD   (96 * 1024)
#define H1_UP_STACK_HEAD 8192

typedef struct h1_up {
    upstream_conn_t *uc; /* lent by the pool until release, or NULL */
    void *owner;
    const http_up_events_t *ev;
    bool head_request;  /* a HEAD: the response has no body whatever it says */
    bool upgrade;       /* the request asked for an upgrade */
    bool req_chunked;   /* the request body goes chunked */
    bool body_written;  /* the whole request went out */
    bool head_done;     /* the final response head was handed on */
    bool tunnel;        /* a 101 answered the upgrade: bytes flow unparsed */
    bool response_seen; /* response bytes arrived */
    bool keep_alive;    /* the response lets the connection be reused */
    size_t consumed;    /* bytes of uc->in handed on with the stream's end, dropped at release */
    http1_body_kind_t resp_body;
    http1_body_decoder_t body;
} h1_up_t;

static void h1_on_connected(void *owner, upstream_conn_t *uc, int status);
static void h1_on_read(void *owner, upstream_conn_t *uc, ssize_t nread);
static void h1_on_drained(void *owner, upstream_conn_t *uc);

static const upstream_conn_cbs_t h1_cbs = {
    .on_connected = h1_on_connected,
    .on_read = h1_on_read,
    .on_drained = h1_on_drained,
};

static int h1_start(void *st, struct worker *w, const snap_cluster_t *c, int ep,
                    const struct sockaddr *addr, void *owner, const http_up_events_t *ev,
                    bool *ready)
{
    h1_up_t *u = st;
    u->owner = owner;
    u->ev = ev;
    u->head_done = u->tunnel = u->response_seen = u->body_written = false;
    u->consumed = 0;
    int rc = pool_acquire(w, c, ep, addr, u, &h1_cbs, &u->uc, ready);
    if (rc < 0)
        u->uc = NULL;
    return rc;
}

/* Lets the connection go: back to the pool when reusable, else closed. */
static void let_go(h1_up_t *u, bool reusable)
{
    if (u->uc == NULL)
        return;
    if (u->consumed) {
        pool_consume(u->uc, u->consumed);
        u->consumed = 0;
    }
    pool_release(u->uc, reusable);
    u->uc = NULL;
}

static void h1_on_connected(void *owner, upstream_conn_t *uc, int status)
{
    (void)uc;
    h1_up_t *u = owner;
    if (status < 0) {
        u->uc = NULL; /* the pool has closed it */
        log_debug("router: connect to %s failed: %s", uc->label, uv_strerror(status));
        u->ev->on_reset(u->owner, HTTP_UP_CONNECT_FAILED, false);
        return;
    }
    u->ev->on_ready(u->owner);
}

/* The head's size bound: request line, ": " and CRLF per field, our framing and upgrade fields,
 * the final CRLF. */
static size_t head_bound(const http_request_head_t *h)
{
    size_t cap = h->method_len + h->path_len + h->authority_len + h->upgrade_len + 96;
    for (uint32_t i = 0; i < h->headers.n; i++)
        cap += h->headers.v[i].name_len + h->headers.v[i].value_len + 4;
    return cap;
}

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

static char *put_field(char *p, const char *name, size_t name_len, const char *value,
                       size_t value_len)
{
    p = put(p, name, name_len);
    *p++ = ':';
    *p++ = ' ';
    p = put(p, value, value_len);
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

/* Formats the head into out (room for head_bound bytes); returns its length. */
static size_t format_head(h1_up_t *u, const http_request_head_t *h, char *out)
{
    char *p = put(out, h->method, h->method_len);
    *p++ = ' ';
    p = put(p, h->path, h->path_len);
    p = put(p, " HTTP/1.1\r\n", 11);
    bool has_host = false;
    const http_headers_t *all = &h->headers;
    const http_headers_t *scope = http_headers_find(all, "connection") ? all : NULL;
    for (uint32_t i = 0; i < all->n; i++) {
        const http_header_t *f = &all->v[i];
        if (http1_is_hop_by_hop(f, scope) || http_name_is(f, "content-length"))
            continue;
        has_host |= http_name_is(f, "host");
        p = put_field(p, f->name, f->name_len, f->value, f->value_len);
    }
    if (h->upgrade) {
        /* The one case where hop-by-hop fields go on: the upgrade is asked of the next hop. */
        p = put_field(p, "connection", 10, "upgrade", 7);
        p = put_field(p, "upgrade", 7, h->upgrade, h->upgrade_len);
    }
    if (!has_host && h->authority_len)
        p = put_field(p, "host", 4, h->authority, h->authority_len);
    u->req_chunked = false;
    if (h->has_body && h->content_length >= 0) {
        char cl[24];
        p = put_field(p, "content-length", 14, cl, http_u64(cl, (uint64_t)h->content_length));
    } else if (h->has_body) {
        u->req_chunked = true;
        p = put_field(p, "transfer-encoding", 17, "chunked", 7);
    }
    *p++ = '\r';
    *p++ = '\n';
    return (size_t)(p - out);
}

static int h1_send_head(void *st, const http_request_head_t *head, const char *body,
                        size_t body_len, bool end, bool *retryable)
{
    h1_up_t *u = st;
    *retryable = false;
    if (u->uc == NULL)
        return -ENOTCONN;
    u->head_request = head->method_len == 4 && memcmp(head->method, "HEAD", 4) == 0;
    u->upgrade = head->upgrade != NULL;
    if (head->connect) {
        /* A terminated CONNECT: nothing goes upstream but the client's bytes. */
        u->body_written = true;
        u->head_done = true;
        u->tunnel = true;
        return 0;
    }
    char stack[H1_UP_STACK_HEAD];
    size_t cap = head_bound(head);
    char *out = cap <= sizeof(stack) ? stack : malloc(cap);
    if (out == NULL)
        return -ENOMEM;
    size_t n = format_head(u, head, out);
    /* A body held whole leaves with the head, in one write. */
    uv_buf_t b[2] = {uv_buf_init(out, (unsigned)n), uv_buf_init((char *)body, (unsigned)body_len)};
    int rc = pool_write(u->uc, b, body_len ? 2 : 1);
    if (out != stack)
        free(out);
    if (rc < 0) {
        /* A reused connection the server already closed: the request never left. */
        *retryable = u->uc->reused;
        let_go(u, false);
        return rc;
    }
    u->body_written = !head->has_body || end;
    return 0;
}

static int h1_send_data(void *st, const char *data, size_t len, bool end,
                        const http_headers_t *trailers)
{
    h1_up_t *u = st;
    if (u->uc == NULL)
        return -ENOTCONN;
    uv_buf_t bufs[4];
    unsigned n = 0;
    char size_line[24];
    char stack[1024];
    char *last = NULL;
    if (u->req_chunked && !u->tunnel) {
        if (len) {
            bufs[n++] = uv_buf_init(size_line, (unsigned)http1_write_chunk_size(size_line, len));
            bufs[n++] = uv_buf_init((char *)data, (unsigned)len);
            bufs[n++] = uv_buf_init("\r\n", 2);
        }
        if (end) {
            size_t need = http1_write_last_chunk(NULL, 0, trailers);
            last = need <= sizeof(stack) ? stack : malloc(need);
            if (last == NULL)
                return -ENOMEM;
            bufs[n++] = uv_buf_init(last, (unsigned)http1_write_last_chunk(last, need, trailers));
        }
    } else if (len) {
        bufs[n++] = uv_buf_init((char *)data, (unsigned)len);
    }
    int rc = n ? pool_write(u->uc, bufs, n) : 0;
    if (last && last != stack)
        free(last);
    if (rc < 0) {
        let_go(u, false);
        return rc;
    }
    if (end)
        u->body_written = true;
    return 0;
}

/* The response head: 1xx skipped, a 101 to an upgrade starts the tunnel. Returns 0 when body
 * or tunnel bytes follow, 1 when there is nothing more to do now, HTTP_STREAM_ENDED. */
static int process_head(h1_up_t *u)
{
    upstream_conn_t *uc = u->uc;
    while (!u->head_done) {
        http_header_t hv[128];
        http1_response_t resp;
        memset(&resp, 0, sizeof(resp));
        resp.headers.v = hv;
        resp.headers.cap = 128;
        int rc = http1_parse_response(uc->in.data, uc->in.len, H1_UP_MAX_HEAD, u->head_request,
                                      false, &resp);
        if (rc == HTTP1_INCOMPLETE)
            return 1;
        if (rc < 0) {
            log_debug("router: bad response from upstream: %s",
                      resp.error ? resp.error : "malformed");
            let_go(u, false);
            u->ev->on_reset(u->owner, HTTP_UP_BAD_HEAD, false);
            return HTTP_STREAM_ENDED;
        }
        if (resp.status < 200 && !(resp.status == 101 && u->upgrade)) {
            pool_consume(uc, (size_t)rc); /* 1xx: we answered 100 Continue ourselves */
            continue;
        }
        u->head_done = true;
        u->keep_alive = resp.keep_alive;
        u->resp_body = resp.body;
        bool with_cl = resp.body == HTTP1_BODY_LENGTH ||
                       (resp.body == HTTP1_BODY_NONE &&
                        http_headers_find(&resp.headers, "content-length") != NULL);
        http_response_head_t head = {
            .status = resp.status,
            .headers = resp.headers,
            .content_length = with_cl ? (int64_t)resp.content_length : -1,
            .has_body = resp.body != HTTP1_BODY_NONE || resp.status == 101,
        };
        if (resp.status == 101)
            u->tunnel = true;
        /* The head's slices point into uc->in: they are consumed once it has been handed on. */
        if (u->ev->on_head(u->owner, &head) < 0)
            return HTTP_STREAM_ENDED;
        pool_consume(uc, (size_t)rc);
        if (u->tunnel)
            return 0;
        http1_body_init(&u->body, resp.body, resp.content_length);
        if (resp.body == HTTP1_BODY_NONE) {
            u->ev->on_data(u->owner, NULL, 0, true);
            return HTTP_STREAM_ENDED;
        }
    }
    return 0;
}

/* A response body sink stopped http1_body_pump: the stream ended, or the response did. */
enum { RELAY_ENDED = 1 };

static int relay_piece(void *arg, const http1_body_piece_t *p)
{
    h1_up_t *u = arg;
    if (!p->done)
        return p->len && u->ev->on_data(u->owner, p->data, p->len, false) < 0 ? RELAY_ENDED : 0;
    bool trailers = p->trailers && p->trailers->n;
    if (trailers && p->len && u->ev->on_data(u->owner, p->data, p->len, false) < 0)
        return RELAY_ENDED;
    /* The last bytes (and trailers) point into uc->in: they are dropped when the connection is
     * let go. Without trailers they go with the end, in one event (one write, one frame). */
    u->consumed = p->offset + p->used;
    if (trailers)
        u->ev->on_trailers(u->owner, p->trailers);
    else
        u->ev->on_data(u->owner, p->data, p->len, true);
    return RELAY_ENDED;
}

/* Response body bytes on, until the body ends or the bytes run out. Returns 0, or
 * HTTP_STREAM_ENDED. */
static int process_body(h1_up_t *u)
{
    upstream_conn_t *uc = u->uc;
    size_t used;
    int rc = http1_body_pump(&u->body, uc->in.data, uc->in.len, relay_piece, u, &used);
    if (rc == RELAY_ENDED)
        return HTTP_STREAM_ENDED;
    pool_consume(uc, used);
    if (rc == HTTP1_E_BAD) {
        let_go(u, false);
        u->ev->on_reset(u->owner, HTTP_UP_BAD_BODY, false);
        return HTTP_STREAM_ENDED;
    }
    return 0;
}

/* Works through what the upstream sent: the head, then body or tunnel bytes. */
static void process(h1_up_t *u)
{
    upstream_conn_t *uc = u->uc;
    if (uc == NULL)
        return;
    if (process_head(u) != 0)
        return;
    if (u->tunnel) {
        if (uc->in.len) {
            size_t n = uc->in.len;
            uc->in.len = 0;
            u->ev->on_data(u->owner, uc->in.data, n, false);
        }
        return;
    }
    process_body(u);
}

static void h1_on_read(void *owner, upstream_conn_t *uc, ssize_t nread)
{
    h1_up_t *u = owner;
    if (nread > 0) {
        u->response_seen = true;
        process(u);
        return;
    }
    /* EOF or error: the pool closes uc after this callback. */
    bool reused = uc->reused;
    u->uc = NULL;
    if (u->tunnel) {
        u->ev->on_data(u->owner, NULL, 0, true);
        return;
    }
    if (u->head_done && nread == UV_EOF && u->resp_body == HTTP1_BODY_UNTIL_CLOSE) {
        u->ev->on_data(u->owner, NULL, 0, true); /* the close is the body's end */
        return;
    }
    /* The keep-alive race: a reused connection closed before any response byte. */
    u->ev->on_reset(u->owner, HTTP_UP_CLOSED, reused && !u->response_seen);
}

static void h1_on_drained(void *owner, upstream_conn_t *uc)
{
    (void)uc;
    h1_up_t *u = owner;
    u->ev->on_drained(u->owner);
}

static bool h1_congested(const void *st)
{
    const h1_up_t *u = st;
    return u->uc && u->uc->over_hwm;
}

static void h1_pause(void *st)
{
    h1_up_t *u = st;
    if (u->uc)
        pool_read_stop(u->uc);
}

static void h1_resume(void *st)
{
    h1_up_t *u = st;
    if (u->uc == NULL)
        return;
    pool_read_start(u->uc);
    process(u);
}

static void h1_release(void *st, bool complete)
{
    h1_up_t *u = st;
    let_go(u, complete && u->body_written && u->keep_alive && !u->tunnel);
}

static bool h1_reused(const void *st)
{
    const h1_up_t *u = st;
    return u->uc && u->uc->reused;
}

const http_up_codec_t h1_upstream_codec = {
    .name = "http/1.1",
    .state_size = sizeof(h1_up_t),
    .start = h1_start,
    .send_head = h1_send_head,
    .send_data = h1_send_data,
    .congested = h1_congested,
    .pause = h1_pause,
    .resume = h1_resume,
    .release = h1_release,
    .reused = h1_reused,
};
