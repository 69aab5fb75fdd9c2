#!/usr/bin/env bash
# shellcheck shell=bash
# h2spec.sh — HTTP/2 conformance of the reference proxies (`make h2spec-peers`,
# docs/http2-peers.md): builds h2spec at a pinned commit from a source tree named by H2SPEC_SRC,
# with Debian's Go and Debian's golang-*-dev packages (GOPATH mode, nothing downloaded), and runs
# it over h2c and over TLS (-t -k) against HAProxy, nghttpx and nginx, each in front of a node
# h2c app (test/e2e/grpc_mesh/h2app.js; nginx reaches it over HTTP/1.1), printing the pass
# counts. h2spec is in neither Debian nor the npm registry, the only registries this project
# reaches, and the project does not vendor other projects' code: without H2SPEC_SRC it skips,
# loudly, saying so (exit 77). Run it, or source it for the functions alone.
#
#   H2SPEC_SRC=DIR test/lib/h2spec.sh       DIR: h2spec's files at the pinned commit (a git
#                                          checkout or an unpacked archive; checked by tree id)
# Reports: build/h2spec/results/<proxy>-<h2c|tls>.txt (h2spec's own output, failures named).

H2SPEC_VERSION=2.6.0
H2SPEC_COMMIT=70ac2294010887f48b18e2d64f5cccd48421fad1 # tag v2.6.0
# The git tree of that commit: what an unpacked archive of it hashes to as well.
H2SPEC_TREE=dc35b196680037897ecbd95f0de19940381f6f4f
# Go, and the Debian packages of every import outside h2spec itself (golang.org/x/net/http2
# and .../hpack, github.com/spf13/cobra, github.com/fatih/color; they bring pflag, go-isatty,
# go-colorable and golang.org/x/sys).
H2SPEC_GO_PKGS=(golang-go golang-golang-x-net-dev golang-github-spf13-cobra-dev
    golang-github-fatih-color-dev)
H2SPEC_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
H2SPEC_ROOT=$(cd "$H2SPEC_LIB_DIR/../.." && pwd)
H2SPEC_DIR=${H2SPEC_DIR:-$H2SPEC_ROOT/build/h2spec}
H2SPEC_BIN=$H2SPEC_DIR/h2spec
H2SPEC_WHY_NOT="h2spec (github.com/summerwind/h2spec) is not packaged by Debian and not \
published on the npm registry, the only registries this project reaches, and the project does \
not vendor other projects' code; see docs/http2-peers.md"

# h2spec_skip WHY — the loud skip: a framed message on stderr, exit 77.
h2spec_skip() {
    {
        echo '######################################################################'
        echo "SKIP: h2spec-peers: $1"
        echo "SKIP: to run it, give h2spec $H2SPEC_VERSION's source (commit $H2SPEC_COMMIT):"
        echo 'SKIP:   H2SPEC_SRC=/path/to/h2spec make h2spec-peers'
        echo '######################################################################'
    } >&2
    exit 77
}

# h2spec_tree_id DIR — the git tree id of every file under DIR but .git (h2spec's own
# .gitignore would hide cmd/h2spec/, so it is overridden): equal to H2SPEC_TREE for a clean,
# unchanged copy of the pinned commit, whether a checkout or an unpacked archive.
h2spec_tree_id() {
    local tmp id
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/h2spec-tree.XXXXXX") || return 1
    git init -q --bare "$tmp/git" &&
        GIT_INDEX_FILE=$tmp/index git --git-dir="$tmp/git" --work-tree="$1" add -A -f . &&
        id=$(GIT_INDEX_FILE=$tmp/index git --git-dir="$tmp/git" --work-tree="$1" write-tree)
    rm -rf "$tmp"
    [[ -n ${id:-} ]] && echo "$id"
}

# h2spec_go_deps — Debian's Go and the packages of h2spec's imports: installed as root when
# missing; as another user the apt-get line is printed and it fails.
h2spec_go_deps() {
    local p missing=()
    for p in "${H2SPEC_GO_PKGS[@]}"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q ' installed$' || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    if [[ $(id -u) != 0 ]]; then
        echo "h2spec: missing Debian packages: run apt-get install ${missing[*]}" >&2
        return 1
    fi
    echo "h2spec: installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" \
        >"$H2SPEC_DIR/apt.out" 2>&1 || {
        echo "h2spec: apt-get install ${missing[*]} failed: $(tail -n 3 "$H2SPEC_DIR/apt.out")" >&2
        return 1
    }
}

# h2spec_build — builds H2SPEC_BIN from H2SPEC_SRC (once: a binary stamped with the same tree is
# reused). Skips (h2spec_skip) without H2SPEC_SRC; fails when the tree is not the pinned commit
# or the build fails. Offline: GOPATH mode (GO111MODULE=off) over a GOPATH that holds only
# h2spec and Debian's /usr/share/gocode, GOPROXY=off, GOFLAGS empty.
h2spec_build() {
    local src=${H2SPEC_SRC:-} tree gopath
    [[ -n $src ]] || h2spec_skip "$H2SPEC_WHY_NOT"
    [[ -f $src/cmd/h2spec/h2spec.go ]] ||
        { echo "h2spec: H2SPEC_SRC=$src holds no cmd/h2spec/h2spec.go" >&2 && return 1; }
    src=$(cd "$src" && pwd)
    mkdir -p "$H2SPEC_DIR" || return 1
    tree=$(h2spec_tree_id "$src") || { echo "h2spec: cannot hash $src (git?)" >&2 && return 1; }
    if [[ $tree != "$H2SPEC_TREE" ]]; then
        echo "h2spec: $src is not h2spec $H2SPEC_VERSION (commit $H2SPEC_COMMIT): its files hash to tree $tree, want $H2SPEC_TREE" >&2
        return 1
    fi
    if [[ -x $H2SPEC_BIN && $(cat "$H2SPEC_BIN.tree" 2>/dev/null) == "$tree" ]]; then
        return 0
    fi
    h2spec_go_deps || return 1
    gopath=$H2SPEC_DIR/gopath
    rm -rf "$gopath" && mkdir -p "$gopath/src/github.com/summerwind" &&
        ln -s "$src" "$gopath/src/github.com/summerwind/h2spec" || return 1
    echo "h2spec: building $H2SPEC_VERSION from $src with $(go version)" >&2
    if ! (cd "$gopath/src/github.com/summerwind/h2spec" &&
        GO111MODULE=off GOPATH=$gopath:/usr/share/gocode GOPROXY=off GOFLAGS='' \
            GOCACHE=$H2SPEC_DIR/gocache go build -o "$H2SPEC_BIN" \
            -ldflags "-X main.VERSION=$H2SPEC_VERSION -X main.COMMIT=$H2SPEC_COMMIT" \
            ./cmd/h2spec) >"$H2SPEC_DIR/build.out" 2>&1; then
        echo "h2spec: go build failed: $(tail -n 5 "$H2SPEC_DIR/build.out")" >&2
        return 1
    fi
    echo "$tree" >"$H2SPEC_BIN.tree"
}

# h2spec_count REPORT — "PASSED/TOTAL" from h2spec's closing line ("146 tests, 146 passed, 0
# skipped, 0 failed"), or "none" when h2spec did not finish.
h2spec_count() {
    sed -n 's/^\([0-9]*\) tests, \([0-9]*\) passed, .*/\2\/\1/p' "$1" | tail -n 1 | grep . ||
        echo none
}

# h2spec_run PROXY MODE PORT — h2spec over h2c (MODE h2c) or TLS without verifying the
# certificate (MODE tls) against 127.0.0.1:PORT; its report goes to
# $H2SPEC_DIR/results/PROXY-MODE.txt. Prints the count.
h2spec_run() {
    local out=$H2SPEC_DIR/results/$1-$2.txt tls=()
    [[ $2 == tls ]] && tls=(-t -k)
    mkdir -p "$H2SPEC_DIR/results"
    timeout 600 "$H2SPEC_BIN" -h 127.0.0.1 -p "$3" "${tls[@]}" -o 2 >"$out" 2>&1
    h2spec_count "$out"
}

# h2spec_peers — starts the app and the three proxies (each with an h2c and a TLS port, all on
# 127.0.0.1, every port bound by the process using it through lb_serve) and prints a table of
# h2spec's counts. Needs testlib.sh and loopback.sh sourced (it is, when run as a script).
h2spec_peers() {
    local w=$LB_WORK app h2 h1 proxy plain tls c
    local -A ports versions
    for c in haproxy nginx nghttpx node openssl; do
        command -v "$c" >/dev/null 2>&1 || {
            case $c in nghttpx) c=nghttp2-proxy ;; node) c=nodejs ;; esac
            echo "h2spec: needs the Debian package $c (make h2spec-peers installs it)" >&2
            return 1
        }
    done
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
        -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
        -keyout "$w/tls.key" -out "$w/tls.crt" >"$w/openssl.out" 2>&1 || {
        echo "h2spec: openssl could not make a certificate: $(tail -n 3 "$w/openssl.out")" >&2
        return 1
    }
    cat "$w/tls.crt" "$w/tls.key" >"$w/tls.pem"

    bg "$w/app.log" node "$H2SPEC_ROOT/test/e2e/grpc_mesh/h2app.js" --port-file "$w/app.ports"
    app=$LAST_PID
    t_until 10 test -s "$w/app.ports" || {
        echo "h2spec: the app did not start: $(tail -n 3 "$w/app.log")" >&2
        return 1
    }
    read -r h2 h1 <"$w/app.ports"
    lb_alive "$app" || return 1

    # HAProxy: an h2c and a TLS frontend, the app over h2c.
    lb_serve "P T" "$w/haproxy.log" lb_write_exec "$w/haproxy.cfg" "global
  maxconn 1000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend h2
  bind 127.0.0.1:@P@ proto h2
  bind 127.0.0.1:@T@ ssl crt $w/tls.pem alpn h2
  default_backend app
backend app
  server app 127.0.0.1:$h2 proto h2
" haproxy -db -f "$w/haproxy.cfg" || { echo "h2spec: haproxy did not start" >&2 && return 1; }
    ports[haproxy]="$P $T"
    versions[haproxy]=$(haproxy -v | sed -n '1s/^HAProxy version \([^ ]*\).*/\1/p')

    # nghttpx: an h2c and a TLS frontend, the app over h2c.
    lb_serve "P T" "$w/nghttpx.out" nghttpx --conf=/dev/null --single-process --workers=1 \
        --frontend="127.0.0.1,@P@;no-tls" --frontend="127.0.0.1,@T@" \
        --backend="127.0.0.1,$h2;;proto=h2" --errorlog-file="$w/nghttpx.log" \
        "$w/tls.key" "$w/tls.crt" || { echo "h2spec: nghttpx did not start" >&2 && return 1; }
    ports[nghttpx]="$P $T"
    versions[nghttpx]=$(nghttpx --version | sed -n '1s/.*nghttp2\/\([^ ]*\).*/\1/p')

    # nginx: an h2c and a TLS listener; nginx proxies only over HTTP/1.1, so to the app's
    # HTTP/1.1 port.
    mkdir -p "$w/nginx/logs" "$w/nginx/body" && chmod 755 "$w" "$w/nginx" &&
        chmod 777 "$w/nginx/body" || return 1
    lb_serve "P T" "$w/nginx.out" lb_write_exec "$w/nginx/nginx.conf" "worker_processes 1;
error_log $w/nginx/logs/error.log;
pid $w/nginx/nginx.pid;
events { worker_connections 1024; }
http {
  access_log $w/nginx/logs/access.log;
  client_body_temp_path $w/nginx/body;
  proxy_temp_path $w/nginx/proxy;
  fastcgi_temp_path $w/nginx/fastcgi;
  uwsgi_temp_path $w/nginx/uwsgi;
  scgi_temp_path $w/nginx/scgi;
  server {
    listen 127.0.0.1:@P@ http2;
    listen 127.0.0.1:@T@ ssl http2;
    ssl_certificate $w/tls.crt;
    ssl_certificate_key $w/tls.key;
    location / { proxy_pass http://127.0.0.1:$h1; proxy_http_version 1.1; }
  }
}
" nginx -p "$w/nginx" -c "$w/nginx/nginx.conf" -g 'daemon off;' ||
        { echo "h2spec: nginx did not start" >&2 && return 1; }
    ports[nginx]="$P $T"
    versions[nginx]=$(nginx -v 2>&1 | sed -n 's/.*nginx\/\([^ ]*\).*/\1/p')

    printf 'h2spec %s (%s) against proxies in front of an h2c app (node %s)\n' \
        "$H2SPEC_VERSION" "${H2SPEC_COMMIT:0:7}" "$(node --version)"
    printf '%-8s %-17s %-8s %s\n' proxy version h2c tls
    for proxy in haproxy nghttpx nginx; do
        read -r plain tls <<<"${ports[$proxy]}"
        printf '%-8s %-17s %-8s %s\n' "$proxy" "${versions[$proxy]}" \
            "$(h2spec_run "$proxy" h2c "$plain")" "$(h2spec_run "$proxy" tls "$tls")"
    done
    echo "reports (failures named): $H2SPEC_DIR/results/"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -u
    h2spec_build || exit 1
    # shellcheck source=test/lib/testlib.sh
    source "$H2SPEC_LIB_DIR/testlib.sh"
    # shellcheck source=test/lib/loopback.sh
    source "$H2SPEC_LIB_DIR/loopback.sh"
    h2spec_peers || exit 1
fi
