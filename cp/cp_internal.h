/* remora-cp's state, shared by its files (cp.c: lifecycle and rebuilds; cp_streams.c: the ADS
 * streams; cp_secrets.c: certificates). Not a public header. */
#ifndef REMORA_CP_INTERNAL_H
#define REMORA_CP_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "certs/ca.h"
#include "cp/cp.h"
#include "cp/cp_admin.h"
#include "cp/cp_stats.h"
#include "cp/cp_watch.h"
#include "mesh/mesh.h"
#include "proxy/grpc/grpc_server.h"
#include "xds/sds/sds_issue.h"
#include "xds/server/ads_server.h"
#include "xds/view/view.h"

/* What a group of sidecars sees: the ADS server's view for one node key (a pod and its service
 * account; every proxyless client shares one). */
typedef struct cp_pview {
    struct cp_pview *next;
    char *key;           /* "<namespace>/<pod>|<service account>" or "grpc|<namespace>" */
    char *ns, *pod, *sa; /* owned; pod NULL for proxyless */
    bool proxyless;
    ads_srv_view_t *v;            /* one reference */
    unsigned streams;             /* streams on it; freed at 0 */
    uint64_t built_gen;           /* the rebuild it was last filled at */
    bool filled;                  /* sig holds what it was last filled with */
    uint64_t sig[ADS_SRV_NTYPES]; /* per type: its groups' or secrets' hashes */
} cp_pview_t;

typedef struct cp_stream {
    struct cp_stream *next, *prev;
    struct cp *cp;
    grpc_scall_t *call; /* borrowed until on_close */
    ads_srv_stream_t *s;
    cp_pview_t *pv; /* NULL until its node is known */
    bool queued;    /* on cp->pump_list */
    struct cp_stream *pump_next;
    char node_id[256];
    char cluster[256];
    char deny[768]; /* why the stream was refused (--tls: the identity did not match) */
} cp_stream_t;

/* A workload certificate per namespace and service account. */
typedef struct cp_cert {
    struct cp_cert *next;
    char *ns, *sa;
    sds_cert_t cert;
    ads_srv_resource_t *res; /* Secret "default" */
} cp_cert_t;

/* view blob -> ADS resource, so that one encoded resource is one ADS resource however many
 * views hold it. */
typedef struct cp_res_map {
    const view_blob_t **keys;
    ads_srv_resource_t **vals;
    size_t cap, n;
} cp_res_map_t;

struct cp {
    uv_loop_t *loop;
    cp_opts_t opts;
    cp_stats_t stats;
    cp_admin_t *admin;
    cp_watch_t *watch;
    mesh_dir_t *dir;
    mesh_index_t *index;
    view_t *view;
    uint64_t gen; /* rebuilds that changed the view */
    cp_res_map_t res;
    cp_pview_t *pviews;
    cp_stream_t *streams;
    cp_stream_t *pump_list;
    unsigned nstreams_with_node;
    grpc_server_t *grpc;
    ca_issuer_t *issuer;
    tls_config_t *tls; /* the xDS port's, with --tls; one reference */
    char identity[CA_SPIFFE_ID_MAX + 1];
    cp_cert_t *certs;
    ads_srv_resource_t *root_secret;
    uv_timer_t *renew; /* owned; freed in its close callback */
    bool ready;
    bool stopping;
    int open_handles;
    ads_srv_counters_t totals;
};

/* cp.c */
/* Fills pv's ADS view from cp's view and certificates (a replace of every type). */
int cp_pview_fill(struct cp *cp, cp_pview_t *pv);
/* The pview of a node key, made (and filled) when new; NULL without memory. */
cp_pview_t *cp_pview_get(struct cp *cp, const char *ns, const char *pod, const char *sa,
                         bool proxyless);
void cp_pview_release(struct cp *cp, cp_pview_t *pv);

/* cp_streams.c */
int cp_streams_register(struct cp *cp);
/* Sends what every queued stream owes, as far as its transport takes it. */
void cp_streams_pump_queued(struct cp *cp);
json_t *cp_streams_syncz(void *ctx);

/* cp_secrets.c */
/* The Secret "default" of ns/sa (borrowed, owned by cp), issued when new; NULL without a CA. */
ads_srv_resource_t *cp_secret_for(struct cp *cp, const char *ns, const char *sa);
int cp_secrets_start(struct cp *cp, char *err, size_t errlen);
/* The xDS port's TLS config (cp->tls): a certificate for cp->identity from the CA, client
 * certificates from the CA required, ALPN h2. */
int cp_secrets_server_tls(struct cp *cp, char *err, size_t errlen);
void cp_secrets_free(struct cp *cp);

#endif
