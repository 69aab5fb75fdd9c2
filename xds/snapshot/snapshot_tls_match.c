/* The TLS side of filter chain matching: the tls_inspector listener filter, and a chain's
 * transport_protocol and server_names, parsed into snap_chain_t the way Envoy matches them. */
#include "xds/snapshot/snapshot_tls.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/config/listener/v3/listener_components.pb-c.h"

#define TLS_INSPECTOR_TYPE "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"

/* SNI names are at most 255 bytes on the wire. */
#define TLS_MAX_NAME 255

bool snapshot_tls_is_inspector(const char *name, const char *type_url)
{
    if (type_url) {
        const char *slash = strrchr(type_url, '/');
        return strcmp(slash ? slash + 1 : type_url, TLS_INSPECTOR_TYPE) == 0;
    }
    return name && strcmp(name, "envoy.filters.listener.tls_inspector") == 0;
}

/* A server name as Envoy takes it: an exact DNS name or "*." and a suffix; lowercased. */
static int parse_server_name(const char *s, char **out, const char *what, size_t i, char *err,
                             size_t errlen)
{
    size_t len = strlen(s);
    const char *star = strchr(s, '*');
    if (len == 0 || len > TLS_MAX_NAME) {
        snprintf(err, errlen, "%s: server_names[%zu]: must be 1 to %d bytes", what, i,
                 TLS_MAX_NAME);
        return -EINVAL;
    }
    if (star && (star != s || s[1] != '.' || s[2] == '\0' || strchr(s + 1, '*'))) {
        snprintf(err, errlen,
                 "%s: server_names[%zu]: '%s': a wildcard is only a leading '*.' before a "
                 "domain",
                 what, i, s);
        return -EINVAL;
    }
    *out = strdup(s);
    if (*out == NULL)
        return -ENOMEM;
    for (char *c = *out; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    return 0;
}

int snapshot_tls_parse_match(const Envoy__Config__Listener__V3__FilterChainMatch *fm,
                             bool tls_inspector, snap_chain_t *c, const char *what, char *err,
                             size_t errlen)
{
    const char *tp = fm->transport_protocol;
    if (tp && tp[0]) {
        if (strcmp(tp, "raw_buffer") == 0) {
            c->transport = SNAP_TRANSPORT_RAW_BUFFER; /* every connection, without an inspector */
        } else if (strcmp(tp, "tls") == 0) {
            c->transport = SNAP_TRANSPORT_TLS;
        } else {
            snprintf(err, errlen,
                     "%s: transport_protocol '%s' is not supported (raw_buffer and tls are)", what,
                     tp);
            return -EINVAL;
        }
    }
    bool needs_inspector = c->transport == SNAP_TRANSPORT_TLS || fm->n_server_names > 0;
    if (needs_inspector && !tls_inspector) {
        snprintf(err, errlen,
                 "%s: %s needs the envoy.filters.listener.tls_inspector listener filter", what,
                 fm->n_server_names ? "server_names" : "transport_protocol 'tls'");
        return -EINVAL;
    }
    if (fm->n_server_names == 0)
        return 0;
    c->server_names = calloc(fm->n_server_names, sizeof(char *));
    if (c->server_names == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < fm->n_server_names; i++) {
        int rc = parse_server_name(fm->server_names[i], &c->server_names[i], what, i, err, errlen);
        if (rc < 0)
            return rc;
        c->n_server_names++;
    }
    return 0;
}

void snapshot_tls_free_match(snap_chain_t *c)
{
    for (size_t i = 0; i < c->n_server_names; i++)
        free(c->server_names[i]);
    free(c->server_names);
    c->server_names = NULL;
    c->n_server_names = 0;
}

bool snapshot_tls_same_match(const snap_chain_t *a, const snap_chain_t *b)
{
    if (a->transport != b->transport)
        return false;
    if (a->n_server_names == 0 || b->n_server_names == 0)
        return a->n_server_names == b->n_server_names;
    for (size_t i = 0; i < a->n_server_names; i++)
        for (size_t j = 0; j < b->n_server_names; j++)
            if (strcmp(a->server_names[i], b->server_names[j]) == 0)
                return true;
    return false;
}
