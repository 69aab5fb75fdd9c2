/* Translation of a resource set (xds/snapshot/resources.h: listeners, clusters, what they name
 * over RDS, EDS and SDS, and the bootstrap-level settings, whatever their source) into the
 * runtime snapshot, the one path every config goes through, after one validation. Anything the
 * data plane would not honour is rejected here with an error that names where it is. */
#include "xds/snapshot/snapshot.h"
#include "xds/snapshot/resources.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "base/err.h"
#include "xds/config/config.h"
#include "xds/snapshot/snapshot_ads.h"
#include "xds/snapshot/snapshot_build.h"
#include "xds/snapshot/snapshot_dns.h"
#include "xds/snapshot/snapshot_tls.h"

typedef Envoy__Config__Bootstrap__V3__Bootstrap bootstrap_msg_t;
typedef Envoy__Config__Listener__V3__Listener listener_msg_t;
typedef Envoy__Config__Listener__V3__FilterChain chain_msg_t;
typedef Envoy__Config__Cluster__V3__Cluster cluster_msg_t;
typedef Envoy__Config__Core__V3__Address address_msg_t;
typedef Envoy__Config__Endpoint__V3__ClusterLoadAssignment cla_msg_t;

#define DEFAULT_CONNECT_TIMEOUT_MS 5000

/* Address → sockaddr; only socket addresses with a numeric IP and port_value are supported,
 * unless `name` is not NULL: then a host name is taken too, *name points at it (borrowed from a)
 * and out holds only its port, with family AF_UNSPEC. */
static int parse_host_address(const address_msg_t *a, struct sockaddr_storage *out,
                              const char **name, const char *what, char *err, size_t errlen)
{
    if (a == NULL || a->address_case != ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS)
        return err_set(err, errlen, -EINVAL, "%s: address: a socket_address is required", what);
    const Envoy__Config__Core__V3__SocketAddress *s = a->socket_address;
    if (s->protocol != ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PROTOCOL__TCP)
        return err_set(err, errlen, -EINVAL, "%s: address: only TCP is supported", what);
    if (s->port_specifier_case !=
        ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE)
        return err_set(err, errlen, -EINVAL,
                       "%s: address: port_value is required (named_port is not "
                       "supported)",
                       what);
    if (s->port_value > 65535)
        return err_set(err, errlen, -EINVAL, "%s: address: port %u out of range", what,
                       s->port_value);
    if (name && s->resolver_name && *s->resolver_name)
        return err_set(err, errlen, -EINVAL, "%s: address: resolver_name is not supported", what);
    memset(out, 0, sizeof(*out));
    struct sockaddr_in *s4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, s->address, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)s->port_value);
    } else if (inet_pton(AF_INET6, s->address, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)s->port_value);
    } else if (name && s->address && *s->address) {
        *name = s->address;
        s4->sin_family = AF_UNSPEC;
        s4->sin_port = htons((uint16_t)s->port_value);
    } else {
        return err_set(err, errlen, -EINVAL,
                       "%s: address: '%s' is not an IP address (DNS names are not "
                       "supported here)",
                       what, s->address);
    }
    return 0;
}

static int parse_address(const address_msg_t *a, struct sockaddr_storage *out, const char *what,
                         char *err, size_t errlen)
{
    return parse_host_address(a, out, NULL, what, err, errlen);
}

static const char *enum_name(const ProtobufCEnumDescriptor *d, int value)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(d, value);
    return v ? v->name : "?";
}

/* The cluster's discovery type and load-balancing policy. */
static int cluster_kind(const cluster_msg_t *m, snap_cluster_t *c, const char *what, char *err,
                        size_t errlen)
{
    switch (m->type) {
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STATIC:
        c->kind = CLUSTER_STATIC;
        break;
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__ORIGINAL_DST:
        c->kind = CLUSTER_ORIGINAL_DST;
        break;
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STRICT_DNS:
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__LOGICAL_DNS: {
        c->kind = m->type == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STRICT_DNS
                      ? CLUSTER_STRICT_DNS
                      : CLUSTER_LOGICAL_DNS;
        int rc = snapshot_dns_parse(m, c, what, err, errlen);
        if (rc < 0)
            return rc;
        break;
    }
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS:
        c->kind = CLUSTER_EDS; /* its assignment: snapshot_eds_assignment */
        break;
    default:
        return err_set(err, errlen, -EINVAL,
                       "%s: type %s is not supported (STATIC, STRICT_DNS, LOGICAL_DNS, "
                       "ORIGINAL_DST and EDS are)",
                       what,
                       enum_name(&envoy__config__cluster__v3__cluster__discovery_type__descriptor,
                                 (int)m->type));
    }
    switch (m->lb_policy) {
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN:
        c->lb_policy = LB_ROUND_ROBIN;
        break;
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__LEAST_REQUEST:
        c->lb_policy = LB_LEAST_REQUEST;
        break;
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__RANDOM:
        c->lb_policy = LB_RANDOM;
        break;
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__CLUSTER_PROVIDED:
        c->lb_policy = LB_CLUSTER_PROVIDED;
        break;
    default:
        return err_set(err, errlen, -EINVAL,
                       "%s: lb_policy %s is not supported (ROUND_ROBIN, LEAST_REQUEST, "
                       "RANDOM, CLUSTER_PROVIDED are)",
                       what,
                       enum_name(&envoy__config__cluster__v3__cluster__lb_policy__descriptor,
                                 (int)m->lb_policy));
    }
    if ((c->kind == CLUSTER_ORIGINAL_DST) != (c->lb_policy == LB_CLUSTER_PROVIDED))
        return err_set(err, errlen, -EINVAL,
                       "%s: ORIGINAL_DST clusters take lb_policy CLUSTER_PROVIDED, and "
                       "only they do",
                       what);
    return 0;
}

/* How the cluster's connections are made: TLS, source address, timeouts, circuit breakers. */
static int cluster_connections(const cluster_msg_t *m, snap_cluster_t *c, const char *what,
                               snap_build_t *b, char *err, size_t errlen)
{
    if (m->transport_socket) {
        int rc = snapshot_tls_parse(m->transport_socket, TLS_CONFIG_CLIENT, what, b, &c->tls, err,
                                    errlen);
        if (rc < 0)
            return rc;
    }
    if (m->upstream_bind_config && m->upstream_bind_config->source_address) {
        Envoy__Config__Core__V3__Address a = ENVOY__CONFIG__CORE__V3__ADDRESS__INIT;
        a.address_case = ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS;
        a.socket_address = m->upstream_bind_config->source_address;
        char bwhat[340];
        snprintf(bwhat, sizeof(bwhat), "%s: upstream_bind_config.source_address", what);
        struct sockaddr_storage ss = {0};
        int rc = parse_address(&a, &ss, bwhat, err, errlen);
        if (rc < 0)
            return rc;
        memcpy(&c->bind_addr, &ss, sizeof(c->bind_addr)); /* IPv4 or IPv6 */
        c->has_bind = true;
    }
    c->connect_timeout_ms = config_duration_ms(m->connect_timeout, DEFAULT_CONNECT_TIMEOUT_MS);
    c->max_requests = c->max_connections = 1024;
    if (m->circuit_breakers) {
        const Envoy__Config__Cluster__V3__CircuitBreakers *cb = m->circuit_breakers;
        if (cb->n_per_host_thresholds)
            return err_set(err, errlen, -EINVAL,
                           "%s: circuit_breakers.per_host_thresholds is not supported", what);
        for (size_t i = 0; i < cb->n_thresholds; i++) {
            const Envoy__Config__Cluster__V3__CircuitBreakers__Thresholds *t = cb->thresholds[i];
            /* Routes have no priorities yet: every request is DEFAULT priority. */
            if (t->priority != ENVOY__CONFIG__CORE__V3__ROUTING_PRIORITY__DEFAULT)
                continue;
            if (t->max_requests)
                c->max_requests = t->max_requests->value;
            if (t->max_connections)
                c->max_connections = t->max_connections->value;
        }
    }
    c->buffer_limit =
        m->per_connection_buffer_limit_bytes ? m->per_connection_buffer_limit_bytes->value : 0;
    return 0;
}

/* The endpoints of a load assignment (la borrowed: the cluster's own, or its EDS resource; NULL:
 * none), in every locality and priority alike; a DNS cluster's host names become its lookup
 * targets. */
static int cluster_endpoints(const cla_msg_t *la, snap_cluster_t *c, const char *what, char *err,
                             size_t errlen)
{
    size_t total = 0;
    for (size_t i = 0; la && i < la->n_endpoints; i++)
        total += la->endpoints[i]->n_lb_endpoints;
    if (c->kind == CLUSTER_ORIGINAL_DST && total > 0)
        return err_set(err, errlen, -EINVAL, "%s: ORIGINAL_DST clusters take no load_assignment",
                       what);
    c->endpoints = calloc(total ? total : 1, sizeof(*c->endpoints));
    if (c->endpoints == NULL)
        return -ENOMEM;
    for (size_t i = 0; la && i < la->n_endpoints; i++) {
        const Envoy__Config__Endpoint__V3__LocalityLbEndpoints *loc = la->endpoints[i];
        for (size_t j = 0; j < loc->n_lb_endpoints; j++) {
            const Envoy__Config__Endpoint__V3__LbEndpoint *e = loc->lb_endpoints[j];
            char ewhat[340];
            snprintf(ewhat, sizeof(ewhat), "%s: endpoint %zu.%zu", what, i, j);
            if (e->host_identifier_case !=
                ENVOY__CONFIG__ENDPOINT__V3__LB_ENDPOINT__HOST_IDENTIFIER_ENDPOINT)
                return err_set(err, errlen, -EINVAL, "%s: an endpoint with an address is required",
                               ewhat);
            /* Only endpoints the control plane calls HEALTHY, or leaves UNKNOWN, get traffic, as
             * in Envoy by default (it sends to DEGRADED ones only when too few are healthy). */
            if (e->health_status != ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__HEALTHY &&
                e->health_status != ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__UNKNOWN)
                continue;
            snap_endpoint_t *ep = &c->endpoints[c->n_endpoints];
            const char *host = NULL;
            struct sockaddr_storage ss = {0};
            int rc = parse_host_address(e->endpoint->address, &ss, c->dns ? &host : NULL, ewhat,
                                        err, errlen);
            if (rc < 0)
                return rc;
            memcpy(&ep->addr, &ss, sizeof(ep->addr)); /* IPv4 or IPv6: the union's size at most */
            ep->weight = e->load_balancing_weight ? e->load_balancing_weight->value : 1;
            if (ep->weight == 0)
                return err_set(err, errlen, -EINVAL, "%s: load_balancing_weight must be at least 1",
                               ewhat);
            if (c->dns) { /* a target: its endpoints come from snapshot_dns_endpoints */
                if (snapshot_dns_add_target(c->dns, host, &ss, ep->weight) < 0)
                    return -ENOMEM;
                continue;
            }
            snapshot_format_addr(&ep->addr.sa, ep->label, sizeof(ep->label));
            c->n_endpoints++;
        }
    }
    return 0;
}

/* Builds cluster r (the set's, borrowed) into c (zeroed), with a share of its own recording what
 * it takes from the set. was (borrowed; NULL: none) is the last snapshot's cluster of that name,
 * whose stat ids serve again when its stat name and stats are c's. */
static int build_cluster(const config_resource_t *r, snap_cluster_t *c, const snap_cluster_t *was,
                         const snap_resolver_t *resolver, snap_build_t *b, stats_store_t *stats,
                         char *err, size_t errlen)
{
    const snapshot_t *s = b->snap;
    const cluster_msg_t *m = (const cluster_msg_t *)r->msg;
    char what[300], lwhat[600];
    snprintf(what, sizeof(what), "cluster '%s'", m->name);
    if (m->name == NULL || m->name[0] == '\0')
        return err_set(err, errlen, -EINVAL, "cluster: name is required");
    if (snap_share_new(c, r->kept, stats) < 0)
        return -ENOMEM;
    b->share = c->share; /* EDS and SDS record what it takes */
    c->name = strdup(m->name);
    c->stat_name = strdup(m->alt_stat_name && *m->alt_stat_name ? m->alt_stat_name : m->name);
    if (c->name == NULL || c->stat_name == NULL)
        return -ENOMEM;
    if (m->cluster_discovery_type_case ==
        ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_CLUSTER_TYPE)
        return err_set(err, errlen, -EINVAL, "%s: cluster_type (custom clusters) is not supported",
                       what);
    const cla_msg_t *la = m->load_assignment;
    snprintf(lwhat, sizeof(lwhat), "%s", what);
    int rc = cluster_kind(m, c, what, err, errlen);
    if (rc == 0)
        rc = cluster_connections(m, c, what, b, err, errlen);
    if (rc == 0)
        rc = snapshot_cluster_protocol(
            m, c, b->snap->ads.enabled && strcmp(b->snap->ads.cluster, c->name) == 0, what, err,
            errlen);
    if (rc == 0 && c->kind == CLUSTER_EDS)
        rc = snapshot_eds_assignment(b, m, c, &la, lwhat, sizeof(lwhat), what, err, errlen);
    if (rc == 0)
        rc = cluster_endpoints(la, c, lwhat, err, errlen);
    if (rc < 0)
        return rc;
    rc = c->dns ? snapshot_dns_endpoints(c, resolver) : 0;
    if (rc == 0 && !b->trial)
        rc = snapshot_define_cluster_stats(stats, c, was);
    if (rc == 0 && s->cluster_runtime) {
        rc = s->cluster_runtime->link(s->cluster_states, c);
        snap_share_linked(c, s->cluster_runtime, s->cluster_states); /* unlinked either way */
    }
    return rc;
}

static const struct {
    const char *name;
    const char *type_name;
    listener_filter_kind_t kind;
} listener_filters[] = {
    {"envoy.filters.listener.original_dst",
     "envoy.extensions.filters.listener.original_dst.v3.OriginalDst", LISTENER_FILTER_ORIGINAL_DST},
    {"envoy.filters.listener.http_inspector",
     "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector",
     LISTENER_FILTER_HTTP_INSPECTOR},
};

/* The listener filter of this type URL, or of this name when type_url is NULL (as Envoy finds
 * extensions: by the message's full name after the URL's last '/'). */
static listener_filter_kind_t snapshot_listener_filter(const char *name, const char *type_url)
{
    const char *type = type_url ? strrchr(type_url, '/') : NULL;
    type = type ? type + 1 : type_url;
    for (size_t i = 0; i < sizeof(listener_filters) / sizeof(listener_filters[0]); i++) {
        if (type ? strcmp(type, listener_filters[i].type_name) == 0
                 : (name && strcmp(name, listener_filters[i].name) == 0))
            return listener_filters[i].kind;
    }
    return LISTENER_FILTER_UNKNOWN;
}

static int build_filter(const Envoy__Config__Listener__V3__Filter *m, snap_filter_t *f,
                        const snapshot_t *snap, stats_store_t *stats, const char *what, char *err,
                        size_t errlen)
{
    const char *type_url = m->typed_config ? m->typed_config->type_url : NULL;
    f->name = strdup(m->name ? m->name : "");
    if (f->name == NULL)
        return -ENOMEM;
    f->ops = snap->filters ? snap->filters->lookup(m->name, type_url) : NULL;
    if (f->ops == NULL)
        return err_set(err, errlen, -EINVAL, "%s: filter '%s': unsupported network filter%s%s",
                       what, f->name, type_url ? " type " : "", type_url ? type_url : "");
    if (m->typed_config == NULL)
        return err_set(err, errlen, -EINVAL, "%s: filter '%s': typed_config is required", what,
                       f->name);
    char ferr[400];
    int rc = snap->filters->config_parse(f->ops, m->typed_config, snap, stats, &f->config, ferr,
                                         sizeof(ferr));
    if (rc < 0)
        return err_set(err, errlen, -EINVAL, "%s: filter '%s': %s", what, f->name, ferr);
    return 0;
}

static int config_hash(const ProtobufCMessage *m, uint64_t *out);

static int build_chain(const chain_msg_t *m, snap_chain_t *c, bool tls_inspector, snap_build_t *b,
                       stats_store_t *stats, const char *what, char *err, size_t errlen)
{
    const snapshot_t *snap = b->snap;
    c->name = strdup(m->name ? m->name : "");
    if (c->name == NULL || config_hash(&m->base, &c->config_hash) < 0)
        return -ENOMEM;
    const Envoy__Config__Listener__V3__FilterChainMatch *fm = m->filter_chain_match;
    if (fm) {
        if (fm->destination_port) {
            if (fm->destination_port->value < 1 || fm->destination_port->value > 65535)
                return err_set(err, errlen, -EINVAL, "%s: destination_port %u out of range", what,
                               fm->destination_port->value);
            c->dest_port = fm->destination_port->value;
        }
        if (fm->n_application_protocols) {
            c->app_protocols = calloc(fm->n_application_protocols, sizeof(char *));
            if (c->app_protocols == NULL)
                return -ENOMEM;
            for (size_t i = 0; i < fm->n_application_protocols; i++) {
                c->app_protocols[i] = strdup(fm->application_protocols[i]);
                if (c->app_protocols[i] == NULL)
                    return -ENOMEM;
                c->n_app_protocols++;
            }
        }
        if (fm->n_source_prefix_ranges || fm->n_direct_source_prefix_ranges || fm->n_source_ports ||
            fm->source_type || (fm->address_suffix && *fm->address_suffix))
            return err_set(err, errlen, -EINVAL,
                           "%s: filter_chain_match: source_prefix_ranges, "
                           "direct_source_prefix_ranges, source_ports, source_type and "
                           "address_suffix are not supported",
                           what);
        int rc = snapshot_tls_parse_match(fm, tls_inspector, c, what, err, errlen);
        if (rc < 0)
            return rc;
        if (fm->n_prefix_ranges) {
            c->prefixes = calloc(fm->n_prefix_ranges, sizeof(*c->prefixes));
            if (c->prefixes == NULL)
                return -ENOMEM;
            for (size_t i = 0; i < fm->n_prefix_ranges; i++) {
                c->n_prefixes++;
                int rc = snap_parse_cidr(fm->prefix_ranges[i], &c->prefixes[i], what, err, errlen);
                if (rc < 0)
                    return rc;
            }
        }
    }
    if (m->transport_socket) {
        int rc = snapshot_tls_parse(m->transport_socket, TLS_CONFIG_SERVER, what, b, &c->tls, err,
                                    errlen);
        if (rc < 0)
            return rc;
    }
    if (m->n_filters == 0)
        return err_set(err, errlen, -EINVAL, "%s: a filter chain needs at least one filter", what);
    c->filters = calloc(m->n_filters, sizeof(*c->filters));
    if (c->filters == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < m->n_filters; i++) {
        c->n_filters++;
        int rc = build_filter(m->filters[i], &c->filters[i], snap, stats, what, err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static bool same_match(const snap_chain_t *a, const snap_chain_t *b)
{
    if (a->dest_port != b->dest_port || a->n_prefixes != b->n_prefixes ||
        a->n_app_protocols != b->n_app_protocols || !snapshot_tls_same_match(a, b))
        return false;
    for (size_t i = 0; i < a->n_app_protocols; i++)
        if (strcmp(a->app_protocols[i], b->app_protocols[i]) != 0)
            return false;
    for (size_t i = 0; i < a->n_prefixes; i++)
        if (memcmp(&a->prefixes[i], &b->prefixes[i], sizeof(snap_cidr_t)) != 0)
            return false;
    return true;
}

static void free_pred(snap_pred_t *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n_kids; i++)
        free_pred(&p->kids[i]);
    free(p->kids);
}

static int build_pred(const Envoy__Config__Listener__V3__ListenerFilterChainMatchPredicate *m,
                      snap_pred_t *p, int depth, const char *what, char *err, size_t errlen)
{
    if (depth > 16)
        return err_set(err, errlen, -EINVAL, "%s: filter_disabled: nested too deeply", what);
    const Envoy__Config__Listener__V3__ListenerFilterChainMatchPredicate__MatchSet *set = NULL;
    switch (m->rule_case) {
    case ENVOY__CONFIG__LISTENER__V3__LISTENER_FILTER_CHAIN_MATCH_PREDICATE__RULE_ANY_MATCH:
        p->kind = PRED_ANY;
        return 0;
    case ENVOY__CONFIG__LISTENER__V3__LISTENER_FILTER_CHAIN_MATCH_PREDICATE__RULE_DESTINATION_PORT_RANGE:
        p->kind = PRED_PORT_RANGE;
        p->start = m->destination_port_range->start;
        p->end = m->destination_port_range->end;
        return 0;
    case ENVOY__CONFIG__LISTENER__V3__LISTENER_FILTER_CHAIN_MATCH_PREDICATE__RULE_NOT_MATCH:
        p->kind = PRED_NOT;
        p->kids = calloc(1, sizeof(*p->kids));
        if (p->kids == NULL)
            return -ENOMEM;
        p->n_kids = 1;
        return build_pred(m->not_match, p->kids, depth + 1, what, err, errlen);
    case ENVOY__CONFIG__LISTENER__V3__LISTENER_FILTER_CHAIN_MATCH_PREDICATE__RULE_OR_MATCH:
        p->kind = PRED_OR;
        set = m->or_match;
        break;
    case ENVOY__CONFIG__LISTENER__V3__LISTENER_FILTER_CHAIN_MATCH_PREDICATE__RULE_AND_MATCH:
        p->kind = PRED_AND;
        set = m->and_match;
        break;
    default:
        return err_set(err, errlen, -EINVAL, "%s: filter_disabled: a rule is required", what);
    }
    p->kids = calloc(set->n_rules ? set->n_rules : 1, sizeof(*p->kids));
    if (p->kids == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < set->n_rules; i++) {
        p->n_kids++;
        int rc = build_pred(set->rules[i], &p->kids[i], depth + 1, what, err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* A listener filter's filter_disabled predicate, if it has one, into *out (new, owned). */
static int build_disabled(const Envoy__Config__Listener__V3__ListenerFilter *lf, snap_pred_t **out,
                          const char *what, char *err, size_t errlen)
{
    if (lf->filter_disabled == NULL)
        return 0;
    *out = calloc(1, sizeof(**out));
    if (*out == NULL)
        return -ENOMEM;
    return build_pred(lf->filter_disabled, *out, 0, what, err, errlen);
}

/* Names listener i of list into l->name, unique among those built before it. Envoy names a
 * listener without a name by a random UUID; Remora after its address, as Envoy's stats do
 * ("0.0.0.0_8080", "[__]_8080"), so logs, stats and /config_dump stay the same from run to run.
 * The name goes into the message too (the snapshot owns it) for /config_dump to show. */
static int name_listener(const config_resource_list_t *list, size_t i, snap_listener_t *l,
                         const snapshot_t *snap, char *err, size_t errlen)
{
    const config_resource_t *r = &list->v[i];
    listener_msg_t *m = (listener_msg_t *)r->msg;
    char name[INET6_ADDRSTRLEN + 16];
    l->name_generated = m->name == NULL || m->name[0] == '\0';
    if (l->name_generated) {
        char what[160];
        snprintf(what, sizeof(what), "%s[%zu] (no name)", r->origin, r->index);
        struct sockaddr_storage ss;
        int rc = parse_address(m->address, &ss, what, err, errlen);
        if (rc < 0)
            return rc;
        snapshot_format_addr((const struct sockaddr *)&ss, name, sizeof(name));
        for (char *p = name; *p; p++)
            *p = *p == ':' ? '_' : *p;
    }
    const char *n = l->name_generated ? name : m->name;
    for (size_t j = 0; j < i; j++) {
        const snap_listener_t *o = &snap->listeners[j];
        const config_resource_t * or = &list->v[j];
        if (strcmp(o->name, n) == 0 && !o->name_generated && !l->name_generated)
            return err_set(err, errlen, -EINVAL, "listener '%s': defined twice", n);
        if (strcmp(o->name, n) == 0)
            return err_set(err, errlen, -EINVAL,
                           "listener '%s': %s[%zu] and %s[%zu] get the same name (%s has no name "
                           "and is named after its address): give one of them another name",
                           n, or->origin, or->index, or->origin == r->origin ? "" : r->origin,
                           r->index,
                           !l->name_generated   ? "the first"
                           : !o->name_generated ? "the second"
                                                : "each");
    }
    l->name = strdup(n);
    char *copy = l->name_generated ? strdup(n) : NULL;
    if (l->name == NULL || (l->name_generated && copy == NULL)) {
        free(copy);
        return -ENOMEM;
    }
    if (copy) {
        if (m->name != protobuf_c_empty_string)
            free(m->name);
        m->name = copy;
    }
    return 0;
}

/* FNV-1a over the message's wire form: protobuf-c packs fields in field-number order, so the
 * same config gives the same bytes. A Listener's, and each of its FilterChains'. */
static int config_hash(const ProtobufCMessage *m, uint64_t *out)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL)
        return -ENOMEM;
    protobuf_c_message_pack(m, buf);
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ buf[i]) * 0x100000001b3ull;
    free(buf);
    *out = h;
    return 0;
}

/* Builds listener idx of list into l. */
static int build_listener(const config_resource_list_t *list, size_t idx, snap_listener_t *l,
                          snap_build_t *b, stats_store_t *stats, char *err, size_t errlen)
{
    snapshot_t *snap = b->snap;
    const listener_msg_t *m = (const listener_msg_t *)list->v[idx].msg;
    char what[300];
    int rc = name_listener(list, idx, l, snap, err, errlen);
    if (rc == 0)
        rc = config_hash(&m->base, &l->config_hash);
    if (rc < 0)
        return rc;
    snprintf(what, sizeof(what), "listener '%s'", l->name);
    l->stat_name = strdup(m->stat_prefix && *m->stat_prefix ? m->stat_prefix : l->name);
    if (l->stat_name == NULL)
        return -ENOMEM;
    if (m->api_listener) /* the shape remora-cp serves proxyless gRPC clients */
        return err_set(err, errlen, -EINVAL, "%s: api_listener is not supported", what);
    rc = parse_address(m->address, &l->addr, what, err, errlen);
    if (rc < 0)
        return rc;
    l->bind_to_port = m->bind_to_port ? m->bind_to_port->value : true;
    l->ignore_global_cx_limit = m->ignore_global_conn_limit;
    l->cx_limit = RUNTIME_NO_LIMIT;
    rc = runtime_listener_limit(&snap->runtime, l->name, &l->cx_limit, err, errlen);
    if (rc < 0)
        return rc;
    l->inbound = m->traffic_direction == ENVOY__CONFIG__CORE__V3__TRAFFIC_DIRECTION__INBOUND;
    /* Envoy waits 15 s by default; a sidecar must not hold server-first protocols (MySQL,
     * SMTP) that long, so without an explicit listener_filters_timeout sniffing gives up after
     * 100 ms and the connection goes on as plain TCP (Istio's protocolDetectionTimeout). */
    l->filters_timeout_ms = config_duration_ms(m->listener_filters_timeout, 100);
    l->use_original_dst = m->use_original_dst && m->use_original_dst->value;
    l->buffer_limit =
        m->per_connection_buffer_limit_bytes ? m->per_connection_buffer_limit_bytes->value : 0;
    for (size_t i = 0; i < m->n_listener_filters; i++) {
        const Envoy__Config__Listener__V3__ListenerFilter *lf = m->listener_filters[i];
        const char *url = lf->typed_config ? lf->typed_config->type_url : NULL;
        switch (snapshot_listener_filter(lf->name, url)) {
        case LISTENER_FILTER_ORIGINAL_DST:
            l->use_original_dst = true;
            break;
        case LISTENER_FILTER_HTTP_INSPECTOR:
            l->http_inspector = true;
            rc = build_disabled(lf, &l->inspector_disabled, what, err, errlen);
            break;
        default:
            if (!snapshot_tls_is_inspector(lf->name, url))
                return err_set(err, errlen, -EINVAL, "%s: listener filter '%s' is not supported",
                               what, lf->name ? lf->name : (url ? url : "?"));
            l->tls_inspector = true;
            rc = build_disabled(lf, &l->tls_inspector_disabled, what, err, errlen);
        }
        if (rc < 0)
            return rc;
    }
    l->chains = calloc(m->n_filter_chains + 1, sizeof(*l->chains));
    if (l->chains == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < m->n_filter_chains; i++) {
        char cwhat[400];
        const chain_msg_t *cm = m->filter_chains[i];
        if (cm->name && *cm->name)
            snprintf(cwhat, sizeof(cwhat), "%s: filter chain '%s'", what, cm->name);
        else
            snprintf(cwhat, sizeof(cwhat), "%s: filter chain %zu", what, i);
        l->n_chains++; /* counted before it is built, so a failed build is freed too */
        rc = build_chain(cm, &l->chains[i], l->tls_inspector, b, stats, cwhat, err, errlen);
        if (rc < 0)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (same_match(&l->chains[j], &l->chains[i]))
                return err_set(err, errlen, -EINVAL,
                               "%s: has the same filter_chain_match as chain %zu", cwhat, j);
    }
    if (m->default_filter_chain) {
        char cwhat[400];
        snprintf(cwhat, sizeof(cwhat), "%s: default_filter_chain", what);
        l->default_chain = &l->chains[m->n_filter_chains];
        rc = build_chain(m->default_filter_chain, l->default_chain, l->tls_inspector, b, stats,
                         cwhat, err, errlen);
        if (rc < 0)
            return rc;
    }
    l->needs_dst = l->use_original_dst;
    for (size_t i = 0; i < l->n_chains; i++)
        if (l->chains[i].dest_port || l->chains[i].n_prefixes)
            l->needs_dst = true;
    if (l->n_chains == 0 && l->default_chain == NULL)
        return err_set(err, errlen, -EINVAL, "%s: needs filter_chains or a default_filter_chain",
                       what);
    return snapshot_define_listener_stats(stats, l);
}

static void free_chain(const snapshot_t *s, snap_chain_t *c)
{
    for (size_t i = 0; i < c->n_app_protocols; i++)
        free(c->app_protocols[i]);
    free(c->app_protocols);
    for (size_t i = 0; i < c->n_filters; i++) {
        if (c->filters[i].ops && c->filters[i].config)
            s->filters->config_free(c->filters[i].ops, c->filters[i].config);
        free(c->filters[i].name);
    }
    free(c->filters);
    free(c->prefixes);
    free(c->name);
    snapshot_tls_free_match(c);
    snapshot_tls_free(c->tls);
}

static void snapshot_free(snapshot_t *s)
{
    for (size_t i = 0; i < s->n_listeners; i++) {
        snap_listener_t *l = &s->listeners[i];
        for (size_t j = 0; j < l->n_chains; j++)
            free_chain(s, &l->chains[j]);
        if (l->default_chain)
            free_chain(s, l->default_chain);
        free(l->chains);
        free_pred(l->inspector_disabled);
        free(l->inspector_disabled);
        free_pred(l->tls_inspector_disabled);
        free(l->tls_inspector_disabled);
        free(l->name);
        free(l->stat_name);
    }
    free(s->listeners);
    if (s->share_blocks) /* its clusters' references */
        snap_share_blocks_free(s);
    else
        for (size_t i = 0; i < s->n_clusters; i++)
            snap_cluster_release(&s->clusters[i]);
    free(s->clusters);
    free(s->cluster_names.slot);
    free(s->listener_names.slot);
    free(s->node_id);
    free(s->node_cluster);
    free(s->node_workload);
    free(s->node_namespace);
    snapshot_ads_free(&s->ads);
    runtime_free(&s->runtime);
    snapshot_refs_free(&s->references);
    free(s->assignment_names.name);
    free(s->assignment_names.kept);
    snapshot_dynamic_free(s->dynamic);
    snapshot_tls_engines_free(s);
    if (s->cluster_runtime) /* after its clusters dropped their states */
        s->cluster_runtime->unref(s->cluster_states);
    snap_kept_unref(s->bootstrap_kept); /* and the Bootstrap with the last holder */
    free(s);
}

/* The string value of key in node metadata m (borrowed), or NULL. */
static const char *metadata_string(const Google__Protobuf__Struct *m, const char *key)
{
    for (size_t i = 0; m && i < m->n_fields; i++) {
        const Google__Protobuf__Struct__FieldsEntry *f = m->fields[i];
        if (f->key && strcmp(f->key, key) == 0 && f->value &&
            f->value->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE)
            return f->value->string_value;
    }
    return NULL;
}

/* The namespace in a node id (borrowed) "<pod>.<namespace>", "sidecar~<pod>.<namespace>", or
 * Istio's "sidecar~<ip>~<pod>.<namespace>~<namespace>.svc.cluster.local": new, "" when none. */
static char *node_id_namespace(const char *id)
{
    const char *p = id, *t1 = strchr(id, '~'), *t2 = t1 ? strchr(t1 + 1, '~') : NULL;
    if (t2)
        p = t2 + 1; /* sidecar~<ip>~<pod>.<namespace>~... */
    else if (t1)
        p = t1 + 1; /* sidecar~<pod>.<namespace> */
    const char *dot = strchr(p, '.');
    if (dot == NULL)
        return strdup("");
    return strndup(dot + 1, strcspn(dot + 1, ".~"));
}

/* The bootstrap-level settings: node, admin address, xDS sources, runtime. */
static int build_settings(const config_resources_t *res, snapshot_t *s, char *err, size_t errlen)
{
    const Envoy__Config__Core__V3__Node *node = res->node;
    s->node_id = strdup(node && node->id ? node->id : "");
    s->node_cluster = strdup(node && node->cluster ? node->cluster : "");
    if (s->node_id == NULL || s->node_cluster == NULL)
        return -ENOMEM;
    const Google__Protobuf__Struct *md = node ? node->metadata : NULL;
    const char *workload = metadata_string(md, "WORKLOAD_NAME");
    const char *ns = metadata_string(md, "NAMESPACE");
    s->node_workload = strdup(workload ? workload : s->node_cluster);
    s->node_namespace = ns ? strdup(ns) : node_id_namespace(s->node_id);
    if (s->node_workload == NULL || s->node_namespace == NULL)
        return -ENOMEM;
    if (res->admin && res->admin->address) {
        int rc = parse_address(res->admin->address, &s->admin_addr, "admin", err, errlen);
        if (rc < 0)
            return rc;
        s->has_admin = true;
    }
    int rc = snapshot_ads_parse(res->dynamic, &s->ads, err, errlen);
    if (rc < 0)
        return rc;
    s->global_cx_limit = RUNTIME_NO_LIMIT;
    rc = runtime_build(res->runtime, &s->runtime, err, errlen);
    if (rc == 0)
        rc =
            runtime_get_limit(&s->runtime, RUNTIME_GLOBAL_MAX_CX, &s->global_cx_limit, err, errlen);
    return rc;
}

/* Gives s what opts link it to: the filter registry, and the clusters' runtime state (whose
 * table frees what no snapshot holds any more). */
static int link_opts(snapshot_t *s, const snap_build_opts_t *opts, char *err, size_t errlen)
{
    if (opts == NULL)
        return 0;
    s->filters = opts->filters;
    if (opts->cluster_runtime == NULL || opts->cluster_states == NULL)
        return 0;
    int rc = opts->cluster_runtime->begin(opts->cluster_states, s->nworkers, err, errlen);
    if (rc < 0)
        return rc;
    s->cluster_runtime = opts->cluster_runtime;
    s->cluster_states = opts->cluster_runtime->ref(opts->cluster_states);
    return 0;
}

/* Builds b's clusters from res, sharing prev's where their inputs did not change, in blocks
 * of SNAP_SHARE_BLOCK: *from is where the last block begins, *counted which of its clusters
 * hold a reference to their share (snap_share_block_end). */
static int build_clusters_in(config_resources_t *res, snap_build_t *b,
                             const snap_resolver_t *resolver, stats_store_t *stats, size_t *from,
                             uint64_t *counted, char *err, size_t errlen)
{
    snapshot_t *s = b->snap;
    const snapshot_t *prev = b->prev;
    s->eds_own_names = true; /* until a cluster says otherwise, below */
    for (size_t i = 0; i < res->clusters.n; i++) {
        const config_resource_t *r = &res->clusters.v[i];
        snap_cluster_t *c = &s->clusters[i];
        if (i - *from == SNAP_SHARE_BLOCK) {
            int rc = snap_share_block_end(s, prev, *from, *counted, res->clusters.n);
            if (rc < 0)
                return rc;
            *from = i;
            *counted = 0;
        }
        /* Most clusters of an update are the last snapshot's, at the same place. */
        int rc = prev && i < prev->n_clusters
                     ? snap_cluster_reuse_plain(b, &prev->clusters[i], r, stats, c)
                     : 0;
        if (rc < 0)
            return rc;
        if (rc > 0) {
            if (snap_name_index_add_hashed(&s->cluster_names, s->clusters, sizeof(*s->clusters), i,
                                           c->name_hash) >= 0)
                return err_set(err, errlen, -EINVAL, "cluster '%s': defined twice", c->name);
            s->n_clusters++;
            s->eds_own_names = s->eds_own_names && (c->eds_service == NULL || c->eds_own_name);
            continue;
        }
        const char *name = ((const cluster_msg_t *)r->msg)->name;
        uint64_t h = name ? snap_name_hash(name) : 0; /* for the three lookups below */
        if (name && snap_name_index_find_hashed(&s->cluster_names, s->clusters,
                                                sizeof(*s->clusters), name, h) >= 0)
            return err_set(err, errlen, -EINVAL, "cluster '%s': defined twice", name);
        const snap_cluster_t *old =
            prev && name ? snap_prev_cluster(prev, i, name, h, r->kept) : NULL;
        s->n_clusters++;
        *counted |= 1ull << (i - *from); /* a reference of its own, or nothing to release */
        rc = old ? snap_cluster_reuse(b, old, r, resolver, stats, c) : 0;
        if (rc <= 0) /* not a copy of old's: zeroed, for the build or for snapshot_free */
            memset(c, 0, sizeof(*c));
        if (rc == 0) {
            rc = build_cluster(r, c, old, resolver, b, stats, err, errlen);
            b->share = NULL;
            if (rc == 0)
                snap_cluster_mark_plain(c);
            c->name_hash = h;
            c->eds_own_name = c->eds_service && c->name && strcmp(c->eds_service, c->name) == 0;
        }
        if (rc < 0)
            return rc;
        s->eds_own_names = s->eds_own_names && (c->eds_service == NULL || c->eds_own_name);
        if (c->name) /* NULL only for a cluster without a name, refused above */
            snap_name_index_add_hashed(&s->cluster_names, s->clusters, sizeof(*s->clusters), i, h);
    }
    return 0;
}

static int build_clusters(config_resources_t *res, snap_build_t *b, const snap_resolver_t *resolver,
                          stats_store_t *stats, char *err, size_t errlen)
{
    size_t from = 0;
    uint64_t counted = 0;
    int rc = build_clusters_in(res, b, resolver, stats, &from, &counted, err, errlen);
    /* The last block, also after an error: snapshot_free releases the clusters through it. */
    int end = b->snap->n_clusters > from || from == 0
                  ? snap_share_block_end(b->snap, b->prev, from, counted, res->clusters.n)
                  : 0;
    return rc < 0 ? rc : end;
}

int snapshot_build_from(config_resources_t *res, void *bootstrap, const snap_build_opts_t *opts,
                        const snapshot_t *prev, bool trial, stats_store_t *stats, unsigned nworkers,
                        snapshot_t **out, char *err, size_t errlen)
{
    const snap_resolver_t *resolver = opts ? opts->resolver : NULL;
    static _Atomic uint64_t next_version = 1; /* atomic: any thread may build */
    *out = NULL;
    snapshot_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        if (bootstrap)
            protobuf_c_message_free_unpacked(bootstrap, NULL);
        return err_set(err, errlen, -ENOMEM, "out of memory");
    }
    atomic_init(&s->refs, 1);
    if (bootstrap && (s->bootstrap_kept = snap_kept_new(bootstrap, NULL)) == NULL) {
        free(s); /* snap_kept_new freed the Bootstrap */
        return err_set(err, errlen, -ENOMEM, "out of memory");
    }
    s->bootstrap = bootstrap;
    s->nworkers = nworkers ? nworkers : 1;
    s->version = atomic_fetch_add(&next_version, 1);
    s->stats = stats;
    /* This build's own state: builds may run on any thread. Filters reach it through s. */
    snap_build_t b = {.res = res, .snap = s, .prev = prev, .trial = trial};
    s->build = &b;
    /* The xDS resources are copied first and built from the copies: what the snapshot points
     * into is its own (or shared with prev), whatever happens to the messages its source holds.
     * Copies validated by an earlier build are not validated again. */
    int rc = snapshot_dynamic_keep(res, prev ? prev->dynamic : NULL, &s->dynamic);
    if (rc == 0)
        snapshot_dynamic_use(s->dynamic, res);
    if (rc == 0)
        rc = config_resources_validate(res, err, errlen);
    if (rc == 0)
        snapshot_dynamic_validated(s->dynamic);
    if (rc == 0)
        rc = snap_build_index(&b, err, errlen);
    if (rc == 0)
        rc = build_settings(res, s, err, errlen);
    if (rc == 0)
        rc = link_opts(s, opts, err, errlen);
    if (rc == -ENOMEM)
        goto fail_oom;
    if (rc < 0)
        goto fail_built;
    size_t nc = res->clusters.n, nl = res->listeners.n;
    /* Not zeroed here: each cluster is, unless it is a copy of the last snapshot's (most). */
    s->clusters = malloc((nc ? nc : 1) * sizeof(*s->clusters));
    s->listeners = calloc(nl ? nl : 1, sizeof(*s->listeners));
    if (s->clusters == NULL || s->listeners == NULL ||
        snap_name_index_init(&s->cluster_names, nc) < 0 ||
        snap_name_index_init(&s->listener_names, nl) < 0) {
        rc = -ENOMEM;
        goto fail_oom;
    }
    rc = build_clusters(res, &b, resolver, stats, err, errlen);
    if (rc == -ENOMEM)
        goto fail_oom;
    if (rc < 0)
        goto fail_built;
    if (s->ads.enabled && snapshot_find_cluster(s, s->ads.cluster) == NULL) {
        rc = err_set(err, errlen, -EINVAL,
                     "dynamic_resources.ads_config: cluster '%s' is not a cluster of the "
                     "bootstrap's static_resources",
                     s->ads.cluster);
        goto fail_built;
    }
    for (size_t i = 0; i < nl; i++) {
        s->n_listeners++;
        rc = build_listener(&res->listeners, i, &s->listeners[i], &b, stats, err, errlen);
        if (rc == -ENOMEM)
            goto fail_oom;
        if (rc < 0)
            goto fail_built;
        snap_name_index_add(&s->listener_names, s->listeners, sizeof(*s->listeners), i);
    }
    snap_refs_finish(&s->references, prev ? &prev->references : NULL);
    snapshot_tls_keep_engines(&b);
    s->build = NULL;
    snap_build_free(&b);
    *out = s;
    return 0;

fail_oom:
    err_set(err, errlen, -ENOMEM, "out of memory while building the config");
fail_built:
    s->build = NULL;
    snap_build_free(&b);
    snapshot_free(s);
    return rc < 0 ? rc : -EINVAL;
}

int snapshot_build_resources(config_resources_t *res, void *bootstrap,
                             const snap_build_opts_t *opts, stats_store_t *stats, unsigned nworkers,
                             snapshot_t **out, char *err, size_t errlen)
{
    return snapshot_build_from(res, bootstrap, opts, NULL, false, stats, nworkers, out, err,
                               errlen);
}

snapshot_t *snapshot_ref(snapshot_t *snap)
{
    if (snap)
        atomic_fetch_add_explicit(&snap->refs, 1, memory_order_relaxed);
    return snap;
}

void snapshot_unref(snapshot_t *snap)
{
    if (snap && atomic_fetch_sub_explicit(&snap->refs, 1, memory_order_acq_rel) == 1)
        snapshot_free(snap);
}
