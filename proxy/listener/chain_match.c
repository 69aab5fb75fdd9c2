/* Filter-chain matching, run by the workers at accept: the Envoy order of criteria over the
 * compiled chains of a listener, and the listener-filter predicates. Reads the snapshot only. */
#include "proxy/listener/chain_match.h"

#include <limits.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

static bool cidr_contains(const snap_cidr_t *c, const struct sockaddr *sa)
{
    const uint8_t *ip;
    if (sa->sa_family == AF_INET && c->family == AF_INET)
        ip = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
    else if (sa->sa_family == AF_INET6 && c->family == AF_INET6)
        ip = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    else
        return false;
    unsigned full = c->prefix_len / 8, rest = c->prefix_len % 8;
    if (memcmp(ip, c->addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (ip[full] & mask) == (c->addr[full] & mask);
}

bool chain_pred_eval(const snap_pred_t *p, uint32_t port)
{
    switch (p->kind) {
    case PRED_ANY:
        return true;
    case PRED_PORT_RANGE:
        return (int64_t)port >= p->start && (int64_t)port < p->end;
    case PRED_NOT:
        return !chain_pred_eval(&p->kids[0], port);
    case PRED_OR:
        for (size_t i = 0; i < p->n_kids; i++)
            if (chain_pred_eval(&p->kids[i], port))
                return true;
        return false;
    default:
        for (size_t i = 0; i < p->n_kids; i++)
            if (!chain_pred_eval(&p->kids[i], port))
                return false;
        return true;
    }
}

/* Envoy's precedence, as a rank compared level by level: destination port, destination prefix
 * (longest first; none ranks lowest), server name (exact, then the longest wildcard), transport
 * protocol, application protocol; at each level a chain naming the criterion beats one that
 * names none. A chain must match every criterion it has. */
#define MATCH_LEVELS 5

/* How well c's server_names match a connection's SNI (NULL: none): -1 no match, 0 the chain has
 * no server_names, else higher is more specific (an exact name above every wildcard, a longer
 * wildcard above a shorter one). */
static int server_name_rank(const snap_chain_t *c, const char *server_name)
{
    if (c->n_server_names == 0)
        return 0;
    if (server_name == NULL || server_name[0] == '\0')
        return -1;
    size_t len = strlen(server_name);
    int best = -1;
    for (size_t i = 0; i < c->n_server_names; i++) {
        const char *n = c->server_names[i];
        if (n[0] != '*') {
            if (strcasecmp(n, server_name) == 0)
                return INT_MAX;
            continue;
        }
        /* "*.example.com" takes any name ending in ".example.com" with something before it. */
        size_t slen = strlen(n + 1);
        if (len > slen && strcasecmp(server_name + len - slen, n + 1) == 0 && (int)slen > best)
            best = (int)slen;
    }
    return best;
}

static bool app_protocol_matches(const snap_chain_t *c, const chain_conn_info_t *ci, int *rank)
{
    *rank = 0;
    if (c->n_app_protocols == 0)
        return true;
    for (size_t i = 0; i < c->n_app_protocols; i++) {
        for (size_t j = 0; j < ci->n_app_protocols; j++) {
            if (ci->app_protocols[j] && strcmp(c->app_protocols[i], ci->app_protocols[j]) == 0) {
                *rank = 1;
                return true;
            }
        }
    }
    return false;
}

/* Fills rank[] for chain c, or returns false when c does not take the connection. */
static bool chain_rank(const snap_chain_t *c, const chain_conn_info_t *ci, uint32_t port,
                       int rank[MATCH_LEVELS])
{
    if (c->dest_port && c->dest_port != port)
        return false;
    int prefix = -1;
    if (c->n_prefixes) {
        prefix = -2;
        for (size_t j = 0; j < c->n_prefixes; j++)
            if (c->prefixes[j].prefix_len > prefix && cidr_contains(&c->prefixes[j], ci->dst))
                prefix = c->prefixes[j].prefix_len;
        if (prefix == -2)
            return false;
    }
    int sni = server_name_rank(c, ci->tls ? ci->server_name : NULL);
    if (sni < 0)
        return false;
    if (c->transport != SNAP_TRANSPORT_ANY && (c->transport == SNAP_TRANSPORT_TLS) != ci->tls)
        return false;
    int app;
    if (!app_protocol_matches(c, ci, &app))
        return false;
    rank[0] = c->dest_port ? 1 : 0;
    rank[1] = prefix;
    rank[2] = sni;
    rank[3] = c->transport != SNAP_TRANSPORT_ANY;
    rank[4] = app;
    return true;
}

const snap_chain_t *chain_select(const snap_listener_t *l, const chain_conn_info_t *ci)
{
    uint32_t port = 0;
    if (ci->dst->sa_family == AF_INET)
        port = ntohs(((const struct sockaddr_in *)ci->dst)->sin_port);
    else if (ci->dst->sa_family == AF_INET6)
        port = ntohs(((const struct sockaddr_in6 *)ci->dst)->sin6_port);
    const snap_chain_t *best = NULL;
    int best_rank[MATCH_LEVELS] = {0};
    for (size_t i = 0; i < l->n_chains; i++) {
        const snap_chain_t *c = &l->chains[i];
        int rank[MATCH_LEVELS];
        if (!chain_rank(c, ci, port, rank))
            continue;
        bool better = best == NULL;
        for (int k = 0; !better && k < MATCH_LEVELS; k++) {
            if (rank[k] != best_rank[k]) {
                better = rank[k] > best_rank[k];
                break;
            }
        }
        if (better) {
            best = c;
            memcpy(best_rank, rank, sizeof(rank));
        }
    }
    return best ? best : l->default_chain;
}

const snap_chain_t *chain_find_by_hash(const snap_listener_t *l, uint64_t config_hash)
{
    for (size_t i = 0; i < l->n_chains; i++)
        if (l->chains[i].config_hash == config_hash)
            return &l->chains[i];
    if (l->default_chain && l->default_chain->config_hash == config_hash)
        return l->default_chain;
    return NULL;
}

const snap_chain_t *chain_select_plain(const snap_listener_t *l, const struct sockaddr *dst,
                                       const char *app_protocol)
{
    chain_conn_info_t ci = {.dst = dst,
                            .app_protocols = app_protocol ? &app_protocol : NULL,
                            .n_app_protocols = app_protocol ? 1 : 0};
    return chain_select(l, &ci);
}
