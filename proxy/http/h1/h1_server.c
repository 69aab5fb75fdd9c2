/* The HTTP/1.1 downstream codec of the connection manager: parses request heads (pipelined ones
 * wait for the response before them) into the stream's protocol-neutral head, pumps the body to
 * the stream, relays Upgrade and CONNECT tunnels, and frames responses for the client. Errors in
 * the framing are answered like Envoy: a status, a short body, and the connection closes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/core/log.h"
#include "proxy/http/h1/h1_server.h"
#include "proxy/http/h2/h2_server.h"
#include "proxy/http/hcm_codec.h"

static void h1_process(hcm_conn_t *c);

/* ---- tunnels ------------------------------------------------------------------------------ */

/* Either side ended the tunnel: log the stream, then close once queued bytes are out. Half-close
 * is not carried through a tunnel (the way tcp_proxy does it): an upgraded connection ends as a
 * whole. */
static void tunnel_end(hcm_conn_t *c)
{
    if (c->state != HCM_TUNNEL)
        return;
    http_stream_t *s = hcm_h1_stream(c);
    c->close_after = true;
    c->state = HCM_IN_STREAM;
    s->resp_done = true;
    hcm_finish_stream(s);
}

static int h1_start_tunnel(http_stream_t *s)
{
    hcm_conn_t *c = s->conn;
    uint32_t serial = s->serial;
    c->state = HCM_TUNNEL;
    s->req_body_done = true;
    s->deadline_ms = 0;
    hcm_set_idle(c, c->cfg->idle_timeout_ms);
    hcm_resume(c); /* bytes the client sent after its request go up now */
    return hcm_stream_gone(s, serial) ? HTTP_STREAM_ENDED : 0;
}

static int h1_connect_established(http_stream_t *s)
{
    hcm_conn_t *c = s->conn;
    uv_buf_t ok = uv_buf_init("HTTP/1.1 200 OK\r\n\r\n", 19);
    s->status = 200;
    s->resp_started = true;
    if (hcm_down_write(c, &ok, 1) < 0) {
        s->flags = "DC";
        hcm_close(c, true);
        return HTTP_STREAM_ENDED;
    }
    s->deadline_ms = 0;
    return h1_start_tunnel(s);
}

static int h1_tunnel_data(http_stream_t *s, const char *data, size_t len, bool end)
{
    hcm_conn_t *c = s->conn;
    if (c->state != HCM_TUNNEL)
        return 0;
    if (len) {
        uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
        s->bytes_out += len;
        c->last_activity = hcm_now(c);
        if (hcm_down_write(c, &b, 1) < 0) {
            s->flags = "DC";
            hcm_close(c, true);
            return HTTP_STREAM_ENDED;
        }
    }
    if (!end)
        return 0;
    tunnel_end(c);
    return HTTP_STREAM_ENDED;
}

/* Sends what the client sent to the upstream, through the filters. */
static void tunnel_feed(hcm_conn_t *c)
{
    http_stream_t *s = hcm_h1_stream(c);
    if (c->in.len) {
        size_t n = c->in.len;
        c->in.len = 0;
        s->bytes_in += n;
        int rc = hcm_filters_tunnel_data(s, c->in.data, n);
        if (rc == HTTP_STREAM_ENDED)
            return;
        if (rc < 0) {
            s->flags = "UC";
            tunnel_end(c);
            return;
        }
    }
    if (c->read_eof)
        tunnel_end(c);
}

/* ---- requests ----------------------------------------------------------------------------- */

/* Slices of the head that pointed into the read buffer now point into the stream's copy. */
static const char *rebase(const char *p, const char *from, size_t len, const char *to)
{
    if (p >= from && p <= from + len)
        return to + (p - from);
    return p;
}

/* Copies the parsed head out of the read buffer into the stream's arena (so the buffer can take
 * body bytes and the next request while the stream still reads its headers) and sets the
 * stream's protocol-neutral head from it. Returns 0 or -ENOMEM. */
static int take_head(hcm_conn_t *c, http_stream_t *s, const http1_request_t *parsed,
                     size_t head_len)
{
    h1_server_t *h = &c->h1;
    char *to = arena_alloc(&s->arena, head_len);
    uint32_t cap = parsed->headers.n + 16;
    http_header_t *hv = arena_alloc(&s->arena, cap * sizeof(*hv));
    if (to == NULL || hv == NULL)
        return -ENOMEM;
    memcpy(to, c->in.data, head_len);
    h->req = *parsed;
    const char *b = c->in.data;
    h->req.method = rebase(parsed->method, b, head_len, to);
    h->req.target = rebase(parsed->target, b, head_len, to);
    h->req.path = rebase(parsed->path, b, head_len, to);
    h->req.authority = rebase(parsed->authority, b, head_len, to);
    for (uint32_t i = 0; i < parsed->headers.n; i++) {
        hv[i] = parsed->headers.v[i];
        hv[i].name = rebase(hv[i].name, b, head_len, to);
        hv[i].value = rebase(hv[i].value, b, head_len, to);
    }
    const http1_request_t *r = &h->req;
    s->head = (http_request_head_t){
        .method = r->method,
        .method_len = r->method_len,
        .path = r->path,
        .path_len = r->path_len,
        .authority = r->authority,
        .authority_len = r->authority_len,
        .headers = {.v = hv, .n = parsed->headers.n, .cap = cap},
        .content_length = r->body == HTTP1_BODY_LENGTH ? (int64_t)r->content_length : -1,
        .has_body = r->body != HTTP1_BODY_NONE,
        .proto = r->minor_version == 0 ? HTTP_PROTO_10 : HTTP_PROTO_11,
        .connect = r->connect,
    };
    h->req.headers = (http_headers_t){0}; /* the stream's list is head.headers */
    if (r->upgrade) {
        const http_header_t *up = http_headers_find(&s->head.headers, "upgrade");
        if (up) {
            s->head.upgrade = up->value;
            s->head.upgrade_len = up->value_len;
        }
    }
    return 0;
}

static void start_stream(hcm_conn_t *c, const http1_request_t *parsed, size_t head_len)
{
    h1_server_t *h = &c->h1;
    h->head_pending = false;
    h->resp_chunked = false;
    http_stream_t *s = hcm_stream_begin(c);
    if (s == NULL)
        return;
    if (take_head(c, s, parsed, head_len) < 0) {
        http_stream_local_reply(s, 500, "out of memory\n", "LR");
        return;
    }
    memmove(c->in.data, c->in.data + head_len, c->in.len - head_len);
    c->in.len -= head_len;
    http1_body_init(&h->body, h->req.body, h->req.content_length);
    s->req_body_done = h->req.body == HTTP1_BODY_NONE;
    if (s->req_body_done)
        s->req_done_ms = 0;
    if (!h->req.keep_alive)
        c->close_after = true;
    if (h->req.minor_version == 0 && !c->cfg->accept_http_10) {
        /* Envoy's default: HTTP/1.0 needs http_protocol_options.accept_http_10. */
        c->close_after = true;
        http_stream_local_reply(s, 426, "", NULL);
        return;
    }
    if (hcm_stream_permit(s) < 0)
        return;
    if (h->req.expect_continue) {
        /* Like Envoy (proxy_100_continue off): answer 100 ourselves, drop the expectation. */
        http_headers_remove(&s->head.headers, "expect");
        uv_buf_t cont = uv_buf_init("HTTP/1.1 100 Continue\r\n\r\n", 25);
        hcm_down_write(c, &cont, 1);
    }
    hcm_stream_headers(s);
}

/* Why a request-body sink stopped http1_body_pump. */
enum {
    BODY_PAUSED = 1, /* reading paused for backpressure: the rest waits for hcm_resume */
    BODY_ENDED,      /* the stream ended or moved on: the buffer is not ours to touch */
};

/* Drops the first n bytes of the read buffer: decoded and handed on. */
static void in_consume(hcm_conn_t *c, size_t n)
{
    if (n < c->in.len) /* else all of it: nothing is left to move */
        memmove(c->in.data, c->in.data + n, c->in.len - n);
    c->in.len -= n;
}

/* One piece of the request body to the stream. */
static int body_piece(void *arg, const http1_body_piece_t *p)
{
    hcm_conn_t *c = arg;
    http_stream_t *s = hcm_h1_stream(c);
    bool buffering = s->buffering;
    /* Should the stream end inside the call, the bytes up to the end of this piece are its own
     * and are dropped with it, never read as the next request's. */
    c->h1.in_feeding = p->offset + p->used;
    uint32_t serial = s->serial;
    int rc = hcm_stream_body(s, p->data, p->len, p->used, p->done, p->trailers);
    c->h1.in_feeding = 0;
    if (rc == HTTP_STREAM_ENDED || hcm_stream_gone(s, serial) || c->state == HCM_CLOSING)
        return BODY_ENDED;
    if (buffering && !s->buffering) {
        /* The body is complete and the filters after the buffering one ran: the bytes are
         * taken, whatever the stream does next. */
        in_consume(c, p->offset + p->used);
        return BODY_ENDED;
    }
    return rc == HCM_BODY_PAUSED ? BODY_PAUSED : 0;
}

/* Feeds buffered request body bytes to the stream, until reading pauses or the body ends. */
static void feed_body(hcm_conn_t *c)
{
    http_stream_t *s = hcm_h1_stream(c);
    if (!s->req_body_done && c->in.len > 0 && (s->buffering || !c->paused)) {
        size_t used;
        int rc = http1_body_pump(&c->h1.body, c->in.data, c->in.len, body_piece, c, &used);
        if (rc == BODY_ENDED)
            return;
        in_consume(c, used);
        if (rc == HTTP1_E_BAD) {
            s->buffering = false;
            c->close_after = true;
            http_stream_local_reply(s, 400, "bad request body framing\n", "DPE");
            return;
        }
    }
    if (hcm_h1_stream(c) == s && !s->req_body_done && c->read_eof)
        hcm_stream_client_gone(s); /* the client stopped sending in the middle of the body */
}

static int parse_error_status(int rc)
{
    switch (rc) {
    case HTTP1_E_HEAD_TOO_LARGE:
        return 431;
    case HTTP1_E_NOT_IMPLEMENTED:
        return 501;
    case HTTP1_E_VERSION:
        return 505;
    default:
        return 400;
    }
}

/* Answers a request that could not be parsed, then closes: the framing is lost. */
static void protocol_error(hcm_conn_t *c, int rc, const char *why)
{
    stats_inc(c->worker->stats, c->cfg->st.downstream_cx_protocol_error);
    int status = parse_error_status(rc);
    if (status == 431)
        stats_inc(c->worker->stats, c->cfg->st.downstream_rq_too_large);
    log_debug("hcm: rejecting request: %s", why ? why : "malformed");
    char body[160];
    snprintf(body, sizeof(body), "%s\n", why ? why : "bad request");
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\ncontent-length: %zu\r\ncontent-type: text/plain\r\n"
                     "connection: close\r\n\r\n",
                     status, http1_reason(status), strlen(body));
    uv_buf_t bufs[2] = {uv_buf_init(head, (unsigned)n), uv_buf_init(body, (unsigned)strlen(body))};
    stats_inc(c->worker->stats, c->cfg->st.downstream_rq_xx[status / 100 - 1]);
    hcm_down_write(c, bufs, 2);
    hcm_close(c, false);
}

static void h1_process(hcm_conn_t *c)
{
    while (c->state != HCM_CLOSING) {
        if (c->state == HCM_WAIT_HEAD) {
            if (c->in.len == 0 && c->read_eof) {
                hcm_close(c, false);
                return;
            }
            if (c->in.len == 0)
                break;
            if (c->next_serial == 0 && c->cfg->http2_only) {
                /* codec_type HTTP2: whatever came is HTTP/2's to judge (a bad preface is
                 * answered with GOAWAY). */
                if (h2_server_start(c) < 0) {
                    hcm_close(c, true);
                    return;
                }
                c->codec->input(c, 0);
                return;
            }
            if (c->next_serial == 0 && !c->cfg->http1_only) {
                /* The connection's first bytes: HTTP/2's preface (prior knowledge, or what a
                 * client that agreed on h2 by ALPN sends) turns it into an HTTP/2 one. */
                size_t n = c->in.len < H2_PREFACE_LEN ? c->in.len : H2_PREFACE_LEN;
                if (memcmp(c->in.data, H2_PREFACE, n) == 0) {
                    if (n < H2_PREFACE_LEN && !c->read_eof)
                        break; /* more of it to come */
                    if (n == H2_PREFACE_LEN) {
                        if (h2_server_start(c) < 0) {
                            hcm_close(c, true);
                            return;
                        }
                        c->codec->input(c, 0);
                        return;
                    }
                }
            }
            if (c->snap != c->worker->snap)
                hcm_rebind(c); /* a request starts: it runs with the newest config */
            http_header_t hv[256];
            http1_request_t req;
            memset(&req, 0, sizeof(req));
            req.headers.v = hv;
            req.headers.cap = c->cfg->max_headers < 256 ? c->cfg->max_headers : 256;
            int rc = http1_parse_request(c->in.data, c->in.len, c->cfg->max_head_bytes, &req);
            if (rc == HTTP1_INCOMPLETE && c->read_eof) {
                hcm_close(c, false); /* a partial request and no more bytes will come */
                return;
            }
            if (rc == HTTP1_INCOMPLETE)
                break;
            if (rc < 0) {
                protocol_error(c, rc, req.error);
                return;
            }
            start_stream(c, &req, (size_t)rc);
            continue;
        }
        if (c->state == HCM_TUNNEL) {
            tunnel_feed(c);
            break;
        }
        if (c->state == HCM_IN_STREAM) {
            /* Body bytes go upstream once the request head has, or to a filter buffering. */
            http_stream_t *s = hcm_h1_stream(c);
            if (s && !s->req_body_done && hcm_stream_wants_body(s))
                feed_body(c);
            break; /* the next pipelined request waits for this response */
        }
    }
}

/* nread > 0 plaintext bytes were appended at c->in.data + c->in.len; or the read ended. */
static void h1_input(hcm_conn_t *c, ssize_t nread)
{
    uv_stream_t *stream = (uv_stream_t *)c->tcp;
    if (nread == UV_ENOBUFS) {
        /* The buffer is full: a head larger than the limit, or a pipelining client far ahead
         * of us. Stop reading until the current stream frees room. */
        if (c->state == HCM_WAIT_HEAD) {
            protocol_error(c, HTTP1_E_HEAD_TOO_LARGE, "request headers too large");
            return;
        }
        uv_read_stop(stream);
        c->paused = true;
        return;
    }
    if (nread < 0 && nread != UV_EOF) {
        hcm_flag_streams(c, "DC");
        hcm_close(c, true);
        return;
    }
    if (nread < 0 && c->state == HCM_TUNNEL) {
        c->read_eof = true;
        uv_read_stop(stream);
        h1_process(c);
        return;
    }
    if (nread < 0) {
        if (hcm_h1_stream(c)) {
            /* The client closed while its request is in flight: as Envoy does, that ends the
             * request (DC) and resets its upstream side at once, rather than letting the
             * upstream work on for nobody (and hold up a drain). HTTP/1 clients do not
             * half-close to mark the end of a request: its framing does. */
            hcm_stream_client_gone(hcm_h1_stream(c));
        } else if (c->in.len > 0) {
            /* A partial head and no more bytes to come: closes in h1_process. */
            c->read_eof = true;
            uv_read_stop(stream);
            h1_process(c);
        } else {
            hcm_close(c, false);
        }
        return;
    }
    c->in.len += (size_t)nread;
    c->last_activity = hcm_now(c);
    if (c->state == HCM_IN_STREAM && hcm_h1_stream(c) && hcm_h1_stream(c)->req_body_done &&
        c->in.len > c->cfg->max_head_bytes) {
        uv_read_stop(stream); /* enough pipelined bytes buffered */
        c->paused = true;
    }
    h1_process(c);
    if (c->state != HCM_CLOSING)
        conn_buf_trim(&c->worker->pool, &c->in); /* idle connections hold no buffer */
}

/* The stream ended: the next request, or the close. */
static void h1_stream_finished(hcm_conn_t *c, http_stream_t *s)
{
    (void)s;
    if (c->h1.in_feeding) { /* the ended request's body up to the piece being fed: not a next one */
        in_consume(c, c->h1.in_feeding);
        c->h1.in_feeding = 0;
    }
    c->state = HCM_WAIT_HEAD;
    hcm_set_idle(c, c->cfg->idle_timeout_ms);
    if (c->close_after) {
        hcm_close(c, false);
        return;
    }
    /* A pipelined request may already be buffered. */
    hcm_resume(c);
}

/* Idle keep-alive connections close now; busy ones answer their current request with
 * "connection: close" and close after it, as Envoy does while draining. */
static void h1_drain(hcm_conn_t *c)
{
    if (c->state == HCM_WAIT_HEAD && c->in.len == 0)
        hcm_close(c, false);
    else
        c->close_after = true;
}

/* ---- responses ---------------------------------------------------------------------------- */

static int h1_local_reply(http_stream_t *s, int status, const char *body)
{
    hcm_conn_t *c = s->conn;
    if (!s->req_body_done)
        c->close_after = true; /* the rest of the request body cannot be told from a next one */
    size_t blen = body ? strlen(body) : 0;
    char head[512];
    int n =
        snprintf(head, sizeof(head),
                 "HTTP/1.1 %d %s\r\ncontent-length: %zu\r\ncontent-type: text/plain\r\n%s\r\n",
                 status, http1_reason(status), blen, c->close_after ? "connection: close\r\n" : "");
    uv_buf_t bufs[2] = {uv_buf_init(head, (unsigned)n),
                        uv_buf_init((char *)(body ? body : ""), (unsigned)blen)};
    s->bytes_out += blen;
    return hcm_down_write(c, bufs, blen ? 2 : 1);
}

static int h1_encode_head(http_stream_t *s, const http_response_head_t *resp)
{
    hcm_conn_t *c = s->conn;
    h1_server_t *h = &c->h1;
    http_headers_t *fields = &s->resp_headers;
    /* Framing toward the downstream: keep a Content-Length (a response without a body keeps
     * the one it announced); otherwise chunked for HTTP/1.1 clients and close-delimited for
     * HTTP/1.0 ones. A 101 keeps its upgrade headers. */
    char cl[24];
    bool http10 = s->head.proto == HTTP_PROTO_10;
    const http_header_t *rup = http_headers_find(&resp->headers, "upgrade");
    if (resp->status == 101 && s->head.upgrade && rup) {
        http_stream_header_add(s, fields, "connection", 10, "upgrade", 7);
        http_stream_header_add(s, fields, "upgrade", 7, rup->value, rup->value_len);
    } else if (resp->content_length >= 0) {
        size_t n = http_u64(cl, (uint64_t)resp->content_length);
        http_stream_header_add(s, fields, "content-length", 14, cl, n);
    } else if (resp->has_body) {
        if (http10) {
            c->close_after = true;
        } else {
            h->resp_chunked = true;
            http_stream_header_add(s, fields, "transfer-encoding", 17, "chunked", 7);
        }
    }
    if (resp->status == 101)
        ; /* the connection becomes the tunnel */
    else if (c->close_after)
        http_stream_header_add(s, fields, "connection", 10, "close", 5);
    else if (http10)
        http_stream_header_add(s, fields, "connection", 10, "keep-alive", 10);

    /* One formatting pass into a buffer sized by an upper bound (status line + ": " and CRLF
     * per field + the final CRLF). */
    size_t cap = 64;
    for (uint32_t i = 0; i < fields->n; i++)
        cap += fields->v[i].name_len + fields->v[i].value_len + 4;
    char *out = arena_alloc(&s->arena, cap);
    size_t need = out ? http1_write_response_head(out, cap, resp->status, NULL, fields) : 0;
    if (out && need > cap) { /* an unusual reason phrase: size it exactly */
        out = arena_alloc(&s->arena, need);
        if (out)
            http1_write_response_head(out, need, resp->status, NULL, fields);
    }
    if (out == NULL)
        return -ENOMEM;
    h->head_pending = true;
    h->pending_head = uv_buf_init(out, (unsigned)need);
    return 0;
}

static int h1_flush_head(http_stream_t *s)
{
    h1_server_t *h = &s->conn->h1;
    if (!h->head_pending)
        return 0;
    h->head_pending = false;
    if (hcm_down_write(s->conn, &h->pending_head, 1) < 0) {
        s->flags = "DC";
        hcm_close(s->conn, true);
        return HTTP_STREAM_ENDED;
    }
    return 0;
}

/* The last chunk of a chunked body with trailer fields ("0\r\nname: value\r\n\r\n"), written
 * into the stream's arena (trailers borrowed for the call; NULL or empty: no fields). */
static http_slice_t last_chunk(http_stream_t *s, const http_headers_t *trailers)
{
    static const http_slice_t plain = {"0\r\n\r\n", 5};
    if (trailers == NULL || trailers->n == 0)
        return plain;
    size_t n = http1_write_last_chunk(NULL, 0, trailers);
    char *p = arena_alloc(&s->arena, n);
    if (p == NULL)
        return plain;
    http1_write_last_chunk(p, n, trailers);
    return (http_slice_t){p, n};
}

static int h1_encode_body(http_stream_t *s, const char *data, size_t len, bool end,
                          const http_headers_t *trailers)
{
    hcm_conn_t *c = s->conn;
    h1_server_t *h = &c->h1;
    if (end && !s->req_body_done)
        c->close_after = true; /* answered before the body ended: its end cannot be found */
    uv_buf_t bufs[5];
    unsigned n = 0;
    char size_line[24];
    if (h->head_pending) {
        bufs[n++] = h->pending_head; /* head and first bytes leave in one writev */
        h->head_pending = false;
    }
    s->bytes_out += len;
    if (len && h->resp_chunked) {
        bufs[n++] = uv_buf_init(size_line, (unsigned)http1_write_chunk_size(size_line, len));
        bufs[n++] = uv_buf_init((char *)data, (unsigned)len);
        bufs[n++] = uv_buf_init("\r\n", 2);
    } else if (len) {
        bufs[n++] = uv_buf_init((char *)data, (unsigned)len);
    }
    if (end && h->resp_chunked) {
        http_slice_t last = last_chunk(s, trailers);
        bufs[n++] = uv_buf_init((char *)last.data, (unsigned)last.len);
    }
    if (n && hcm_down_write(c, bufs, n) < 0) {
        s->flags = "DC";
        hcm_close(c, true);
        return HTTP_STREAM_ENDED;
    }
    return 0;
}

/* HTTP/1.1 cannot reset one stream: the connection is reset. */
static void h1_reset_stream(http_stream_t *s)
{
    hcm_close(s->conn, true);
}

static void h1_pause_body(http_stream_t *s)
{
    hcm_pause_reading(s->conn);
}

static bool h1_congested(const http_stream_t *s)
{
    return hcm_down_congested(s->conn);
}

const hcm_codec_t h1_server_codec = {
    .name = "http/1.1",
    .input = h1_input,
    .process = h1_process,
    .encode_head = h1_encode_head,
    .flush_head = h1_flush_head,
    .encode_body = h1_encode_body,
    .local_reply = h1_local_reply,
    .connect_established = h1_connect_established,
    .start_tunnel = h1_start_tunnel,
    .tunnel_data = h1_tunnel_data,
    .stream_finished = h1_stream_finished,
    .drain = h1_drain,
    .reset_stream = h1_reset_stream,
    .pause_body = h1_pause_body,
    .congested = h1_congested,
};
