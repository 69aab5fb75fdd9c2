/* ca_store.c — the CA's material in and out: parsing and checking an issuing CA from PEM or from
 * its directory, and writing new keys and certificates into directories with safe modes. */
#include "certs/ca.h"
#include "certs/ca_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <mbedtls/error.h>
#include <mbedtls/platform_util.h>

#define FILE_MAX (1024 * 1024) /* no PEM file of ours comes near this */

/* ---- parsing and checking an issuer --------------------------------------------------------- */

static bool crt_is_self_issued(const mbedtls_x509_crt *c)
{
    return c->subject_raw.len == c->issuer_raw.len &&
           memcmp(c->subject_raw.p, c->issuer_raw.p, c->subject_raw.len) == 0;
}

static bool crt_same(const mbedtls_x509_crt *a, const mbedtls_x509_crt *b)
{
    return a->raw.len == b->raw.len && memcmp(a->raw.p, b->raw.p, a->raw.len) == 0;
}

static size_t crt_count(const mbedtls_x509_crt *c)
{
    size_t n = 0;
    for (; c && c->raw.p; c = c->next)
        n++;
    return n;
}

static void label_set(char dst[CA_LABEL_SIZE], const char *name, const char *fallback)
{
    snprintf(dst, CA_LABEL_SIZE, "%s", name ? name : fallback);
}

/* Parses PEM text holding certificates into crt; with want_one, exactly one. */
static int parse_crts(mbedtls_x509_crt *crt, const char *pem, const char *name, bool want_one,
                      char *err, size_t errlen)
{
    char buf[160];
    int rc = mbedtls_x509_crt_parse(crt, (const unsigned char *)pem, strlen(pem) + 1);
    if (rc < 0) {
        mbedtls_strerror(rc, buf, sizeof(buf));
        return err_set(err, errlen, CA_ERR_BAD_INPUT, "%s: not a PEM certificate: %s", name, buf);
    }
    if (rc > 0)
        return err_set(err, errlen, CA_ERR_BAD_INPUT, "%s: %d of its certificates do not parse",
                       name, rc);
    if (want_one && crt_count(crt) != 1)
        return err_set(err, errlen, CA_ERR_BAD_INPUT, "%s holds %zu certificates, want exactly one",
                       name, crt_count(crt));
    return 0;
}

/* Checks that key is one we sign with and picks the digest for its signatures. */
static int key_check_type(const mbedtls_pk_context *key, const char *name, mbedtls_md_type_t *md,
                          char *err, size_t errlen)
{
    switch (mbedtls_pk_get_type(key)) {
    case MBEDTLS_PK_ECKEY:
    case MBEDTLS_PK_ECDSA: {
        mbedtls_ecp_group_id id = mbedtls_pk_ec(*key)->grp.id;
        if (id == MBEDTLS_ECP_DP_SECP256R1) {
            *md = MBEDTLS_MD_SHA256;
            return 0;
        }
        if (id == MBEDTLS_ECP_DP_SECP384R1) {
            *md = MBEDTLS_MD_SHA384;
            return 0;
        }
        const mbedtls_ecp_curve_info *ci = mbedtls_ecp_curve_info_from_grp_id(id);
        return err_set(err, errlen, CA_ERR_KEY_TYPE,
                       "%s: unsupported key type: EC curve %s (want P-256 or P-384)", name,
                       ci ? ci->name : "unknown");
    }
    case MBEDTLS_PK_RSA:
        if (mbedtls_pk_get_bitlen(key) < 2048)
            return err_set(err, errlen, CA_ERR_KEY_TYPE,
                           "%s: unsupported key type: RSA with %zu bits (want 2048 or more)", name,
                           mbedtls_pk_get_bitlen(key));
        *md = MBEDTLS_MD_SHA256;
        return 0;
    default:
        return err_set(err, errlen, CA_ERR_KEY_TYPE,
                       "%s: unsupported key type %s (want EC P-256, P-384 or RSA)", name,
                       mbedtls_pk_get_name(key));
    }
}

static int parse_key(ca_issuer_t *is, const char *pem, char *err, size_t errlen)
{
    char buf[160];
    int rc = mbedtls_pk_parse_key(&is->key, (const unsigned char *)pem, strlen(pem) + 1, NULL, 0);
    if (rc == MBEDTLS_ERR_PK_PASSWORD_REQUIRED || rc == MBEDTLS_ERR_PK_PASSWORD_MISMATCH)
        return err_set(err, errlen, CA_ERR_BAD_INPUT,
                       "%s: the key is encrypted; only unencrypted keys are supported",
                       is->key_name);
    if (rc == MBEDTLS_ERR_PK_UNKNOWN_PK_ALG)
        return err_set(err, errlen, CA_ERR_KEY_TYPE,
                       "%s: unsupported key type (want EC P-256, P-384 or RSA)", is->key_name);
    if (rc != 0) {
        mbedtls_strerror(rc, buf, sizeof(buf));
        return err_set(err, errlen, CA_ERR_BAD_INPUT, "%s: not a PEM private key: %s", is->key_name,
                       buf);
    }
    return key_check_type(&is->key, is->key_name, &is->md, err, errlen);
}

/* Keeps the certificates of chain_pem above the CA certificate, minus any root. */
static int load_chain(ca_issuer_t *is, const char *chain_pem, char *err, size_t errlen)
{
    mbedtls_x509_crt all;
    int rc;

    mbedtls_x509_crt_init(&all);
    rc = parse_crts(&all, chain_pem, is->chain_name, false, err, errlen);
    if (rc < 0)
        goto out;
    if (!crt_same(&all, &is->cert)) {
        rc = err_set(err, errlen, CA_ERR_BAD_INPUT, "%s does not start with %s", is->chain_name,
                     is->cert_name);
        goto out;
    }
    for (const mbedtls_x509_crt *c = all.next; c && c->raw.p; c = c->next) {
        if (crt_is_self_issued(c))
            continue; /* Istio's cert-chain.pem ends with the root; we keep it apart */
        if (is->cert_is_root) {
            rc = err_set(err, errlen, CA_ERR_BAD_INPUT,
                         "%s lists certificates above %s, which is self-signed", is->chain_name,
                         is->cert_name);
            goto out;
        }
        rc = mbedtls_x509_crt_parse_der(&is->chain, c->raw.p, c->raw.len);
        if (rc != 0) {
            rc = ca_crypto_fail(err, errlen, rc, "copying the issuer chain");
            goto out;
        }
    }
    rc = 0;
out:
    mbedtls_x509_crt_free(&all);
    return rc;
}

static int load_root(ca_issuer_t *is, const char *root_pem, char *err, size_t errlen)
{
    int rc;
    if (!root_pem) {
        if (!is->cert_is_root)
            return err_set(err, errlen, CA_ERR_BAD_INPUT, "%s is not self-signed and %s is missing",
                           is->cert_name, is->root_name);
        rc = mbedtls_x509_crt_parse_der(&is->root, is->cert.raw.p, is->cert.raw.len);
        return rc == 0 ? 0 : ca_crypto_fail(err, errlen, rc, "copying the root certificate");
    }
    rc = parse_crts(&is->root, root_pem, is->root_name, true, err, errlen);
    if (rc < 0)
        return rc;
    if (!crt_is_self_issued(&is->root))
        return err_set(err, errlen, CA_ERR_BAD_INPUT, "%s is not a self-signed root certificate",
                       is->root_name);
    if (is->cert_is_root && !crt_same(&is->root, &is->cert))
        return err_set(err, errlen, CA_ERR_BAD_INPUT, "%s is self-signed but is not %s",
                       is->cert_name, is->root_name);
    return 0;
}

/* Checks that cert and chain lead to root; validity is left to signing time, so that an expired
 * issuer is reported as such rather than as a broken chain. */
static int verify_to_root(ca_issuer_t *is, char *err, size_t errlen)
{
    const uint32_t when = MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE;
    mbedtls_x509_crt path;
    uint32_t flags = 0;
    char info[512];
    int rc;

    if (is->cert_is_root)
        return 0;
    mbedtls_x509_crt_init(&path);
    rc = mbedtls_x509_crt_parse_der(&path, is->cert.raw.p, is->cert.raw.len);
    for (const mbedtls_x509_crt *c = &is->chain; rc == 0 && c && c->raw.p; c = c->next)
        rc = mbedtls_x509_crt_parse_der(&path, c->raw.p, c->raw.len);
    if (rc != 0) {
        rc = ca_crypto_fail(err, errlen, rc, "copying the issuer chain");
        goto out;
    }
    rc = mbedtls_x509_crt_verify(&path, &is->root, NULL, NULL, &flags, NULL, NULL);
    if (rc != 0 && (flags & ~when) != 0) {
        mbedtls_x509_crt_verify_info(info, sizeof(info), "", flags & ~when);
        info[strcspn(info, "\n")] = '\0'; /* the first reason is the telling one */
        rc = err_set(err, errlen, CA_ERR_BAD_INPUT, "%s does not chain to %s%s%s: %s",
                     is->cert_name, is->root_name, crt_count(&is->chain) ? " through " : "",
                     crt_count(&is->chain) ? is->chain_name : "", info);
        goto out;
    }
    rc = 0;
out:
    mbedtls_x509_crt_free(&path);
    return rc;
}

int ca_issuer_load(const ca_issuer_src_t *src, ca_issuer_t **out, char *err, size_t errlen)
{
    ca_issuer_t *is;
    int rc;

    *out = NULL;
    if (errlen > 0)
        err[0] = '\0';
    if (!src->cert_pem || !src->key_pem)
        return err_set(err, errlen, CA_ERR_BAD_INPUT, "an issuer needs a certificate and a key");
    is = calloc(1, sizeof(*is));
    if (!is)
        return err_set(err, errlen, -ENOMEM, "out of memory loading the CA");
    mbedtls_x509_crt_init(&is->cert);
    mbedtls_pk_init(&is->key);
    mbedtls_x509_crt_init(&is->chain);
    mbedtls_x509_crt_init(&is->root);
    label_set(is->cert_name, src->cert_name, "the CA certificate");
    label_set(is->key_name, src->key_name, "the CA key");
    label_set(is->chain_name, src->chain_name, "the CA chain");
    label_set(is->root_name, src->root_name, "the root certificate");

    rc = parse_crts(&is->cert, src->cert_pem, is->cert_name, true, err, errlen);
    if (rc < 0)
        goto fail_parse;
    rc = parse_key(is, src->key_pem, err, errlen);
    if (rc < 0)
        goto fail_parse;
    if (mbedtls_pk_check_pair(&is->cert.pk, &is->key) != 0) {
        rc = err_set(err, errlen, CA_ERR_KEY_MISMATCH,
                     "%s does not match %s (it is not that certificate's key)", is->key_name,
                     is->cert_name);
        goto fail_check;
    }
    if (!is->cert.ca_istrue) {
        rc = err_set(err, errlen, CA_ERR_NOT_CA,
                     "%s is not a CA certificate (basicConstraints has no CA:TRUE)", is->cert_name);
        goto fail_check;
    }
    if (mbedtls_x509_crt_check_key_usage(&is->cert, MBEDTLS_X509_KU_KEY_CERT_SIGN) != 0) {
        rc =
            err_set(err, errlen, CA_ERR_NOT_CA,
                    "%s may not sign certificates (its keyUsage lacks keyCertSign)", is->cert_name);
        goto fail_check;
    }
    is->cert_is_root = crt_is_self_issued(&is->cert);
    if (src->chain_pem) {
        rc = load_chain(is, src->chain_pem, err, errlen);
        if (rc < 0)
            goto fail_chain;
    }
    rc = load_root(is, src->root_pem, err, errlen);
    if (rc < 0)
        goto fail_chain;
    rc = verify_to_root(is, err, errlen);
    if (rc < 0)
        goto fail_chain;
    *out = is;
    return 0;

fail_chain:
fail_check:
fail_parse:
    ca_issuer_free(is);
    return rc;
}

void ca_issuer_free(ca_issuer_t *is)
{
    if (!is)
        return;
    mbedtls_x509_crt_free(&is->cert);
    mbedtls_pk_free(&is->key);
    mbedtls_x509_crt_free(&is->chain);
    mbedtls_x509_crt_free(&is->root);
    free(is);
}

/* ---- files -------------------------------------------------------------------------------- */

static int path_join(char out[PATH_MAX], const char *dir, const char *name, char *err,
                     size_t errlen)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);
    if (n < 0 || n >= PATH_MAX)
        return err_set(err, errlen, -ENAMETOOLONG, "path %s/%s is too long", dir, name);
    return 0;
}

static bool path_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Reads the whole text file at path into *out (new, NUL-terminated). A missing file is not an
 * error when optional: *out stays NULL. */
static int read_text(const char *path, bool optional, char **out, char *err, size_t errlen)
{
    struct stat st;
    char *buf = NULL;
    size_t have = 0;
    int fd, rc;

    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        if (optional && rc == -ENOENT)
            return 0;
        return err_set(err, errlen, rc, "cannot read %s: %s", path, strerror(-rc));
    }
    if (fstat(fd, &st) < 0) {
        rc = err_set(err, errlen, -errno, "cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > FILE_MAX) {
        rc = err_set(err, errlen, -EINVAL, "cannot read %s: %s", path,
                     S_ISREG(st.st_mode) ? "larger than 1 MiB" : "not a regular file");
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        rc = err_set(err, errlen, -ENOMEM, "out of memory reading %s", path);
        goto out;
    }
    while (have < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + have, (size_t)st.st_size - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = err_set(err, errlen, -errno, "cannot read %s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break; /* shrank while we read: take what is there */
        have += (size_t)n;
    }
    buf[have] = '\0';
    *out = buf;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    close(fd);
    return rc;
}

static void free_secret(char *s)
{
    if (s)
        mbedtls_platform_zeroize(s, strlen(s));
    free(s);
}

int ca_issuer_load_dir(const char *dir, ca_issuer_t **out, char *err, size_t errlen)
{
    char cert_p[PATH_MAX], key_p[PATH_MAX], chain_p[PATH_MAX], root_p[PATH_MAX];
    char *cert = NULL, *key = NULL, *chain = NULL, *root = NULL;
    struct stat st;
    bool intermediate;
    int rc;

    *out = NULL;
    if (stat(dir, &st) < 0)
        return err_set(err, errlen, -errno, "cannot read CA directory %s: %s", dir,
                       strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return err_set(err, errlen, -ENOTDIR, "CA directory %s is not a directory", dir);
    if ((rc = path_join(key_p, dir, "ca-key.pem", err, errlen)) < 0)
        return rc;
    intermediate = path_exists(key_p);
    if (intermediate)
        rc = path_join(cert_p, dir, "ca-cert.pem", err, errlen);
    else if ((rc = path_join(key_p, dir, "root-key.pem", err, errlen)) == 0)
        rc = path_join(cert_p, dir, "root-cert.pem", err, errlen);
    if (rc == 0)
        rc = path_join(chain_p, dir, "cert-chain.pem", err, errlen);
    if (rc == 0)
        rc = path_join(root_p, dir, "root-cert.pem", err, errlen);
    if (rc < 0)
        return rc;
    if (!intermediate && !path_exists(key_p))
        return err_set(err, errlen, -ENOENT,
                       "CA directory %s holds neither ca-key.pem (an intermediate CA) nor "
                       "root-key.pem (a root CA)",
                       dir);

    rc = read_text(cert_p, false, &cert, err, errlen);
    if (rc == 0)
        rc = read_text(key_p, false, &key, err, errlen);
    if (rc == 0 && intermediate)
        rc = read_text(chain_p, true, &chain, err, errlen);
    if (rc == 0 && intermediate)
        rc = read_text(root_p, true, &root, err, errlen);
    if (rc == 0) {
        ca_issuer_src_t src = {
            .cert_pem = cert,
            .cert_name = cert_p,
            .key_pem = key,
            .key_name = key_p,
            .chain_pem = chain,
            .chain_name = chain_p,
            .root_pem = root,
            .root_name = root_p,
        };
        rc = ca_issuer_load(&src, out, err, errlen);
    }
    free(cert);
    free_secret(key);
    free(chain);
    free(root);
    return rc;
}

/* Creates dir and its missing parents; the ones created get mode 0755 whatever the umask. */
static int mkdir_p(const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX];
    size_t n = strlen(dir);
    struct stat st;

    if (n == 0)
        return err_set(err, errlen, -EINVAL, "the output directory name is empty");
    if (n >= sizeof(path))
        return err_set(err, errlen, -ENAMETOOLONG, "output directory %s: name too long", dir);
    memcpy(path, dir, n + 1);
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(path, 0755) == 0) {
            if (chmod(path, 0755) < 0)
                return err_set(err, errlen, -errno, "cannot set the mode of %s: %s", path,
                               strerror(errno));
        } else if (errno != EEXIST) {
            return err_set(err, errlen, -errno, "cannot create directory %s: %s", path,
                           strerror(errno));
        }
        *p = c;
        if (c == '\0')
            break;
    }
    if (stat(dir, &st) < 0)
        return err_set(err, errlen, -errno, "cannot use directory %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return err_set(err, errlen, -ENOTDIR, "%s exists and is not a directory", dir);
    return 0;
}

typedef struct out_file {
    const char *name;
    const char *data;
    mode_t mode;
} out_file_t;

static size_t layout_files(ca_layout_t layout, const ca_issued_t *is, out_file_t f[4])
{
    switch (layout) {
    case CA_LAYOUT_ROOT:
        f[0] = (out_file_t){"root-cert.pem", is->cert_pem, 0644};
        f[1] = (out_file_t){"root-key.pem", is->key_pem, 0600};
        return 2;
    case CA_LAYOUT_INTERMEDIATE:
        f[0] = (out_file_t){"ca-cert.pem", is->cert_pem, 0644};
        f[1] = (out_file_t){"ca-key.pem", is->key_pem, 0600};
        f[2] = (out_file_t){"cert-chain.pem", is->chain_pem, 0644};
        f[3] = (out_file_t){"root-cert.pem", is->root_pem, 0644};
        return 4;
    case CA_LAYOUT_WORKLOAD:
        f[0] = (out_file_t){"key.pem", is->key_pem, 0600};
        f[1] = (out_file_t){"cert-chain.pem", is->chain_pem, 0644};
        f[2] = (out_file_t){"root-cert.pem", is->root_pem, 0644};
        return 3;
    }
    return 0;
}

/* Writes data to a new temporary file next to final; mkostemp creates it 0600 with O_EXCL, so
 * a key is never readable by others, and only then does it get its final mode. */
static int write_temp(const char *dir, const out_file_t *f, char tmp[PATH_MAX], char *err,
                      size_t errlen)
{
    size_t len = strlen(f->data), done = 0;
    int fd, rc;

    if (snprintf(tmp, PATH_MAX, "%s/.%s.XXXXXX", dir, f->name) >= PATH_MAX) {
        tmp[0] = '\0';
        return err_set(err, errlen, -ENAMETOOLONG, "path %s/%s is too long", dir, f->name);
    }
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        tmp[0] = '\0';
        return err_set(err, errlen, rc, "cannot write %s/%s: %s", dir, f->name, strerror(-rc));
    }
    if (fchmod(fd, f->mode) < 0)
        goto fail_io;
    while (done < len) {
        ssize_t n = write(fd, f->data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto fail_io;
        done += (size_t)n;
    }
    if (fsync(fd) < 0)
        goto fail_io;
    if (close(fd) < 0) {
        fd = -1;
        goto fail_io;
    }
    return 0;

fail_io:
    rc = -errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    tmp[0] = '\0';
    return err_set(err, errlen, rc, "cannot write %s/%s: %s", dir, f->name, strerror(-rc));
}

int ca_save_dir(const char *dir, ca_layout_t layout, const ca_issued_t *issued, bool overwrite,
                char *err, size_t errlen)
{
    out_file_t f[4];
    char tmp[4][PATH_MAX], final[4][PATH_MAX];
    size_t n = layout_files(layout, issued, f);
    int rc = 0;

    if (errlen > 0)
        err[0] = '\0';
    for (size_t i = 0; i < 4; i++)
        tmp[i][0] = '\0';
    if (n == 0)
        return err_set(err, errlen, CA_ERR_BAD_INPUT, "unknown directory layout %d", (int)layout);
    for (size_t i = 0; i < n; i++)
        if (!f[i].data)
            return err_set(err, errlen, CA_ERR_BAD_INPUT, "nothing to write as %s", f[i].name);
    rc = mkdir_p(dir, err, errlen);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = path_join(final[i], dir, f[i].name, err, errlen);
        if (rc == 0 && !overwrite && path_exists(final[i]))
            rc = err_set(err, errlen, -EEXIST, "%s already exists; not overwriting it", final[i]);
    }
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = write_temp(dir, &f[i], tmp[i], err, errlen);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (rename(tmp[i], final[i]) < 0)
            rc = err_set(err, errlen, -errno, "cannot write %s: %s", final[i], strerror(errno));
        else
            tmp[i][0] = '\0';
    }
    if (rc == 0) {
        /* The renames themselves are durable only once the directory is synced. */
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    for (size_t i = 0; i < n; i++)
        if (tmp[i][0] != '\0')
            unlink(tmp[i]);
    return rc;
}
