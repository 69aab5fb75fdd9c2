/* Writing to a libuv stream without holding the caller's buffers: what the kernel takes at once
 * is written in place (uv_try_write), only the rest is copied into a queued write request. */
#ifndef REMORA_STREAM_WRITE_H
#define REMORA_STREAM_WRITE_H

#include <uv.h>

typedef struct copy_write {
    uv_write_t req;
    void *owner; /* the caller's object, for its callback */
    char data[];
} copy_write_t;

/* Writes bufs (borrowed for the call) to s (borrowed; must outlive the write), for owner
 * (borrowed). cb runs for a queued remainder with a copy_write_t request, which
 * it must free(). Returns 0 or a negative libuv error (nothing queued then). */
int stream_write_copy(uv_stream_t *s, const uv_buf_t *bufs, unsigned n, void *owner,
                      uv_write_cb cb);

#endif
