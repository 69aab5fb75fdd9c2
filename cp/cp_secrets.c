/* Workload certificates: one per namespace and service account, issued by the mesh CA the first
 * time a sidecar of that identity connects, served as Secret "default" (with the trust bundle as
 * "ROOTCA"), and issued again at half their lifetime; the secrets view of each namespace and
 * service account gets the new one, and tells its streams. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cp/cp_internal.h"

#include "proxy/core/log.h"

#define RENEW_CHECK_MS 10000

static int issue(cp_t *cp, cp_cert_t *c)
{
    char id[CA_SPIFFE_ID_MAX + 1], err[512];
    int rc =
        ca_spiffe_id_build(cp->opts.trust_domain, c->ns, c->sa, id, sizeof(id), err, sizeof(err));
    sds_cert_t cert;
    if (rc == 0)
        rc = sds_cert_issue(cp->issuer, id, cp->opts.cert_ttl_s, &cert, err, sizeof(err));
    if (rc < 0) {
        log_error("ca: %s/%s: %s", c->ns, c->sa, err);
        return rc;
    }
    ads_srv_resource_t *res =
        ads_srv_resource_new(ADS_SRV_SDS, SDS_CERT_SECRET, cert.secret.bytes, cert.secret.len);
    if (res == NULL) {
        sds_cert_free(&cert);
        return -ENOMEM;
    }
    if (cp->root_secret == NULL) {
        sds_secret_t root;
        if (sds_root_secret(cert.root_pem, &root) == 0) {
            cp->root_secret =
                ads_srv_resource_new(ADS_SRV_SDS, SDS_ROOT_SECRET, root.bytes, root.len);
            sds_secret_free(&root);
        }
    }
    sds_cert_free(&c->cert);
    ads_srv_resource_unref(c->res);
    c->cert = cert;
    c->res = res;
    stats_inc(cp->stats.slots, cp->stats.certs_issued);
    log_info("ca: issued %s, valid until %lld, renewed at %lld", id, (long long)cert.not_after,
             (long long)cert.renew_at);
    return 0;
}

ads_srv_resource_t *cp_secret_for(cp_t *cp, const char *ns, const char *sa)
{
    if (cp->issuer == NULL)
        return NULL;
    for (cp_cert_t *c = cp->certs; c; c = c->next)
        if (strcmp(c->ns, ns) == 0 && strcmp(c->sa, sa) == 0)
            return c->res;
    cp_cert_t *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->ns = strdup(ns)) == NULL || (c->sa = strdup(sa)) == NULL ||
        issue(cp, c) < 0) {
        if (c) {
            free(c->ns);
            free(c->sa);
        }
        free(c);
        return NULL;
    }
    c->next = cp->certs;
    cp->certs = c;
    return c->res;
}

static void on_renew(uv_timer_t *t)
{
    cp_t *cp = t->data;
    int64_t now = (int64_t)time(NULL);
    bool any = false;
    for (cp_cert_t *c = cp->certs; c; c = c->next)
        if (now >= c->cert.renew_at && issue(cp, c) == 0)
            any = true;
    if (!any)
        return;
    for (size_t b = 0; b < CP_TVIEW_BUCKETS; b++)
        for (cp_tview_t *tv = cp->tviews[b]; tv; tv = tv->next)
            if (tv->type == ADS_SRV_SDS)
                cp_tview_fill(cp, tv);
    cp_streams_pump_queued(cp);
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h);
}

int cp_secrets_start(cp_t *cp, char *err, size_t errlen)
{
    int rc = ca_issuer_load_dir(cp->opts.ca_dir, &cp->issuer, err, errlen);
    if (rc < 0)
        return rc;
    uv_timer_t *t = malloc(sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    uv_timer_init(cp->loop, t);
    t->data = cp;
    /* A tenth of the lifetime, so a short one (tests) is renewed close to its half-life. */
    uint64_t ttl_ms =
        (uint64_t)(cp->opts.cert_ttl_s ? cp->opts.cert_ttl_s : CA_WORKLOAD_TTL_S) * 1000;
    uint64_t every = ttl_ms / 10 < RENEW_CHECK_MS ? ttl_ms / 10 : RENEW_CHECK_MS;
    every = every < 1000 ? 1000 : every;
    uv_timer_start(t, on_renew, every, every);
    cp->renew = t;
    return 0;
}

int cp_secrets_server_tls(cp_t *cp, char *err, size_t errlen)
{
    if (cp->opts.identity)
        snprintf(cp->identity, sizeof(cp->identity), "%s", cp->opts.identity);
    else
        snprintf(cp->identity, sizeof(cp->identity), "spiffe://%s/ns/remora-system/sa/remora-cp",
                 cp->opts.trust_domain);
    /* Its own certificate is not rotated while it runs: it lives as long as an intermediate
     * CA's (a year, cut to the issuer's), whatever the sidecars' lifetime. */
    ca_opts_t co;
    ca_opts_default(&co);
    co.ttl_s = CA_INTERMEDIATE_TTL_S;
    ca_issued_t issued = {0};
    int rc = ca_issue_workload(cp->issuer, cp->identity, &co, &issued, err, errlen);
    if (rc < 0)
        return rc;
    static const char *const alpn[] = {"h2"};
    tls_config_opts_t o = {
        .role = TLS_ROLE_SERVER,
        .cert_chain = {.pem = issued.chain_pem, .pem_len = strlen(issued.chain_pem)},
        .private_key = {.pem = issued.key_pem, .pem_len = strlen(issued.key_pem)},
        .trust_bundle = {.pem = issued.root_pem, .pem_len = strlen(issued.root_pem)},
        .require_client_cert = true,
        .alpn = alpn,
        .alpn_count = 1,
    };
    rc = tls_config_new(&o, &cp->tls, err, errlen);
    ca_issued_free(&issued);
    if (rc == 0)
        log_info("ca: the xDS port presents %s and requires the mesh CA's client certificates",
                 cp->identity);
    return rc;
}

void cp_secrets_free(cp_t *cp)
{
    if (cp->renew) {
        uv_timer_stop(cp->renew);
        uv_close((uv_handle_t *)cp->renew, on_timer_closed);
        cp->renew = NULL;
    }
    while (cp->certs) {
        cp_cert_t *c = cp->certs;
        cp->certs = c->next;
        sds_cert_free(&c->cert);
        ads_srv_resource_unref(c->res);
        free(c->ns);
        free(c->sa);
        free(c);
    }
    ads_srv_resource_unref(cp->root_secret);
    cp->root_secret = NULL;
    ca_issuer_free(cp->issuer);
    cp->issuer = NULL;
    if (cp->tls)
        tls_config_unref(cp->tls);
    cp->tls = NULL;
}
