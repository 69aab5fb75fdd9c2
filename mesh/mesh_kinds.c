/* The specs of Services, Endpoints, EndpointSlices and Pods: the fields the mesh uses, checked,
 * with the API's defaults. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "mesh/mesh_internal.h"

/* The items of the list at key: *seq and *n (0 when absent); fails on another type. */
static int list_at(mesh_reader_t *rd, yaml_node_t *map, const char *key, yaml_node_t **seq,
                   size_t *n)
{
    *n = 0;
    if (mesh_rd_seq(rd, map, key, seq) < 0)
        return -EINVAL;
    if (*seq)
        *n = (size_t)((*seq)->data.sequence.items.top - (*seq)->data.sequence.items.start);
    return 0;
}

/* The i-th item of seq, which must be a mapping; the path gets "[i]". */
static yaml_node_t *map_item(mesh_reader_t *rd, yaml_node_t *seq, size_t i, size_t *mark)
{
    yaml_node_t *item = mesh_rd_item(rd, seq, i, mark);
    if (item == NULL || item->type != YAML_MAPPING_NODE) {
        mesh_rd_fail(rd, "must be a mapping");
        return NULL;
    }
    return item;
}

static void *alloc_array(mesh_reader_t *rd, size_t n, size_t size)
{
    void *p = mesh_alloc(rd->obj, n * size);
    if (p == NULL)
        mesh_rd_nomem(rd);
    return p;
}

static int spec_of(mesh_reader_t *rd, yaml_node_t *root, yaml_node_t **spec)
{
    if (mesh_rd_map(rd, root, "spec", spec) < 0)
        return -EINVAL;
    return *spec ? 0 : mesh_rd_fail_at(rd, "spec", "missing");
}

/* ---- Service ------------------------------------------------------------------------------ */

static int read_svc_port(mesh_reader_t *rd, yaml_node_t *p, mesh_svc_port_t *out, bool several)
{
    int rc = mesh_rd_str(rd, p, "name", several, &out->name);
    if (rc == 0)
        rc = mesh_rd_port(rd, p, "port", true, &out->port);
    if (rc == 0)
        rc = mesh_rd_port_or_name(rd, p, "targetPort", &out->target_port, &out->target_port_name);
    if (rc == 0)
        rc = mesh_rd_l4(rd, p, "protocol", &out->protocol);
    if (rc == 0)
        rc = mesh_rd_str(rd, p, "appProtocol", false, &out->app_protocol);
    if (rc == 0)
        rc = mesh_rd_port(rd, p, "nodePort", false, &out->node_port);
    if (rc < 0)
        return rc;
    if (out->target_port == 0 && out->target_port_name == NULL) {
        char text[8];
        out->target_port = out->port; /* the API's default, hashed as if written */
        snprintf(text, sizeof(text), "%u", out->port);
        mesh_rd_hash(rd, "targetPort", text);
    }
    out->mesh_protocol = mesh_port_protocol(out->protocol, out->app_protocol, out->name);
    if (out->name == NULL)
        out->name = "";
    return 0;
}

static int read_svc_ports(mesh_reader_t *rd, yaml_node_t *spec, mesh_service_t *svc)
{
    yaml_node_t *seq;
    size_t n;
    if (list_at(rd, spec, "ports", &seq, &n) < 0)
        return -EINVAL;
    if ((svc->ports = alloc_array(rd, n, sizeof(*svc->ports))) == NULL)
        return -ENOMEM;
    size_t top = mesh_rd_push(rd, "ports");
    for (size_t i = 0; i < n; i++) {
        size_t mark;
        yaml_node_t *p = map_item(rd, seq, i, &mark);
        int rc = p ? read_svc_port(rd, p, &svc->ports[i], n > 1) : -EINVAL;
        if (rc < 0)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (svc->ports[i].name[0] && strcmp(svc->ports[j].name, svc->ports[i].name) == 0)
                return mesh_rd_fail_at(rd, "name", "\"%s\" names ports[%zu] too",
                                       svc->ports[i].name, j);
        mesh_rd_pop(rd, mark);
        svc->nports++;
    }
    mesh_rd_pop(rd, top);
    return 0;
}

static int check_cluster_ip(mesh_reader_t *rd, const char *ip, const char *field)
{
    struct in6_addr buf;
    if (strcmp(ip, "None") == 0 || ip[0] == '\0' || inet_pton(AF_INET, ip, &buf) == 1 ||
        inet_pton(AF_INET6, ip, &buf) == 1)
        return 0;
    return mesh_rd_fail_at(rd, field, "\"%.64s\" is neither an IP address nor None", ip);
}

int mesh_read_service(mesh_reader_t *rd, yaml_node_t *root)
{
    static const char *const types[] = {"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"};
    mesh_service_t *svc = &rd->obj->svc;
    yaml_node_t *spec;
    int type;
    if (spec_of(rd, root, &spec) < 0)
        return -EINVAL;
    size_t mark = mesh_rd_push(rd, "spec");
    int rc = mesh_rd_enum(rd, spec, "type", types, 4, MESH_SVC_CLUSTER_IP, &type);
    if (rc == 0)
        rc = mesh_rd_str(rd, spec, "clusterIP", false, &svc->cluster_ip);
    if (rc == 0 && svc->cluster_ip)
        rc = check_cluster_ip(rd, svc->cluster_ip, "clusterIP");
    if (rc == 0)
        rc = mesh_rd_strings(rd, spec, "clusterIPs", &svc->cluster_ips, &svc->ncluster_ips);
    for (size_t i = 0; rc == 0 && i < svc->ncluster_ips; i++) {
        char key[32];
        snprintf(key, sizeof(key), "clusterIPs[%zu]", i);
        rc = check_cluster_ip(rd, svc->cluster_ips[i], key);
    }
    if (rc == 0)
        rc = mesh_rd_str(rd, spec, "externalName", type == MESH_SVC_EXTERNAL_NAME,
                         &svc->external_name);
    if (rc == 0)
        rc = mesh_rd_labels(rd, spec, "selector", &svc->selector);
    if (rc == 0)
        rc = read_svc_ports(rd, spec, svc);
    if (rc < 0)
        return rc;
    mesh_rd_pop(rd, mark);
    svc->type = (mesh_svc_type_t)type;
    if (svc->cluster_ip && svc->cluster_ip[0] == '\0')
        svc->cluster_ip = NULL;
    if (svc->cluster_ip == NULL && svc->ncluster_ips > 0)
        svc->cluster_ip = svc->cluster_ips[0];
    svc->headless = svc->cluster_ip && strcmp(svc->cluster_ip, "None") == 0;
    svc->has_selector = svc->selector.count > 0;
    return 0;
}

/* ---- Endpoints ---------------------------------------------------------------------------- */

static int read_ep_ports(mesh_reader_t *rd, yaml_node_t *map, bool port_required,
                         mesh_ep_port_t **out, size_t *count)
{
    yaml_node_t *seq;
    size_t n;
    if (list_at(rd, map, "ports", &seq, &n) < 0)
        return -EINVAL;
    if ((*out = alloc_array(rd, n, sizeof(**out))) == NULL)
        return -ENOMEM;
    size_t top = mesh_rd_push(rd, "ports");
    for (size_t i = 0; i < n; i++) {
        size_t mark;
        mesh_ep_port_t *p = &(*out)[i];
        yaml_node_t *item = map_item(rd, seq, i, &mark);
        int rc = item ? mesh_rd_str(rd, item, "name", false, &p->name) : -EINVAL;
        if (rc == 0)
            rc = mesh_rd_port(rd, item, "port", port_required, &p->port);
        if (rc == 0)
            rc = mesh_rd_l4(rd, item, "protocol", &p->protocol);
        if (rc == 0)
            rc = mesh_rd_str(rd, item, "appProtocol", false, &p->app_protocol);
        if (rc < 0)
            return rc;
        if (p->name == NULL)
            p->name = "";
        mesh_rd_pop(rd, mark);
    }
    *count = n;
    mesh_rd_pop(rd, top);
    return 0;
}

static int read_ep_addresses(mesh_reader_t *rd, yaml_node_t *subset, const char *key, bool ready,
                             mesh_ep_subset_t *out)
{
    yaml_node_t *seq;
    size_t n;
    if (list_at(rd, subset, key, &seq, &n) < 0)
        return -EINVAL;
    size_t top = mesh_rd_push(rd, key);
    for (size_t i = 0; i < n; i++) {
        size_t mark;
        mesh_ep_address_t *a = &out->addresses[out->naddresses];
        yaml_node_t *item = map_item(rd, seq, i, &mark);
        int rc = item ? mesh_rd_ip(rd, item, "ip", true, &a->ip) : -EINVAL;
        if (rc == 0)
            rc = mesh_rd_str(rd, item, "hostname", false, &a->hostname);
        if (rc == 0)
            rc = mesh_rd_str(rd, item, "nodeName", false, &a->node_name);
        if (rc == 0)
            rc = mesh_rd_target_ref(rd, item, "targetRef", &a->target);
        if (rc < 0)
            return rc;
        a->ready = ready;
        out->naddresses++;
        mesh_rd_pop(rd, mark);
    }
    mesh_rd_pop(rd, top);
    return 0;
}

static size_t count_at(mesh_reader_t *rd, yaml_node_t *map, const char *key)
{
    yaml_node_t *seq = mesh_rd_get(rd, map, key);
    return seq && seq->type == YAML_SEQUENCE_NODE
               ? (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start)
               : 0;
}

int mesh_read_endpoints(mesh_reader_t *rd, yaml_node_t *root)
{
    mesh_endpoints_t *eps = &rd->obj->eps;
    yaml_node_t *seq;
    size_t n;
    if (list_at(rd, root, "subsets", &seq, &n) < 0)
        return -EINVAL;
    if ((eps->subsets = alloc_array(rd, n, sizeof(*eps->subsets))) == NULL)
        return -ENOMEM;
    size_t top = mesh_rd_push(rd, "subsets");
    for (size_t i = 0; i < n; i++) {
        size_t mark;
        mesh_ep_subset_t *s = &eps->subsets[i];
        yaml_node_t *item = map_item(rd, seq, i, &mark);
        if (item == NULL)
            return -EINVAL;
        size_t addrs = count_at(rd, item, "addresses") + count_at(rd, item, "notReadyAddresses");
        if ((s->addresses = alloc_array(rd, addrs, sizeof(*s->addresses))) == NULL)
            return -ENOMEM;
        int rc = read_ep_addresses(rd, item, "addresses", true, s);
        if (rc == 0)
            rc = read_ep_addresses(rd, item, "notReadyAddresses", false, s);
        if (rc == 0)
            rc = read_ep_ports(rd, item, true, &s->ports, &s->nports);
        if (rc < 0)
            return rc;
        eps->nsubsets++;
        mesh_rd_pop(rd, mark);
    }
    mesh_rd_pop(rd, top);
    return 0;
}

/* ---- EndpointSlice ------------------------------------------------------------------------ */

static int read_conditions(mesh_reader_t *rd, yaml_node_t *ep, mesh_slice_endpoint_t *out)
{
    yaml_node_t *cond;
    int ready = -1, serving = -1, terminating = -1;
    if (mesh_rd_map(rd, ep, "conditions", &cond) < 0)
        return -EINVAL;
    size_t mark = mesh_rd_push(rd, "conditions");
    int rc = mesh_rd_bool(rd, cond, "ready", &ready);
    if (rc == 0)
        rc = mesh_rd_bool(rd, cond, "serving", &serving);
    if (rc == 0)
        rc = mesh_rd_bool(rd, cond, "terminating", &terminating);
    if (rc < 0)
        return rc;
    mesh_rd_pop(rd, mark);
    /* An absent ready or serving means true, an absent terminating false, as the API says. */
    out->ready = ready != 0;
    out->serving = serving != 0;
    out->terminating = terminating == 1;
    return 0;
}

static int read_slice_endpoint(mesh_reader_t *rd, yaml_node_t *ep, mesh_slice_endpoint_t *out)
{
    int rc = mesh_rd_strings(rd, ep, "addresses", &out->addresses, &out->naddresses);
    if (rc == 0 && out->naddresses == 0)
        rc = mesh_rd_fail_at(rd, "addresses", "missing");
    struct in_addr v4;
    for (size_t i = 0; rc == 0 && i < out->naddresses; i++) {
        char key[32];
        snprintf(key, sizeof(key), "addresses[%zu]", i);
        if (inet_pton(AF_INET, out->addresses[i], &v4) != 1)
            rc = mesh_rd_fail_at(rd, key, "\"%.64s\" is not an IPv4 address", out->addresses[i]);
    }
    if (rc == 0)
        rc = read_conditions(rd, ep, out);
    if (rc == 0)
        rc = mesh_rd_target_ref(rd, ep, "targetRef", &out->target);
    if (rc == 0)
        rc = mesh_rd_str(rd, ep, "nodeName", false, &out->node_name);
    if (rc == 0)
        rc = mesh_rd_str(rd, ep, "zone", false, &out->zone);
    if (rc == 0)
        rc = mesh_rd_str(rd, ep, "hostname", false, &out->hostname);
    return rc;
}

int mesh_read_endpoint_slice(mesh_reader_t *rd, yaml_node_t *root)
{
    mesh_endpoint_slice_t *s = &rd->obj->slice;
    yaml_node_t *seq;
    size_t n;
    for (size_t i = 0; i < rd->obj->meta.labels.count; i++)
        if (strcmp(rd->obj->meta.labels.items[i].key, "kubernetes.io/service-name") == 0)
            s->service_name = rd->obj->meta.labels.items[i].value;
    if (mesh_rd_str(rd, root, "addressType", true, &s->address_type) < 0)
        return -EINVAL;
    s->ipv4 = strcmp(s->address_type, "IPv4") == 0;
    if (read_ep_ports(rd, root, false, &s->ports, &s->nports) < 0)
        return -EINVAL;
    if (!s->ipv4) {
        mesh_rd_note(rd, "addressType %s: endpoints not read (IPv4 only)", s->address_type);
        return 0;
    }
    if (list_at(rd, root, "endpoints", &seq, &n) < 0)
        return -EINVAL;
    if ((s->endpoints = alloc_array(rd, n, sizeof(*s->endpoints))) == NULL)
        return -ENOMEM;
    size_t top = mesh_rd_push(rd, "endpoints");
    for (size_t i = 0; i < n; i++) {
        size_t mark;
        yaml_node_t *item = map_item(rd, seq, i, &mark);
        if (item == NULL || read_slice_endpoint(rd, item, &s->endpoints[i]) < 0)
            return -EINVAL;
        s->nendpoints++;
        mesh_rd_pop(rd, mark);
    }
    mesh_rd_pop(rd, top);
    return 0;
}

/* ---- Pod ---------------------------------------------------------------------------------- */

static int read_container_ports(mesh_reader_t *rd, yaml_node_t *c, const char *container,
                                mesh_pod_t *pod)
{
    yaml_node_t *seq;
    size_t n;
    if (list_at(rd, c, "ports", &seq, &n) < 0)
        return -EINVAL;
    size_t top = mesh_rd_push(rd, "ports");
    for (size_t i = 0; i < n; i++) {
        size_t mark;
        mesh_container_port_t *p = &pod->ports[pod->nports];
        yaml_node_t *item = map_item(rd, seq, i, &mark);
        int rc = item ? mesh_rd_str(rd, item, "name", false, &p->name) : -EINVAL;
        if (rc == 0)
            rc = mesh_rd_port(rd, item, "containerPort", true, &p->container_port);
        if (rc == 0)
            rc = mesh_rd_l4(rd, item, "protocol", &p->protocol);
        if (rc < 0)
            return rc;
        p->container = container;
        pod->nports++;
        mesh_rd_pop(rd, mark);
    }
    mesh_rd_pop(rd, top);
    return 0;
}

static int read_containers(mesh_reader_t *rd, yaml_node_t *spec, mesh_pod_t *pod)
{
    yaml_node_t *seq;
    size_t n, total = 0;
    if (list_at(rd, spec, "containers", &seq, &n) < 0)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *c = yaml_document_get_node(rd->yd, seq->data.sequence.items.start[i]);
        total += count_at(rd, c, "ports");
    }
    if ((pod->ports = alloc_array(rd, total, sizeof(*pod->ports))) == NULL)
        return -ENOMEM;
    size_t top = mesh_rd_push(rd, "containers");
    for (size_t i = 0; i < n; i++) {
        size_t mark;
        const char *name;
        yaml_node_t *c = map_item(rd, seq, i, &mark);
        int rc = c ? mesh_rd_str(rd, c, "name", true, &name) : -EINVAL;
        if (rc == 0)
            rc = read_container_ports(rd, c, name, pod);
        if (rc < 0)
            return rc;
        mesh_rd_pop(rd, mark);
    }
    mesh_rd_pop(rd, top);
    return 0;
}

static int read_pod_status(mesh_reader_t *rd, yaml_node_t *status, mesh_pod_t *pod)
{
    static const char *const phases[] = {"Pending", "Running", "Succeeded", "Failed", "Unknown"};
    yaml_node_t *seq;
    size_t n = 0, mark = mesh_rd_push(rd, "status");
    int phase = MESH_POD_PENDING;
    int rc = mesh_rd_ip(rd, status, "podIP", false, &pod->pod_ip);
    if (rc == 0)
        rc = mesh_rd_enum(rd, status, "phase", phases, 5, MESH_POD_PENDING, &phase);
    if (rc == 0)
        rc = list_at(rd, status, "podIPs", &seq, &n);
    if (rc < 0)
        return rc;
    pod->phase = (mesh_pod_phase_t)phase;
    if ((pod->pod_ips = alloc_array(rd, n, sizeof(*pod->pod_ips))) == NULL)
        return -ENOMEM;
    size_t top = mesh_rd_push(rd, "podIPs");
    for (size_t i = 0; i < n; i++, pod->npod_ips++) {
        size_t im;
        yaml_node_t *item = map_item(rd, seq, i, &im);
        if (item == NULL || mesh_rd_ip(rd, item, "ip", true, &pod->pod_ips[i]) < 0)
            return -EINVAL;
        mesh_rd_pop(rd, im);
    }
    mesh_rd_pop(rd, top);
    if (list_at(rd, status, "conditions", &seq, &n) < 0)
        return -EINVAL;
    top = mesh_rd_push(rd, "conditions");
    for (size_t i = 0; i < n; i++) {
        size_t im, tn, sn;
        yaml_node_t *item = map_item(rd, seq, i, &im);
        if (item == NULL)
            return -EINVAL;
        /* Only Ready counts: the others are looked at, not kept. */
        const char *type = mesh_scalar(mesh_rd_get(rd, item, "type"), &tn);
        const char *st = mesh_scalar(mesh_rd_get(rd, item, "status"), &sn);
        if (type && tn == 5 && memcmp(type, "Ready", 5) == 0) {
            pod->ready = st && sn == 4 && memcmp(st, "True", 4) == 0;
            mesh_rd_hash(rd, "ready", pod->ready ? "True" : "False");
        }
        mesh_rd_pop(rd, im);
    }
    mesh_rd_pop(rd, top);
    if (pod->pod_ip == NULL && pod->npod_ips > 0)
        pod->pod_ip = pod->pod_ips[0];
    mesh_rd_pop(rd, mark);
    return 0;
}

int mesh_read_pod(mesh_reader_t *rd, yaml_node_t *root)
{
    mesh_pod_t *pod = &rd->obj->pod;
    yaml_node_t *spec, *status;
    if (spec_of(rd, root, &spec) < 0)
        return -EINVAL;
    size_t mark = mesh_rd_push(rd, "spec");
    int rc = mesh_rd_str(rd, spec, "serviceAccountName", false, &pod->service_account);
    if (rc == 0 && pod->service_account == NULL) /* the deprecated spelling */
        rc = mesh_rd_str(rd, spec, "serviceAccount", false, &pod->service_account);
    if (rc == 0)
        rc = mesh_rd_str(rd, spec, "nodeName", false, &pod->node_name);
    if (rc == 0)
        rc = read_containers(rd, spec, pod);
    if (rc < 0)
        return rc;
    if (pod->service_account == NULL) {
        pod->service_account = "default";
        mesh_rd_hash(rd, "serviceAccountName", "default");
    }
    mesh_rd_pop(rd, mark);
    if (mesh_rd_map(rd, root, "status", &status) < 0)
        return -EINVAL;
    return status ? read_pod_status(rd, status, pod) : 0;
}
