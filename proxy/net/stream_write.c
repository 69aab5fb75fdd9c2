/* uv_try_write first; copy and queue only what the kernel did not take. */
#include "proxy/net/stream_write.h"

#include <stdlib.h>
#include <string.h>

int stream_write_copy(uv_stream_t *s, const uv_buf_t *bufs, unsigned n, void *owner, uv_write_cb cb)
{
    size_t total = 0, sent = 0;
    for (unsigned i = 0; i < n; i++)
        total += bufs[i].len;
    if (s->write_queue_size == 0) {
        int rc = uv_try_write(s, bufs, n);
        if (rc >= 0)
            sent = (size_t)rc;
        else if (rc != UV_EAGAIN)
            return rc;
    }
    if (sent == total)
        return 0;
    copy_write_t *wr = malloc(sizeof(*wr) + (total - sent));
    if (wr == NULL)
        return UV_ENOMEM;
    wr->owner = owner;
    size_t off = 0, skip = sent;
    for (unsigned i = 0; i < n; i++) {
        if (skip >= bufs[i].len) {
            skip -= bufs[i].len;
            continue;
        }
        memcpy(wr->data + off, bufs[i].base + skip, bufs[i].len - skip);
        off += bufs[i].len - skip;
        skip = 0;
    }
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)off);
    int rc = uv_write(&wr->req, s, &b, 1, cb);
    if (rc < 0)
        free(wr);
    return rc;
}
