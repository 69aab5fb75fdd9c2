/* A gRPC client connection on the caller's libuv loop: one HTTP/2 connection (nghttp2's client
 * session) to one server, plaintext with prior knowledge (h2c) or TLS with ALPN "h2", carrying
 * any number of calls. Messages are opaque bytes: encoding them is the caller's business. Built
 * for the xDS client (one long-lived bidirectional stream on the main thread), so it keeps what a
 * long-lived stream needs: keepalive PINGs, deadlines, a visible send queue, and a connection
 * state the caller watches to reconnect. One thread: every function is called on the loop's. */
#ifndef REMORA_GRPC_CLIENT_H
#define REMORA_GRPC_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "certs/tls.h"
#include "proxy/core/bufpool.h"
#include "proxy/grpc/grpc_frame.h"

typedef struct grpc_conn grpc_conn_t;
typedef struct grpc_call grpc_call_t;

typedef enum {
    GRPC_CONN_CONNECTING, /* TCP connect, TLS handshake, waiting for the server's SETTINGS */
    GRPC_CONN_READY,      /* the server's SETTINGS arrived: calls run */
    GRPC_CONN_DRAINING,   /* the server sent GOAWAY: the calls it took run on, no new ones */
    GRPC_CONN_CLOSED,     /* over: every call has had its on_close; make a new connection */
} grpc_conn_state_t;

/* "CONNECTING", ... (static). */
const char *grpc_conn_state_name(grpc_conn_state_t st);

/* The connection changed state (never to CONNECTING, never from within a grpc_* function; not
 * after grpc_conn_close). error with CLOSED: 0 after a GOAWAY whose calls all ended, else a
 * negative libuv error: UV_ECONNREFUSED, UV_ETIMEDOUT (connect or keepalive timeout), UV_EOF
 * (the server closed the socket), UV_EPROTO (an HTTP/2 or TLS error, ALPN not h2), ... When
 * CLOSED is reported the connection's calls have all ended (UNAVAILABLE); the caller still
 * releases c with grpc_conn_close, from this callback or later. c is borrowed. */
typedef void (*grpc_conn_state_cb)(grpc_conn_t *c, grpc_conn_state_t state, int error, void *user);

typedef struct grpc_conn_opts {
    const char *authority;  /* :authority of calls naming none; NULL: the address, "ip:port" */
    const char *user_agent; /* NULL: "remora-grpc/1" (sent as "user-agent") */
    /* NULL: plaintext HTTP/2 with prior knowledge, :scheme http. Otherwise a client config
     * whose ALPN offers "h2" (the server must choose it); :scheme https. */
    tls_config_t *tls;
    const char *sni; /* with tls: the server name to send; NULL: the config's */
    /* With tls: the server's certificate must have a SAN matching one of peer[0..n_peer)
     * (copied); n_peer 0: any certificate the trust bundle vouches for. A server that matches
     * none fails the connection (UV_EPROTO) with a message naming what it presented and what
     * was expected. */
    const identity_matcher_t *peer;
    size_t n_peer;
    uint32_t connect_timeout_ms;    /* TCP connect + TLS handshake + server SETTINGS; 0: 5000 */
    uint32_t keepalive_interval_ms; /* a PING after this long; 0: none */
    uint32_t keepalive_timeout_ms;  /* no PING ack by then closes the connection; 0: 20000 */
    size_t max_recv_message;        /* a larger message fails its call; 0: 4 MiB */
    uint32_t stream_window;         /* initial receive window per call; 0: 1 MiB */
    uint32_t conn_window;           /* receive window of the connection; 0: 4 MiB */
    grpc_conn_state_cb on_state;    /* may be NULL */
    void *user;                     /* handed to on_state */
} grpc_conn_opts_t;

/* Starts connecting to addr (borrowed; copied; IPv4 or IPv6) on loop (borrowed; must outlive the
 * connection) with o (borrowed; strings copied; o->tls gets its own reference through the TLS
 * session). Calls may start at once: they are sent once the connection is up. On success *out
 * is the caller's, released with grpc_conn_close (always, whatever state it reached). Returns 0,
 * -EINVAL (no address, bad options), -ENOMEM or a negative libuv error (nothing to close then). */
int grpc_conn_new(uv_loop_t *loop, const struct sockaddr *addr, const grpc_conn_opts_t *o,
                  grpc_conn_t **out);

/* Takes c: every call still open ends with CANCELLED (their on_close run before this returns),
 * the socket closes, and c is freed once libuv has closed its handles (run the loop). No
 * callback of c runs afterwards. Allowed from within any of c's callbacks. */
void grpc_conn_close(grpc_conn_t *c);

/* c's state (c borrowed). */
grpc_conn_state_t grpc_conn_state(const grpc_conn_t *c);

/* --- calls ------------------------------------------------------------------------------- */

typedef struct grpc_call_ops {
    /* A whole message arrived: msg[0..len) is borrowed for the callback only. The call's other
     * functions (send, close_send, cancel) and grpc_conn_close may be called from here. */
    void (*on_message)(grpc_call_t *call, const uint8_t *msg, size_t len, void *user);
    /* The call ended, exactly once per started call: code is the grpc-status (GRPC_OK ...),
     * message its grpc-message, percent-decoded (borrowed, NUL-terminated, "" when none; valid
     * for the callback only). The call is freed after this returns: never touch it again. */
    void (*on_close)(grpc_call_t *call, int code, const char *message, void *user);
} grpc_call_ops_t;

typedef struct grpc_call_opts {
    const char *path;                /* "/package.Service/Method" (copied) */
    const char *authority;           /* NULL: the connection's */
    const grpc_metadata_t *metadata; /* n_metadata pairs (copied), may be NULL */
    size_t n_metadata;
    uint64_t timeout_ms; /* 0: no deadline; else DEADLINE_EXCEEDED once it passes, and sent to
                            the server as grpc-timeout */
} grpc_call_opts_t;

/* Starts a call on c (borrowed) with o (borrowed; copied) and ops (borrowed; must outlive the
 * call, usually static) for user (borrowed, handed to ops). The request headers are
 * content-type application/grpc, te trailers, grpc-timeout with a deadline, user-agent and the
 * metadata. On success *out is a handle owned by the connection, valid until its on_close
 * returns; ops->on_close runs exactly once, never from within this function. Returns 0, -EINVAL
 * (no path, a bad metadata key), -ENOMEM, or -ENOTCONN when c is DRAINING or CLOSED (no call
 * then, no on_close). */
int grpc_call_start(grpc_conn_t *c, const grpc_call_opts_t *o, const grpc_call_ops_t *ops,
                    void *user, grpc_call_t **out);

/* Queues one message msg[0..len) (borrowed; copied) on call (borrowed). It leaves as flow control
 * and the socket allow; grpc_call_queued_bytes says how much waits. Returns 0, -ENOMEM,
 * -EMSGSIZE (over 4 GiB), -EPIPE after grpc_call_close_send, -ECANCELED once the call has ended
 * (cancelled, its on_close still to come). */
int grpc_call_send(grpc_call_t *call, const void *msg, size_t len);

/* Half-closes call's (borrowed) send side: END_STREAM follows the messages queued. Returns 0 or
 * -ECANCELED (ended); a second half-close is a no-op. */
int grpc_call_close_send(grpc_call_t *call);

/* Cancels call (borrowed): RST_STREAM CANCEL, and on_close with CANCELLED, from the loop, never
 * from within this function. A no-op on a call that has already ended. */
void grpc_call_cancel(grpc_call_t *call);

/* Bytes (messages and their 5-byte prefixes) queued on call (borrowed) and not yet handed to
 * HTTP/2: a caller that produces faster than the server takes sees this grow. */
size_t grpc_call_queued_bytes(const grpc_call_t *call);

/* The HTTP/2 stream id of call (borrowed): for log lines. */
int32_t grpc_call_stream_id(const grpc_call_t *call);

#endif
