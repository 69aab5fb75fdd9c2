/* Cluster.typed_extension_protocol_options: the HTTP protocol a cluster speaks to its
 * upstreams, as Envoy configures it (envoy.extensions.upstreams.http.v3.HttpProtocolOptions):
 * HTTP/1.1, or HTTP/2 (explicit_http_config.http2_protocol_options: the router's HTTP/2
 * upstream codec, and the gRPC client for the ADS cluster) with its keepalive, stream limit and
 * requests per connection. An HTTP/2 cluster with TLS must offer ALPN "h2", as Envoy requires;
 * the ADS cluster's TLS context is checked for what the gRPC client needs of it too. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/extensions/upstreams/http/v3/http_protocol_options.pb-c.h"
#include "xds/config/config.h"
#include "xds/snapshot/snapshot_build.h"

#define HTTP_OPTIONS_KEY "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

typedef Envoy__Extensions__Upstreams__Http__V3__HttpProtocolOptions http_options_t;

/* The HTTP/2 settings of o (borrowed; its explicit HTTP/2 options) into c: keepalive and
 * max_concurrent_streams, and the common max_requests_per_connection. */
static void keepalive_of(const http_options_t *o, snap_cluster_t *c)
{
    const Envoy__Config__Core__V3__Http2ProtocolOptions *h2 =
        o->explicit_http_config->http2_protocol_options;
    if (h2 && h2->connection_keepalive) {
        c->h2_keepalive_interval_ms = config_duration_ms(h2->connection_keepalive->interval, 0);
        c->h2_keepalive_timeout_ms = config_duration_ms(h2->connection_keepalive->timeout, 0);
    }
    if (h2 && h2->max_concurrent_streams)
        c->h2_max_concurrent_streams = h2->max_concurrent_streams->value;
    if (o->common_http_protocol_options &&
        o->common_http_protocol_options->max_requests_per_connection)
        c->max_requests_per_connection =
            o->common_http_protocol_options->max_requests_per_connection->value;
}

/* Which protocol o (borrowed) asks for: 1 HTTP/1.1, 2 HTTP/2, or -EINVAL with err set. */
static int protocol_of(const http_options_t *o, const char *what, char *err, size_t errlen)
{
    switch (o->upstream_protocol_options_case) {
    case ENVOY__EXTENSIONS__UPSTREAMS__HTTP__V3__HTTP_PROTOCOL_OPTIONS__UPSTREAM_PROTOCOL_OPTIONS__NOT_SET:
        return 1;
    case ENVOY__EXTENSIONS__UPSTREAMS__HTTP__V3__HTTP_PROTOCOL_OPTIONS__UPSTREAM_PROTOCOL_OPTIONS_EXPLICIT_HTTP_CONFIG:
        switch (o->explicit_http_config->protocol_config_case) {
        case ENVOY__EXTENSIONS__UPSTREAMS__HTTP__V3__HTTP_PROTOCOL_OPTIONS__EXPLICIT_HTTP_CONFIG__PROTOCOL_CONFIG_HTTP2_PROTOCOL_OPTIONS:
            return 2;
        case ENVOY__EXTENSIONS__UPSTREAMS__HTTP__V3__HTTP_PROTOCOL_OPTIONS__EXPLICIT_HTTP_CONFIG__PROTOCOL_CONFIG_HTTP3_PROTOCOL_OPTIONS:
            return err_set(err, errlen, -EINVAL, "%s: HTTP/3 to upstreams is not supported", what);
        default:
            return 1;
        }
    default:
        return err_set(err, errlen, -EINVAL,
                       "%s: use_downstream_protocol_config and auto_config are not supported yet "
                       "(give explicit_http_config)",
                       what);
    }
}

/* An HTTP/2 cluster's UpstreamTlsContext t (borrowed): it must offer ALPN h2 (Envoy does not
 * add it either); the ADS cluster's secrets cannot come over the stream it is there to make. */
static int h2_tls(const tls_context_config_t *t, bool ads_cluster, const char *what, char *err,
                  size_t errlen)
{
    if (ads_cluster && t->awaiting_secret)
        return err_set(err, errlen, -EINVAL,
                       "%s: transport_socket: the cluster of dynamic_resources.ads_config cannot "
                       "take its secrets over SDS from the stream it carries: give them inline "
                       "or as files",
                       what);
    for (size_t i = 0; i < t->n_alpn; i++)
        if (strcmp(t->alpn[i], "h2") == 0)
            return 0;
    if (ads_cluster)
        return err_set(err, errlen, -EINVAL,
                       "%s: transport_socket: common_tls_context.alpn_protocols must offer "
                       "\"h2\" on the cluster of dynamic_resources.ads_config (gRPC needs "
                       "HTTP/2)",
                       what);
    return err_set(err, errlen, -EINVAL,
                   "%s: transport_socket: common_tls_context.alpn_protocols must offer \"h2\" "
                   "on a cluster whose typed_extension_protocol_options ask for HTTP/2",
                   what);
}

int snapshot_cluster_protocol(const void *cluster_msg, snap_cluster_t *c, bool ads_cluster,
                              const char *what, char *err, size_t errlen)
{
    const Envoy__Config__Cluster__V3__Cluster *m = cluster_msg;
    char where[400];
    c->http2 = false;
    for (size_t i = 0; i < m->n_typed_extension_protocol_options; i++) {
        const Envoy__Config__Cluster__V3__Cluster__TypedExtensionProtocolOptionsEntry *e =
            m->typed_extension_protocol_options[i];
        snprintf(where, sizeof(where), "%s: typed_extension_protocol_options['%s']", what,
                 e->key ? e->key : "");
        if (e->key == NULL || strcmp(e->key, HTTP_OPTIONS_KEY) != 0)
            return err_set(err, errlen, -EINVAL, "%s: only %s is supported", where,
                           HTTP_OPTIONS_KEY);
        ProtobufCMessage *msg = NULL;
        char uerr[256];
        if (config_any_unpack(
                e->value,
                &envoy__extensions__upstreams__http__v3__http_protocol_options__descriptor, &msg,
                uerr, sizeof(uerr)) < 0)
            return err_set(err, errlen, -EINVAL, "%s: %s", where, uerr);
        int proto = protocol_of((const http_options_t *)msg, where, err, errlen);
        if (proto == 2)
            keepalive_of((const http_options_t *)msg, c);
        protobuf_c_message_free_unpacked(msg, NULL);
        if (proto < 0)
            return proto;
        c->http2 = proto == 2;
    }
    if (c->tls && (ads_cluster || c->http2))
        return h2_tls(c->tls, ads_cluster, what, err, errlen);
    return 0;
}
