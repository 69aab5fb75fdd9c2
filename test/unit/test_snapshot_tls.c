/* TLS in the snapshot: Envoy's UpstreamTlsContext and DownstreamTlsContext load into plain
 * structs with their files read and the TLS engine's config built from them (so a key that does
 * not fit its certificate, an expired certificate or one the trust bundle does not vouch for fails
 * the snapshot), the tls_inspector and the TLS side of filter chain matching work the Envoy way,
 * what the TLS engine cannot honour is refused by name, and /config_dump never shows a private
 * key. The certificates are the committed fixtures of test/data/certs (see gen.sh there). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cmocka.h>

#include "certs/tls.h"
#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "proxy/http/hcm.h"
#include "xds/config/config.h"
#include "proxy/listener/chain_match.h"
#include "xds/snapshot/snapshot.h"
#include "test/unit/snap_opts.h"

#define CERTS_DIR "test/data/certs"

/* The PEM fixtures, read once in setup. In YAML templates "@NAME@" stands for fixture NAME as a
 * double-quoted YAML string and "@NAME_B64@" for the base64 of its bytes (for inline_bytes);
 * "@DIR@" is the temporary directory holding cert.pem, key.pem and ca.pem. */
enum {
    CERT,           /* spiffe://cluster.local/ns/default/sa/server, issued by root-a */
    KEY,            /* its key */
    CA,             /* root-a: the cluster.local root */
    OTHER_CERT,     /* spiffe://other.local/ns/default/sa/server, issued by root-b */
    OTHER_KEY,      /* its key */
    OTHER_CA,       /* root-b: the other.local root */
    MISMATCHED_KEY, /* a key no certificate belongs to */
    EXPIRED_CERT,   /* issued by root-a, valid only during 2000 */
    EXPIRED_KEY,
    FUTURE_CERT, /* issued by root-a, valid from 2090 */
    FUTURE_KEY,
    N_PEMS
};

static struct {
    const char *token;
    const char *file;
    char *pem;
} pems[N_PEMS] = {
    [CERT] = {"CERT", "server.pem", NULL},
    [KEY] = {"KEY", "server.key", NULL},
    [CA] = {"CA", "root-a.pem", NULL},
    [OTHER_CERT] = {"OTHER_CERT", "other-server.pem", NULL},
    [OTHER_KEY] = {"OTHER_KEY", "other-server.key", NULL},
    [OTHER_CA] = {"OTHER_CA", "root-b.pem", NULL},
    [MISMATCHED_KEY] = {"MISMATCHED_KEY", "mismatched.key", NULL},
    [EXPIRED_CERT] = {"EXPIRED_CERT", "expired.pem", NULL},
    [EXPIRED_KEY] = {"EXPIRED_KEY", "expired.key", NULL},
    [FUTURE_CERT] = {"FUTURE_CERT", "future.pem", NULL},
    [FUTURE_KEY] = {"FUTURE_KEY", "future.key", NULL},
};

#define PEM(i) ((const char *)pems[i].pem)

#define UPSTREAM_TLS                                                                               \
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
#define DOWNSTREAM_TLS                                                                             \
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"

#define TCP_PROXY                                                                                  \
    "      - name: envoy.filters.network.tcp_proxy\n"                                              \
    "        typed_config:\n"                                                                      \
    "          '@type': "                                                                          \
    "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n"                 \
    "          stat_prefix: app\n"                                                                 \
    "          cluster: app\n"

#define TLS_INSPECTOR                                                                              \
    "    - name: envoy.filters.listener.tls_inspector\n"                                           \
    "      typed_config:\n"                                                                        \
    "        '@type': "                                                                            \
    "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector\n"

static char dir[64];

typedef struct fixture {
    stats_store_t *stats;
    snapshot_t *snap;
    char err[1024];
} fixture_t;

/* The whole of a file, NUL-terminated; NULL if it cannot be read. */
static char *read_whole(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *out = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&out, &len);
    char buf[4096];
    size_t n;
    while (m && (n = fread(buf, 1, sizeof(buf), f)) > 0)
        fwrite(buf, 1, n, m);
    bool failed = ferror(f) || m == NULL;
    fclose(f);
    if (m)
        fclose(m);
    if (failed || len == 0) {
        free(out);
        return NULL;
    }
    return out;
}

static void write_file(const char *name, const char *text)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    char path[256];
    for (size_t i = 0; i < N_PEMS; i++) {
        snprintf(path, sizeof(path), "%s/%s", CERTS_DIR, pems[i].file);
        if ((pems[i].pem = read_whole(path)) == NULL) {
            fprintf(stderr, "cannot read %s (run from the repository root)\n", path);
            return -1;
        }
    }
    snprintf(dir, sizeof(dir), "/tmp/remora-tls-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    write_file("cert.pem", PEM(CERT));
    write_file("key.pem", PEM(KEY));
    write_file("ca.pem", PEM(CA));
    write_file("empty.pem", "");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    const char *names[] = {"cert.pem", "key.pem", "ca.pem", "empty.pem"};
    char path[128];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    for (size_t i = 0; i < N_PEMS; i++) {
        free(pems[i].pem);
        pems[i].pem = NULL;
    }
    return rmdir(dir);
}

/* s as a YAML double-quoted scalar. */
static void put_quoted(FILE *m, const char *s)
{
    fputc('"', m);
    for (; *s; s++) {
        if (*s == '\n')
            fputs("\\n", m);
        else if (*s == '"' || *s == '\\')
            fprintf(m, "\\%c", *s);
        else
            fputc(*s, m);
    }
    fputc('"', m);
}

/* s[0..len) as standard padded base64, double-quoted. */
static void put_base64(FILE *m, const char *s, size_t len)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *b = (const unsigned char *)s;
    fputc('"', m);
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)b[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)b[i + 1] << 8;
        if (i + 2 < len)
            v |= b[i + 2];
        fputc(abc[(v >> 18) & 63], m);
        fputc(abc[(v >> 12) & 63], m);
        fputc(i + 1 < len ? abc[(v >> 6) & 63] : '=', m);
        fputc(i + 2 < len ? abc[v & 63] : '=', m);
    }
    fputc('"', m);
}

/* Writes what "@<token>@" stands for; false when token names nothing (a '@' of the YAML). */
static bool put_token(FILE *m, const char *token, size_t len)
{
    if (len == 3 && memcmp(token, "DIR", 3) == 0) {
        fputs(dir, m);
        return true;
    }
    for (size_t i = 0; i < N_PEMS; i++) {
        size_t n = strlen(pems[i].token);
        if (len < n || memcmp(token, pems[i].token, n) != 0)
            continue;
        if (len == n) {
            put_quoted(m, PEM(i));
            return true;
        }
        if (len == n + 4 && memcmp(token + n, "_B64", 4) == 0) {
            put_base64(m, PEM(i), strlen(PEM(i)));
            return true;
        }
    }
    return false;
}

/* The template with every "@DIR@", "@NAME@" and "@NAME_B64@" replaced (see pems). */
static char *expand(const char *text)
{
    char *out = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&out, &len);
    assert_non_null(m);
    for (const char *p = text; *p;) {
        const char *end = *p == '@' ? strchr(p + 1, '@') : NULL;
        if (end && put_token(m, p + 1, (size_t)(end - p - 1))) {
            p = end + 1;
            continue;
        }
        fputc(*p++, m);
    }
    fclose(m);
    return out;
}

static int build(fixture_t *f, const char *yaml_template)
{
    char *yaml = expand(yaml_template);
    ProtobufCMessage *msg = NULL;
    f->stats = stats_store_new(2);
    int rc = config_yaml_load(yaml, strlen(yaml), "test.yaml",
                              &envoy__config__bootstrap__v3__bootstrap__descriptor, &msg, f->err,
                              sizeof(f->err));
    free(yaml);
    if (rc < 0)
        return rc;
    return snapshot_build(msg, &test_snap_opts, f->stats, 2, &f->snap, f->err, sizeof(f->err));
}

static void release(fixture_t *f)
{
    snapshot_unref(f->snap);
    stats_store_free(f->stats);
}

/* An Istio-shaped sidecar: an mTLS cluster, and an inbound listener that sniffs TLS and sends
 * mTLS to one chain and plaintext to another. */
static const char *const mesh =
    "static_resources:\n"
    "  clusters:\n"
    "  - name: app\n"
    "    load_assignment:\n"
    "      endpoints:\n"
    "      - lb_endpoints:\n"
    "        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8080}}}\n"
    "  - name: outbound|80||b.default.svc.cluster.local\n"
    "    load_assignment:\n"
    "      endpoints:\n"
    "      - lb_endpoints:\n"
    "        - endpoint: {address: {socket_address: {address: 198.18.0.7, port_value: 15006}}}\n"
    "    transport_socket:\n"
    "      name: envoy.transport_sockets.tls\n"
    "      typed_config:\n"
    "        '@type': " UPSTREAM_TLS "\n"
    "        sni: outbound_.80_._.b.default.svc.cluster.local\n"
    "        common_tls_context:\n"
    "          tls_params:\n"
    "            tls_minimum_protocol_version: TLSv1_2\n"
    "            cipher_suites: [ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-ECDSA-CHACHA20-POLY1305]\n"
    "            ecdh_curves: [X25519, P-256]\n"
    "          alpn_protocols: [istio-peer-exchange, istio]\n"
    "          tls_certificates:\n"
    "          - certificate_chain: {filename: '@DIR@/cert.pem'}\n"
    "            private_key: {filename: '@DIR@/key.pem'}\n"
    "          validation_context:\n"
    "            trusted_ca: {filename: '@DIR@/ca.pem'}\n"
    "            match_subject_alt_names:\n"
    "            - exact: spiffe://cluster.local/ns/default/sa/b\n"
    "  listeners:\n"
    "  - name: virtualInbound\n"
    "    address: {socket_address: {address: 0.0.0.0, port_value: 15006}}\n"
    "    listener_filters:\n"
    "    - name: envoy.filters.listener.original_dst\n"
    "      typed_config:\n"
    "        '@type': "
    "type.googleapis.com/"
    "envoy.extensions.filters.listener.original_dst.v3.OriginalDst\n" TLS_INSPECTOR
    "      filter_disabled: {destination_port_range: {start: 3306, end: 3307}}\n"
    "    filter_chains:\n"
    "    - name: mtls\n"
    "      filter_chain_match:\n"
    "        transport_protocol: tls\n"
    "        application_protocols: [istio-peer-exchange, istio]\n"
    "      transport_socket:\n"
    "        name: envoy.transport_sockets.tls\n"
    "        typed_config:\n"
    "          '@type': " DOWNSTREAM_TLS "\n"
    "          require_client_certificate: true\n"
    "          common_tls_context:\n"
    "            alpn_protocols: [h2, http/1.1]\n"
    "            tls_certificates:\n"
    "            - certificate_chain: {filename: '@DIR@/cert.pem'}\n"
    "              private_key: {filename: '@DIR@/key.pem'}\n"
    "            validation_context:\n"
    "              trusted_ca: {filename: '@DIR@/ca.pem'}\n"
    "              match_typed_subject_alt_names:\n"
    "              - san_type: URI\n"
    "                matcher: {prefix: 'spiffe://cluster.local/'}\n"
    "      filters:\n" TCP_PROXY "    - name: plaintext\n"
    "      filter_chain_match: {transport_protocol: raw_buffer}\n"
    "      filters:\n" TCP_PROXY;

static void assert_data(const tls_config_data_t *d, const char *text, const char *file)
{
    assert_non_null(d->data);
    assert_int_equal(d->len, strlen(text));
    assert_memory_equal(d->data, text, d->len);
    assert_int_equal(d->data[d->len], '\0');
    if (file == NULL) {
        assert_null(d->filename);
    } else {
        char path[128];
        snprintf(path, sizeof(path), "%s/%s", dir, file);
        assert_string_equal(d->filename, path);
    }
}

static void test_upstream_tls_context_lands_on_the_cluster(void **state)
{
    (void)state;
    fixture_t f = {0};
    if (build(&f, mesh) != 0)
        fail_msg("%s", f.err);
    assert_null(snapshot_find_cluster(f.snap, "app")->tls);
    const tls_context_config_t *t =
        snapshot_find_cluster(f.snap, "outbound|80||b.default.svc.cluster.local")->tls;
    assert_non_null(t);
    assert_int_equal(t->role, TLS_CONFIG_CLIENT);
    assert_data(&t->cert_chain, PEM(CERT), "cert.pem");
    assert_data(&t->private_key, PEM(KEY), "key.pem");
    assert_data(&t->trusted_ca, PEM(CA), "ca.pem");
    assert_string_equal(t->sni, "outbound_.80_._.b.default.svc.cluster.local");
    assert_int_equal(t->max_session_keys, 1);
    assert_int_equal(t->min_version, TLS_CONFIG_VERSION_1_2);
    assert_int_equal(t->max_version, TLS_CONFIG_VERSION_AUTO);
    assert_int_equal(t->n_cipher_suites, 2);
    assert_string_equal(t->cipher_suites[1], "ECDHE-ECDSA-CHACHA20-POLY1305");
    assert_int_equal(t->n_ecdh_curves, 2);
    assert_string_equal(t->ecdh_curves[0], "X25519");
    assert_int_equal(t->n_alpn, 2);
    assert_string_equal(t->alpn[0], "istio-peer-exchange");
    assert_int_equal(t->n_san_matchers, 1);
    assert_int_equal(t->san_matchers[0].type, TLS_CONFIG_SAN_ANY);
    assert_int_equal(t->san_matchers[0].match, TLS_CONFIG_MATCH_EXACT);
    assert_string_equal(t->san_matchers[0].value, "spiffe://cluster.local/ns/default/sa/b");
    /* The engine's config holds the same certificate and trust bundle. */
    assert_non_null(t->engine);
    assert_int_equal(tls_config_role(t->engine), TLS_ROLE_CLIENT);
    identity_cert_info_t info;
    assert_int_equal(tls_config_cert_info(t->engine, false, 0, time(NULL), &info), 0);
    assert_string_equal(info.spiffe_id, "spiffe://cluster.local/ns/default/sa/server");
    identity_cert_info_free(&info);
    assert_int_equal(tls_config_cert_info(t->engine, true, 0, time(NULL), &info), 0);
    assert_string_equal(info.spiffe_id, "spiffe://cluster.local");
    identity_cert_info_free(&info);
    assert_int_equal(tls_config_cert_info(t->engine, true, 1, time(NULL), &info), -ENOENT);
    release(&f);
}

static void test_downstream_tls_context_lands_on_the_chain(void **state)
{
    (void)state;
    fixture_t f = {0};
    if (build(&f, mesh) != 0)
        fail_msg("%s", f.err);
    const snap_listener_t *l = &f.snap->listeners[0];
    assert_true(l->tls_inspector);
    assert_non_null(l->tls_inspector_disabled);
    assert_true(chain_pred_eval(l->tls_inspector_disabled, 3306));
    assert_false(chain_pred_eval(l->tls_inspector_disabled, 8080));
    assert_int_equal(l->chains[0].transport, SNAP_TRANSPORT_TLS);
    assert_int_equal(l->chains[1].transport, SNAP_TRANSPORT_RAW_BUFFER);
    assert_null(l->chains[1].tls);
    const tls_context_config_t *t = l->chains[0].tls;
    assert_non_null(t);
    assert_int_equal(t->role, TLS_CONFIG_SERVER);
    assert_true(t->require_client_certificate);
    assert_false(t->require_sni);
    assert_null(t->sni);
    assert_data(&t->cert_chain, PEM(CERT), "cert.pem");
    assert_data(&t->private_key, PEM(KEY), "key.pem");
    assert_data(&t->trusted_ca, PEM(CA), "ca.pem");
    assert_non_null(t->engine);
    assert_int_equal(tls_config_role(t->engine), TLS_ROLE_SERVER);
    assert_int_equal(t->n_san_matchers, 1);
    assert_int_equal(t->san_matchers[0].type, TLS_CONFIG_SAN_URI);
    assert_int_equal(t->san_matchers[0].match, TLS_CONFIG_MATCH_PREFIX);
    assert_string_equal(t->san_matchers[0].value, "spiffe://cluster.local/");
    assert_int_equal(t->n_alpn, 2);
    assert_string_equal(t->alpn[1], "http/1.1");
    release(&f);
}

static const char *select_chain(const snap_listener_t *l, bool tls, const char *sni,
                                const char *alpn)
{
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(9080)};
    inet_pton(AF_INET, "198.18.0.9", &dst.sin_addr);
    chain_conn_info_t ci = {.dst = (struct sockaddr *)&dst,
                            .tls = tls,
                            .server_name = sni,
                            .app_protocols = alpn ? &alpn : NULL,
                            .n_app_protocols = alpn ? 1 : 0};
    const snap_chain_t *c = chain_select(l, &ci);
    return c ? c->name : "(none)";
}

static void test_tls_connections_take_the_tls_chain(void **state)
{
    (void)state;
    fixture_t f = {0};
    if (build(&f, mesh) != 0)
        fail_msg("%s", f.err);
    const snap_listener_t *l = &f.snap->listeners[0];
    assert_string_equal(select_chain(l, true, "x", "istio"), "mtls");
    assert_string_equal(select_chain(l, false, NULL, NULL), "plaintext");
    /* mTLS from a client that offers none of the chain's protocols matches nothing. */
    assert_string_equal(select_chain(l, true, NULL, "h2"), "(none)");
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(9080)};
    const snap_chain_t *c = chain_select_plain(l, (struct sockaddr *)&dst, NULL);
    assert_string_equal(c->name, "plaintext");
    release(&f);
}

static void test_inline_string_and_inline_bytes_are_used_directly(void **state)
{
    (void)state;
    fixture_t f = {0};
    /* inline_bytes is base64 in YAML: @KEY_B64@ is the key PEM's bytes encoded. */
    const char *yaml = "static_resources:\n"
                       "  listeners:\n"
                       "  - name: l\n"
                       "    address: {socket_address: {address: 127.0.0.1, port_value: 1}}\n"
                       "    filter_chains:\n"
                       "    - transport_socket:\n"
                       "        name: envoy.transport_sockets.tls\n"
                       "        typed_config:\n"
                       "          '@type': " DOWNSTREAM_TLS "\n"
                       "          require_sni: true\n"
                       "          disable_stateless_session_resumption: true\n"
                       "          common_tls_context:\n"
                       "            tls_certificates:\n"
                       "            - certificate_chain: {inline_string: @CERT@}\n"
                       "              private_key: {inline_bytes: @KEY_B64@}\n"
                       "      filters:\n" TCP_PROXY;
    if (build(&f, yaml) != 0)
        fail_msg("%s", f.err);
    const tls_context_config_t *t = f.snap->listeners[0].chains[0].tls;
    assert_data(&t->cert_chain, PEM(CERT), NULL);
    assert_data(&t->private_key, PEM(KEY), NULL);
    assert_null(t->trusted_ca.data);
    assert_non_null(t->engine);
    assert_false(t->require_client_certificate);
    assert_true(t->require_sni);
    assert_true(t->disable_stateless_resumption);
    release(&f);
}

static void test_raw_buffer_transport_socket_is_plaintext(void **state)
{
    (void)state;
    fixture_t f = {0};
    const char *yaml = "static_resources:\n"
                       "  clusters:\n"
                       "  - name: by_name\n"
                       "    transport_socket: {name: envoy.transport_sockets.raw_buffer}\n"
                       "  - name: by_name_with_empty\n"
                       "    transport_socket:\n"
                       "      name: envoy.transport_sockets.raw_buffer\n"
                       "      typed_config: {'@type': type.googleapis.com/google.protobuf.Empty}\n"
                       "  - name: by_type\n"
                       "    transport_socket:\n"
                       "      name: anything\n"
                       "      typed_config:\n"
                       "        '@type': type.googleapis.com/"
                       "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer\n";
    if (build(&f, yaml) != 0)
        fail_msg("%s", f.err);
    assert_null(snapshot_find_cluster(f.snap, "by_name")->tls);
    assert_null(snapshot_find_cluster(f.snap, "by_name_with_empty")->tls);
    assert_null(snapshot_find_cluster(f.snap, "by_type")->tls);
    release(&f);
}

/* A cluster named "c" whose UpstreamTlsContext is `body` (indented under typed_config). */
static void expect_upstream_error(const char *body, const char *want)
{
    char yaml[4096];
    snprintf(yaml, sizeof(yaml),
             "static_resources:\n"
             "  clusters:\n"
             "  - name: c\n"
             "    transport_socket:\n"
             "      name: envoy.transport_sockets.tls\n"
             "      typed_config:\n"
             "        '@type': " UPSTREAM_TLS "\n"
             "%s",
             body);
    fixture_t f = {0};
    int rc = build(&f, yaml);
    if (rc == 0 || strstr(f.err, want) == NULL)
        fail_msg("want error containing '%s', got rc=%d err='%s'", want, rc, f.err);
    release(&f);
}

#define TRUST                                                                                      \
    "        common_tls_context:\n"                                                                \
    "          validation_context:\n"                                                              \
    "            trusted_ca: {filename: '@DIR@/ca.pem'}\n"

static void test_unreadable_files_name_the_field_and_path(void **state)
{
    (void)state;
    char want[256];
    snprintf(want, sizeof(want),
             "cluster 'c': transport_socket: common_tls_context.tls_certificates[0].private_key: "
             "cannot read '%s/missing.pem': No such file or directory",
             dir);
    expect_upstream_error(TRUST "          tls_certificates:\n"
                                "          - certificate_chain: {filename: '@DIR@/cert.pem'}\n"
                                "            private_key: {filename: '@DIR@/missing.pem'}\n",
                          want);
    snprintf(want, sizeof(want),
             "common_tls_context.validation_context.trusted_ca: '%s/empty.pem' is empty", dir);
    expect_upstream_error("        common_tls_context:\n"
                          "          validation_context:\n"
                          "            trusted_ca: {filename: '@DIR@/empty.pem'}\n",
                          want);
    snprintf(want, sizeof(want), "'%s' is not a regular file", dir);
    expect_upstream_error("        common_tls_context:\n"
                          "          validation_context:\n"
                          "            trusted_ca: {filename: '@DIR@'}\n",
                          want);
}

static void test_unsupported_tls_settings_are_refused_by_name(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        const char *want;
    } cases[] = {
        /* SDS: secrets come over ADS; a static secret (no sds_config) or another source is
         * refused. */
        {"        common_tls_context:\n"
         "          tls_certificate_sds_secret_configs: [{name: default}]\n",
         "common_tls_context.tls_certificate_sds_secret_configs[0]: sds_config is required: "
         "secrets come over ADS"},
        {"        common_tls_context:\n"
         "          validation_context_sds_secret_config:\n"
         "            name: ROOTCA\n"
         "            sds_config: {path_config_source: {path: /etc/sds.yaml}}\n",
         "common_tls_context.validation_context_sds_secret_config: sds_config: "
         "path_config_source is not supported (only ads"},
        {"        common_tls_context:\n"
         "          combined_validation_context:\n"
         "            default_validation_context: {}\n"
         "            validation_context_sds_secret_config: {name: ROOTCA}\n",
         "common_tls_context.combined_validation_context.validation_context_sds_secret_config: "
         "sds_config is required"},
        {TRUST "            custom_validator_config: {name: envoy.tls.cert_validator.spiffe}\n",
         "common_tls_context.validation_context.custom_validator_config is not supported"},
        {TRUST "            match_subject_alt_names: [{safe_regex: {regex: '.*'}}]\n",
         "validation_context.match_subject_alt_names[0]: safe_regex is not supported for "
         "subject alt names (exact and prefix are)"},
        {TRUST "            match_subject_alt_names: [{suffix: '.svc'}]\n",
         "match_subject_alt_names[0]: suffix is not supported"},
        {TRUST "            match_typed_subject_alt_names:\n"
               "            - {san_type: OTHER_NAME, matcher: {exact: x}}\n",
         "match_typed_subject_alt_names[0].san_type OTHER_NAME is not supported (URI and DNS "
         "are)"},
        {TRUST "            match_typed_subject_alt_names:\n"
               "            - {san_type: EMAIL, matcher: {exact: a@b}}\n",
         "san_type EMAIL is not supported"},
        {TRUST "            match_typed_subject_alt_names:\n"
               "            - {matcher: {exact: x}}\n",
         "match_typed_subject_alt_names[0].san_type is required"},
        {TRUST "            match_typed_subject_alt_names:\n"
               "            - {san_type: URI, matcher: {exact: x, ignore_case: true}}\n",
         "match_typed_subject_alt_names[0].matcher: ignore_case is not supported here"},
        {"        common_tls_context:\n"
         "          validation_context:\n"
         "            match_subject_alt_names: [{exact: spiffe://td/ns/a/sa/b}]\n",
         "common_tls_context.validation_context: subject alt name matchers need trusted_ca"},
        {"        common_tls_context: {alpn_protocols: [h2]}\n",
         "an UpstreamTlsContext needs common_tls_context.validation_context.trusted_ca"},
        {TRUST "          tls_params: {tls_minimum_protocol_version: TLSv1_3}\n",
         "common_tls_context.tls_params.tls_minimum_protocol_version TLSv1_3 is not supported"},
        {TRUST "          tls_params: {tls_maximum_protocol_version: TLSv1_1}\n",
         "tls_params.tls_maximum_protocol_version below TLSv1_2 is not supported"},
        {TRUST "          tls_params: {signature_algorithms: [ecdsa_secp256r1_sha256]}\n",
         "common_tls_context.tls_params.signature_algorithms is not supported"},
        {TRUST "        allow_renegotiation: true\n",
         "transport_socket: allow_renegotiation (TLS renegotiation) is not supported"},
        {TRUST "          tls_certificates:\n"
               "          - certificate_chain: {environment_variable: CERT}\n"
               "            private_key: {filename: '@DIR@/key.pem'}\n",
         "tls_certificates[0].certificate_chain.environment_variable is not supported"},
        {TRUST "          tls_certificates:\n"
               "          - certificate_chain: {filename: '@DIR@/cert.pem'}\n",
         "tls_certificates[0]: certificate_chain and private_key are both required"},
        {TRUST "          tls_certificates:\n"
               "          - certificate_chain: {filename: '@DIR@/cert.pem'}\n"
               "            private_key: {filename: '@DIR@/key.pem'}\n"
               "            password: {inline_string: pw}\n",
         "tls_certificates[0].password (encrypted private keys) is not supported"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_upstream_error(cases[i].body, cases[i].want);
}

static void expect_error(const char *yaml, const char *want)
{
    fixture_t f = {0};
    int rc = build(&f, yaml);
    if (rc == 0 || strstr(f.err, want) == NULL)
        fail_msg("want error containing '%s', got rc=%d err='%s'", want, rc, f.err);
    release(&f);
}

/* A listener "l" whose one filter chain "tls" has a DownstreamTlsContext with common_tls_context
 * `body` (indented under common_tls_context). */
static void downstream_yaml(char *yaml, size_t cap, const char *body)
{
    int n = snprintf(yaml, cap,
                     "static_resources:\n"
                     "  listeners:\n"
                     "  - name: l\n"
                     "    address: {socket_address: {address: 127.0.0.1, port_value: 1}}\n"
                     "    filter_chains:\n"
                     "    - name: tls\n"
                     "      transport_socket:\n"
                     "        name: envoy.transport_sockets.tls\n"
                     "        typed_config:\n"
                     "          '@type': " DOWNSTREAM_TLS "\n"
                     "          common_tls_context:\n"
                     "%s"
                     "      filters:\n" TCP_PROXY,
                     body);
    assert_true(n > 0 && (size_t)n < cap);
}

#define SERVER_PAIR(cert, key)                                                                     \
    "            tls_certificates:\n"                                                              \
    "            - certificate_chain: {inline_string: @" cert "@}\n"                               \
    "              private_key: {inline_string: @" key "@}\n"

#define SERVER_TRUST(ca)                                                                           \
    "            validation_context:\n"                                                            \
    "              trusted_ca: {inline_string: @" ca "@}\n"

static void test_key_that_does_not_match_its_certificate_fails_the_snapshot(void **state)
{
    (void)state;
    char yaml[4096];
    downstream_yaml(yaml, sizeof(yaml), SERVER_PAIR("CERT", "MISMATCHED_KEY"));
    expect_error(yaml, "listener 'l': filter chain 'tls': transport_socket: private_key (inline "
                       "PEM) does not match the leaf certificate of cert_chain (inline PEM)");
    /* The same from files, on a cluster. */
    expect_upstream_error(TRUST "          tls_certificates:\n"
                                "          - certificate_chain: {filename: '@DIR@/cert.pem'}\n"
                                "            private_key: {inline_bytes: @MISMATCHED_KEY_B64@}\n",
                          "cluster 'c': transport_socket: private_key (inline PEM) does not "
                          "match the leaf certificate of cert_chain (inline PEM)");
    /* Another workload's pair: each half is a real key or certificate, but not of the other. */
    downstream_yaml(yaml, sizeof(yaml), SERVER_PAIR("CERT", "OTHER_KEY"));
    expect_error(yaml, "filter chain 'tls': transport_socket: private_key (inline PEM) does not "
                       "match the leaf certificate");
}

static void test_certificate_outside_its_validity_fails_the_snapshot(void **state)
{
    (void)state;
    char yaml[4096];
    downstream_yaml(yaml, sizeof(yaml), SERVER_PAIR("EXPIRED_CERT", "EXPIRED_KEY"));
    expect_error(yaml, "listener 'l': filter chain 'tls': transport_socket: cert_chain (inline "
                       "PEM): leaf certificate expired at 2001-01-01 00:00:00 UTC");
    expect_upstream_error(TRUST "          tls_certificates:\n"
                                "          - certificate_chain: {inline_string: @EXPIRED_CERT@}\n"
                                "            private_key: {inline_string: @EXPIRED_KEY@}\n",
                          "cluster 'c': transport_socket: cert_chain (inline PEM): leaf "
                          "certificate expired at 2001-01-01 00:00:00 UTC");
    downstream_yaml(yaml, sizeof(yaml), SERVER_PAIR("FUTURE_CERT", "FUTURE_KEY"));
    expect_error(yaml, "filter chain 'tls': transport_socket: cert_chain (inline PEM): leaf "
                       "certificate is not valid before 2090-01-01 00:00:00 UTC");
}

static void test_certificate_not_issued_by_trusted_ca_fails_the_snapshot(void **state)
{
    (void)state;
    char yaml[4096];
    /* Our own chain is checked against trusted_ca at load: the peers trust the same CA, so a
     * chain it does not vouch for would fail at every one of them. */
    downstream_yaml(yaml, sizeof(yaml), SERVER_PAIR("OTHER_CERT", "OTHER_KEY") SERVER_TRUST("CA"));
    expect_error(yaml, "listener 'l': filter chain 'tls': transport_socket: cert_chain (inline "
                       "PEM): chain does not verify against the trust bundle: The certificate "
                       "is not correctly signed by the trusted CA");
    expect_upstream_error(TRUST "          tls_certificates:\n"
                                "          - certificate_chain: {inline_string: @OTHER_CERT@}\n"
                                "            private_key: {inline_string: @OTHER_KEY@}\n",
                          "cluster 'c': transport_socket: cert_chain (inline PEM): chain does "
                          "not verify against the trust bundle");
    /* With its own root as trusted_ca it loads; without trusted_ca there is nothing to check
     * our chain against, and it loads too. */
    fixture_t f = {0};
    downstream_yaml(yaml, sizeof(yaml),
                    SERVER_PAIR("OTHER_CERT", "OTHER_KEY") SERVER_TRUST("OTHER_CA"));
    if (build(&f, yaml) != 0)
        fail_msg("%s", f.err);
    assert_non_null(f.snap->listeners[0].chains[0].tls->engine);
    release(&f);
    f = (fixture_t){0};
    downstream_yaml(yaml, sizeof(yaml), SERVER_PAIR("OTHER_CERT", "OTHER_KEY"));
    if (build(&f, yaml) != 0)
        fail_msg("%s", f.err);
    assert_non_null(f.snap->listeners[0].chains[0].tls->engine);
    release(&f);
    /* A trust bundle that is not PEM at all is named. */
    downstream_yaml(yaml, sizeof(yaml),
                    SERVER_PAIR("CERT", "KEY") "            validation_context:\n"
                                               "              trusted_ca: {inline_string: x}\n");
    expect_error(yaml, "filter chain 'tls': transport_socket: trust_bundle (inline PEM): ");
}

static void test_transport_socket_must_fit_its_place(void **state)
{
    (void)state;
    expect_error("static_resources:\n"
                 "  clusters:\n"
                 "  - name: c\n"
                 "    transport_socket:\n"
                 "      name: envoy.transport_sockets.tls\n"
                 "      typed_config: {'@type': '" DOWNSTREAM_TLS "'}\n",
                 "cluster 'c': transport_socket: a cluster takes "
                 "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, not "
                 "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext");
    expect_error("static_resources:\n"
                 "  clusters:\n"
                 "  - name: c\n"
                 "    transport_socket: {name: envoy.transport_sockets.tls}\n",
                 "transport_socket: 'envoy.transport_sockets.tls' needs a typed_config");
    expect_error("static_resources:\n"
                 "  clusters:\n"
                 "  - name: c\n"
                 "    transport_socket: {name: envoy.transport_sockets.alts}\n",
                 "transport_socket: 'envoy.transport_sockets.alts' is not supported");
    expect_error("static_resources:\n"
                 "  listeners:\n"
                 "  - name: l\n"
                 "    address: {socket_address: {address: 127.0.0.1, port_value: 1}}\n"
                 "    filter_chains:\n"
                 "    - name: c\n"
                 "      transport_socket:\n"
                 "        name: envoy.transport_sockets.tls\n"
                 "        typed_config:\n"
                 "          '@type': " DOWNSTREAM_TLS "\n"
                 "          session_ticket_keys: {keys: [{inline_string: k}]}\n"
                 "      filters:\n" TCP_PROXY,
                 "listener 'l': filter chain 'c': transport_socket: session_ticket_keys is not "
                 "supported");
    expect_error("static_resources:\n"
                 "  listeners:\n"
                 "  - name: l\n"
                 "    address: {socket_address: {address: 127.0.0.1, port_value: 1}}\n"
                 "    filter_chains:\n"
                 "    - transport_socket:\n"
                 "        name: envoy.transport_sockets.tls\n"
                 "        typed_config: {'@type': '" DOWNSTREAM_TLS "'}\n"
                 "      filters:\n" TCP_PROXY,
                 "filter chain 0: transport_socket: common_tls_context.tls_certificates: a "
                 "DownstreamTlsContext needs a certificate and its private key");
    expect_error("static_resources:\n"
                 "  listeners:\n"
                 "  - name: l\n"
                 "    address: {socket_address: {address: 127.0.0.1, port_value: 1}}\n"
                 "    filter_chains:\n"
                 "    - transport_socket:\n"
                 "        name: envoy.transport_sockets.tls\n"
                 "        typed_config:\n"
                 "          '@type': " DOWNSTREAM_TLS "\n"
                 "          require_client_certificate: true\n"
                 "          common_tls_context:\n"
                 "            tls_certificates:\n"
                 "            - certificate_chain: {inline_string: @CERT@}\n"
                 "              private_key: {inline_string: @KEY@}\n"
                 "      filters:\n" TCP_PROXY,
                 "require_client_certificate needs common_tls_context.validation_context."
                 "trusted_ca");
}

static void test_tls_matching_needs_the_tls_inspector(void **state)
{
    (void)state;
    expect_error("static_resources:\n"
                 "  listeners:\n"
                 "  - name: l\n"
                 "    address: {socket_address: {address: 127.0.0.1, port_value: 1}}\n"
                 "    filter_chains:\n"
                 "    - filter_chain_match: {transport_protocol: tls}\n"
                 "      filters:\n" TCP_PROXY,
                 "listener 'l': filter chain 0: transport_protocol 'tls' needs the "
                 "envoy.filters.listener.tls_inspector listener filter");
    expect_error("static_resources:\n"
                 "  listeners:\n"
                 "  - name: l\n"
                 "    address: {socket_address: {address: 127.0.0.1, port_value: 1}}\n"
                 "    filter_chains:\n"
                 "    - filter_chain_match: {server_names: [a.example.com]}\n"
                 "      filters:\n" TCP_PROXY,
                 "listener 'l': filter chain 0: server_names needs the "
                 "envoy.filters.listener.tls_inspector listener filter");
    expect_error("static_resources:\n"
                 "  listeners:\n"
                 "  - name: l\n"
                 "    address: {socket_address: {address: 127.0.0.1, port_value: 1}}\n"
                 "    listener_filters:\n" TLS_INSPECTOR "    filter_chains:\n"
                 "    - filter_chain_match: {transport_protocol: quic}\n"
                 "      filters:\n" TCP_PROXY,
                 "transport_protocol 'quic' is not supported (raw_buffer and tls are)");
}

#define SNI_CHAIN(name, names)                                                                     \
    "    - name: " name "\n"                                                                       \
    "      filter_chain_match: {server_names: " names "}\n"                                        \
    "      filters:\n" TCP_PROXY

static const char *const sni_listener =
    "static_resources:\n"
    "  listeners:\n"
    "  - name: l\n"
    "    address: {socket_address: {address: 127.0.0.1, port_value: 1}}\n"
    "    listener_filters:\n" TLS_INSPECTOR
    "    filter_chains:\n" SNI_CHAIN("exact", "[API.example.com, www.example.com]")
        SNI_CHAIN("wild", "['*.example.com']")
            SNI_CHAIN("wild-b", "['*.b.example.com']") "    - name: any\n"
                                                       "      filters:\n" TCP_PROXY;

static void test_server_names_prefer_exact_then_the_longest_wildcard(void **state)
{
    (void)state;
    fixture_t f = {0};
    if (build(&f, sni_listener) != 0)
        fail_msg("%s", f.err);
    const snap_listener_t *l = &f.snap->listeners[0];
    assert_string_equal(l->chains[0].server_names[0], "api.example.com");
    assert_string_equal(select_chain(l, true, "api.example.com", NULL), "exact");
    assert_string_equal(select_chain(l, true, "WWW.Example.com", NULL), "exact");
    assert_string_equal(select_chain(l, true, "x.b.example.com", NULL), "wild-b");
    assert_string_equal(select_chain(l, true, "x.y.example.com", NULL), "wild");
    assert_string_equal(select_chain(l, true, "example.com", NULL), "any");
    assert_string_equal(select_chain(l, true, NULL, NULL), "any");
    /* Without TLS there is no server name to match. */
    assert_string_equal(select_chain(l, false, "api.example.com", NULL), "any");
    release(&f);
}

static void test_server_names_must_be_names_or_leading_wildcards(void **state)
{
    (void)state;
    expect_error("static_resources:\n"
                 "  listeners:\n"
                 "  - name: l\n"
                 "    address: {socket_address: {address: 127.0.0.1, port_value: 1}}\n"
                 "    listener_filters:\n" TLS_INSPECTOR
                 "    filter_chains:\n" SNI_CHAIN("bad", "['a*.example.com']"),
                 "filter chain 'bad': server_names[0]: 'a*.example.com': a wildcard is only a "
                 "leading '*.' before a domain");
}

static void test_chains_differing_in_tls_criteria_are_distinct(void **state)
{
    (void)state;
    fixture_t f = {0};
    const char *ok =
        "static_resources:\n"
        "  listeners:\n"
        "  - name: l\n"
        "    address: {socket_address: {address: 127.0.0.1, port_value: 1}}\n"
        "    listener_filters:\n" TLS_INSPECTOR "    filter_chains:\n"
        "    - filter_chain_match: {transport_protocol: tls}\n"
        "      filters:\n" TCP_PROXY "    - filter_chain_match: {}\n"
        "      filters:\n" TCP_PROXY SNI_CHAIN("a", "[a.com]") SNI_CHAIN("b", "[b.com]");
    if (build(&f, ok) != 0)
        fail_msg("%s", f.err);
    release(&f);
    expect_error("static_resources:\n"
                 "  listeners:\n"
                 "  - name: l\n"
                 "    address: {socket_address: {address: 127.0.0.1, port_value: 1}}\n"
                 "    listener_filters:\n" TLS_INSPECTOR
                 "    filter_chains:\n" SNI_CHAIN("a", "[a.com, c.com]") SNI_CHAIN("c", "[C.com]"),
                 "filter chain 'c': has the same filter_chain_match as chain 0");
}

/* Follows a path like "configs.1.static_clusters" through objects and arrays. */
static json_t *json_at(json_t *j, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *save, *tok = strtok_r(buf, ".", &save); tok && j; tok = strtok_r(NULL, ".", &save))
        j = json_is_array(j) ? json_array_get(j, strtoul(tok, NULL, 10)) : json_object_get(j, tok);
    if (j == NULL)
        fail_msg("no JSON value at %s", path);
    return j;
}

/* Whether every line between the PEM's BEGIN and END lines occurs in text (all, true) or none
 * does (all, false). Lines shorter than 16 characters (a last line of padding) are too common to
 * tell anything. A full line of a key's body holds private key bytes: the first line of a P-256
 * PKCS#8 key already ends in twelve of them. */
static void assert_pem_body_lines(const char *text, const char *pem, bool all)
{
    const char *line = strchr(pem, '\n');
    assert_non_null(line);
    int checked = 0;
    for (line++; *line && strncmp(line, "-----END", 8) != 0;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        char body[128];
        assert_true(len < sizeof(body));
        memcpy(body, line, len);
        body[len] = '\0';
        line = nl ? nl + 1 : line + len;
        if (len < 16)
            continue;
        checked++;
        if ((strstr(text, body) != NULL) != all)
            fail_msg("PEM line '%s' %s the dump", body, all ? "is missing from" : "leaks into");
    }
    assert_true(checked > 0);
}

static json_t *first_certificate(json_t *typed_config)
{
    json_t *certs =
        json_object_get(json_object_get(typed_config, "common_tls_context"), "tls_certificates");
    json_t *cert = json_array_get(certs, 0);
    assert_non_null(cert);
    return cert;
}

static const char *data_source(json_t *cert, const char *field, const char *kind)
{
    const char *v = json_string_value(json_object_get(json_object_get(cert, field), kind));
    if (v == NULL)
        fail_msg("no %s.%s", field, kind);
    return v;
}

static void test_config_dump_redacts_private_keys(void **state)
{
    (void)state;
    fixture_t f = {0};
    const char *yaml = "static_resources:\n"
                       "  clusters:\n"
                       "  - name: c\n"
                       "    transport_socket:\n"
                       "      name: envoy.transport_sockets.tls\n"
                       "      typed_config:\n"
                       "        '@type': " UPSTREAM_TLS "\n"
                       "        common_tls_context:\n"
                       "          tls_certificates:\n"
                       "          - certificate_chain: {inline_string: @CERT@}\n"
                       "            private_key: {inline_string: @KEY@}\n"
                       "          validation_context:\n"
                       "            trusted_ca: {filename: '@DIR@/ca.pem'}\n"
                       "  - name: b\n"
                       "    transport_socket:\n"
                       "      name: envoy.transport_sockets.tls\n"
                       "      typed_config:\n"
                       "        '@type': " UPSTREAM_TLS "\n"
                       "        common_tls_context:\n"
                       "          tls_certificates:\n"
                       "          - certificate_chain: {inline_string: @OTHER_CERT@}\n"
                       "            private_key: {inline_bytes: @OTHER_KEY_B64@}\n"
                       "          validation_context:\n"
                       "            trusted_ca: {inline_string: @OTHER_CA@}\n"
                       "  listeners:\n"
                       "  - name: l\n"
                       "    address: {socket_address: {address: 127.0.0.1, port_value: 1}}\n"
                       "    filter_chains:\n"
                       "    - transport_socket:\n"
                       "        name: envoy.transport_sockets.tls\n"
                       "        typed_config:\n"
                       "          '@type': " DOWNSTREAM_TLS "\n"
                       "          common_tls_context:\n"
                       "            tls_certificates:\n"
                       "            - certificate_chain: {filename: '@DIR@/cert.pem'}\n"
                       "              private_key: {filename: '@DIR@/key.pem'}\n"
                       "      filters:\n" TCP_PROXY;
    if (build(&f, yaml) != 0)
        fail_msg("%s", f.err);
    char *dump = snapshot_config_dump(f.snap);
    assert_non_null(dump);
    /* No line of either key, inline or base64, and not the key file's name. */
    assert_pem_body_lines(dump, PEM(KEY), false);
    assert_pem_body_lines(dump, PEM(OTHER_KEY), false);
    assert_null(strstr(dump, "PRIVATE KEY"));
    assert_null(strstr(dump, "key.pem"));
    /* The chains, the trust bundle and the certificate file's name are shown. */
    assert_pem_body_lines(dump, PEM(CERT), true);
    assert_pem_body_lines(dump, PEM(OTHER_CERT), true);
    assert_pem_body_lines(dump, PEM(OTHER_CA), true);
    assert_non_null(strstr(dump, "cert.pem"));
    json_t *root = json_loads(dump, 0, NULL);
    assert_non_null(root);
    /* configs[1] is the clusters dump, configs[2] the listeners dump. */
    json_t *cert = first_certificate(
        json_at(root, "configs.1.static_clusters.0.cluster.transport_socket.typed_config"));
    assert_string_equal(data_source(cert, "private_key", "inline_string"), "[redacted]");
    assert_string_equal(data_source(cert, "certificate_chain", "inline_string"), PEM(CERT));
    cert = first_certificate(
        json_at(root, "configs.1.static_clusters.1.cluster.transport_socket.typed_config"));
    /* bytes read as the base64 of "[redacted]" */
    assert_string_equal(data_source(cert, "private_key", "inline_bytes"), "W3JlZGFjdGVkXQ==");
    assert_string_equal(data_source(cert, "certificate_chain", "inline_string"), PEM(OTHER_CERT));
    json_decref(root);
    free(dump);
    release(&f);
}

static void test_hcm_keeps_client_cert_forwarding_settings(void **state)
{
    (void)state;
    fixture_t f = {0};
    const char *yaml =
        "static_resources:\n"
        "  listeners:\n"
        "  - name: l\n"
        "    address: {socket_address: {address: 127.0.0.1, port_value: 1}}\n"
        "    filter_chains:\n"
        "    - filters:\n"
        "      - name: envoy.filters.network.http_connection_manager\n"
        "        typed_config:\n"
        "          '@type': type.googleapis.com/envoy.extensions.filters.network."
        "http_connection_manager.v3.HttpConnectionManager\n"
        "          stat_prefix: inbound\n"
        "          forward_client_cert_details: APPEND_FORWARD\n"
        "          set_current_client_cert_details: {subject: true, uri: true, dns: true}\n"
        "          route_config: {virtual_hosts: [{name: v, domains: ['*']}]}\n"
        "          http_filters:\n"
        "          - name: envoy.filters.http.router\n"
        "            typed_config:\n"
        "              '@type': "
        "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n";
    if (build(&f, yaml) != 0)
        fail_msg("%s", f.err);
    const hcm_config_t *cfg = f.snap->listeners[0].chains[0].filters[0].config;
    assert_int_equal(cfg->xfcc, HCM_XFCC_APPEND_FORWARD);
    assert_true(cfg->xfcc_set.subject);
    assert_true(cfg->xfcc_set.uri);
    assert_true(cfg->xfcc_set.dns);
    assert_false(cfg->xfcc_set.cert);
    assert_false(cfg->xfcc_set.chain);
    release(&f);
}

/* A cluster like mesh's outbound one, with its own SNI and expected SAN (and trust bundle). */
#define OUTBOUND_TLS_CLUSTER(NAME, SA, CA)                                                         \
    "  - name: " NAME "\n"                                                                         \
    "    load_assignment:\n"                                                                       \
    "      endpoints:\n"                                                                           \
    "      - lb_endpoints:\n"                                                                      \
    "        - endpoint: {address: {socket_address: {address: 198.18.0.7, port_value: 15006}}}\n"  \
    "    transport_socket:\n"                                                                      \
    "      name: envoy.transport_sockets.tls\n"                                                    \
    "      typed_config:\n"                                                                        \
    "        '@type': " UPSTREAM_TLS "\n"                                                          \
    "        sni: " NAME ".example\n"                                                              \
    "        common_tls_context:\n"                                                                \
    "          tls_certificates:\n"                                                                \
    "          - certificate_chain: {filename: '@DIR@/cert.pem'}\n"                                \
    "            private_key: {filename: '@DIR@/key.pem'}\n"                                       \
    "          validation_context:\n"                                                              \
    "            trusted_ca: {filename: '@DIR@/" CA "'}\n"                                         \
    "            match_subject_alt_names:\n"                                                       \
    "            - exact: spiffe://cluster.local/ns/default/sa/" SA "\n"

static void test_contexts_differing_only_in_peer_share_one_engine(void **state)
{
    (void)state;
    fixture_t f = {0};
    const char *yaml =
        "static_resources:\n"
        "  clusters:\n" OUTBOUND_TLS_CLUSTER("a", "a", "ca.pem")
            OUTBOUND_TLS_CLUSTER("b", "b", "ca.pem") OUTBOUND_TLS_CLUSTER("c", "c", "ca2.pem");
    /* ca2.pem: the same root plus another one: a different trust bundle. */
    char *two = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&two, &n);
    fputs(pems[CA].pem, m);
    fputs(pems[OTHER_CA].pem, m);
    fclose(m);
    write_file("ca2.pem", two);
    free(two);
    if (build(&f, yaml) != 0)
        fail_msg("%s", f.err);
    const tls_context_config_t *a = snapshot_find_cluster(f.snap, "a")->tls;
    const tls_context_config_t *b = snapshot_find_cluster(f.snap, "b")->tls;
    const tls_context_config_t *c = snapshot_find_cluster(f.snap, "c")->tls;
    assert_ptr_equal(a->engine, b->engine);
    assert_ptr_not_equal(a->engine, c->engine);
    assert_string_equal(b->sni, "b.example");
    assert_int_equal(b->n_peer_ids, 1);
    assert_string_equal(b->peer_ids[0].value, "spiffe://cluster.local/ns/default/sa/b");
    release(&f);
    char path[128];
    snprintf(path, sizeof(path), "%s/ca2.pem", dir);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upstream_tls_context_lands_on_the_cluster),
        cmocka_unit_test(test_downstream_tls_context_lands_on_the_chain),
        cmocka_unit_test(test_tls_connections_take_the_tls_chain),
        cmocka_unit_test(test_contexts_differing_only_in_peer_share_one_engine),
        cmocka_unit_test(test_inline_string_and_inline_bytes_are_used_directly),
        cmocka_unit_test(test_raw_buffer_transport_socket_is_plaintext),
        cmocka_unit_test(test_unreadable_files_name_the_field_and_path),
        cmocka_unit_test(test_unsupported_tls_settings_are_refused_by_name),
        cmocka_unit_test(test_transport_socket_must_fit_its_place),
        cmocka_unit_test(test_key_that_does_not_match_its_certificate_fails_the_snapshot),
        cmocka_unit_test(test_certificate_outside_its_validity_fails_the_snapshot),
        cmocka_unit_test(test_certificate_not_issued_by_trusted_ca_fails_the_snapshot),
        cmocka_unit_test(test_tls_matching_needs_the_tls_inspector),
        cmocka_unit_test(test_server_names_prefer_exact_then_the_longest_wildcard),
        cmocka_unit_test(test_server_names_must_be_names_or_leading_wildcards),
        cmocka_unit_test(test_chains_differing_in_tls_criteria_are_distinct),
        cmocka_unit_test(test_config_dump_redacts_private_keys),
        cmocka_unit_test(test_hcm_keeps_client_cert_forwarding_settings),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
