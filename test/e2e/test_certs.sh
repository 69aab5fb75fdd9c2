#!/usr/bin/env bash
# Story: an operator makes a mesh's certificates with `remoractl certs` — a root, intermediates
# and workload certificates — and openssl, a verifier we did not write, accepts the chains, sees
# the SPIFFE ID as a critical URI SAN and the key files as 0600. Bad inputs (a bad SPIFFE ID, a
# CA key that is not the CA's, an expired issuer, a non-CA issuer) fail with one clear line.
# Needs no root and no network: everything happens in a temporary directory.
# checks: 109
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=test/lib/testlib.sh
source "$root/test/lib/testlib.sh"
t_require_cmd openssl sha256sum stat
BUILD=${BUILD:-build}
case $BUILD in
/*) CTL=$BUILD/remoractl ;;
*) CTL=$root/$BUILD/remoractl ;;
esac
if [[ ! -x $CTL ]]; then
    t_fail "remoractl is built" "no $CTL (run make)"
    t_summary
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/remora-certs.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

WEB_ID=spiffe://cluster.local/ns/default/sa/web

mode() { stat -c %a "$1"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
n_certs() { grep -c -- '-----BEGIN CERTIFICATE-----' "$1"; }

# expect_fail NAME RC NEEDLE CMD... — CMD exits RC and its stderr holds NEEDLE; a failure
# (RC 1) says so in exactly one line.
expect_fail() {
    local name=$1 want_rc=$2 needle=$3 err rc
    shift 3
    err=$("$@" 2>&1 >/dev/null)
    rc=$?
    if ((rc != want_rc)); then
        t_fail "$name" "exit $rc, want $want_rc; stderr: $err"
    elif [[ $err != *"$needle"* ]]; then
        t_fail "$name" "stderr '$err' lacks '$needle'"
    elif ((want_rc == 1)) && [[ $err == *$'\n'* ]]; then
        t_fail "$name" "stderr is more than one line: $err"
    else
        t_ok "$name"
    fi
}

# verify NAME CAFILE UNTRUSTED CERT [openssl verify flags] — openssl accepts CERT.
verify() {
    local name=$1 ca=$2 untrusted=$3 cert=$4 out
    shift 4
    local args=(-CAfile "$ca")
    [[ -n $untrusted ]] && args+=(-untrusted "$untrusted")
    if out=$(openssl verify "${args[@]}" "$@" "$cert" 2>&1) && [[ $out == *": OK" ]]; then
        t_ok "$name"
    else
        t_fail "$name" "$out"
    fi
}

# --- a root, an intermediate, a workload ------------------------------------------------------
t_run "certs root makes a root CA" "$CTL" certs root --out "$work/root" --org "Acme Mesh"
t_eq "root-cert.pem is 0644" "$(mode "$work/root/root-cert.pem")" 644
t_eq "root-key.pem is 0600" "$(mode "$work/root/root-key.pem")" 600
t_eq "the output directory is created 0755" "$(mode "$work/root")" 755
t_eq "the root's subject names the organization" \
    "$(openssl x509 -in "$work/root/root-cert.pem" -noout -subject)" "subject=O = Acme Mesh, CN = Root CA"
t_contains "the root is a CA" \
    "$(openssl x509 -in "$work/root/root-cert.pem" -noout -ext basicConstraints)" "CA:TRUE"
t_contains "the root signs certificates and CRLs" \
    "$(openssl x509 -in "$work/root/root-cert.pem" -noout -ext keyUsage)" "Certificate Sign, CRL Sign"
t_contains "the root's key is ECDSA P-256" \
    "$(openssl x509 -in "$work/root/root-cert.pem" -noout -text)" "NIST CURVE: P-256"
if openssl x509 -in "$work/root/root-cert.pem" -noout -checkend $((87600 * 3600 - 3600)) >/dev/null &&
    ! openssl x509 -in "$work/root/root-cert.pem" -noout -checkend $((87600 * 3600 + 60)) >/dev/null; then
    t_ok "the root lives 10 years by default"
else
    t_fail "the root lives 10 years by default" \
        "$(openssl x509 -in "$work/root/root-cert.pem" -noout -dates | tr '\n' ' ')"
fi
verify "openssl accepts the self-signed root" "$work/root/root-cert.pem" "" "$work/root/root-cert.pem"

t_run "certs intermediate signs an intermediate CA" \
    "$CTL" certs intermediate --ca "$work/root" --out "$work/int"
for f in ca-cert.pem cert-chain.pem root-cert.pem; do
    t_eq "intermediate $f is 0644" "$(mode "$work/int/$f")" 644
done
t_eq "intermediate ca-key.pem is 0600" "$(mode "$work/int/ca-key.pem")" 600
verify "openssl accepts the intermediate" "$work/root/root-cert.pem" "" "$work/int/ca-cert.pem"
t_eq "the intermediate's cert-chain.pem is its certificate, without the root" \
    "$(n_certs "$work/int/cert-chain.pem"):$(cmp -s "$work/int/cert-chain.pem" "$work/int/ca-cert.pem" && echo same)" "1:same"
t_eq "the intermediate's root-cert.pem is the root" \
    "$(sha "$work/int/root-cert.pem")" "$(sha "$work/root/root-cert.pem")"
t_contains "the intermediate inherits the root's organization" \
    "$(openssl x509 -in "$work/int/ca-cert.pem" -noout -subject)" "O = Acme Mesh, CN = Intermediate CA"
t_contains "the intermediate may sign only workloads (pathlen 0)" \
    "$(openssl x509 -in "$work/int/ca-cert.pem" -noout -ext basicConstraints)" "CA:TRUE, pathlen:0"

before=$(date +%s)
t_run "certs issue makes a workload certificate" \
    "$CTL" certs issue --ca "$work/int" --spiffe-id "$WEB_ID" --out "$work/web"
leaf=$work/web/cert-chain.pem
t_eq "key.pem is 0600" "$(mode "$work/web/key.pem")" 600
t_eq "cert-chain.pem is 0644" "$(mode "$leaf")" 644
t_eq "root-cert.pem is 0644" "$(mode "$work/web/root-cert.pem")" 644
verify "openssl accepts the leaf with the intermediate as untrusted" \
    "$work/web/root-cert.pem" "$work/int/ca-cert.pem" "$leaf"
verify "openssl accepts the leaf with its own cert-chain.pem as untrusted" \
    "$work/web/root-cert.pem" "$leaf" "$leaf"
verify "the leaf is good for a TLS server" "$work/web/root-cert.pem" "$leaf" "$leaf" -purpose sslserver
verify "the leaf is good for a TLS client" "$work/web/root-cert.pem" "$leaf" "$leaf" -purpose sslclient
t_eq "cert-chain.pem is the leaf then the intermediate, no root" "$(n_certs "$leaf")" 2
t_eq "the second certificate of cert-chain.pem is the intermediate" \
    "$(sed -n '/END CERTIFICATE/,$p' "$leaf" | sed 1d | openssl x509 -noout -fingerprint)" \
    "$(openssl x509 -in "$work/int/ca-cert.pem" -noout -fingerprint)"
t_eq "the workload's root-cert.pem is the root" \
    "$(sha "$work/web/root-cert.pem")" "$(sha "$work/root/root-cert.pem")"
san=$(openssl x509 -in "$leaf" -noout -ext subjectAltName)
t_contains "the SPIFFE ID is the leaf's URI SAN" "$san" "URI:$WEB_ID"
t_contains "the SAN is critical, as the subject is empty" "$san" "critical"
t_eq "the leaf's subject is empty" "$(openssl x509 -in "$leaf" -noout -subject)" "subject="
t_contains "the leaf is not a CA" "$(openssl x509 -in "$leaf" -noout -ext basicConstraints)" "CA:FALSE"
t_contains "the leaf's key usage" "$(openssl x509 -in "$leaf" -noout -ext keyUsage)" \
    "Digital Signature, Key Encipherment"
t_contains "the leaf serves both ends of mTLS" "$(openssl x509 -in "$leaf" -noout -ext extendedKeyUsage)" \
    "TLS Web Server Authentication, TLS Web Client Authentication"
t_eq "key.pem is the leaf's key" "$(openssl pkey -in "$work/web/key.pem" -pubout 2>&1)" \
    "$(openssl x509 -in "$leaf" -noout -pubkey)"
nb=$(date -d "$(openssl x509 -in "$leaf" -noout -startdate | cut -d= -f2)" +%s)
skew=$((before - nb))
if ((skew >= 55 && skew <= 65)); then
    t_ok "not-before is backdated a minute"
else
    t_fail "not-before is backdated a minute" "backdated ${skew}s"
fi
if openssl x509 -in "$leaf" -noout -checkend $((24 * 3600 - 600)) >/dev/null &&
    ! openssl x509 -in "$leaf" -noout -checkend $((24 * 3600 + 60)) >/dev/null; then
    t_ok "the leaf lives 24h by default"
else
    t_fail "the leaf lives 24h by default" "$(openssl x509 -in "$leaf" -noout -enddate)"
fi

# --- the shorthand, TTLs, rotation, the umask -------------------------------------------------
t_run "--ns/--sa/--trust-domain build the ID" "$CTL" certs issue --ca "$work/int" --ns prod \
    --sa api --trust-domain example.org --ttl 90s --out "$work/api"
t_contains "the built ID is in the SAN" "$(openssl x509 -in "$work/api/cert-chain.pem" -noout -ext subjectAltName)" \
    "URI:spiffe://example.org/ns/prod/sa/api"
if openssl x509 -in "$work/api/cert-chain.pem" -noout -checkend 30 >/dev/null &&
    ! openssl x509 -in "$work/api/cert-chain.pem" -noout -checkend 120 >/dev/null; then
    t_ok "--ttl 90s gives a 90 second certificate"
else
    t_fail "--ttl 90s gives a 90 second certificate" "$(openssl x509 -in "$work/api/cert-chain.pem" -noout -enddate)"
fi
t_run "--ns alone defaults the trust domain to cluster.local" \
    "$CTL" certs issue --ca "$work/root" --ns prod --sa api --out "$work/api-local"
t_contains "the default trust domain is cluster.local" \
    "$(openssl x509 -in "$work/api-local/cert-chain.pem" -noout -ext subjectAltName)" \
    "URI:spiffe://cluster.local/ns/prod/sa/api"
t_eq "issued by the root, the chain is the leaf alone" "$(n_certs "$work/api-local/cert-chain.pem")" 1
verify "a leaf issued by the root verifies" "$work/root/root-cert.pem" "" "$work/api-local/cert-chain.pem"

old_key=$(sha "$work/web/key.pem")
t_run "issuing again into the same directory rotates the certificate" \
    "$CTL" certs issue --ca "$work/int" --spiffe-id "$WEB_ID" --out "$work/web"
if [[ $(sha "$work/web/key.pem") != "$old_key" && $(mode "$work/web/key.pem") == 600 ]]; then
    t_ok "rotation replaces the key and keeps it 0600"
else
    t_fail "rotation replaces the key and keeps it 0600" "mode $(mode "$work/web/key.pem")"
fi
t_eq "rotation leaves no temporary files" "$(find "$work/web" -name '.*' -type f | wc -l)" 0
(umask 077 && "$CTL" certs issue --ca "$work/int" --spiffe-id "$WEB_ID" --out "$work/umask/a" >/dev/null)
t_eq "modes do not depend on the umask" \
    "$(mode "$work/umask"):$(mode "$work/umask/a"):$(mode "$work/umask/a/cert-chain.pem"):$(mode "$work/umask/a/key.pem")" \
    "755:755:644:600"

# --- deeper chains, RSA, a CA made by openssl -------------------------------------------------
t_run "an intermediate with --pathlen 1" \
    "$CTL" certs intermediate --ca "$work/root" --out "$work/i1" --pathlen 1 --ttl 720h
t_run "an intermediate under it, from an intermediate directory" \
    "$CTL" certs intermediate --ca "$work/i1" --out "$work/i2"
t_eq "its cert-chain.pem is it and its issuer, no root" "$(n_certs "$work/i2/cert-chain.pem")" 2
t_contains "a second-level intermediate has its own name" \
    "$(openssl x509 -in "$work/i2/ca-cert.pem" -noout -subject)" "CN = Intermediate CA 2"
t_run "a workload under the second level" \
    "$CTL" certs issue --ca "$work/i2" --spiffe-id "$WEB_ID" --out "$work/deep"
t_eq "the deep chain is leaf, i2, i1" "$(n_certs "$work/deep/cert-chain.pem")" 3
verify "openssl accepts root → i1 → i2 → leaf" "$work/deep/root-cert.pem" \
    "$work/deep/cert-chain.pem" "$work/deep/cert-chain.pem"
if ! openssl x509 -in "$work/i2/ca-cert.pem" -noout -checkend $((721 * 3600)) >/dev/null; then
    t_ok "an intermediate never outlives its issuer"
else
    t_fail "an intermediate never outlives its issuer" "$(openssl x509 -in "$work/i2/ca-cert.pem" -noout -enddate)"
fi
expect_fail "a pathlen-0 intermediate refuses to sign a CA" 1 "pathLenConstraint" \
    "$CTL" certs intermediate --ca "$work/int" --out "$work/too-deep"

t_run "certs root --rsa" "$CTL" certs root --rsa --out "$work/rsa"
t_contains "the RSA root has a 2048-bit key" \
    "$(openssl x509 -in "$work/rsa/root-cert.pem" -noout -text)" "Public-Key: (2048 bit)"
t_run "an RSA intermediate under the RSA root" \
    "$CTL" certs intermediate --rsa --ca "$work/rsa" --out "$work/rsa-int"
t_run "a workload from the RSA intermediate" \
    "$CTL" certs issue --ca "$work/rsa-int" --spiffe-id "$WEB_ID" --out "$work/rsa-web"
verify "openssl accepts the RSA-signed chain" "$work/rsa-web/root-cert.pem" \
    "$work/rsa-web/cert-chain.pem" "$work/rsa-web/cert-chain.pem"

mkdir -p "$work/foreign"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/C=US/O=Other Org/CN=Their Root" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$work/foreign/root-key.pem" -out "$work/foreign/root-cert.pem" 2>/dev/null
t_run "a root made by openssl can issue" \
    "$CTL" certs issue --ca "$work/foreign" --spiffe-id "$WEB_ID" --out "$work/foreign-web"
verify "openssl accepts the leaf of its own root" "$work/foreign/root-cert.pem" "" \
    "$work/foreign-web/cert-chain.pem"

# --- failures: one line, exit 1 -----------------------------------------------------------------
expect_fail "a bad SPIFFE ID is refused" 1 \
    "remoractl certs issue: bad SPIFFE ID \"spiffe://Cluster.local/ns/a/sa/b\": trust domain has uppercase 'C'" \
    "$CTL" certs issue --ca "$work/int" --spiffe-id spiffe://Cluster.local/ns/a/sa/b --out "$work/bad"
expect_fail "a SPIFFE ID with a query is refused" 1 "a query ('?' at offset" \
    "$CTL" certs issue --ca "$work/int" --spiffe-id "spiffe://cluster.local/ns/a?x=1" --out "$work/bad"
expect_fail "a non-spiffe URI is refused" 1 "does not start with \"spiffe://\"" \
    "$CTL" certs issue --ca "$work/int" --spiffe-id "https://cluster.local/ns/a/sa/b" --out "$work/bad"
expect_fail "a trust-domain-only ID is no workload" 1 "names only a trust domain" \
    "$CTL" certs issue --ca "$work/int" --spiffe-id "spiffe://cluster.local" --out "$work/bad"
expect_fail "a namespace with a slash is refused" 1 "contains '/'" \
    "$CTL" certs issue --ca "$work/int" --ns a/b --sa web --out "$work/bad"
t_eq "nothing is written for a refused ID" "$([[ -e $work/bad ]] && echo exists)" ""

mkdir -p "$work/mixed"
cp "$work/root/root-cert.pem" "$work/mixed/"
cp "$work/rsa/root-key.pem" "$work/mixed/"
expect_fail "a CA key that is not the CA's is refused" 1 "root-key.pem does not match" \
    "$CTL" certs issue --ca "$work/mixed" --spiffe-id "$WEB_ID" --out "$work/bad"
mkdir -p "$work/mixed-int"
cp "$work/int/ca-cert.pem" "$work/int/cert-chain.pem" "$work/int/root-cert.pem" "$work/mixed-int/"
cp "$work/i1/ca-key.pem" "$work/mixed-int/"
expect_fail "an intermediate with another's key is refused" 1 "ca-key.pem does not match" \
    "$CTL" certs intermediate --ca "$work/mixed-int" --out "$work/bad"
mkdir -p "$work/wrong-root"
cp "$work/int/ca-cert.pem" "$work/int/ca-key.pem" "$work/wrong-root/"
cp "$work/rsa/root-cert.pem" "$work/wrong-root/"
expect_fail "an intermediate with the wrong root-cert.pem is refused" 1 "does not chain to" \
    "$CTL" certs issue --ca "$work/wrong-root" --spiffe-id "$WEB_ID" --out "$work/bad"

t_run "a root that lives one second" "$CTL" certs root --out "$work/short" --ttl 1s
# Its second must pass (that is the scenario): wait until the clock is past its notAfter.
short_end=$(date -d "$(openssl x509 -in "$work/short/root-cert.pem" -noout -enddate | cut -d= -f2)" +%s)
expired() { (($(date +%s) > short_end)); }
t_until 5 expired
expect_fail "an expired issuer is refused" 1 "root-cert.pem expired at" \
    "$CTL" certs issue --ca "$work/short" --spiffe-id "$WEB_ID" --out "$work/bad"
expect_fail "an expired issuer signs no intermediate" 1 "expired at" \
    "$CTL" certs intermediate --ca "$work/short" --out "$work/bad"

mkdir -p "$work/notca"
cp "$work/web/key.pem" "$work/notca/root-key.pem"
openssl x509 -in "$work/web/cert-chain.pem" -out "$work/notca/root-cert.pem"
expect_fail "a workload certificate cannot act as a CA" 1 "is not a CA certificate" \
    "$CTL" certs issue --ca "$work/notca" --spiffe-id "$WEB_ID" --out "$work/bad"
expect_fail "a missing CA directory is named" 1 "$work/nope" \
    "$CTL" certs issue --ca "$work/nope" --spiffe-id "$WEB_ID" --out "$work/bad"
expect_fail "a directory without a CA key says what it wants" 1 "neither ca-key.pem" \
    "$CTL" certs issue --ca "$work/web" --spiffe-id "$WEB_ID" --out "$work/bad"
mkdir -p "$work/junk"
echo "not a key" >"$work/junk/root-key.pem"
cp "$work/root/root-cert.pem" "$work/junk/"
expect_fail "an unparsable key is named" 1 "$work/junk/root-key.pem: not a PEM private key" \
    "$CTL" certs issue --ca "$work/junk" --spiffe-id "$WEB_ID" --out "$work/bad"
openssl genpkey -algorithm ed25519 -out "$work/junk/root-key.pem" 2>/dev/null
expect_fail "an unsupported key type is named" 1 "unsupported key type" \
    "$CTL" certs issue --ca "$work/junk" --spiffe-id "$WEB_ID" --out "$work/bad"

root_key=$(sha "$work/root/root-key.pem")
expect_fail "a root is never replaced by accident" 1 "already exists; not overwriting it (--force replaces it)" \
    "$CTL" certs root --out "$work/root"
t_eq "the refused root left the old key" "$(sha "$work/root/root-key.pem")" "$root_key"
t_run "--force replaces it" "$CTL" certs root --out "$work/root" --force
if [[ $(sha "$work/root/root-key.pem") != "$root_key" ]]; then
    t_ok "--force wrote a new key"
else
    t_fail "--force wrote a new key" "same key"
fi

# --- usage: exit 2 ------------------------------------------------------------------------------
usage_errors=(
    "certs"
    "certs frobnicate"
    "certs root"
    "certs root --out"
    "certs root --out $work/u --ttl 0s"
    "certs root --out $work/u --ttl 5y"
    "certs root --out $work/u --ttl 36501d"
    "certs root --out $work/u --bogus"
    "certs root --out $work/u --spiffe-id spiffe://a/b"
    "certs root --out $work/u extra"
    "certs intermediate --out $work/u"
    "certs intermediate --ca $work/root --out $work/u --pathlen -1"
    "certs issue --ca $work/int --out $work/u"
    "certs issue --ca $work/int --out $work/u --ns a"
    "certs issue --ca $work/int --out $work/u --spiffe-id $WEB_ID --ns a --sa b"
    "certs issue --ca $work/int --out $work/u --spiffe-id $WEB_ID --rsa"
)
for args in "${usage_errors[@]}"; do
    # shellcheck disable=SC2086 # split on purpose: each entry is an argument list
    expect_fail "'remoractl $args' is a usage error" 2 "remoractl certs" "$CTL" $args
done
t_eq "usage errors write nothing" "$([[ -e $work/u ]] && echo exists)" ""
for sub in root intermediate issue; do
    out=$("$CTL" certs "$sub" --help)
    t_contains "certs $sub --help exits 0 with its usage" "$?:${out%%$'\n'*}" \
        "0:usage: remoractl certs $sub "
done
t_contains "remoractl --help lists certs" "$("$CTL" --help)" "certs"

t_summary
