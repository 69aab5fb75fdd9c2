/* One request per connection: read up to the end of the head (8 KiB at most), parse the request
 * line, let the handler answer, write the answer with Connection: close, close. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/admin/admin_http.h"

#include "proxy/core/log.h"
#include "proxy/http/h1/http1.h"
#include "xds/snapshot/snapshot.h"

#define ADMIN_MAX_REQUEST 8192

struct admin_http {
    uv_tcp_t tcp;
    admin_http_handler_fn handler;
    void *ctx;
    bool open;
};

typedef struct admin_conn {
    uv_tcp_t tcp;
    admin_http_t *server;
    char buf[ADMIN_MAX_REQUEST];
    size_t len;
    bool responded;
    uv_write_t write_req;
    uv_buf_t out[2];
    char head[256];
    char *body;
} admin_conn_t;

bool admin_query_param(const char *query, const char *key, char *out, size_t outlen)
{
    size_t klen = strlen(key);
    for (const char *p = query; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t plen = amp ? (size_t)(amp - p) : strlen(p);
        if (plen >= klen && strncmp(p, key, klen) == 0 && (plen == klen || p[klen] == '=')) {
            const char *v = plen == klen ? p + klen : p + klen + 1;
            size_t vlen = plen == klen ? 0 : plen - klen - 1, o = 0;
            for (size_t i = 0; i < vlen && o + 1 < outlen; i++) {
                if (v[i] == '%' && i + 2 < vlen) {
                    unsigned x;
                    if (sscanf(v + i + 1, "%2x", &x) == 1) {
                        out[o++] = (char)x;
                        i += 2;
                        continue;
                    }
                }
                out[o++] = v[i] == '+' ? ' ' : v[i];
            }
            out[o] = '\0';
            return true;
        }
        p = amp ? amp + 1 : NULL;
    }
    return false;
}

void admin_respond_text(admin_response_t *r, int status, const char *text)
{
    r->status = status;
    r->content_type = "text/plain; charset=UTF-8";
    r->body = strdup(text);
}

void admin_respond_json(admin_response_t *r, json_t *root)
{
    r->status = 200;
    r->content_type = "application/json";
    r->body = root ? json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
}

static void on_conn_closed(uv_handle_t *h)
{
    admin_conn_t *c = h->data;
    free(c->body);
    free(c);
}

static void on_written(uv_write_t *req, int status)
{
    (void)status;
    admin_conn_t *c = req->data;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void send_response(admin_conn_t *c, admin_response_t *r, bool head_only)
{
    size_t blen = r->body ? strlen(r->body) : 0;
    int n = snprintf(c->head, sizeof(c->head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-cache, max-age=0\r\nConnection: close\r\n\r\n",
                     r->status, http1_reason(r->status), r->content_type, blen);
    c->body = r->body;
    c->out[0] = uv_buf_init(c->head, (unsigned)n);
    c->out[1] = uv_buf_init(c->body ? c->body : "", head_only ? 0 : (unsigned)blen);
    c->write_req.data = c;
    c->responded = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, c->out, 2, on_written) < 0)
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static int parse_request(admin_conn_t *c, admin_request_t *rq)
{
    char *end = memchr(c->buf, '\n', c->len);
    if (end == NULL)
        return -EINVAL;
    *end = '\0';
    char *sp1 = strchr(c->buf, ' ');
    if (sp1 == NULL)
        return -EINVAL;
    *sp1 = '\0';
    char *target = sp1 + 1, *sp2 = strchr(target, ' ');
    if (sp2 == NULL)
        return -EINVAL;
    *sp2 = '\0';
    rq->method = c->buf;
    char *q = strchr(target, '?');
    if (q) {
        *q = '\0';
        snprintf(rq->query, sizeof(rq->query), "%s", q + 1);
    }
    if (strlen(target) >= sizeof(rq->path) || target[0] != '/')
        return -EINVAL;
    snprintf(rq->path, sizeof(rq->path), "%s", target);
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    admin_conn_t *c = h->data;
    *buf = uv_buf_init(c->buf + c->len, (unsigned)(sizeof(c->buf) - 1 - c->len));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    admin_conn_t *c = stream->data;
    if (c->responded)
        return;
    if (nread < 0) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    c->len += (size_t)nread;
    c->buf[c->len] = '\0';
    admin_response_t r = {0};
    if (strstr(c->buf, "\r\n\r\n") == NULL && strstr(c->buf, "\n\n") == NULL) {
        if (c->len < sizeof(c->buf) - 1)
            return;
        admin_respond_text(&r, 431, "request too large\n");
        send_response(c, &r, false);
        return;
    }
    admin_request_t rq = {0};
    if (parse_request(c, &rq) < 0) {
        admin_respond_text(&r, 400, "bad request\n");
        send_response(c, &r, false);
        return;
    }
    c->server->handler(c->server->ctx, &rq, &r);
    if (r.status == 0 || r.body == NULL) {
        free(r.body);
        r.body = NULL;
        admin_respond_text(&r, 500, "out of memory\n");
    }
    void (*after)(void *) = r.after;
    void *after_ctx = r.after_ctx;
    send_response(c, &r, strcmp(rq.method, "HEAD") == 0);
    if (after)
        after(after_ctx);
}

static void on_connection(uv_stream_t *server, int status)
{
    admin_http_t *s = server->data;
    if (status < 0)
        return;
    admin_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->server = s;
    uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

int admin_http_start(uv_loop_t *loop, const struct sockaddr *addr, const char *what,
                     admin_http_handler_fn handler, void *ctx, admin_http_t **out, char *err,
                     size_t errlen)
{
    admin_http_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->handler = handler;
    s->ctx = ctx;
    uv_tcp_init(loop, &s->tcp);
    s->tcp.data = s;
    s->open = true;
    char text[80];
    snapshot_format_addr(addr, text, sizeof(text));
    int rc = uv_tcp_bind(&s->tcp, addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->tcp, 128, on_connection);
    if (rc < 0) {
        snprintf(err, errlen, "%s: listen on %s: %s", what, text, uv_strerror(rc));
        admin_http_stop(s);
        return rc;
    }
    *out = s;
    /* The bound address, so a port 0 shows the port the kernel gave. */
    struct sockaddr_storage bound;
    if (admin_http_address(s, &bound) == 0)
        snapshot_format_addr((struct sockaddr *)&bound, text, sizeof(text));
    log_info("%s: listening on %s", what, text);
    return 0;
}

int admin_http_address(const admin_http_t *s, struct sockaddr_storage *out)
{
    int len = sizeof(*out);
    return uv_tcp_getsockname(&s->tcp, (struct sockaddr *)out, &len);
}

static void on_server_closed(uv_handle_t *h)
{
    free(h->data);
}

void admin_http_stop(admin_http_t *s)
{
    if (s && s->open) {
        s->open = false;
        uv_close((uv_handle_t *)&s->tcp, on_server_closed);
    }
}
