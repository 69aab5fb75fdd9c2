/* envoy.filters.http.header_mutation: adds, overwrites and removes request and response headers
 * as configured, through the stream's header API. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/extensions/filters/http/header_mutation/v3/header_mutation.pb-c.h"
#include "proxy/http/http_filter.h"
#include "xds/config/config.h"
#include "xds/snapshot/route.h"

typedef struct mutation {
    bool remove;
    route_header_add_t add; /* name lowercased; action as in HeaderValueOption */
} mutation_t;

typedef struct header_mutation_config {
    mutation_t *request;
    size_t n_request;
    mutation_t *response;
    size_t n_response;
} header_mutation_config_t;

static char *lower_dup(const char *s)
{
    char *d = strdup(s ? s : "");
    for (char *p = d; p && *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return d;
}

static void free_list(mutation_t *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(m[i].add.name);
        free(m[i].add.value);
    }
    free(m);
}

static void hm_config_free(void *p)
{
    header_mutation_config_t *cfg = p;
    if (cfg == NULL)
        return;
    free_list(cfg->request, cfg->n_request);
    free_list(cfg->response, cfg->n_response);
    free(cfg);
}

static int parse_list(Envoy__Config__Common__MutationRules__V3__HeaderMutation **in, size_t n,
                      mutation_t **out, size_t *n_out, const char *which, char *err, size_t errlen)
{
    *out = calloc(n ? n : 1, sizeof(**out));
    if (*out == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        mutation_t *m = &(*out)[i];
        const Envoy__Config__Common__MutationRules__V3__HeaderMutation *hm = in[i];
        (*n_out)++;
        switch (hm->action_case) {
        case ENVOY__CONFIG__COMMON__MUTATION_RULES__V3__HEADER_MUTATION__ACTION_REMOVE:
            m->remove = true;
            m->add.name = lower_dup(hm->remove);
            break;
        case ENVOY__CONFIG__COMMON__MUTATION_RULES__V3__HEADER_MUTATION__ACTION_APPEND: {
            const Envoy__Config__Core__V3__HeaderValueOption *o = hm->append;
            if (o->header == NULL || o->header->key == NULL || o->header->key[0] == '\0') {
                snprintf(err, errlen, "%s[%zu]: append needs header.key", which, i);
                return -EINVAL;
            }
            m->add.name = lower_dup(o->header->key);
            m->add.value = strdup(o->header->value ? o->header->value : "");
            m->add.action = (route_append_t)o->append_action;
            if (o->append && !o->append->value)
                m->add.action = HDR_OVERWRITE_IF_EXISTS_OR_ADD;
            m->add.keep_empty_value = o->keep_empty_value;
            break;
        }
        default:
            snprintf(err, errlen, "%s[%zu]: only remove and append are supported", which, i);
            return -EINVAL;
        }
        if (m->add.name == NULL || (!m->remove && m->add.value == NULL))
            return -ENOMEM;
    }
    return 0;
}

static int hm_config_parse(const void *any, const struct snapshot *snap, stats_store_t *stats,
                           void **out, char *err, size_t errlen)
{
    (void)snap;
    (void)stats;
    ProtobufCMessage *msg = NULL;
    int rc = config_any_unpack(
        any, &envoy__extensions__filters__http__header_mutation__v3__header_mutation__descriptor,
        &msg, err, errlen);
    if (rc < 0)
        return rc;
    const Envoy__Extensions__Filters__Http__HeaderMutation__V3__HeaderMutation *hm = (void *)msg;
    header_mutation_config_t *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL) {
        rc = -ENOMEM;
    } else if (hm->mutations) {
        rc = parse_list(hm->mutations->request_mutations, hm->mutations->n_request_mutations,
                        &cfg->request, &cfg->n_request, "request_mutations", err, errlen);
        if (rc == 0)
            rc = parse_list(hm->mutations->response_mutations, hm->mutations->n_response_mutations,
                            &cfg->response, &cfg->n_response, "response_mutations", err, errlen);
    }
    protobuf_c_message_free_unpacked(msg, NULL);
    if (rc < 0) {
        hm_config_free(cfg);
        cfg = NULL;
    }
    *out = cfg;
    return rc;
}

static void apply(http_stream_t *s, http_headers_t *h, const mutation_t *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const route_header_add_t *a = &m[i].add;
        if (m[i].remove) {
            http_headers_remove(h, a->name);
            continue;
        }
        size_t vlen = strlen(a->value);
        if (vlen == 0 && !a->keep_empty_value)
            continue;
        bool present = http_headers_find(h, a->name) != NULL;
        if (a->action == HDR_ADD_IF_ABSENT         ? !present
            : a->action == HDR_OVERWRITE_IF_EXISTS ? present
                                                   : true) {
            if (a->action == HDR_APPEND_IF_EXISTS_OR_ADD || a->action == HDR_ADD_IF_ABSENT)
                http_stream_header_add(s, h, a->name, strlen(a->name), a->value, vlen);
            else
                http_stream_header_set(s, h, a->name, a->value, vlen);
        }
    }
}

static int hm_on_request_headers(http_stream_t *s, const void *config, void *state, bool end)
{
    (void)state;
    (void)end;
    const header_mutation_config_t *cfg = config;
    apply(s, http_stream_request_headers(s), cfg->request, cfg->n_request);
    return FILTER_CONTINUE;
}

static int hm_on_response_headers(http_stream_t *s, const void *config, void *state, bool end)
{
    (void)state;
    (void)end;
    const header_mutation_config_t *cfg = config;
    apply(s, http_stream_response_headers(s), cfg->response, cfg->n_response);
    return FILTER_CONTINUE;
}

const http_filter_ops_t header_mutation_filter_ops = {
    .name = "envoy.filters.http.header_mutation",
    .type_url =
        "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
    .config_parse = hm_config_parse,
    .config_free = hm_config_free,
    .on_request_headers = hm_on_request_headers,
    .on_response_headers = hm_on_response_headers,
};
