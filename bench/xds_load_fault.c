/* The slow reader of xds_load (issue 14, point 7): a sidecar whose stream backs up. It cannot be
 * one of the gRPC client's connections, which always read, so it speaks the little HTTP/2 it
 * needs itself on a plain TCP socket: the preface, settings that open every flow-control window
 * as far as it goes (so only the socket holds the control plane back, never HTTP/2), one ADS
 * call with its first requests, and then nothing: the socket is never read, its receive buffer
 * is kept small, and every response the control plane owes it waits on the control plane's side.
 * What the control plane keeps for it meanwhile is the bench's to watch (its RSS). */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench/xds_load.h"

#include "envoy/service/discovery/v3/discovery.pb-c.h"

#define SLOW_RCVBUF 4096 /* the kernel doubles it and keeps a minimum; still a few KiB */
#define H2_DATA     0x0
#define H2_HEADERS  0x1
#define H2_SETTINGS 0x4
#define H2_WINDOW   0x8
#define H2_END_HDRS 0x4
#define H2_MAX_WIN  0x7fffffffu

struct xl_slow {
    xl_run_t *x;
    char *id;
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    uint8_t *out;
    size_t len, cap;
    bool oom;
};

/* --- the bytes it sends ------------------------------------------------------------------ */

static void put(xl_slow_t *s, const void *p, size_t n)
{
    if (s->oom || s->len + n <= s->cap) {
        if (!s->oom)
            memcpy(s->out + s->len, p, n), s->len += n;
        return;
    }
    size_t cap = s->cap ? s->cap : 1024;
    while (cap < s->len + n)
        cap *= 2;
    uint8_t *grown = realloc(s->out, cap);
    if (grown == NULL) {
        s->oom = true;
        return;
    }
    s->out = grown, s->cap = cap;
    memcpy(s->out + s->len, p, n), s->len += n;
}

static void put_u32(xl_slow_t *s, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(s, b, 4);
}

static void frame_header(xl_slow_t *s, size_t len, uint8_t type, uint8_t flags, uint32_t stream)
{
    uint8_t b[5] = {(uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len, type, flags};
    put(s, b, 5);
    put_u32(s, stream);
}

/* An HPACK literal header field without indexing, new name; names and values are short (< 127
 * bytes: a one-byte length, no Huffman coding). */
static void hpack_literal(uint8_t *blk, size_t *n, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    blk[(*n)++] = 0x00;
    blk[(*n)++] = (uint8_t)nl;
    memcpy(blk + *n, name, nl), *n += nl;
    blk[(*n)++] = (uint8_t)vl;
    memcpy(blk + *n, value, vl), *n += vl;
}

/* One request of type as a gRPC message in a DATA frame on stream 1; names: EDS resource names
 * (NULL for a wildcard type); the node goes with the first. */
static void put_request(xl_slow_t *s, int type, const char **names, size_t n, bool with_node)
{
    Envoy__Config__Core__V3__Node node = ENVOY__CONFIG__CORE__V3__NODE__INIT;
    node.id = s->id;
    node.cluster = (char *)xl_run_opts(s->x)->node_cluster;
    ProtobufCMessage *m;
    Envoy__Service__Discovery__V3__DiscoveryRequest q =
        ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_REQUEST__INIT;
    Envoy__Service__Discovery__V3__DeltaDiscoveryRequest d =
        ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_REQUEST__INIT;
    if (xl_run_opts(s->x)->delta) {
        d.type_url = (char *)xl_type_url[type];
        d.node = with_node ? &node : NULL;
        d.n_resource_names_subscribe = n;
        d.resource_names_subscribe = (char **)names;
        m = &d.base;
    } else {
        q.type_url = (char *)xl_type_url[type];
        q.node = with_node ? &node : NULL;
        q.n_resource_names = n;
        q.resource_names = (char **)names;
        m = &q.base;
    }
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *msg = malloc(len + 5);
    if (msg == NULL) {
        s->oom = true;
        return;
    }
    msg[0] = 0; /* not compressed */
    msg[1] = (uint8_t)(len >> 24), msg[2] = (uint8_t)(len >> 16);
    msg[3] = (uint8_t)(len >> 8), msg[4] = (uint8_t)len;
    protobuf_c_message_pack(m, msg + 5);
    frame_header(s, len + 5, H2_DATA, 0, 1);
    put(s, msg, len + 5);
    free(msg);
}

/* The preface, settings, a connection window update, the call's HEADERS and its requests. */
static void compose(xl_slow_t *s)
{
    const xl_opts_t *o = xl_run_opts(s->x);
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    put(s, preface, sizeof(preface) - 1);
    frame_header(s, 6, H2_SETTINGS, 0, 0);
    uint8_t initial_window[2] = {0x00, 0x04};
    put(s, initial_window, 2);
    put_u32(s, H2_MAX_WIN);
    frame_header(s, 4, H2_WINDOW, 0, 0);
    put_u32(s, H2_MAX_WIN - 65535);
    uint8_t blk[512];
    size_t n = 0;
    hpack_literal(blk, &n, ":method", "POST");
    hpack_literal(blk, &n, ":scheme", "http");
    hpack_literal(blk, &n, ":path",
                  o->delta ? "/envoy.service.discovery.v3.AggregatedDiscoveryService/"
                             "DeltaAggregatedResources"
                           : "/envoy.service.discovery.v3.AggregatedDiscoveryService/"
                             "StreamAggregatedResources");
    hpack_literal(blk, &n, ":authority", "remora-cp");
    hpack_literal(blk, &n, "content-type", "application/grpc");
    hpack_literal(blk, &n, "te", "trailers");
    frame_header(s, n, H2_HEADERS, H2_END_HDRS, 1);
    put(s, blk, n);
    put_request(s, XL_CDS, NULL, 0, true);
    put_request(s, XL_LDS, NULL, 0, false);
    if (o->nslow_eds)
        put_request(s, XL_EDS, o->slow_eds, o->nslow_eds, false);
}

/* --- the connection ---------------------------------------------------------------------- */

static void on_written(uv_write_t *w, int status)
{
    xl_slow_t *s = w->data;
    if (status == 0)
        xl_run_on_fault(s->x, XL_FAULT_SLOW, XL_FC_WRITTEN, s->len);
    else if (status != UV_ECANCELED)
        xl_run_on_fault(s->x, XL_FAULT_SLOW, XL_FC_LOST, 1);
}

static void on_connected(uv_connect_t *c, int status)
{
    xl_slow_t *s = c->data;
    if (status < 0) {
        if (status != UV_ECANCELED)
            xl_run_on_fault(s->x, XL_FAULT_SLOW, XL_FC_LOST, 1);
        return;
    }
    xl_run_on_fault(s->x, XL_FAULT_SLOW, XL_FC_STREAMS, 1);
    uv_buf_t b = uv_buf_init((char *)s->out, (unsigned)s->len);
    s->write.data = s;
    if (uv_write(&s->write, (uv_stream_t *)&s->tcp, &b, 1, on_written) < 0)
        xl_run_on_fault(s->x, XL_FAULT_SLOW, XL_FC_LOST, 1);
    /* and no uv_read_start, ever */
}

xl_slow_t *xl_slow_new(xl_run_t *x, const char *id)
{
    xl_slow_t *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->id = strdup(id)) == NULL) {
        free(s);
        return NULL;
    }
    s->x = x;
    compose(s);
    const struct sockaddr *addr = xl_run_addr(x);
    int fd = s->oom ? -1 : socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rcv = SLOW_RCVBUF;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv)) < 0 ||
        uv_tcp_init(xl_run_loop(x), &s->tcp) < 0) {
        if (fd >= 0)
            close(fd);
        free(s->out), free(s->id), free(s);
        return NULL;
    }
    s->tcp.data = s;
    s->connect.data = s;
    if (uv_tcp_open(&s->tcp, fd) < 0) {
        close(fd);
        xl_run_on_fault(x, XL_FAULT_SLOW, XL_FC_LOST, 1);
    } else if (uv_tcp_connect(&s->connect, &s->tcp, addr, on_connected) < 0) {
        xl_run_on_fault(x, XL_FAULT_SLOW, XL_FC_LOST, 1);
    }
    return s;
}

static void on_closed(uv_handle_t *h)
{
    xl_slow_t *s = h->data;
    free(s->out), free(s->id), free(s);
}

void xl_slow_close(xl_slow_t *s)
{
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&s->tcp, &fd) == 0) {
        /* What waits unread in its receive buffer, and whether the control plane gave up on it
         * (its FIN came: the socket is in CLOSE_WAIT). */
        int queued = 0;
        if (ioctl(fd, FIONREAD, &queued) == 0 && queued > 0)
            xl_run_on_fault(s->x, XL_FAULT_SLOW, XL_FC_BYTES, (uint64_t)queued);
        struct tcp_info ti;
        socklen_t tl = sizeof(ti);
        if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0 &&
            ti.tcpi_state != TCP_ESTABLISHED)
            xl_run_on_fault(s->x, XL_FAULT_SLOW, XL_FC_LOST, 1);
    }
    uv_close((uv_handle_t *)&s->tcp, on_closed);
}
