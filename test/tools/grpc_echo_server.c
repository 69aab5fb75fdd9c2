/* An echo service on proxy/grpc's server, for test/e2e/test_grpc_server.sh to drive with
 * independent clients (@grpc/grpc-js, nghttp). Messages are test/e2e/grpc_server/echo.proto's
 * EchoMessage: one string field, encoded here by hand. Methods of echo.Echo:
 *   Unary         replies with the text; "status:N:MSG" finishes with code N and MSG instead;
 *                 "sleep" never answers (for deadlines and cancel); request metadata x-echo is
 *                 returned as response header x-echo and trailer x-echo-trailer; the client
 *                 certificate's SPIFFE ID as header x-peer-id
 *   ServerStream  "N:TEXT" sends N messages TEXT-0 ... TEXT-(N-1)
 *   Bidi          echoes each message as it comes, finishes OK on the client's half-close
 * Prints "listening on ADDR:PORT" once it listens and "closed PATH CODE MESSAGE" as each call
 * ends; SIGTERM drains (GOAWAY, 2 s grace) and exits 0 once every handle is closed.
 *   grpc_echo_server [--tls CERTDIR [--require-client-cert]] */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "certs/tls.h"
#include "proxy/grpc/grpc_server.h"

#define TEXT_MAX (64 * 1024)

static uv_loop_t *loop;
static grpc_server_t *server;
static uv_signal_t sigterm;

/* ---- EchoMessage { string text = 1; } ---------------------------------------------------- */

/* The text of an EchoMessage in msg[0..len) into out (cap bytes, NUL-terminated); -1 if it is
 * not one. */
static int text_decode(const uint8_t *msg, size_t len, char *out, size_t cap)
{
    out[0] = '\0';
    if (len == 0)
        return 0;
    if (msg[0] != 0x0a)
        return -1;
    size_t n = 0, i = 1;
    for (int shift = 0; i < len && shift < 35; shift += 7) {
        n |= (size_t)(msg[i] & 0x7f) << shift;
        if (!(msg[i++] & 0x80))
            break;
    }
    if (i + n != len || n + 1 > cap)
        return -1;
    memcpy(out, msg + i, n);
    out[n] = '\0';
    return 0;
}

static size_t text_encode(const char *text, uint8_t *out)
{
    size_t n = strlen(text), i = 0;
    out[i++] = 0x0a;
    size_t v = n;
    do {
        out[i++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    memcpy(out + i, text, n);
    return i + n;
}

static void send_text(grpc_scall_t *call, const char *text)
{
    static uint8_t buf[TEXT_MAX + 16];
    size_t n = text_encode(text, buf);
    grpc_scall_send(call, buf, n);
}

/* ---- methods ----------------------------------------------------------------------------- */

typedef struct echo_call {
    char text[TEXT_MAX];
    bool got;
} echo_call_t;

static void on_start(grpc_scall_t *call, void *user)
{
    (void)user;
    echo_call_t *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        grpc_scall_finish(call, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL, 0);
        return;
    }
    grpc_scall_set_user(call, e);
    const char *echo = grpc_scall_metadata(call, "x-echo");
    const char *peer = grpc_scall_peer_id(call);
    grpc_metadata_t md[2];
    size_t n = 0;
    if (echo)
        md[n++] = (grpc_metadata_t){"x-echo", echo};
    if (peer)
        md[n++] = (grpc_metadata_t){"x-peer-id", peer};
    grpc_scall_set_metadata(call, md, n);
}

static void on_message(grpc_scall_t *call, const uint8_t *msg, size_t len, void *user)
{
    echo_call_t *e = user;
    if (e == NULL)
        return;
    if (text_decode(msg, len, e->text, sizeof(e->text)) < 0) {
        grpc_scall_finish(call, GRPC_INVALID_ARGUMENT, "not an EchoMessage", NULL, 0);
        return;
    }
    e->got = true;
    const char *path = grpc_scall_path(call);
    if (strcmp(path, "/echo.Echo/Bidi") == 0)
        send_text(call, e->text);
}

static void unary_reply(grpc_scall_t *call, echo_call_t *e)
{
    int code;
    char msg[256];
    if (sscanf(e->text, "status:%d:%255[^\n]", &code, msg) == 2) {
        grpc_scall_finish(call, code, msg, NULL, 0);
        return;
    }
    if (strcmp(e->text, "sleep") == 0)
        return; /* never answers: the client's deadline or cancel ends it */
    send_text(call, e->text);
    const char *echo = grpc_scall_metadata(call, "x-echo");
    grpc_metadata_t tr = {"x-echo-trailer", echo ? echo : ""};
    grpc_scall_finish(call, GRPC_OK, NULL, &tr, echo ? 1 : 0);
}

static void stream_reply(grpc_scall_t *call, echo_call_t *e)
{
    int count = 0;
    char text[256], out[300];
    if (sscanf(e->text, "%d:%255[^\n]", &count, text) != 2 || count < 0 || count > 100000) {
        grpc_scall_finish(call, GRPC_INVALID_ARGUMENT, "want N:TEXT", NULL, 0);
        return;
    }
    for (int i = 0; i < count; i++) {
        snprintf(out, sizeof(out), "%s-%d", text, i);
        send_text(call, out);
    }
    grpc_scall_finish(call, GRPC_OK, NULL, NULL, 0);
}

static void on_half_close(grpc_scall_t *call, void *user)
{
    echo_call_t *e = user;
    if (e == NULL)
        return;
    const char *path = grpc_scall_path(call);
    if (strcmp(path, "/echo.Echo/Bidi") == 0)
        grpc_scall_finish(call, GRPC_OK, NULL, NULL, 0);
    else if (!e->got)
        grpc_scall_finish(call, GRPC_INVALID_ARGUMENT, "no request message", NULL, 0);
    else if (strcmp(path, "/echo.Echo/Unary") == 0)
        unary_reply(call, e);
    else
        stream_reply(call, e);
}

static void on_close(grpc_scall_t *call, int code, const char *message, void *user)
{
    printf("closed %s %s %s\n", grpc_scall_path(call), grpc_code_name(code), message);
    fflush(stdout);
    free(user);
}

static const grpc_method_ops_t echo_ops = {
    .on_start = on_start,
    .on_message = on_message,
    .on_half_close = on_half_close,
    .on_close = on_close,
};

/* ---- main -------------------------------------------------------------------------------- */

static void on_drained(grpc_server_t *s, void *user)
{
    (void)user;
    grpc_server_close(s);
    server = NULL;
    uv_close((uv_handle_t *)&sigterm, NULL); /* a later SIGTERM kills: the stop is under way */
}

static void on_sigterm(uv_signal_t *h, int sig)
{
    (void)sig;
    (void)h;
    if (server)
        grpc_server_drain(server, 2000, on_drained, NULL);
}

static tls_config_t *tls_server(const char *dir, bool require)
{
    char cert[512], key[512], trust[512], err[256];
    snprintf(cert, sizeof(cert), "%s/server.pem", dir);
    snprintf(key, sizeof(key), "%s/server.key", dir);
    snprintf(trust, sizeof(trust), "%s/root-a.pem", dir);
    static const char *const alpn[] = {"h2"};
    tls_config_opts_t to = {
        .role = TLS_ROLE_SERVER,
        .cert_chain.path = cert,
        .private_key.path = key,
        .trust_bundle.path = trust,
        .require_client_cert = require,
        .alpn = alpn,
        .alpn_count = 1,
    };
    tls_config_t *cfg = NULL;
    if (tls_config_new(&to, &cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "grpc_echo_server: TLS config: %s\n", err);
        return NULL;
    }
    return cfg;
}

int main(int argc, char **argv)
{
    const char *certs = NULL;
    bool require = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tls") == 0 && i + 1 < argc)
            certs = argv[++i];
        else if (strcmp(argv[i], "--require-client-cert") == 0)
            require = true;
        else {
            fprintf(stderr, "usage: grpc_echo_server [--tls CERTDIR [--require-client-cert]]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    loop = uv_default_loop();
    grpc_server_opts_t o = {.max_recv_message = 1024 * 1024};
    if (certs && (o.tls = tls_server(certs, require)) == NULL)
        return 1;
    int rc = grpc_server_new(loop, &o, &server);
    tls_config_unref(o.tls);
    if (rc < 0) {
        fprintf(stderr, "grpc_echo_server: %s\n", strerror(-rc));
        return 1;
    }
    static const char *const paths[] = {"/echo.Echo/Unary", "/echo.Echo/ServerStream",
                                        "/echo.Echo/Bidi"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        grpc_server_add_method(server, paths[i], &echo_ops, NULL);
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    struct sockaddr_storage bound;
    rc = grpc_server_listen(server, (const struct sockaddr *)&addr);
    if (rc == 0)
        rc = grpc_server_address(server, &bound);
    if (rc < 0) {
        fprintf(stderr, "grpc_echo_server: listen: %s\n", uv_strerror(rc));
        grpc_server_close(server);
        uv_run(loop, UV_RUN_DEFAULT);
        return 1;
    }
    printf("listening on 127.0.0.1:%u\n", ntohs(((struct sockaddr_in *)&bound)->sin_port));
    fflush(stdout);
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigterm, on_sigterm, SIGTERM);
    uv_run(loop, UV_RUN_DEFAULT);
    int left = uv_loop_close(loop);
    tls_thread_cleanup();
    return left == 0 ? 0 : 3;
}
