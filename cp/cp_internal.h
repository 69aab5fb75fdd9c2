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

/* What one resource type of a node depends on, and the ADS view that serves it: every node whose
 * groups of that type are the same (docs/control-plane-view.md, "Which groups a node gets")
 * shares it. Clusters and endpoints: one view for every sidecar; outbound listener and routes:
 * per namespace; the inbound listener: per pod; secrets: per namespace and service account;
 * proxyless clients have their own. One endpoint change is then one replace of one view. */
typedef struct cp_tview {
    struct cp_tview *next; /* in its bucket of cp->tviews */
    ads_srv_type_t type;
    char *key;           /* "<type>|" and the groups' kinds and keys, or the identity (SDS) */
    char *ns, *pod, *sa; /* owned: a node of that key (pod NULL for proxyless), to fill it */
    bool proxyless;
    ads_srv_view_t *v; /* one reference */
    unsigned users;    /* node groups on it; freed at 0 */
    bool filled;       /* sig holds what it was last filled with */
    uint64_t sig;      /* its groups' or secrets' hashes */
} cp_tview_t;

#define CP_TVIEW_BUCKETS 1024

/* A group of sidecars: the streams of one node key (a pod and its service account; every
 * proxyless client of a namespace shares one), served each type from the shared view of what
 * that type depends on. */
typedef struct cp_pview {
    struct cp_pview *next;
    char *key;           /* "<namespace>/<pod>|<service account>" or "grpc|<namespace>" */
    char *ns, *pod, *sa; /* owned; pod NULL for proxyless */
    bool proxyless;
    cp_tview_t *tv[ADS_SRV_NTYPES]; /* one use each */
    bool unplaced;                  /* a type could not move (no memory): try again */
    unsigned streams;               /* streams on it; freed at 0 */
} cp_pview_t;

typedef struct cp_pump_budget cp_pump_budget_t;

typedef struct cp_stream {
    struct cp_stream *next, *prev;
    struct cp *cp;
    grpc_scall_t *call; /* borrowed until on_close */
    ads_srv_stream_t *s;
    cp_pview_t *pv; /* NULL until its node is known */
    bool queued;    /* on cp->pump_list */
    struct cp_stream *pump_next;
    struct cp_out *out; /* the response the call holds until HTTP/2 takes it, or NULL */
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
    cp_tview_t *tviews[CP_TVIEW_BUCKETS];
    size_t ntviews;
    uint64_t groups_present; /* which groups cp->view has, when the pviews were last placed */
    cp_stream_t *streams;
    cp_stream_t *pump_list, *pump_tail; /* streams to pump, first come first */
    uv_idle_t *pump_idle;               /* owned; pumps the queue while it is not empty */
    cp_pump_budget_t *budget;           /* owned; outlives cp while calls hold responses */
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
/* The ADS resource of a blob of cp's view (borrowed from cp), or NULL. */
ads_srv_resource_t *cp_res_lookup(const struct cp *cp, const view_blob_t *b);

/* cp_views.c */
/* Fills tv's ADS view from cp's view and certificates when what its type depends on changed.
 * Returns 1 when it was replaced, 0 when nothing changed, or -ENOMEM. */
int cp_tview_fill(struct cp *cp, cp_tview_t *tv);
/* The pview of a node key, made (and its type views found or made and filled) when new; NULL
 * without memory. */
cp_pview_t *cp_pview_get(struct cp *cp, const char *ns, const char *pod, const char *sa,
                         bool proxyless);
void cp_pview_release(struct cp *cp, cp_pview_t *pv);
/* After a rebuild: moves every pview whose groups changed (a pod that appeared) to the type views
 * of its groups now, with its streams, then fills every type view from the new view. Returns how
 * many type views were replaced. */
size_t cp_views_refresh(struct cp *cp);

/* cp_streams.c */
int cp_streams_register(struct cp *cp);
/* After grpc_server_close: lets go of the pump (the responses calls still hold free themselves). */
void cp_streams_stop(struct cp *cp);
/* Sends what every queued stream owes, as far as its transport takes it. */
void cp_streams_pump_queued(struct cp *cp);
json_t *cp_streams_syncz(void *ctx);
/* Serves type t of every stream of pv (borrowed) from v (borrowed). */
void cp_streams_set_type_view(struct cp *cp, const cp_pview_t *pv, ads_srv_type_t t,
                              ads_srv_view_t *v);

/* cp_secrets.c */
/* The Secret "default" of ns/sa (borrowed, owned by cp), issued when new; NULL without a CA. */
ads_srv_resource_t *cp_secret_for(struct cp *cp, const char *ns, const char *sa);
int cp_secrets_start(struct cp *cp, char *err, size_t errlen);
/* The xDS port's TLS config (cp->tls): a certificate for cp->identity from the CA, client
 * certificates from the CA required, ALPN h2. */
int cp_secrets_server_tls(struct cp *cp, char *err, size_t errlen);
void cp_secrets_free(struct cp *cp);

#endif
