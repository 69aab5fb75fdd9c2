/* envoy.filters.http.buffer: holds a request until its whole body has arrived, so the upstream
 * gets it at once with a Content-Length, and answers 413 when the body is larger than
 * max_request_bytes. The connection manager does the buffering (http_stream_buffer_body). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "envoy/extensions/filters/http/buffer/v3/buffer.pb-c.h"
#include "proxy/http/http_filter.h"
#include "xds/config/config.h"

typedef struct buffer_config {
    size_t max_request_bytes;
} buffer_config_t;

static int buffer_config_parse(const void *any, const struct snapshot *snap, stats_store_t *stats,
                               void **out, char *err, size_t errlen)
{
    (void)snap;
    (void)stats;
    ProtobufCMessage *msg = NULL;
    int rc = config_any_unpack(
        any, &envoy__extensions__filters__http__buffer__v3__buffer__descriptor, &msg, err, errlen);
    if (rc < 0)
        return rc;
    const Envoy__Extensions__Filters__Http__Buffer__V3__Buffer *b = (const void *)msg;
    if (b->max_request_bytes == NULL || b->max_request_bytes->value == 0) {
        snprintf(err, errlen, "envoy.filters.http.buffer: max_request_bytes must be set above 0");
        protobuf_c_message_free_unpacked(msg, NULL);
        return -EINVAL;
    }
    buffer_config_t *cfg = malloc(sizeof(*cfg));
    if (cfg)
        cfg->max_request_bytes = b->max_request_bytes->value;
    protobuf_c_message_free_unpacked(msg, NULL);
    if (cfg == NULL)
        return -ENOMEM;
    *out = cfg;
    return 0;
}

static void buffer_config_free(void *config)
{
    free(config);
}

static int buffer_on_request_headers(http_stream_t *s, const void *config, void *state, bool end)
{
    (void)state;
    if (end)
        return FILTER_CONTINUE; /* no body */
    const buffer_config_t *cfg = config;
    int rc = http_stream_buffer_body(s, cfg->max_request_bytes);
    return rc < 0 ? FILTER_ERROR : rc == 0 ? FILTER_STOP : FILTER_CONTINUE;
}

const http_filter_ops_t buffer_filter_ops = {
    .name = "envoy.filters.http.buffer",
    .type_url = "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
    .config_parse = buffer_config_parse,
    .config_free = buffer_config_free,
    .on_request_headers = buffer_on_request_headers,
};
