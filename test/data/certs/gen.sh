#!/usr/bin/env bash
# Regenerates the TLS test fixtures in this directory with the openssl CLI: two independent
# EC P-256 roots (trust domains cluster.local and other.local), SPIFFE workload leaves, a key
# that matches no certificate, an expired leaf and a not-yet-valid leaf. Validity is 100 years
# (except the two deliberately out-of-date leaves) so the fixtures do not rot.
#   test/data/certs/gen.sh        (from anywhere; writes next to itself)
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
days=36500

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
rsa_key() { openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:$2" -out "$1" 2>/dev/null; }

# root <name> <trust domain>
root() {
    key "$1.key"
    cat >"$work/$1.ext" <<EXT
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
subjectAltName = URI:spiffe://$2
EXT
    openssl req -new -x509 -key "$1.key" -subj "/O=$2/CN=$2 root" -days $days -sha256 \
        -extensions v3 -config <(printf '[req]\ndistinguished_name=dn\n[dn]\n[v3]\n'; \
        cat "$work/$1.ext") -out "$1.pem"
}

# leaf_ext <file> <san list>
leaf_ext() {
    cat >"$1" <<EXT
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
authorityKeyIdentifier = keyid
subjectAltName = $2
EXT
}

# leaf <name> <issuer> <san list> [rsa bits]: valid for $days from now, an EC key unless bits
leaf() {
    if [[ -n ${4:-} ]]; then rsa_key "$1.key" "$4"; else key "$1.key"; fi
    openssl req -new -key "$1.key" -subj "/O=remora test/CN=$1" -out "$work/$1.csr"
    leaf_ext "$work/$1.ext" "$3"
    openssl x509 -req -in "$work/$1.csr" -CA "$2.pem" -CAkey "$2.key" -set_serial "0x$(openssl rand -hex 8)" \
        -days $days -sha256 -extfile "$work/$1.ext" -out "$1.pem" 2>/dev/null
}

# dated_leaf <name> <issuer> <san list> <start> <end>: fixed validity window (openssl ca)
dated_leaf() {
    key "$1.key"
    openssl req -new -key "$1.key" -subj "/O=remora test/CN=$1" -out "$work/$1.csr"
    leaf_ext "$work/$1.ext" "$3"
    mkdir -p "$work/ca-$1"
    : >"$work/ca-$1/index.txt"
    openssl rand -hex 8 >"$work/ca-$1/serial"
    cat >"$work/ca-$1/ca.cnf" <<CNF
[ca]
default_ca = test
[test]
dir = $work/ca-$1
database = \$dir/index.txt
serial = \$dir/serial
new_certs_dir = \$dir
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
[any]
organizationName = optional
commonName = supplied
CNF
    openssl ca -batch -notext -config "$work/ca-$1/ca.cnf" -cert "$2.pem" -keyfile "$2.key" \
        -startdate "$4" -enddate "$5" -extfile "$work/$1.ext" -in "$work/$1.csr" \
        -out "$1.pem" 2>/dev/null
}

root root-a cluster.local
root root-b other.local
leaf client root-a "URI:spiffe://cluster.local/ns/default/sa/client"
leaf server root-a \
    "URI:spiffe://cluster.local/ns/default/sa/server, DNS:server.default.svc.cluster.local"
leaf other-server root-b "URI:spiffe://other.local/ns/default/sa/server"
key mismatched.key
# RSA leaves under the EC root, as Envoy's example configs carry: a server, a client, and one
# with a key too short for the engine.
leaf rsa-server root-a \
    "URI:spiffe://cluster.local/ns/default/sa/server, DNS:server.default.svc.cluster.local" 2048
leaf rsa-client root-a "URI:spiffe://cluster.local/ns/default/sa/client" 2048
leaf rsa-weak root-a "URI:spiffe://cluster.local/ns/default/sa/weak" 1024
dated_leaf expired root-a "URI:spiffe://cluster.local/ns/default/sa/expired" \
    20000101000000Z 20010101000000Z
dated_leaf future root-a "URI:spiffe://cluster.local/ns/default/sa/future" \
    20900101000000Z 21900101000000Z
rm -f ./*.srl
echo "fixtures written to $(pwd)"
