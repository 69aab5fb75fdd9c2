/* The HTTP side of an admin endpoint: a small HTTP/1.1 server on a loop that reads one request
 * per connection, hands its method, path and query to a handler, writes the handler's response
 * and closes. The sidecar's admin endpoint and remora-cp's both stand on it. Main loop only. */
#ifndef REMORA_ADMIN_HTTP_H
#define REMORA_ADMIN_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <uv.h>

#include <jansson.h>

typedef struct admin_http admin_http_t;

typedef struct admin_request {
    const char *method; /* GET, POST, HEAD, ... */
    char path[1024];
    char query[1024]; /* after '?', undecoded; "" when none */
} admin_request_t;

typedef struct admin_response {
    int status;               /* 0 until a handler answers */
    const char *content_type; /* static */
    char *body;               /* malloc'd; taken by the server */
    /* Called once the response is queued for writing (the process may then end); NULL: none. */
    void (*after)(void *ctx);
    void *after_ctx;
} admin_response_t;

/* Answers rq (borrowed) into r; ctx is the one given to admin_http_start. */
typedef void (*admin_http_handler_fn)(void *ctx, const admin_request_t *rq, admin_response_t *r);

/* Serves HTTP on addr (borrowed for the call) on loop (borrowed; must outlive the server), each
 * request answered by handler(ctx, ...). what names the endpoint in messages ("admin"). On
 * success *out is owned by the caller, who ends it with admin_http_stop. Returns 0 or a
 * negative libuv error, with a message naming the address in err. */
int admin_http_start(uv_loop_t *loop, const struct sockaddr *addr, const char *what,
                     admin_http_handler_fn handler, void *ctx, admin_http_t **out, char *err,
                     size_t errlen);

/* The address the server accepts on, with the port the kernel gave for port 0 (into out). */
int admin_http_address(const admin_http_t *s, struct sockaddr_storage *out);

/* Closes the server; s (taken) is freed once its handle is closed. NULL is ignored. */
void admin_http_stop(admin_http_t *s);

/* The value of query parameter key in query (both borrowed) into out (decoded: %XX and '+');
 * false when absent. */
bool admin_query_param(const char *query, const char *key, char *out, size_t outlen);

/* r answers status with text (borrowed; copied) as text/plain. */
void admin_respond_text(admin_response_t *r, int status, const char *text);

/* r answers 200 with root rendered as JSON (root taken; NULL gives no body, the server then
 * answers 500). */
void admin_respond_json(admin_response_t *r, json_t *root);

#endif
