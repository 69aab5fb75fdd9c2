#!/usr/bin/env python3
"""bench/xds.py: the xDS bench's helper (bench/xds.sh): writes the test control plane's resources
and patches (test/e2e/xds/control_plane.js), and reads its log (one JSON line per event, "t" in
milliseconds) for apply times and push-to-ACK latencies.

  xds.py resources N EPS APP OUT   N clusters c0..c(N-1) (EDS over ADS), EPS endpoints each
                                   (127.0.x.y:10000+j, nothing listens there) except c0, whose one
                                   endpoint is 127.0.0.1:APP; route configuration r1 sends
                                   everything to c0; every type held (answered once released)
  xds.py pushes COUNT OUT          COUNT patches of c1's endpoints (EPS as above), alternating
                                   between two sets of ports, versions p1..pCOUNT
  xds.py churn MODE COUNT A B TAG OUT [changed]
                                   COUNT patches of c0: MODE swap alternates its one endpoint
                                   between 127.0.0.1:B and :A; reweight keeps both, weights 1:3 and
                                   3:1 in turn; versions TAG-k; changed: each patch marked
                                   changed_only (a SotW response carries c0 alone, not every
                                   assignment)
  xds.py endpoints NAME VERSION EP...  one patch of cluster NAME's endpoints (EP: ADDR:PORT[:W])
  xds.py feed FIFO FILE rate R [START]  the lines of FILE into FIFO (the control plane's
                                   stdin), R a second, on a fixed schedule that begins once the
                                   file START exists (when given)
  xds.py feed FIFO FILE gap MIN MAX    ... each MIN-MAX ms (uniformly drawn) after the last
  xds.py feed FIFO FILE ack LOG MIN MAX  ... each MIN-MAX ms after the control plane's LOG shows
                                   the ACK (or NACK) of the EDS response the last one caused
  xds.py apply LOG                 "done FIRST_T APPLY_MS CDS_MS EDS_MS RDS_MS" once the last
                                   response of each of CDS, EDS and RDS is ACKed, "nack MESSAGE"
                                   if one was NACKed, "wait" otherwise
  xds.py acks LOG FROM             EDS responses from line FROM on and their ACKs: "SENT ACKED
                                   COLLAPSED NACKED P50 P99 MAX MEAN" (ms); a response answered
                                   only by the ACK of a later one is collapsed, its latency runs to
                                   that ACK
  xds.py count LOG FROM            EDS responses and ACKs from line FROM on: "SENT ACKED NACKED"
"""
import json
import math
import os
import random
import sys
import time

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"


def endpoint(addr, port, weight=None):
    e = {"endpoint": {"address": {"socket_address": {"address": addr, "port_value": port}}}}
    if weight:
        e["load_balancing_weight"] = weight
    return e


def cla(name, eps):
    return {"cluster_name": name, "endpoints": [{"lb_endpoints": eps}]}


def dead_endpoints(i, eps, base=10000):
    """Endpoints of cluster i that nothing listens on: 127.0.x.y, x >= 1, never 127.0.0.1."""
    addr = "127.0.%d.%d" % (1 + i // 250 % 254, 1 + i % 250)
    return [endpoint(addr, base + j) for j in range(eps)]


def patch(version, res, changed_only=False):
    spec = {"version": version, "resources": {EDS: [res]}}
    if changed_only:
        spec["changed_only"] = True
    return json.dumps(spec, separators=(",", ":"))


def resources(n, eps, app, out):
    clusters = [{"name": "c%d" % i, "type": "EDS", "connect_timeout": "1s",
                 "eds_cluster_config": {"eds_config": {"ads": {}}}} for i in range(n)]
    loads = [cla("c0", [endpoint("127.0.0.1", app)])]
    loads += [cla("c%d" % i, dead_endpoints(i, eps)) for i in range(1, n)]
    routes = [{"name": "r1", "virtual_hosts": [{"name": "all", "domains": ["*"],
                                                 "routes": [{"match": {"prefix": "/"},
                                                             "route": {"cluster": "c0"}}]}]}]
    spec = {"version": "1", "hold": [CDS, EDS, RDS],
            "resources": {CDS: clusters, EDS: loads, RDS: routes}}
    with open(out, "w") as f:
        json.dump(spec, f, separators=(",", ":"))


def pushes(count, eps, out):
    with open(out, "w") as f:
        for k in range(1, count + 1):
            base = 10000 if k % 2 == 0 else 11000
            f.write(patch("p%d" % k, cla("c1", dead_endpoints(1, eps, base))) + "\n")


def churn(mode, count, a, b, tag, out, changed_only=False):
    with open(out, "w") as f:
        for k in range(1, count + 1):
            if mode == "swap":
                eps = [endpoint("127.0.0.1", b if k % 2 else a)]
            else:
                w = (1, 3) if k % 2 else (3, 1)
                eps = [endpoint("127.0.0.1", a, w[0]), endpoint("127.0.0.1", b, w[1])]
            f.write(patch("%s-%d" % (tag, k), cla("c0", eps), changed_only) + "\n")


def one(name, version, eps):
    out = []
    for e in eps:
        parts = e.split(":")
        out.append(endpoint(parts[0], int(parts[1]), int(parts[2]) if len(parts) > 2 else None))
    print(patch(version, cla(name, out)))


def events(log, start=1):
    with open(log) as f:
        for i, line in enumerate(f, 1):
            if i < start or not line.strip():
                continue
            try:
                yield json.loads(line)
            except ValueError:
                return  # a line being written


def apply_state(log):
    first = None
    last = {}  # type -> (nonce, t) of its last response
    acked = {}  # type -> t of the ACK of that response
    for e in events(log):
        ty = e.get("type_url")
        if e.get("event") == "response" and ty in (CDS, EDS, RDS):
            if first is None:
                first = e["t"]
            last[ty] = (e["nonce"], e["t"])
            acked.pop(ty, None)
        elif e.get("event") == "request" and ty in last and e.get("response_nonce") == last[ty][0]:
            if e.get("error_detail"):
                return "nack " + json.dumps(e["error_detail"].get("message", ""))
            acked.setdefault(ty, e["t"])
    if any(t not in acked for t in (CDS, EDS, RDS)):
        return "wait"
    return "done %.3f %.3f %.3f %.3f %.3f" % (
        first, max(acked.values()) - first, acked[CDS] - last[CDS][1], acked[EDS] - last[EDS][1],
        acked[RDS] - last[RDS][1])


def rank(sorted_vals, p):
    return sorted_vals[max(0, int(math.ceil(len(sorted_vals) * p)) - 1)]


def acks(log, start):
    sent = []  # [nonce, t, ack latency or None, collapsed, nacked]
    for e in events(log, start):
        if e.get("type_url") != EDS:
            continue
        if e.get("event") == "response":
            sent.append([int(e["nonce"]), e["t"], None, False, False])
        elif e.get("event") == "request" and e.get("response_nonce"):
            n = int(e["response_nonce"])
            for s in sent:
                if s[2] is None and s[0] <= n:
                    s[2] = e["t"] - s[1]
                    s[3] = s[0] < n
                    s[4] = bool(e.get("error_detail"))
    done = [s for s in sent if s[2] is not None]
    lat = sorted(s[2] for s in done)
    if not lat:
        return "%d 0 0 0 0 0 0 0" % len(sent)
    return "%d %d %d %d %.3f %.3f %.3f %.3f" % (
        len(sent), len(done), sum(s[3] for s in done), sum(s[4] for s in done), rank(lat, 0.5),
        rank(lat, 0.99), lat[-1], sum(lat) / len(lat))


def count(log, start):
    sent = set()
    acked = nacked = 0
    for e in events(log, start):
        if e.get("type_url") != EDS:
            continue
        if e.get("event") == "response":
            sent.add(e["nonce"])
        elif e.get("event") == "request" and e.get("response_nonce") in sent:
            if e.get("error_detail"):
                nacked += 1
            else:
                acked += 1
    return "%d %d %d" % (len(sent), acked, nacked)


class LogTail:
    """The control plane's log, read as it grows: whole lines only."""

    def __init__(self, path):
        self.f = open(path)
        self.f.seek(0, os.SEEK_END)

    def events(self):
        while True:
            pos = self.f.tell()
            line = self.f.readline()
            if not line.endswith("\n"):
                self.f.seek(pos)
                return
            try:
                yield json.loads(line)
            except ValueError:
                pass


def wait_ack(tail, deadline):
    """Until the next EDS response is answered; False when the deadline passes first."""
    nonce = None
    while time.monotonic() < deadline:
        for e in tail.events():
            if e.get("type_url") != EDS:
                continue
            if e.get("event") == "response" and nonce is None:
                nonce = int(e["nonce"])
            elif e.get("event") == "request" and nonce is not None and e.get("response_nonce") \
                    and int(e["response_nonce"]) >= nonce:
                return True
        time.sleep(0.0005)
    return False


def feed(fifo, path, mode, args):
    with open(path) as f:
        lines = [line for line in f if line.strip()]
    out = open(fifo, "w")
    tail = LogTail(args[0]) if mode == "ack" else None
    while mode == "rate" and len(args) > 1 and not os.path.exists(args[1]):
        time.sleep(0.001)
    t0 = time.monotonic()
    for k, line in enumerate(lines, 1):
        out.write(line)
        out.flush()
        if mode == "rate":
            time.sleep(max(0.0, t0 + k / float(args[0]) - time.monotonic()))
            continue
        if tail and not wait_ack(tail, time.monotonic() + 30):
            sys.stderr.write("xds.py feed: push %d not answered within 30 s\n" % k)
            return 1
        lo, hi = (float(args[-2]), float(args[-1]))
        time.sleep(random.uniform(lo, hi) / 1000.0)
    return 0


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "resources" and len(argv) == 6:
        resources(int(argv[2]), int(argv[3]), int(argv[4]), argv[5])
    elif cmd == "pushes" and len(argv) == 5:
        pushes(int(argv[2]), int(argv[3]), argv[4])
    elif cmd == "churn" and len(argv) in (8, 9) and argv[2] in ("swap", "reweight"):
        churn(argv[2], int(argv[3]), int(argv[4]), int(argv[5]), argv[6], argv[7],
              argv[8:] == ["changed"])
    elif cmd == "endpoints" and len(argv) >= 5:
        one(argv[2], argv[3], argv[4:])
    elif cmd == "feed" and len(argv) >= 6 and argv[4] in ("rate", "gap", "ack"):
        need = {"rate": (6, 7), "gap": (7,), "ack": (8,)}[argv[4]]
        if len(argv) not in need:
            sys.stderr.write(__doc__)
            return 2
        return feed(argv[2], argv[3], argv[4], argv[5:])
    elif cmd == "apply" and len(argv) == 3:
        print(apply_state(argv[2]))
    elif cmd == "acks" and len(argv) == 4:
        print(acks(argv[2], int(argv[3])))
    elif cmd == "count" and len(argv) == 4:
        print(count(argv[2], int(argv[3])))
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
