# shellcheck shell=bash
# npm.sh — the node peers of the e2e stories (grpc-js, a control plane), installed from the npm
# registry at the versions a committed lock file pins, into build/ (never committed). Source it
# after testlib.sh, never run it.

# npm_peer_missing WHY — a peer the story cannot run without is missing: as root (where make
# deps installs node and npm, and nothing may be skipped) the story fails, for anyone else it
# is skipped, saying why.
npm_peer_missing() {
    if [[ $(id -u) == 0 ]]; then
        printf 'FAIL: %s: %s\n' "$T_SCRIPT" "$1"
        exit 1
    fi
    printf 'SKIP: %s: %s\n' "$T_SCRIPT" "$1"
    exit 77
}

# npm_peers DIR DEST LOG — installs the packages DIR/package-lock.json pins into DEST (once per
# lock file: a later run with the same lock reuses them), logging npm to LOG. Fails the story
# (as npm_peer_missing says) when node, npm or the registry is missing.
npm_peers() {
    local dir=$1 dest=$2 log=$3 c first
    for c in node npm; do
        command -v "$c" >/dev/null 2>&1 ||
            npm_peer_missing "needs $c: install the Debian package nodejs (and npm where node comes without it); make deps does"
    done
    first=$(node -e 'console.log(Object.keys(require(process.argv[1]).dependencies)[0])' \
        "$dir/package.json") || npm_peer_missing "cannot read $dir/package.json"
    if cmp -s "$dir/package-lock.json" "$dest/package-lock.json" &&
        [[ -f $dest/node_modules/$first/package.json ]]; then
        return 0
    fi
    # node trusts its own CA list, not the system's: give it the system's too, so a registry
    # reached through a proxy with its own CA (installed in the system store) verifies.
    if [[ -z ${NODE_EXTRA_CA_CERTS:-} && -r /etc/ssl/certs/ca-certificates.crt ]]; then
        export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
    fi
    mkdir -p "$dest" && cp "$dir/package.json" "$dir/package-lock.json" "$dest/" ||
        t_stop "cannot write $dest"
    if ! npm ci --prefix "$dest" --no-audit --no-fund --ignore-scripts >"$log" 2>&1; then
        rm -f "$dest/package-lock.json" # the next run tries again
        local why
        why=$(grep -m 3 -E 'ERR! (code|errno|request|reason)|error (code|request)' "$log" | tr '\n' ' ')
        npm_peer_missing "npm ci of the pinned packages of $dir into $dest failed (no npm registry, or one node does not trust: behind a proxy with its own CA, set NODE_EXTRA_CA_CERTS): ${why:-$(tail -n 3 "$log" | tr '\n' ' ')}"
    fi
}
