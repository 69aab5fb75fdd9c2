/* The gRPC server's insides, shared by its two files and by nothing else: the server and its
 * connections (grpc_server.c: listener, sockets, TLS, timers, the HTTP/2 session and its
 * connection-level frames) and the calls (grpc_scall.c: streams, request checks, routing,
 * messages both ways, trailers, and how a call ends). */
#ifndef REMORA_GRPC_SERVER_INT_H
#define REMORA_GRPC_SERVER_INT_H

#include <nghttp2/nghttp2.h>

#include "proxy/core/bufpool.h"
#include "proxy/grpc/grpc_h2out.h"
#include "proxy/grpc/grpc_sendq.h"
#include "proxy/grpc/grpc_server.h"
#include "proxy/net/tls_io.h"

typedef struct grpc_sconn grpc_sconn_t;

typedef struct grpc_method {
    struct grpc_method *next;
    const grpc_method_ops_t *ops;
    void *user;
    char path[];
} grpc_method_t;

typedef enum {
    GRPC_SCALL_HEADERS, /* request headers arriving: not given to a method yet */
    GRPC_SCALL_OPEN,    /* the method has it */
    GRPC_SCALL_ENDING,  /* over: its on_close waits for the loop */
    GRPC_SCALL_DONE,    /* on_close ran, or the call was refused before it started */
} grpc_scall_state_t;

/* Response metadata: nghttp2 name/value pairs over one block of keys and values (owned). */
typedef struct grpc_md_block {
    nghttp2_nv *nv;
    size_t n;
} grpc_md_block_t;

/* Header values kept from the request (for grpc_scall_metadata): key\0value\0 pairs. */
#define GRPC_SCALL_MD_MAX (16 * 1024)

struct grpc_scall {
    grpc_sconn_t *conn;
    grpc_scall_t *prev, *next; /* the connection's calls with a live stream */
    grpc_scall_t *later;       /* the connection's list of endings to deliver, or graveyard */
    grpc_scall_state_t state;
    int32_t stream_id;
    bool stream_gone;        /* nghttp2 closed the stream, or the connection is gone */
    bool remote_closed;      /* the client's END_STREAM arrived */
    bool headers_sent;       /* the response headers are submitted */
    bool finishing;          /* grpc_scall_finish (or an error) set the status: trailers follow */
    bool trailers_sent;      /* the frame with END_STREAM went out */
    bool deferred;           /* the data provider said DEFERRED */
    bool writable_armed;     /* pending reached the low-water mark: on_writable when it drops */
    bool writable_due;       /* ... and it has dropped: on_writable at the next loop turn */
    bool post, ct_ok, te_ok; /* :method POST, content-type application/grpc, te trailers */
    int reject_code;         /* a bad gRPC request: the status it gets (trailers-only) */
    const char *reject_why;  /* static */
    const grpc_method_t *method;
    void *user;
    char *path;
    char *md; /* the request's headers, key\0value\0... */
    size_t md_len, md_cap;
    uint64_t deadline; /* loop time in ms; 0: none */
    grpc_deframer_t deframer;
    grpc_sendq_t sq;  /* the response messages HTTP/2 has not taken: the call's pending bytes */
    int status;       /* the status to send once finishing */
    char *status_msg; /* its message, as given (NULL: none) */
    grpc_md_block_t init_md, trail_md;
    int end_code; /* what on_close says */
    char *end_message;
};

typedef enum {
    GRPC_SCONN_HANDSHAKE, /* TLS handshake, or waiting for the client's preface */
    GRPC_SCONN_OPEN,      /* calls run */
    GRPC_SCONN_DRAINING,  /* GOAWAY sent: the calls taken run on, none new */
    GRPC_SCONN_CLOSED,    /* the socket is closing; every call has ended */
} grpc_sconn_state_t;

struct grpc_sconn {
    grpc_server_t *srv;
    grpc_sconn_t *prev, *next;
    uv_tcp_t tcp;
    uv_timer_t timer;    /* handshake timeout, keepalive, idle timeout */
    uv_timer_t deadline; /* the calls' nearest deadline */
    uv_idle_t kick;      /* work for the next loop turn: deliver endings, send, free */
    int handles_open;
    grpc_sconn_state_t state;
    bool ping_out; /* a keepalive PING waits for its ack */
    bool tls_done;
    bool close_when_flushed; /* close once every byte is out (a GOAWAY for a protocol error) */
    nghttp2_session *h2;
    tls_io_t *tls;
    bufpool_t pool;
    char *peer_id;           /* the client certificate's SPIFFE ID, or NULL */
    char name[64];           /* the client's address, for log lines */
    grpc_h2out_t out;        /* the session's output on its way to the socket */
    uint8_t *rbuf;           /* the server's (borrowed) */
    grpc_scall_t *calls;     /* calls with a live stream */
    size_t ncalls;           /* of them, the ones a method has */
    grpc_scall_t *ending;    /* on_close to deliver at the next loop turn */
    grpc_scall_t *graveyard; /* to free at the next loop turn */
    uint64_t started, last_read, ping_sent, idle_since, last_ping_recv;
    uint64_t close_by; /* loop time by which the connection closes whatever is left; 0: none */
    int ping_strikes;
};

struct grpc_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t grace;
    int handles_open;
    bool listening, released, draining, drained_reported;
    tls_config_t *tls;
    grpc_server_opts_t o; /* with the defaults filled in */
    grpc_method_t *methods;
    grpc_sconn_t *conns;
    size_t nconns;
    grpc_server_drained_cb on_drained;
    void *drained_user;
    /* The read buffer of every connection: a read is handled whole, on the loop's thread,
     * before the next one is taken, so one serves them all. */
    uint8_t *rbuf;
};

/* grpc_server.c */
/* Asks for a loop turn's work on c: deliver endings, send what HTTP/2 has, free ended calls. */
void grpc_sconn_kick(grpc_sconn_t *c);
/* Re-arms c's deadline timer for the nearest deadline of its calls. */
void grpc_sconn_arm_deadline(grpc_sconn_t *c);
/* The loop's time now, in ms. */
uint64_t grpc_sconn_now(const grpc_sconn_t *c);
/* The method registered for path[0..len), or NULL. */
const grpc_method_t *grpc_server_find_method(const grpc_server_t *s, const char *path, size_t len);

/* grpc_scall.c */
/* Installs the stream-level nghttp2 callbacks (begin headers, header, data, stream close,
 * frame sent) into cbs; the frame-received callback of the connection calls the next one. */
void grpc_scalls_install_callbacks(nghttp2_session_callbacks *cbs);
/* A HEADERS or DATA frame of a stream arrived (from the connection's frame callback). */
void grpc_scall_frame_received(grpc_sconn_t *c, const nghttp2_frame *frame);
/* Ends every call of c (on_close with code and message now); their streams are gone. */
void grpc_scalls_end_all(grpc_sconn_t *c, int code, const char *message);
/* Finishes every running call of c with code and message (trailers sent; on_close with them). */
void grpc_scalls_finish_all(grpc_sconn_t *c, int code, const char *message);
/* Ends the calls whose deadline has passed (DEADLINE_EXCEEDED). */
void grpc_scalls_expire(grpc_sconn_t *c);
/* The loop turn's work on calls: on_writable, on_close of ended calls, freeing. */
void grpc_scalls_deliver(grpc_sconn_t *c);
/* Frees the calls whose on_close ran and whose stream is gone. */
void grpc_scalls_free_done(grpc_sconn_t *c);

#endif
