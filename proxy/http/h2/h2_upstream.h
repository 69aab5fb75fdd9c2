/* The router's HTTP/2 upstream codec (h2_upstream.c): a request sent as one stream of a shared,
 * multiplexed HTTP/2 connection (proxy/upstream/h2_pool.c), its response read back into the
 * events of upstream_codec.h, with HTTP/2 flow control carrying the client's backpressure to the
 * upstream. */
#ifndef REMORA_H2_UPSTREAM_H
#define REMORA_H2_UPSTREAM_H

#include "proxy/http/upstream_codec.h"

/* The codec's table (static, never freed). */
extern const http_up_codec_t h2_upstream_codec;

#endif
