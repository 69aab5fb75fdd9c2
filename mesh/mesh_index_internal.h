/* The index's state, shared by mesh_index.c (tables and applying events) and mesh_endpoints.c
 * (each Service's merged endpoints). */
#ifndef REMORA_MESH_INDEX_INTERNAL_H
#define REMORA_MESH_INDEX_INTERNAL_H

#include "mesh/mesh_internal.h"

struct mesh_index {
    mesh_vec_t kinds[MESH_KIND_COUNT]; /* objects (references) by namespace and name */
    mesh_vec_t svc_ips;                /* ip_entry_t: Services by cluster IP */
    mesh_vec_t pod_ips;                /* ip_entry_t: Pods by IP */
    mesh_vec_t slices; /* EndpointSlices with a service name, by namespace, service, name */
    mesh_vec_t merged; /* merged_t: the merged endpoints asked for, by namespace and name */
    uint64_t generation;
};

/* Orders EndpointSlices (key and item are objects) by namespace, service name, name. */
int mesh_index_cmp_slice(const void *key, const void *item);
/* Forgets the merged endpoints of Service ns/name (borrowed), if kept. */
void mesh_index_cache_drop(mesh_index_t *idx, const char *ns, const char *name);
/* Forgets every merge kept. */
void mesh_index_cache_clear(mesh_index_t *idx);

#endif
