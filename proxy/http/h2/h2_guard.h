/* The HTTP/2 downstream codec's abuse rules (h2_guard.c): what a client may send on one
 * connection before it is cut off with GOAWAY, counted per connection from the frames nghttp2
 * reports. Free of libuv and of the
 * connection manager so that the fuzz target (test/fuzz/fuzz_h2_server.c) runs it as it is. */
#ifndef REMORA_H2_GUARD_H
#define REMORA_H2_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>

/* Envoy's defaults (http2_protocol_options and the premature reset runtime keys). */
#define H2G_MAX_EMPTY_FRAMES       1    /* max_consecutive_inbound_frames_with_empty_payload */
#define H2G_PRIORITY_PER_STREAM    100  /* max_inbound_priority_frames_per_stream */
#define H2G_WINDOW_UPDATE_PER_DATA 10   /* max_inbound_window_update_frames_per_data_frame_sent */
#define H2G_RESET_MIN_STREAMS      500  /* overload.premature_reset_total_stream_count */
#define H2G_RESET_PREMATURE_MS     1000 /* overload.premature_reset_min_stream_lifetime_seconds */
#define H2G_MAX_CONTINUATIONS      8    /* CONTINUATION frames after one HEADERS */
/* nghttp2's own CONTINUATION limit, only a backstop: the 1.52 build we link counts a frame once
 * per read that ends inside its 9-byte header, so its count can run ahead of the frames. */
#define H2G_NGHTTP2_CONTINUATIONS 1024

/* Why a connection is cut off; H2G_OK while it is not. */
typedef enum {
    H2G_OK = 0,
    H2G_EMPTY_FRAMES,     /* http2.inbound_empty_frames_flood */
    H2G_PRIORITY_FLOOD,   /* http2.inbound_priority_frames_flood */
    H2G_WINDOW_FLOOD,     /* http2.inbound_window_update_frames_flood */
    H2G_HEADER_OVERFLOW,  /* http2.header_overflow */
    H2G_PREMATURE_RESETS, /* downstream_rq_too_many_premature_resets */
    H2G_CONTROL_FLOOD,    /* http2.outbound_control_flood (nghttp2's NGHTTP2_ERR_FLOODED) */
} h2_guard_verdict_t;

typedef struct h2_guard {
    h2_guard_verdict_t verdict; /* the first rule broken; sticks */
    size_t max_block;           /* encoded bytes of one header block */
    size_t block;               /* encoded bytes of the header block being read */
    uint32_t continuations;     /* CONTINUATION frames of the header block being read */
    uint32_t empty_run;         /* frames in a row without payload or END_STREAM */
    int32_t last_stream;        /* highest stream the client opened */
    uint64_t streams;           /* streams the client opened */
    uint64_t priority;          /* PRIORITY frames received */
    uint64_t window_updates;    /* WINDOW_UPDATE frames received */
    uint64_t data_sent;         /* DATA frames sent */
    uint64_t closed, premature; /* streams closed; of them reset early by the client */
} h2_guard_t;

/* Initialises g (the caller's memory) for a connection whose header blocks may take up to
 * max_block encoded bytes. Allocates nothing. */
void h2_guard_init(h2_guard_t *g, size_t max_block);

/* Sets opt's (borrowed) limits that nghttp2 enforces itself for the codec: queued SETTINGS/PING
 * acks (max_acks), and its CONTINUATION backstop. */
void h2_guard_options(nghttp2_option *opt, size_t max_acks);

/* In the calls below g is borrowed (the connection's), and each returns g->verdict after it.
 *
 * A frame's header arrived (hd borrowed; nghttp2's on_begin_frame). */
h2_guard_verdict_t h2_guard_frame_begin(h2_guard_t *g, const nghttp2_frame_hd *hd);

/* A DATA frame was received whole (nghttp2's on_frame_recv): length as its header said, payload
 * without the padding. */
h2_guard_verdict_t h2_guard_data_recv(h2_guard_t *g, size_t length, size_t payload,
                                      bool end_stream);

/* We sent a frame of this type (nghttp2's on_frame_send); returns nothing. */
void h2_guard_frame_sent(h2_guard_t *g, uint8_t type);

/* A client stream closed; premature: the client reset it before its response ended and within
 * H2G_RESET_PREMATURE_MS of its HEADERS. */
h2_guard_verdict_t h2_guard_stream_closed(h2_guard_t *g, bool premature);

/* Records that nghttp2 gave up on the session for a flood or a header block (its error code
 * rv from mem_recv); other codes change nothing. */
h2_guard_verdict_t h2_guard_session_error(h2_guard_t *g, int rv);

/* The GOAWAY error code a verdict is answered with. */
uint32_t h2_guard_goaway_code(h2_guard_verdict_t v);

#endif
