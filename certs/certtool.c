/* tollgate-certs: development and test certificates (EC P-256 keys, ECDSA with SHA-256),
 * and the reading of any PEM file the way the sidecar reads it (inspect, verify: inspect.c).
 * See certs/README.md for the commands.
 *
 * Keys, certificates and requests are made by lib/pki (certgen.h), the calls tollgate-cp's
 * CA can share; what a certificate says is read by lib/pki too (identity.h, certview.h), so
 * no file here sees wolfSSL. What it takes as the sidecar does comes from the sidecar's own
 * modules: durations (tg_duration_parse, the config's grammar) and SPIFFE IDs
 * (tg_spiffe_parse, the handshake's parser). Help and the version go to stdout, exit 0;
 * errors are one line on stderr naming what was wrong, exit 1; usage errors exit 2. */
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
#include "tollgate/certgen.h"
#include "tollgate/certview.h"
#include "tollgate/config.h"
#include "tollgate/err.h"
#include "tollgate/file.h"
#include "tollgate/identity.h"
#include "tollgate/spiffe.h"
#include "tollgate/tls.h"

#define PROG "tollgate-certs"
#define EXIT_USAGE 2
#define MAX_NAMES 32  /* --uri / --dns / --crl / --trust-domain given at most this often each */
#define SKEW_SECS 300 /* default notBefore is this far in the past */
#define DAY_SECS 86400L
#define MAX_LIFETIME_S (100LL * 365 * DAY_SECS) /* --valid-for, --backdate: 100 years at most */

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
    unsigned char serial[TG_CERT_SERIAL_MAX];
    size_t serial_len; /* 0: make a random one */
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
    struct tg_key *key;
    unsigned char *der;
    size_t der_len;
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

/* Loads a P-256 private key (PEM "EC PRIVATE KEY" or "PRIVATE KEY", or DER). */
static int load_key(const char *path, struct tg_key **key, char *err)
{
    char *file = NULL;
    size_t file_len = 0;
    int rc;

    if ((rc = tg_file_read(NULL, path, TG_FILE_MAX, TG_FILE_SECRET, &file, &file_len, err)) < 0)
        return rc;
    rc = tg_key_decode(file, file_len, true, path, key, err);
    tg_wipe_free(file, file_len);
    return rc;
}

static int write_key(const char *path, const struct tg_key *key, char *err)
{
    char *pem = NULL;
    size_t pem_len = 0;
    int rc;

    if ((rc = tg_key_pem(key, &pem, &pem_len, err)) < 0)
        return rc;
    rc = write_file(path, pem, pem_len, 0600, err);
    tg_wipe_free(pem, pem_len + 1);
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
static void set_validity(const struct opts *o, struct tg_cert_spec *spec)
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
    spec->not_before = (int64_t)nb;
    spec->not_after = (int64_t)na;
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
    if (len > 0 && len <= TG_CERT_CN_MAX && sa[len] == '\0') {
        memcpy(cn, sa, len);
        cn[len] = '\0';
    }
}

/* What a certificate or request made here names: its CN and subjectAltName (the SPIFFE ID,
 * then each --uri, then each --dns). */
struct names {
    char cn[TG_CERT_CN_MAX + 1];
    const char *uris[MAX_NAMES + 1];
};

static void set_names(const struct opts *o, struct names *nm, struct tg_cert_spec *spec)
{
    if (o->cmd == CMD_CA)
        spec->cn = o->cn ? o->cn : "tollgate dev root CA";
    else if (o->cmd == CMD_INTERMEDIATE)
        spec->cn = o->cn ? o->cn : "tollgate dev intermediate CA";
    else if (o->cn != NULL)
        spec->cn = o->cn;
    else if (o->no_san && o->cmd == CMD_ISSUE)
        spec->cn = o->spiffe;
    else
        leaf_cn(o->spiffe, nm->cn), spec->cn = nm->cn;
    if (o->no_san)
        return;
    if (o->spiffe != NULL)
        nm->uris[spec->n_uris++] = o->spiffe;
    memcpy(nm->uris + spec->n_uris, o->uris, o->n_uris * sizeof(*nm->uris));
    spec->n_uris += o->n_uris;
    spec->uris = nm->uris;
    spec->dns = o->dns;
    spec->n_dns = o->n_dns;
}

/* basicConstraints, keyUsage, extendedKeyUsage. */
static void set_usage(const struct opts *o, struct tg_cert_spec *spec)
{
    spec->ca = o->cmd != CMD_ISSUE || o->ca_flag;
    spec->path_len = spec->ca && (o->seen & C(O_PATH_LEN - O_BASE)) ? (int)o->path_len : -1;
    if (o->cmd != CMD_ISSUE) {
        spec->key_usage = "keyCertSign,cRLSign";
        return; /* CAs: no EKU, so they may sign leaves of any purpose */
    }
    spec->key_usage = o->ca_flag ? "digitalSignature,keyCertSign" : "digitalSignature";
    if (o->eku == NULL || strcmp(o->eku, "both") == 0)
        spec->ext_key_usage = "serverAuth,clientAuth";
    else if (strcmp(o->eku, "server") == 0)
        spec->ext_key_usage = "serverAuth";
    else if (strcmp(o->eku, "client") == 0)
        spec->ext_key_usage = "clientAuth";
    else if (strcmp(o->eku, "codesign") == 0)
        spec->ext_key_usage = "codeSigning";
    /* else none: checked when parsing */
}

/* ---- the signing CA ---- */

static void signer_cleanup(struct signer *s)
{
    tg_key_free(s->key);
    s->key = NULL;
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
    int rc;

    memset(s, 0, sizeof(*s));
    if ((rc = path_join(path, prefix, ".pem", err)) < 0)
        return rc;
    if ((rc = tg_file_read(NULL, path, TG_FILE_MAX, TG_FILE_SECRET, &pem, &pem_len, err)) < 0)
        return rc;
    if ((rc = tg_pem_cert_der(pem, pem_len, path, &s->der, &s->der_len, err)) < 0 ||
        (rc = path_join(path, prefix, ".key", err)) < 0 ||
        (rc = load_key(path, &s->key, err)) < 0 ||
        (rc = tg_key_matches(s->key, s->der, s->der_len, path, err)) < 0 ||
        (rc = path_join(path, prefix, ".chain.pem", err)) < 0)
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

static int load_or_make_key(const struct opts *o, struct tg_key **key, char *err)
{
    if (o->key != NULL)
        return load_key(o->key, key, err);
    return tg_key_generate(key, err);
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
    char key_path[PATH_MAX], pem_path[PATH_MAX], chain_path[PATH_MAX];
    struct tg_cert_spec spec = {.serial = o->serial_len > 0 ? o->serial : NULL,
                                .serial_len = o->serial_len};
    struct tg_cert_issuer issuer = {0};
    struct tg_cert_info info;
    struct signer s = {0};
    struct tg_key *key = NULL;
    struct names nm;
    unsigned char *der = NULL;
    char *pem = NULL;
    size_t der_len, pem_len;
    char not_after[CERTS_RFC3339];
    int rc;

    if ((rc = path_join(key_path, o->out, ".key", err)) < 0 ||
        (rc = path_join(pem_path, o->out, ".pem", err)) < 0 ||
        (rc = path_join(chain_path, o->out, ".chain.pem", err)) < 0)
        return rc;
    if ((rc = load_or_make_key(o, &key, err)) < 0)
        goto fail;
    if (o->ca != NULL) {
        if ((rc = signer_load(o->ca, &s, err)) < 0)
            goto fail;
        issuer = (struct tg_cert_issuer){.der = s.der, .len = s.der_len, .key = s.key};
    }
    set_names(o, &nm, &spec);
    set_validity(o, &spec);
    set_usage(o, &spec);
    if ((rc = tg_cert_make(&spec, key, o->ca != NULL ? &issuer : NULL, &der, &der_len, err)) < 0 ||
        (rc = tg_pem_encode(der, der_len, TG_PEM_CERT, &pem, &pem_len, err)) < 0)
        goto fail;
    /* The key first: a watcher that reloads on the certificate then finds its key. */
    if ((rc = write_key(key_path, key, err)) < 0 ||
        (rc = write_certs(o, pem_path, chain_path, pem, pem_len, &s, err)) < 0)
        goto fail;
    if ((rc = tg_cert_inspect(der, der_len, &info, err)) < 0)
        goto fail;
    certs_rfc3339(info.not_after, not_after);
    printf("%s: wrote %s%s %s serial=%s not_after=%s\n", cmd_names[o->cmd], pem_path,
           o->cmd == CMD_INTERMEDIATE ? " (+ .chain.pem)" : "", key_path, info.serial, not_after);
    rc = 0;
fail:
    free(pem);
    free(der);
    signer_cleanup(&s);
    tg_key_free(key);
    return rc;
}

static int cmd_keygen(const struct opts *o, char *err)
{
    struct tg_key *key = NULL;
    int rc;

    if ((rc = tg_key_generate(&key, err)) == 0 && (rc = write_key(o->out, key, err)) == 0)
        printf("keygen: wrote %s (P-256)\n", o->out);
    tg_key_free(key);
    return rc;
}

/* A request for the key at --key, naming what the options name, as PEM at --out. */
static int cmd_csr(const struct opts *o, char *err)
{
    struct tg_cert_spec spec = {0};
    struct names nm;
    struct tg_key *key = NULL;
    size_t der_len, pem_len;
    unsigned char *der = NULL;
    char *pem = NULL;
    int rc;

    set_names(o, &nm, &spec);
    if ((rc = load_key(o->key, &key, err)) < 0 ||
        (rc = tg_csr_make(&spec, key, &der, &der_len, err)) < 0 ||
        (rc = tg_pem_encode(der, der_len, TG_PEM_CSR, &pem, &pem_len, err)) < 0 ||
        (rc = write_file(o->out, pem, pem_len, 0644, err)) < 0)
        goto fail;
    printf("csr: wrote %s\n", o->out);
fail:
    free(pem);
    free(der);
    tg_key_free(key);
    return rc;
}

static int cmd_show(const struct opts *o, char *err)
{
    struct tg_cert_view view = {0};
    struct tg_cert_info info;
    char *file = NULL;
    size_t file_len = 0, der_len;
    unsigned char *der = NULL;
    char nb[CERTS_RFC3339], na[CERTS_RFC3339], why[TG_ERRLEN];
    int rc;

    if ((rc = tg_file_read(NULL, o->file, TG_FILE_MAX, TG_FILE_SECRET, &file, &file_len, err)) < 0)
        return rc;
    if (strstr(file, "-----BEGIN") != NULL) {
        if ((rc = tg_pem_cert_der(file, file_len, o->file, &der, &der_len, err)) < 0)
            goto fail;
    } else if ((der = malloc(file_len + 1)) == NULL) {
        rc = tg_err_set(err, TG_ENOMEM, "out of memory");
        goto fail;
    } else {
        memcpy(der, file, file_len);
        der_len = file_len;
    }
    if (tg_cert_inspect(der, der_len, &info, why) < 0 ||
        tg_cert_view(der, der_len, &view, why) < 0) {
        rc = tg_err_set(err, TG_EINVAL, "%s: not a certificate: %s", o->file, why);
        goto fail;
    }
    certs_rfc3339(info.not_before, nb);
    certs_rfc3339(info.not_after, na);
    printf("serial=%s\nsha256=%s\nnot_before=%s\nnot_after=%s\n", info.serial, info.sha256, nb, na);
    for (size_t i = 0; i < view.n_sans; i++) /* URIs, then DNS names, each in certificate order */
        if (view.sans[i].type == TG_SAN_URI)
            printf("uri=%s\n", view.sans[i].value);
    for (size_t i = 0; i < view.n_sans; i++)
        if (view.sans[i].type == TG_SAN_DNS)
            printf("dns=%s\n", view.sans[i].value);
    rc = 0;
fail:
    tg_cert_view_cleanup(&view);
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
    unsigned char b[TG_CERT_SERIAL_MAX + 1];
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
    if ((len + 1) / 2 > TG_CERT_SERIAL_MAX)
        return usage_error(cmd, "--serial: longer than %d bytes", TG_CERT_SERIAL_MAX);
    for (i = 0; i < len;) { /* odd length: the first digit stands alone */
        char pair[3] = {s[i], '\0', '\0'};

        if (i > 0 || len % 2 == 0)
            pair[1] = s[++i];
        i++;
        b[n++] = (unsigned char)strtoul(pair, NULL, 16);
    }
    if (n == 1 && b[0] == 0)
        return usage_error(cmd, "--serial: must not be zero (RFC 5280 4.1.2.2)");
    if ((b[0] & 0x80) && n >= TG_CERT_SERIAL_MAX)
        return usage_error(cmd, "--serial: at most %d bytes when the top bit is set",
                           TG_CERT_SERIAL_MAX - 1);
    memcpy(o->serial, b, n);
    o->serial_len = n;
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

/* Options kept as given (a string) or as a flag (true when given): where each goes in
 * struct opts. */
static const struct {
    int opt;
    bool flag;
    size_t off;
} slots[] = {
    {O_OUT, false, offsetof(struct opts, out)},
    {O_CA, false, offsetof(struct opts, ca)},
    {O_CN, false, offsetof(struct opts, cn)},
    {O_SPIFFE, false, offsetof(struct opts, spiffe)},
    {O_KEY, false, offsetof(struct opts, key)},
    {O_BUNDLE, false, offsetof(struct opts, verify.bundle)},
    {O_INTERMEDIATES, false, offsetof(struct opts, verify.intermediates)},
    {O_EXPIRED, true, offsetof(struct opts, expired)},
    {O_NOT_YET_VALID, true, offsetof(struct opts, not_yet_valid)},
    {O_NO_SAN, true, offsetof(struct opts, no_san)},
    {O_CA_FLAG, true, offsetof(struct opts, ca_flag)},
    {O_SELF_SIGNED, true, offsetof(struct opts, self_signed)},
};

/* One option c (with optarg) of the command in o. 0, or the exit status. */
static int take_option(const char *cmd, int c, struct opts *o)
{
    for (size_t i = 0; i < TG_NELEM(slots); i++) {
        if (slots[i].opt != c)
            continue;
        if (slots[i].flag)
            *(bool *)((char *)o + slots[i].off) = true;
        else
            *(const char **)((char *)o + slots[i].off) = optarg;
        return 0;
    }
    switch (c) {
    case O_VALID_FOR:
        o->has_lifetime = true;
        return parse_duration(cmd, "valid-for", optarg, false, &o->valid_for);
    case O_BACKDATE:
        return parse_duration(cmd, "backdate", optarg, true, &o->backdate);
    case O_PATH_LEN:
        return parse_long(cmd, "path-len", optarg, 0, 127, &o->path_len);
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
    case O_CRL:
        return add_name(cmd, "crl", optarg, o->crls, &o->verify.crls.n);
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
