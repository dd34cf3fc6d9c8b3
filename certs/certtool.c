/* tollgate-certs: development and test certificates, made with wolfSSL's certificate
 * generation (EC P-256 keys, ECDSA with SHA-256), and the reading of any PEM file the way the
 * sidecar reads it (inspect, verify: inspect.c). See certs/README.md for the commands.
 *
 * The certificate building it shares with tollgate-cp is in x509.h (keys, serials, validity,
 * names, key identifiers, the basicConstraints fix, signing, PEM). What it takes as the
 * sidecar does comes from the sidecar's own modules: durations (tg_duration_parse, the
 * config's grammar) and SPIFFE IDs (tg_spiffe_parse, the handshake's parser). Help and the
 * version go to stdout, exit 0; errors are one line on stderr naming what was wrong, exit 1;
 * usage errors exit 2. */
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

#include "certtool.h"
#include "tollgate/config.h"
#include "tollgate/err.h"
#include "tollgate/file.h"
#include "tollgate/spiffe.h"
#include "tollgate/tls.h"
#include "tollgate/x509.h"

#define PROG "tollgate-certs"
#define EXIT_USAGE 2
#define MAX_NAMES 32 /* --uri / --dns / --crl / --trust-domain given at most this often each */
#define DER_CAP TG_X509_DER_CAP
#define SKEW_SECS 300 /* default notBefore is this far in the past */
#define DAY_SECS 86400L
#define MAX_LIFETIME_S (100LL * 365 * DAY_SECS) /* --valid-for, --backdate: 100 years at most */
#define KEY_PEM_CAP 1024                        /* PEM of a P-256 SEC1 key is about 230 bytes */

enum cmd {
    CMD_CA,
    CMD_INTERMEDIATE,
    CMD_ISSUE,
    CMD_CSR,
    CMD_KEYGEN,
    CMD_SHOW,
    CMD_INSPECT,
    CMD_VERIFY,
    CMD_VERSION,
    CMD_HELP,
    CMD_COUNT
};

static const char *const cmd_names[CMD_COUNT] = {
    "ca", "intermediate", "issue", "csr", "keygen", "show", "inspect", "verify", "version", "help"};

enum opt {
    O_BASE = 256,
    O_OUT = O_BASE,
    O_CA,
    O_CN,
    O_VALID_FOR,
    O_BACKDATE,
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
    O_BUNDLE,
    O_CRL,
    O_INTERMEDIATES,
    O_PEER,
    O_TRUST_DOMAIN,
    O_MAX_CHAIN_DEPTH,
    O_GONE_DAYS, /* the lifetime options before durations: refused, naming the new one */
    O_GONE_HOURS,
    O_GONE_SECONDS,
    O_GONE_NOT_BEFORE_DAYS,
    O_END
};

static const struct option long_opts[] = {
    {"out", required_argument, NULL, O_OUT},
    {"ca", required_argument, NULL, O_CA},
    {"cn", required_argument, NULL, O_CN},
    {"valid-for", required_argument, NULL, O_VALID_FOR},
    {"backdate", required_argument, NULL, O_BACKDATE},
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
    {"bundle", required_argument, NULL, O_BUNDLE},
    {"crl", required_argument, NULL, O_CRL},
    {"intermediates", required_argument, NULL, O_INTERMEDIATES},
    {"peer", required_argument, NULL, O_PEER},
    {"trust-domain", required_argument, NULL, O_TRUST_DOMAIN},
    {"max-chain-depth", required_argument, NULL, O_MAX_CHAIN_DEPTH},
    {"days", required_argument, NULL, O_GONE_DAYS},
    {"hours", required_argument, NULL, O_GONE_HOURS},
    {"seconds", required_argument, NULL, O_GONE_SECONDS},
    {"not-before-days", required_argument, NULL, O_GONE_NOT_BEFORE_DAYS},
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
    [O_VALID_FOR - O_BASE] = SIGNING,
    [O_BACKDATE - O_BASE] = SIGNING,
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
    [O_BUNDLE - O_BASE] = C(CMD_VERIFY),
    [O_CRL - O_BASE] = C(CMD_VERIFY),
    [O_INTERMEDIATES - O_BASE] = C(CMD_VERIFY),
    [O_PEER - O_BASE] = C(CMD_VERIFY),
    [O_TRUST_DOMAIN - O_BASE] = C(CMD_VERIFY),
    [O_MAX_CHAIN_DEPTH - O_BASE] = C(CMD_VERIFY),
    [O_GONE_DAYS - O_BASE] = ~0u, /* refused everywhere, with the new spelling */
    [O_GONE_HOURS - O_BASE] = ~0u,
    [O_GONE_SECONDS - O_BASE] = ~0u,
    [O_GONE_NOT_BEFORE_DAYS - O_BASE] = ~0u,
};

struct opts {
    enum cmd cmd;
    const char *out, *ca, *cn, *spiffe, *key, *eku, *file;
    long long valid_for, backdate; /* seconds */
    long path_len;
    bool has_lifetime;
    bool expired, not_yet_valid, no_san, ca_flag, self_signed;
    byte serial[CTC_SERIAL_SIZE];
    int serial_len; /* 0: make a random one */
    const char *uris[MAX_NAMES];
    size_t n_uris;
    const char *dns[MAX_NAMES];
    size_t n_dns;
    const char *crls[MAX_NAMES];    /* verify --crl */
    const char *domains[MAX_NAMES]; /* verify --trust-domain */
    struct certs_verify verify;
    const char *help_of; /* help COMMAND */
    uint32_t seen;       /* bit (opt - O_BASE) for each option given */
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
    "usage: " PROG " COMMAND [OPTIONS]      (" PROG " COMMAND --help: one command's options)\n"
    "  ca             a self-signed root CA            -> PREFIX.pem PREFIX.key\n"
    "  intermediate   an intermediate CA under --ca    -> PREFIX.pem PREFIX.chain.pem PREFIX.key\n"
    "  issue          a SPIFFE leaf (and bad ones)     -> PREFIX.pem (leaf + chain) PREFIX.key\n"
    "  csr            a PKCS#10 request for a key\n"
    "  keygen         an EC P-256 key\n"
    "  show           the first certificate of a file as key=value lines (for scripts)\n"
    "  inspect        every PEM block of a file: certificates, CRLs, keys (type only), CSRs\n"
    "  verify         a chain against a bundle and CRLs, with the sidecar's checks\n"
    "  version        the versions of tollgate-certs and wolfSSL (also: --version)\n"
    "  help [COMMAND] this text, or one command's (also: --help, -h)\n"
    "Durations are written as in the sidecar's config: 250ms, 10s, 5m, 24h, or seconds.\n";

#define VALIDITY_HELP                                                                              \
    "  --valid-for DURATION   lifetime, as the config writes durations (24h, 90m, 30s)\n"          \
    "  --backdate DURATION    notBefore this long ago (notAfter stays now + lifetime)\n"           \
    "  --expired              validity entirely in the past: it ended a day ago\n"                 \
    "  --not-yet-valid        validity starts in a day\n"                                          \
    "  --key FILE             reuse a P-256 key (SEC1 or PKCS#8 PEM, or DER)\n"                    \
    "  --serial HEX           a fixed serial (not zero, at most 20 bytes)\n"                       \
    "  --cn NAME              subject CN\n"

static const char *const cmd_usage[CMD_COUNT] = {
    [CMD_CA] = "usage: " PROG " ca --out PREFIX [OPTIONS]           -> PREFIX.pem PREFIX.key\n"
               "A self-signed root: CA:TRUE, keyCertSign + cRLSign; 87600h (10 years) unless\n"
               "--valid-for.\n" VALIDITY_HELP "  --path-len N           pathLenConstraint\n",
    [CMD_INTERMEDIATE] =
        "usage: " PROG " intermediate --ca PREFIX --out PREFIX2 [OPTIONS]\n"
        "An intermediate CA signed by PREFIX -> PREFIX2.pem, PREFIX2.chain.pem (it and the\n"
        "intermediates above it, never the root), PREFIX2.key; 8760h (a year) unless\n"
        "--valid-for.\n" VALIDITY_HELP "  --path-len N           pathLenConstraint\n",
    [CMD_ISSUE] =
        "usage: " PROG " issue (--ca PREFIX | --self-signed) --out PREFIX3 --spiffe ID [OPTIONS]\n"
        "A leaf for the SPIFFE ID -> PREFIX3.pem (the leaf, then PREFIX.chain.pem), PREFIX3.key;\n"
        "24h unless --valid-for. The ID must be one the sidecar accepts "
        "(spiffe://DOMAIN/PATH).\n" VALIDITY_HELP "Certificates the sidecar must refuse (tests):\n"
        "  --eku server|client|both|none|codesign   extendedKeyUsage (both by default)\n"
        "  --no-san               no SAN; the ID only in the subject CN\n"
        "  --uri URI              another URI SAN, not checked (repeat; without --spiffe the only\n"
        "                         way to put a malformed ID into a certificate)\n"
        "  --dns NAME             a DNS SAN (repeat)\n"
        "  --ca-flag              CA:TRUE and keyCertSign on a leaf\n"
        "  --self-signed          the leaf signs itself\n",
    [CMD_CSR] =
        "usage: " PROG " csr --key FILE --spiffe ID --out FILE.csr [--cn NAME] [--uri URI]...\n"
        "          [--dns NAME]...\n"
        "A PKCS#10 request signed with the key in FILE; the ID is checked as for issue.\n",
    [CMD_KEYGEN] = "usage: " PROG " keygen --out FILE.key\n"
                   "A new EC P-256 key, PEM (SEC1), mode 0600.\n",
    [CMD_SHOW] = "usage: " PROG " show FILE\n"
                 "The first certificate of FILE (PEM or DER) as lines for scripts: serial=,\n"
                 "sha256=, not_before=, not_after= (RFC 3339, UTC), uri=, dns=.\n",
    [CMD_INSPECT] =
        "usage: " PROG " inspect FILE\n"
        "Every PEM block of FILE: each certificate of a chain (subject, issuer, serial, SHA-256\n"
        "fingerprint as the sidecar logs it, validity in RFC 3339, CA or leaf, key type,\n"
        "extendedKeyUsage, SANs, SPIFFE ID or why there is none), CRLs (issuer, updates,\n"
        "revoked serials), private keys (type only, never the key), public keys and CSRs.\n",
    [CMD_VERIFY] =
        "usage: " PROG " verify --bundle FILE [--crl FILE]... [--intermediates FILE] CHAIN\n"
        "Checks the chain in CHAIN (leaf first; --intermediates adds more) as the sidecar's\n"
        "handshake checks a peer: against the roots of --bundle and the --crl lists (each signed\n"
        "by a root, not stale), then the leaf: not a CA, its extendedKeyUsage, one valid SPIFFE\n"
        "ID. Prints 'ok: ...' and exits 0, or 'refused: REASON: why' with the sidecar's reason\n"
        "name (expired, not_yet_valid, untrusted, revoked, bad_cert, bad_spiffe_id,\n"
        "trust_domain) and exits 1.\n"
        "  --peer client|server   check it as a client's or a server's (default: both)\n"
        "  --trust-domain TD      accept IDs of TD (repeat); none given: not checked\n"
        "  --max-chain-depth N    certificates the peer may send, leaf included (4, as the\n"
        "                         config's identity.max_chain_depth)\n",
    [CMD_VERSION] = "usage: " PROG " version      (or: " PROG " --version)\n"
                    "Prints the versions of tollgate-certs and wolfSSL.\n",
    [CMD_HELP] = "usage: " PROG " help [COMMAND]      (or: " PROG " --help, COMMAND --help)\n"
                 "Prints the list of commands, or the usage of one.\n",
};

static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, PROG "%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(run '" PROG " %s%s--help' for usage)\n", cmd ? cmd : "", cmd ? " " : "");
    return EXIT_USAGE;
}

/* ---- files ---- */

/* Writes path atomically (a temporary file in the same directory, then rename), so a file
 * watcher never sees half a certificate. mode applies even when path already exists. */
static int write_file(const char *path, const void *data, size_t len, mode_t mode, char *err)
{
    char tmp[PATH_MAX];
    const char *p = data;
    int fd = -1;
    int rc = TG_EIO;

    if (snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", path) >= (int)sizeof(tmp))
        return tg_err_set(err, TG_EINVAL, "%s: path too long", path);
    fd = mkstemp(tmp);
    if (fd < 0)
        return tg_err_set(err, TG_EIO, "%s: cannot create: %s", path, strerror(errno));
    if (fchmod(fd, mode) < 0) {
        tg_err_set(err, rc, "%s: chmod: %s", tmp, strerror(errno));
        goto fail;
    }
    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            tg_err_set(err, rc, "%s: write: %s", tmp, strerror(errno));
            goto fail;
        }
        p += n;
        len -= (size_t)n;
    }
    if (close(fd) < 0) {
        fd = -1;
        tg_err_set(err, rc, "%s: close: %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        tg_err_set(err, rc, "%s: rename: %s", path, strerror(errno));
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
        return tg_err_set(err, TG_EINVAL, "%s%s: path too long", prefix, suffix);
    return 0;
}

/* ---- keys ---- */

static int make_key(WC_RNG *rng, ecc_key *key, char *err)
{
    int ret = wc_ecc_make_key_ex(rng, 32, key, ECC_SECP256R1);

    if (ret != 0)
        return tg_err_set(err, TG_ETLS, "making a P-256 key: %s", wc_GetErrorString(ret));
    return 0;
}

/* Loads a P-256 private key (PEM "EC PRIVATE KEY" or "PRIVATE KEY", or DER) into an
 * initialised key. */
static int load_key(const char *path, ecc_key *key, char *err)
{
    char *file = NULL;
    size_t file_len = 0;
    int rc;

    if ((rc = tg_file_read(NULL, path, TG_FILE_MAX, TG_FILE_SECRET, &file, &file_len, err)) < 0)
        return rc;
    rc = tg_x509_key_decode(file, file_len, true, key, path, err);
    tg_wipe_free(file, file_len);
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
        return tg_err_set(err, rc, "encoding the key: %s", wc_GetErrorString(der_len));
    out = malloc(KEY_PEM_CAP);
    if (out == NULL) {
        rc = tg_err_set(err, TG_ENOMEM, "out of memory");
        goto fail;
    }
    len = wc_DerToPem(der, (word32)der_len, (byte *)out, KEY_PEM_CAP, ECC_PRIVATEKEY_TYPE);
    if (len <= 0) {
        tg_err_set(err, rc, "PEM-encoding the key: %s", wc_GetErrorString(len));
        goto fail;
    }
    explicit_bzero(der, sizeof(der));
    *pem = out;
    *pem_len = len;
    return 0;
fail:
    explicit_bzero(der, sizeof(der));
    tg_wipe_free(out, KEY_PEM_CAP);
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
    tg_wipe_free(pem, KEY_PEM_CAP);
    return rc;
}

/* ---- certificate contents ---- */

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
        life = o->valid_for;
    if (o->expired) {
        na = now - DAY_SECS;
        nb = na - (time_t)life;
    } else if (o->not_yet_valid) {
        nb = now + DAY_SECS;
        na = nb + (time_t)life;
    } else if (o->seen & C(O_BACKDATE - O_BASE)) {
        nb = now - (time_t)o->backdate;
        na = now + (time_t)life;
    } else {
        nb = now - SKEW_SECS;
        na = now + (time_t)life;
    }
    return tg_x509_set_validity(cert, nb, na, err);
}

static int set_serial(const struct opts *o, WC_RNG *rng, Cert *cert, char *err)
{
    if (o->serial_len == 0)
        return tg_x509_set_serial(cert, rng, err);
    memcpy(cert->serial, o->serial, (size_t)o->serial_len);
    cert->serialSz = o->serial_len;
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
    const char *uris[MAX_NAMES + 1];
    size_t n = 0;

    if (o->no_san)
        return 0;
    if (o->spiffe != NULL)
        uris[n++] = o->spiffe;
    memcpy(uris + n, o->uris, o->n_uris * sizeof(*uris));
    return tg_x509_set_alt_names(cert, uris, n + o->n_uris, o->dns, o->n_dns, err);
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
        return tg_err_set(err, TG_ETLS, "key usage %s: %s", ku, wc_GetErrorString(ret));
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
        return tg_err_set(err, TG_ETLS, "extended key usage %s: %s", eku, wc_GetErrorString(ret));
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
    if ((rc = tg_file_read(NULL, path, TG_FILE_MAX, TG_FILE_SECRET, &pem, &pem_len, err)) < 0)
        return rc;
    rc = TG_EINVAL;
    s->der = malloc(pem_len + 1);
    if (s->der == NULL) {
        rc = tg_err_set(err, TG_ENOMEM, "out of memory");
        goto fail;
    }
    ret = wc_CertPemToDer((const byte *)pem, (int)pem_len, s->der, (int)pem_len, CERT_TYPE);
    if (ret <= 0) {
        tg_err_set(err, rc, "%s: no PEM certificate: %s", path, wc_GetErrorString(ret));
        goto fail;
    }
    s->der_len = ret;
    if ((rc = path_join(path, prefix, ".key", err)) < 0)
        goto fail;
    if ((ret = wc_ecc_init(&s->key)) != 0) {
        rc = tg_err_set(err, TG_ETLS, "ecc init: %s", wc_GetErrorString(ret));
        goto fail;
    }
    s->key_ok = true;
    if ((rc = load_key(path, &s->key, err)) < 0)
        goto fail;
    if ((rc = tg_x509_key_matches(s->der, (size_t)s->der_len, &s->key, path, err)) < 0)
        goto fail;
    if ((rc = path_join(path, prefix, ".chain.pem", err)) < 0)
        goto fail;
    /* the chain file is optional: a CA made by an older tollgate-certs has none */
    if ((access(path, F_OK) == 0 || errno != ENOENT) &&
        (rc = tg_file_read(NULL, path, TG_FILE_MAX, 0, &s->chain, &s->chain_len, err)) < 0)
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
    int rc;

    if (o->cmd == CMD_CA)
        rc = tg_x509_set_cn(cert, o->cn ? o->cn : "tollgate dev root CA", err);
    else if (o->cmd == CMD_INTERMEDIATE)
        rc = tg_x509_set_cn(cert, o->cn ? o->cn : "tollgate dev intermediate CA", err);
    else if (o->cn != NULL)
        rc = tg_x509_set_cn(cert, o->cn, err);
    else if (o->no_san)
        rc = tg_x509_set_cn(cert, o->spiffe, err);
    else {
        leaf_cn(o->spiffe, cn);
        rc = tg_x509_set_cn(cert, cn, err);
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
    if (s == NULL) /* self-signed */
        return tg_x509_set_key_ids(cert, key, NULL, 0, NULL, err);
    return tg_x509_set_key_ids(cert, key, s->der, (size_t)s->der_len, &s->key, err);
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

/* What the commands that make a key, a certificate or a CSR hold: the random generator, the
 * subject's key, and for certificates and CSRs the Cert and room for its DER. */
struct job {
    WC_RNG rng;
    ecc_key key;
    bool rng_ok, key_ok;
    Cert *cert;
    byte *der;
};

/* job_end() undoes it, also after a failure. */
static int job_begin(struct job *j, bool with_cert, char *err)
{
    int ret;

    if ((ret = wc_InitRng(&j->rng)) != 0)
        return tg_err_set(err, TG_ETLS, "random generator: %s", wc_GetErrorString(ret));
    j->rng_ok = true;
    if ((ret = wc_ecc_init(&j->key)) != 0)
        return tg_err_set(err, TG_ETLS, "ecc init: %s", wc_GetErrorString(ret));
    j->key_ok = true;
    if (!with_cert)
        return 0;
    j->cert = calloc(1, sizeof(*j->cert));
    j->der = malloc(DER_CAP);
    if (j->cert == NULL || j->der == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    return tg_x509_cert_init(j->cert, err);
}

static void job_end(struct job *j)
{
    free(j->der);
    free(j->cert);
    if (j->key_ok)
        wc_ecc_free(&j->key);
    if (j->rng_ok)
        wc_FreeRng(&j->rng);
}

/* PREFIX.pem and, for an intermediate, PREFIX.chain.pem; a stale one of a CA is removed. */
static int write_certs(const struct opts *o, const char *pem_path, const char *chain_path,
                       const char *pem, size_t pem_len, const struct signer *s, char *err)
{
    size_t out_len = pem_len;
    char *out = malloc(pem_len + s->chain_len + 1);
    int rc;

    if (out == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    memcpy(out, pem, pem_len);
    if (s->chain != NULL) {
        memcpy(out + out_len, s->chain, s->chain_len);
        out_len += s->chain_len;
        if (s->chain_len > 0 && s->chain[s->chain_len - 1] != '\n')
            out[out_len++] = '\n';
    }
    if (o->cmd == CMD_ISSUE) {
        rc = write_file(pem_path, out, out_len, 0644, err); /* leaf + intermediates */
    } else if (o->cmd == CMD_INTERMEDIATE) {
        if ((rc = write_file(pem_path, pem, pem_len, 0644, err)) == 0)
            rc = write_file(chain_path, out, out_len, 0644, err);
    } else {
        rc = write_file(pem_path, pem, pem_len, 0644, err);
        if (rc == 0 && unlink(chain_path) < 0 && errno != ENOENT)
            rc = tg_err_set(err, TG_EIO, "%s: stale chain: %s", chain_path, strerror(errno));
    }
    free(out);
    return rc;
}

static int cmd_sign(const struct opts *o, char *err)
{
    char key_path[PATH_MAX], pem_path[PATH_MAX], chain_path[PATH_MAX],
        serial[2 * CTC_SERIAL_SIZE + 1];
    struct signer s = {0};
    bool have_signer = false;
    struct job j = {0};
    char *pem = NULL;
    size_t der_len, pem_len;
    int rc;
    struct tm nb_tm, na_tm;
    char not_after[CERTS_RFC3339];

    if ((rc = path_join(key_path, o->out, ".key", err)) < 0 ||
        (rc = path_join(pem_path, o->out, ".pem", err)) < 0 ||
        (rc = path_join(chain_path, o->out, ".chain.pem", err)) < 0)
        return rc;
    if ((rc = job_begin(&j, true, err)) < 0 || (rc = load_or_make_key(o, &j.rng, &j.key, err)) < 0)
        goto fail;
    if (o->ca != NULL) {
        if ((rc = signer_load(o->ca, &s, err)) < 0)
            goto fail;
        have_signer = true;
    }
    if ((rc = fill_cert(o, &j.rng, &j.key, have_signer ? &s : NULL, j.cert, err)) < 0 ||
        (rc = tg_x509_make(j.cert, &j.key, have_signer ? &s.key : &j.key, &j.rng, j.der, DER_CAP,
                           &der_len, err)) < 0 ||
        (rc = tg_x509_pem(j.der, der_len, CERT_TYPE, &pem, &pem_len, err)) < 0)
        goto fail;
    /* The key first: a watcher that reloads on the certificate then finds its key. */
    if ((rc = write_key(key_path, &j.key, err)) < 0 ||
        (rc = write_certs(o, pem_path, chain_path, pem, pem_len, &s, err)) < 0)
        goto fail;

    hex(j.cert->serial, (size_t)j.cert->serialSz, serial);
    nb_tm = (struct tm){0};
    na_tm = (struct tm){0};
    not_after[0] = '\0';
    if (wc_GetCertDates(j.cert, &nb_tm, &na_tm) == 0)
        certs_rfc3339((int64_t)timegm(&na_tm), not_after);
    printf("%s: wrote %s%s %s serial=%s not_after=%s\n", cmd_names[o->cmd], pem_path,
           o->cmd == CMD_INTERMEDIATE ? " (+ .chain.pem)" : "", key_path, serial, not_after);
    rc = 0;
fail:
    free(pem);
    if (have_signer)
        signer_cleanup(&s);
    job_end(&j);
    return rc;
}

static int cmd_keygen(const struct opts *o, char *err)
{
    struct job j = {0};
    int rc;

    if ((rc = job_begin(&j, false, err)) == 0 && (rc = make_key(&j.rng, &j.key, err)) == 0 &&
        (rc = write_key(o->out, &j.key, err)) == 0)
        printf("keygen: wrote %s (P-256)\n", o->out);
    job_end(&j);
    return rc;
}

static int cmd_csr(const struct opts *o, char *err)
{
    struct job j = {0};
    char *pem = NULL;
    char cn[CTC_NAME_SIZE];
    size_t pem_len;
    int len, rc;

    if ((rc = job_begin(&j, true, err)) < 0 || (rc = load_key(o->key, &j.key, err)) < 0)
        goto fail;
    j.cert->version = 0; /* PKCS#10 v1 */
    leaf_cn(o->spiffe, cn);
    if ((rc = tg_x509_set_cn(j.cert, o->cn ? o->cn : cn, err)) < 0 ||
        (rc = set_alt_names(o, j.cert, err)) < 0)
        goto fail;
    rc = TG_ETLS;
    len = wc_MakeCertReq_ex(j.cert, j.der, DER_CAP, ECC_TYPE, &j.key);
    if (len <= 0) {
        tg_err_set(err, rc, "making the CSR: %s", wc_GetErrorString(len));
        goto fail;
    }
    len = wc_SignCert_ex(j.cert->bodySz, j.cert->sigType, j.der, DER_CAP, ECC_TYPE, &j.key, &j.rng);
    if (len <= 0) {
        tg_err_set(err, rc, "signing the CSR: %s", wc_GetErrorString(len));
        goto fail;
    }
    if ((rc = tg_x509_pem(j.der, (size_t)len, CERTREQ_TYPE, &pem, &pem_len, err)) < 0 ||
        (rc = write_file(o->out, pem, pem_len, 0644, err)) < 0)
        goto fail;
    printf("csr: wrote %s\n", o->out);
    rc = 0;
fail:
    free(pem);
    job_end(&j);
    return rc;
}

static int print_date(const char *name, const byte *date, int date_len)
{
    const byte *p;
    byte format;
    int len;
    struct tm tm = {0};

    char text[CERTS_RFC3339];

    if (wc_GetDateInfo(date, date_len, &p, &format, &len) != 0 ||
        wc_GetDateAsCalendarTime(p, len, format, &tm) != 0)
        return TG_EINVAL;
    certs_rfc3339((int64_t)timegm(&tm), text);
    printf("%s=%s\n", name, text);
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

    if ((rc = tg_file_read(NULL, o->file, TG_FILE_MAX, TG_FILE_SECRET, &file, &file_len, err)) < 0)
        return rc;
    rc = TG_EINVAL;
    der = malloc(file_len + 1);
    if (der == NULL) {
        rc = tg_err_set(err, TG_ENOMEM, "out of memory");
        goto fail;
    }
    if (strstr(file, "-----BEGIN") != NULL) {
        der_len = wc_CertPemToDer((const byte *)file, (int)file_len, der, (int)file_len, CERT_TYPE);
        if (der_len <= 0) {
            tg_err_set(err, rc, "%s: no PEM certificate: %s", o->file, wc_GetErrorString(der_len));
            goto fail;
        }
    } else {
        memcpy(der, file, file_len);
        der_len = (int)file_len;
    }
    wc_InitDecodedCert(&dc, der, (word32)der_len, NULL);
    dc_ok = true;
    if ((ret = wc_ParseCert(&dc, CERT_TYPE, NO_VERIFY, NULL)) != 0) {
        tg_err_set(err, rc, "%s: not a certificate: %s", o->file, wc_GetErrorString(ret));
        goto fail;
    }
    if (wc_Sha256Hash(der, (word32)der_len, hash) != 0) {
        rc = tg_err_set(err, TG_ETLS, "sha256 failed");
        goto fail;
    }
    hex(dc.serial, (size_t)dc.serialSz, text);
    printf("serial=%s\n", text);
    hex(hash, sizeof(hash), text);
    printf("sha256=%s\n", text);
    if (print_date("not_before", dc.beforeDate, dc.beforeDateLen) < 0 ||
        print_date("not_after", dc.afterDate, dc.afterDateLen) < 0) {
        tg_err_set(err, rc, "%s: cannot read the validity dates", o->file);
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

/* A duration in the sidecar config's grammar (tg_duration_parse: 250ms, 10s, 5m, 24h, or
 * seconds), in whole seconds, positive unless zero_ok, at most MAX_LIFETIME_S. */
static int parse_duration(const char *cmd, const char *name, const char *s, bool zero_ok,
                          long long *out)
{
    char why[TG_ERRLEN];
    uint64_t ms;

    if (tg_duration_parse(s, &ms, why) < 0)
        return usage_error(cmd, "--%s: %s", name, why);
    if (ms % 1000 != 0)
        return usage_error(cmd, "--%s: %s: certificates count whole seconds", name, s);
    if ((ms == 0 && !zero_ok) || ms / 1000 > (uint64_t)MAX_LIFETIME_S)
        return usage_error(cmd, "--%s: %s: want more than 0s and at most %lldh", name, s,
                           MAX_LIFETIME_S / 3600);
    *out = (long long)(ms / 1000);
    return 0;
}

/* The lifetime options before durations: refused, naming the spelling that replaces them
 * (one spelling per concept: a duration is written as the config writes it). */
static int gone_option(const char *cmd, int c, const char *arg)
{
    static const struct {
        int opt;
        const char *name, *now;
        long long unit;
    } gone[] = {
        {O_GONE_DAYS, "days", "valid-for", 24},
        {O_GONE_HOURS, "hours", "valid-for", 1},
        {O_GONE_SECONDS, "seconds", "valid-for", 0},
        {O_GONE_NOT_BEFORE_DAYS, "not-before-days", "backdate", 24},
    };
    char *end;
    long long v;

    for (size_t i = 0; i < TG_NELEM(gone); i++) {
        if (gone[i].opt != c)
            continue;
        errno = 0;
        v = strtoll(arg, &end, 10);
        if (errno != 0 || end == arg || *end != '\0' || v <= 0 || v > 1000000)
            return usage_error(cmd,
                               "--%s is gone: give a duration as the config does, --%s 24h "
                               "(units ms, s, m, h)",
                               gone[i].name, gone[i].now);
        if (gone[i].unit == 0)
            return usage_error(cmd, "--%s is gone: give a duration as the config does: --%s %llds",
                               gone[i].name, gone[i].now, v);
        return usage_error(cmd, "--%s is gone: give a duration as the config does: --%s %lldh",
                           gone[i].name, gone[i].now, v * gone[i].unit);
    }
    return EXIT_USAGE;
}

/* --spiffe: an ID the sidecar accepts in a workload's certificate, or a usage error with the
 * sidecar parser's reason. */
static int check_spiffe(const char *cmd, const char *id)
{
    struct tg_spiffe_id parsed;
    char why[TG_ERRLEN];

    if (tg_spiffe_parse(id, &parsed, why) < 0)
        return usage_error(cmd,
                           "--spiffe: '%s' is not a SPIFFE ID the sidecar accepts: %s (a test "
                           "that wants a malformed one in a certificate gives it with --uri)",
                           id, why);
    if (parsed.path_off == parsed.len)
        return usage_error(cmd,
                           "--spiffe: '%s' names a trust domain, not a workload (want "
                           "spiffe://DOMAIN/PATH)",
                           id);
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

/* A repeatable option's value into list (at most MAX_NAMES). */
static int add_name(const char *cmd, const char *name, const char *v, const char **list, size_t *n)
{
    if (*n == MAX_NAMES)
        return usage_error(cmd, "--%s: at most %d", name, MAX_NAMES);
    if (v[0] == '\0')
        return usage_error(cmd, "--%s: empty", name);
    list[(*n)++] = v;
    return 0;
}

/* One option c (with optarg) of the command in o. 0, or the exit status. */
static int take_option(const char *cmd, int c, struct opts *o)
{
    switch (c) {
    case O_OUT:
        o->out = optarg;
        return 0;
    case O_CA:
        o->ca = optarg;
        return 0;
    case O_CN:
        o->cn = optarg;
        return 0;
    case O_SPIFFE:
        o->spiffe = optarg;
        return 0;
    case O_KEY:
        o->key = optarg;
        return 0;
    case O_VALID_FOR:
        o->has_lifetime = true;
        return parse_duration(cmd, "valid-for", optarg, false, &o->valid_for);
    case O_BACKDATE:
        return parse_duration(cmd, "backdate", optarg, true, &o->backdate);
    case O_PATH_LEN:
        return parse_long(cmd, "path-len", optarg, 0, 127, &o->path_len);
    case O_EXPIRED:
        o->expired = true;
        return 0;
    case O_NOT_YET_VALID:
        o->not_yet_valid = true;
        return 0;
    case O_NO_SAN:
        o->no_san = true;
        return 0;
    case O_CA_FLAG:
        o->ca_flag = true;
        return 0;
    case O_SELF_SIGNED:
        o->self_signed = true;
        return 0;
    case O_EKU:
        o->eku = optarg;
        if (strcmp(optarg, "server") != 0 && strcmp(optarg, "client") != 0 &&
            strcmp(optarg, "both") != 0 && strcmp(optarg, "none") != 0 &&
            strcmp(optarg, "codesign") != 0)
            return usage_error(
                cmd, "--eku: expected server, client, both, none or codesign, got '%s'", optarg);
        return 0;
    case O_URI:
        return add_name(cmd, "uri", optarg, o->uris, &o->n_uris);
    case O_DNS:
        return add_name(cmd, "dns", optarg, o->dns, &o->n_dns);
    case O_SERIAL:
        return parse_serial(cmd, optarg, o);
    case O_BUNDLE:
        o->verify.bundle = optarg;
        return 0;
    case O_CRL:
        return add_name(cmd, "crl", optarg, o->crls, &o->verify.crls.n);
    case O_INTERMEDIATES:
        o->verify.intermediates = optarg;
        return 0;
    case O_PEER:
        o->verify.peer = optarg;
        if (strcmp(optarg, "client") != 0 && strcmp(optarg, "server") != 0)
            return usage_error(cmd, "--peer: expected client or server, got '%s'", optarg);
        return 0;
    case O_TRUST_DOMAIN:
        return add_name(cmd, "trust-domain", optarg, o->domains, &o->verify.domains.n);
    case O_MAX_CHAIN_DEPTH: {
        long n = 0;
        int rc = parse_long(cmd, "max-chain-depth", optarg, 1, 16, &n);

        o->verify.max_chain_depth = (unsigned)n;
        return rc;
    }
    default:
        return gone_option(cmd, c, optarg);
    }
}

/* The arguments after the options, and what each command needs. 0 or EXIT_USAGE. */
static int check_args(const char *cmd, int argc, char **argv, struct opts *o)
{
    int rest = argc - optind;

    switch (o->cmd) {
    case CMD_SHOW:
    case CMD_INSPECT:
    case CMD_VERIFY:
        if (rest == 0)
            return usage_error(cmd, "expected a %s", o->cmd == CMD_VERIFY ? "CHAIN file" : "FILE");
        if (rest > 1)
            return usage_error(cmd, "unexpected argument '%s'", argv[optind + 1]);
        o->file = argv[optind];
        if (o->cmd == CMD_VERIFY && o->verify.bundle == NULL)
            return usage_error(cmd, "--bundle FILE is required (the roots to verify against)");
        return 0;
    case CMD_HELP:
        if (rest > 1)
            return usage_error(cmd, "unexpected argument '%s'", argv[optind + 1]);
        o->help_of = rest == 1 ? argv[optind] : NULL;
        return 0;
    default:
        break;
    }
    if (rest > 0)
        return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (o->cmd == CMD_VERSION)
        return 0;
    if (o->out == NULL || o->out[0] == '\0')
        return usage_error(cmd, "--out is required");
    if ((o->cmd == CMD_INTERMEDIATE || (o->cmd == CMD_ISSUE && !o->self_signed)) && o->ca == NULL)
        return usage_error(cmd, "--ca PREFIX is required%s",
                           o->cmd == CMD_ISSUE ? " (or --self-signed)" : "");
    if (o->self_signed && o->ca != NULL)
        return usage_error(cmd, "--self-signed and --ca exclude each other");
    if (o->expired + o->not_yet_valid + !!(o->seen & C(O_BACKDATE - O_BASE)) > 1)
        return usage_error(cmd, "--expired, --not-yet-valid and --backdate exclude each other");
    if (o->cmd == CMD_CSR && o->key == NULL)
        return usage_error(cmd, "--key FILE is required");
    if (o->cmd == CMD_ISSUE || o->cmd == CMD_CSR) {
        if (o->spiffe != NULL && check_spiffe(cmd, o->spiffe) != 0)
            return EXIT_USAGE;
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
    o->verify.max_chain_depth = 4; /* the config's identity.max_chain_depth default */
    o->verify.crls.v = tg_unconst(o->crls);
    o->verify.domains.v = tg_unconst(o->domains);
    snprintf(prog, sizeof(prog), PROG " %s", cmd);
    argv[0] = prog; /* getopt names the command in its messages */
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(cmd_usage[o->cmd], stdout);
            *done = true;
            return 0;
        }
        if (c < O_BASE || c >= O_END) { /* getopt has named the bad option */
            fprintf(stderr, "(run '" PROG " %s --help' for usage)\n", cmd);
            return EXIT_USAGE;
        }
        if (!(opt_cmds[c - O_BASE] & C(o->cmd)))
            return usage_error(cmd, "--%s does not apply to this command",
                               long_opts[c - O_BASE].name);
        if ((o->seen & C(c - O_BASE)) && c != O_URI && c != O_DNS && c != O_CRL &&
            c != O_TRUST_DOMAIN)
            return usage_error(cmd, "--%s given twice", long_opts[c - O_BASE].name);
        o->seen |= C(c - O_BASE);
        if ((rc = take_option(cmd, c, o)) != 0)
            return rc;
    }
    return check_args(cmd, argc, argv, o);
}

static int cmd_help(const struct opts *o)
{
    if (o->help_of == NULL) {
        fputs(usage_text, stdout);
        return 0;
    }
    for (int i = 0; i < CMD_COUNT; i++) {
        if (strcmp(o->help_of, cmd_names[i]) == 0) {
            fputs(cmd_usage[i], stdout);
            return 0;
        }
    }
    return usage_error("help", "unknown command '%s'", o->help_of);
}

int main(int argc, char **argv)
{
    static char help[] = "help", version[] = "version"; /* the verbs -h and --version stand for */
    struct opts o = {0};
    char err[TG_ERRLEN] = "";
    bool done;
    int rc;

    if (argc < 2)
        return usage_error(NULL, "missing command");
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)
        argv[1] = help;
    if (strcmp(argv[1], "--version") == 0)
        argv[1] = version;
    rc = parse_args(argc - 1, argv + 1, &o, &done);
    if (rc != 0 || done)
        return rc;
    if (o.cmd == CMD_HELP)
        return cmd_help(&o);
    if (o.cmd == CMD_VERSION) {
        printf(PROG " %s (%s)\n", TG_VERSION, tg_tls_version_text());
        return 0;
    }
    if (tg_tls_init() < 0) {
        fprintf(stderr, PROG ": the TLS library failed to start\n");
        return 1;
    }
    o.verify.chain = o.file;
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
    case CMD_INSPECT:
        rc = certs_inspect(o.file, err);
        break;
    case CMD_VERIFY:
        rc = certs_verify(&o.verify, err);
        break;
    default:
        rc = cmd_sign(&o, err);
        break;
    }
    tg_tls_cleanup();
    if (rc < 0) {
        fprintf(stderr, PROG " %s: %s\n", cmd_names[o.cmd], err[0] ? err : "failed");
        return 1;
    }
    return rc;
}
