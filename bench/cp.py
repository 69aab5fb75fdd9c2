#!/usr/bin/env python3
"""bench/cp.py: the mesh bench/cp.sh serves with remora-cp, as Kubernetes manifests.

    cp.py mesh DIR NODES STAGE --services S --endpoints E --sidecars P --namespaces N --changes C
    cp.py stats FILE        one line of numbers from remora-cp's /stats/prometheus (see below)
    cp.py views LOG FROM    the "view N built ... in U us" lines of remora-cp's log after line
                            FROM: "COUNT AVG_US MAX_US"

`mesh` writes into DIR: the Namespaces (ns-0 ...), per namespace one file of Services (svc-I, a
VIP 198.19.x.y, one port "http" 80 -> 8080) and one of Pods (pod-P, label app=svc-(P mod S),
IP 10.1.x.y; the sidecars), and per Service one file holding its EndpointSlice (E endpoints over
the S slices: first the IPs of its pods, with a targetRef, then others from 10.64.0.0/10). NODES
gets the pods' node ids, "<pod>.<namespace>", one a line. STAGE gets C changed EndpointSlices,
change-K.yaml, each the slice of Service (K * 37) mod S with its last endpoint moved to
10.200.x.y, and STAGE/changes.txt, "K FILE" a line: bench/cp.sh renames change-K.yaml over DIR/FILE
(one rename, so remora-cp never reads half a file).
"""
import argparse
import re
import sys


def ip(first, n):
    """first.x.y.z with x.y.z the low 24 bits of n"""
    return "%d.%d.%d.%d" % (first, (n >> 16) & 255, (n >> 8) & 255, n & 255)


def slice_yaml(svc, ns, addrs):
    out = ["apiVersion: discovery.k8s.io/v1", "kind: EndpointSlice", "metadata:",
           "  name: %s-bench" % svc, "  namespace: %s" % ns,
           "  labels: {kubernetes.io/service-name: %s}" % svc, "addressType: IPv4",
           "ports:", "- {name: http, port: 8080, protocol: TCP}", "endpoints:"]
    for a, pod in addrs:
        out.append('- addresses: ["%s"]' % a)
        out.append("  conditions: {ready: true}")
        if pod:
            out.append("  targetRef: {kind: Pod, name: %s, namespace: %s}" % (pod, ns))
    return "\n".join(out) + "\n"


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def mesh(a):
    S, E, P, N = a.services, a.endpoints, a.sidecars, a.namespaces
    nsof = ["ns-%d" % (i % N) for i in range(S)]
    write("%s/namespaces.yaml" % a.dir, "".join(
        "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns-%d\n" % k for k in range(N)))
    svcs = {k: [] for k in range(N)}
    for i in range(S):
        v = i + 1
        svcs[i % N].append(
            "---\napiVersion: v1\nkind: Service\nmetadata: {name: svc-%d, namespace: %s}\n"
            "spec:\n  type: ClusterIP\n  clusterIP: 198.19.%d.%d\n  selector: {app: svc-%d}\n"
            "  ports:\n  - {name: http, port: 80, targetPort: 8080, protocol: TCP}\n"
            % (i, nsof[i], v >> 8, v & 255, i))
    pods = {k: [] for k in range(N)}
    podips = {i: [] for i in range(S)}
    nodes = []
    for p in range(P):
        s = p % S
        ns = nsof[s]
        addr = ip(10, (1 << 16) + p + 1)
        podips[s].append((addr, "pod-%d" % p))
        nodes.append("pod-%d.%s" % (p, ns))
        pods[s % N].append(
            "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: pod-%d\n  namespace: %s\n"
            "  labels: {app: svc-%d}\nspec:\n  serviceAccountName: default\n  containers:\n"
            "  - name: app\n    image: app\n    ports:\n    - {containerPort: 8080, name: http}\n"
            "status:\n  phase: Running\n  podIP: %s\n  conditions: [{type: Ready, status: \"True\"}]\n"
            % (p, ns, s, addr))
    for k in range(N):
        write("%s/services-ns-%d.yaml" % (a.dir, k), "".join(svcs[k]))
        write("%s/pods-ns-%d.yaml" % (a.dir, k), "".join(pods[k]))
    filler = 0
    slices = []
    for i in range(S):
        want = E // S + (1 if i < E % S else 0)
        addrs = podips[i][:want]
        while len(addrs) < want:
            filler += 1
            addrs.append((ip(10, (64 << 16) + filler), None))
        slices.append(addrs)
        write("%s/eps-svc-%d.yaml" % (a.dir, i), slice_yaml("svc-%d" % i, nsof[i], addrs))
    write(a.nodes, "".join(n + "\n" for n in nodes))
    lines = []
    for k in range(1, a.changes + 1):
        i = (k * 37) % S
        addrs = list(slices[i]) or [(None, None)]
        addrs[-1] = (ip(10, (200 << 16) + k), None)
        write("%s/change-%d.yaml" % (a.stage, k), slice_yaml("svc-%d" % i, nsof[i], addrs))
        lines.append("%d eps-svc-%d.yaml\n" % (k, i))
    write("%s/changes.txt" % a.stage, "".join(lines))


# stats: "push_count push_sum_ms conv_count conv_sum_ms debounce_count debounce_sum_ms
# sent_bytes pushes_eds acks_eds rejects" (0 where remora-cp has no such stat)
def stats(path):
    v = {}
    for line in open(path, errors="replace"):
        m = re.match(r'^([a-z_]+)(\{[^}]*\})?\s+([0-9.eE+-]+)$', line.strip())
        if m:
            key = m.group(1) + (m.group(2) or "")
            v[key] = float(m.group(3))
    def g(k):
        return v.get(k, 0.0)
    rejects = sum(x for k, x in v.items() if k.startswith("pilot_total_xds_rejects"))
    print("%d %.3f %d %.3f %d %.3f %d %d %d %d" % (
        g("pilot_xds_push_time_count"), g("pilot_xds_push_time_sum"),
        g("pilot_proxy_convergence_time_count"), g("pilot_proxy_convergence_time_sum"),
        g("pilot_debounce_time_count"), g("pilot_debounce_time_sum"),
        g("remora_cp_xds_sent_bytes_total"), g('pilot_xds_pushes{type="eds"}'),
        g('remora_cp_xds_acks_total{type="eds"}'), rejects))


def views(path, start):
    us = []
    with open(path, errors="replace") as f:
        for n, line in enumerate(f, 1):
            if n < start:
                continue
            m = re.search(r"view \d+ built and handed to \d+ groups of sidecars in (\d+) us", line)
            if m:
                us.append(int(m.group(1)))
    print("%d %.0f %d" % (len(us), sum(us) / len(us) if us else 0, max(us) if us else 0))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("mesh")
    m.add_argument("dir")
    m.add_argument("nodes")
    m.add_argument("stage")
    for k, d in (("services", 1000), ("endpoints", 5000), ("sidecars", 1000), ("namespaces", 10),
                 ("changes", 100)):
        m.add_argument("--" + k, type=int, default=d)
    s = sub.add_parser("stats")
    s.add_argument("file")
    v = sub.add_parser("views")
    v.add_argument("log")
    v.add_argument("start", type=int)
    a = p.parse_args()
    if a.cmd == "mesh":
        if a.services < 1 or a.namespaces < 1 or a.sidecars < 1:
            sys.exit("cp.py: services, namespaces and sidecars must be at least 1")
        mesh(a)
    elif a.cmd == "stats":
        stats(a.file)
    else:
        views(a.log, a.start)


if __name__ == "__main__":
    main()
