/* Every stat is defined once at start; the rest of remora-cp adds to the ids. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cp/cp_stats.h"

static const char *const TYPE_NAMES[CP_NTYPES] = {"cds", "eds", "lds", "rds", "sds"};

const char *cp_type_name(cp_type_t t)
{
    return t < CP_NTYPES ? TYPE_NAMES[t] : "unknown";
}

static int plain(stats_store_t *st, stat_kind_t kind, const char *family, stat_id_t *out)
{
    int64_t id = stats_define_tagged(st, kind, family, family, NULL, 0);
    if (id < 0)
        return (int)id;
    *out = (stat_id_t)id;
    return 0;
}

static int typed(stats_store_t *st, const char *family, cp_type_t t, stat_id_t *out)
{
    stats_tag_t tag = {.name = "type", .value = TYPE_NAMES[t]};
    char name[128];
    snprintf(name, sizeof(name), "%s.%s", family, TYPE_NAMES[t]);
    int64_t id = stats_define_tagged(st, STAT_COUNTER, family, name, &tag, 1);
    if (id < 0)
        return (int)id;
    *out = (stat_id_t)id;
    return 0;
}

static int hist(stats_store_t *st, const char *family, stat_id_t *out)
{
    int64_t id = stats_define_histogram_tagged(st, family, family, NULL, 0);
    if (id < 0)
        return (int)id;
    *out = (stat_id_t)id;
    return 0;
}

int cp_stats_init(cp_stats_t *s)
{
    memset(s, 0, sizeof(*s));
    s->store = stats_store_new(1);
    if (s->store == NULL)
        return -ENOMEM;
    s->slots = stats_slots(s->store, 0);
    stats_store_t *st = s->store;
    int rc = plain(st, STAT_GAUGE, "pilot_xds", &s->connected);
    for (int t = 0; t < CP_NTYPES && rc == 0; t++) {
        rc = typed(st, "pilot_xds_pushes", (cp_type_t)t, &s->pushes[t]);
        if (rc == 0)
            rc = typed(st, "pilot_total_xds_rejects", (cp_type_t)t, &s->rejects[t]);
        if (rc == 0)
            rc = typed(st, "remora_cp_xds_acks_total", (cp_type_t)t, &s->acks[t]);
    }
    if (rc == 0)
        rc = hist(st, "pilot_xds_push_time", &s->push_time);
    if (rc == 0)
        rc = hist(st, "pilot_proxy_convergence_time", &s->convergence);
    if (rc == 0)
        rc = hist(st, "pilot_debounce_time", &s->debounce);
    if (rc == 0)
        rc = plain(st, STAT_COUNTER, "remora_cp_mesh_rescans_total", &s->rescans);
    if (rc == 0)
        rc = plain(st, STAT_COUNTER, "remora_cp_mesh_errors_total", &s->mesh_errors);
    if (rc == 0)
        rc = plain(st, STAT_GAUGE, "remora_cp_mesh_objects", &s->mesh_objects);
    if (rc == 0)
        rc = plain(st, STAT_GAUGE, "remora_cp_xds_resources", &s->resources);
    if (rc == 0)
        rc = plain(st, STAT_COUNTER, "remora_cp_xds_sent_bytes_total", &s->bytes_sent);
    if (rc == 0)
        rc =
            plain(st, STAT_COUNTER, "citadel_server_success_cert_issuance_count", &s->certs_issued);
    if (rc < 0)
        cp_stats_free(s);
    return rc;
}

void cp_stats_free(cp_stats_t *s)
{
    if (s->store)
        stats_store_free(s->store);
    memset(s, 0, sizeof(*s));
}
