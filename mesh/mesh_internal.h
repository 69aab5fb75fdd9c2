/* What the files of mesh/ share and nobody else includes: an object's block allocator, the
 * reader's context and its typed field accessors (libyaml documents), content hashing and the
 * report helpers. */
#ifndef REMORA_MESH_INTERNAL_H
#define REMORA_MESH_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yaml.h>

#include "mesh/mesh.h"

/* A block of an object's strings and arrays; freed with the object. */
typedef struct mesh_block {
    struct mesh_block *next;
    size_t used;
    size_t cap;
    max_align_t data[];
} mesh_block_t;

/* A new object of kind with one reference, owned by the caller, and room for reserve bytes
 * of strings and arrays in the same allocation; NULL without memory. */
mesh_object_t *mesh_object_alloc(mesh_kind_t kind, size_t reserve);
/* The bytes that hold what obj's blocks hold, in one block. */
size_t mesh_object_size(const mesh_object_t *obj);
/* n zeroed bytes in obj's blocks (borrowed), freed with it; NULL without memory. */
void *mesh_alloc(mesh_object_t *obj, size_t n);
/* A copy of s (len bytes, borrowed) in obj's blocks, NUL-terminated; NULL without memory. */
char *mesh_strndup(mesh_object_t *obj, const char *s, size_t len);

#define MESH_FNV_INIT 1469598103934665603ULL
uint64_t mesh_hash(uint64_t h, const void *p, size_t n);

/* Reports: appends a message (formatted, copied) to r (borrowed). At most MESH_REPORT_MAX of
 * each; the rest are counted in one last message. Return 0 or -ENOMEM. */
#define MESH_REPORT_MAX 100
int mesh_report_error(mesh_report_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int mesh_report_note(mesh_report_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Moves every message of from (borrowed, emptied) to the end of to (borrowed). */
int mesh_report_move(mesh_report_t *to, mesh_report_t *from);

/* Aliases are shared by libyaml, not copied, so that a walk through them could visit far more
 * nodes than the text holds: every visit is counted against a budget in proportion to the
 * document's nodes (mesh_visit_budget), which an honest document never reaches. */
size_t mesh_visit_budget(yaml_document_t *yd);

/* The reading of one document (or one item of a List) into one object. */
typedef struct mesh_reader {
    const char *source;
    unsigned doc;  /* 1-based */
    unsigned item; /* 1-based within a List, 0 otherwise */
    yaml_document_t *yd;
    unsigned long line; /* of the last node visited, for messages */
    const char *at;     /* when set, messages start with it instead of file, line, document */
    mesh_object_t *obj; /* being filled; NULL before the kind is known */
    char path[512];
    size_t pathlen;
    size_t visits;     /* of the whole document, across the items of a List */
    size_t max_visits; /* mesh_visit_budget */
    bool failed;
    char err[768];
    mesh_report_t *report; /* notes go here */
} mesh_reader_t;

/* Fails the document: err gets "<path>: <what>" with the path as it stands. Returns -EINVAL
 * (-ENOMEM for mesh_rd_nomem). Only the first failure is kept. */
int mesh_rd_fail(mesh_reader_t *rd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int mesh_rd_nomem(mesh_reader_t *rd);
/* mesh_rd_fail with key (a field name, maybe with an index) added to the path. */
int mesh_rd_fail_at(mesh_reader_t *rd, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Notes something ignored, naming the document and the path. */
void mesh_rd_note(mesh_reader_t *rd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Paths: push returns the old length for pop. */
size_t mesh_rd_push(mesh_reader_t *rd, const char *key);
size_t mesh_rd_push_index(mesh_reader_t *rd, size_t i);
void mesh_rd_pop(mesh_reader_t *rd, size_t mark);

/* The value of key in mapping map (NULL when absent or null); counts the visit. */
yaml_node_t *mesh_rd_get(mesh_reader_t *rd, yaml_node_t *map, const char *key);
/* The mapping (sequence) at key: 0 with *out NULL when absent, -EINVAL when another type. */
int mesh_rd_map(mesh_reader_t *rd, yaml_node_t *map, const char *key, yaml_node_t **out);
int mesh_rd_seq(mesh_reader_t *rd, yaml_node_t *map, const char *key, yaml_node_t **out);
/* The i-th item of seq (counted), pushing "[i]" onto the path (pop with the mark returned). */
yaml_node_t *mesh_rd_item(mesh_reader_t *rd, yaml_node_t *seq, size_t i, size_t *mark);
/* The items of the sequence at key, each a mapping read by fn into an array of size-byte items
 * (new, in the object's memory: *out, *count; NULL and 0 when absent or empty). A failure of fn
 * is returned as it is; an item that is not a mapping is -EINVAL. */
int mesh_rd_maps(mesh_reader_t *rd, yaml_node_t *map, const char *key, size_t size,
                 int (*fn)(mesh_reader_t *, yaml_node_t *, void *), void **out, size_t *count);
/* A scalar as a string, copied into the object and hashed into its content: *out NULL when
 * absent (-EINVAL when required). */
int mesh_rd_str(mesh_reader_t *rd, yaml_node_t *map, const char *key, bool required,
                const char **out);
/* The same, without hashing (metadata the content leaves out). */
int mesh_rd_str_nohash(mesh_reader_t *rd, yaml_node_t *map, const char *key, const char **out);
/* A port number 1-65535: 0 when absent (-EINVAL when required). */
int mesh_rd_port(mesh_reader_t *rd, yaml_node_t *map, const char *key, bool required,
                 uint16_t *out);
/* A port number or an IANA service name (targetPort, NetworkPolicy ports): *num or *name. */
int mesh_rd_port_or_name(mesh_reader_t *rd, yaml_node_t *map, const char *key, uint16_t *num,
                         const char **name);
/* A plain decimal integer in [min, max] (min >= 0): dflt when absent. */
int mesh_rd_uint(mesh_reader_t *rd, yaml_node_t *map, const char *key, long min, long max,
                 long dflt, long *out);
/* A boolean: -1 when absent. */
int mesh_rd_bool(mesh_reader_t *rd, yaml_node_t *map, const char *key, int *out);
/* One of names[0..n): its index, dflt when absent. */
int mesh_rd_enum(mesh_reader_t *rd, yaml_node_t *map, const char *key, const char *const *names,
                 size_t n, int dflt, int *out);
/* protocol: TCP (default), UDP or SCTP. */
int mesh_rd_l4(mesh_reader_t *rd, yaml_node_t *map, const char *key, mesh_l4_t *out);
/* A string map (labels, annotations, selectors), sorted by key. */
int mesh_rd_labels(mesh_reader_t *rd, yaml_node_t *map, const char *key, mesh_labels_t *out);
/* A list of strings. */
int mesh_rd_strings(mesh_reader_t *rd, yaml_node_t *map, const char *key, const char ***out,
                    size_t *n);
/* An IP address (v4 or v6) in text form, checked: *out NULL when absent. */
int mesh_rd_ip(mesh_reader_t *rd, yaml_node_t *map, const char *key, bool required,
               const char **out);
/* Hashes a value the reader computed (a default) into the content. */
void mesh_rd_hash(mesh_reader_t *rd, const char *key, const char *value);

/* The kinds' spec readers (mesh_kinds.c, mesh_netpol.c,
 * mesh_httproute.c): fill rd->obj from the document's
 * root mapping, whose metadata is read already. */
int mesh_read_service(mesh_reader_t *rd, yaml_node_t *root);
int mesh_read_endpoints(mesh_reader_t *rd, yaml_node_t *root);
int mesh_read_endpoint_slice(mesh_reader_t *rd, yaml_node_t *root);
int mesh_read_pod(mesh_reader_t *rd, yaml_node_t *root);
int mesh_read_network_policy(mesh_reader_t *rd, yaml_node_t *root);
int mesh_read_http_route(mesh_reader_t *rd, yaml_node_t *root);
/* A target reference (Endpoints, EndpointSlices) at key. */
int mesh_rd_target_ref(mesh_reader_t *rd, yaml_node_t *map, const char *key,
                       mesh_target_ref_t *out);
/* Reads the object of root (a mapping) whose kind is known to be read: metadata then spec.
 * default_kind (may be NULL) stands for an absent kind (items of a typed List). On success
 * *out is a new reference; 0 with *out NULL for a kind not read (counted as skipped). */
int mesh_read_object(mesh_reader_t *rd, yaml_node_t *root, const char *default_kind,
                     mesh_object_t **out);
/* Loads the documents of data (borrowed) one by one and calls fn for each (its root node and
 * its 1-based number); stops at a syntax error (reported in report for source) or when fn
 * returns -ENOMEM. Returns 0, -EINVAL after a syntax error, or -ENOMEM. */
typedef int (*mesh_doc_fn)(void *ctx, yaml_document_t *yd, yaml_node_t *root, unsigned doc);
int mesh_load_documents(const char *source, const char *data, size_t len, mesh_report_t *report,
                        mesh_doc_fn fn, void *ctx);
/* The text of a scalar node (NULL for another type or a null), its length in *len. */
const char *mesh_scalar(yaml_node_t *node, size_t *len);

/* Sorted arrays of pointers, searched by binary search: the index's and sources' tables. */
typedef struct mesh_vec {
    void **items;
    size_t count;
    size_t cap;
} mesh_vec_t;
typedef int (*mesh_vec_cmp_fn)(const void *key, const void *item);
/* The position of key (borrowed) in v: *found set when an equal item is there, else where it
 * goes. */
size_t mesh_vec_find(const mesh_vec_t *v, const void *key, mesh_vec_cmp_fn cmp, bool *found);
int mesh_vec_insert(mesh_vec_t *v, size_t at, void *item);
void mesh_vec_remove(mesh_vec_t *v, size_t at);
void mesh_vec_free(mesh_vec_t *v);

/* The (kind, namespace, name) key of an object, for tables: compares key (a mesh_key_t) with
 * an item that is a mesh_object_t. */
typedef struct mesh_key {
    mesh_kind_t kind;
    const char *ns;
    const char *name;
} mesh_key_t;
int mesh_key_cmp_object(const void *key, const void *item);
mesh_key_t mesh_key_of(const mesh_object_t *obj);

#endif
