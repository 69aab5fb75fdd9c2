/* Workload identity from X.509 certificates: SAN walking, SPIFFE IDs, SAN matchers and the
 * certificate facts shown on the admin page.
 *
 * mbedTLS 2.28 keeps every GeneralName of the subjectAltName extension in
 * crt->subject_alt_names with its context-specific tag (URI is [6], dNSName is [2]), even the
 * kinds it cannot interpret itself, so the URI SANs SPIFFE needs are read from there without
 * parsing the extension again. */
#include "certs/identity.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/asn1.h>
#include <mbedtls/error.h>
#include <mbedtls/x509_crt.h>

#define SAN_TAG_DNS (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2)
#define SAN_TAG_URI (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 6)

int identity_foreach_san(const struct mbedtls_x509_crt *crt,
                         int (*fn)(void *arg, identity_san_type_t type, const char *value,
                                   size_t len),
                         void *arg)
{
    for (const mbedtls_x509_sequence *cur = &crt->subject_alt_names; cur; cur = cur->next) {
        if (cur->buf.p == NULL)
            continue;
        identity_san_type_t type;
        if (cur->buf.tag == SAN_TAG_URI)
            type = IDENTITY_SAN_URI;
        else if (cur->buf.tag == SAN_TAG_DNS)
            type = IDENTITY_SAN_DNS;
        else
            continue;
        int rc = fn(arg, type, (const char *)cur->buf.p, cur->buf.len);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static bool same_ascii_nocase(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

/* An exact DNS expectation against a certificate DNS SAN: equal, or the SAN is "*.rest" and
 * the expectation is "label.rest" with a non-empty first label. */
static bool dns_exact(const char *want, size_t want_len, const char *san, size_t len)
{
    if (len == want_len && same_ascii_nocase(want, san, len))
        return true;
    if (len < 3 || san[0] != '*' || san[1] != '.')
        return false;
    const char *dot = memchr(want, '.', want_len);
    if (dot == NULL || dot == want)
        return false;
    size_t rest = want_len - (size_t)(dot - want);
    return rest == len - 1 && same_ascii_nocase(dot, san + 1, rest);
}

bool identity_san_matches(const identity_matcher_t *m, identity_san_type_t type, const char *value,
                          size_t len)
{
    if ((m->san_type != type && m->san_type != IDENTITY_SAN_ANY) || m->value == NULL)
        return false;
    size_t want = strlen(m->value);
    if (type == IDENTITY_SAN_URI) {
        if (m->kind == IDENTITY_MATCH_EXACT)
            return len == want && memcmp(value, m->value, len) == 0;
        return len >= want && memcmp(value, m->value, want) == 0;
    }
    if (m->kind == IDENTITY_MATCH_EXACT)
        return dns_exact(m->value, want, value, len);
    return len >= want && same_ascii_nocase(value, m->value, want);
}

typedef struct match_walk {
    const identity_matcher_t *m;
    size_t n;
} match_walk_t;

static int match_one_san(void *arg, identity_san_type_t type, const char *value, size_t len)
{
    const match_walk_t *w = arg;
    for (size_t i = 0; i < w->n; i++)
        if (identity_san_matches(&w->m[i], type, value, len))
            return 1;
    return 0;
}

bool identity_cert_matches(const struct mbedtls_x509_crt *crt, const identity_matcher_t *m,
                           size_t n)
{
    if (n == 0)
        return true;
    match_walk_t w = {m, n};
    return identity_foreach_san(crt, match_one_san, &w) == 1;
}

typedef struct spiffe_walk {
    const char *value;
    size_t len;
    int count;
} spiffe_walk_t;

static int find_spiffe(void *arg, identity_san_type_t type, const char *value, size_t len)
{
    spiffe_walk_t *w = arg;
    size_t scheme = sizeof(IDENTITY_SPIFFE_SCHEME) - 1;
    if (type != IDENTITY_SAN_URI || len < scheme || memcmp(value, IDENTITY_SPIFFE_SCHEME, scheme))
        return 0;
    w->value = value;
    w->len = len;
    w->count++;
    return 0;
}

int identity_spiffe_id(const struct mbedtls_x509_crt *crt, char *out, size_t cap)
{
    spiffe_walk_t w = {NULL, 0, 0};
    identity_foreach_san(crt, find_spiffe, &w);
    if (w.count == 0)
        return -ENOENT;
    if (w.count > 1 || memchr(w.value, '\0', w.len) != NULL)
        return -EINVAL;
    if (w.len + 1 > cap)
        return -ENOSPC;
    memcpy(out, w.value, w.len);
    out[w.len] = '\0';
    return (int)w.len;
}

int64_t identity_utc_seconds(int year, int month, int day, int hour, int min, int sec)
{
    static const int before_month[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
    if (month < 1 || month > 12)
        return 0;
    /* Leap days in the years [1, y): every 4th, except centuries, except every 400th. */
    int64_t y = year - 1;
    int64_t leaps = y / 4 - y / 100 + y / 400;
    int64_t leaps_1970 = 1969 / 4 - 1969 / 100 + 1969 / 400;
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    int64_t days = 365 * ((int64_t)year - 1970) + (leaps - leaps_1970) + before_month[month - 1] +
                   (leap && month > 2 ? 1 : 0) + (day - 1);
    return days * 86400 + (int64_t)hour * 3600 + min * 60 + sec;
}

static int64_t x509_seconds(const mbedtls_x509_time *t)
{
    return identity_utc_seconds(t->year, t->mon, t->day, t->hour, t->min, t->sec);
}

typedef struct san_collect {
    identity_san_t *sans;
    char *text; /* string storage after the array */
    size_t n;
} san_collect_t;

static int count_san(void *arg, identity_san_type_t type, const char *value, size_t len)
{
    (void)type;
    (void)value;
    size_t *need = arg;
    need[0]++;
    need[1] += len + 1;
    return 0;
}

static int copy_san(void *arg, identity_san_type_t type, const char *value, size_t len)
{
    san_collect_t *c = arg;
    identity_san_t *san = &c->sans[c->n++];
    san->type = type;
    san->value = c->text;
    memcpy(c->text, value, len);
    c->text[len] = '\0';
    c->text += len + 1;
    return 0;
}

static void serial_hex(const mbedtls_x509_buf *serial, char *out, size_t cap)
{
    static const char digits[] = "0123456789abcdef";
    size_t i = 0, o = 0;
    while (i + 1 < serial->len && serial->p[i] == 0)
        i++;
    for (; i < serial->len && o + 2 < cap; i++) {
        out[o++] = digits[serial->p[i] >> 4];
        out[o++] = digits[serial->p[i] & 15];
    }
    out[o] = '\0';
}

int identity_cert_info(const struct mbedtls_x509_crt *crt, int64_t now, identity_cert_info_t *out)
{
    memset(out, 0, sizeof(*out));
    if (mbedtls_x509_dn_gets(out->subject, sizeof(out->subject), &crt->subject) < 0)
        out->subject[0] = '\0';
    if (mbedtls_x509_dn_gets(out->issuer, sizeof(out->issuer), &crt->issuer) < 0)
        out->issuer[0] = '\0';
    serial_hex(&crt->serial, out->serial, sizeof(out->serial));
    out->not_before = x509_seconds(&crt->valid_from);
    out->not_after = x509_seconds(&crt->valid_to);
    int64_t left = out->not_after - now;
    /* Whole days, rounded toward minus infinity so an expired cert never shows 0. */
    out->days_until_expiry = left >= 0 ? left / 86400 : -((-left + 86399) / 86400);

    size_t need[2] = {0, 0};
    identity_foreach_san(crt, count_san, need);
    if (need[0] == 0)
        return 0;
    san_collect_t c = {NULL, NULL, 0};
    c.sans = malloc(need[0] * sizeof(identity_san_t) + need[1]);
    if (c.sans == NULL)
        return -ENOMEM;
    c.text = (char *)(c.sans + need[0]);
    identity_foreach_san(crt, copy_san, &c);
    out->sans = c.sans;
    out->n_sans = c.n;

    int spiffe = -1;
    for (size_t i = 0; i < c.n; i++) {
        if (c.sans[i].type == IDENTITY_SAN_URI && strncmp(c.sans[i].value, IDENTITY_SPIFFE_SCHEME,
                                                          sizeof(IDENTITY_SPIFFE_SCHEME) - 1) == 0)
            spiffe = spiffe == -1 ? (int)i : -2;
    }
    out->spiffe_id = spiffe >= 0 ? c.sans[spiffe].value : NULL;
    return 0;
}

int identity_cert_info_parse(const char *data, size_t len, int64_t now, identity_cert_info_t *out,
                             char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    int rc;
    if (len >= 11 && memmem(data, len, "-----BEGIN", 10) != NULL) {
        /* mbedTLS wants PEM NUL-terminated, with the NUL counted in the length. */
        char *pem = malloc(len + 1);
        if (pem == NULL)
            return -ENOMEM;
        memcpy(pem, data, len);
        pem[len] = '\0';
        rc = mbedtls_x509_crt_parse(&crt, (const unsigned char *)pem, len + 1);
        free(pem);
        if (rc > 0 && crt.raw.p != NULL)
            rc = 0; /* some later block was not a certificate; the first one is enough */
    } else {
        rc = mbedtls_x509_crt_parse_der(&crt, (const unsigned char *)data, len);
    }
    if (rc != 0 || crt.raw.p == NULL) {
        char why[128];
        mbedtls_strerror(rc, why, sizeof(why));
        snprintf(err, errlen, "no certificate could be parsed: %s", rc ? why : "empty input");
        mbedtls_x509_crt_free(&crt);
        return -EINVAL;
    }
    rc = identity_cert_info(&crt, now, out);
    mbedtls_x509_crt_free(&crt);
    return rc;
}

void identity_cert_info_free(identity_cert_info_t *out)
{
    if (out == NULL)
        return;
    free(out->sans);
    out->sans = NULL;
    out->n_sans = 0;
    out->spiffe_id = NULL;
}
