/* HTTP filters plug in by table, like network filters: config → parsed once per snapshot →
 * per-stream state from the stream's arena. Hooks return >0 to continue to the next filter,
 * 0 to stop iteration (the filter resumes it later or has answered), <0 on error. The router
 * is the terminal filter of every chain. */
#ifndef REMORA_HTTP_FILTER_H
#define REMORA_HTTP_FILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "proxy/http/http.h"
#include "proxy/core/stats.h"

struct snapshot;
typedef struct http_stream http_stream_t;

enum { FILTER_ERROR = -1, FILTER_STOP = 0, FILTER_CONTINUE = 1 };

typedef struct http_filter_ops {
    const char *name;     /* "envoy.filters.http.router" */
    const char *type_url; /* "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" */
    bool terminal;        /* must be last in the chain */
    int (*config_parse)(const void *any, const struct snapshot *snap, stats_store_t *stats,
                        void **out, char *err, size_t errlen);
    void (*config_free)(void *config);
    size_t state_size; /* per-stream state, zeroed, from the stream arena */
    int (*on_request_headers)(http_stream_t *s, const void *config, void *state, bool end_stream);
    int (*on_request_body)(http_stream_t *s, const void *config, void *state, const char *data,
                           size_t len, bool end_stream);
    int (*on_response_headers)(http_stream_t *s, const void *config, void *state, bool end_stream);
    void (*done)(http_stream_t *s, const void *config, void *state);
} http_filter_ops_t;

const http_filter_ops_t *filter_http_lookup(const char *name, const char *type_url);

/* What filters may do to a stream (implemented by the connection manager). Header names and
 * values passed in are copied into the stream's arena. */
http_headers_t *http_stream_request_headers(http_stream_t *s);
http_headers_t *http_stream_response_headers(http_stream_t *s);
/* Appends a header. Returns 0 or -ENOMEM. */
int http_stream_header_add(http_stream_t *s, http_headers_t *h, const char *name, size_t name_len,
                           const char *value, size_t value_len);
/* Replaces every header named `lower` with one value (adds it when absent). */
int http_stream_header_set(http_stream_t *s, http_headers_t *h, const char *lower,
                           const char *value, size_t value_len);
/* Removes every header named `lower` (a lowercase name). */
void http_headers_remove(http_headers_t *h, const char *lower);
/* Holds the request until its whole body has arrived (at most max_bytes; more is answered with
 * 413), then passes it on with a Content-Length: the filters after the caller run then, and the
 * body leaves with the request head. Call from on_request_headers. Returns 1 when the body is
 * already complete (continue now), 0 when buffering started (return FILTER_STOP), or -ENOMEM. */
int http_stream_buffer_body(http_stream_t *s, size_t max_bytes);
/* Answers the request locally (status, body) and ends the stream; `flag` is the access-log
 * response flag ("NR", "UH"...) or NULL. */
void http_stream_local_reply(http_stream_t *s, int status, const char *body, const char *flag);

#endif
