/* The HTTP/2 downstream codec's abuse rules, as Envoy counts them: empty frames in a row,
 * PRIORITY and WINDOW_UPDATE frames against the streams opened and the DATA frames sent, the
 * encoded size of a header block, and streams the client resets before their response (rapid
 * reset, CVE-2023-44487). A broken rule is the connection's verdict; the codec answers it with
 * GOAWAY and closes. */
#include "proxy/http/h2/h2_guard.h"

void h2_guard_init(h2_guard_t *g, size_t max_block)
{
    *g = (h2_guard_t){.max_block = max_block};
}

void h2_guard_options(nghttp2_option *opt, size_t max_acks)
{
    nghttp2_option_set_max_outbound_ack(opt, max_acks);
    nghttp2_option_set_max_continuations(opt, H2G_NGHTTP2_CONTINUATIONS);
}

static h2_guard_verdict_t judge(h2_guard_t *g, h2_guard_verdict_t v)
{
    if (g->verdict == H2G_OK)
        g->verdict = v;
    return g->verdict;
}

/* One more frame without payload (and without END_STREAM) in a row. */
static h2_guard_verdict_t empty_frame(h2_guard_t *g)
{
    if (++g->empty_run > H2G_MAX_EMPTY_FRAMES)
        return judge(g, H2G_EMPTY_FRAMES);
    return g->verdict;
}

h2_guard_verdict_t h2_guard_frame_begin(h2_guard_t *g, const nghttp2_frame_hd *hd)
{
    if (g->verdict)
        return g->verdict;
    bool end_stream = hd->flags & NGHTTP2_FLAG_END_STREAM;
    switch (hd->type) {
    case NGHTTP2_HEADERS:
        g->block = hd->length;
        g->continuations = 0;
        if (hd->stream_id > g->last_stream && (hd->stream_id & 1)) {
            g->last_stream = hd->stream_id;
            g->streams++;
        }
        /* fall through */
    case NGHTTP2_CONTINUATION:
        if (hd->type == NGHTTP2_CONTINUATION) {
            g->block += hd->length;
            g->continuations++;
        }
        if (g->block > g->max_block || g->continuations > H2G_MAX_CONTINUATIONS)
            return judge(g, H2G_HEADER_OVERFLOW);
        if (hd->length == 0 && !end_stream)
            return empty_frame(g);
        g->empty_run = 0;
        break;
    case NGHTTP2_DATA:
        if (hd->length == 0 && !end_stream)
            return empty_frame(g); /* padded frames are judged whole (h2_guard_data_recv) */
        break;
    case NGHTTP2_PRIORITY:
        if (++g->priority > H2G_PRIORITY_PER_STREAM * (1 + g->streams))
            return judge(g, H2G_PRIORITY_FLOOD);
        break;
    case NGHTTP2_WINDOW_UPDATE:
        if (++g->window_updates > 5 + 2 * (g->streams + H2G_WINDOW_UPDATE_PER_DATA * g->data_sent))
            return judge(g, H2G_WINDOW_FLOOD);
        break;
    default:
        break;
    }
    return g->verdict;
}

h2_guard_verdict_t h2_guard_data_recv(h2_guard_t *g, size_t length, size_t payload, bool end_stream)
{
    if (g->verdict)
        return g->verdict;
    if (payload || end_stream)
        g->empty_run = 0;
    else if (length) /* only padding: counted now (an empty one was at its header) */
        return empty_frame(g);
    return g->verdict;
}

void h2_guard_frame_sent(h2_guard_t *g, uint8_t type)
{
    if (type == NGHTTP2_DATA)
        g->data_sent++;
}

h2_guard_verdict_t h2_guard_stream_closed(h2_guard_t *g, bool premature)
{
    g->closed++;
    if (premature)
        g->premature++;
    /* Envoy's rule: once enough streams closed, half or more of them reset early is a flood. */
    if (g->closed >= H2G_RESET_MIN_STREAMS && 2 * g->premature >= g->closed)
        return judge(g, H2G_PREMATURE_RESETS);
    return g->verdict;
}

h2_guard_verdict_t h2_guard_session_error(h2_guard_t *g, int rv)
{
    if (rv == NGHTTP2_ERR_FLOODED)
        return judge(g, H2G_CONTROL_FLOOD);
    if (rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS)
        return judge(g, H2G_HEADER_OVERFLOW);
    return g->verdict;
}

uint32_t h2_guard_goaway_code(h2_guard_verdict_t v)
{
    return v == H2G_HEADER_OVERFLOW ? NGHTTP2_PROTOCOL_ERROR : NGHTTP2_ENHANCE_YOUR_CALM;
}
