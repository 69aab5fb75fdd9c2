/* The gRPC client's insides, shared by its two files and by nothing else: the connection
 * (grpc_client.c: socket, TLS, timers, the HTTP/2 session and its connection-level frames) and
 * the calls (grpc_call.c: streams, their send queues, headers, messages and how they end). */
#ifndef REMORA_GRPC_CLIENT_INT_H
#define REMORA_GRPC_CLIENT_INT_H

#include <nghttp2/nghttp2.h>

#include "proxy/grpc/grpc_client.h"
#include "proxy/grpc/grpc_h2out.h"
#include "proxy/grpc/grpc_sendq.h"
#include "proxy/net/tls_io.h"

#define GRPC_UNSET_STATUS (-1)

typedef enum {
    GRPC_CALL_OPEN,   /* running: in the connection's list of calls */
    GRPC_CALL_ENDING, /* ended by the caller or a timer: on_close waits for the loop */
    GRPC_CALL_ENDED,  /* on_close ran: freed at the next loop turn (we may still hold it) */
} grpc_call_state_t;

struct grpc_call {
    grpc_conn_t *conn;
    grpc_call_t *prev, *next; /* the connection's open calls; next alone in the other lists */
    grpc_call_state_t state;
    int32_t stream_id;
    const grpc_call_ops_t *ops;
    void *user;
    grpc_sendq_t sq;  /* the request messages HTTP/2 has not taken */
    bool send_closed; /* the caller half-closed */
    bool eof_sent;    /* END_STREAM handed to HTTP/2 */
    bool deferred;    /* the data provider said DEFERRED: resume it when there is more */
    bool got_response;
    bool bad_content_type;
    int http_status;
    int grpc_status; /* GRPC_UNSET_STATUS until the server's arrives */
    char *grpc_message;
    uint64_t deadline; /* loop time in ms; 0: none */
    grpc_deframer_t deframer;
    int end_code; /* for a call ENDING: what on_close will say */
    char *end_message;
};

struct grpc_conn {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_timer_t timer;    /* the connect timeout, then keepalive */
    uv_timer_t deadline; /* the calls' nearest deadline */
    uv_idle_t kick;      /* work for the next loop turn: send, deliver, free */
    uv_connect_t connect_req;
    int handles_open;
    grpc_conn_state_t state;
    bool released;  /* grpc_conn_close was called */
    bool ping_out;  /* a keepalive PING waits for its ack */
    bool connected; /* TCP connected */
    bool tls_done;  /* with TLS: handshake complete */
    bool tcp_closing;
    nghttp2_session *h2;
    tls_io_t *tls;
    bufpool_t pool; /* slabs for the TLS session's ciphertext */
    char *authority;
    char *user_agent;
    identity_matcher_t *peer; /* the server's expected identities (one block, owned) */
    size_t n_peer;
    bool https;
    uint32_t connect_timeout_ms, keepalive_interval_ms, keepalive_timeout_ms;
    size_t max_recv_message;
    grpc_conn_state_cb on_state;
    void *user;
    grpc_call_t *calls;     /* open calls */
    grpc_call_t *ending;    /* on_close to deliver at the next loop turn */
    grpc_call_t *graveyard; /* on_close delivered: free at the next loop turn */
    grpc_h2out_t out;       /* the session's output on its way to the socket */
    uint8_t *rbuf;          /* reads land here (plaintext, or decrypted from TLS) */
};

/* grpc_client.c */
/* Asks for a loop turn's work: send what HTTP/2 has, deliver endings, free ended calls. */
void grpc_conn_kick(grpc_conn_t *c);
/* Re-arms the deadline timer for the nearest deadline of c's open calls. */
void grpc_conn_arm_deadline(grpc_conn_t *c);
/* The loop's time now, in ms. */
uint64_t grpc_conn_now(const grpc_conn_t *c);

/* grpc_call.c */
/* Installs the stream-level nghttp2 callbacks (headers, data, stream close) into cbs. */
void grpc_calls_install_callbacks(nghttp2_session_callbacks *cbs);
/* A HEADERS or DATA frame of an open stream arrived (from the connection's frame callback). */
void grpc_call_frame_received(grpc_conn_t *c, const nghttp2_frame *frame);
/* Ends every open and ending call of c with code and message (on_close runs now). */
void grpc_calls_end_all(grpc_conn_t *c, int code, const char *message);
/* Ends the calls whose deadline has passed (DEADLINE_EXCEEDED). */
void grpc_calls_expire(grpc_conn_t *c);
/* Delivers on_close of the calls ended by the caller or a timer. */
void grpc_calls_deliver_ending(grpc_conn_t *c);
/* Frees calls whose on_close has run. */
void grpc_calls_free_ended(grpc_conn_t *c);

#endif
