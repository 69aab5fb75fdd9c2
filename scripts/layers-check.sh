#!/usr/bin/env bash
# Checks the direction of includes between folders (docs/architecture.md, Layout): a file
# includes headers only of its own folder and of folders on lower layers. Tests are left out.
set -u
cd "$(dirname "$0")/.."
# folder -> layer; the longest matching prefix wins.
layers='
base 0
certs 1
mesh 1
xds 2
xds/ads 2.1
xds/server 2.1
cli 2
proxy/core 3.0
proxy/net 3.1
proxy/listener 3.2
proxy/upstream 3.2
proxy/http 3.3
proxy/tcp 3.3
proxy/grpc 3.2
proxy/admin 3.4
proxy/server 3.5
cp 3.6
filters 4
cmd 5
'
git ls-files '*.c' '*.h' | grep -v '^test/' | awk -v layers="$layers" '
    BEGIN {
        n = split(layers, rows, "\n")
        for (i = 1; i <= n; i++) if (split(rows[i], f, " ") == 2) layer[f[1]] = f[2]
    }
    function folder(path,    best, p) {
        best = ""
        for (p in layer)
            if ((index(path, p "/") == 1) && length(p) > length(best)) best = p
        return best
    }
    {
        file = $0
        from = folder(file)
        while ((getline line < file) > 0) {
            if (line !~ /^#include "/) continue
            inc = line; sub(/^#include "/, "", inc); sub(/".*/, "", inc)
            to = folder(inc)
            if (to == "" || from == "" || to == from) continue
            if (layer[to] + 0 >= layer[from] + 0) {
                printf "layers-check: %s (%s) includes %s (%s): not a lower layer\n", file, from, inc, to
                bad = 1
            }
        }
        close(file)
    }
    END {
        if (!bad) print "layers-check: every include goes to the same folder or a lower layer"
        exit bad
    }'
