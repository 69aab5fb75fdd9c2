/* remora-cp: the control plane. It reads a directory of Kubernetes manifests, computes what
 * every sidecar needs (xds/view), signs their certificates (xds/sds), and serves ADS to them
 * (xds/server over proxy/grpc's server), pushing only what changed to only the sidecars it
 * concerns. One libuv loop (docs/control-plane.md). */
#ifndef REMORA_CP_H
#define REMORA_CP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

typedef struct cp cp_t;

typedef struct cp_opts {
    const char *mesh_dir;           /* the manifests (borrowed) */
    struct sockaddr_storage listen; /* the xDS port: 127.0.0.1:15010 by default */
    struct sockaddr_storage admin;  /* the admin endpoint: 127.0.0.1:15014 */
    const char *ca_dir;             /* the mesh CA (remoractl certs layout), or NULL: no SDS */
    /* With ca_dir: the xDS port speaks mutual TLS (ALPN h2) with a certificate the CA issues for
     * `identity`, every sidecar must present one from the CA, and a sidecar gets only the
     * config and certificate of the identity its certificate names. */
    bool tls;
    const char *identity;         /* the control plane's SPIFFE ID; NULL:
                                     spiffe://<td>/ns/remora-system/sa/remora-cp */
    const char *trust_domain;     /* "cluster.local" */
    const char *mtls;             /* "off", "permissive", "strict": the mesh-wide mode */
    uint64_t debounce_ms;         /* 100 */
    uint64_t debounce_max_ms;     /* 10000 */
    uint64_t debounce_leading_ms; /* a lone change after a quiet spell waits this: 10 */
    uint64_t poll_ms;             /* rescan this often besides events; 0: never */
    int64_t cert_ttl_s;           /* workload certificates' lifetime; 0: 24 h */
    uint32_t keepalive_ms;        /* PINGs to idle sidecar connections; 0: 30 s */
} cp_opts_t;

/* Fills *o (borrowed) with the defaults. */
void cp_opts_default(cp_opts_t *o);

/* Starts the control plane on loop (borrowed; must outlive it) with o (borrowed; strings must
 * outlive it): reads the mesh directory once, then serves. *out is the caller's, ended with
 * cp_stop. Returns 0 or a negative error with err saying what failed. */
int cp_start(uv_loop_t *loop, const cp_opts_t *o, cp_t **out, char *err, size_t errlen);

/* Stops serving: the xDS port drains (GOAWAY; streams end after grace_ms), the watch and the
 * admin endpoint close, and cp (taken) is freed once its handles are closed (run the loop). */
void cp_stop(cp_t *cp, uint64_t grace_ms);

#endif
