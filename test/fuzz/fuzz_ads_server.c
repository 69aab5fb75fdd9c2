/* libFuzzer harness for the ADS server's state machine (xds/server): requests of either mode,
 * mixed with view changes, reads, a second stream on the same view and streams moved between
 * views. After each step every response owed is built and decoded again, and every type's
 * status read, so hostile requests meet every path that keeps or hands out what they brought.
 *
 * Input: one byte of flags (bit 0 delta mode), then steps of [op][length, 2 bytes little
 * endian][payload]: op % 4 == 0 feeds the payload as a request to stream op / 4 % 2; 1 replaces
 * the resources of type op / 4 % 5 of view op >> 7 with one per comma-separated name in the
 * payload (its bytes the name and the step's number, so a repeat changes them); 2 moves stream 1
 * to the other view, for every type, or (op & 4) for type (op >> 3) % 5 only, so that its types
 * come from different views; 3 frees stream 1 and opens a new one. Bytes that do not form a step
 * are fed whole as one request. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xds/server/ads_server.h"

#include "envoy/service/discovery/v3/discovery.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_STEPS 64
#define MAX_NAMES 16

static void on_owed(void *ctx, ads_srv_stream_t *s)
{
    (void)s;
    (*(int *)ctx)++;
}

/* Builds every response owed, decodes each again and reads the status. */
static void drain(ads_srv_stream_t *s)
{
    uint8_t *buf;
    size_t len;
    const ProtobufCMessageDescriptor *d =
        ads_srv_stream_mode(s) == ADS_SRV_DELTA
            ? &envoy__service__discovery__v3__delta_discovery_response__descriptor
            : &envoy__service__discovery__v3__discovery_response__descriptor;
    for (int i = 0; i < 16 && ads_srv_stream_next_response(s, &buf, &len) > 0; i++) {
        ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, buf);
        if (m == NULL)
            abort(); /* the server built something that does not decode */
        protobuf_c_message_free_unpacked(m, NULL);
        free(buf);
        const ads_srv_response_info_t *last = ads_srv_stream_last_response(s);
        for (size_t k = 0; last && k < last->n_resources; k++)
            (void)ads_srv_resource_name(last->resources[k]);
    }
    for (int t = 0; t < ADS_SRV_NTYPES; t++) {
        ads_srv_type_status_t st;
        ads_srv_stream_type_status(s, t, &st);
    }
}

static void replace(ads_srv_view_t *v, unsigned type, const uint8_t *p, size_t len, int step)
{
    char *copy = malloc(len + 1), *names[MAX_NAMES];
    ads_srv_resource_t *res[MAX_NAMES];
    size_t n = 0, k = 0;
    memcpy(copy, p, len);
    copy[len] = '\0';
    for (char *s = copy, *tok; n < MAX_NAMES && (tok = strsep(&s, ",")) != NULL;)
        names[n++] = tok;
    for (size_t i = 0; i < n; i++) {
        uint8_t bytes[8] = {0x38, (uint8_t)step, 0x40, (uint8_t)i};
        ads_srv_resource_t *r = ads_srv_resource_new(type % ADS_SRV_NTYPES, names[i], bytes, 4);
        if (r)
            res[k++] = r;
    }
    ads_srv_view_replace(v, res, k, false);
    for (size_t i = 0; i < k; i++)
        ads_srv_resource_unref(res[i]);
    free(copy);
}

static ads_srv_stream_t *open_stream(ads_srv_mode_t mode, ads_srv_view_t *v, int *owed,
                                     ads_srv_counters_t *totals)
{
    ads_srv_stream_opts_t o = {.mode = mode, .owed = on_owed, .ctx = owed, .totals = totals};
    ads_srv_stream_t *s = ads_srv_stream_new(&o);
    if (s)
        ads_srv_stream_set_view(s, v);
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    ads_srv_mode_t mode = (data[0] & 1) ? ADS_SRV_DELTA : ADS_SRV_SOTW;
    ads_srv_view_t *views[2] = {ads_srv_view_new(), ads_srv_view_new()};
    int owed = 0, cur = 0;
    ads_srv_counters_t totals = {0};
    ads_srv_stream_t *streams[2] = {open_stream(mode, views[0], &owed, &totals),
                                    open_stream(mode, views[0], &owed, &totals)};
    if (views[0] == NULL || views[1] == NULL || streams[0] == NULL || streams[1] == NULL)
        goto done;
    const uint8_t *p = data + 1, *end = data + size;
    int steps = 0;
    char err[256];
    while (steps < MAX_STEPS && end - p >= 3) {
        uint8_t op = p[0];
        size_t len = (size_t)p[1] | (size_t)p[2] << 8;
        if ((size_t)(end - p - 3) < len)
            break;
        const uint8_t *payload = p + 3;
        if (op % 4 == 0) {
            ads_srv_stream_on_request(streams[op / 4 % 2], payload, len, err, sizeof(err));
        } else if (op % 4 == 1) {
            replace(views[op >> 7], op / 4, payload, len, steps);
        } else if (op % 4 == 2) {
            /* The second stream moves to the other view: every type, or one type only. */
            cur = !cur;
            if (op & 4)
                ads_srv_stream_set_type_view(
                    streams[1], (ads_srv_type_t)((op >> 3) % ADS_SRV_NTYPES), views[cur]);
            else
                ads_srv_stream_set_view(streams[1], views[cur]);
        } else {
            ads_srv_stream_free(streams[1]);
            streams[1] = open_stream(mode, views[cur], &owed, &totals);
            if (streams[1] == NULL)
                goto done;
        }
        drain(streams[0]);
        drain(streams[1]);
        p = payload + len;
        steps++;
    }
    if (steps == 0)
        ads_srv_stream_on_request(streams[0], data + 1, size - 1, err, sizeof(err));
    drain(streams[0]);
done:
    ads_srv_stream_free(streams[0]);
    ads_srv_stream_free(streams[1]);
    ads_srv_view_unref(views[0]);
    ads_srv_view_unref(views[1]);
    return 0;
}
