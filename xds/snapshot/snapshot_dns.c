/* STRICT_DNS and LOGICAL_DNS clusters in the snapshot: their settings and host names, checked
 * the way Envoy checks them, and their endpoints made from the addresses a resolver holds (the
 * xds layer never looks names up itself); and snapshot_rebuild, which turns the running
 * config's bootstrap into the next snapshot when those addresses or certificate files change. */
#include "xds/snapshot/snapshot_dns.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "xds/config/config.h"

typedef Envoy__Config__Cluster__V3__Cluster cluster_msg_t;

#define DEFAULT_REFRESH_MS 5000 /* Envoy's dns_refresh_rate default */

/* A Duration (borrowed; NULL: unset, *ms stays) as milliseconds, which Envoy's validation wants
 * greater than 1 ms (`gt {nanos: 1000000}`). */
static int refresh_ms(const Google__Protobuf__Duration *d, const char *field, uint64_t *ms,
                      const char *what, char *err, size_t errlen)
{
    if (d == NULL)
        return 0;
    if (d->seconds == 0 && d->nanos <= 1000000) { /* validated: not negative */
        snprintf(err, errlen, "%s: %s: must be greater than 1ms", what, field);
        return -EINVAL;
    }
    *ms = config_duration_ms(d, *ms);
    return 0;
}

/* Envoy: "LOGICAL_DNS clusters must have a single locality_lb_endpoint and a single
 * lb_endpoint" (or "a single host" without a load_assignment). */
static int check_logical(const cluster_msg_t *m, const char *what, char *err, size_t errlen)
{
    const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *la = m->load_assignment;
    if (la && la->n_endpoints == 1 && la->endpoints[0]->n_lb_endpoints == 1)
        return 0;
    if (la)
        snprintf(err, errlen,
                 "%s: LOGICAL_DNS clusters must have a single locality_lb_endpoint and a single "
                 "lb_endpoint",
                 what);
    else
        snprintf(err, errlen, "%s: LOGICAL_DNS clusters must have a single host", what);
    return -EINVAL;
}

int snapshot_dns_parse(const cluster_msg_t *m, snap_cluster_t *c, const char *what, char *err,
                       size_t errlen)
{
    if (c->kind == CLUSTER_LOGICAL_DNS && check_logical(m, what, err, errlen) < 0)
        return -EINVAL;
    snap_dns_t *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return -ENOMEM;
    c->dns = d;
    d->family = (snap_dns_family_t)m->dns_lookup_family;
    if (m->dns_lookup_family > ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DNS_LOOKUP_FAMILY__ALL) {
        snprintf(err, errlen, "%s: dns_lookup_family: unknown value %d", what,
                 (int)m->dns_lookup_family);
        return -EINVAL;
    }
    d->refresh_ms = DEFAULT_REFRESH_MS;
    d->respect_ttl = m->respect_dns_ttl;
    int rc = refresh_ms(m->dns_refresh_rate, "dns_refresh_rate", &d->refresh_ms, what, err, errlen);
    if (rc < 0)
        return rc;
    d->jitter_ms = config_duration_ms(m->dns_jitter, 0); /* gte 0: validated */
    const Envoy__Config__Cluster__V3__Cluster__RefreshRate *fr = m->dns_failure_refresh_rate;
    if (fr == NULL)
        return 0;
    if (fr->base_interval == NULL) {
        snprintf(err, errlen, "%s: dns_failure_refresh_rate.base_interval: is required", what);
        return -EINVAL;
    }
    rc = refresh_ms(fr->base_interval, "dns_failure_refresh_rate.base_interval",
                    &d->failure_base_ms, what, err, errlen);
    d->failure_max_ms = d->failure_base_ms * 10;
    if (rc == 0)
        rc = refresh_ms(fr->max_interval, "dns_failure_refresh_rate.max_interval",
                        &d->failure_max_ms, what, err, errlen);
    if (rc == 0 && d->failure_max_ms < d->failure_base_ms) {
        snprintf(err, errlen,
                 "%s: dns_failure_refresh_rate must have max_interval greater than or equal to "
                 "the base_interval",
                 what);
        rc = -EINVAL;
    }
    return rc;
}

int snapshot_dns_add_target(snap_dns_t *d, const char *host, const struct sockaddr_storage *addr,
                            uint32_t weight)
{
    snap_dns_target_t *v = realloc(d->targets, (d->n_targets + 1) * sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    d->targets = v;
    snap_dns_target_t *t = &v[d->n_targets];
    *t = (snap_dns_target_t){.addr = *addr, .literal = host == NULL, .weight = weight};
    char label[64];
    if (host == NULL)
        snapshot_format_addr((const struct sockaddr *)addr, label, sizeof(label));
    t->host = strdup(host ? host : label);
    if (t->host == NULL)
        return -ENOMEM;
    d->n_targets++;
    return 0;
}

static in_port_t port_of(const struct sockaddr_storage *ss)
{
    return ((const struct sockaddr_in *)ss)->sin_port; /* sin6_port sits at the same place */
}

static void add_endpoint(snap_cluster_t *c, const snap_dns_target_t *t,
                         const struct sockaddr_storage *ip)
{
    snap_endpoint_t *ep = &c->endpoints[c->n_endpoints++];
    memset(ep, 0, sizeof(*ep));
    memcpy(&ep->addr, ip, sizeof(ep->addr)); /* IPv4 or IPv6: the union's size at most */
    if (ip->ss_family == AF_INET6)
        ep->addr.in6.sin6_port = port_of(&t->addr);
    else
        ep->addr.in4.sin_port = port_of(&t->addr);
    ep->weight = t->weight;
    ep->hostname = t->literal ? NULL : t->host;
    snapshot_format_addr(&ep->addr.sa, ep->label, sizeof(ep->label));
}

/* What resolver knows of target t of cluster c: *n addresses at *addrs (borrowed). */
static void resolved(const snap_cluster_t *c, const snap_dns_target_t *t,
                     const snap_resolver_t *resolver, const struct sockaddr_storage **addrs,
                     size_t *n)
{
    *addrs = NULL;
    *n = 0;
    if (t->literal) {
        *addrs = &t->addr;
        *n = 1;
    } else if (resolver == NULL ||
               resolver->lookup(resolver->ctx, c->name, t->host, addrs, n) < 0) {
        *n = 0;
    }
    if (c->kind == CLUSTER_LOGICAL_DNS && *n > 1)
        *n = 1;
}

int snapshot_dns_endpoints(snap_cluster_t *c, const snap_resolver_t *resolver)
{
    const snap_dns_t *d = c->dns;
    size_t total = 0;
    for (size_t i = 0; i < d->n_targets; i++) {
        const struct sockaddr_storage *addrs;
        size_t n;
        resolved(c, &d->targets[i], resolver, &addrs, &n);
        total += n;
    }
    snap_endpoint_t *v = calloc(total ? total : 1, sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    free(c->endpoints);
    c->endpoints = v;
    c->n_endpoints = 0;
    for (size_t i = 0; i < d->n_targets; i++) {
        const struct sockaddr_storage *addrs;
        size_t n;
        resolved(c, &d->targets[i], resolver, &addrs, &n);
        for (size_t j = 0; j < n && c->n_endpoints < total; j++)
            if (addrs[j].ss_family == AF_INET || addrs[j].ss_family == AF_INET6)
                add_endpoint(c, &d->targets[i], &addrs[j]);
    }
    return 0;
}

size_t snapshot_dns_select(snap_dns_family_t family, struct sockaddr_storage *addrs, size_t n)
{
    size_t v4 = 0, v6 = 0;
    for (size_t i = 0; i < n; i++) {
        v4 += addrs[i].ss_family == AF_INET;
        v6 += addrs[i].ss_family == AF_INET6;
    }
    bool keep4, keep6;
    switch (family) {
    case SNAP_DNS_V4_ONLY:
        keep4 = true, keep6 = false;
        break;
    case SNAP_DNS_V6_ONLY:
        keep4 = false, keep6 = true;
        break;
    case SNAP_DNS_V4_PREFERRED:
        keep4 = true, keep6 = v4 == 0;
        break;
    case SNAP_DNS_ALL:
        keep4 = keep6 = true;
        break;
    default: /* AUTO */
        keep6 = true, keep4 = v6 == 0;
        break;
    }
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        sa_family_t f = addrs[i].ss_family;
        if ((f == AF_INET && keep4) || (f == AF_INET6 && keep6))
            addrs[out++] = addrs[i];
    }
    return out;
}

void snapshot_dns_free(snap_dns_t *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->n_targets; i++)
        free(d->targets[i].host);
    free(d->targets);
    free(d);
}
