/* Loading tollgate-cp's state from its files (cp_state.h). */
#include "cp_state.h"

#include "tollgate/cfgload.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/file.h"

#define MAX_PEM TG_FILE_MAX

struct tg_cp_state *tg_cp_state_ref(struct tg_cp_state *s)
{
    s->refs++;
    return s;
}

void tg_cp_files_free(struct tg_strlist *files)
{
    tg_strlist_free(files);
}

static void state_free(struct tg_cp_state *s)
{
    tg_tls_ctx_free(s->tls);
    tg_identity_free(s->server_id);
    tg_cp_ca_free(s->ca);
    tg_cp_tokens_cleanup(&s->tokens);
    tg_cp_jwt_keys_free(s->jwt_keys);
    for (int t = 0; t < TG_RES_N; t++)
        tg_resource_free(s->res[t]);
    tg_cp_files_free(&s->crl_files);
    tg_cp_files_free(&s->files);
    tg_cp_config_free(s->cfg);
    free(s);
}

void tg_cp_state_unref(struct tg_cp_state *s)
{
    if (s != NULL && --s->refs == 0)
        state_free(s);
}

static int watch(struct tg_cp_state *s, const char *path)
{
    char **grown;

    for (size_t i = 0; i < s->files.n; i++)
        if (strcmp(s->files.v[i], path) == 0)
            return 0;
    grown = realloc(s->files.v, (s->files.n + 1) * sizeof(char *));
    if (grown == NULL)
        return TG_ENOMEM;
    s->files.v = grown;
    if ((s->files.v[s->files.n] = strdup(path)) == NULL)
        return TG_ENOMEM;
    s->files.n++;
    return 0;
}

/* Watches path, then reads it whole; what names its config key in messages. */
static int read_pem(struct tg_cp_state *s, const char *what, const char *path, unsigned flags,
                    char **out, size_t *len, char *err)
{
    if (watch(s, path) < 0)
        return TG_ENOMEM;
    return tg_file_read(what, path, MAX_PEM, flags, out, len, err);
}

static int load_jwt_keys(struct tg_cp_state *s, char *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc;

    if (s->cfg->k8s_keys == NULL)
        return 0;
    if ((rc = read_pem(s, "kubernetes.keys", s->cfg->k8s_keys, 0, &text, &len, err)) < 0)
        return rc;
    rc = tg_cp_jwt_keys_parse(text, len, s->cfg->k8s_keys, &s->jwt_keys, err);
    free(text);
    return rc;
}

static int load_ca(struct tg_cp_state *s, char *err)
{
    char *cert = NULL, *key = NULL, what[TG_ERRLEN];
    size_t cert_len = 0, key_len = 0;
    int rc;

    snprintf(what, sizeof(what), "ca (%s)", s->cfg->ca_cert);
    if ((rc = read_pem(s, "ca.cert", s->cfg->ca_cert, 0, &cert, &cert_len, err)) == 0 &&
        (rc = read_pem(s, "ca.key", s->cfg->ca_key, TG_FILE_SECRET, &key, &key_len, err)) == 0)
        rc = tg_cp_ca_new(cert, cert_len, key, key_len, what, &s->ca, err);
    free(cert);
    tg_wipe_free(key, key_len);
    return rc;
}

/* The bundle as every sidecar will check it (tg_identity_check_roots): each domain's roots
 * its own, no root in two domains. Refused here rather than NACKed by all of them. */
static int check_pushed_roots(const struct tg_cp_state *s, const struct tg_res_trust_bundle *b,
                              char *err)
{
    struct tg_identity_roots *d = calloc(b->n_domains + 1, sizeof(*d));
    char **text = calloc(b->n_domains + 1, sizeof(*text)), why[TG_ERRLEN];
    int rc = TG_ENOMEM;

    for (size_t i = 0; d != NULL && text != NULL && i < b->n_domains; i++) {
        FILE *f = open_memstream(&text[i], &d[i].len);

        if (f == NULL)
            goto done;
        for (size_t j = 0; j < b->domains[i].roots_pem.n; j++)
            fprintf(f, "%s\n", b->domains[i].roots_pem.v[j]);
        if (fclose(f) != 0)
            goto done;
        d[i].domain = b->domains[i].trust_domain;
        d[i].pem = text[i];
    }
    if (d != NULL && text != NULL && (rc = tg_identity_check_roots(d, b->n_domains, why)) < 0)
        tg_err_set(err, TG_ECONFIG, "%s: roots, extra_roots: %s", s->cfg->path, why);
done:
    for (size_t i = 0; text != NULL && i < b->n_domains; i++)
        free(text[i]);
    free(text);
    free(d);
    return rc == TG_EINVAL ? TG_ECONFIG : rc;
}

/* The trust bundle: our roots (from roots:, or the CA itself when it is a root), then the
 * extra trust domains, each with roots of its own. The CA must chain to our roots, or no
 * sidecar could use what it signs. */
static int load_bundle(struct tg_cp_state *s, char *err)
{
    const struct tg_cp_config *c = s->cfg;
    struct tg_resource *r = tg_resource_new(TG_RES_TRUST_BUNDLE);
    struct tg_res_trust_bundle *b;
    char *pem = NULL, what[TG_ERRLEN];
    size_t len;
    int rc = TG_ENOMEM;

    if (r == NULL)
        return rc;
    s->res[TG_RES_TRUST_BUNDLE] = r;
    b = &r->u.trust_bundle;
    if ((b->domains = tg_resource_array(r, c->n_extra_roots + 1, sizeof(*b->domains))) == NULL)
        return rc;
    b->n_domains = c->n_extra_roots + 1;
    if ((b->domains[0].trust_domain = tg_resource_strdup(r, c->trust_domain)) == NULL)
        return rc;
    for (size_t i = 0; i < c->roots.n; i++) {
        snprintf(what, sizeof(what), "roots: %s", c->roots.v[i]);
        if ((rc = read_pem(s, "roots", c->roots.v[i], 0, &pem, &len, err)) < 0)
            return rc;
        rc = tg_cp_ca_split_roots(pem, len, what, r, &b->domains[0].roots_pem, err);
        free(pem);
        if (rc < 0)
            return rc;
    }
    if (c->roots.n == 0) {
        const char *root = tg_cp_ca_root_pem(s->ca);

        if (root == NULL)
            return tg_err_set(err, TG_ECONFIG,
                              "%s: roots: required, since ca.cert %s is not self-signed", c->path,
                              c->ca_cert);
        if ((rc = tg_cp_ca_split_roots(root, strlen(root), "ca.cert", r, &b->domains[0].roots_pem,
                                       err)) < 0)
            return rc;
    }
    if ((rc = tg_cp_ca_check_roots(s->ca, &b->domains[0].roots_pem, err)) < 0)
        return rc;
    for (size_t d = 0; d < c->n_extra_roots; d++) {
        const struct tg_cp_extra_roots *e = &c->extra_roots[d];

        if ((b->domains[d + 1].trust_domain = tg_resource_strdup(r, e->trust_domain)) == NULL)
            return TG_ENOMEM;
        for (size_t i = 0; i < e->files.n; i++) {
            snprintf(what, sizeof(what), "extra_roots.%s: %s", e->trust_domain, e->files.v[i]);
            if ((rc = read_pem(s, "extra_roots", e->files.v[i], 0, &pem, &len, err)) < 0)
                return rc;
            rc = tg_cp_ca_split_roots(pem, len, what, r, &b->domains[d + 1].roots_pem, err);
            free(pem);
            if (rc < 0)
                return rc;
        }
    }
    return check_pushed_roots(s, b, err);
}

/* The roots of the bundle's first (all false: our own) or every trust domain, as one PEM text
 * (malloc'd, NUL-terminated). NULL: out of memory. */
static char *roots_text(const struct tg_res_trust_bundle *b, bool all, size_t *len)
{
    size_t n_domains = all ? b->n_domains : 1, at = 0;
    char *text;

    *len = 0;
    for (size_t d = 0; d < n_domains; d++)
        for (size_t i = 0; i < b->domains[d].roots_pem.n; i++)
            *len += strlen(b->domains[d].roots_pem.v[i]) + 1;
    if ((text = malloc(*len + 1)) == NULL)
        return NULL;
    for (size_t d = 0; d < n_domains; d++) {
        for (size_t i = 0; i < b->domains[d].roots_pem.n; i++) {
            size_t n = strlen(b->domains[d].roots_pem.v[i]);

            memcpy(text + at, b->domains[d].roots_pem.v[i], n);
            at += n;
            text[at++] = '\n';
        }
    }
    text[at] = '\0';
    return text;
}

/* An identity of p and a server context of it, then both freed: the checks a sidecar makes
 * of what it is pushed before it uses it (gen.c: tg_identity_from_pem, tg_tls_ctx_new). */
static int sidecar_would_take(const struct tg_identity_pem *p, char *why)
{
    struct tg_tls_settings ts = {.server = true, .max_chain_depth = 4};
    struct tg_identity *id = NULL;
    struct tg_tls_ctx *ctx = NULL;
    int rc = tg_identity_from_pem(p, &id, why);

    if (rc == 0)
        rc = tg_tls_ctx_new(id, &ts, &ctx, why);
    tg_tls_ctx_free(ctx);
    tg_identity_free(id);
    return rc;
}

/* The published CRLs, checked as a sidecar checks the revocations it is pushed: with the whole
 * pushed bundle, our own certificate standing in for the sidecar's. A CRL a sidecar would
 * refuse (broken, stale, signed by no root of the bundle) is refused here, naming its file,
 * so that the sidecars never hold CRLs we do not (they would keep their last good ones, as we
 * keep our last good state). Then those our own roots signed, the ones that can revoke a
 * certificate we accept, go into own (room for all), *n_own of them. */
static int select_crls(struct tg_cp_state *s, const struct tg_identity_pem *base,
                       struct tg_identity_crl *own, size_t *n_own, char *err)
{
    const struct tg_res_trust_bundle *b = &s->res[TG_RES_TRUST_BUNDLE]->u.trust_bundle;
    const struct tg_res_revocations *rv = &s->res[TG_RES_REVOCATIONS]->u.revocations;
    struct tg_identity_crl *all = calloc(rv->n_crls + 1, sizeof(*all));
    struct tg_identity_pem p = *base;
    char why[TG_ERRLEN] = "";
    int rc = TG_ENOMEM;

    *n_own = 0;
    if (all == NULL || (p.bundle = roots_text(b, true, &p.bundle_len)) == NULL)
        goto done;
    for (size_t i = 0; i < rv->n_crls; i++)
        all[i] = (struct tg_identity_crl){rv->crls[i].data, rv->crls[i].len};
    p.crls = all;
    p.n_crls = rv->n_crls;
    if ((rc = sidecar_would_take(&p, why)) < 0) {
        /* which one: each alone, so that the message names its file */
        for (size_t i = 0; i < rv->n_crls; i++) {
            p.crls = &all[i];
            p.n_crls = 1;
            if (sidecar_would_take(&p, why) < 0) {
                tg_err_set(err, TG_ECONFIG, "revocations.crls: %s: %s (a sidecar would refuse it)",
                           i < s->crl_files.n ? s->crl_files.v[i] : "?", why);
                goto done;
            }
        }
        tg_err_set(err, TG_ECONFIG, "revocations.crls: %s (a sidecar would refuse them)", why);
        goto done;
    }
    for (size_t i = 0; i < rv->n_crls; i++)
        if (tg_cp_ca_crl_signed_by(s->ca, &b->domains[0].roots_pem, &rv->crls[i]))
            own[(*n_own)++] = all[i];
    rc = 0;
done:
    free(tg_unconst(p.bundle));
    free(all);
    return rc;
}

/* Our own TLS identity, checked against our trust domain's roots, and the server context
 * that verifies sidecars against the same roots and the CRLs they signed (a certificate is
 * optional: bootstrap). So a client certificate is verified, chain, expiry and revocation by
 * CRL, by the very code a sidecar verifies its peers with (tls.c), and refused in the
 * handshake where a sidecar would refuse it. */
static int load_server(struct tg_cp_state *s, char *err)
{
    const struct tg_res_trust_bundle *b = &s->res[TG_RES_TRUST_BUNDLE]->u.trust_bundle;
    const struct tg_res_revocations *rv = &s->res[TG_RES_REVOCATIONS]->u.revocations;
    struct tg_tls_settings ts = {.server = true, .max_chain_depth = 4, .peer_optional = true};
    struct tg_identity_pem p = {0};
    struct tg_identity_crl *own = calloc(rv->n_crls + 1, sizeof(*own));
    char *cert = NULL, *key = NULL, *bundle = NULL, why[TG_ERRLEN];
    size_t cert_len = 0, key_len = 0, bundle_len = 0, n_own = 0;
    int rc = TG_ENOMEM;

    if (own == NULL || (bundle = roots_text(b, false, &bundle_len)) == NULL)
        goto done;
    if ((rc = read_pem(s, "server.cert", s->cfg->server_cert, 0, &cert, &cert_len, err)) < 0 ||
        (rc = read_pem(s, "server.key", s->cfg->server_key, TG_FILE_SECRET, &key, &key_len, err)) <
            0)
        goto done;
    p = (struct tg_identity_pem){.chain = cert,
                                 .chain_len = cert_len,
                                 .key = key,
                                 .key_len = key_len,
                                 .bundle = bundle,
                                 .bundle_len = bundle_len};
    if ((rc = tg_identity_from_pem(&p, &s->server_id, why)) < 0) {
        tg_err_set(err, rc, "server (cert %s, key %s): %s", s->cfg->server_cert, s->cfg->server_key,
                   why);
        goto done;
    }
    if (rv->n_crls > 0) {
        if ((rc = select_crls(s, &p, own, &n_own, err)) < 0)
            goto done;
        if (n_own > 0) { /* again, with our CRLs: the identity the context is made of */
            tg_identity_free(s->server_id);
            s->server_id = NULL;
            p.crls = own;
            p.n_crls = n_own;
            if ((rc = tg_identity_from_pem(&p, &s->server_id, why)) < 0) {
                tg_err_set(err, rc, "server with revocations.crls: %s", why);
                goto done;
            }
        }
    }
    if (!tg_spiffe_in_domain(&s->server_id->leaf.id, s->cfg->trust_domain)) {
        rc = tg_err_set(err, TG_ECONFIG, "server.cert %s: %s is not of trust domain %s",
                        s->cfg->server_cert, s->server_id->leaf.id.id, s->cfg->trust_domain);
        goto done;
    }
    if ((rc = tg_tls_ctx_new(s->server_id, &ts, &s->tls, why)) < 0)
        tg_err_set(err, rc, "server: %s", why);
done:
    free(own);
    free(cert);
    tg_wipe_free(key, key_len);
    free(bundle);
    return rc;
}

bool tg_cp_state_same_trust(const struct tg_cp_state *a, const struct tg_cp_state *b)
{
    const struct tg_identity *x = a->server_id, *y = b->server_id;

    if (a == b)
        return true;
    if (x->bundle_len != y->bundle_len ||
        memcmp(x->bundle_pem, y->bundle_pem, x->bundle_len) != 0 || x->n_crl != y->n_crl)
        return false;
    for (size_t i = 0; i < x->n_crl; i++)
        if (x->crl_len[i] != y->crl_len[i] || memcmp(x->crl[i], y->crl[i], x->crl_len[i]) != 0)
            return false;
    return true;
}

static int load_mesh(struct tg_cp_state *s, char *err)
{
    struct tg_cp_mesh m;
    int rc;

    if ((rc = tg_cp_mesh_init(&m)) < 0)
        return rc;
    for (size_t i = 0; i < s->cfg->mesh.n; i++) {
        if ((rc = watch(s, s->cfg->mesh.v[i])) < 0)
            break;
        if ((rc = tg_cp_mesh_load(&m, s->cfg->mesh.v[i], err)) < 0)
            break;
    }
    for (size_t i = 0; i < m.crl_files.n && rc == 0; i++)
        rc = watch(s, m.crl_files.v[i]);
    if (rc == 0) {
        for (int t = TG_RES_AUTHORIZATION; t < TG_RES_N; t++) {
            s->res[t] = m.res[t];
            m.res[t] = NULL;
        }
        s->crl_files = m.crl_files;
        m.crl_files = (struct tg_strlist){NULL, 0};
    }
    tg_cp_mesh_cleanup(&m);
    return rc;
}

int tg_cp_state_load(const char *config_path, struct tg_cp_state **out,
                     struct tg_strlist *files_out, char *err)
{
    struct tg_cp_state *s = calloc(1, sizeof(*s));
    int rc = TG_ENOMEM;

    if (s == NULL)
        return rc;
    s->refs = 1;
    if ((rc = watch(s, config_path)) < 0)
        goto fail;
    if ((rc = tg_cp_config_load(config_path, &s->cfg, err)) < 0)
        goto fail;
    if (s->cfg->tokens != NULL && ((rc = watch(s, s->cfg->tokens)) < 0 ||
                                   (rc = tg_cp_tokens_load(s->cfg->tokens, &s->tokens, err)) < 0))
        goto fail;
    /* the mesh before our server context: the context holds the published CRLs */
    if ((rc = load_jwt_keys(s, err)) < 0 || (rc = load_ca(s, err)) < 0 ||
        (rc = load_bundle(s, err)) < 0 || (rc = load_mesh(s, err)) < 0 ||
        (rc = load_server(s, err)) < 0)
        goto fail;
    if (files_out != NULL)
        *files_out = (struct tg_strlist){NULL, 0};
    *out = s;
    return 0;
fail:
    if (rc == TG_ENOMEM)
        tg_err_set(err, rc, "out of memory");
    if (files_out != NULL) {
        *files_out = s->files;
        s->files = (struct tg_strlist){NULL, 0};
    }
    state_free(s);
    return rc;
}
