/* Route matching, run by the workers for every request: Envoy's choice of virtual host and
 * route over a route table built by xds/snapshot/route_build.c, and the weighted choice of a
 * route's cluster. */
#ifndef REMORA_HTTP_ROUTE_MATCH_H
#define REMORA_HTTP_ROUTE_MATCH_H

#include <stddef.h>
#include <stdint.h>

#include "proxy/http/http.h"
#include "xds/snapshot/route.h"

/* What of a request the matching reads, borrowed for the call: the authority, the path (with
 * its query string), the method (NULL when unknown: a ":method" matcher then sees no header)
 * and the other headers (may be NULL). */
typedef struct route_request {
    const char *authority;
    size_t authority_len;
    const char *path;
    size_t path_len;
    const char *method;
    size_t method_len;
    const http_headers_t *headers;
} route_request_t;

/* Envoy's matching. The virtual host is chosen by authority, case-insensitively: an exact domain
 * first, then the longest suffix wildcard ("*.foo.com", "*-bar.foo.com"), then the longest prefix
 * wildcard ("foo.*"), then "*"; a wildcard must cover at least one character. Port-insensitive:
 * at each of those steps a domain written with a port ("foo.com:8080") is tried against the full
 * authority first, then every domain against the authority with its port stripped, so "foo.com"
 * matches "foo.com:8080" (with ignore_port_in_host_matching only the stripped form is tried).
 * Then the first route, in order, whose path matcher and every header matcher match. Paths are
 * matched as current Envoy does, on the path with the query string and fragment removed, for
 * `prefix` as well as `path` and `path_separated_prefix` (so a prefix containing '?' never
 * matches); case_sensitive defaults to true.
 * Header matchers see q->headers (names compared case-insensitively; repeated headers joined
 * with ","), except the pseudo-headers ":authority", ":path" and ":method", which are q's
 * fields (so a Gateway API method match, written by remora-cp as a ":method" matcher, works);
 * other pseudo-headers (":scheme") are looked up in q->headers.
 * Returns the route (borrowed from t) and sets *vhost (may be NULL) to its virtual host. When a
 * virtual host matches but none of its routes does, returns NULL with *vhost set; when no
 * virtual host matches, returns NULL with *vhost NULL. t borrowed; q borrowed for the call. */
const route_entry_t *route_match(const route_table_t *t, const route_request_t *q,
                                 const route_vhost_t **vhost);

/* Picks one cluster of a route (weighted ones by weight) from a random value in [0, 2^32): the
 * value is scaled onto [0, total_weight), so 0 picks the first cluster with a weight and
 * UINT32_MAX the last. Borrowed from r (r borrowed). */
const route_cluster_t *route_pick_cluster(const route_entry_t *r, uint32_t random);

#endif
