/* The input of remora-cp: Kubernetes objects read from manifests (YAML or JSON, multi-document,
 * `kind: List`, `kubectl get -o yaml` output) or from recorded API responses (List + watch
 * events), turned into batches of watch events (ADDED / MODIFIED / DELETED), and the index that
 * applies them and answers lookups. No sockets, no timers: the program drives the sources. See
 * docs/control-plane.md, "Input: Kubernetes objects". */
#ifndef REMORA_MESH_H
#define REMORA_MESH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mesh/mesh_types.h"

/* ---- objects ------------------------------------------------------------------------------ */

/* Returns obj (borrowed) with one more reference, owned by the caller. */
mesh_object_t *mesh_object_ref(mesh_object_t *obj);
/* Drops the caller's reference (taken); the last one frees the object. NULL is ignored. */
void mesh_object_unref(mesh_object_t *obj);
/* Orders objects by kind, namespace, name (both borrowed). */
int mesh_object_cmp(const mesh_object_t *a, const mesh_object_t *b);
/* True when a and b (borrowed) are the same object with the same content: everything the mesh
 * reads but where it was read from and its resourceVersion (compared by a 64-bit hash of the
 * fields, in a canonical order). */
bool mesh_object_same(const mesh_object_t *a, const mesh_object_t *b);

/* The Kubernetes name of a kind ("EndpointSlice"), static. */
const char *mesh_kind_name(mesh_kind_t kind);
/* The kind of a Kubernetes kind name (borrowed); -1 for kinds the mesh does not read. */
int mesh_kind_from_name(const char *name);
/* The name of a mesh protocol ("http", "grpc-web", "unknown"), static. */
const char *mesh_proto_name(mesh_app_proto_t proto);
/* The mesh protocol of a Service port: UDP for a UDP port, else appProtocol (borrowed, may be
 * NULL) when it names one (case-insensitive; "kubernetes.io/h2c" is http2), else the port
 * name's (borrowed, may be NULL) Istio rule `<protocol>` or `<protocol>-<suffix>`, else
 * MESH_PROTO_UNKNOWN. */
mesh_app_proto_t mesh_port_protocol(mesh_l4_t l4, const char *app_protocol, const char *name);

/* The value of key in labels (both borrowed; labels sorted, as read), borrowed; NULL when
 * absent. */
const char *mesh_label_get(const mesh_labels_t *labels, const char *key);
/* True when every entry of selector is in labels (both borrowed): a Service's selector. An
 * empty selector matches every label set (a Service without one selects no Pods: see
 * has_selector). */
bool mesh_labels_match(const mesh_labels_t *selector, const mesh_labels_t *labels);
/* True when sel's matchLabels and every expression hold for labels (both borrowed): a
 * NetworkPolicy's selectors. An empty selector matches everything. */
bool mesh_selector_match(const mesh_selector_t *sel, const mesh_labels_t *labels);

/* ---- reports ------------------------------------------------------------------------------ */

/* What reading or scanning had to say: errors (a document not taken, a duplicate) and notes (a
 * field ignored). Every message names its file and document. */
typedef struct mesh_report {
    char **errors; /* owned */
    size_t nerrors;
    char **notes; /* owned */
    size_t nnotes;
    size_t skipped; /* documents or items of other kinds (Deployment, ConfigMap, ...) */
} mesh_report_t;

/* Frees the messages of r (the caller's) and zeroes it. */
void mesh_report_free(mesh_report_t *r);

/* ---- the reader --------------------------------------------------------------------------- */

/* What one buffer held. */
typedef struct mesh_read {
    mesh_object_t **objects; /* references owned by this struct, in document order */
    size_t count;
    mesh_report_t report;
    char *resource_version; /* a List's metadata.resourceVersion, owned; NULL when none */
} mesh_read_t;

/* Reads every document of data (len bytes, borrowed; YAML or JSON) into out (the caller's,
 * zeroed first; free with mesh_read_free). source (borrowed, copied into each object) names
 * the file in messages. A document with an error is left out and reported; the others are
 * read. Returns 0, -EINVAL when any document had an error (out->report.errors says which), or
 * -ENOMEM. */
int mesh_read_buffer(const char *source, const char *data, size_t len, mesh_read_t *out);
/* Frees what out (the caller's) holds and zeroes it. */
void mesh_read_free(mesh_read_t *out);

/* One Kubernetes watch event: {"type":"ADDED|MODIFIED|DELETED|BOOKMARK","object":{...}}. */
typedef struct mesh_watch_event {
    mesh_event_type_t type;
    mesh_object_t *object; /* new reference, owned; NULL for a BOOKMARK or a kind not read */
    char resource_version[128];
} mesh_watch_event_t;

/* Reads one watch event (data, len bytes, borrowed: one JSON line) into out (the caller's;
 * release out->object with mesh_object_unref). source and line (1-based) name it in messages.
 * An ERROR event (the API's Status, e.g. 410 Gone) is -EPROTO with its message in err
 * (borrowed, errlen bytes). Returns 0, -EINVAL (err says why), -EPROTO or -ENOMEM. */
int mesh_read_watch_event(const char *source, unsigned line, const char *data, size_t len,
                          mesh_watch_event_t *out, char *err, size_t errlen);

/* ---- batches ------------------------------------------------------------------------------ */

/* Appends an event to b (the caller's); the batch takes its own reference to obj (borrowed).
 * Returns 0 or -ENOMEM. */
int mesh_batch_add(mesh_batch_t *b, mesh_event_type_t type, mesh_object_t *obj);
/* Drops the batch's references and frees its array; b (the caller's) is zeroed. */
void mesh_batch_free(mesh_batch_t *b);

/* ---- the index ---------------------------------------------------------------------------- */

typedef struct mesh_index mesh_index_t;

/* A Service named by namespace and name; strings owned by the mesh_changes_t that holds it. */
typedef struct mesh_name {
    char *ns;
    char *name;
} mesh_name_t;

/* What one mesh_index_apply changed. */
typedef struct mesh_changes {
    mesh_batch_t events;            /* the events that changed something, in batch order */
    size_t counts[MESH_KIND_COUNT]; /* of events, by kind */
    mesh_name_t *endpoints;         /* Services whose merged endpoints may have changed, sorted */
    size_t nendpoints;
    uint64_t generation; /* the index's generation after the apply */
} mesh_changes_t;

/* Frees what c (the caller's) holds and zeroes it. */
void mesh_changes_free(mesh_changes_t *c);

/* A new, empty index (generation 0), owned by the caller; NULL without memory. */
mesh_index_t *mesh_index_new(void);
/* Frees idx (taken) and drops its references. NULL is ignored. */
void mesh_index_free(mesh_index_t *idx);
/* Applies the events of batch (borrowed) with Kubernetes watch semantics: ADDED or MODIFIED of
 * an object puts it (the index takes a reference), DELETED removes the object of that kind,
 * namespace and name; an event that changes nothing (the same content, or deleting what is not
 * there) is dropped. When anything changed, the generation goes up by one. changes (the
 * caller's, may be NULL) is filled with what changed; free it with mesh_changes_free. Returns 0
 * or -ENOMEM (the events before the one that failed are applied, and in changes). */
int mesh_index_apply(mesh_index_t *idx, const mesh_batch_t *batch, mesh_changes_t *changes);
/* The number of applies that changed something (idx borrowed). */
uint64_t mesh_index_generation(const mesh_index_t *idx);

/* Every lookup below borrows idx and its string arguments, and returns objects and arrays
 * borrowed from the index: valid until the next mesh_index_apply (mesh_object_ref keeps an
 * object longer). */

/* The object of kind named ns/name (ns "" for a Namespace), or NULL. */
const mesh_object_t *mesh_index_get(const mesh_index_t *idx, mesh_kind_t kind, const char *ns,
                                    const char *name);
/* The objects of kind, sorted by namespace then name; *count is set. */
mesh_object_t *const *mesh_index_list(const mesh_index_t *idx, mesh_kind_t kind, size_t *count);
/* The Service whose clusterIP or clusterIPs holds ip (text form), or NULL. */
const mesh_object_t *mesh_index_service_by_ip(const mesh_index_t *idx, const char *ip);
/* The Pod whose podIP or podIPs holds ip: a running one first, then by namespace and name; or
 * NULL. */
const mesh_object_t *mesh_index_pod_by_ip(const mesh_index_t *idx, const char *ip);
/* The merged endpoints of Service ns/name: from its EndpointSlices (kubernetes.io/service-name,
 * IPv4 only, one entry per address, the first slice by name winning a duplicate) when any
 * exist, else from its Endpoints. *count is set (0 with NULL when there are none). Returns NULL
 * with *count 0 also when memory ran out. */
const mesh_endpoint_t *mesh_index_endpoints(mesh_index_t *idx, const char *ns, const char *name,
                                            size_t *count);

/* ---- the directory source ----------------------------------------------------------------- */

typedef struct mesh_dir mesh_dir_t;

/* A source over the directory path (borrowed, copied): nothing read yet. NULL without memory. */
mesh_dir_t *mesh_dir_new(const char *path);
/* Frees d (taken) and drops its references. NULL is ignored. */
void mesh_dir_free(mesh_dir_t *d);
/* Scans the directory (`*.yaml`, `*.yml`, `*.json`, not recursive, by name) and appends to out
 * (the caller's batch) the events that turn what was served into what the files now hold:
 * a file read again only when its size, inode or times changed; a file with an error keeps its
 * last good objects; a removed file removes its objects; an object whose content did not
 * change yields nothing; an object defined in two places is served from the first (by file
 * name, then document) and reported naming both. report (the caller's, may be NULL) gets the
 * errors and notes of the files read in this scan. Returns 0, -EINVAL when something was
 * reported as an error (the events are still valid), or a negative errno when the directory
 * cannot be read (then nothing is appended). */
int mesh_dir_scan(mesh_dir_t *d, mesh_batch_t *out, mesh_report_t *report);

/* ---- the recorded API source -------------------------------------------------------------- */

typedef struct mesh_api mesh_api_t;

/* A source fed with the API's responses: nothing known yet. NULL without memory. */
mesh_api_t *mesh_api_new(void);
/* Frees a (taken). NULL is ignored. */
void mesh_api_free(mesh_api_t *a);
/* Takes a List response of kind (data, len bytes, borrowed; its items may omit kind and
 * apiVersion, as the API leaves them out) as the whole truth for that kind, as an informer's
 * relist does: events for what is new, changed or gone are appended to out. The list's
 * resourceVersion becomes the one to watch from. source (borrowed) names it in messages.
 * Returns 0, -EINVAL when an item had an error (reported and left out; the others are applied
 * but nothing is deleted, since the bad item might be one of those) or -ENOMEM. */
int mesh_api_list(mesh_api_t *a, mesh_kind_t kind, const char *source, const char *data, size_t len,
                  mesh_batch_t *out, mesh_report_t *report);
/* Takes watch events, one JSON object per line (data, len bytes, borrowed), and appends their
 * events to out; BOOKMARKs only move the resourceVersion. An event of a kind not read is
 * counted as skipped. Returns 0, -EINVAL (a bad line: reported, the others applied), -EPROTO
 * (an ERROR event, e.g. 410 Gone: the caller must list again; lines before it are applied) or
 * -ENOMEM. */
int mesh_api_watch(mesh_api_t *a, const char *source, const char *data, size_t len,
                   mesh_batch_t *out, mesh_report_t *report);
/* The resourceVersion to watch from (borrowed from a; "" before the first list). */
const char *mesh_api_resource_version(const mesh_api_t *a);

#endif
