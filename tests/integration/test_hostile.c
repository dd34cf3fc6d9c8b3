/* Hostile certificates and peers, made by an independent tool: every certificate here comes
 * from the openssl CLI (`req` + `ca`, EC P-256, extensions from extfiles; SPIFFE IDs that a
 * config file cannot spell, such as one with a NUL byte, go in as DER hex). Each hostile peer
 * must be refused inside the handshake, counted once in tollgate_handshakes_failed_total under
 * its reason, logged with that reason, and must never reach the app.
 *
 * Inbound cases: `openssl s_client` presents the certificate to sidecar B (web identity;
 * web-in allows only api, open-in allows any ID of mesh.local); the app is the echo server.
 * Outbound cases: `openssl s_server` presents it as the upstream of sidecar A (api identity,
 * api-out expects web); a plain client connects to A and must get nothing back.
 * A few control cases, built the same way but without the defect, must be served: they show
 * that every refusal is due to the one thing that case changes.
 *
 * Then 0-RTT: B's session tickets allow no early data and a resuming client's early data is
 * not accepted; A's ClientHello (traced by `s_server -trace`, whose tickets would allow early
 * data) offers neither early data nor post-handshake authentication. */
#include "harness.h"
#include "tollgate/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_ARGS 48
#define HOUR 3600
#define DAY (24 * HOUR)
#define LONG_ID_LEN 3000
#define PEER_TIMEOUT_MS 10000
#define PAYLOAD "hostile payload, must not reach the app\n"
#define PAYLOAD_REV "ppa eht hcaer ton tsum ,daolyap elitsoh\n" /* s_server -rev */
#define CBC_ONLY "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA256"

enum side { IN, OUT };

enum {
    F_EXPIRED = 1 << 0,       /* leaf: not_after in the past */
    F_NOT_YET = 1 << 1,       /* leaf: not_before in the future */
    F_ONE_INT = 1 << 2,       /* leaf signed by an intermediate, sent with it */
    F_TWO_INTS = 1 << 3,      /* leaf <- int1 <- int2 <- root, both sent */
    F_INT_EXPIRED = 1 << 4,   /* the (first) intermediate expired */
    F_FOREIGN = 1 << 5,       /* leaf signed by a root that is not in the bundle */
    F_SELF_SIGNED = 1 << 6,   /* leaf signs itself */
    F_CA_TRUE = 1 << 7,       /* leaf: basicConstraints CA:TRUE */
    F_KEY_CERT_SIGN = 1 << 8, /* leaf: keyUsage keyCertSign */
    F_IN_DNS = 1 << 9,        /* the ID goes in a DNS SAN, not a URI SAN */
    F_IN_CN = 1 << 10,        /* the ID is the CN; no SAN at all */
    F_LONG_ID = 1 << 11,      /* the ID is LONG_ID_LEN bytes */
    F_NO_CERT = 1 << 12,      /* s_client presents no certificate */
    F_TLS12 = 1 << 13,        /* the sidecar allows TLS 1.2 (tls.min_version "1.2") */
    F_DEPTH2 = 1 << 14,       /* the sidecar has identity.max_chain_depth 2 */
    F_OPEN = 1 << 15,         /* inbound: open-in (no allow list) instead of web-in */
};

struct hostile {
    const char *name;
    enum side side;
    const char *id; /* the peer's SPIFFE ID (bytes); NULL: the side's good ID */
    size_t id_len;  /* 0: strlen(id) */
    const char *id2;
    const char *eku; /* NULL: "serverAuth, clientAuth" */
    unsigned flags;
    const char *args[6]; /* more s_client / s_server arguments */
    const char *reason;  /* NULL: a control case, must be served */
    const char *alt;     /* another reason that is also right */
};

/* IDs with bytes a C string or a config file cannot hold */
#define RAW(s) .id = s, .id_len = sizeof(s) - 1

static const struct hostile cases[] = {
    /* ---- controls: the same PKI, nothing wrong ---- */
    {.name = "control_in", .side = IN, .reason = NULL},
    {.name = "control_in_chain_of_2_at_depth_2", .side = IN, .flags = F_ONE_INT | F_DEPTH2},
    {.name = "control_in_tls12_gcm_when_allowed",
     .side = IN,
     .flags = F_TLS12,
     .args = {"-tls1_2"}},
    {.name = "control_out", .side = OUT},
    {.name = "control_out_chain_of_2_at_depth_2", .side = OUT, .flags = F_ONE_INT | F_DEPTH2},

    /* ---- client certificates (inbound) ---- */
    {.name = "expired_leaf", .side = IN, .flags = F_EXPIRED, .reason = "expired"},
    {.name = "not_yet_valid_leaf", .side = IN, .flags = F_NOT_YET, .reason = "not_yet_valid"},
    {.name = "expired_intermediate",
     .side = IN,
     .flags = F_ONE_INT | F_INT_EXPIRED,
     .reason = "expired"},
    {.name = "foreign_root", .side = IN, .flags = F_FOREIGN, .reason = "untrusted"},
    {.name = "other_trust_domain",
     .side = IN,
     .id = "spiffe://other.local/ns/default/sa/api",
     .flags = F_OPEN,
     .reason = "trust_domain"},
    {.name = "eku_server_only", .side = IN, .eku = "serverAuth", .reason = "bad_cert"},
    {.name = "self_signed_leaf", .side = IN, .flags = F_SELF_SIGNED, .reason = "untrusted"},
    {.name = "chain_of_3_at_depth_2",
     .side = IN,
     .flags = F_TWO_INTS | F_DEPTH2,
     .reason = "bad_cert"},
    {.name = "leaf_ca_true", .side = IN, .flags = F_CA_TRUE, .reason = "bad_cert"},
    {.name = "leaf_key_cert_sign", .side = IN, .flags = F_KEY_CERT_SIGN, .reason = "bad_cert"},
    {.name = "no_client_cert", .side = IN, .flags = F_NO_CERT, .reason = "no_peer_cert"},
    {.name = "eku_code_signing_only", .side = IN, .eku = "codeSigning", .reason = "bad_cert"},
    /* offers post-handshake authentication instead of a certificate: still refused */
    {.name = "no_client_cert_offering_pha",
     .side = IN,
     .flags = F_NO_CERT,
     .args = {"-enable_pha"},
     .reason = "no_peer_cert"},

    /* ---- protocol ---- */
    {.name = "tls1_0_client",
     .side = IN,
     .args = {"-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"},
     .reason = "protocol"},
    {.name = "tls1_1_client",
     .side = IN,
     .args = {"-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"},
     .reason = "protocol"},
    {.name = "tls1_2_client_by_default", .side = IN, .args = {"-tls1_2"}, .reason = "protocol"},
    {.name = "cbc_only_offer_tls12_allowed",
     .side = IN,
     .flags = F_TLS12,
     .args = {"-tls1_2", "-cipher", CBC_ONLY},
     .reason = "protocol"},
    /* a TLS 1.2 ClientHello with only CBC suites (without TLS 1.3 suites, s_client sends no
     * ClientHello at all when 1.3 is enabled: it gives up with an internal_error alert) */
    {.name = "cbc_only_offer_no_tls13",
     .side = IN,
     .args = {"-no_tls1_3", "-cipher", CBC_ONLY},
     .reason = "protocol"},
    {.name = "tls1_1_client_tls12_allowed",
     .side = IN,
     .flags = F_TLS12,
     .args = {"-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"},
     .reason = "protocol"},
    /* TLS 1.2 allowed, but only null (no encryption) or anonymous (no certificate) suites
     * offered: no shared suite */
    {.name = "null_cipher_offer_tls12_allowed",
     .side = IN,
     .flags = F_TLS12,
     .args = {"-tls1_2", "-cipher", "eNULL:@SECLEVEL=0"},
     .reason = "protocol"},
    {.name = "anon_cipher_offer_tls12_allowed",
     .side = IN,
     .flags = F_TLS12,
     .args = {"-tls1_2", "-cipher", "aNULL:@SECLEVEL=0"},
     .reason = "protocol"},
    {.name = "tls13_ccm_only_offer",
     .side = IN,
     .args = {"-ciphersuites", "TLS_AES_128_CCM_SHA256"},
     .reason = "protocol"},

    /* ---- SPIFFE IDs (web-in allows .../sa/api: a lenient parser would let these in) ---- */
    {.name = "id_dot_segment",
     .side = IN,
     .id = "spiffe://mesh.local/ns/default/sa/./api",
     .reason = "bad_spiffe_id"},
    {.name = "id_dotdot_segment",
     .side = IN,
     .id = "spiffe://mesh.local/ns/x/../default/sa/api",
     .reason = "bad_spiffe_id"},
    {.name = "id_empty_segment",
     .side = IN,
     .id = "spiffe://mesh.local/ns//default/sa/api",
     .reason = "bad_spiffe_id"},
    {.name = "id_trailing_slash",
     .side = IN,
     .id = "spiffe://mesh.local/ns/default/sa/api/",
     .reason = "bad_spiffe_id"},
    {.name = "id_uppercase_trust_domain",
     .side = IN,
     .id = "spiffe://MESH.LOCAL/ns/default/sa/api",
     .reason = "bad_spiffe_id"},
    {.name = "id_uppercase_scheme",
     .side = IN,
     .id = "SPIFFE://mesh.local/ns/default/sa/api",
     .reason = "bad_spiffe_id"},
    /* "mesh.local." is made of allowed characters, but it is not mesh.local */
    {.name = "id_trailing_dot_trust_domain",
     .side = IN,
     .id = "spiffe://mesh.local./ns/default/sa/api",
     .reason = "trust_domain",
     .alt = "bad_spiffe_id"},
    {.name = "id_percent_encoding",
     .side = IN,
     .id = "spiffe://mesh.local/ns/default/sa/%61pi",
     .reason = "bad_spiffe_id"},
    {.name = "id_query",
     .side = IN,
     .id = "spiffe://mesh.local/ns/default/sa/api?x=1",
     .reason = "bad_spiffe_id"},
    {.name = "id_fragment",
     .side = IN,
     .id = "spiffe://mesh.local/ns/default/sa/api#f",
     .reason = "bad_spiffe_id"},
    {.name = "id_user_info",
     .side = IN,
     .id = "spiffe://api@mesh.local/ns/default/sa/api",
     .reason = "bad_spiffe_id"},
    {.name = "id_port",
     .side = IN,
     .id = "spiffe://mesh.local:8443/ns/default/sa/api",
     .reason = "bad_spiffe_id"},
    {.name = "id_non_ascii_path",
     .side = IN,
     .id = "spiffe://mesh.local/ns/default/sa/ap\xc3\xaf",
     .reason = "bad_spiffe_id"},
    {.name = "id_non_ascii_trust_domain",
     .side = IN,
     .id = "spiffe://m\xc3\xa9sh.local/ns/default/sa/api",
     .reason = "bad_spiffe_id"},
    {.name = "id_embedded_nul",
     .side = IN,
     RAW("spiffe://mesh.local/ns/default/sa/api\0.evil"),
     .reason = "bad_spiffe_id"},
    {.name = "id_trailing_nul",
     .side = IN,
     RAW("spiffe://mesh.local/ns/default/sa/api\0"),
     .reason = "bad_spiffe_id"},
    {.name = "id_3000_bytes", .side = IN, .flags = F_LONG_ID, .reason = "bad_spiffe_id"},
    /* wolfSSL itself rejects a URI SAN without a scheme while parsing the certificate: a
     * certificate that does not parse is a bad certificate at least, never "other" */
    {.name = "id_empty_uri", .side = IN, RAW(""), .reason = "bad_spiffe_id", .alt = "bad_cert"},
    {.name = "id_no_scheme",
     .side = IN,
     .id = "mesh.local/ns/default/sa/api",
     .reason = "bad_spiffe_id",
     .alt = "bad_cert"},
    {.name = "id_https_scheme",
     .side = IN,
     .id = "https://mesh.local/ns/default/sa/api",
     .reason = "bad_spiffe_id"},
    {.name = "two_uri_sans",
     .side = IN,
     .id2 = "spiffe://mesh.local/ns/default/sa/web",
     .reason = "bad_spiffe_id"},
    {.name = "two_equal_uri_sans", .side = IN, .id2 = IT_API_ID, .reason = "bad_spiffe_id"},
    {.name = "id_only_in_dns_san", .side = IN, .flags = F_IN_DNS, .reason = "bad_spiffe_id"},
    {.name = "id_only_in_cn", .side = IN, .flags = F_IN_CN, .reason = "bad_spiffe_id"},

    /* ---- server certificates (outbound) ---- */
    {.name = "out_expired_leaf", .side = OUT, .flags = F_EXPIRED, .reason = "expired"},
    {.name = "out_not_yet_valid_leaf", .side = OUT, .flags = F_NOT_YET, .reason = "not_yet_valid"},
    {.name = "out_expired_intermediate",
     .side = OUT,
     .flags = F_ONE_INT | F_INT_EXPIRED,
     .reason = "expired"},
    {.name = "out_foreign_root", .side = OUT, .flags = F_FOREIGN, .reason = "untrusted"},
    {.name = "out_self_signed_leaf", .side = OUT, .flags = F_SELF_SIGNED, .reason = "untrusted"},
    {.name = "out_other_trust_domain",
     .side = OUT,
     .id = "spiffe://other.local/ns/default/sa/web",
     .reason = "trust_domain"},
    {.name = "out_eku_client_only", .side = OUT, .eku = "clientAuth", .reason = "bad_cert"},
    {.name = "out_eku_code_signing_only", .side = OUT, .eku = "codeSigning", .reason = "bad_cert"},
    {.name = "out_chain_of_3_at_depth_2",
     .side = OUT,
     .flags = F_TWO_INTS | F_DEPTH2,
     .reason = "bad_cert"},
    {.name = "out_leaf_ca_true", .side = OUT, .flags = F_CA_TRUE, .reason = "bad_cert"},
    {.name = "out_leaf_key_cert_sign", .side = OUT, .flags = F_KEY_CERT_SIGN, .reason = "bad_cert"},
    {.name = "out_two_uri_sans",
     .side = OUT,
     .id2 = "spiffe://mesh.local/ns/default/sa/db",
     .reason = "bad_spiffe_id"},
    {.name = "out_id_embedded_nul",
     .side = OUT,
     RAW("spiffe://mesh.local/ns/default/sa/web\0x"),
     .reason = "bad_spiffe_id"},
    {.name = "out_id_dotdot_segment",
     .side = OUT,
     .id = "spiffe://mesh.local/ns/default/sa/x/../web",
     .reason = "bad_spiffe_id"},
    {.name = "out_id_only_in_dns_san", .side = OUT, .flags = F_IN_DNS, .reason = "bad_spiffe_id"},
    {.name = "out_unexpected_server",
     .side = OUT,
     .id = "spiffe://mesh.local/ns/default/sa/db",
     .reason = "unexpected_server"},
    /* A offers only TLS 1.3: the server answers with a protocol_version alert */
    {.name = "out_tls12_only_server",
     .side = OUT,
     .args = {"-tls1_2"},
     .reason = "protocol",
     .alt = "peer_refused"},
};

static struct it_proc *echo;
static int echo_port, admin_port, in_port, open_port, out_port, srv_port;
static char long_id[LONG_ID_LEN + 1];

/* ---- openssl ------------------------------------------------------------------------ */

static void openssl_v(const char *const *args)
{
    const char *argv[MAX_ARGS];
    char *err = NULL;
    size_t n = 0;
    int st;

    argv[n++] = it_openssl();
    for (; *args != NULL; args++) {
        ck_assert(n < MAX_ARGS - 1);
        argv[n++] = *args;
    }
    argv[n] = NULL;
    st = it_run(argv, NULL, 30000, NULL, &err);
    ck_assert_msg(st == 0, "openssl %s exited %d: %s", argv[1], st, err ? err : "");
    free(err);
}

static void asn1_time(long offset_s, char *dst, size_t cap)
{
    time_t t = time(NULL) + offset_s;
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(dst, cap, "%Y%m%d%H%M%SZ", &tm);
}

/* "-subj" value: '/' inside a value must be escaped */
static void subject(const char *cn, char *dst, size_t cap)
{
    size_t n = 0;

    n += (size_t)snprintf(dst, cap, "/CN=");
    for (; *cn != '\0' && n + 3 < cap; cn++) {
        if (*cn == '/' || *cn == '\\')
            dst[n++] = '\\';
        dst[n++] = *cn;
    }
    dst[n] = '\0';
}

/* A key, a CSR with CN=cn, and a certificate name.pem signed by issuer (NULL: by its own
 * key) valid from now+from_s to now+to_s, with the extensions in ext (extfile text). */
static void make_cert(const char *name, const char *cn, const char *issuer, long from_s, long to_s,
                      const char *ext)
{
    char key[64], csr[64], pem[64], extf[64], subj[256], start[32], end[32], ikey[64], ipem[64];

    snprintf(key, sizeof(key), "%s.key", name);
    snprintf(csr, sizeof(csr), "%s.csr", name);
    snprintf(pem, sizeof(pem), "%s.pem", name);
    snprintf(extf, sizeof(extf), "%s.ext", name);
    subject(cn, subj, sizeof(subj));
    asn1_time(from_s, start, sizeof(start));
    asn1_time(to_s, end, sizeof(end));
    it_write_file(extf, "%s", ext);
    {
        const char *req[] = {
            "req",    "-new",    "-newkey", "ec",   "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", key,       "-out", csr,        "-subj",
            subj,     NULL};

        openssl_v(req);
    }
    /* issuer NULL: self-signed */
    snprintf(ikey, sizeof(ikey), "%s.key", issuer != NULL ? issuer : name);
    snprintf(ipem, sizeof(ipem), "%s.pem", issuer != NULL ? issuer : name);
    {
        const char *ca[MAX_ARGS] = {"ca",       "-batch",   "-config", "ca.cnf",   "-notext",
                                    "-in",      csr,        "-out",    pem,        "-startdate",
                                    start,      "-enddate", end,       "-extfile", extf,
                                    "-keyfile", ikey};
        size_t n = 17;

        if (issuer != NULL) {
            ca[n++] = "-cert";
            ca[n++] = ipem;
        } else {
            ca[n++] = "-selfsign";
        }
        ca[n] = NULL;
        openssl_v(ca);
    }
}

static void make_ca(const char *name, const char *issuer, long from_s, long to_s)
{
    make_cert(name, name, issuer, from_s, to_s,
              "basicConstraints = critical, CA:TRUE\n"
              "keyUsage = critical, keyCertSign, cRLSign\n"
              "subjectKeyIdentifier = hash\n"
              "authorityKeyIdentifier = keyid\n");
}

static void make_leaf(const char *name, const char *issuer, const char *id)
{
    char ext[512];

    snprintf(ext, sizeof(ext), IT_SVID_EXT, id);
    make_cert(name, name, issuer, -HOUR, 2 * DAY, ext);
}

/* ---- DER for the SAN ---------------------------------------------------------------- */

static size_t der_head(unsigned char tag, size_t len, unsigned char *dst)
{
    size_t n = 0;

    dst[n++] = tag;
    if (len < 0x80) {
        dst[n++] = (unsigned char)len;
    } else if (len < 0x100) {
        dst[n++] = 0x81;
        dst[n++] = (unsigned char)len;
    } else {
        dst[n++] = 0x82;
        dst[n++] = (unsigned char)(len >> 8);
        dst[n++] = (unsigned char)len;
    }
    return n;
}

/* GeneralName: [6] URI or [2] dNSName, IMPLICIT IA5String */
static size_t general_name(unsigned char tag, const char *v, size_t len, unsigned char *dst)
{
    size_t n = der_head(tag, len, dst);

    memcpy(dst + n, v, len);
    return n + len;
}

/* "subjectAltName = DER:30:..:.." for one or two names */
static char *san_der_line(unsigned char tag, const char *v, size_t len, const char *v2)
{
    size_t inner_cap = len + (v2 ? strlen(v2) : 0) + 16;
    unsigned char *inner = malloc(inner_cap), *all = malloc(inner_cap + 8);
    size_t n, total;
    char *line;

    ck_assert(inner != NULL && all != NULL);
    n = general_name(tag, v, len, inner);
    if (v2 != NULL)
        n += general_name(0x86, v2, strlen(v2), inner + n);
    total = der_head(0x30, n, all);
    memcpy(all + total, inner, n);
    total += n;
    line = malloc(total * 3 + 64);
    ck_assert_ptr_nonnull(line);
    strcpy(line, "subjectAltName = DER:");
    for (size_t i = 0; i < total; i++)
        sprintf(line + strlen("subjectAltName = DER:") + 3 * i, "%02x%s", all[i],
                i + 1 < total ? ":" : "");
    strcat(line, "\n");
    free(inner);
    free(all);
    return line;
}

/* ---- the case's PKI ----------------------------------------------------------------- */

/* The ID the peer presents, and its length (it may hold a NUL). */
static const char *peer_id(const struct hostile *c, const char *good_id, size_t *len)
{
    if (c->flags & F_LONG_ID) {
        size_t n = (size_t)snprintf(long_id, sizeof(long_id), "%s/", good_id);

        memset(long_id + n, 'a', LONG_ID_LEN - n);
        for (size_t i = n + 100; i < LONG_ID_LEN - 1; i += 100)
            long_id[i] = '/'; /* segments of 99 valid bytes: only the length is wrong */
        long_id[LONG_ID_LEN] = '\0';
        *len = LONG_ID_LEN;
        return long_id;
    }
    if (c->id == NULL) {
        *len = strlen(good_id);
        return good_id;
    }
    *len = c->id_len > 0 ? c->id_len : strlen(c->id);
    return c->id;
}

/* The hostile peer: peer.pem / peer.key, and chain.pem with the intermediates it sends. */
static void make_peer(const struct hostile *c, const char *good_id)
{
    size_t id_len;
    const char *id = peer_id(c, good_id, &id_len);
    const char *issuer = "ca";
    long from = -HOUR, to = 2 * DAY;
    char *san, ext[512], *all;
    unsigned char tag = (c->flags & F_IN_DNS) ? 0x82 : 0x86;

    if (c->flags & F_FOREIGN) {
        make_ca("ca2", NULL, -DAY, 3 * DAY);
        issuer = "ca2";
    }
    if (c->flags & F_TWO_INTS) {
        make_ca("int2", "ca", -DAY, 3 * DAY);
        make_ca("int1", "int2", -DAY, 3 * DAY);
        issuer = "int1";
    } else if (c->flags & F_ONE_INT) {
        if (c->flags & F_INT_EXPIRED)
            make_ca("int1", "ca", -3 * DAY, -DAY);
        else
            make_ca("int1", "ca", -DAY, 3 * DAY);
        issuer = "int1";
    }
    if (c->flags & F_SELF_SIGNED)
        issuer = NULL;
    if (c->flags & F_EXPIRED) {
        from = -3 * DAY;
        to = -DAY;
    } else if (c->flags & F_NOT_YET) {
        from = DAY;
        to = 3 * DAY;
    }
    san = (c->flags & F_IN_CN) ? strdup("") : san_der_line(tag, id, id_len, c->id2);
    ck_assert_ptr_nonnull(san);
    snprintf(ext, sizeof(ext),
             "basicConstraints = critical, CA:%s\n"
             "keyUsage = critical, digitalSignature%s\n"
             "extendedKeyUsage = %s\n"
             "subjectKeyIdentifier = hash\n"
             "%s",
             (c->flags & F_CA_TRUE) ? "TRUE" : "FALSE",
             (c->flags & F_KEY_CERT_SIGN) ? ", keyCertSign" : "",
             c->eku != NULL ? c->eku : "serverAuth, clientAuth",
             issuer != NULL ? "authorityKeyIdentifier = keyid\n" : "");
    ck_assert(asprintf(&all, "%s%s", ext, san) > 0);
    make_cert("peer", (c->flags & F_IN_CN) ? id : "peer", issuer, from, to, all);
    free(all);
    free(san);
    if (c->flags & F_TWO_INTS) {
        char *a = it_read_file("int1.pem", NULL), *b = it_read_file("int2.pem", NULL);

        it_write_file("chain.pem", "%s%s", a, b);
        free(a);
        free(b);
    } else if (c->flags & F_ONE_INT) {
        char *a = it_read_file("int1.pem", NULL);

        it_write_file("chain.pem", "%s", a);
        free(a);
    }
}

/* The certificate must hold the hostile bytes exactly as meant (no quoting by the config
 * parser, no truncation at a NUL): look for the encoded name in its DER. */
static void check_peer_der(const struct hostile *c, const char *good_id)
{
    size_t id_len;
    const char *id = peer_id(c, good_id, &id_len);
    const char *argv[] = {"x509", "-in", "peer.pem", "-outform", "DER", "-out", "peer.der", NULL};
    unsigned char want[LONG_ID_LEN + 8];
    size_t der_len = 0, wlen;
    char *der;

    openssl_v(argv);
    der = it_read_file("peer.der", &der_len);
    ck_assert_ptr_nonnull(der);
    if (c->flags & F_IN_CN) {
        wlen = id_len;
        memcpy(want, id, id_len);
    } else {
        wlen = general_name((c->flags & F_IN_DNS) ? 0x82 : 0x86, id, id_len, want);
    }
    ck_assert_msg(memmem(der, der_len, want, wlen) != NULL, "%s: the certificate lacks the ID",
                  c->name);
    free(der);
}

static void make_pki(const struct hostile *c)
{
    bool in = c->side == IN;

    it_write_file("ca.cnf", "[ca]\n"
                            "default_ca = tg\n"
                            "[tg]\n"
                            "database = index.txt\n"
                            "new_certs_dir = .\n"
                            "rand_serial = yes\n"
                            "default_md = sha256\n"
                            "policy = pol\n"
                            "unique_subject = no\n"
                            "email_in_dn = no\n"
                            "[pol]\n"
                            "commonName = optional\n");
    it_write_file("index.txt", "%s", "");
    make_ca("ca", NULL, -DAY, 3 * DAY);
    /* the sidecar's own identity */
    make_leaf(in ? "web" : "api", "ca", in ? IT_WEB_ID : IT_API_ID);
    if (in && (c->flags & F_NO_CERT))
        return;
    make_peer(c, in ? IT_API_ID : IT_WEB_ID);
    check_peer_der(c, in ? IT_API_ID : IT_WEB_ID);
}

/* ---- sidecars and peers ------------------------------------------------------------- */

/* Sidecar NAME presenting self, with the case's chain depth and TLS version and cfg's
 * listeners. */
static void start_sidecar(const struct hostile *c, const char *name, const char *self,
                          struct it_cfg *cfg)
{
    char depth[64], file[64];

    snprintf(depth, sizeof(depth), "max_chain_depth: %d", (c->flags & F_DEPTH2) ? 2 : 4);
    snprintf(file, sizeof(file), "%s.yaml", name);
    cfg->admin = admin_port;
    cfg->workers = 1;
    cfg->id = self;
    cfg->id_more = depth;
    cfg->timeouts = "handshake: 3s, drain: 1s";
    it_cfg_write(file, cfg, "tls: {min_version: \"%s\"}\n", (c->flags & F_TLS12) ? "1.2" : "1.3");
    it_sidecar_start(name, file, admin_port, 0);
}

static void start_b(const struct hostile *c)
{
    start_sidecar(c, "b", "web",
                  &(struct it_cfg){.in = {{"web-in", in_port, echo_port, IT_API_ID},
                                          {"open-in", open_port, echo_port}}});
}

static void start_a(const struct hostile *c)
{
    start_sidecar(c, "a", "api",
                  &(struct it_cfg){.out = {{"api-out", out_port, srv_port, IT_WEB_ID}}});
}

static void add_args(struct it_argv *a, const struct hostile *c)
{
    for (size_t i = 0; i < TG_NELEM(c->args) && c->args[i] != NULL; i++)
        IT_ARGV_ADD(a, c->args[i]);
}

/* The intermediates the peer presents, if any. */
static const char *chain(const struct hostile *c)
{
    return (c->flags & (F_ONE_INT | F_TWO_INTS)) ? "chain.pem" : NULL;
}

/* s_client presents the peer certificate to B, sends PAYLOAD and keeps reading (-ign_eof).
 * Returns whether the echo came back; ck_asserts that a refused client was closed. */
static bool run_client(const struct hostile *c)
{
    struct it_argv a;
    struct it_proc *cli;
    bool echoed;

    it_openssl_argv(&a, "s_client", (c->flags & F_OPEN) ? open_port : in_port,
                    (c->flags & F_NO_CERT) ? NULL : "peer",
                    (c->flags & F_NO_CERT) ? NULL : chain(c));
    IT_ARGV_ADD(&a, "-CAfile", "ca.pem", "-ign_eof");
    add_args(&a, c);
    cli = it_spawn("s_client", a.v, IT_STDIN_PIPE);
    ck_assert(it_send_all(cli->stdin_fd, PAYLOAD, strlen(PAYLOAD)));
    if (c->reason == NULL) {
        echoed = it_wait_file_contains(cli->out_path, PAYLOAD, PEER_TIMEOUT_MS);
        it_stop(cli, 2000);
        return echoed;
    }
    ck_assert_msg(it_wait(cli, PEER_TIMEOUT_MS) >= 0,
                  "%s: s_client still connected after %d ms: the refused client was not closed",
                  c->name, PEER_TIMEOUT_MS);
    return it_file_contains(cli->out_path, PAYLOAD);
}

/* s_server presents the peer certificate as A's upstream; a plain client sends PAYLOAD to
 * A. Returns whether s_server's answer (the payload reversed) came back. */
static bool run_server(const struct hostile *c)
{
    char buf[128];
    struct it_argv a;
    struct it_proc *srv;
    size_t got;
    int fd, eof;

    it_openssl_argv(&a, "s_server", srv_port, "peer", chain(c));
    IT_ARGV_ADD(&a, "-alpn", "tollgate");
    if (c->reason == NULL)
        IT_ARGV_ADD(&a, "-rev"); /* answers each line reversed; otherwise it prints what it got */
    add_args(&a, c);
    /* stdin stays open: at its EOF s_server (without -rev) would end the session */
    srv = it_spawn("s_server", a.v, IT_STDIN_PIPE);
    ck_assert_msg(it_wait_file_contains(srv->out_path, "ACCEPT", 10000), "s_server did not start");
    start_a(c);

    fd = it_connect(out_port, PEER_TIMEOUT_MS);
    ck_assert_msg(fd >= 0, "connect to A: %s", strerror(-fd));
    it_send_all(fd, PAYLOAD, strlen(PAYLOAD)); /* may fail: A may have closed already */
    memset(buf, 0, sizeof(buf));
    got = it_recv_full(fd, buf, strlen(PAYLOAD_REV));
    if (c->reason == NULL) {
        close(fd);
        return got == strlen(PAYLOAD_REV) && memcmp(buf, PAYLOAD_REV, got) == 0;
    }
    eof = got > 0 ? 1 : it_recv_eof(fd);
    ck_assert_msg(got > 0 || eof == 0 || eof == -ECONNRESET,
                  "%s: the client of a refused upstream was not closed (%s)", c->name,
                  strerror(-eof));
    close(fd);
    return got > 0;
}

/* ---- checks ------------------------------------------------------------------------- */

static double reason_count(const char *listener, const char *reason)
{
    char labels[160];
    double v;

    snprintf(labels, sizeof(labels), "listener=\"%s\",reason=\"%s\"", listener, reason);
    v = it_stat(admin_port, "tollgate_handshakes_failed_total", labels);
    return v < 0 ? 0 : v;
}

/* The reasons counted for listener, "reason=N ...", for a failure message. */
static const char *failures(const char *listener, char *dst, size_t cap)
{
    static const char *const reasons[] = {"no_peer_cert",  "untrusted",   "expired",
                                          "not_yet_valid", "bad_cert",    "bad_spiffe_id",
                                          "trust_domain",  "not_allowed", "unexpected_server",
                                          "protocol",      "timeout",     "peer_closed",
                                          "peer_refused",  "other"};
    size_t n = 0;

    dst[0] = '\0';
    for (size_t i = 0; i < TG_NELEM(reasons) && n + 40 < cap; i++) {
        double v = reason_count(listener, reasons[i]);

        if (v > 0)
            n += (size_t)snprintf(dst + n, cap - n, "%s=%.0f ", reasons[i], v);
    }
    return n > 0 ? dst : "(none)";
}

static void expect_refused(const struct hostile *c, const char *listener, const char *logf)
{
    char l[64], line[IT_LINE_MAX], labels[96], why[96], why2[96], nonzero[512];
    double v, failed, ok;

    snprintf(labels, sizeof(labels), "listener=\"%s\"", listener);
    failed = it_wait_stat(admin_port, "tollgate_handshakes_failed_total", labels, 1, 5000);
    v = reason_count(listener, c->reason) + (c->alt ? reason_count(listener, c->alt) : 0);
    ok = it_stat(admin_port, "tollgate_handshakes_total", labels);
    ck_assert_msg(v == 1 && failed == 1,
                  "%s: want one failed handshake with reason %s%s%s; counted %.0f of it, %.0f in "
                  "all; nonzero: %s",
                  c->name, c->reason, c->alt ? " or " : "", c->alt ? c->alt : "", v, failed,
                  failures(listener, nonzero, sizeof(nonzero)));
    ck_assert_msg(ok <= 0, "%s: %.0f handshakes counted ok", c->name, ok);

    snprintf(l, sizeof(l), "\"listener\":\"%s\"", listener);
    ck_assert_msg(it_wait_lines(logf, 1, 5000, l, NULL) == 1, "%s: no access log line", c->name);
    it_last_line(logf, line, sizeof(line), l, NULL);
    snprintf(why, sizeof(why), "\"reason\":\"%s: ", c->reason);
    snprintf(why2, sizeof(why2), "\"reason\":\"%s: ", c->alt ? c->alt : c->reason);
    ck_assert_msg(strstr(line, why) != NULL || strstr(line, why2) != NULL,
                  "%s: want %s in the access log line: %s", c->name, why, line);
    ck_assert_msg(strstr(line, "\"outcome\":\"ok\"") == NULL, "%s: %s", c->name, line);
}

static void expect_served(const struct hostile *c, const char *listener)
{
    char labels[96];
    double ok, failed;

    snprintf(labels, sizeof(labels), "listener=\"%s\",result=\"ok\"", listener);
    ok = it_wait_stat(admin_port, "tollgate_handshakes_total", labels, 1, 5000);
    snprintf(labels, sizeof(labels), "listener=\"%s\"", listener);
    failed = it_stat(admin_port, "tollgate_handshakes_failed_total", labels);
    ck_assert_msg(ok == 1 && failed <= 0, "%s: %.0f ok and %.0f failed handshakes", c->name, ok,
                  failed);
}

/* ---- the test ----------------------------------------------------------------------- */

static size_t case_i;
static uint64_t case_t0;

static void setup(void)
{
    case_t0 = it_now_ms();
    it_setup();
    echo_port = 0;
    echo = it_echo_start("echo", &echo_port);
    IT_FREE_PORTS(&admin_port, &in_port, &open_port, &out_port, &srv_port);
}

static void teardown(void)
{
    fprintf(stderr, "hostile case %s: %llu ms\n", cases[case_i].name,
            (unsigned long long)(it_now_ms() - case_t0));
    it_teardown();
}

START_TEST(test_hostile_peer_refused_in_handshake)
{
    const struct hostile *c = &cases[_i];
    bool through;

    case_i = (size_t)_i;
    make_pki(c);
    if (c->side == IN) {
        start_b(c);
        through = run_client(c);
        if (c->reason == NULL) {
            ck_assert_msg(through, "%s: no echo for a good client", c->name);
            expect_served(c, "web-in");
            ck_assert_int_eq(it_echo_accepts(echo), 1);
            return;
        }
        ck_assert_msg(!through, "%s: the payload came back through the app", c->name);
        expect_refused(c, (c->flags & F_OPEN) ? "open-in" : "web-in", "b.out");
        ck_assert_msg(it_echo_accepts(echo) == 0, "%s: the app saw %d connections", c->name,
                      it_echo_accepts(echo));
        return;
    }
    through = run_server(c);
    if (c->reason == NULL) {
        ck_assert_msg(through, "%s: no answer from a good server", c->name);
        expect_served(c, "api-out");
        return;
    }
    ck_assert_msg(!through, "%s: the refused server's answer reached the client", c->name);
    expect_refused(c, "api-out", "a.out");
    ck_assert_msg(!it_file_contains("s_server.out", "must not reach"),
                  "%s: the payload reached the refused server", c->name);
}
END_TEST

/* ---- 0-RTT and post-handshake authentication ---------------------------------------- */

static char *sh(const char *cmd)
{
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    char *out = NULL;

    ck_assert_msg(it_run(argv, NULL, 20000, &out, NULL) >= 0, "did not end: %s", cmd);
    return out != NULL ? out : strdup("");
}

/* Inbound: a client that got a ticket from B comes back with 0-RTT data. B's tickets allow
 * no early data, and none reaches the app before the handshake. */
START_TEST(test_inbound_never_accepts_early_data)
{
    char cmd[1024], *out;

    case_i = 0;
    make_pki(&cases[0]);
    start_b(&cases[0]);
    it_write_file("early.txt", "EARLY-7f3a\n");
    snprintf(cmd, sizeof(cmd),
             "(echo first-7f3a; sleep 1) | '%s' s_client -connect 127.0.0.1:%d -CAfile ca.pem "
             "-cert peer.pem -key peer.key -sess_out sess.pem 2>&1",
             it_openssl(), in_port);
    out = sh(cmd);
    ck_assert_msg(strstr(out, "first-7f3a") != NULL, "the first connection was not served: %s",
                  out);
    free(out);
    snprintf(cmd, sizeof(cmd), "'%s' sess_id -in sess.pem -text -noout 2>&1", it_openssl());
    out = sh(cmd);
    ck_assert_msg(strstr(out, "Max Early Data: 0") != NULL,
                  "B's session ticket allows early data: %s", out);
    free(out);
    snprintf(cmd, sizeof(cmd),
             "(sleep 1) | '%s' s_client -connect 127.0.0.1:%d -CAfile ca.pem -cert peer.pem "
             "-key peer.key -sess_in sess.pem -early_data early.txt 2>&1",
             it_openssl(), in_port);
    out = sh(cmd);
    ck_assert_msg(strstr(out, "Early data was accepted") == NULL, "0-RTT accepted: %s", out);
    ck_assert_msg(strstr(out, "EARLY-7f3a") == NULL, "the early data came back: %s", out);
    free(out);
}
END_TEST

/* Outbound: A's ClientHello, seen by `openssl s_server -trace` that would take early data,
 * offers neither early data (also when resuming) nor post-handshake authentication. */
START_TEST(test_outbound_offers_no_early_data_and_no_post_handshake_auth)
{
    char addr[32], err[256];
    const char *argv[] = {it_openssl(), "s_server", "-accept",         addr,    "-cert",
                          "peer.pem",   "-key",     "peer.key",        "-alpn", "tollgate",
                          "-rev",       "-trace",   "-max_early_data", "16384", NULL};
    struct it_proc *srv;
    char *log;
    int hellos = 0;

    case_i = 3;
    make_pki(&cases[3]); /* control_out: a good web server */
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", srv_port);
    srv = it_spawn("s_server", argv, IT_STDIN_PIPE);
    ck_assert_msg(it_wait_file_contains(srv->out_path, "ACCEPT", 10000), "s_server did not start");
    start_a(&cases[3]);
    for (int i = 0; i < 2; i++) { /* the second one may resume: it must not add early data */
        int fd = it_connect(out_port, PEER_TIMEOUT_MS);

        ck_assert_msg(fd >= 0, "connect to A: %s", strerror(-fd));
        ck_assert(it_send_all(fd, "hello\n", 6));
        memset(err, 0, sizeof(err));
        ck_assert_msg(it_recv_full(fd, err, 6) == 6 && memcmp(err, "olleh\n", 6) == 0,
                      "round trip %d: got '%s'", i, err);
        close(fd);
    }
    ck_assert(it_wait_file_contains(srv->out_path, "ClientHello", 5000));
    log = it_read_file(srv->out_path, NULL);
    /* each ClientHello runs to the server's first record (its tickets do allow early data) */
    for (char *hello = log; (hello = strstr(hello, "ClientHello, Length")) != NULL; hellos++) {
        char *end = strstr(hello, "Sent Record");

        if (end != NULL)
            *end = '\0';
        ck_assert_msg(strstr(hello, "psk_key_exchange_modes") != NULL,
                      "no extensions traced: %.2000s", hello);
        ck_assert_msg(strstr(hello, "early_data") == NULL, "A offered early data: %.3000s", hello);
        ck_assert_msg(strstr(hello, "post_handshake_auth") == NULL,
                      "A offered post-handshake authentication: %.3000s", hello);
        hello = end != NULL ? end + 1 : hello + 1;
    }
    free(log);
    ck_assert_int_eq(hellos, 2);
}
END_TEST

Suite *tg_test_suite(void)
{
    /* the cases in two halves: ctest runs each TCase as a test of its own, side by side
     * (tests/CMakeLists.txt finds them by their names in these calls) */
    Suite *s = IT_TEST_SUITE("hostile", "early_data_pha", NULL, setup, teardown, 60,
                             test_inbound_never_accepts_early_data,
                             test_outbound_offers_no_early_data_and_no_post_handshake_auth);
    TCase *halves[] = {
        it_test_case_of(s, "hostile_first_half", setup, teardown, 60, NULL, 0),
        it_test_case_of(s, "hostile_second_half", setup, teardown, 60, NULL, 0),
    };
    int n = (int)TG_NELEM(cases);

    for (int h = 0; h < 2; h++)
        tcase_add_loop_test(halves[h], test_hostile_peer_refused_in_handshake, h * n / 2,
                            (h + 1) * n / 2);
    return s;
}
