/* Istio's mutual TLS as the view writes it: the workload's certificate and the trust bundle
 * named over SDS (ADS), a server's SPIFFE IDs expected by clients, a client certificate of the
 * trust domain required by servers. */
#include <stdio.h>

#include "envoy/extensions/transport_sockets/tls/v3/tls.pb-c.h"
#include "xds/view/view_internal.h"

void view_ads_source(pbw_t *w, const char *field)
{
    pbw_begin(w, field);
    pbw_empty(w, "ads");
    pbw_uint(w, "resource_api_version", ENVOY__CONFIG__CORE__V3__API_VERSION__V3);
    pbw_end(w);
}

static void sds(pbw_t *w, const char *field, const char *name)
{
    pbw_begin(w, field);
    pbw_string(w, "name", name);
    view_ads_source(w, "sds_config");
    pbw_end(w);
}

/* common_tls_context: the certificate, then the validation context with these SAN matchers. */
static void common_tls(pbw_t *w, const char *const *alpn, char *const *exact, size_t n_exact,
                       const char *prefix)
{
    pbw_begin(w, "common_tls_context");
    for (; alpn && *alpn; alpn++)
        pbw_string(w, "alpn_protocols", *alpn);
    sds(w, "tls_certificate_sds_secret_configs", VIEW_SECRET_CERT);
    pbw_begin(w, "combined_validation_context");
    pbw_begin(w, "default_validation_context");
    for (size_t i = 0; i < n_exact + (prefix != NULL); i++) {
        pbw_begin(w, "match_typed_subject_alt_names");
        pbw_uint(
            w, "san_type",
            ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__URI);
        pbw_begin(w, "matcher");
        if (i < n_exact)
            pbw_string(w, "exact", exact[i]);
        else
            pbw_string(w, "prefix", prefix);
        pbw_end(w);
        pbw_end(w);
    }
    pbw_end(w);
    sds(w, "validation_context_sds_secret_config", VIEW_SECRET_ROOT);
    pbw_end(w);
    pbw_end(w);
}

void view_upstream_tls(pbw_t *w, const char *sni, const char *alpn, char *const *sans,
                       size_t n_sans)
{
    const char *const list[] = {alpn, NULL};
    pbw_begin(w, "transport_socket");
    pbw_string(w, "name", "envoy.transport_sockets.tls");
    pbw_begin_any(w, "typed_config",
                  &envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__descriptor);
    common_tls(w, list, sans, n_sans, NULL);
    pbw_string(w, "sni", sni);
    pbw_end_any(w);
    pbw_end(w);
}

void view_downstream_tls(pbw_t *w, const char *trust_domain, const char *const *alpn)
{
    char prefix[300];
    snprintf(prefix, sizeof(prefix), "spiffe://%s/", trust_domain);
    pbw_begin(w, "transport_socket");
    pbw_string(w, "name", "envoy.transport_sockets.tls");
    pbw_begin_any(
        w, "typed_config",
        &envoy__extensions__transport_sockets__tls__v3__downstream_tls_context__descriptor);
    common_tls(w, alpn, NULL, 0, prefix);
    pbw_wrapped(w, "require_client_certificate", 1);
    pbw_end_any(w);
    pbw_end(w);
}
