/* Addresses as text ("198.18.0.3:8080", "[::1]:80"), for logs, /clusters and access logs,
 * listener addresses compared, and CIDR ranges read. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "envoy/config/core/v3/address.pb-c.h"
#include "base/err.h"
#include "xds/snapshot/snapshot.h"
#include "xds/snapshot/snapshot_build.h"

void snapshot_format_addr(const struct sockaddr *sa, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
        snprintf(buf, len, "[%s]:%u", ip, ntohs(s6->sin6_port));
    } else if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
        snprintf(buf, len, "%s:%u", ip, ntohs(s4->sin_port));
    } else {
        snprintf(buf, len, "unknown");
    }
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return memcmp(a, b, sizeof(*a)) == 0;
}

bool snapshot_listener_same_socket(const snap_listener_t *a, const snap_listener_t *b)
{
    return a->bind_to_port == b->bind_to_port && same_addr(&a->addr, &b->addr);
}

int snap_parse_cidr(const Envoy__Config__Core__V3__CidrRange *c, snap_cidr_t *out, const char *what,
                    char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    uint32_t max;
    if (inet_pton(AF_INET, c->address_prefix, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, c->address_prefix, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        return err_set(err, errlen, -EINVAL, "%s: prefix_ranges: '%s' is not an IP address", what,
                       c->address_prefix);
    }
    uint32_t len = c->prefix_len ? c->prefix_len->value : 0;
    if (len > max)
        return err_set(err, errlen, -EINVAL, "%s: prefix_ranges: prefix_len %u is over %u", what,
                       len, max);
    out->prefix_len = (uint8_t)len;
    return 0;
}
