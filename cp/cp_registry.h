/* From the Kubernetes objects remora-cp reads (mesh/) to the service registry its views are
 * computed from (xds/view/view_types.h), as Istio's Kubernetes controller fills its service
 * registry: which Services and ports the mesh serves, their ready endpoints with the target port
 * each one listens on, the service accounts behind them, the pods as workloads, and the rules
 * of the HTTPRoutes whose parent is a Service (GAMMA), which replace the Service's default
 * route. */
#ifndef REMORA_CP_REGISTRY_H
#define REMORA_CP_REGISTRY_H

#include <stddef.h>

#include "mesh/mesh.h"
#include "xds/view/view_types.h"

/* The annotation of a Namespace that overrides the mesh's mTLS mode in it. */
#define CP_MTLS_ANNOTATION "remora.io/mtls"

/* A registry and the memory behind it. Strings are borrowed from the index it was filled from:
 * it is valid until that index's next mesh_index_apply. */
typedef struct cp_registry {
    view_registry_t reg;
    struct cp_reg_block *blocks; /* owned */
    size_t skipped_services;     /* without a cluster IP yet, or with UDP ports only */
} cp_registry_t;

/* Fills *out (the caller's; free with cp_registry_free) from idx (borrowed) with mesh (borrowed;
 * copied) as the mesh-wide settings. Returns 0 or -ENOMEM. */
int cp_registry_fill(mesh_index_t *idx, const view_mesh_t *mesh, cp_registry_t *out);

/* Frees what r (the caller's) holds and zeroes it. */
void cp_registry_free(cp_registry_t *r);

/* The workload name of a pod, as Istio derives it: a ReplicaSet owner without its hash suffix
 * (the Deployment), another owner's name (StatefulSet, DaemonSet, Job), else the pod's name;
 * into out (outlen bytes). pod borrowed. */
void cp_registry_workload_name(const mesh_object_t *pod, char *out, size_t outlen);

#endif
