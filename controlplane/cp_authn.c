/* Tokens file and the identity decision (cp_authn.h). */
#include "cp_authn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/file.h"
#include "tollgate/policy.h"

#define MAX_TOKENS_FILE TG_FILE_MAX
#define TOKEN_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~+/=-"
#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"

void tg_cp_tokens_cleanup(struct tg_cp_tokens *t)
{
    for (size_t i = 0; i < t->n; i++) {
        if (t->v[i].token != NULL)
            explicit_bzero(t->v[i].token, strlen(t->v[i].token));
        free(t->v[i].token);
        free(t->v[i].ns);
        free(t->v[i].sa);
    }
    free(t->v);
    t->v = NULL;
    t->n = 0;
}

/* strspn for n bytes that need not be NUL-terminated. */
static size_t span(const char *s, size_t n, const char *set)
{
    size_t i = 0;

    while (i < n && s[i] != '\0' && strchr(set, s[i]) != NULL)
        i++;
    return i;
}

static bool name_ok(const char *s, size_t n)
{
    return n > 0 && n <= TG_CP_NAME_MAX && span(s, n, NAME_CHARS) == n &&
           !(n == 1 && s[0] == '.') && !(n == 2 && s[0] == '.' && s[1] == '.');
}

/* Splits a line into at most 4 blank-separated words (the 4th means "too many"). */
static size_t words(const char *line, size_t len, const char *w[4], size_t wl[4])
{
    size_t n = 0, i = 0;

    while (i < len && n < 4) {
        while (i < len && (line[i] == ' ' || line[i] == '\t'))
            i++;
        if (i == len)
            break;
        w[n] = line + i;
        while (i < len && line[i] != ' ' && line[i] != '\t')
            i++;
        wl[n] = (size_t)(line + i - w[n]);
        n++;
    }
    return n;
}

static int add_token(struct tg_cp_tokens *t, const char *w[3], const size_t wl[3])
{
    struct tg_cp_token *grown = realloc(t->v, (t->n + 1) * sizeof(*t->v));
    struct tg_cp_token *e;

    if (grown == NULL)
        return TG_ENOMEM;
    t->v = grown;
    e = &t->v[t->n];
    e->token = strndup(w[0], wl[0]);
    e->ns = strndup(w[1], wl[1]);
    e->sa = strndup(w[2], wl[2]);
    t->n++; /* so cleanup frees a half-made entry */
    return e->token == NULL || e->ns == NULL || e->sa == NULL ? TG_ENOMEM : 0;
}

int tg_cp_tokens_parse(const char *text, size_t len, const char *name, struct tg_cp_tokens *out,
                       char *err)
{
    struct tg_cp_tokens t = {0};
    size_t pos = 0;
    unsigned line_no = 0;
    int rc = TG_ECONFIG;

    while (pos < len) {
        const char *line = text + pos, *nl = memchr(line, '\n', len - pos);
        size_t line_len = nl != NULL ? (size_t)(nl - line) : len - pos;
        const char *w[4];
        size_t wl[4], n;

        pos += line_len + (nl != NULL);
        line_no++;
        if (line_len > 0 && line[line_len - 1] == '\r')
            line_len--;
        if (memchr(line, '\0', line_len) != NULL) {
            tg_err_set(err, rc, "%s:%u: NUL byte", name, line_no);
            goto fail;
        }
        n = words(line, line_len, w, wl);
        if (n == 0 || w[0][0] == '#')
            continue;
        if (n != 3) {
            tg_err_set(err, rc, "%s:%u: want TOKEN NAMESPACE SERVICE_ACCOUNT", name, line_no);
            goto fail;
        }
        if (wl[0] < TG_CP_TOKEN_MIN || wl[0] > TG_CP_TOKEN_MAX ||
            span(w[0], wl[0], TOKEN_CHARS) < wl[0]) {
            tg_err_set(err, rc, "%s:%u: a token is %d to %d characters of [A-Za-z0-9._~+/=-]", name,
                       line_no, TG_CP_TOKEN_MIN, TG_CP_TOKEN_MAX);
            goto fail;
        }
        if (!name_ok(w[1], wl[1]) || !name_ok(w[2], wl[2])) {
            tg_err_set(err, rc,
                       "%s:%u: namespace and service account are 1 to %d characters of "
                       "[A-Za-z0-9._-], not \".\" or \"..\"",
                       name, line_no, TG_CP_NAME_MAX);
            goto fail;
        }
        for (size_t i = 0; i < t.n; i++) {
            if (strlen(t.v[i].token) == wl[0] && memcmp(t.v[i].token, w[0], wl[0]) == 0) {
                tg_err_set(err, rc, "%s:%u: token given twice", name, line_no);
                goto fail;
            }
        }
        if ((rc = add_token(&t, w, wl)) < 0) {
            tg_err_set(err, rc, "out of memory");
            goto fail;
        }
        rc = TG_ECONFIG;
    }
    *out = t;
    return 0;
fail:
    tg_cp_tokens_cleanup(&t);
    return rc;
}

int tg_cp_tokens_load(const char *path, struct tg_cp_tokens *out, char *err)
{
    char *text = NULL;
    size_t n = 0;
    int rc;

    if ((rc = tg_file_read(NULL, path, MAX_TOKENS_FILE, TG_FILE_SECRET, &text, &n, err)) < 0)
        return rc;
    rc = tg_cp_tokens_parse(text, n, path, out, err);
    tg_wipe_free(text, n);
    return rc;
}

/* Compares every token in full, whatever matches, so timing tells nothing about them. */
static const struct tg_cp_token *find_token(const struct tg_cp_tokens *t, const char *token)
{
    const struct tg_cp_token *found = NULL;
    size_t len = strlen(token);

    for (size_t i = 0; t != NULL && i < t->n; i++) {
        const char *cand = t->v[i].token;
        size_t cl = strlen(cand);
        unsigned char diff = (unsigned char)(cl != len);

        for (size_t j = 0; j < len && j < TG_CP_TOKEN_MAX + 1; j++)
            diff |= (unsigned char)(token[j] ^ cand[j < cl ? j : 0]);
        if (diff == 0 && found == NULL)
            found = &t->v[i];
    }
    return found;
}

/* Two dots and the start of a base64url JSON object ("{" is "ey"): a JWT, not a token of
 * the tokens file that failed to match. */
bool tg_cp_authn_jwt_shaped(const char *token)
{
    const char *dot = strchr(token, '.');

    return strncmp(token, "ey", 2) == 0 && dot != NULL && strchr(dot + 1, '.') != NULL;
}

static bool listed(const struct tg_strlist *l, const char *s)
{
    for (size_t i = 0; l != NULL && i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return true;
    return false;
}

/* Splits the path of a workload ID, /ns/<ns>/sa/<sa>, exactly. */
static int split_workload(const struct tg_spiffe_id *id, struct tg_cp_who *out)
{
    const char *p = id->id + id->path_off, *sa;
    size_t ns_len, sa_len;

    if (strncmp(p, "/ns/", 4) != 0)
        return -1;
    p += 4;
    ns_len = strcspn(p, "/");
    if (strncmp(p + ns_len, "/sa/", 4) != 0)
        return -1;
    sa = p + ns_len + 4;
    sa_len = strlen(sa);
    if (!name_ok(p, ns_len) || !name_ok(sa, sa_len) || memchr(sa, '/', sa_len) != NULL)
        return -1;
    memcpy(out->ns, p, ns_len);
    out->ns[ns_len] = '\0';
    memcpy(out->sa, sa, sa_len + 1);
    return 0;
}

static int check_claims(const struct tg_cp_authn_in *in, const struct tg_cp_who *who, char *err)
{
    if (in->claim_ns != NULL && in->claim_ns[0] != '\0' && strcmp(in->claim_ns, who->ns) != 0)
        return tg_err_set(err, TG_EPEER, "Hello claims namespace %.*s but %s is of namespace %s",
                          TG_CP_NAME_MAX, in->claim_ns,
                          who->by_cert ? "the certificate" : "the token", who->ns);
    if (in->claim_sa != NULL && in->claim_sa[0] != '\0' && strcmp(in->claim_sa, who->sa) != 0)
        return tg_err_set(
            err, TG_EPEER, "Hello claims service account %.*s but %s is of service account %s",
            TG_CP_NAME_MAX, in->claim_sa, who->by_cert ? "the certificate" : "the token", who->sa);
    return 0;
}

int tg_cp_authn_decide(const struct tg_cp_authn_in *in, struct tg_cp_who *out, char *err)
{
    struct tg_cp_who who;
    struct tg_spiffe_id id;
    char why[TG_ERRLEN];

    memset(&who, 0, sizeof(who));
    if (in->peer_id != NULL) {
        char serial[TG_POLICY_SERIAL_MAX + 1] = "", sha[TG_POLICY_SHA256_HEX + 1] = "";

        if (tg_spiffe_parse(in->peer_id, &id, why) < 0)
            return tg_err_set(err, TG_EPEER, "client certificate: %s", why);
        if (!tg_spiffe_in_domain(&id, in->trust_domain))
            return tg_err_set(err, TG_EPEER, "client certificate %s is not of trust domain %s",
                              id.id, in->trust_domain);
        if (split_workload(&id, &who) < 0)
            return tg_err_set(err, TG_EPEER,
                              "client certificate %s is not of the form "
                              "spiffe://%s/ns/<namespace>/sa/<service account>",
                              id.id, in->trust_domain);
        if (in->peer_serial != NULL && in->peer_serial[0] != '\0' &&
            tg_policy_serial_norm(in->peer_serial, serial, why) == 0 &&
            listed(in->revoked_serials, serial))
            return tg_err_set(err, TG_EPEER, "client certificate %s (serial %s) is revoked", id.id,
                              serial);
        if (in->peer_sha256 != NULL && in->peer_sha256[0] != '\0' &&
            tg_policy_fingerprint_norm(in->peer_sha256, sha, why) == 0 &&
            listed(in->revoked_fingerprints, sha))
            return tg_err_set(err, TG_EPEER, "client certificate %s (fingerprint %s) is revoked",
                              id.id, sha);
        who.by_cert = true;
    } else {
        const struct tg_cp_token *t;

        if (in->token == NULL || in->token[0] == '\0')
            return tg_err_set(err, TG_EPEER,
                              "no client certificate and no bootstrap token: who is asking?");
        t = find_token(in->tokens, in->token);
        if (t != NULL) {
            snprintf(who.ns, sizeof(who.ns), "%s", t->ns);
            snprintf(who.sa, sizeof(who.sa), "%s", t->sa);
        } else if (!tg_cp_authn_jwt_shaped(in->token)) {
            return tg_err_set(err, TG_EPEER, "bootstrap token not recognised");
        } else if (in->review != NULL) {
            if (!in->review->ok)
                return tg_err_set(err, TG_EPEER, "%s", in->review->why);
            snprintf(who.ns, sizeof(who.ns), "%s", in->review->ns);
            snprintf(who.sa, sizeof(who.sa), "%s", in->review->sa);
            snprintf(who.pod, sizeof(who.pod), "%s", in->review->pod);
            who.by_jwt = true;
        } else if (in->jwt == NULL) {
            return tg_err_set(err, TG_EPEER,
                              "a service-account token (JWT), but this control plane has no "
                              "kubernetes section to verify one");
        } else {
            int rc = tg_cp_jwt_verify(in->jwt, in->token, who.ns, who.sa, why);

            if (rc < 0)
                return tg_err_set(err, rc, "service-account token refused: %s", why);
            who.by_jwt = true;
        }
    }
    if (check_claims(in, &who, err) < 0)
        return TG_EPEER;
    if ((size_t)snprintf(who.id, sizeof(who.id), "spiffe://%s/ns/%s/sa/%s", in->trust_domain,
                         who.ns, who.sa) >= sizeof(who.id) ||
        tg_spiffe_parse(who.id, &id, why) < 0)
        return tg_err_set(err, TG_EPEER, "spiffe://%s/ns/%s/sa/%s is not a valid SPIFFE ID",
                          in->trust_domain, who.ns, who.sa);
    *out = who;
    return 0;
}
