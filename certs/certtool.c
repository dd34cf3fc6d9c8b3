/* tollgate-certs: development and test certificates, made with wolfSSL's certificate
 * generation (EC P-256 keys, ECDSA with SHA-256). See certs/README.md for the commands.
 *
 * Stands alone: it uses include/tollgate/err.h for codes and macros, and der.h (shared with
 * tollgate-cp) for the basicConstraints fix; no other tollgate module. Errors: one line on
 * stderr naming what was wrong, exit 1; usage errors exit 2. */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/settings.h>
#include <wolfssl/wolfcrypt/sha256.h>
#include <wolfssl/wolfcrypt/wc_port.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tollgate/der.h"
#include "tollgate/err.h"

#if !defined(WOLFSSL_CERT_GEN) || !defined(WOLFSSL_CERT_EXT) || !defined(WOLFSSL_ALT_NAMES) ||     \
    !defined(WOLFSSL_CERT_REQ) || !defined(WOLFSSL_KEY_GEN) || !defined(HAVE_ECC)
#error "tollgate-certs needs wolfSSL with certgen, certext, certreq, keygen and ALT_NAMES"
#endif

#define PROG "tollgate-certs"
#define EXIT_USAGE 2
#define MAX_NAMES 32                      /* --uri / --dns given at most this often each */
#define MAX_FILE (1024 * 1024)            /* largest PEM file we read */
#define DER_CAP (CTC_MAX_ALT_SIZE + 8192) /* a certificate with the largest SAN wolfSSL takes */
#define SERIAL_LEN 16                     /* random serials: 16 bytes, positive, non-zero */
#define SKEW_SECS 300                     /* default notBefore is this far in the past */
#define DAY_SECS 86400L
#define KEY_PEM_CAP 1024 /* PEM of a P-256 SEC1 key is about 230 bytes */

enum cmd { CMD_CA, CMD_INTERMEDIATE, CMD_ISSUE, CMD_CSR, CMD_KEYGEN, CMD_SHOW, CMD_COUNT };

static const char *const cmd_names[CMD_COUNT] = {"ca",  "intermediate", "issue",
                                                 "csr", "keygen",       "show"};

enum opt {
    O_BASE = 256,
    O_OUT = O_BASE,
    O_CA,
    O_CN,
    O_DAYS,
    O_HOURS,
    O_SECONDS,
    O_NOT_BEFORE_DAYS,
    O_EXPIRED,
    O_NOT_YET_VALID,
    O_EKU,
    O_NO_SAN,
    O_URI,
    O_DNS,
    O_CA_FLAG,
    O_SELF_SIGNED,
    O_KEY,
    O_SERIAL,
    O_SPIFFE,
    O_PATH_LEN,
    O_END
};

static const struct option long_opts[] = {
    {"out", required_argument, NULL, O_OUT},
    {"ca", required_argument, NULL, O_CA},
    {"cn", required_argument, NULL, O_CN},
    {"days", required_argument, NULL, O_DAYS},
    {"hours", required_argument, NULL, O_HOURS},
    {"seconds", required_argument, NULL, O_SECONDS},
    {"not-before-days", required_argument, NULL, O_NOT_BEFORE_DAYS},
    {"expired", no_argument, NULL, O_EXPIRED},
    {"not-yet-valid", no_argument, NULL, O_NOT_YET_VALID},
    {"eku", required_argument, NULL, O_EKU},
    {"no-san", no_argument, NULL, O_NO_SAN},
    {"uri", required_argument, NULL, O_URI},
    {"dns", required_argument, NULL, O_DNS},
    {"ca-flag", no_argument, NULL, O_CA_FLAG},
    {"self-signed", no_argument, NULL, O_SELF_SIGNED},
    {"key", required_argument, NULL, O_KEY},
    {"serial", required_argument, NULL, O_SERIAL},
    {"spiffe", required_argument, NULL, O_SPIFFE},
    {"path-len", required_argument, NULL, O_PATH_LEN},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

#define C(x) (1u << (x))
#define SIGNING (C(CMD_CA) | C(CMD_INTERMEDIATE) | C(CMD_ISSUE))

/* Which commands take each option. */
static const unsigned opt_cmds[O_END - O_BASE] = {
    [O_OUT - O_BASE] = SIGNING | C(CMD_CSR) | C(CMD_KEYGEN),
    [O_CA - O_BASE] = C(CMD_INTERMEDIATE) | C(CMD_ISSUE),
    [O_CN - O_BASE] = SIGNING | C(CMD_CSR),
    [O_DAYS - O_BASE] = SIGNING,
    [O_HOURS - O_BASE] = SIGNING,
    [O_SECONDS - O_BASE] = SIGNING,
    [O_NOT_BEFORE_DAYS - O_BASE] = SIGNING,
    [O_EXPIRED - O_BASE] = SIGNING,
    [O_NOT_YET_VALID - O_BASE] = SIGNING,
    [O_EKU - O_BASE] = C(CMD_ISSUE),
    [O_NO_SAN - O_BASE] = C(CMD_ISSUE),
    [O_URI - O_BASE] = C(CMD_ISSUE) | C(CMD_CSR),
    [O_DNS - O_BASE] = C(CMD_ISSUE) | C(CMD_CSR),
    [O_CA_FLAG - O_BASE] = C(CMD_ISSUE),
    [O_SELF_SIGNED - O_BASE] = C(CMD_ISSUE),
    [O_KEY - O_BASE] = SIGNING | C(CMD_CSR),
    [O_SERIAL - O_BASE] = SIGNING,
    [O_SPIFFE - O_BASE] = C(CMD_ISSUE) | C(CMD_CSR),
    [O_PATH_LEN - O_BASE] = C(CMD_CA) | C(CMD_INTERMEDIATE),
};

struct opts {
    enum cmd cmd;
    const char *out, *ca, *cn, *spiffe, *key, *eku, *file;
    long days, hours, seconds, not_before_days, path_len;
    bool has_lifetime;
    bool expired, not_yet_valid, no_san, ca_flag, self_signed;
    byte serial[CTC_SERIAL_SIZE];
    int serial_len; /* 0: make a random one */
    const char *uris[MAX_NAMES];
    size_t n_uris;
    const char *dns[MAX_NAMES];
    size_t n_dns;
    uint32_t seen; /* bit (opt - O_BASE) for each option given */
};

/* The CA that signs: its key, its first certificate, and the intermediates above it. */
struct signer {
    ecc_key key;
    bool key_ok;
    byte *der;
    int der_len;
    char *chain; /* PREFIX.chain.pem, or NULL for a root */
    size_t chain_len;
};

static const char usage_text[] =
    "usage: " PROG " COMMAND [OPTIONS]\n"
    "  ca           --out PREFIX [--cn NAME] [--days N] [--not-before-days N] [--path-len N]\n"
    "               [--key FILE] [--serial HEX]        -> PREFIX.pem PREFIX.key\n"
    "  intermediate --ca PREFIX --out PREFIX2 [--cn NAME] [--days N] [--path-len N] ...\n"
    "                                                  -> PREFIX2.pem PREFIX2.chain.pem "
    "PREFIX2.key\n"
    "  issue        (--ca PREFIX | --self-signed) --out PREFIX3 --spiffe ID\n"
    "               [--days N] [--hours N] [--seconds N] [--expired | --not-yet-valid |\n"
    "               --not-before-days N] [--eku server|client|both|none|codesign]\n"
    "               [--no-san] [--uri URI]... [--dns NAME]... [--ca-flag] [--cn NAME]\n"
    "               [--key FILE] [--serial HEX]        -> PREFIX3.pem (leaf + chain) "
    "PREFIX3.key\n"
    "  csr          --key FILE --spiffe ID --out FILE.csr [--uri URI]... [--dns NAME]...\n"
    "  keygen       --out FILE.key\n"
    "  show         FILE.pem    (serial=, sha256=, not_before=, not_after=, uri=, dns=)\n"
    "Validity options apply to ca, intermediate and issue; --days/--hours/--seconds add up.\n";

static int seterr(char *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int seterr(char *err, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, TG_ERRLEN, fmt, ap);
    va_end(ap);
    return code;
}

static void wipe_free(void *p, size_t len)
{
    if (p != NULL)
        explicit_bzero(p, len);
    free(p);
}

static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, PROG "%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(run '" PROG " --help' for usage)\n");
    return EXIT_USAGE;
}

/* ---- files ---- */

/* Reads a whole file (at most MAX_FILE bytes) into a NUL-terminated heap buffer. A missing
 * file is TG_EIO with errno ENOENT left for the caller to test. */
static int read_file(const char *path, char **out, size_t *out_len, char *err)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len;
    int rc = TG_EIO;

    if (f == NULL) {
        int e = errno;

        seterr(err, TG_EIO, "%s: %s", path, strerror(e));
        errno = e; /* callers test for ENOENT */
        return TG_EIO;
    }
    buf = malloc(MAX_FILE + 1);
    if (buf == NULL) {
        rc = seterr(err, TG_ENOMEM, "out of memory reading %s", path);
        goto fail;
    }
    len = fread(buf, 1, MAX_FILE + 1, f);
    if (ferror(f)) {
        seterr(err, rc, "%s: read error", path);
        goto fail;
    }
    if (len > MAX_FILE) {
        rc = seterr(err, TG_ETOOBIG, "%s: larger than %d bytes", path, MAX_FILE);
        goto fail;
    }
    buf[len] = '\0';
    fclose(f);
    *out = buf;
    *out_len = len;
    return 0;
fail:
    fclose(f);
    wipe_free(buf, MAX_FILE + 1);
    return rc;
}

/* Writes path atomically (a temporary file in the same directory, then rename), so a file
 * watcher never sees half a certificate. mode applies even when path already exists. */
static int write_file(const char *path, const void *data, size_t len, mode_t mode, char *err)
{
    char tmp[PATH_MAX];
    const char *p = data;
    int fd = -1;
    int rc = TG_EIO;

    if (snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", path) >= (int)sizeof(tmp))
        return seterr(err, TG_EINVAL, "%s: path too long", path);
    fd = mkstemp(tmp);
    if (fd < 0)
        return seterr(err, TG_EIO, "%s: cannot create: %s", path, strerror(errno));
    if (fchmod(fd, mode) < 0) {
        seterr(err, rc, "%s: chmod: %s", tmp, strerror(errno));
        goto fail;
    }
    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            seterr(err, rc, "%s: write: %s", tmp, strerror(errno));
            goto fail;
        }
        p += n;
        len -= (size_t)n;
    }
    if (close(fd) < 0) {
        fd = -1;
        seterr(err, rc, "%s: close: %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        seterr(err, rc, "%s: rename: %s", path, strerror(errno));
        goto fail;
    }
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return rc;
}

static int path_join(char *out, const char *prefix, const char *suffix, char *err)
{
    if (snprintf(out, PATH_MAX, "%s%s", prefix, suffix) >= PATH_MAX)
        return seterr(err, TG_EINVAL, "%s%s: path too long", prefix, suffix);
    return 0;
}

/* ---- keys ---- */

static int make_key(WC_RNG *rng, ecc_key *key, char *err)
{
    int ret = wc_ecc_make_key_ex(rng, 32, key, ECC_SECP256R1);

    if (ret != 0)
        return seterr(err, TG_ETLS, "making a P-256 key: %s", wc_GetErrorString(ret));
    return 0;
}

/* Loads a P-256 private key (PEM "EC PRIVATE KEY" or "PRIVATE KEY", or DER) into an
 * initialised key. */
static int load_key(const char *path, ecc_key *key, char *err)
{
    char *file = NULL;
    size_t file_len = 0;
    byte *der = NULL;
    int der_len;
    word32 idx = 0;
    int ret, rc;

    if ((rc = read_file(path, &file, &file_len, err)) < 0)
        return rc;
    rc = TG_EINVAL;
    der = malloc(file_len + 1);
    if (der == NULL) {
        rc = seterr(err, TG_ENOMEM, "out of memory reading %s", path);
        goto fail;
    }
    if (strstr(file, "-----BEGIN") != NULL) {
        der_len = wc_KeyPemToDer((const byte *)file, (int)file_len, der, (int)file_len, NULL);
        if (der_len <= 0) {
            seterr(err, rc, "%s: no PEM private key: %s", path, wc_GetErrorString(der_len));
            goto fail;
        }
    } else {
        memcpy(der, file, file_len);
        der_len = (int)file_len;
    }
    ret = wc_EccPrivateKeyDecode(der, &idx, key, (word32)der_len);
    if (ret != 0) {
        /* PKCS#8 wraps the SEC1 key; step over the wrapper and try again. */
        idx = 0;
        if (wc_GetPkcs8TraditionalOffset(der, &idx, (word32)der_len) >= 0)
            ret = wc_EccPrivateKeyDecode(der, &idx, key, (word32)der_len);
    }
    if (ret != 0) {
        seterr(err, rc, "%s: not an EC private key: %s", path, wc_GetErrorString(ret));
        goto fail;
    }
    if (key->dp == NULL || key->dp->id != ECC_SECP256R1) {
        seterr(err, rc, "%s: not a P-256 key", path);
        goto fail;
    }
    if (key->type == ECC_PRIVATEKEY_ONLY && (ret = wc_ecc_make_pub(key, NULL)) != 0) {
        seterr(err, rc, "%s: cannot derive the public key: %s", path, wc_GetErrorString(ret));
        goto fail;
    }
    rc = 0;
fail:
    wipe_free(file, file_len);
    wipe_free(der, file_len + 1);
    return rc;
}

/* PEM "EC PRIVATE KEY" (SEC1) of key into a heap string. */
static int key_to_pem(ecc_key *key, char **pem, int *pem_len, char *err)
{
    byte der[256];
    char *out = NULL;
    int der_len, len;
    int rc = TG_ETLS;

    der_len = wc_EccKeyToDer(key, der, sizeof(der));
    if (der_len <= 0)
        return seterr(err, rc, "encoding the key: %s", wc_GetErrorString(der_len));
    out = malloc(KEY_PEM_CAP);
    if (out == NULL) {
        rc = seterr(err, TG_ENOMEM, "out of memory");
        goto fail;
    }
    len = wc_DerToPem(der, (word32)der_len, (byte *)out, KEY_PEM_CAP, ECC_PRIVATEKEY_TYPE);
    if (len <= 0) {
        seterr(err, rc, "PEM-encoding the key: %s", wc_GetErrorString(len));
        goto fail;
    }
    explicit_bzero(der, sizeof(der));
    *pem = out;
    *pem_len = len;
    return 0;
fail:
    explicit_bzero(der, sizeof(der));
    wipe_free(out, KEY_PEM_CAP);
    return rc;
}

static int write_key(const char *path, ecc_key *key, char *err)
{
    char *pem = NULL;
    int pem_len = 0;
    int rc;

    if ((rc = key_to_pem(key, &pem, &pem_len, err)) < 0)
        return rc;
    rc = write_file(path, pem, (size_t)pem_len, 0600, err);
    wipe_free(pem, KEY_PEM_CAP);
    return rc;
}

/* ---- DER helpers ---- */

/* Writes a DER tag and definite length to out (if not NULL); returns the header size. */
static size_t der_hdr(byte *out, byte tag, size_t len)
{
    byte h[6];
    size_t n = 0;

    h[n++] = tag;
    if (len < 0x80) {
        h[n++] = (byte)len;
    } else if (len <= 0xff) {
        h[n++] = 0x81;
        h[n++] = (byte)len;
    } else if (len <= 0xffff) {
        h[n++] = 0x82;
        h[n++] = (byte)(len >> 8);
        h[n++] = (byte)len;
    } else {
        h[n++] = 0x83;
        h[n++] = (byte)(len >> 16);
        h[n++] = (byte)(len >> 8);
        h[n++] = (byte)len;
    }
    if (out != NULL)
        memcpy(out, h, n);
    return n;
}

struct dbuf {
    byte *p;
    size_t n, cap;
    bool overflow;
};

static void put(struct dbuf *b, const void *src, size_t len)
{
    if (b->overflow || len > b->cap - b->n) {
        b->overflow = true;
        return;
    }
    memcpy(b->p + b->n, src, len);
    b->n += len;
}

static void put_hdr(struct dbuf *b, byte tag, size_t len)
{
    byte h[6];

    put(b, h, der_hdr(h, tag, len));
}

/* ---- certificate contents ---- */

static int encode_time(time_t t, byte *out, int *out_len)
{
    struct tm tm;
    char s[64];
    int n, year;

    if (gmtime_r(&t, &tm) == NULL)
        return TG_EINVAL;
    year = tm.tm_year + 1900;
    /* RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. */
    if (year >= 1950 && year < 2050) {
        n = snprintf(s, sizeof(s), "%02d%02d%02d%02d%02d%02dZ", year % 100, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        out[0] = ASN_UTC_TIME;
    } else {
        n = snprintf(s, sizeof(s), "%04d%02d%02d%02d%02d%02dZ", year, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec);
        out[0] = ASN_GENERALIZED_TIME;
    }
    if (n <= 0 || n + 2 > CTC_DATE_SIZE)
        return TG_EINVAL;
    out[1] = (byte)n;
    memcpy(out + 2, s, (size_t)n);
    *out_len = n + 2;
    return 0;
}

static long long default_lifetime(enum cmd cmd)
{
    switch (cmd) {
    case CMD_CA:
        return 3650 * (long long)DAY_SECS;
    case CMD_INTERMEDIATE:
        return 365 * (long long)DAY_SECS;
    default:
        return DAY_SECS;
    }
}

/* notBefore/notAfter as described in the usage text and README. */
static int set_validity(const struct opts *o, Cert *cert, char *err)
{
    long long life = default_lifetime(o->cmd);
    time_t now = time(NULL), nb, na;

    if (o->has_lifetime)
        life = o->days * (long long)DAY_SECS + o->hours * 3600LL + o->seconds;
    if (life <= 0)
        return seterr(err, TG_EINVAL, "--days/--hours/--seconds: lifetime must be positive");
    if (o->expired) {
        na = now - DAY_SECS;
        nb = na - (time_t)life;
    } else if (o->not_yet_valid) {
        nb = now + DAY_SECS;
        na = nb + (time_t)life;
    } else if (o->seen & C(O_NOT_BEFORE_DAYS - O_BASE)) {
        nb = now - (time_t)o->not_before_days * DAY_SECS;
        na = now + (time_t)life;
        if (na <= nb)
            return seterr(err, TG_EINVAL, "--not-before-days: starts after it ends");
    } else {
        nb = now - SKEW_SECS;
        na = now + (time_t)life;
    }
    if (encode_time(nb, cert->beforeDate, &cert->beforeDateSz) < 0 ||
        encode_time(na, cert->afterDate, &cert->afterDateSz) < 0)
        return seterr(err, TG_EINVAL, "validity dates out of range");
    return 0;
}

static int set_serial(const struct opts *o, WC_RNG *rng, Cert *cert, char *err)
{
    int ret;

    if (o->serial_len > 0) {
        memcpy(cert->serial, o->serial, (size_t)o->serial_len);
        cert->serialSz = o->serial_len;
        return 0;
    }
    ret = wc_RNG_GenerateBlock(rng, cert->serial, SERIAL_LEN);
    if (ret != 0)
        return seterr(err, TG_ETLS, "random serial: %s", wc_GetErrorString(ret));
    /* Positive (RFC 5280 4.1.2.2), and a non-zero first byte so the serial is always
     * exactly 16 bytes and prints the same everywhere. */
    cert->serial[0] &= 0x7f;
    if (cert->serial[0] == 0)
        cert->serial[0] = 0x01;
    cert->serialSz = SERIAL_LEN;
    return 0;
}

static int set_cn(Cert *cert, const char *cn, char *err)
{
    if (strlen(cn) >= CTC_NAME_SIZE)
        return seterr(err, TG_EINVAL, "common name longer than %d bytes: %s", CTC_NAME_SIZE - 1,
                      cn);
    strcpy(cert->subject.commonName, cn);
    cert->subject.commonNameEnc = CTC_UTF8;
    return 0;
}

/* Leaf CN: the service account of a spiffe://td/ns/N/sa/SA ID when it fits, else "tollgate". */
static void leaf_cn(const char *spiffe, char *cn)
{
    const char *sa = spiffe ? strstr(spiffe, "/sa/") : NULL;
    size_t len;

    strcpy(cn, "tollgate");
    if (sa == NULL)
        return;
    sa += 4;
    len = strcspn(sa, "/");
    if (len > 0 && len < CTC_NAME_SIZE && sa[len] == '\0') {
        memcpy(cn, sa, len);
        cn[len] = '\0';
    }
}

/* SubjectAltName GeneralNames: the SPIFFE ID, then each --uri, then each --dns. */
static int set_alt_names(const struct opts *o, Cert *cert, char *err)
{
    struct dbuf b = {.p = cert->altNames, .cap = sizeof(cert->altNames)};
    size_t total = 0, i;

    if (o->no_san)
        return 0;
    if (o->spiffe != NULL)
        total += der_hdr(NULL, ASN_CONTEXT_SPECIFIC | ASN_URI_TYPE, strlen(o->spiffe)) +
                 strlen(o->spiffe);
    for (i = 0; i < o->n_uris; i++)
        total += der_hdr(NULL, 0, strlen(o->uris[i])) + strlen(o->uris[i]);
    for (i = 0; i < o->n_dns; i++)
        total += der_hdr(NULL, 0, strlen(o->dns[i])) + strlen(o->dns[i]);
    if (total == 0)
        return 0;
    put_hdr(&b, 0x30, total);
    if (o->spiffe != NULL) {
        put_hdr(&b, ASN_CONTEXT_SPECIFIC | ASN_URI_TYPE, strlen(o->spiffe));
        put(&b, o->spiffe, strlen(o->spiffe));
    }
    for (i = 0; i < o->n_uris; i++) {
        put_hdr(&b, ASN_CONTEXT_SPECIFIC | ASN_URI_TYPE, strlen(o->uris[i]));
        put(&b, o->uris[i], strlen(o->uris[i]));
    }
    for (i = 0; i < o->n_dns; i++) {
        put_hdr(&b, ASN_CONTEXT_SPECIFIC | ASN_DNS_TYPE, strlen(o->dns[i]));
        put(&b, o->dns[i], strlen(o->dns[i]));
    }
    if (b.overflow)
        return seterr(err, TG_ETOOBIG, "subject alt names longer than %d bytes", CTC_MAX_ALT_SIZE);
    cert->altNamesSz = (int)b.n;
    return 0;
}

static int set_usage(const struct opts *o, Cert *cert, char *err)
{
    const char *ku = "digitalSignature";
    const char *eku = "serverAuth,clientAuth";
    int ret;

    if (o->cmd != CMD_ISSUE)
        ku = "keyCertSign,cRLSign";
    else if (o->ca_flag)
        ku = "digitalSignature,keyCertSign";
    if ((ret = wc_SetKeyUsage(cert, ku)) != 0)
        return seterr(err, TG_ETLS, "key usage %s: %s", ku, wc_GetErrorString(ret));
    if (o->cmd != CMD_ISSUE)
        return 0; /* CAs: no EKU, so they may sign leaves of any purpose */
    if (o->eku == NULL || strcmp(o->eku, "both") == 0)
        eku = "serverAuth,clientAuth";
    else if (strcmp(o->eku, "server") == 0)
        eku = "serverAuth";
    else if (strcmp(o->eku, "client") == 0)
        eku = "clientAuth";
    else if (strcmp(o->eku, "codesign") == 0)
        eku = "codeSigning";
    else
        return 0; /* none: checked when parsing */
    if ((ret = wc_SetExtKeyUsage(cert, eku)) != 0)
        return seterr(err, TG_ETLS, "extended key usage %s: %s", eku, wc_GetErrorString(ret));
    return 0;
}

/* ---- the signing CA ---- */

static void signer_cleanup(struct signer *s)
{
    if (s->key_ok)
        wc_ecc_free(&s->key);
    s->key_ok = false;
    free(s->der);
    s->der = NULL;
    free(s->chain);
    s->chain = NULL;
}

/* Public key of a certificate, as DER SubjectPublicKeyInfo, compared with key's. */
static int check_key_matches(const byte *cert_der, int cert_len, ecc_key *key, const char *what,
                             char *err)
{
    DecodedCert dc;
    byte cert_pub[256], key_pub[256];
    word32 cert_pub_len = sizeof(cert_pub);
    int key_pub_len, ret, rc = TG_EINVAL;

    wc_InitDecodedCert(&dc, cert_der, (word32)cert_len, NULL);
    ret = wc_ParseCert(&dc, CERT_TYPE, NO_VERIFY, NULL);
    if (ret != 0) {
        seterr(err, rc, "%s: cannot parse the certificate: %s", what, wc_GetErrorString(ret));
        goto fail;
    }
    ret = wc_GetPubKeyDerFromCert(&dc, cert_pub, &cert_pub_len);
    key_pub_len = wc_EccPublicKeyToDer(key, key_pub, sizeof(key_pub), 1);
    if (ret != 0 || key_pub_len <= 0) {
        seterr(err, rc, "%s: cannot read the public keys", what);
        goto fail;
    }
    if ((word32)key_pub_len != cert_pub_len || memcmp(cert_pub, key_pub, cert_pub_len) != 0) {
        seterr(err, rc, "%s: the key does not belong to the certificate", what);
        goto fail;
    }
    rc = 0;
fail:
    wc_FreeDecodedCert(&dc);
    return rc;
}

/* Loads PREFIX.pem (its first certificate), PREFIX.key and PREFIX.chain.pem if present. */
static int signer_load(const char *prefix, struct signer *s, char *err)
{
    char path[PATH_MAX];
    char *pem = NULL;
    size_t pem_len = 0;
    int ret, rc;

    memset(s, 0, sizeof(*s));
    if ((rc = path_join(path, prefix, ".pem", err)) < 0)
        return rc;
    if ((rc = read_file(path, &pem, &pem_len, err)) < 0)
        return rc;
    rc = TG_EINVAL;
    s->der = malloc(pem_len + 1);
    if (s->der == NULL) {
        rc = seterr(err, TG_ENOMEM, "out of memory");
        goto fail;
    }
    ret = wc_CertPemToDer((const byte *)pem, (int)pem_len, s->der, (int)pem_len, CERT_TYPE);
    if (ret <= 0) {
        seterr(err, rc, "%s: no PEM certificate: %s", path, wc_GetErrorString(ret));
        goto fail;
    }
    s->der_len = ret;
    if ((rc = path_join(path, prefix, ".key", err)) < 0)
        goto fail;
    if ((ret = wc_ecc_init(&s->key)) != 0) {
        rc = seterr(err, TG_ETLS, "ecc init: %s", wc_GetErrorString(ret));
        goto fail;
    }
    s->key_ok = true;
    if ((rc = load_key(path, &s->key, err)) < 0)
        goto fail;
    if ((rc = check_key_matches(s->der, s->der_len, &s->key, path, err)) < 0)
        goto fail;
    if ((rc = path_join(path, prefix, ".chain.pem", err)) < 0)
        goto fail;
    rc = read_file(path, &s->chain, &s->chain_len, err);
    if (rc < 0 && errno != ENOENT)
        goto fail;
    rc = 0;
fail:
    free(pem);
    if (rc < 0)
        signer_cleanup(s);
    return rc;
}

/* ---- commands ---- */

static int load_or_make_key(const struct opts *o, WC_RNG *rng, ecc_key *key, char *err)
{
    if (o->key != NULL)
        return load_key(o->key, key, err);
    return make_key(rng, key, err);
}

/* Fills cert for the ca, intermediate and issue commands. */
static int fill_cert(const struct opts *o, WC_RNG *rng, ecc_key *key, struct signer *s, Cert *cert,
                     char *err)
{
    char cn[CTC_NAME_SIZE];
    int ret, rc;

    cert->sigType = CTC_SHA256wECDSA;
    if (o->cmd == CMD_CA)
        rc = set_cn(cert, o->cn ? o->cn : "tollgate dev root CA", err);
    else if (o->cmd == CMD_INTERMEDIATE)
        rc = set_cn(cert, o->cn ? o->cn : "tollgate dev intermediate CA", err);
    else if (o->cn != NULL)
        rc = set_cn(cert, o->cn, err);
    else if (o->no_san)
        rc = set_cn(cert, o->spiffe, err);
    else {
        leaf_cn(o->spiffe, cn);
        rc = set_cn(cert, cn, err);
    }
    if (rc < 0)
        return rc;
    if ((rc = set_serial(o, rng, cert, err)) < 0 || (rc = set_validity(o, cert, err)) < 0)
        return rc;
    if (o->cmd != CMD_ISSUE || o->ca_flag) {
        cert->isCA = 1;
        if (o->seen & C(O_PATH_LEN - O_BASE)) {
            cert->pathLen = (byte)o->path_len;
            cert->pathLenSet = 1;
        }
    } else {
        cert->basicConstSet = 1; /* CA:FALSE, written out explicitly */
    }
    if ((rc = set_usage(o, cert, err)) < 0 || (rc = set_alt_names(o, cert, err)) < 0)
        return rc;
    if ((ret = wc_SetSubjectKeyIdFromPublicKey_ex(cert, ECC_TYPE, key)) != 0)
        return seterr(err, TG_ETLS, "subject key id: %s", wc_GetErrorString(ret));
    if (s == NULL) {
        cert->selfSigned = 1;
        if ((ret = wc_SetAuthKeyIdFromPublicKey_ex(cert, ECC_TYPE, key)) != 0)
            return seterr(err, TG_ETLS, "authority key id: %s", wc_GetErrorString(ret));
        return 0;
    }
    if ((ret = wc_SetIssuerBuffer(cert, s->der, s->der_len)) != 0)
        return seterr(err, TG_ETLS, "--ca: issuer name: %s", wc_GetErrorString(ret));
    ret = wc_SetAuthKeyIdFromCert(cert, s->der, s->der_len);
    if (ret == ASN_NO_SKID) /* a CA made elsewhere without a SKID: use its key */
        ret = wc_SetAuthKeyIdFromPublicKey_ex(cert, ECC_TYPE, &s->key);
    if (ret != 0)
        return seterr(err, TG_ETLS, "authority key id: %s", wc_GetErrorString(ret));
    return 0;
}

static void hex(const byte *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 0xf];
    }
    out[2 * n] = '\0';
}

static int cmd_sign(const struct opts *o, char *err)
{
    char key_path[PATH_MAX], pem_path[PATH_MAX], chain_path[PATH_MAX],
        serial[2 * CTC_SERIAL_SIZE + 1];
    struct signer s = {0};
    bool have_signer = false, key_ok = false, rng_ok = false;
    WC_RNG rng;
    ecc_key key;
    Cert *cert = NULL;
    byte *der = NULL;
    char *pem = NULL, *out = NULL;
    int tbs_len, der_len, pem_len, ret, rc;
    size_t out_len;
    struct tm nb_tm, na_tm;
    char not_after[32];

    if ((rc = path_join(key_path, o->out, ".key", err)) < 0 ||
        (rc = path_join(pem_path, o->out, ".pem", err)) < 0 ||
        (rc = path_join(chain_path, o->out, ".chain.pem", err)) < 0)
        return rc;
    rc = TG_ETLS;
    if ((ret = wc_InitRng(&rng)) != 0) {
        seterr(err, rc, "random generator: %s", wc_GetErrorString(ret));
        goto fail;
    }
    rng_ok = true;
    if ((ret = wc_ecc_init(&key)) != 0) {
        seterr(err, rc, "ecc init: %s", wc_GetErrorString(ret));
        goto fail;
    }
    key_ok = true;
    if ((rc = load_or_make_key(o, &rng, &key, err)) < 0)
        goto fail;
    if (o->ca != NULL) {
        if ((rc = signer_load(o->ca, &s, err)) < 0)
            goto fail;
        have_signer = true;
    }
    cert = calloc(1, sizeof(*cert));
    der = malloc(DER_CAP);
    pem = malloc(2 * DER_CAP);
    if (cert == NULL || der == NULL || pem == NULL) {
        rc = seterr(err, TG_ENOMEM, "out of memory");
        goto fail;
    }
    rc = TG_ETLS;
    if ((ret = wc_InitCert(cert)) != 0) {
        seterr(err, rc, "init cert: %s", wc_GetErrorString(ret));
        goto fail;
    }
    if ((rc = fill_cert(o, &rng, &key, have_signer ? &s : NULL, cert, err)) < 0)
        goto fail;
    rc = TG_ETLS;
    tbs_len = wc_MakeCert(cert, der, DER_CAP, NULL, &key, &rng);
    if (tbs_len <= 0) {
        seterr(err, rc, "making the certificate: %s", wc_GetErrorString(tbs_len));
        goto fail;
    }
    if ((rc = tg_der_mark_bc_critical(der, &tbs_len, DER_CAP)) < 0) {
        seterr(err, rc, "marking basicConstraints critical failed");
        goto fail;
    }
    rc = TG_ETLS;
    der_len = wc_SignCert(tbs_len, CTC_SHA256wECDSA, der, DER_CAP, NULL,
                          have_signer ? &s.key : &key, &rng);
    if (der_len <= 0) {
        seterr(err, rc, "signing the certificate: %s", wc_GetErrorString(der_len));
        goto fail;
    }
    pem_len = wc_DerToPem(der, (word32)der_len, (byte *)pem, 2 * DER_CAP, CERT_TYPE);
    if (pem_len <= 0) {
        seterr(err, rc, "PEM-encoding the certificate: %s", wc_GetErrorString(pem_len));
        goto fail;
    }

    /* The key first: a watcher that reloads on the certificate then finds its key. */
    if ((rc = write_key(key_path, &key, err)) < 0)
        goto fail;
    out_len = (size_t)pem_len + s.chain_len + 1;
    out = malloc(out_len);
    if (out == NULL) {
        rc = seterr(err, TG_ENOMEM, "out of memory");
        goto fail;
    }
    memcpy(out, pem, (size_t)pem_len);
    out_len = (size_t)pem_len;
    if (s.chain != NULL) {
        memcpy(out + out_len, s.chain, s.chain_len);
        out_len += s.chain_len;
        if (s.chain_len > 0 && s.chain[s.chain_len - 1] != '\n')
            out[out_len++] = '\n';
    }
    if (o->cmd == CMD_ISSUE) {
        rc = write_file(pem_path, out, out_len, 0644, err); /* leaf + intermediates */
    } else if (o->cmd == CMD_INTERMEDIATE) {
        if ((rc = write_file(pem_path, pem, (size_t)pem_len, 0644, err)) == 0)
            rc = write_file(chain_path, out, out_len, 0644, err);
    } else {
        rc = write_file(pem_path, pem, (size_t)pem_len, 0644, err);
        if (rc == 0 && unlink(chain_path) < 0 && errno != ENOENT)
            rc = seterr(err, TG_EIO, "%s: stale chain: %s", chain_path, strerror(errno));
    }
    if (rc < 0)
        goto fail;

    hex(cert->serial, (size_t)cert->serialSz, serial);
    nb_tm = (struct tm){0};
    na_tm = (struct tm){0};
    not_after[0] = '\0';
    if (wc_GetCertDates(cert, &nb_tm, &na_tm) == 0)
        snprintf(not_after, sizeof(not_after), "%lld", (long long)timegm(&na_tm));
    printf("%s: wrote %s%s %s serial=%s not_after=%s\n", cmd_names[o->cmd], pem_path,
           o->cmd == CMD_INTERMEDIATE ? " (+ .chain.pem)" : "", key_path, serial, not_after);
    rc = 0;
fail:
    free(out);
    free(pem);
    free(der);
    free(cert);
    if (have_signer)
        signer_cleanup(&s);
    if (key_ok)
        wc_ecc_free(&key);
    if (rng_ok)
        wc_FreeRng(&rng);
    return rc;
}

static int cmd_keygen(const struct opts *o, char *err)
{
    WC_RNG rng;
    ecc_key key;
    bool key_ok = false;
    int ret, rc = TG_ETLS;

    if ((ret = wc_InitRng(&rng)) != 0)
        return seterr(err, rc, "random generator: %s", wc_GetErrorString(ret));
    if ((ret = wc_ecc_init(&key)) != 0) {
        seterr(err, rc, "ecc init: %s", wc_GetErrorString(ret));
        goto fail;
    }
    key_ok = true;
    if ((rc = make_key(&rng, &key, err)) < 0 || (rc = write_key(o->out, &key, err)) < 0)
        goto fail;
    printf("keygen: wrote %s (P-256)\n", o->out);
    rc = 0;
fail:
    if (key_ok)
        wc_ecc_free(&key);
    wc_FreeRng(&rng);
    return rc;
}

static int cmd_csr(const struct opts *o, char *err)
{
    WC_RNG rng;
    ecc_key key;
    bool key_ok = false;
    Cert *cert = NULL;
    byte *der = NULL;
    char *pem = NULL;
    char cn[CTC_NAME_SIZE];
    int len, ret, rc = TG_ETLS;

    if ((ret = wc_InitRng(&rng)) != 0)
        return seterr(err, rc, "random generator: %s", wc_GetErrorString(ret));
    if ((ret = wc_ecc_init(&key)) != 0) {
        seterr(err, rc, "ecc init: %s", wc_GetErrorString(ret));
        goto fail;
    }
    key_ok = true;
    if ((rc = load_key(o->key, &key, err)) < 0)
        goto fail;
    cert = calloc(1, sizeof(*cert));
    der = malloc(DER_CAP);
    pem = malloc(2 * DER_CAP);
    if (cert == NULL || der == NULL || pem == NULL) {
        rc = seterr(err, TG_ENOMEM, "out of memory");
        goto fail;
    }
    rc = TG_ETLS;
    if ((ret = wc_InitCert(cert)) != 0) {
        seterr(err, rc, "init cert: %s", wc_GetErrorString(ret));
        goto fail;
    }
    cert->version = 0; /* PKCS#10 v1 */
    cert->sigType = CTC_SHA256wECDSA;
    leaf_cn(o->spiffe, cn);
    if ((rc = set_cn(cert, o->cn ? o->cn : cn, err)) < 0 || (rc = set_alt_names(o, cert, err)) < 0)
        goto fail;
    rc = TG_ETLS;
    len = wc_MakeCertReq_ex(cert, der, DER_CAP, ECC_TYPE, &key);
    if (len <= 0) {
        seterr(err, rc, "making the CSR: %s", wc_GetErrorString(len));
        goto fail;
    }
    len = wc_SignCert_ex(cert->bodySz, cert->sigType, der, DER_CAP, ECC_TYPE, &key, &rng);
    if (len <= 0) {
        seterr(err, rc, "signing the CSR: %s", wc_GetErrorString(len));
        goto fail;
    }
    len = wc_DerToPem(der, (word32)len, (byte *)pem, 2 * DER_CAP, CERTREQ_TYPE);
    if (len <= 0) {
        seterr(err, rc, "PEM-encoding the CSR: %s", wc_GetErrorString(len));
        goto fail;
    }
    if ((rc = write_file(o->out, pem, (size_t)len, 0644, err)) < 0)
        goto fail;
    printf("csr: wrote %s\n", o->out);
    rc = 0;
fail:
    free(pem);
    free(der);
    free(cert);
    if (key_ok)
        wc_ecc_free(&key);
    wc_FreeRng(&rng);
    return rc;
}

static int print_date(const char *name, const byte *date, int date_len)
{
    const byte *p;
    byte format;
    int len;
    struct tm tm = {0};

    if (wc_GetDateInfo(date, date_len, &p, &format, &len) != 0 ||
        wc_GetDateAsCalendarTime(p, len, format, &tm) != 0)
        return TG_EINVAL;
    printf("%s=%lld\n", name, (long long)timegm(&tm));
    return 0;
}

static int cmd_show(const struct opts *o, char *err)
{
    DecodedCert dc;
    bool dc_ok = false;
    char *file = NULL;
    size_t file_len = 0;
    byte *der = NULL;
    int der_len, ret, rc;
    byte hash[WC_SHA256_DIGEST_SIZE];
    char text[2 * (EXTERNAL_SERIAL_SIZE + WC_SHA256_DIGEST_SIZE) + 1];
    DNS_entry *e;

    if ((rc = read_file(o->file, &file, &file_len, err)) < 0)
        return rc;
    rc = TG_EINVAL;
    der = malloc(file_len + 1);
    if (der == NULL) {
        rc = seterr(err, TG_ENOMEM, "out of memory");
        goto fail;
    }
    if (strstr(file, "-----BEGIN") != NULL) {
        der_len = wc_CertPemToDer((const byte *)file, (int)file_len, der, (int)file_len, CERT_TYPE);
        if (der_len <= 0) {
            seterr(err, rc, "%s: no PEM certificate: %s", o->file, wc_GetErrorString(der_len));
            goto fail;
        }
    } else {
        memcpy(der, file, file_len);
        der_len = (int)file_len;
    }
    wc_InitDecodedCert(&dc, der, (word32)der_len, NULL);
    dc_ok = true;
    if ((ret = wc_ParseCert(&dc, CERT_TYPE, NO_VERIFY, NULL)) != 0) {
        seterr(err, rc, "%s: not a certificate: %s", o->file, wc_GetErrorString(ret));
        goto fail;
    }
    if (wc_Sha256Hash(der, (word32)der_len, hash) != 0) {
        rc = seterr(err, TG_ETLS, "sha256 failed");
        goto fail;
    }
    hex(dc.serial, (size_t)dc.serialSz, text);
    printf("serial=%s\n", text);
    hex(hash, sizeof(hash), text);
    printf("sha256=%s\n", text);
    if (print_date("not_before", dc.beforeDate, dc.beforeDateLen) < 0 ||
        print_date("not_after", dc.afterDate, dc.afterDateLen) < 0) {
        seterr(err, rc, "%s: cannot read the validity dates", o->file);
        goto fail;
    }
    for (e = dc.altNames; e != NULL; e = e->next) { /* in certificate order */
        if (e->type == ASN_URI_TYPE)
            printf("uri=%.*s\n", e->len, e->name);
    }
    for (e = dc.altNames; e != NULL; e = e->next) {
        if (e->type == ASN_DNS_TYPE)
            printf("dns=%.*s\n", e->len, e->name);
    }
    rc = 0;
fail:
    if (dc_ok)
        wc_FreeDecodedCert(&dc);
    free(der);
    free(file);
    return rc;
}

/* ---- arguments ---- */

static int parse_long(const char *cmd, const char *name, const char *s, long min, long max,
                      long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return usage_error(cmd, "--%s: expected a whole number from %ld to %ld, got '%s'", name,
                           min, max, s);
    *out = v;
    return 0;
}

static int parse_serial(const char *cmd, const char *s, struct opts *o)
{
    byte b[CTC_SERIAL_SIZE + 1];
    size_t len, i, n = 0, skip = 0;

    if (strncmp(s, "0x", 2) == 0 || strncmp(s, "0X", 2) == 0)
        s += 2;
    len = strlen(s);
    if (len == 0 || strspn(s, "0123456789abcdefABCDEF") != len)
        return usage_error(cmd, "--serial: expected hexadecimal digits, got '%s'", s);
    while (len - skip > 1 && s[skip] == '0')
        skip++;
    s += skip;
    len -= skip;
    if ((len + 1) / 2 > CTC_SERIAL_SIZE)
        return usage_error(cmd, "--serial: longer than %d bytes", CTC_SERIAL_SIZE);
    for (i = 0; i < len;) { /* odd length: the first digit stands alone */
        char pair[3] = {s[i], '\0', '\0'};

        if (i > 0 || len % 2 == 0)
            pair[1] = s[++i];
        i++;
        b[n++] = (byte)strtoul(pair, NULL, 16);
    }
    if (n == 1 && b[0] == 0)
        return usage_error(cmd, "--serial: must not be zero (RFC 5280 4.1.2.2)");
    if ((b[0] & 0x80) && n >= CTC_SERIAL_SIZE)
        return usage_error(cmd, "--serial: at most %d bytes when the top bit is set",
                           CTC_SERIAL_SIZE - 1);
    memcpy(o->serial, b, n);
    o->serial_len = (int)n;
    return 0;
}

/* Returns 0, or an exit status (EXIT_USAGE, or 0 with *done for --help). */
static int parse_args(int argc, char **argv, struct opts *o, bool *done)
{
    const char *cmd = argv[0];
    char prog[64];
    int c, i, rc;

    *done = false;
    for (i = 0; i < CMD_COUNT; i++) {
        if (strcmp(cmd, cmd_names[i]) == 0)
            break;
    }
    if (i == CMD_COUNT)
        return usage_error(NULL, "unknown command '%s'", cmd);
    o->cmd = (enum cmd)i;
    snprintf(prog, sizeof(prog), PROG " %s", cmd);
    argv[0] = prog; /* getopt names the command in its messages */
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage_text, stdout);
            *done = true;
            return 0;
        }
        if (c < O_BASE || c >= O_END) { /* getopt has named the bad option */
            fprintf(stderr, "(run '" PROG " --help' for usage)\n");
            return EXIT_USAGE;
        }
        if (!(opt_cmds[c - O_BASE] & C(o->cmd)))
            return usage_error(cmd, "--%s does not apply to this command",
                               long_opts[c - O_BASE].name);
        if ((o->seen & C(c - O_BASE)) && c != O_URI && c != O_DNS)
            return usage_error(cmd, "--%s given twice", long_opts[c - O_BASE].name);
        o->seen |= C(c - O_BASE);
        rc = 0;
        switch (c) {
        case O_OUT:
            o->out = optarg;
            break;
        case O_CA:
            o->ca = optarg;
            break;
        case O_CN:
            o->cn = optarg;
            break;
        case O_SPIFFE:
            o->spiffe = optarg;
            break;
        case O_KEY:
            o->key = optarg;
            break;
        case O_DAYS:
            rc = parse_long(cmd, "days", optarg, 0, 36500, &o->days);
            o->has_lifetime = true;
            break;
        case O_HOURS:
            rc = parse_long(cmd, "hours", optarg, 0, 876000, &o->hours);
            o->has_lifetime = true;
            break;
        case O_SECONDS:
            rc = parse_long(cmd, "seconds", optarg, 0, 3153600000L, &o->seconds);
            o->has_lifetime = true;
            break;
        case O_NOT_BEFORE_DAYS:
            rc = parse_long(cmd, "not-before-days", optarg, -36500, 36500, &o->not_before_days);
            break;
        case O_PATH_LEN:
            rc = parse_long(cmd, "path-len", optarg, 0, 127, &o->path_len);
            break;
        case O_EXPIRED:
            o->expired = true;
            break;
        case O_NOT_YET_VALID:
            o->not_yet_valid = true;
            break;
        case O_NO_SAN:
            o->no_san = true;
            break;
        case O_CA_FLAG:
            o->ca_flag = true;
            break;
        case O_SELF_SIGNED:
            o->self_signed = true;
            break;
        case O_EKU:
            o->eku = optarg;
            if (strcmp(optarg, "server") != 0 && strcmp(optarg, "client") != 0 &&
                strcmp(optarg, "both") != 0 && strcmp(optarg, "none") != 0 &&
                strcmp(optarg, "codesign") != 0)
                rc = usage_error(cmd,
                                 "--eku: expected server, client, both, none or codesign, "
                                 "got '%s'",
                                 optarg);
            break;
        case O_URI:
        case O_DNS: {
            const char **list = c == O_URI ? o->uris : o->dns;
            size_t *n = c == O_URI ? &o->n_uris : &o->n_dns;

            if (*n == MAX_NAMES)
                rc = usage_error(cmd, "--%s: at most %d", c == O_URI ? "uri" : "dns", MAX_NAMES);
            else if (optarg[0] == '\0')
                rc = usage_error(cmd, "--%s: empty name", c == O_URI ? "uri" : "dns");
            else
                list[(*n)++] = optarg;
            break;
        }
        case O_SERIAL:
            rc = parse_serial(cmd, optarg, o);
            break;
        }
        if (rc != 0)
            return rc;
    }

    if (o->cmd == CMD_SHOW) {
        if (argc - optind != 1)
            return usage_error(cmd, "expected exactly one FILE");
        o->file = argv[optind];
        return 0;
    }
    if (optind < argc)
        return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (o->out == NULL || o->out[0] == '\0')
        return usage_error(cmd, "--out is required");
    if ((o->cmd == CMD_INTERMEDIATE || (o->cmd == CMD_ISSUE && !o->self_signed)) && o->ca == NULL)
        return usage_error(cmd, "--ca PREFIX is required%s",
                           o->cmd == CMD_ISSUE ? " (or --self-signed)" : "");
    if (o->self_signed && o->ca != NULL)
        return usage_error(cmd, "--self-signed and --ca exclude each other");
    if (o->expired + o->not_yet_valid + !!(o->seen & C(O_NOT_BEFORE_DAYS - O_BASE)) > 1)
        return usage_error(cmd, "--expired, --not-yet-valid and --not-before-days exclude each "
                                "other");
    if (o->cmd == CMD_CSR && o->key == NULL)
        return usage_error(cmd, "--key FILE is required");
    if (o->cmd == CMD_ISSUE || o->cmd == CMD_CSR) {
        if (o->spiffe != NULL && o->spiffe[0] == '\0')
            return usage_error(cmd, "--spiffe: empty ID");
        if (o->spiffe == NULL && o->n_uris == 0 && o->n_dns == 0)
            return usage_error(cmd, "--spiffe ID is required (or --uri / --dns)");
    }
    if (o->no_san) {
        if (o->spiffe == NULL)
            return usage_error(cmd, "--no-san needs --spiffe (the ID goes into the CN)");
        if (o->n_uris > 0 || o->n_dns > 0 || o->cn != NULL)
            return usage_error(cmd, "--no-san excludes --uri, --dns and --cn");
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    char err[TG_ERRLEN] = "";
    bool done;
    int rc;

    if (argc < 2)
        return usage_error(NULL, "missing COMMAND");
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    rc = parse_args(argc - 1, argv + 1, &o, &done);
    if (rc != 0 || done)
        return rc;
    if (wolfCrypt_Init() != 0) {
        fprintf(stderr, PROG ": wolfCrypt_Init failed\n");
        return 1;
    }
    switch (o.cmd) {
    case CMD_KEYGEN:
        rc = cmd_keygen(&o, err);
        break;
    case CMD_CSR:
        rc = cmd_csr(&o, err);
        break;
    case CMD_SHOW:
        rc = cmd_show(&o, err);
        break;
    default:
        rc = cmd_sign(&o, err);
        break;
    }
    wolfCrypt_Cleanup();
    if (rc < 0) {
        fprintf(stderr, PROG " %s: %s\n", cmd_names[o.cmd], err[0] ? err : "failed");
        return 1;
    }
    return 0;
}
