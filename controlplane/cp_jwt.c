/* Kubernetes service-account tokens: keys and verification (cp_jwt.h). */
#include "cp_jwt.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/jws.h"

#define MAX_KEYS_FILE (1024 * 1024)
#define MAX_DER 4096 /* one public key: RSA 8192 bits fits in ~1.1 KiB */
#define MAX_SIG TG_JWS_SIG_MAX
#define MAX_PART 6144 /* decoded header or payload: 3/4 of TG_CP_JWT_MAX */
#define KID_MAX 128
#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
#define B64URL "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
#define B64STD "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

struct key {
    char kid[KID_MAX + 1]; /* "" when unknown */
    struct tg_jws_key *jws;
};

struct tg_cp_jwt_keys {
    size_t n;
    struct key *v[TG_CP_JWT_MAX_KEYS];
};

/* ---- base64 ---- */

static int b64_value(const char *alphabet, char ch)
{
    const char *p = ch != '\0' ? strchr(alphabet, ch) : NULL;

    return p != NULL ? (int)(p - alphabet) : -1;
}

/* Decodes n characters of base64 into out (cap bytes). url: the URL alphabet, no padding,
 * nothing else allowed (JWS, RFC 7515 section 2); else the standard alphabet with '='
 * padding at the end and white space anywhere (PEM). The unused low bits of the last
 * character must be zero, so every value has one spelling. Returns the length or -1. */
static long b64_decode(const char *in, size_t n, bool url, unsigned char *out, size_t cap)
{
    const char *alphabet = url ? B64URL : B64STD;
    unsigned long acc = 0;
    size_t o = 0, chars = 0, pad = 0;
    int bits = 0;

    for (size_t i = 0; i < n; i++) {
        char ch = in[i];
        int v;

        if (!url && (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n'))
            continue;
        if (!url && ch == '=') {
            pad++;
            continue;
        }
        if (pad > 0 || (v = b64_value(alphabet, ch)) < 0)
            return -1;
        chars++;
        acc = (acc << 6) | (unsigned long)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o == cap)
                return -1;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (chars % 4 == 1 || (acc & ((1ul << bits) - 1)) != 0)
        return -1;
    if (!url && (pad > 2 || (pad > 0 && (chars + pad) % 4 != 0)))
        return -1;
    return (long)o;
}

static void b64url_encode(const unsigned char *in, size_t n, char *out)
{
    unsigned long acc = 0;
    int bits = 0;

    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            *out++ = B64URL[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        *out++ = B64URL[(acc << (6 - bits)) & 63];
    *out = '\0';
}

/* ---- keys ---- */

/* strspn for n bytes. */
static size_t span(const char *s, size_t n, const char *set)
{
    size_t i = 0;

    while (i < n && s[i] != '\0' && strchr(set, s[i]) != NULL)
        i++;
    return i;
}

static void key_free(struct key *k)
{
    if (k == NULL)
        return;
    tg_jws_key_free(k->jws);
    free(k);
}

void tg_cp_jwt_keys_free(struct tg_cp_jwt_keys *k)
{
    if (k == NULL)
        return;
    for (size_t i = 0; i < k->n; i++)
        key_free(k->v[i]);
    free(k);
}

size_t tg_cp_jwt_keys_count(const struct tg_cp_jwt_keys *k)
{
    return k != NULL ? k->n : 0;
}

/* Adds k, made by rc (a tg_jws_key_from_* result), to ks; frees it on failure. The key
 * file is the operator's configuration: a key that is not fit is TG_ECONFIG. */
static int add_key(struct tg_cp_jwt_keys *ks, struct key *k, int rc, const char *what, char *err)
{
    if (rc == 0 && ks->n == TG_CP_JWT_MAX_KEYS)
        rc = tg_err_set(err, TG_ECONFIG, "%s: more than %d keys", what, TG_CP_JWT_MAX_KEYS);
    if (rc < 0) {
        key_free(k);
        return rc == TG_ENOMEM ? rc : TG_ECONFIG;
    }
    ks->v[ks->n++] = k;
    return 0;
}

/* A DER public key (SubjectPublicKeyInfo, RSA or EC; or PKCS#1 RSAPublicKey) into ks. */
static int add_der_key(struct tg_cp_jwt_keys *ks, const unsigned char *der, size_t len, bool spki,
                       const char *what, char *err)
{
    struct key *k = calloc(1, sizeof(*k));
    unsigned char sha[TG_SHA256_LEN];

    if (k == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    /* Kubernetes' key ID: base64url(SHA-256(SubjectPublicKeyInfo DER)) */
    if (spki && tg_sha256(der, len, sha) == 0)
        b64url_encode(sha, sizeof(sha), k->kid);
    return add_key(ks, k, tg_jws_key_from_der(der, len, spki, &k->jws, what, err), what, err);
}

static int parse_pem(struct tg_cp_jwt_keys *ks, const char *text, size_t len, const char *name,
                     char *err)
{
    static const char begin[] = "-----BEGIN ", dashes[] = "-----";
    unsigned char *der = malloc(MAX_DER);
    const char *p = text, *end = text + len;
    int rc = 0;

    if (der == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    while (rc == 0 && (p = memmem(p, (size_t)(end - p), begin, sizeof(begin) - 1)) != NULL) {
        const char *label = p + sizeof(begin) - 1, *label_end, *body, *stop;
        char what[TG_ERRLEN], endline[96];
        size_t label_len;
        long n;

        label_end = memmem(label, (size_t)(end - label), dashes, sizeof(dashes) - 1);
        if (label_end == NULL || (label_len = (size_t)(label_end - label)) > 64 ||
            span(label, label_len, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ") != label_len) {
            rc = tg_err_set(err, TG_ECONFIG, "%s: a PEM header line that does not end", name);
            break;
        }
        snprintf(what, sizeof(what), "%s: key %zu (%.*s)", name, ks->n + 1, (int)label_len, label);
        body = label_end + sizeof(dashes) - 1;
        snprintf(endline, sizeof(endline), "-----END %.*s-----", (int)label_len, label);
        stop = memmem(body, (size_t)(end - body), endline, strlen(endline));
        if (stop == NULL) {
            rc = tg_err_set(err, TG_ECONFIG, "%s: no %s", what, endline);
            break;
        }
        p = stop + strlen(endline);
        if (label_len == 10 && memcmp(label, "PUBLIC KEY", 10) == 0) {
            n = b64_decode(body, (size_t)(stop - body), false, der, MAX_DER);
            rc = n <= 0 ? tg_err_set(err, TG_ECONFIG, "%s: bad base64", what)
                        : add_der_key(ks, der, (size_t)n, true, what, err);
        } else if (label_len == 14 && memcmp(label, "RSA PUBLIC KEY", 14) == 0) {
            n = b64_decode(body, (size_t)(stop - body), false, der, MAX_DER);
            rc = n <= 0 ? tg_err_set(err, TG_ECONFIG, "%s: bad base64", what)
                        : add_der_key(ks, der, (size_t)n, false, what, err);
        } else {
            rc = tg_err_set(err, TG_ECONFIG,
                            "%s: only public keys belong here (\"PUBLIC KEY\" or \"RSA PUBLIC "
                            "KEY\"), not %.*s",
                            name, (int)label_len, label);
        }
    }
    free(der);
    return rc;
}

/* A base64url member of a JWK, decoded into out (cap bytes); its length or -1. */
static long jwk_b64(json_t *jwk, const char *member, unsigned char *out, size_t cap)
{
    const char *s = json_string_value(json_object_get(jwk, member));

    return s != NULL ? b64_decode(s, strlen(s), true, out, cap) : -1;
}

static int parse_jwk(struct tg_cp_jwt_keys *ks, json_t *jwk, const char *what, char *err)
{
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    const char *kid = json_string_value(json_object_get(jwk, "kid"));
    const char *use = json_string_value(json_object_get(jwk, "use"));
    unsigned char a[MAX_SIG], b[MAX_SIG];
    struct key *k;
    long an, bn;
    int rc;

    if (!json_is_object(jwk) || kty == NULL)
        return tg_err_set(err, TG_ECONFIG, "%s: not a JWK (no \"kty\")", what);
    if (use != NULL && strcmp(use, "sig") != 0)
        return tg_err_set(err, TG_ECONFIG, "%s: \"use\" is %.16s, want sig", what, use);
    if (kid != NULL && strlen(kid) > KID_MAX)
        return tg_err_set(err, TG_ECONFIG, "%s: \"kid\" longer than %d", what, KID_MAX);
    if ((k = calloc(1, sizeof(*k))) == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    snprintf(k->kid, sizeof(k->kid), "%s", kid != NULL ? kid : "");
    if (strcmp(kty, "RSA") == 0) {
        an = jwk_b64(jwk, "n", a, sizeof(a));
        bn = jwk_b64(jwk, "e", b, 8);
        if (an <= 0 || bn <= 0) {
            free(k);
            return tg_err_set(err, TG_ECONFIG, "%s: RSA \"n\" and \"e\" must be base64url", what);
        }
        rc = tg_jws_key_from_rsa(a, (size_t)an, b, (size_t)bn, &k->jws, what, err);
    } else if (strcmp(kty, "EC") == 0) {
        const char *crv = json_string_value(json_object_get(jwk, "crv"));

        if (crv == NULL || strcmp(crv, "P-256") != 0) {
            free(k);
            return tg_err_set(err, TG_ECONFIG, "%s: EC keys on P-256 only (\"crv\")", what);
        }
        an = jwk_b64(jwk, "x", a, TG_JWS_P256_COORD);
        bn = jwk_b64(jwk, "y", b, TG_JWS_P256_COORD);
        if (an != TG_JWS_P256_COORD || bn != TG_JWS_P256_COORD) {
            free(k);
            return tg_err_set(err, TG_ECONFIG, "%s: \"x\" and \"y\" must be 32 bytes base64url",
                              what);
        }
        rc = tg_jws_key_from_p256(a, b, &k->jws, what, err);
    } else {
        free(k);
        return tg_err_set(err, TG_ECONFIG, "%s: \"kty\" %.16s (want RSA or EC)", what, kty);
    }
    return add_key(ks, k, rc, what, err);
}

static int parse_jwks(struct tg_cp_jwt_keys *ks, const char *text, size_t len, const char *name,
                      char *err)
{
    json_error_t je;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    json_t *keys = json_object_get(doc, "keys");
    int rc = 0;

    if (doc == NULL)
        return tg_err_set(err, TG_ECONFIG, "%s:%d: JSON: %s", name, je.line, je.text);
    if (!json_is_array(keys)) {
        json_decref(doc);
        return tg_err_set(err, TG_ECONFIG, "%s: a JWK Set wants a \"keys\" list", name);
    }
    for (size_t i = 0; rc == 0 && i < json_array_size(keys); i++) {
        char what[TG_ERRLEN];

        snprintf(what, sizeof(what), "%s: keys[%zu]", name, i);
        rc = parse_jwk(ks, json_array_get(keys, i), what, err);
    }
    json_decref(doc);
    return rc;
}

int tg_cp_jwt_keys_parse(const char *text, size_t len, const char *name,
                         struct tg_cp_jwt_keys **out, char *err)
{
    struct tg_cp_jwt_keys *ks;
    size_t i = 0;
    int rc;

    if (len > MAX_KEYS_FILE)
        return tg_err_set(err, TG_ECONFIG, "%s: larger than 1 MiB", name);
    if (memchr(text, '\0', len) != NULL)
        return tg_err_set(err, TG_ECONFIG, "%s: NUL byte: not PEM or JSON", name);
    if ((ks = calloc(1, sizeof(*ks))) == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    while (i < len && strchr(" \t\r\n", text[i]) != NULL)
        i++;
    rc = i < len && text[i] == '{' ? parse_jwks(ks, text, len, name, err)
                                   : parse_pem(ks, text, len, name, err);
    if (rc == 0 && ks->n == 0)
        rc = tg_err_set(err, TG_ECONFIG,
                        "%s: no public key (want PEM \"PUBLIC KEY\" blocks or a JWK Set)", name);
    if (rc < 0) {
        tg_cp_jwt_keys_free(ks);
        return rc;
    }
    *out = ks;
    return 0;
}

/* ---- verification ---- */

static bool name_ok(const char *s)
{
    size_t n = strlen(s);

    return n > 0 && n <= TG_CP_JWT_NAME_MAX && strspn(s, NAME_CHARS) == n && strcmp(s, ".") != 0 &&
           strcmp(s, "..") != 0;
}

/* A JSON object from a base64url part into *out; 0, or TG_EPEER / TG_ENOMEM with err. */
static int decode_part(const char *part, size_t n, const char *what, json_t **out, char *err)
{
    unsigned char *buf = malloc(MAX_PART);
    json_error_t je;
    json_t *j = NULL;
    long len;
    int rc = TG_EPEER;

    if (buf == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    len = b64_decode(part, n, true, buf, MAX_PART);
    if (len <= 0)
        tg_err_set(err, rc, "the %s is not base64url", what);
    else if ((j = json_loadb((const char *)buf, (size_t)len, JSON_REJECT_DUPLICATES, &je)) == NULL)
        tg_err_set(err, rc, "the %s is not JSON: %s", what, je.text);
    else if (!json_is_object(j))
        tg_err_set(err, rc, "the %s is not a JSON object", what);
    else
        rc = 0;
    free(buf);
    if (rc < 0)
        json_decref(j);
    else
        *out = j;
    return rc;
}

static int check_header(json_t *h, bool *es256, const char **kid, char *err)
{
    const char *alg = json_string_value(json_object_get(h, "alg"));

    if (alg == NULL)
        return tg_err_set(err, TG_EPEER, "the header has no \"alg\"");
    if (strcmp(alg, "none") == 0)
        return tg_err_set(err, TG_EPEER, "alg none: an unsigned token");
    if (strncmp(alg, "HS", 2) == 0)
        return tg_err_set(err, TG_EPEER,
                          "alg %.16s: an HMAC token; only RS256 and ES256 (public keys)", alg);
    if (strcmp(alg, "RS256") != 0 && strcmp(alg, "ES256") != 0)
        return tg_err_set(err, TG_EPEER, "alg %.16s: only RS256 and ES256", alg);
    if (json_object_get(h, "crit") != NULL)
        return tg_err_set(err, TG_EPEER, "the header has \"crit\" extensions");
    *es256 = alg[0] == 'E';
    *kid = json_string_value(json_object_get(h, "kid"));
    return 0;
}

static int check_signature(const struct tg_cp_jwt_keys *ks, bool es256, const char *kid,
                           const char *token, size_t signed_len, const char *sig_b64, char *err)
{
    enum tg_jws_alg want = es256 ? TG_JWS_ES256 : TG_JWS_RS256;
    unsigned char sig[MAX_SIG];
    bool kid_known = false;
    size_t tried = 0;
    long sig_len = b64_decode(sig_b64, strlen(sig_b64), true, sig, sizeof(sig));

    if (sig_len <= 0)
        return tg_err_set(err, TG_EPEER, "the signature is empty or not base64url");
    for (size_t i = 0; kid != NULL && i < ks->n; i++)
        kid_known |= strcmp(ks->v[i]->kid, kid) == 0;
    for (size_t i = 0; i < ks->n; i++) {
        const struct key *k = ks->v[i];

        if (tg_jws_key_alg(k->jws) != want || (kid_known && strcmp(k->kid, kid) != 0))
            continue;
        tried++;
        if (tg_jws_verify(k->jws, want, (const unsigned char *)token, signed_len, sig,
                          (size_t)sig_len) == 0)
            return 0;
    }
    if (tried == 0)
        return tg_err_set(err, TG_EPEER, "%s token, and no %s key to verify it with",
                          es256 ? "an ES256" : "an RS256", es256 ? "EC P-256" : "RSA");
    return tg_err_set(err, TG_EPEER, "the %s signature does not verify with %s%s%s%zu key%s",
                      es256 ? "ES256" : "RS256", kid_known ? "the key of kid " : "",
                      kid_known ? kid : "", kid_known ? " (" : "any of the ", tried,
                      kid_known ? ")" : (tried == 1 ? "" : "s"));
}

/* A NumericDate claim: *out, or *present false; -1 when it is not an integer. */
static int get_time(json_t *claims, const char *name, bool *present, int64_t *out)
{
    json_t *v = json_object_get(claims, name);

    *present = v != NULL;
    if (v == NULL)
        return 0;
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_real(v) && json_real_value(v) > -1e15 && json_real_value(v) < 1e15) {
        *out = (int64_t)json_real_value(v);
        return 0;
    }
    return -1;
}

static int check_times(json_t *c, int64_t now, char *err)
{
    int64_t exp = 0, nbf = 0, iat = 0;
    bool has_exp, has_nbf, has_iat;

    if (get_time(c, "exp", &has_exp, &exp) < 0 || get_time(c, "nbf", &has_nbf, &nbf) < 0 ||
        get_time(c, "iat", &has_iat, &iat) < 0)
        return tg_err_set(err, TG_EPEER, "exp, nbf and iat must be numbers of seconds");
    if (!has_exp)
        return tg_err_set(err, TG_EPEER,
                          "no \"exp\": a token that never expires (a legacy "
                          "service-account token? use a projected one)");
    if (now >= exp + TG_CP_JWT_LEEWAY_S)
        return tg_err_set(err, TG_EPEER, "expired %lld s ago (exp %lld)", (long long)(now - exp),
                          (long long)exp);
    if (has_nbf && nbf > now + TG_CP_JWT_LEEWAY_S)
        return tg_err_set(err, TG_EPEER, "not valid for another %lld s (nbf %lld)",
                          (long long)(nbf - now), (long long)nbf);
    if (has_iat && iat > now + TG_CP_JWT_LEEWAY_S)
        return tg_err_set(err, TG_EPEER, "issued %lld s in the future (iat %lld)",
                          (long long)(iat - now), (long long)iat);
    return 0;
}

static int check_audience(const struct tg_cp_jwt_rules *r, json_t *aud, char *err)
{
    size_t n = json_is_array(aud) ? json_array_size(aud) : 1;

    if (aud == NULL)
        return tg_err_set(err, TG_EPEER, "no \"aud\" (want one of %s%s)", r->audiences->v[0],
                          r->audiences->n > 1 ? ", ..." : "");
    for (size_t i = 0; i < n; i++) {
        const char *a = json_string_value(json_is_array(aud) ? json_array_get(aud, i) : aud);

        for (size_t j = 0; a != NULL && j < r->audiences->n; j++)
            if (strcmp(a, r->audiences->v[j]) == 0)
                return 0;
    }
    return tg_err_set(err, TG_EPEER, "\"aud\" names none of our audiences (%s%s)",
                      r->audiences->v[0], r->audiences->n > 1 ? ", ..." : "");
}

static int check_claims(const struct tg_cp_jwt_rules *r, json_t *c, char *ns, char *sa, char *err)
{
    json_t *k8s = json_object_get(c, "kubernetes.io");
    const char *iss = json_string_value(json_object_get(c, "iss"));
    const char *sub = json_string_value(json_object_get(c, "sub"));
    const char *n = json_string_value(json_object_get(k8s, "namespace"));
    const char *s =
        json_string_value(json_object_get(json_object_get(k8s, "serviceaccount"), "name"));
    char want_sub[2 * TG_CP_JWT_NAME_MAX + 32];
    int rc;

    if (iss == NULL)
        return tg_err_set(err, TG_EPEER, "no \"iss\"");
    if (strcmp(iss, r->issuer) != 0)
        return tg_err_set(err, TG_EPEER, "issuer \"%.100s\" is not \"%.100s\"", iss, r->issuer);
    if ((rc = check_audience(r, json_object_get(c, "aud"), err)) < 0 ||
        (rc = check_times(c, r->now, err)) < 0)
        return rc;
    if (!json_is_object(k8s) || n == NULL || s == NULL)
        return tg_err_set(err, TG_EPEER, "no \"kubernetes.io\" namespace and serviceaccount.name");
    if (!name_ok(n) || !name_ok(s))
        return tg_err_set(err, TG_EPEER,
                          "namespace and service account must be 1 to %d characters of "
                          "[A-Za-z0-9._-]",
                          TG_CP_JWT_NAME_MAX);
    snprintf(want_sub, sizeof(want_sub), "system:serviceaccount:%s:%s", n, s);
    if (sub == NULL)
        return tg_err_set(err, TG_EPEER, "\"sub\" missing is not %s", want_sub);
    if (strcmp(sub, want_sub) != 0) /* quoted in the format, so escaped (err.h) */
        return tg_err_set(err, TG_EPEER, "\"sub\" \"%.150s\" is not %s", sub, want_sub);
    snprintf(ns, TG_CP_JWT_NAME_MAX + 1, "%s", n);
    snprintf(sa, TG_CP_JWT_NAME_MAX + 1, "%s", s);
    return 0;
}

int tg_cp_jwt_verify(const struct tg_cp_jwt_rules *r, const char *token, char *ns, char *sa,
                     char *err)
{
    size_t len = strnlen(token, TG_CP_JWT_MAX + 1);
    const char *dot1, *dot2;
    json_t *header = NULL, *claims = NULL;
    const char *kid = NULL;
    bool es256 = false;
    int rc;

    if (len > TG_CP_JWT_MAX)
        return tg_err_set(err, TG_EPEER, "a token of more than %d bytes", TG_CP_JWT_MAX);
    if (strspn(token, B64URL ".") != len || (dot1 = strchr(token, '.')) == NULL ||
        (dot2 = strchr(dot1 + 1, '.')) == NULL || strchr(dot2 + 1, '.') != NULL)
        return tg_err_set(err, TG_EPEER, "not a JWT (want three base64url parts joined by dots)");
    if (dot1 == token || dot2 == dot1 + 1) /* an empty signature: see check_header first */
        return tg_err_set(err, TG_EPEER, "a JWT with an empty header or payload");
    if ((rc = decode_part(token, (size_t)(dot1 - token), "header", &header, err)) < 0)
        return rc;
    rc = check_header(header, &es256, &kid, err);
    if (rc == 0)
        rc = check_signature(r->keys, es256, kid, token, (size_t)(dot2 - token), dot2 + 1, err);
    if (rc == 0)
        rc = decode_part(dot1 + 1, (size_t)(dot2 - dot1 - 1), "payload", &claims, err);
    if (rc == 0)
        rc = check_claims(r, claims, ns, sa, err);
    json_decref(claims);
    json_decref(header);
    return rc;
}

int tg_cp_jwt_peek_exp(const char *token, int64_t *exp)
{
    const char *dot1 = strchr(token, '.'), *dot2 = dot1 != NULL ? strchr(dot1 + 1, '.') : NULL;
    json_t *claims = NULL;
    char err[TG_ERRLEN];
    const json_t *e;
    int rc = -1;

    if (dot2 == NULL || strnlen(token, TG_CP_JWT_MAX + 1) > TG_CP_JWT_MAX ||
        decode_part(dot1 + 1, (size_t)(dot2 - dot1 - 1), "payload", &claims, err) < 0)
        return -1;
    if (json_is_integer(e = json_object_get(claims, "exp"))) {
        *exp = (int64_t)json_integer_value(e);
        rc = 0;
    }
    json_decref(claims);
    return rc;
}

bool tg_cp_jwt_name_ok(const char *s)
{
    return name_ok(s);
}
