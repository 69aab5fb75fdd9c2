/* A gRPC server on the caller's libuv loop: one listening socket, plaintext HTTP/2 with prior
 * knowledge (h2c) or TLS with ALPN "h2" (client certificates optional or required), any number
 * of connections and calls, routed by :path to registered methods. Messages are opaque bytes.
 * Built for remora-cp's ADS server and CA: bidirectional streams that live for hours, a send
 * side whose backlog the caller sees and throttles on (on_writable), the peer's SPIFFE ID per
 * call, keepalive and PING-flood limits, and a graceful stop. One thread: every function is
 * called on the loop's. */
#ifndef REMORA_GRPC_SERVER_H
#define REMORA_GRPC_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "certs/tls.h"
#include "proxy/grpc/grpc_frame.h"

typedef struct grpc_server grpc_server_t;
typedef struct grpc_scall grpc_scall_t;

typedef struct grpc_server_opts {
    /* NULL: plaintext HTTP/2 with prior knowledge. Otherwise a server config (borrowed; the
     * server takes its own reference) whose ALPN offers "h2": a client that does not choose it
     * is closed. With a trust bundle the client's certificate is verified (and required with
     * require_client_cert); its SPIFFE ID is each call's grpc_scall_peer_id. */
    tls_config_t *tls;
    uint32_t max_concurrent_streams; /* calls at once per connection; 0: 100 */
    size_t max_recv_message;         /* a larger request message: RESOURCE_EXHAUSTED; 0: 4 MiB */
    uint32_t stream_window;          /* receive window per call; 0: 1 MiB */
    uint32_t conn_window;            /* receive window per connection; 0: 4 MiB */
    size_t send_low_water; /* on_writable fires once pending bytes drop below this; 0: 64 KiB */
    uint32_t keepalive_interval_ms; /* a PING after this long without a frame read; 0: none */
    uint32_t keepalive_timeout_ms;  /* no ack by then closes the connection; 0: 20000 */
    uint32_t idle_timeout_ms;       /* a connection without calls this long gets GOAWAY; 0: none */
    uint32_t handshake_timeout_ms;  /* TLS handshake and the client's preface; 0: 10000 */
    /* A client PING sooner than this after the previous one, while we sent no DATA or HEADERS,
     * is a strike; a third strike ends the connection with GOAWAY ENHANCE_YOUR_CALM ("too many
     * pings", as gRPC does). 0: 1000 ms. */
    uint32_t ping_min_interval_ms;
} grpc_server_opts_t;

/* Makes a server on loop (borrowed; must outlive it) with o (borrowed; o->tls gets its own
 * reference). Nothing listens yet: register methods, then grpc_server_listen. On success *out
 * is the caller's, released with grpc_server_close. Returns 0, -EINVAL (a TLS config that is not
 * a server's) or -ENOMEM. */
int grpc_server_new(uv_loop_t *loop, const grpc_server_opts_t *o, grpc_server_t **out);

/* --- methods ------------------------------------------------------------------------------- */

typedef struct grpc_method_ops {
    /* A call to this method arrived and its request headers are valid. user is the method's
     * (as registered); grpc_scall_set_user gives the call its own for the callbacks below.
     * Everything a call can do may be done from here (sending, finishing). */
    void (*on_start)(grpc_scall_t *call, void *user);
    /* A whole request message: msg[0..len) is borrowed for the callback only. */
    void (*on_message)(grpc_scall_t *call, const uint8_t *msg, size_t len, void *user);
    /* The client half-closed (no more messages). May be NULL. */
    void (*on_half_close)(grpc_scall_t *call, void *user);
    /* The bytes waiting to go out dropped below the low-water mark after they had reached it:
     * produce the next message now. Runs once per crossing, from the loop. May be NULL. */
    void (*on_writable)(grpc_scall_t *call, void *user);
    /* The call is over, exactly once per on_start, never from within a grpc_* function: code
     * is what the client was told (the status of grpc_scall_finish once its trailers are out),
     * or CANCELLED (the client reset the stream or went away before our status went out),
     * DEADLINE_EXCEEDED (its grpc-timeout passed; the client was told so), UNAVAILABLE (the
     * connection broke or the server stopped), RESOURCE_EXHAUSTED or INTERNAL (the client sent
     * a message over the limit or a malformed one; the client was told so). message is
     * borrowed for the callback only. The call is freed after this returns. */
    void (*on_close)(grpc_scall_t *call, int code, const char *message, void *user);
} grpc_method_ops_t;

/* Routes calls whose :path is path ("/package.Service/Method"; copied) to ops (borrowed; must
 * outlive s, usually static) with user (borrowed). Returns 0, -EINVAL (no leading '/', no
 * on_start/on_close), -EEXIST or -ENOMEM. */
int grpc_server_add_method(grpc_server_t *s, const char *path, const grpc_method_ops_t *ops,
                           void *user);

/* Binds addr (borrowed; port 0: any free one) and listens. Returns 0, -EINVAL (listening
 * already) or a negative libuv error (UV_EADDRINUSE ...). */
int grpc_server_listen(grpc_server_t *s, const struct sockaddr *addr);

/* The address s (borrowed) listens on, into *out (the caller's). Returns 0 or a negative libuv
 * error (not listening: UV_EBADF). */
int grpc_server_address(const grpc_server_t *s, struct sockaddr_storage *out);

/* Open connections of s (borrowed). */
size_t grpc_server_connections(const grpc_server_t *s);

typedef void (*grpc_server_drained_cb)(grpc_server_t *s, void *user);

/* Stops s (borrowed) gracefully: the listener closes, every connection gets GOAWAY (calls it has
 * taken run on, new ones are refused), connections close once their calls have ended. After
 * grace_ms (0: at once) the calls still running are finished with UNAVAILABLE and their
 * connections closed. on_drained (may be NULL) runs, from the loop, once no connection is left;
 * the caller still releases s with grpc_server_close. A second call is a no-op. */
void grpc_server_drain(grpc_server_t *s, uint64_t grace_ms, grpc_server_drained_cb on_drained,
                       void *user);

/* Takes s: every call still running ends now (on_close with UNAVAILABLE, before this returns),
 * every socket closes, and s is freed once libuv has closed its handles (run the loop). No
 * callback of s runs afterwards. NULL is a no-op. */
void grpc_server_close(grpc_server_t *s);

/* --- calls --------------------------------------------------------------------------------- */

/* Gives call (borrowed) the user pointer (borrowed) its callbacks get from now on. */
void grpc_scall_set_user(grpc_scall_t *call, void *user);

/* The request's :path (borrowed from call, valid until its on_close returns). */
const char *grpc_scall_path(const grpc_scall_t *call);

/* The value of the request header key (lower case; borrowed) or NULL (borrowed from call, valid
 * until its on_close returns). A key sent several times gives the first. */
const char *grpc_scall_metadata(const grpc_scall_t *call, const char *key);

/* The client certificate's SPIFFE ID (borrowed from call, valid until its on_close returns), or
 * NULL: plaintext, no certificate, or not exactly one spiffe:// URI SAN. */
const char *grpc_scall_peer_id(const grpc_scall_t *call);

/* The request's deadline as milliseconds left (0: passed), or UINT64_MAX without grpc-timeout. */
uint64_t grpc_scall_time_left(const grpc_scall_t *call);

/* Sets response metadata md[0..n) (borrowed; copied) on call (borrowed): sent with the response
 * headers (before the first message, or with a trailers-only status). Returns 0, -EINVAL (a bad
 * key), -EALREADY (the headers are out), -ENOMEM or -ECANCELED (the call has ended). */
int grpc_scall_set_metadata(grpc_scall_t *call, const grpc_metadata_t *md, size_t n);

/* Queues one message msg[0..len) (borrowed; copied) on call (borrowed). Returns 0, -ENOMEM,
 * -EMSGSIZE (over 4 GiB), -EPIPE after grpc_scall_finish, -ECANCELED once the call has ended
 * (its on_close runs or has run from the loop). */
int grpc_scall_send(grpc_scall_t *call, const void *msg, size_t len);

/* Like grpc_scall_send without the copy: msg[0..len) stays the caller's and must stay unchanged
 * until release(arg) runs (once, whatever happens, possibly before this returns on an error),
 * so that one encoded message can be queued on many calls. release may be NULL. */
int grpc_scall_send_shared(grpc_scall_t *call, const void *msg, size_t len,
                           void (*release)(void *arg), void *arg);

/* Ends call (borrowed) with code and message (borrowed; copied; NULL: none) and trailing
 * metadata md[0..n) (borrowed; copied): the queued messages go first, then the trailers (a
 * trailers-only response when no message was sent). on_close follows with code once the
 * trailers are out. Returns 0, -EINVAL (a bad key), -EALREADY (finished already), -ENOMEM or
 * -ECANCELED (the call has ended). */
int grpc_scall_finish(grpc_scall_t *call, int code, const char *message, const grpc_metadata_t *md,
                      size_t n);

/* Bytes (messages and their 5-byte prefixes) queued on call (borrowed) and not yet handed to
 * HTTP/2: with a client that does not read, this stops going down. */
size_t grpc_scall_pending_bytes(const grpc_scall_t *call);

/* The HTTP/2 stream id of call (borrowed): for log lines. */
int32_t grpc_scall_stream_id(const grpc_scall_t *call);

#endif
