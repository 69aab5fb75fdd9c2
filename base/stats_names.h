/* The stats registry's name storage, private to base/stats*.c: every distinct string (a scope, a
 * cluster's name, a metric, a tag) is stored once as a symbol; the parts a group of stats share
 * (scope, label name and value; or a tagged stat's family, name and labels) are stored once as a
 * group; a stat is 8 bytes (its slot id, kind, group and metric symbol). Names and Prometheus
 * families are never stored: they are walked piece by piece to find a stat and written out only
 * when the admin endpoint lists the stats. Not thread-safe: the store's mutex guards it all. */
#ifndef REMORA_STATS_NAMES_H
#define REMORA_STATS_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/stats.h"

#define SYM_NONE 0 /* the symbol of a NULL string */

/* Open addressing over element numbers: a slot holds the element + 1 in its low INDEX_ELEM_BITS
 * and the top bits of the element's hash above them, so most probes of another element are
 * rejected without looking at it. */
#define INDEX_ELEM_BITS 22
typedef struct stats_index {
    uint32_t *slots;
    uint32_t cap; /* a power of two, or 0 before the first insert */
    uint32_t n;
} stats_index_t;

/* A growable array in fixed chunks of 2^shift elements that never move once written, so
 * pointers into it stay valid while it grows. */
typedef struct stats_chunks {
    void **chunks;
    uint32_t nchunks, n;
} stats_chunks_t;

typedef struct stats_names {
    struct arena_chunk *arena; /* the symbols' bytes; the newest chunk first */
    size_t arena_used;         /* bytes used in the newest chunk */
    stats_chunks_t syms;       /* const char *: the string of each symbol; 0 is NULL */
    stats_index_t sym_index;
    stats_chunks_t groups;     /* stat_group_t */
    stats_index_t group_index; /* scoped groups only */
    uint32_t *tag_pool;        /* tagged groups' labels: name and value symbols in pairs */
    uint32_t tag_pool_len, tag_pool_cap;
    stats_chunks_t defs;     /* uint64_t: a packed stat, in definition order */
    stats_index_t def_index; /* by full text name */
} stats_names_t;

/* A stat's text name as the pieces it is made of, without building it:
 * scoped: scope "." [tag_value "."] metric; given: the name; built (Istio's form): for each tag
 * name "=.=" value ";.;", then family. Strings borrowed. */
typedef enum { NAME_SCOPED, NAME_GIVEN, NAME_BUILT } name_form_t;
typedef struct stat_name {
    name_form_t form;
    const char *scope, *tag_value, *metric; /* scoped */
    const char *given;                      /* given */
    const char *family;                     /* built and given */
    const stats_tag_t *tags;                /* a caller's labels, or NULL to use tag_syms */
    const uint32_t *tag_syms;               /* stored labels: name and value symbols */
    const stats_names_t *names;             /* resolves tag_syms */
    size_t n_tags;
} stat_name_t;

/* What a definition asks for (strings borrowed): stats_define's parts when scoped, else the
 * tagged form's family, name (NULL: built) and tags. */
typedef struct stat_request {
    stat_kind_t kind;
    bool tagged;
    const char *scope, *tag_name, *tag_value, *metric;
    const char *family, *name;
    const stats_tag_t *tags;
    size_t n_tags;
} stat_request_t;

/* One stat as stats_list needs it: strings borrowed from the names (valid as long as they are),
 * tags written into the caller's array. */
typedef struct stat_view {
    stat_kind_t kind;
    stat_id_t id;
    stat_name_t name;
    const char *scope, *tag_name, *tag_value, *metric; /* NULL for tagged stats */
    const char *family;                                /* tagged: the raw family, else NULL */
} stat_view_t;

/* Frees everything names (the caller's) holds and zeroes it; a zeroed struct is empty. */
void stats_names_free(stats_names_t *names);

/* Finds the stat named as rq asks (names and rq borrowed) without building its name. Returns
 * its number (0..ndefs-1) or -1. *kind and *id are set when found. Returns -ENOMEM when the
 * index could not grow (nothing changed). */
int64_t stats_names_find(stats_names_t *names, const stat_request_t *rq, stat_kind_t *kind,
                         stat_id_t *id);
/* Adds the stat rq asks for (borrowed; its strings are copied into symbols unless already
 * there) to names (borrowed) with slot id `id`; call only after stats_names_find returned -1.
 * Returns 0, -ENOMEM or -ENOSPC (too many symbols or groups); on error no stat was added. */
int stats_names_add(stats_names_t *names, const stat_request_t *rq, stat_id_t id);
/* The number of stats in names (borrowed); they are numbered in definition order. */
uint32_t stats_names_count(const stats_names_t *names);

/* Stat number i (borrowed names) into *v; its tags, when any, into tags (the caller's, room for
 * stats_names_tag_count(names, i); NULL to skip them). */
void stats_names_view(const stats_names_t *names, uint32_t i, stat_view_t *v, stats_tag_t *tags);
/* How many Prometheus labels stat number i of names (borrowed) has. */
size_t stats_names_tag_count(const stats_names_t *names, uint32_t i);

/* The text name's length, and the name written to dst (the caller's, room for the length + 1,
 * NUL added); n borrowed. */
size_t stat_name_len(const stat_name_t *n);
void stat_name_write(const stat_name_t *n, char *dst);

/* Prometheus metric and label names allow [a-zA-Z0-9_:] (no ':' in labels) and no leading digit;
 * everything else becomes '_'. prom_name_len is the length prom_name_write writes for s
 * (borrowed) into dst (the caller's; no NUL written; returns the end). */
size_t prom_name_len(const char *s);
char *prom_name_write(char *dst, const char *s, bool label);

#endif
