/* The router's HTTP/1.1 upstream codec (h1_upstream.c): a request framed as HTTP/1.1 on a
 * pooled keep-alive connection (proxy/upstream/h1_pool.c), its response parsed back into the
 * events of upstream_codec.h. */
#ifndef REMORA_H1_UPSTREAM_H
#define REMORA_H1_UPSTREAM_H

#include "proxy/http/upstream_codec.h"

/* The codec's table (static, never freed). */
extern const http_up_codec_t h1_upstream_codec;

#endif
