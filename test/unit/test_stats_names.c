/* Stats name storage: the renderings of a fixed set of stats are byte for byte those captured
 * before names were stored shared (base/stats_names.c), a name is one stat however its parts cut
 * it, and stats of many clusters share their strings and groups instead of copying them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>

#include "base/stats.h"
#include "base/stats_names.h"

/* A fixed set of stats covering every form of name: scoped with and without a tag, a tag with
 * no label name, parts with dots and with bytes Prometheus does not allow, names that start with
 * a digit, tagged stats with built and given names, and histograms of both forms. */
static stats_store_t *golden_store(void)
{
    stats_store_t *st = stats_store_new(2);
    static const char *const clusters[] = {"outbound|80||a.b", "0digit", "z\"q"};
    stats_slots_t *w0 = stats_slots(st, 0), *w1 = stats_slots(st, 1);
    for (int c = 0; c < 3; c++) {
        stat_id_t rq = (stat_id_t)stats_define(st, STAT_COUNTER, "cluster", "envoy_cluster_name",
                                               clusters[c], "upstream_rq_total");
        stat_id_t act = (stat_id_t)stats_define(st, STAT_GAUGE, "cluster", "envoy_cluster_name",
                                                clusters[c], "upstream_cx_active");
        stat_id_t ssl = (stat_id_t)stats_define(st, STAT_COUNTER, "cluster", "envoy_cluster_name",
                                                clusters[c], "ssl.handshake");
        stat_id_t h = (stat_id_t)stats_define_histogram(st, "cluster", "envoy_cluster_name",
                                                        clusters[c], "upstream_rq_time");
        stats_add(w0, rq, 10 * c + 1);
        stats_add(w1, rq, 5);
        stats_add(w0, act, c);
        stats_add(w1, ssl, 7 * c);
        for (int k = 0; k <= c; k++) {
            stats_record(w0, h, 300 + 4000u * (unsigned)k);
            stats_record(w1, h, 1200 + 70000u * (unsigned)k);
        }
    }
    stat_id_t live = (stat_id_t)stats_define(st, STAT_GAUGE, "server", NULL, NULL, "live");
    stats_add(w0, live, 1);
    stats_define(st, STAT_COUNTER, "listener", NULL, "0.0.0.0_15001", "downstream_cx_total");
    stats_define(st, STAT_COUNTER, "vhost", "envoy_virtual_host", "all", "5xx");
    stats_define(st, STAT_COUNTER, "9scope", NULL, NULL, "x-y");
    stats_tag_t t200[] = {{"reporter", "destination"}, {"response_code", "200"}};
    stats_tag_t t404[] = {{"reporter", "destination"}, {"response_code", "404"}};
    stats_tag_t tnull[] = {{"reporter", NULL}, {"source_workload", "a\"b\\c\nd"}};
    stat_id_t r200 =
        (stat_id_t)stats_define_tagged(st, STAT_COUNTER, "istio_requests_total", NULL, t200, 2);
    stats_add(w1, r200, 42);
    stats_define_tagged(st, STAT_COUNTER, "istio_requests_total", NULL, t404, 2);
    stats_define_tagged(st, STAT_COUNTER, "istio_requests_total", "istio.null", tnull, 2);
    stat_id_t d = (stat_id_t)stats_define_histogram_tagged(
        st, "istio_request_duration_milliseconds", NULL, t200, 2);
    stats_record(w0, d, 2500);
    stats_record(w1, d, 99);
    stats_tag_t odd[] = {{"1st-label", "x"}};
    stats_define_tagged(st, STAT_GAUGE, "my.family-x", "odd", odd, 1);
    stats_define_histogram_tagged(st, "quiet_ms", "quiet", NULL, 0);
    return st;
}

/* Captured from the registry as it was before shared names (commit a7d99ec), for the store
 * above. */
static const char golden_text[] =
    "9scope.x-y: 0\n"
    "cluster.0digit.ssl.handshake: 7\n"
    "cluster.0digit.upstream_cx_active: 1\n"
    "cluster.0digit.upstream_rq_total: 16\n"
    "cluster.outbound|80||a.b.ssl.handshake: 0\n"
    "cluster.outbound|80||a.b.upstream_cx_active: 0\n"
    "cluster.outbound|80||a.b.upstream_rq_total: 6\n"
    "cluster.z\"q.ssl.handshake: 14\n"
    "cluster.z\"q.upstream_cx_active: 2\n"
    "cluster.z\"q.upstream_rq_total: 26\n"
    "istio.null: 0\n"
    "listener.0.0.0.0_15001.downstream_cx_total: 0\n"
    "odd: 0\n"
    "reporter=.=destination;.;response_code=.=200;.;istio_requests_total: 42\n"
    "reporter=.=destination;.;response_code=.=404;.;istio_requests_total: 0\n"
    "server.live: 1\n"
    "vhost.all.5xx: 0\n"
    "cluster.0digit.upstream_rq_time: P0(nan,0.3) P25(nan,0.5) P50(nan,3) P75(nan,5) "
    "P90(nan,62.72) P95(nan,66.96) P99(nan,70.352) P99.5(nan,70.776) P99.9(nan,71.1152) "
    "P100(nan,71.2)\n"
    "cluster.outbound|80||a.b.upstream_rq_time: P0(nan,0.3) P25(nan,0.4) P50(nan,0.5) P75(nan,1.1) "
    "P90(nan,1.16) P95(nan,1.18) P99(nan,1.196) P99.5(nan,1.198) P99.9(nan,1.1996) P100(nan,1.2)\n"
    "cluster.z\"q.upstream_rq_time: P0(nan,0.3) P25(nan,2) P50(nan,5) P75(nan,75) P90(nan,116.48) "
    "P95(nan,128.84) P99(nan,138.728) P99.5(nan,139.964) P99.9(nan,140.953) P100(nan,141.2)\n"
    "quiet: No recorded values\n"
    "reporter=.=destination;.;response_code=.=200;.;istio_request_duration_milliseconds: "
    "P0(nan,0.099) P25(nan,0.2995) P50(nan,0.5) P75(nan,1.75) P90(nan,2.2) P95(nan,2.35) "
    "P99(nan,2.47) P99.5(nan,2.485) P99.9(nan,2.497) P100(nan,2.5)\n"
    "";

static const char golden_json[] =
    "{\"stats\":[\n"
    "{\"name\":\"9scope.x-y\",\"value\":0},\n"
    "{\"name\":\"cluster.0digit.ssl.handshake\",\"value\":7},\n"
    "{\"name\":\"cluster.0digit.upstream_cx_active\",\"value\":1},\n"
    "{\"name\":\"cluster.0digit.upstream_rq_total\",\"value\":16},\n"
    "{\"name\":\"cluster.outbound|80||a.b.ssl.handshake\",\"value\":0},\n"
    "{\"name\":\"cluster.outbound|80||a.b.upstream_cx_active\",\"value\":0},\n"
    "{\"name\":\"cluster.outbound|80||a.b.upstream_rq_total\",\"value\":6},\n"
    "{\"name\":\"cluster.z\\\"q.ssl.handshake\",\"value\":14},\n"
    "{\"name\":\"cluster.z\\\"q.upstream_cx_active\",\"value\":2},\n"
    "{\"name\":\"cluster.z\\\"q.upstream_rq_total\",\"value\":26},\n"
    "{\"name\":\"istio.null\",\"value\":0},\n"
    "{\"name\":\"listener.0.0.0.0_15001.downstream_cx_total\",\"value\":0},\n"
    "{\"name\":\"odd\",\"value\":0},\n"
    "{\"name\":\"reporter=.=destination;.;response_code=.=200;.;istio_requests_total\",\"value\":"
    "42},\n"
    "{\"name\":\"reporter=.=destination;.;response_code=.=404;.;istio_requests_total\",\"value\":0}"
    ",\n"
    "{\"name\":\"server.live\",\"value\":1},\n"
    "{\"name\":\"vhost.all.5xx\",\"value\":0},\n"
    "{\"histograms\":{\"supported_quantiles\":[0,25,50,75,90,95,99,99.5,99.9,100],\"computed_"
    "quantiles\":[\n"
    "{\"name\":\"cluster.0digit.upstream_rq_time\",\"values\":[{\"interval\":null,\"cumulative\":0."
    "3},{\"interval\":null,\"cumulative\":0.5},{\"interval\":null,\"cumulative\":3},{\"interval\":"
    "null,\"cumulative\":5},{\"interval\":null,\"cumulative\":62.72},{\"interval\":null,"
    "\"cumulative\":66.96},{\"interval\":null,\"cumulative\":70.352},{\"interval\":null,"
    "\"cumulative\":70.776},{\"interval\":null,\"cumulative\":71.1152},{\"interval\":null,"
    "\"cumulative\":71.2}]},\n"
    "{\"name\":\"cluster.outbound|80||a.b.upstream_rq_time\",\"values\":[{\"interval\":null,"
    "\"cumulative\":0.3},{\"interval\":null,\"cumulative\":0.4},{\"interval\":null,\"cumulative\":"
    "0.5},{\"interval\":null,\"cumulative\":1.1},{\"interval\":null,\"cumulative\":1.16},{"
    "\"interval\":null,\"cumulative\":1.18},{\"interval\":null,\"cumulative\":1.196},{\"interval\":"
    "null,\"cumulative\":1.198},{\"interval\":null,\"cumulative\":1.1996},{\"interval\":null,"
    "\"cumulative\":1.2}]},\n"
    "{\"name\":\"cluster.z\\\"q.upstream_rq_time\",\"values\":[{\"interval\":null,\"cumulative\":0."
    "3},{\"interval\":null,\"cumulative\":2},{\"interval\":null,\"cumulative\":5},{\"interval\":"
    "null,\"cumulative\":75},{\"interval\":null,\"cumulative\":116.48},{\"interval\":null,"
    "\"cumulative\":128.84},{\"interval\":null,\"cumulative\":138.728},{\"interval\":null,"
    "\"cumulative\":139.964},{\"interval\":null,\"cumulative\":140.953},{\"interval\":null,"
    "\"cumulative\":141.2}]},\n"
    "{\"name\":\"quiet\",\"values\":[{\"interval\":null,\"cumulative\":null},{\"interval\":null,"
    "\"cumulative\":null},{\"interval\":null,\"cumulative\":null},{\"interval\":null,"
    "\"cumulative\":null},{\"interval\":null,\"cumulative\":null},{\"interval\":null,"
    "\"cumulative\":null},{\"interval\":null,\"cumulative\":null},{\"interval\":null,"
    "\"cumulative\":null},{\"interval\":null,\"cumulative\":null},{\"interval\":null,"
    "\"cumulative\":null}]},\n"
    "{\"name\":\"reporter=.=destination;.;response_code=.=200;.;istio_request_duration_"
    "milliseconds\",\"values\":[{\"interval\":null,\"cumulative\":0.099},{\"interval\":null,"
    "\"cumulative\":0.2995},{\"interval\":null,\"cumulative\":0.5},{\"interval\":null,"
    "\"cumulative\":1.75},{\"interval\":null,\"cumulative\":2.2},{\"interval\":null,\"cumulative\":"
    "2.35},{\"interval\":null,\"cumulative\":2.47},{\"interval\":null,\"cumulative\":2.485},{"
    "\"interval\":null,\"cumulative\":2.497},{\"interval\":null,\"cumulative\":2.5}]}\n"
    "]}}\n"
    "]}\n"
    "";

static const char golden_prometheus[] =
    "# TYPE envoy__9scope_x_y counter\n"
    "envoy__9scope_x_y 0\n"
    "# TYPE envoy_cluster_ssl_handshake counter\n"
    "envoy_cluster_ssl_handshake{envoy_cluster_name=\"0digit\"} 7\n"
    "envoy_cluster_ssl_handshake{envoy_cluster_name=\"outbound|80||a.b\"} 0\n"
    "envoy_cluster_ssl_handshake{envoy_cluster_name=\"z\\\"q\"} 14\n"
    "# TYPE envoy_cluster_upstream_cx_active gauge\n"
    "envoy_cluster_upstream_cx_active{envoy_cluster_name=\"0digit\"} 1\n"
    "envoy_cluster_upstream_cx_active{envoy_cluster_name=\"outbound|80||a.b\"} 0\n"
    "envoy_cluster_upstream_cx_active{envoy_cluster_name=\"z\\\"q\"} 2\n"
    "# TYPE envoy_cluster_upstream_rq_time histogram\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"0digit\",le=\"0.5\"} 1\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"0digit\",le=\"1\"} 1\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"0digit\",le=\"5\"} 3\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"0digit\",le=\"10\"} 3\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"0digit\",le=\"25\"} 3\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"0digit\",le=\"50\"} 3\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"0digit\",le=\"100\"} 4\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"0digit\",le=\"250\"} 4\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"0digit\",le=\"500\"} 4\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"0digit\",le=\"1000\"} 4\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"0digit\",le=\"2500\"} 4\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"0digit\",le=\"5000\"} 4\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"0digit\",le=\"10000\"} 4\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"0digit\",le=\"30000\"} 4\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"0digit\",le=\"60000\"} 4\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"0digit\",le=\"300000\"} 4\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"0digit\",le=\"600000\"} 4\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"0digit\",le=\"1800000\"} 4\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"0digit\",le=\"3600000\"} 4\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"0digit\",le=\"+Inf\"} 4\n"
    "envoy_cluster_upstream_rq_time_sum{envoy_cluster_name=\"0digit\"} 77\n"
    "envoy_cluster_upstream_rq_time_count{envoy_cluster_name=\"0digit\"} 4\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"outbound|80||a.b\",le=\"0.5\"} 1\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"outbound|80||a.b\",le=\"1\"} 1\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"outbound|80||a.b\",le=\"5\"} 2\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"outbound|80||a.b\",le=\"10\"} 2\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"outbound|80||a.b\",le=\"25\"} 2\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"outbound|80||a.b\",le=\"50\"} 2\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"outbound|80||a.b\",le=\"100\"} 2\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"outbound|80||a.b\",le=\"250\"} 2\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"outbound|80||a.b\",le=\"500\"} 2\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"outbound|80||a.b\",le=\"1000\"} 2\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"outbound|80||a.b\",le=\"2500\"} 2\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"outbound|80||a.b\",le=\"5000\"} 2\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"outbound|80||a.b\",le=\"10000\"} "
    "2\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"outbound|80||a.b\",le=\"30000\"} "
    "2\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"outbound|80||a.b\",le=\"60000\"} "
    "2\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"outbound|80||a.b\",le=\"300000\"} "
    "2\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"outbound|80||a.b\",le=\"600000\"} "
    "2\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"outbound|80||a.b\",le=\"1800000\"} "
    "2\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"outbound|80||a.b\",le=\"3600000\"} "
    "2\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"outbound|80||a.b\",le=\"+Inf\"} 2\n"
    "envoy_cluster_upstream_rq_time_sum{envoy_cluster_name=\"outbound|80||a.b\"} 1.5\n"
    "envoy_cluster_upstream_rq_time_count{envoy_cluster_name=\"outbound|80||a.b\"} 2\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"z\\\"q\",le=\"0.5\"} 1\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"z\\\"q\",le=\"1\"} 1\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"z\\\"q\",le=\"5\"} 3\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"z\\\"q\",le=\"10\"} 4\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"z\\\"q\",le=\"25\"} 4\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"z\\\"q\",le=\"50\"} 4\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"z\\\"q\",le=\"100\"} 5\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"z\\\"q\",le=\"250\"} 6\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"z\\\"q\",le=\"500\"} 6\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"z\\\"q\",le=\"1000\"} 6\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"z\\\"q\",le=\"2500\"} 6\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"z\\\"q\",le=\"5000\"} 6\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"z\\\"q\",le=\"10000\"} 6\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"z\\\"q\",le=\"30000\"} 6\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"z\\\"q\",le=\"60000\"} 6\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"z\\\"q\",le=\"300000\"} 6\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"z\\\"q\",le=\"600000\"} 6\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"z\\\"q\",le=\"1800000\"} 6\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"z\\\"q\",le=\"3600000\"} 6\n"
    "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"z\\\"q\",le=\"+Inf\"} 6\n"
    "envoy_cluster_upstream_rq_time_sum{envoy_cluster_name=\"z\\\"q\"} 226.5\n"
    "envoy_cluster_upstream_rq_time_count{envoy_cluster_name=\"z\\\"q\"} 6\n"
    "# TYPE envoy_cluster_upstream_rq_total counter\n"
    "envoy_cluster_upstream_rq_total{envoy_cluster_name=\"0digit\"} 16\n"
    "envoy_cluster_upstream_rq_total{envoy_cluster_name=\"outbound|80||a.b\"} 6\n"
    "envoy_cluster_upstream_rq_total{envoy_cluster_name=\"z\\\"q\"} 26\n"
    "# TYPE envoy_listener_downstream_cx_total counter\n"
    "envoy_listener_downstream_cx_total{name=\"0.0.0.0_15001\"} 0\n"
    "# TYPE envoy_server_live gauge\n"
    "envoy_server_live 1\n"
    "# TYPE envoy_vhost__5xx counter\n"
    "envoy_vhost__5xx{envoy_virtual_host=\"all\"} 0\n"
    "# TYPE istio_request_duration_milliseconds histogram\n"
    "istio_request_duration_milliseconds_bucket{reporter=\"destination\",response_code=\"200\",le="
    "\"0.5\"} 1\n"
    "istio_request_duration_milliseconds_bucket{reporter=\"destination\",response_code=\"200\",le="
    "\"1\"} 1\n"
    "istio_request_duration_milliseconds_bucket{reporter=\"destination\",response_code=\"200\",le="
    "\"5\"} 2\n"
    "istio_request_duration_milliseconds_bucket{reporter=\"destination\",response_code=\"200\",le="
    "\"10\"} 2\n"
    "istio_request_duration_milliseconds_bucket{reporter=\"destination\",response_code=\"200\",le="
    "\"25\"} 2\n"
    "istio_request_duration_milliseconds_bucket{reporter=\"destination\",response_code=\"200\",le="
    "\"50\"} 2\n"
    "istio_request_duration_milliseconds_bucket{reporter=\"destination\",response_code=\"200\",le="
    "\"100\"} 2\n"
    "istio_request_duration_milliseconds_bucket{reporter=\"destination\",response_code=\"200\",le="
    "\"250\"} 2\n"
    "istio_request_duration_milliseconds_bucket{reporter=\"destination\",response_code=\"200\",le="
    "\"500\"} 2\n"
    "istio_request_duration_milliseconds_bucket{reporter=\"destination\",response_code=\"200\",le="
    "\"1000\"} 2\n"
    "istio_request_duration_milliseconds_bucket{reporter=\"destination\",response_code=\"200\",le="
    "\"2500\"} 2\n"
    "istio_request_duration_milliseconds_bucket{reporter=\"destination\",response_code=\"200\",le="
    "\"5000\"} 2\n"
    "istio_request_duration_milliseconds_bucket{reporter=\"destination\",response_code=\"200\",le="
    "\"10000\"} 2\n"
    "istio_request_duration_milliseconds_bucket{reporter=\"destination\",response_code=\"200\",le="
    "\"30000\"} 2\n"
    "istio_request_duration_milliseconds_bucket{reporter=\"destination\",response_code=\"200\",le="
    "\"60000\"} 2\n"
    "istio_request_duration_milliseconds_bucket{reporter=\"destination\",response_code=\"200\",le="
    "\"300000\"} 2\n"
    "istio_request_duration_milliseconds_bucket{reporter=\"destination\",response_code=\"200\",le="
    "\"600000\"} 2\n"
    "istio_request_duration_milliseconds_bucket{reporter=\"destination\",response_code=\"200\",le="
    "\"1800000\"} 2\n"
    "istio_request_duration_milliseconds_bucket{reporter=\"destination\",response_code=\"200\",le="
    "\"3600000\"} 2\n"
    "istio_request_duration_milliseconds_bucket{reporter=\"destination\",response_code=\"200\",le="
    "\"+Inf\"} 2\n"
    "istio_request_duration_milliseconds_sum{reporter=\"destination\",response_code=\"200\"} "
    "2.599\n"
    "istio_request_duration_milliseconds_count{reporter=\"destination\",response_code=\"200\"} 2\n"
    "# TYPE istio_requests_total counter\n"
    "istio_requests_total{reporter=\"\",source_workload=\"a\\\"b\\\\c\\nd\"} 0\n"
    "istio_requests_total{reporter=\"destination\",response_code=\"200\"} 42\n"
    "istio_requests_total{reporter=\"destination\",response_code=\"404\"} 0\n"
    "# TYPE my_family_x gauge\n"
    "my_family_x{_1st_label=\"x\"} 0\n"
    "# TYPE quiet_ms histogram\n"
    "quiet_ms_bucket{le=\"0.5\"} 0\n"
    "quiet_ms_bucket{le=\"1\"} 0\n"
    "quiet_ms_bucket{le=\"5\"} 0\n"
    "quiet_ms_bucket{le=\"10\"} 0\n"
    "quiet_ms_bucket{le=\"25\"} 0\n"
    "quiet_ms_bucket{le=\"50\"} 0\n"
    "quiet_ms_bucket{le=\"100\"} 0\n"
    "quiet_ms_bucket{le=\"250\"} 0\n"
    "quiet_ms_bucket{le=\"500\"} 0\n"
    "quiet_ms_bucket{le=\"1000\"} 0\n"
    "quiet_ms_bucket{le=\"2500\"} 0\n"
    "quiet_ms_bucket{le=\"5000\"} 0\n"
    "quiet_ms_bucket{le=\"10000\"} 0\n"
    "quiet_ms_bucket{le=\"30000\"} 0\n"
    "quiet_ms_bucket{le=\"60000\"} 0\n"
    "quiet_ms_bucket{le=\"300000\"} 0\n"
    "quiet_ms_bucket{le=\"600000\"} 0\n"
    "quiet_ms_bucket{le=\"1800000\"} 0\n"
    "quiet_ms_bucket{le=\"3600000\"} 0\n"
    "quiet_ms_bucket{le=\"+Inf\"} 0\n"
    "quiet_ms_sum 0\n"
    "quiet_ms_count 0\n"
    "";

static const char golden_entries[] =
    "9scope.x-y|envoy__9scope_x_y|9scope|(null)|(null)|x-y|0|0|81\n"
    "cluster.0digit.ssl.handshake|envoy_cluster_ssl_handshake|cluster|envoy_cluster_name|0digit|"
    "ssl.handshake|1|0|28\n"
    "cluster.0digit.upstream_cx_active|envoy_cluster_upstream_cx_active|cluster|envoy_cluster_name|"
    "0digit|upstream_cx_active|1|1|27\n"
    "cluster.0digit.upstream_rq_time|envoy_cluster_upstream_rq_time|cluster|envoy_cluster_name|"
    "0digit|upstream_rq_time|1|2|29\n"
    "cluster.0digit.upstream_rq_total|envoy_cluster_upstream_rq_total|cluster|envoy_cluster_name|"
    "0digit|upstream_rq_total|1|0|26\n"
    "cluster.outbound|80||a.b.ssl.handshake|envoy_cluster_ssl_handshake|cluster|envoy_cluster_name|"
    "outbound|80||a.b|ssl.handshake|1|0|2\n"
    "cluster.outbound|80||a.b.upstream_cx_active|envoy_cluster_upstream_cx_active|cluster|envoy_"
    "cluster_name|outbound|80||a.b|upstream_cx_active|1|1|1\n"
    "cluster.outbound|80||a.b.upstream_rq_time|envoy_cluster_upstream_rq_time|cluster|envoy_"
    "cluster_name|outbound|80||a.b|upstream_rq_time|1|2|3\n"
    "cluster.outbound|80||a.b.upstream_rq_total|envoy_cluster_upstream_rq_total|cluster|envoy_"
    "cluster_name|outbound|80||a.b|upstream_rq_total|1|0|0\n"
    "cluster.z\"q.ssl.handshake|envoy_cluster_ssl_handshake|cluster|envoy_cluster_name|z\"q|ssl."
    "handshake|1|0|54\n"
    "cluster.z\"q.upstream_cx_active|envoy_cluster_upstream_cx_active|cluster|envoy_cluster_name|"
    "z\"q|upstream_cx_active|1|1|53\n"
    "cluster.z\"q.upstream_rq_time|envoy_cluster_upstream_rq_time|cluster|envoy_cluster_name|z\"q|"
    "upstream_rq_time|1|2|55\n"
    "cluster.z\"q.upstream_rq_total|envoy_cluster_upstream_rq_total|cluster|envoy_cluster_name|"
    "z\"q|upstream_rq_total|1|0|52\n"
    "istio.null|istio_requests_total|(null)|(null)|(null)|(null)|2|0|84\n"
    "listener.0.0.0.0_15001.downstream_cx_total|envoy_listener_downstream_cx_total|listener|(null)|"
    "0.0.0.0_15001|downstream_cx_total|1|0|79\n"
    "odd|my_family_x|(null)|(null)|(null)|(null)|1|1|108\n"
    "quiet|quiet_ms|(null)|(null)|(null)|(null)|0|2|109\n"
    "reporter=.=destination;.;response_code=.=200;.;istio_request_duration_milliseconds|istio_"
    "request_duration_milliseconds|(null)|(null)|(null)|(null)|2|2|85\n"
    "reporter=.=destination;.;response_code=.=200;.;istio_requests_total|istio_requests_total|("
    "null)|(null)|(null)|(null)|2|0|82\n"
    "reporter=.=destination;.;response_code=.=404;.;istio_requests_total|istio_requests_total|("
    "null)|(null)|(null)|(null)|2|0|83\n"
    "server.live|envoy_server_live|server|(null)|(null)|live|0|1|78\n"
    "vhost.all.5xx|envoy_vhost__5xx|vhost|envoy_virtual_host|all|5xx|1|0|80\n";

static void test_stats_renderings_match_those_before_shared_names(void **state)
{
    (void)state;
    stats_store_t *st = golden_store();
    stats_entry_t *list;
    int n = stats_list(st, &list);
    assert_int_equal(n, 22);
    char *text = stats_render_text(list, n, NULL);
    assert_string_equal(text, golden_text);
    free(text);
    text = stats_render_json(list, n, NULL);
    assert_string_equal(text, golden_json);
    free(text);
    text = stats_render_prometheus(list, n);
    assert_string_equal(text, golden_prometheus);
    free(text);
    stats_list_free(list);
    stats_store_free(st);
}

static const char *or_null(const char *s)
{
    return s ? s : "(null)";
}

static void test_stats_list_entries_match_those_before_shared_names(void **state)
{
    (void)state;
    stats_store_t *st = golden_store();
    stats_entry_t *list;
    int n = stats_list(st, &list);
    char buf[8192];
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s|%s|%s|%s|%s|%s|%zu|%d|%u\n",
                                list[i].name, list[i].prom_family, or_null(list[i].scope),
                                or_null(list[i].tag_name), or_null(list[i].tag_value),
                                or_null(list[i].metric), list[i].n_tags, (int)list[i].kind,
                                list[i].id);
    assert_true(len < sizeof(buf));
    assert_string_equal(buf, golden_entries);
    stats_list_free(list);
    stats_store_free(st);
}

static void test_stats_name_cut_differently_is_the_same_stat(void **state)
{
    (void)state;
    stats_store_t *st = stats_store_new(1);
    int64_t a = stats_define(st, STAT_COUNTER, "cluster", "envoy_cluster_name", "a.b", "c");
    int64_t b = stats_define(st, STAT_COUNTER, "cluster", "envoy_cluster_name", "a", "b.c");
    int64_t c = stats_define(st, STAT_COUNTER, "cluster.a", NULL, NULL, "b.c");
    stats_tag_t tag = {"t", "v"};
    int64_t d = stats_define_tagged(st, STAT_COUNTER, "f", "cluster.a.b.c", &tag, 1);
    int64_t e = stats_define(st, STAT_GAUGE, "cluster", NULL, "a", "b.c");
    assert_true(a >= 0);
    assert_int_equal(b, a);
    assert_int_equal(c, a);
    assert_int_equal(d, a);
    assert_int_equal(e, -EEXIST);
    /* The first definition fixes the labels and family. */
    stats_entry_t *list;
    assert_int_equal(stats_list(st, &list), 1);
    assert_string_equal(list[0].name, "cluster.a.b.c");
    assert_string_equal(list[0].tag_value, "a.b");
    assert_string_equal(list[0].metric, "c");
    stats_list_free(list);
    stats_store_free(st);
}

static void test_stats_built_name_with_null_value_is_the_empty_value(void **state)
{
    (void)state;
    stats_store_t *st = stats_store_new(1);
    stats_tag_t null_value[] = {{"a", NULL}, {"b", "x"}};
    stats_tag_t empty_value[] = {{"a", ""}, {"b", "x"}};
    int64_t x = stats_define_tagged(st, STAT_COUNTER, "fam", NULL, null_value, 2);
    int64_t y = stats_define_tagged(st, STAT_COUNTER, "fam", NULL, empty_value, 2);
    int64_t z = stats_define_tagged(st, STAT_COUNTER, "fam", "a=.=;.;b=.=x;.;fam", NULL, 0);
    assert_true(x >= 0);
    assert_int_equal(y, x);
    assert_int_equal(z, x);
    stats_store_free(st);
}

static void test_stats_clusters_share_scope_label_and_metric_strings(void **state)
{
    (void)state;
    stats_store_t *st = stats_store_new(1);
    stats_define(st, STAT_COUNTER, "cluster", "envoy_cluster_name", "a", "upstream_rq_total");
    stats_define(st, STAT_COUNTER, "cluster", "envoy_cluster_name", "b", "upstream_rq_total");
    stats_entry_t *list;
    assert_int_equal(stats_list(st, &list), 2);
    assert_ptr_equal(list[0].scope, list[1].scope);
    assert_ptr_equal(list[0].tag_name, list[1].tag_name);
    assert_ptr_equal(list[0].metric, list[1].metric);
    assert_ptr_not_equal(list[0].tag_value, list[1].tag_value);
    stats_list_free(list);
    stats_store_free(st);
}

/* --- the name storage itself ---------------------------------------------------------------- */

#define CLUSTERS 1000
#define METRICS  30

static void test_stats_names_store_each_string_and_group_once(void **state)
{
    (void)state;
    stats_names_t names = {0};
    char cluster[32], metric[32];
    stat_id_t next = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int c = 0; c < CLUSTERS; c++) {
            snprintf(cluster, sizeof(cluster), "svc-%d", c);
            for (int m = 0; m < METRICS; m++) {
                snprintf(metric, sizeof(metric), "metric_%d", m);
                stat_request_t rq = {.kind = STAT_COUNTER,
                                     .scope = "cluster",
                                     .tag_name = "envoy_cluster_name",
                                     .tag_value = cluster,
                                     .metric = metric};
                stat_kind_t kind;
                stat_id_t id;
                int64_t found = stats_names_find(&names, &rq, &kind, &id);
                if (pass == 0) {
                    assert_int_equal(found, -1);
                    assert_int_equal(stats_names_add(&names, &rq, next++), 0);
                } else {
                    assert_int_equal(found, c * METRICS + m);
                    assert_int_equal(id, (stat_id_t)(c * METRICS + m));
                    assert_int_equal(kind, STAT_COUNTER);
                }
            }
        }
    }
    assert_int_equal(stats_names_count(&names), CLUSTERS * METRICS);
    /* NULL, "cluster", "envoy_cluster_name", the metrics and the clusters' names. */
    assert_int_equal(names.syms.n, 1 + 2 + METRICS + CLUSTERS);
    assert_int_equal(names.groups.n, CLUSTERS);
    stat_view_t v;
    stats_tag_t tag;
    stats_names_view(&names, 12 * METRICS + 7, &v, &tag);
    char text[64];
    assert_int_equal(stat_name_len(&v.name), strlen("cluster.svc-12.metric_7"));
    stat_name_write(&v.name, text);
    assert_string_equal(text, "cluster.svc-12.metric_7");
    assert_string_equal(tag.name, "envoy_cluster_name");
    assert_string_equal(tag.value, "svc-12");
    stats_names_free(&names);
}

static void test_stats_names_keep_long_strings_whole(void **state)
{
    (void)state;
    stats_store_t *st = stats_store_new(1);
    char long_name[3000];
    memset(long_name, 'x', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    int64_t a = stats_define(st, STAT_COUNTER, "cluster", NULL, long_name, "m");
    int64_t b = stats_define(st, STAT_COUNTER, "cluster", NULL, "short", "m");
    assert_int_equal(stats_define(st, STAT_COUNTER, "cluster", NULL, long_name, "m"), a);
    assert_int_equal(stats_define(st, STAT_COUNTER, "cluster", NULL, "short", "m"), b);
    stats_entry_t *list;
    assert_int_equal(stats_list(st, &list), 2);
    assert_string_equal(list[0].tag_value, "short");
    assert_string_equal(list[1].tag_value, long_name);
    assert_int_equal(strlen(list[1].name), strlen("cluster..m") + strlen(long_name));
    stats_list_free(list);
    stats_store_free(st);
}

static void test_stats_prometheus_names_escape_every_byte_and_leading_digit(void **state)
{
    (void)state;
    char out[32];
    const char *in = "9a.b-c:d_E";
    assert_int_equal(prom_name_len(in), strlen(in) + 1);
    *prom_name_write(out, in, false) = '\0';
    assert_string_equal(out, "_9a_b_c:d_E");
    *prom_name_write(out, in, true) = '\0';
    assert_string_equal(out, "_9a_b_c_d_E");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stats_renderings_match_those_before_shared_names),
        cmocka_unit_test(test_stats_list_entries_match_those_before_shared_names),
        cmocka_unit_test(test_stats_name_cut_differently_is_the_same_stat),
        cmocka_unit_test(test_stats_built_name_with_null_value_is_the_empty_value),
        cmocka_unit_test(test_stats_clusters_share_scope_label_and_metric_strings),
        cmocka_unit_test(test_stats_names_store_each_string_and_group_once),
        cmocka_unit_test(test_stats_names_keep_long_strings_whole),
        cmocka_unit_test(test_stats_prometheus_names_escape_every_byte_and_leading_digit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
