/* Registry of every protobuf message Remora generates, so Any payloads and "@type" keys resolve
 * by type URL; plus unpacking an Any into a known type. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "xds/config/config.h"
#include "xds/config/pb_arena.h"

#include "envoy/config/accesslog/v3/accesslog.pb-c.h"
#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "envoy/config/cluster/v3/circuit_breaker.pb-c.h"
#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/common/mutation_rules/v3/mutation_rules.pb-c.h"
#include "envoy/config/core/v3/address.pb-c.h"
#include "envoy/config/core/v3/base.pb-c.h"
#include "envoy/config/core/v3/config_source.pb-c.h"
#include "envoy/config/core/v3/extension.pb-c.h"
#include "envoy/config/core/v3/grpc_service.pb-c.h"
#include "envoy/config/core/v3/health_check.pb-c.h"
#include "envoy/config/core/v3/protocol.pb-c.h"
#include "envoy/config/core/v3/substitution_format_string.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint_components.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/listener/v3/listener_components.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/config/route/v3/route_components.pb-c.h"
#include "envoy/extensions/access_loggers/file/v3/file.pb-c.h"
#include "envoy/extensions/access_loggers/stream/v3/stream.pb-c.h"
#include "envoy/extensions/filters/http/header_mutation/v3/header_mutation.pb-c.h"
#include "envoy/extensions/filters/http/buffer/v3/buffer.pb-c.h"
#include "envoy/extensions/filters/http/router/v3/router.pb-c.h"
#include "envoy/extensions/filters/listener/http_inspector/v3/http_inspector.pb-c.h"
#include "envoy/extensions/filters/listener/original_dst/v3/original_dst.pb-c.h"
#include "envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb-c.h"
#include "envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/common.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb-c.h"
#include "envoy/extensions/upstreams/http/v3/http_protocol_options.pb-c.h"
#include "envoy/service/discovery/v3/ads.pb-c.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "envoy/type/matcher/v3/regex.pb-c.h"
#include "envoy/type/matcher/v3/string.pb-c.h"
#include "envoy/type/v3/range.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/empty.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"
#include "google/rpc/status.pb-c.h"

/* One line per generated message, nested ones included: a type missing here cannot appear in a
 * typed_config. Append the descriptors of every new .proto. */
static const ProtobufCMessageDescriptor *const config_types[] = {
    &envoy__config__bootstrap__v3__bootstrap__descriptor,
    &envoy__config__bootstrap__v3__bootstrap__static_resources__descriptor,
    &envoy__config__bootstrap__v3__bootstrap__dynamic_resources__descriptor,
    &envoy__config__bootstrap__v3__admin__descriptor,
    &envoy__config__bootstrap__v3__runtime_layer__descriptor,
    &envoy__config__bootstrap__v3__runtime_layer__disk_layer__descriptor,
    &envoy__config__bootstrap__v3__runtime_layer__admin_layer__descriptor,
    &envoy__config__bootstrap__v3__runtime_layer__rtds_layer__descriptor,
    &envoy__config__bootstrap__v3__layered_runtime__descriptor,
    &envoy__config__cluster__v3__cluster__descriptor,
    &envoy__config__cluster__v3__cluster__typed_extension_protocol_options_entry__descriptor,
    &envoy__config__cluster__v3__circuit_breakers__descriptor,
    &envoy__config__cluster__v3__circuit_breakers__thresholds__descriptor,
    &envoy__config__cluster__v3__cluster__custom_cluster_type__descriptor,
    &envoy__config__cluster__v3__cluster__eds_cluster_config__descriptor,
    &envoy__config__cluster__v3__cluster__original_dst_lb_config__descriptor,
    &envoy__config__cluster__v3__cluster__refresh_rate__descriptor,
    &envoy__config__core__v3__control_plane__descriptor,
    &envoy__config__core__v3__keepalive_settings__descriptor,
    &envoy__config__core__v3__http2_protocol_options__descriptor,
    &envoy__config__core__v3__http3_protocol_options__descriptor,
    &envoy__extensions__upstreams__http__v3__http_protocol_options__descriptor,
    &envoy__extensions__upstreams__http__v3__http_protocol_options__explicit_http_config__descriptor,
    &envoy__extensions__upstreams__http__v3__http_protocol_options__use_downstream_http_config__descriptor,
    &envoy__extensions__upstreams__http__v3__http_protocol_options__auto_http_config__descriptor,
    &envoy__config__core__v3__pipe__descriptor,
    &envoy__config__core__v3__socket_address__descriptor,
    &envoy__config__core__v3__tcp_keepalive__descriptor,
    &envoy__config__core__v3__address__descriptor,
    &envoy__config__core__v3__cidr_range__descriptor,
    &envoy__config__core__v3__bind_config__descriptor,
    &envoy__config__core__v3__locality__descriptor,
    &envoy__config__core__v3__node__descriptor,
    &envoy__config__core__v3__watched_directory__descriptor,
    &envoy__config__core__v3__data_source__descriptor,
    &envoy__config__core__v3__transport_socket__descriptor,
    &envoy__config__core__v3__api_config_source__descriptor,
    &envoy__config__core__v3__aggregated_config_source__descriptor,
    &envoy__config__core__v3__self_config_source__descriptor,
    &envoy__config__core__v3__path_config_source__descriptor,
    &envoy__config__core__v3__config_source__descriptor,
    &envoy__config__core__v3__typed_extension_config__descriptor,
    &envoy__config__core__v3__grpc_service__descriptor,
    &envoy__config__core__v3__grpc_service__envoy_grpc__descriptor,
    &envoy__config__endpoint__v3__cluster_load_assignment__descriptor,
    &envoy__config__endpoint__v3__cluster_load_assignment__policy__descriptor,
    &envoy__config__endpoint__v3__endpoint__descriptor,
    &envoy__config__endpoint__v3__endpoint__health_check_config__descriptor,
    &envoy__config__endpoint__v3__lb_endpoint__descriptor,
    &envoy__config__endpoint__v3__locality_lb_endpoints__descriptor,
    &envoy__config__listener__v3__listener__descriptor,
    &envoy__config__listener__v3__filter__descriptor,
    &envoy__config__listener__v3__filter_chain_match__descriptor,
    &envoy__config__listener__v3__filter_chain__descriptor,
    &envoy__config__listener__v3__listener_filter__descriptor,
    &envoy__extensions__filters__listener__original_dst__v3__original_dst__descriptor,
    &envoy__extensions__filters__listener__tls_inspector__v3__tls_inspector__descriptor,
    &envoy__extensions__filters__network__tcp_proxy__v3__tcp_proxy__descriptor,
    &envoy__extensions__filters__network__tcp_proxy__v3__tcp_proxy__weighted_cluster__descriptor,
    &envoy__extensions__filters__network__tcp_proxy__v3__tcp_proxy__weighted_cluster__cluster_weight__descriptor,
    &envoy__config__core__v3__metadata__descriptor,
    &envoy__config__core__v3__metadata__filter_metadata_entry__descriptor,
    &envoy__config__core__v3__metadata__typed_filter_metadata_entry__descriptor,
    &envoy__config__core__v3__header_value__descriptor,
    &envoy__config__core__v3__header_value_option__descriptor,
    &envoy__config__core__v3__http_protocol_options__descriptor,
    &envoy__config__core__v3__http1_protocol_options__descriptor,
    &envoy__config__core__v3__http1_protocol_options__header_key_format__descriptor,
    &envoy__config__core__v3__http1_protocol_options__header_key_format__proper_case_words__descriptor,
    &envoy__config__core__v3__json_format_options__descriptor,
    &envoy__config__core__v3__substitution_format_string__descriptor,
    &envoy__config__listener__v3__listener_filter_chain_match_predicate__descriptor,
    &envoy__config__listener__v3__listener_filter_chain_match_predicate__match_set__descriptor,
    &envoy__config__route__v3__route_configuration__descriptor,
    &envoy__config__route__v3__route_configuration__typed_per_filter_config_entry__descriptor,
    &envoy__config__route__v3__virtual_host__descriptor,
    &envoy__config__route__v3__virtual_host__typed_per_filter_config_entry__descriptor,
    &envoy__config__route__v3__filter_action__descriptor,
    &envoy__config__route__v3__route__descriptor,
    &envoy__config__route__v3__route__typed_per_filter_config_entry__descriptor,
    &envoy__config__route__v3__weighted_cluster__descriptor,
    &envoy__config__route__v3__weighted_cluster__cluster_weight__descriptor,
    &envoy__config__route__v3__route_match__descriptor,
    &envoy__config__route__v3__route_match__connect_matcher__descriptor,
    &envoy__config__route__v3__route_action__descriptor,
    &envoy__config__route__v3__route_action__upgrade_config__descriptor,
    &envoy__config__route__v3__route_action__upgrade_config__connect_config__descriptor,
    &envoy__config__route__v3__retry_policy__descriptor,
    &envoy__config__route__v3__retry_policy__retry_back_off__descriptor,
    &envoy__config__route__v3__redirect_action__descriptor,
    &envoy__config__route__v3__direct_response_action__descriptor,
    &envoy__config__route__v3__non_forwarding_action__descriptor,
    &envoy__config__route__v3__decorator__descriptor,
    &envoy__config__route__v3__header_matcher__descriptor,
    &envoy__config__accesslog__v3__access_log__descriptor,
    &envoy__config__common__mutation_rules__v3__header_mutation__descriptor,
    &envoy__config__common__mutation_rules__v3__header_mutation__remove_on_match__descriptor,
    &envoy__extensions__access_loggers__file__v3__file_access_log__descriptor,
    &envoy__extensions__access_loggers__stream__v3__stdout_access_log__descriptor,
    &envoy__extensions__access_loggers__stream__v3__stderr_access_log__descriptor,
    &envoy__extensions__filters__http__header_mutation__v3__mutations__descriptor,
    &envoy__extensions__filters__http__header_mutation__v3__header_mutation_per_route__descriptor,
    &envoy__extensions__filters__http__header_mutation__v3__header_mutation__descriptor,
    &envoy__extensions__filters__http__buffer__v3__buffer__descriptor,
    &envoy__extensions__filters__http__buffer__v3__buffer_per_route__descriptor,
    &envoy__extensions__filters__http__router__v3__router__descriptor,
    &envoy__extensions__filters__listener__http_inspector__v3__http_inspector__descriptor,
    &envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__descriptor,
    &envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__set_current_client_cert_details__descriptor,
    &envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__upgrade_config__descriptor,
    &envoy__extensions__filters__network__http_connection_manager__v3__rds__descriptor,
    &envoy__extensions__filters__network__http_connection_manager__v3__http_filter__descriptor,
    &envoy__extensions__transport_sockets__raw_buffer__v3__raw_buffer__descriptor,
    &envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__descriptor,
    &envoy__extensions__transport_sockets__tls__v3__downstream_tls_context__descriptor,
    &envoy__extensions__transport_sockets__tls__v3__tls_key_log__descriptor,
    &envoy__extensions__transport_sockets__tls__v3__common_tls_context__descriptor,
    &envoy__extensions__transport_sockets__tls__v3__common_tls_context__certificate_provider__descriptor,
    &envoy__extensions__transport_sockets__tls__v3__common_tls_context__certificate_provider_instance__descriptor,
    &envoy__extensions__transport_sockets__tls__v3__common_tls_context__combined_certificate_validation_context__descriptor,
    &envoy__extensions__transport_sockets__tls__v3__tls_parameters__descriptor,
    &envoy__extensions__transport_sockets__tls__v3__private_key_provider__descriptor,
    &envoy__extensions__transport_sockets__tls__v3__tls_certificate__descriptor,
    &envoy__extensions__transport_sockets__tls__v3__tls_session_ticket_keys__descriptor,
    &envoy__extensions__transport_sockets__tls__v3__certificate_provider_plugin_instance__descriptor,
    &envoy__extensions__transport_sockets__tls__v3__subject_alt_name_matcher__descriptor,
    &envoy__extensions__transport_sockets__tls__v3__certificate_validation_context__descriptor,
    &envoy__extensions__transport_sockets__tls__v3__certificate_validation_context__system_root_certs__descriptor,
    &envoy__extensions__transport_sockets__tls__v3__sds_secret_config__descriptor,
    &envoy__extensions__transport_sockets__tls__v3__generic_secret__descriptor,
    &envoy__extensions__transport_sockets__tls__v3__secret__descriptor,
    &envoy__service__discovery__v3__resource_name__descriptor,
    &envoy__service__discovery__v3__resource_error__descriptor,
    &envoy__service__discovery__v3__discovery_request__descriptor,
    &envoy__service__discovery__v3__discovery_response__descriptor,
    &envoy__service__discovery__v3__delta_discovery_request__descriptor,
    &envoy__service__discovery__v3__delta_discovery_response__descriptor,
    &envoy__service__discovery__v3__resource__descriptor,
    &envoy__service__discovery__v3__resource__cache_control__descriptor,
    &envoy__service__discovery__v3__ads_dummy__descriptor,
    &google__rpc__status__descriptor,
    &envoy__type__matcher__v3__regex_matcher__descriptor,
    &envoy__type__matcher__v3__regex_matcher__google_re2__descriptor,
    &envoy__type__matcher__v3__regex_match_and_substitute__descriptor,
    &envoy__type__matcher__v3__string_matcher__descriptor,
    &envoy__type__matcher__v3__list_string_matcher__descriptor,
    &envoy__type__v3__int64_range__descriptor,
    &envoy__type__v3__int32_range__descriptor,
    &envoy__type__v3__double_range__descriptor,
    &google__protobuf__any__descriptor,
    &google__protobuf__duration__descriptor,
    &google__protobuf__empty__descriptor,
    &google__protobuf__struct__descriptor,
    &google__protobuf__struct__fields_entry__descriptor,
    &google__protobuf__value__descriptor,
    &google__protobuf__list_value__descriptor,
    &google__protobuf__timestamp__descriptor,
    &google__protobuf__double_value__descriptor,
    &google__protobuf__float_value__descriptor,
    &google__protobuf__int64_value__descriptor,
    &google__protobuf__uint64_value__descriptor,
    &google__protobuf__int32_value__descriptor,
    &google__protobuf__uint32_value__descriptor,
    &google__protobuf__bool_value__descriptor,
    &google__protobuf__string_value__descriptor,
    &google__protobuf__bytes_value__descriptor,
};

const ProtobufCMessageDescriptor *config_type_lookup(const char *type_url)
{
    if (type_url == NULL)
        return NULL;
    /* Any's contract: the type's full name is whatever follows the last '/'. */
    const char *slash = strrchr(type_url, '/');
    const char *name = slash ? slash + 1 : type_url;
    for (size_t i = 0; i < sizeof(config_types) / sizeof(config_types[0]); i++) {
        if (strcmp(config_types[i]->name, name) == 0)
            return config_types[i];
    }
    return NULL;
}

/* Whether any (borrowed) holds a `want`: 0, or -EINVAL with err saying why not. */
static int any_check(const Google__Protobuf__Any *any, const ProtobufCMessageDescriptor *want,
                     char *err, size_t errlen)
{
    if (any == NULL || any->type_url == NULL) {
        snprintf(err, errlen, "Any is empty (want %s)", want->name);
        return -EINVAL;
    }
    const char *slash = strrchr(any->type_url, '/');
    const char *name = slash ? slash + 1 : any->type_url;
    if (strcmp(name, want->name) != 0) {
        snprintf(err, errlen, "Any holds '%s', want %s", any->type_url, want->name);
        return -EINVAL;
    }
    return 0;
}

static int undecodable(const Google__Protobuf__Any *any, const ProtobufCMessageDescriptor *want,
                       char *err, size_t errlen)
{
    snprintf(err, errlen, "Any of type %s: value does not decode as %s", any->type_url, want->name);
    return -EINVAL;
}

int config_any_unpack(const Google__Protobuf__Any *any, const ProtobufCMessageDescriptor *want,
                      ProtobufCMessage **out, char *err, size_t errlen)
{
    *out = NULL;
    if (any_check(any, want, err, errlen) < 0)
        return -EINVAL;
    ProtobufCMessage *msg = protobuf_c_message_unpack(want, NULL, any->value.len, any->value.data);
    if (msg == NULL)
        return undecodable(any, want, err, errlen);
    *out = msg;
    return 0;
}

int config_any_unpack_arena(const Google__Protobuf__Any *any,
                            const ProtobufCMessageDescriptor *want, ProtobufCMessage **out,
                            struct pb_arena **arena, char *err, size_t errlen)
{
    *out = NULL;
    *arena = NULL;
    if (any_check(any, want, err, errlen) < 0)
        return -EINVAL;
    *out = pb_arena_unpack(want, any->value.len, any->value.data, arena);
    return *out ? 0 : undecodable(any, want, err, errlen);
}
