/* remora-cp's own stats, with istiod's Prometheus names where istiod has one, so the dashboards
 * users keep for istiod read remora-cp too (docs/control-plane.md, "Stats"). Main loop only. */
#ifndef REMORA_CP_STATS_H
#define REMORA_CP_STATS_H

#include <stdint.h>

#include "base/stats.h"

/* The xDS types remora-cp serves, in the order it sends them. */
typedef enum cp_type { CP_CDS, CP_EDS, CP_LDS, CP_RDS, CP_SDS, CP_NTYPES } cp_type_t;

typedef struct cp_stats {
    stats_store_t *store;         /* owned */
    stats_slots_t *slots;         /* borrowed from store: the main loop's */
    stat_id_t connected;          /* pilot_xds: connected sidecars (gauge) */
    stat_id_t pushes[CP_NTYPES];  /* pilot_xds_pushes{type}: responses sent */
    stat_id_t rejects[CP_NTYPES]; /* pilot_total_xds_rejects{type}: NACKs received */
    stat_id_t acks[CP_NTYPES];    /* remora_cp_xds_acks_total{type} */
    stat_id_t push_time;          /* pilot_xds_push_time: a change's push to every sidecar */
    stat_id_t convergence;        /* pilot_proxy_convergence_time: first event to pushed */
    stat_id_t debounce;           /* pilot_debounce_time: first event to rescan */
    stat_id_t rescans;            /* remora_cp_mesh_rescans_total */
    stat_id_t mesh_errors;        /* remora_cp_mesh_errors_total: invalid manifests reported */
    stat_id_t mesh_objects;       /* remora_cp_mesh_objects: objects in the index (gauge) */
    stat_id_t resources;          /* remora_cp_xds_resources: distinct resources held (gauge) */
    stat_id_t bytes_sent;         /* remora_cp_xds_sent_bytes_total */
    stat_id_t certs_issued;       /* citadel_server_success_cert_issuance_count */
} cp_stats_t;

/* Istio's lower-case name of t ("cds", ...), static. */
const char *cp_type_name(cp_type_t t);

/* Makes a store with every stat defined into *s (borrowed). Returns 0 or -ENOMEM / a negative
 * error of stats_define_tagged. */
int cp_stats_init(cp_stats_t *s);

/* Frees s's store (s borrowed). */
void cp_stats_free(cp_stats_t *s);

#endif
