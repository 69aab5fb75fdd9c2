/* TLS in the snapshot: Envoy's UpstreamTlsContext and DownstreamTlsContext turned into plain
 * tls_context_config_t (files read now, secrets named over SDS taken from the resource set,
 * every setting the TLS engine cannot honour rejected by name), and the engine configs built
 * from them. The TLS side of filter chain matching is in snapshot_tls_match.c. */
#include "xds/snapshot/snapshot_tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "envoy/config/core/v3/base.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb-c.h"
#include "certs/tls.h"
#include "xds/config/config.h"
#include "xds/snapshot/snapshot_build.h"

typedef Envoy__Extensions__TransportSockets__Tls__V3__UpstreamTlsContext upstream_msg_t;
typedef Envoy__Extensions__TransportSockets__Tls__V3__DownstreamTlsContext downstream_msg_t;
typedef Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext common_msg_t;
typedef Envoy__Extensions__TransportSockets__Tls__V3__CertificateValidationContext validation_msg_t;
typedef Envoy__Extensions__TransportSockets__Tls__V3__SubjectAltNameMatcher san_msg_t;
typedef Envoy__Extensions__TransportSockets__Tls__V3__TlsCertificate cert_msg_t;
typedef Envoy__Extensions__TransportSockets__Tls__V3__TlsParameters params_msg_t;
typedef Envoy__Type__Matcher__V3__StringMatcher string_matcher_msg_t;
typedef Envoy__Extensions__TransportSockets__Tls__V3__Secret secret_msg_t;
typedef Envoy__Extensions__TransportSockets__Tls__V3__SdsSecretConfig sds_msg_t;
typedef Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext__CombinedCertificateValidationContext
    combined_msg_t;

#define SECRET_CERTIFICATE                                                                         \
    ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_TLS_CERTIFICATE
#define SECRET_VALIDATION                                                                          \
    ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_VALIDATION_CONTEXT
typedef Envoy__Config__Core__V3__DataSource data_source_msg_t;

#define UPSTREAM_TLS_TYPE   "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
#define DOWNSTREAM_TLS_TYPE "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
#define RAW_BUFFER_TYPE     "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"

/* A certificate, key or trust bundle bigger than this is a wrong path, not PEM. */
#define TLS_MAX_FILE (4 << 20)
/* SNI and ALPN names are at most 255 bytes on the wire. */
#define TLS_MAX_NAME 255

/* Where errors go; every message starts "<owner>: transport_socket: ". */
typedef struct tls_parse {
    const char *what;
    char *err;
    size_t errlen;
    snap_build_t *build; /* the build: its engine configs, the set's secrets */
} tls_parse_t;

/* A field the snapshot refuses when it is set. */
typedef struct unsupported {
    bool set;
    const char *name;
} unsupported_t;

static int tfail(const tls_parse_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int tfail(const tls_parse_t *p, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(p->err, p->errlen, "%s: transport_socket: %s", p->what, msg);
    return -EINVAL;
}

static int reject_unsupported(const tls_parse_t *p, const char *prefix, const unsupported_t *u,
                              size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (u[i].set)
            return tfail(p, "%s%s is not supported", prefix, u[i].name);
    return 0;
}

static const char *type_name(const char *type_url)
{
    const char *slash = strrchr(type_url, '/');
    return slash ? slash + 1 : type_url;
}

/* Reads a whole regular file into out->data, NUL-terminated. out->len counts what was read so
 * far even on error, so a partly read key is still wiped when the config is freed. */
static int read_file(const tls_parse_t *p, const char *field, const char *path,
                     tls_config_data_t *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return tfail(p, "%s: cannot read '%s': %s", field, path, strerror(errno));
    int rc = 0;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = tfail(p, "%s: cannot read '%s': %s", field, path, strerror(errno));
        goto out_close;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = tfail(p, "%s: '%s' is not a regular file", field, path);
        goto out_close;
    }
    if (st.st_size > TLS_MAX_FILE) {
        rc = tfail(p, "%s: '%s' is larger than %d MiB", field, path, TLS_MAX_FILE >> 20);
        goto out_close;
    }
    size_t size = (size_t)st.st_size;
    out->data = malloc(size + 1);
    if (out->data == NULL) {
        rc = -ENOMEM;
        goto out_close;
    }
    out->len = 0;
    while (out->len < size) {
        ssize_t n = read(fd, out->data + out->len, size - out->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = tfail(p, "%s: cannot read '%s': %s", field, path, strerror(errno));
            goto out_close;
        }
        if (n == 0)
            break; /* shrank while we read: take what is there */
        out->len += (size_t)n;
    }
    out->data[out->len] = '\0';
    if (out->len == 0)
        rc = tfail(p, "%s: '%s' is empty", field, path);
out_close:
    close(fd);
    return rc;
}

static int copy_bytes(const void *src, size_t len, tls_config_data_t *out)
{
    out->data = malloc(len + 1);
    if (out->data == NULL)
        return -ENOMEM;
    if (len)
        memcpy(out->data, src, len);
    out->data[len] = '\0';
    out->len = len;
    return 0;
}

/* DataSource → bytes: filename (read now, name kept), inline_bytes, inline_string. */
static int read_data_source(const tls_parse_t *p, const char *field, const data_source_msg_t *ds,
                            tls_config_data_t *out)
{
    int rc;
    if (ds->watched_directory)
        return tfail(p, "%s.watched_directory is not supported", field);
    switch (ds->specifier_case) {
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_FILENAME:
        if (ds->filename == NULL || ds->filename[0] == '\0')
            return tfail(p, "%s.filename is empty", field);
        out->filename = strdup(ds->filename);
        if (out->filename == NULL)
            return -ENOMEM;
        return read_file(p, field, ds->filename, out);
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES:
        rc = copy_bytes(ds->inline_bytes.data, ds->inline_bytes.len, out);
        break;
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING:
        rc = copy_bytes(ds->inline_string, ds->inline_string ? strlen(ds->inline_string) : 0, out);
        break;
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_ENVIRONMENT_VARIABLE:
        return tfail(p,
                     "%s.environment_variable is not supported (filename, inline_bytes and "
                     "inline_string are)",
                     field);
    default:
        return tfail(p, "%s: one of filename, inline_bytes or inline_string is required", field);
    }
    if (rc == 0 && out->len == 0)
        return tfail(p, "%s: %s is empty", field,
                     ds->specifier_case ==
                             ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES
                         ? "inline_bytes"
                         : "inline_string");
    return rc;
}

static int copy_strings(char *const *src, size_t n, char ***dst, size_t *dst_n)
{
    if (n == 0)
        return 0;
    *dst = calloc(n, sizeof(char *));
    if (*dst == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        (*dst)[i] = strdup(src[i]);
        if ((*dst)[i] == NULL)
            return -ENOMEM;
        (*dst_n)++;
    }
    return 0;
}

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* A StringMatcher for SAN entries of type sm_out->type. The TLS engine (certs/identity.h) matches
 * exact and prefix, URI byte for byte and DNS without regard to case; anything else would not
 * be honoured, so it is refused here. */
static int parse_string_matcher(const tls_parse_t *p, const char *field,
                                const string_matcher_msg_t *sm, tls_config_san_matcher_t *out)
{
    const char *v;
    switch (sm ? sm->match_pattern_case : 0) {
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT:
        out->match = TLS_CONFIG_MATCH_EXACT;
        v = sm->exact;
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_PREFIX:
        out->match = TLS_CONFIG_MATCH_PREFIX;
        v = sm->prefix;
        if (v == NULL || v[0] == '\0')
            return tfail(p, "%s: prefix must not be empty", field);
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SUFFIX:
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_CONTAINS:
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SAFE_REGEX:
        return tfail(p, "%s: %s is not supported for subject alt names (exact and prefix are)",
                     field,
                     protobuf_c_message_descriptor_get_field(sm->base.descriptor,
                                                             (unsigned)sm->match_pattern_case)
                         ->name);
    default:
        return tfail(p, "%s: exact or prefix is required", field);
    }
    if (sm->ignore_case && out->type != TLS_CONFIG_SAN_DNS)
        return tfail(p,
                     "%s: ignore_case is not supported here (URI names compare exactly; DNS "
                     "names always ignore case)",
                     field);
    out->value = strdup(v ? v : "");
    out->ignore_case = sm->ignore_case;
    return out->value ? 0 : -ENOMEM;
}

static int parse_san_type(const tls_parse_t *p, const char *field, const san_msg_t *m,
                          tls_config_san_type_t *out)
{
    switch (m->san_type) {
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__DNS:
        *out = TLS_CONFIG_SAN_DNS;
        break;
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__URI:
        *out = TLS_CONFIG_SAN_URI;
        break;
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__EMAIL:
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__IP_ADDRESS:
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__OTHER_NAME:
        return tfail(
            p, "%s.san_type %s is not supported (URI and DNS are)", field,
            protobuf_c_enum_descriptor_get_value(
                &envoy__extensions__transport_sockets__tls__v3__subject_alt_name_matcher__san_type__descriptor,
                (int)m->san_type)
                ->name);
    default:
        return tfail(p, "%s.san_type is required (URI or DNS)", field);
    }
    if (m->oid && m->oid[0])
        return tfail(p, "%s.oid is not supported", field);
    return 0;
}

/* A CertificateValidationContext; f names it in errors ("common_tls_context.validation_context",
 * or the secret it came from). */
static int parse_validation(const tls_parse_t *p, const char *f, const validation_msg_t *v,
                            tls_context_config_t *t)
{
    const unsupported_t u[] = {
        {v->ca_certificate_provider_instance != NULL, "ca_certificate_provider_instance"},
        {v->system_root_certs != NULL, "system_root_certs"},
        {v->watched_directory != NULL, "watched_directory"},
        {v->n_verify_certificate_spki > 0, "verify_certificate_spki"},
        {v->n_verify_certificate_hash > 0, "verify_certificate_hash"},
        {v->require_signed_certificate_timestamp && v->require_signed_certificate_timestamp->value,
         "require_signed_certificate_timestamp"},
        {v->crl != NULL, "crl"},
        {v->allow_expired_certificate, "allow_expired_certificate"},
        {v->trust_chain_verification !=
             ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__CERTIFICATE_VALIDATION_CONTEXT__TRUST_CHAIN_VERIFICATION__VERIFY_TRUST_CHAIN,
         "trust_chain_verification other than VERIFY_TRUST_CHAIN"},
        {v->custom_validator_config != NULL, "custom_validator_config"},
        {v->only_verify_leaf_cert_crl, "only_verify_leaf_cert_crl"},
        {v->max_verify_depth != NULL, "max_verify_depth"},
    };
    char field[400];
    snprintf(field, sizeof(field), "%s.", f);
    int rc = reject_unsupported(p, field, u, sizeof(u) / sizeof(u[0]));
    snprintf(field, sizeof(field), "%s.trusted_ca", f);
    if (rc == 0 && v->trusted_ca)
        rc = read_data_source(p, field, v->trusted_ca, &t->trusted_ca);
    if (rc < 0)
        return rc;
    size_t n = v->n_match_typed_subject_alt_names + v->n_match_subject_alt_names;
    if (n == 0)
        return 0;
    /* Envoy refuses this too: a SAN check on an unverified chain proves nothing. */
    if (t->trusted_ca.data == NULL)
        return tfail(p, "%s: subject alt name matchers need trusted_ca", f);
    t->san_matchers = calloc(n, sizeof(*t->san_matchers));
    if (t->san_matchers == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < v->n_match_typed_subject_alt_names; i++) {
        const san_msg_t *m = v->match_typed_subject_alt_names[i];
        tls_config_san_matcher_t *sm = &t->san_matchers[t->n_san_matchers++];
        snprintf(field, sizeof(field), "%s.match_typed_subject_alt_names[%zu]", f, i);
        rc = parse_san_type(p, field, m, &sm->type);
        if (rc == 0) {
            snprintf(field, sizeof(field), "%s.match_typed_subject_alt_names[%zu].matcher", f, i);
            rc = parse_string_matcher(p, field, m->matcher, sm);
        }
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; i < v->n_match_subject_alt_names; i++) {
        tls_config_san_matcher_t *sm = &t->san_matchers[t->n_san_matchers++];
        sm->type = TLS_CONFIG_SAN_ANY;
        snprintf(field, sizeof(field), "%s.match_subject_alt_names[%zu]", f, i);
        rc = parse_string_matcher(p, field, v->match_subject_alt_names[i], sm);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int parse_version(int v, tls_config_version_t *out)
{
    switch (v) {
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLS_AUTO:
        *out = TLS_CONFIG_VERSION_AUTO;
        return 0;
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLSv1_0:
        *out = TLS_CONFIG_VERSION_1_0;
        return 0;
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLSv1_1:
        *out = TLS_CONFIG_VERSION_1_1;
        return 0;
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLSv1_2:
        *out = TLS_CONFIG_VERSION_1_2;
        return 0;
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__TLS_PROTOCOL__TLSv1_3:
        *out = TLS_CONFIG_VERSION_1_3;
        return 0;
    default:
        return -EINVAL;
    }
}

/* The TLS engine speaks TLS 1.2 only (mbedTLS 2.28 has no TLS 1.3): a range must include it. */
static int parse_params(const tls_parse_t *p, const params_msg_t *m, tls_context_config_t *t)
{
    static const char f[] = "common_tls_context.tls_params";
    const unsupported_t u[] = {
        {m->n_signature_algorithms > 0, "signature_algorithms"},
        {m->n_compliance_policies > 0, "compliance_policies"},
    };
    int rc = reject_unsupported(p, "common_tls_context.tls_params.", u, sizeof(u) / sizeof(u[0]));
    if (rc < 0)
        return rc;
    if (parse_version(m->tls_minimum_protocol_version, &t->min_version) < 0 ||
        parse_version(m->tls_maximum_protocol_version, &t->max_version) < 0)
        return tfail(p, "%s: unknown TLS protocol version", f);
    if (t->min_version == TLS_CONFIG_VERSION_1_3)
        return tfail(p,
                     "%s.tls_minimum_protocol_version TLSv1_3 is not supported: TLS 1.3 is not "
                     "available, TLS 1.2 is",
                     f);
    if (t->max_version != TLS_CONFIG_VERSION_AUTO && t->max_version < TLS_CONFIG_VERSION_1_2)
        return tfail(p,
                     "%s.tls_maximum_protocol_version below TLSv1_2 is not supported: TLS 1.2 is "
                     "the only version available",
                     f);
    if (t->max_version != TLS_CONFIG_VERSION_AUTO && t->min_version > t->max_version)
        return tfail(p, "%s: tls_minimum_protocol_version is above tls_maximum_protocol_version",
                     f);
    rc = copy_strings(m->cipher_suites, m->n_cipher_suites, &t->cipher_suites, &t->n_cipher_suites);
    if (rc == 0)
        rc = copy_strings(m->ecdh_curves, m->n_ecdh_curves, &t->ecdh_curves, &t->n_ecdh_curves);
    return rc;
}

/* A TlsCertificate; f names it in errors ("common_tls_context.tls_certificates[0]", or the
 * secret it came from). */
static int parse_certificate(const tls_parse_t *p, const char *f, const cert_msg_t *m,
                             tls_context_config_t *t)
{
    const unsupported_t u[] = {
        {m->pkcs12 != NULL, "pkcs12"},
        {m->watched_directory != NULL, "watched_directory"},
        {m->private_key_provider != NULL, "private_key_provider"},
        {m->password != NULL, "password (encrypted private keys)"},
        {m->ocsp_staple != NULL, "ocsp_staple"},
        {m->n_signed_certificate_timestamp > 0, "signed_certificate_timestamp"},
    };
    char field[400];
    snprintf(field, sizeof(field), "%s.", f);
    int rc = reject_unsupported(p, field, u, sizeof(u) / sizeof(u[0]));
    if (rc < 0)
        return rc;
    if (m->certificate_chain == NULL || m->private_key == NULL)
        return tfail(p, "%s: certificate_chain and private_key are both required", f);
    snprintf(field, sizeof(field), "%s.certificate_chain", f);
    rc = read_data_source(p, field, m->certificate_chain, &t->cert_chain);
    snprintf(field, sizeof(field), "%s.private_key", f);
    if (rc == 0)
        rc = read_data_source(p, field, m->private_key, &t->private_key);
    return rc;
}

/* The Secret of type want an SdsSecretConfig (borrowed; `field` names it) names: *out is the
 * set's, or NULL when the set lacks it, which leaves t awaiting its secret. origin (the
 * caller's) names the secret for errors about its fields. */
static int sds_secret(const tls_parse_t *p, const char *field, const sds_msg_t *sds, int want,
                      const secret_msg_t **out, char *origin, size_t olen, tls_context_config_t *t)
{
    char serr[500];
    int rc = snapshot_sds_secret(p->build, sds, want, out, origin, olen, serr, sizeof(serr));
    if (rc == -ENOMEM)
        return rc;
    if (rc < 0)
        return tfail(p, "%s: %s", field, serr);
    if (*out == NULL)
        t->awaiting_secret = true;
    return 0;
}

/* The combined validation context: its default merged with the context of the secret it names,
 * as Envoy merges them. */
static int parse_combined(const tls_parse_t *p, const combined_msg_t *c, tls_context_config_t *t)
{
    static const char f[] =
        "common_tls_context.combined_validation_context.validation_context_sds_secret_config";
    if (c->validation_context_certificate_provider ||
        c->validation_context_certificate_provider_instance)
        return tfail(p, "common_tls_context.combined_validation_context: certificate providers "
                        "are not supported (validation_context_sds_secret_config is)");
    if (c->validation_context_sds_secret_config == NULL)
        return tfail(p, "%s is required", f);
    const secret_msg_t *s = NULL;
    char origin[300], field[700];
    int rc = sds_secret(p, f, c->validation_context_sds_secret_config, SECRET_VALIDATION, &s,
                        origin, sizeof(origin), t);
    if (rc < 0 || s == NULL)
        return rc;
    ProtobufCMessage *merged = NULL;
    const ProtobufCMessage *dflt =
        c->default_validation_context ? &c->default_validation_context->base : NULL;
    if (snapshot_sds_merge_validation(dflt, &s->validation_context->base, &merged) < 0)
        return -ENOMEM;
    snprintf(field, sizeof(field),
             "common_tls_context.combined_validation_context (default_validation_context merged "
             "with %s)",
             origin);
    rc = parse_validation(p, field, (const validation_msg_t *)merged, t);
    protobuf_c_message_free_unpacked(merged, NULL);
    return rc;
}

static int parse_validation_type(const tls_parse_t *p, const common_msg_t *m,
                                 tls_context_config_t *t)
{
    static const char f[] = "common_tls_context.validation_context_sds_secret_config";
    const secret_msg_t *s = NULL;
    char origin[300], field[400];
    int rc;
    switch (m->validation_context_type_case) {
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE__NOT_SET:
        return 0;
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT:
        return parse_validation(p, "common_tls_context.validation_context", m->validation_context,
                                t);
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT_SDS_SECRET_CONFIG:
        rc = sds_secret(p, f, m->validation_context_sds_secret_config, SECRET_VALIDATION, &s,
                        origin, sizeof(origin), t);
        if (rc < 0 || s == NULL)
            return rc;
        snprintf(field, sizeof(field), "%s: %s: validation_context", f, origin);
        return parse_validation(p, field, s->validation_context, t);
    case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_COMBINED_VALIDATION_CONTEXT:
        return parse_combined(p, m->combined_validation_context, t);
    default:
        return tfail(p, "common_tls_context: certificate providers for the validation context are "
                        "not supported (give validation_context or SDS)");
    }
}

/* The one certificate: inline, or the secret the one tls_certificate_sds_secret_configs entry
 * names. */
static int parse_certificates(const tls_parse_t *p, const common_msg_t *m, tls_context_config_t *t)
{
    static const char f[] = "common_tls_context.tls_certificate_sds_secret_configs[0]";
    if (m->n_tls_certificates == 1)
        return parse_certificate(p, "common_tls_context.tls_certificates[0]",
                                 m->tls_certificates[0], t);
    if (m->n_tls_certificate_sds_secret_configs == 0)
        return 0;
    const secret_msg_t *s = NULL;
    char origin[300], field[400];
    int rc = sds_secret(p, f, m->tls_certificate_sds_secret_configs[0], SECRET_CERTIFICATE, &s,
                        origin, sizeof(origin), t);
    if (rc < 0 || s == NULL)
        return rc;
    snprintf(field, sizeof(field), "%s: %s: tls_certificate", f, origin);
    return parse_certificate(p, field, s->tls_certificate, t);
}

static int parse_common(const tls_parse_t *p, const common_msg_t *m, tls_context_config_t *t)
{
    if (m == NULL)
        return 0;
    const unsupported_t u[] = {
        {m->tls_certificate_provider_instance != NULL, "tls_certificate_provider_instance"},
        {m->custom_tls_certificate_selector != NULL, "custom_tls_certificate_selector"},
        {m->tls_certificate_certificate_provider != NULL, "tls_certificate_certificate_provider"},
        {m->tls_certificate_certificate_provider_instance != NULL,
         "tls_certificate_certificate_provider_instance"},
        {m->custom_handshaker != NULL, "custom_handshaker"},
        {m->key_log != NULL, "key_log"},
        {m->n_tls_certificates + m->n_tls_certificate_sds_secret_configs > 1,
         "more than one certificate in tls_certificates and tls_certificate_sds_secret_configs"},
    };
    int rc = reject_unsupported(p, "common_tls_context.", u, sizeof(u) / sizeof(u[0]));
    if (rc == 0)
        rc = parse_validation_type(p, m, t);
    if (rc == 0 && m->tls_params)
        rc = parse_params(p, m->tls_params, t);
    if (rc == 0)
        rc = parse_certificates(p, m, t);
    for (size_t i = 0; rc == 0 && i < m->n_alpn_protocols; i++) {
        size_t len = strlen(m->alpn_protocols[i]);
        if (len == 0 || len > TLS_MAX_NAME)
            return tfail(p, "common_tls_context.alpn_protocols[%zu]: must be 1 to %d bytes", i,
                         TLS_MAX_NAME);
    }
    if (rc == 0)
        rc = copy_strings(m->alpn_protocols, m->n_alpn_protocols, &t->alpn, &t->n_alpn);
    return rc;
}

static int parse_upstream(const tls_parse_t *p, const upstream_msg_t *m, tls_context_config_t *t)
{
    const unsupported_t u[] = {
        {m->auto_host_sni, "auto_host_sni"},
        {m->auto_sni_san_validation, "auto_sni_san_validation"},
        {m->allow_renegotiation, "allow_renegotiation (TLS renegotiation)"},
    };
    int rc = reject_unsupported(p, "", u, sizeof(u) / sizeof(u[0]));
    if (rc == 0)
        rc = parse_common(p, m->common_tls_context, t);
    if (rc < 0)
        return rc;
    /* Envoy would connect without verifying the server; the TLS engine always verifies. (A
     * context awaiting a secret is checked once the secret is there.) */
    if (t->trusted_ca.data == NULL && !t->awaiting_secret)
        return tfail(p, "an UpstreamTlsContext needs common_tls_context.validation_context."
                        "trusted_ca (servers are always verified)");
    if (m->sni && m->sni[0]) {
        if (strlen(m->sni) > TLS_MAX_NAME)
            return tfail(p, "sni: longer than %d bytes", TLS_MAX_NAME);
        t->sni = strdup(m->sni);
        if (t->sni == NULL)
            return -ENOMEM;
    }
    t->max_session_keys = m->max_session_keys ? m->max_session_keys->value : 1;
    return 0;
}

static int parse_downstream(const tls_parse_t *p, const downstream_msg_t *m,
                            tls_context_config_t *t)
{
    const unsupported_t u[] = {
        {m->session_ticket_keys_type_case ==
             ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__DOWNSTREAM_TLS_CONTEXT__SESSION_TICKET_KEYS_TYPE_SESSION_TICKET_KEYS,
         "session_ticket_keys"},
        {m->session_ticket_keys_type_case ==
             ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__DOWNSTREAM_TLS_CONTEXT__SESSION_TICKET_KEYS_TYPE_SESSION_TICKET_KEYS_SDS_SECRET_CONFIG,
         "session_ticket_keys_sds_secret_config"},
        {m->session_timeout != NULL, "session_timeout"},
        {m->ocsp_staple_policy !=
             ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__DOWNSTREAM_TLS_CONTEXT__OCSP_STAPLE_POLICY__LENIENT_STAPLING,
         "ocsp_staple_policy other than LENIENT_STAPLING"},
    };
    int rc = reject_unsupported(p, "", u, sizeof(u) / sizeof(u[0]));
    if (rc == 0)
        rc = parse_common(p, m->common_tls_context, t);
    if (rc < 0)
        return rc;
    if (t->cert_chain.data == NULL && !t->awaiting_secret)
        return tfail(p, "common_tls_context.tls_certificates: a DownstreamTlsContext needs a "
                        "certificate and its private key");
    t->require_client_certificate =
        m->require_client_certificate && m->require_client_certificate->value;
    if (t->require_client_certificate && t->trusted_ca.data == NULL && !t->awaiting_secret)
        return tfail(p, "require_client_certificate needs "
                        "common_tls_context.validation_context.trusted_ca to verify it with");
    t->require_sni = m->require_sni && m->require_sni->value;
    t->disable_stateless_resumption =
        m->session_ticket_keys_type_case ==
            ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__DOWNSTREAM_TLS_CONTEXT__SESSION_TICKET_KEYS_TYPE_DISABLE_STATELESS_SESSION_RESUMPTION &&
        m->disable_stateless_session_resumption;
    t->disable_stateful_resumption = m->disable_stateful_session_resumption;
    return 0;
}

/* Builds the engine's config from t: the certificate pair and trust bundle are parsed and checked
 * here (key matches, chain verifies, not expired), so a bad pair fails the snapshot and the
 * running one stays. */
static int build_engine(const tls_parse_t *p, tls_context_config_t *t)
{
    enum { MAX_MATCHERS = 64, MAX_LIST = 16 };
    identity_matcher_t m[MAX_MATCHERS];
    tls_suite_t suites[MAX_LIST];
    tls_group_t groups[MAX_LIST];
    size_t nm = 0, ns = 0, ng = 0;
    for (size_t i = 0; i < t->n_san_matchers; i++) {
        const tls_config_san_matcher_t *sm = &t->san_matchers[i];
        if (nm + 2 > MAX_MATCHERS)
            return tfail(p, "more than %d subject alt name matchers", MAX_MATCHERS / 2);
        identity_match_kind_t kind =
            sm->match == TLS_CONFIG_MATCH_PREFIX ? IDENTITY_MATCH_PREFIX : IDENTITY_MATCH_EXACT;
        identity_san_type_t type = sm->type == TLS_CONFIG_SAN_DNS   ? IDENTITY_SAN_DNS
                                   : sm->type == TLS_CONFIG_SAN_URI ? IDENTITY_SAN_URI
                                                                    : IDENTITY_SAN_ANY;
        m[nm++] = (identity_matcher_t){type, kind, sm->value};
    }
    for (size_t i = 0; i < t->n_cipher_suites && ns < MAX_LIST; i++) {
        int v = tls_suite_from_name(t->cipher_suites[i]);
        if (v >= 0)
            suites[ns++] = (tls_suite_t)v;
    }
    if (t->n_cipher_suites && ns == 0)
        return tfail(p,
                     "tls_params.cipher_suites: none is supported (ECDHE-ECDSA-AES128-GCM-SHA256 "
                     "and ECDHE-ECDSA-CHACHA20-POLY1305 are)");
    for (size_t i = 0; i < t->n_ecdh_curves && ng < MAX_LIST; i++) {
        int v = tls_group_from_name(t->ecdh_curves[i]);
        if (v >= 0)
            groups[ng++] = (tls_group_t)v;
    }
    if (t->n_ecdh_curves && ng == 0)
        return tfail(p, "tls_params.ecdh_curves: none is supported (X25519 and P-256 are)");
    tls_config_opts_t o = {
        .role = t->role == TLS_CONFIG_CLIENT ? TLS_ROLE_CLIENT : TLS_ROLE_SERVER,
        .cert_chain = {t->cert_chain.data, t->cert_chain.len, NULL},
        .private_key = {t->private_key.data, t->private_key.len, NULL},
        .trust_bundle = {t->trusted_ca.data, t->trusted_ca.len, NULL},
        .require_client_cert = t->require_client_certificate,
        .alpn = (const char *const *)t->alpn,
        .alpn_count = t->n_alpn,
        .suites = ns ? suites : NULL,
        .suite_count = ns,
        .groups = ng ? groups : NULL,
        .group_count = ng,
        .output_high_water = 64u << 20, /* owners pace writes by tls_io_queue_size */
        .disable_tickets = t->role == TLS_CONFIG_CLIENT ? t->max_session_keys == 0
                                                        : t->disable_stateless_resumption,
    };
    /* The peer's expected identities (and the SNI) are per session: contexts that differ only
     * in them share one engine config. */
    if (nm) {
        t->peer_ids = malloc(nm * sizeof(*t->peer_ids));
        if (t->peer_ids == NULL)
            return tfail(p, "out of memory");
        memcpy(t->peer_ids, m, nm * sizeof(*m));
        t->n_peer_ids = nm;
    }
    char eerr[300];
    int rc = snapshot_tls_engine_get(p->build, &o, &t->engine, eerr, sizeof(eerr));
    if (rc == 0 && t->role == TLS_CONFIG_SERVER && t->n_alpn) {
        o.alpn = NULL;
        o.alpn_count = 0;
        rc = snapshot_tls_engine_get(p->build, &o, &t->engine_no_alpn, eerr, sizeof(eerr));
    }
    if (rc == -ENOMEM)
        return tfail(p, "out of memory");
    if (rc < 0) {
        /* The engine names items "(inline PEM)": say which files they came from. */
        char files[600] = "";
        size_t n = 0;
        const struct {
            const char *field, *path;
        } src[] = {{"certificate_chain", t->cert_chain.filename},
                   {"private_key", t->private_key.filename},
                   {"trusted_ca", t->trusted_ca.filename}};
        for (size_t i = 0; i < 3 && n < sizeof(files); i++)
            if (src[i].path)
                n += (size_t)snprintf(files + n, sizeof(files) - n, "%s%s %s",
                                      n ? ", " : " (files: ", src[i].field, src[i].path);
        if (n && n < sizeof(files) - 1)
            snprintf(files + n, sizeof(files) - n, ")");
        return tfail(p, "%s%s", eerr, files);
    }
    return 0;
}

int snapshot_tls_parse(const Envoy__Config__Core__V3__TransportSocket *ts, tls_config_role_t role,
                       const char *what, snap_build_t *build, tls_context_config_t **out, char *err,
                       size_t errlen)
{
    const tls_parse_t p = {what, err, errlen, build};
    *out = NULL;
    const char *name = ts->name ? ts->name : "";
    const char *type = ts->typed_config && ts->typed_config->type_url
                           ? type_name(ts->typed_config->type_url)
                           : NULL;
    const char *want = role == TLS_CONFIG_CLIENT ? UPSTREAM_TLS_TYPE : DOWNSTREAM_TLS_TYPE;
    /* The type URL decides, as in Envoy; the name only without one (or with an Empty). */
    if (type && strcmp(type, "google.protobuf.Empty") == 0)
        type = NULL;
    if (type == NULL) {
        if (strcmp(name, "envoy.transport_sockets.raw_buffer") == 0)
            return 0;
        if (strcmp(name, "envoy.transport_sockets.tls") == 0)
            return tfail(&p, "'%s' needs a typed_config (%s)", name, want);
        return tfail(&p,
                     "'%s' is not supported (envoy.transport_sockets.tls and "
                     "envoy.transport_sockets.raw_buffer are)",
                     name);
    }
    if (strcmp(type, RAW_BUFFER_TYPE) == 0)
        return 0;
    if (strcmp(type, UPSTREAM_TLS_TYPE) != 0 && strcmp(type, DOWNSTREAM_TLS_TYPE) != 0)
        return tfail(&p,
                     "typed_config type %s is not supported (UpstreamTlsContext, "
                     "DownstreamTlsContext and RawBuffer are)",
                     type);
    if (strcmp(type, want) != 0)
        return tfail(&p, "%s takes %s, not %s",
                     role == TLS_CONFIG_CLIENT ? "a cluster" : "a filter chain", want, type);
    const ProtobufCMessageDescriptor *desc =
        role == TLS_CONFIG_CLIENT
            ? &envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__descriptor
            : &envoy__extensions__transport_sockets__tls__v3__downstream_tls_context__descriptor;
    ProtobufCMessage *msg = NULL;
    char aerr[300];
    if (config_any_unpack(ts->typed_config, desc, &msg, aerr, sizeof(aerr)) < 0)
        return tfail(&p, "typed_config: %s", aerr);
    tls_context_config_t *t = calloc(1, sizeof(*t));
    int rc = -ENOMEM;
    if (t) {
        t->role = role;
        rc = role == TLS_CONFIG_CLIENT ? parse_upstream(&p, (const upstream_msg_t *)msg, t)
                                       : parse_downstream(&p, (const downstream_msg_t *)msg, t);
    }
    protobuf_c_message_free_unpacked(msg, NULL);
    /* Awaiting a secret: no engine until it comes (the data plane fails its connections). */
    if (rc == 0 && !t->awaiting_secret)
        rc = build_engine(&p, t);
    if (rc < 0) {
        snapshot_tls_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int snapshot_tls_check_secret(const struct Envoy__Extensions__TransportSockets__Tls__V3__Secret *s,
                              char *err, size_t errlen)
{
    static const char what[] = "secret";
    snap_build_t b = {0}; /* its engine cache alone: the check builds one engine */
    const tls_parse_t p = {what, err, errlen, &b};
    bool cert = s->type_case == SECRET_CERTIFICATE;
    /* A validation context without a trust bundle (SAN matchers for a combined context) has
     * no engine of its own to make; other secret types are not used by TLS contexts. */
    if (!cert && (s->type_case != SECRET_VALIDATION || s->validation_context == NULL))
        return 0;
    tls_context_config_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    t->role = cert ? TLS_CONFIG_SERVER : TLS_CONFIG_CLIENT;
    int rc = cert ? parse_certificate(&p, "tls_certificate", s->tls_certificate, t)
                  : parse_validation(&p, "validation_context", s->validation_context, t);
    if (rc == 0 && (cert || t->trusted_ca.data))
        rc = build_engine(&p, t);
    snapshot_tls_free(t);
    snapshot_tls_cache_free(&b.tls_cache);
    /* The errors of a transport socket are prefixed for one; a secret is none. */
    size_t skip = strlen(what) + strlen(": transport_socket: ");
    if (rc < 0 && strncmp(err, "secret: transport_socket: ", skip) == 0)
        memmove(err, err + skip, strlen(err + skip) + 1);
    return rc;
}

static void free_data(tls_config_data_t *d, bool secret)
{
    if (secret && d->data)
        explicit_bzero(d->data, d->len);
    free(d->data);
    free(d->filename);
}

void snapshot_tls_free(tls_context_config_t *t)
{
    if (t == NULL)
        return;
    free_data(&t->cert_chain, false);
    free_data(&t->private_key, true);
    free_data(&t->trusted_ca, false);
    for (size_t i = 0; i < t->n_san_matchers; i++)
        free(t->san_matchers[i].value);
    free(t->san_matchers);
    free_strings(t->alpn, t->n_alpn);
    free_strings(t->cipher_suites, t->n_cipher_suites);
    free_strings(t->ecdh_curves, t->n_ecdh_curves);
    free(t->sni);
    tls_config_unref(t->engine);
    tls_config_unref(t->engine_no_alpn);
    free(t->peer_ids);
    free(t);
}
