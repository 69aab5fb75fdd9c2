/* HTTP filters plug in by table, like network filters: config → parsed once per snapshot →
 * per-stream state from the stream's arena. The connection manager calls every filter only
 * through these hooks, and filters act on their stream only through the stream API
 * (proxy/http/http_stream.h). Hooks that return int return >0 to continue to the next filter,
 * 0 to stop iteration (the filter resumes it later or has answered), <0 on error. The router is
 * the terminal filter of every chain: the hooks after on_response_headers are what a terminal
 * filter needs, as Envoy's StreamDecoderFilter has them. */
#ifndef REMORA_HTTP_FILTER_H
#define REMORA_HTTP_FILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "base/stats.h"
#include "proxy/http/http_stream.h"

struct snapshot;

enum { FILTER_ERROR = -1, FILTER_STOP = 0, FILTER_CONTINUE = 1 };

/* Every hook borrows s, config (owned by the snapshot) and state (the filter's per-stream state,
 * owned by the stream: zeroed before on_request_headers, gone after done). Hooks run in chain
 * order for requests and in reverse order for responses, and only for the filters whose
 * on_request_headers ran. */
typedef struct http_filter_ops {
    const char *name;     /* "envoy.filters.http.router" */
    const char *type_url; /* "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" */
    bool terminal;        /* must be last in the chain */
    /* any: the typed_config Any (borrowed), NULL when absent. *out: a new config, owned by the
     * caller, freed with config_free. */
    int (*config_parse)(const void *any, const struct snapshot *snap, stats_store_t *stats,
                        void **out, char *err, size_t errlen);
    void (*config_free)(void *config);
    size_t state_size; /* per-stream state, zeroed, from the stream arena */
    int (*on_request_headers)(http_stream_t *s, const void *config, void *state, bool end_stream);
    /* Request body bytes once the terminal filter resumed the body
     * (http_stream_resume_request_body); data is borrowed for the call. end_stream: the body is
     * complete; trailers are a chunked body's trailer fields then (borrowed for the call), else
     * NULL. */
    int (*on_request_body)(http_stream_t *s, const void *config, void *state, const char *data,
                           size_t len, bool end_stream, const http_headers_t *trailers);
    int (*on_response_headers)(http_stream_t *s, const void *config, void *state, bool end_stream);
    /* The client's write queue fell below its low-water mark after being congested
     * (http_stream_downstream_congested): reading the upstream may resume. */
    void (*on_downstream_drained)(http_stream_t *s, const void *config, void *state);
    /* Bytes from the client once the stream is a tunnel (http_stream_start_tunnel), borrowed for
     * the call. <0: they cannot go on, and the tunnel ends (UC). */
    int (*on_tunnel_data)(http_stream_t *s, const void *config, void *state, const char *data,
                          size_t len);
    /* The stream is abandoned before it completed (the client went away, its deadline passed,
     * the drain deadline): give up what is in flight for it. done follows. */
    void (*on_reset)(http_stream_t *s, const void *config, void *state, http_reset_reason_t reason);
    /* The stream ended, however it ended (after its report): release what it holds. */
    void (*done)(http_stream_t *s, const void *config, void *state);
} http_filter_ops_t;

#endif
