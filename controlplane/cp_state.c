/* Loading tollgate-cp's state from its files (cp_state.h). */
#include "cp_state.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PEM (1024 * 1024)

struct tg_cp_state *tg_cp_state_ref(struct tg_cp_state *s)
{
    s->refs++;
    return s;
}

void tg_cp_files_free(struct tg_strlist *files)
{
    for (size_t i = 0; i < files->n; i++)
        free(files->v[i]);
    free(files->v);
    files->v = NULL;
    files->n = 0;
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

/* Reads a whole file (NUL-terminated); what names its config key in messages. */
static int read_pem(struct tg_cp_state *s, const char *what, const char *path, char **out,
                    size_t *len, char *err)
{
    FILE *f;
    char *buf;
    size_t n;

    if (watch(s, path) < 0)
        return TG_ENOMEM;
    if ((f = fopen(path, "rb")) == NULL)
        return tg_err_set(err, TG_EIO, "%s: %s: cannot open: %s", what, path, strerror(errno));
    if ((buf = malloc(MAX_PEM + 1)) == NULL) {
        fclose(f);
        return TG_ENOMEM;
    }
    n = fread(buf, 1, MAX_PEM + 1, f);
    if (ferror(f) || n > MAX_PEM) {
        int rc = tg_err_set(err, TG_EIO, "%s: %s: %s", what, path,
                            ferror(f) ? "read error" : "larger than 1 MiB");

        fclose(f);
        free(buf);
        return rc;
    }
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

static void wipe_free(char *p, size_t n)
{
    if (p != NULL)
        explicit_bzero(p, n);
    free(p);
}

static int load_jwt_keys(struct tg_cp_state *s, char *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc;

    if (s->cfg->k8s_keys == NULL)
        return 0;
    if ((rc = read_pem(s, "kubernetes.keys", s->cfg->k8s_keys, &text, &len, err)) < 0)
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
    if ((rc = read_pem(s, "ca.cert", s->cfg->ca_cert, &cert, &cert_len, err)) == 0 &&
        (rc = read_pem(s, "ca.key", s->cfg->ca_key, &key, &key_len, err)) == 0)
        rc = tg_cp_ca_new(cert, cert_len, key, key_len, what, &s->ca, err);
    free(cert);
    wipe_free(key, key_len);
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
        if ((rc = read_pem(s, "roots", c->roots.v[i], &pem, &len, err)) < 0)
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
            if ((rc = read_pem(s, "extra_roots", e->files.v[i], &pem, &len, err)) < 0)
                return rc;
            rc = tg_cp_ca_split_roots(pem, len, what, r, &b->domains[d + 1].roots_pem, err);
            free(pem);
            if (rc < 0)
                return rc;
        }
    }
    return check_pushed_roots(s, b, err);
}

/* Our own TLS identity, checked against our trust domain's roots, and the server context
 * that verifies sidecars against the same roots (a certificate is optional: bootstrap). */
static int load_server(struct tg_cp_state *s, char *err)
{
    const struct tg_res_domain_roots *own = &s->res[TG_RES_TRUST_BUNDLE]->u.trust_bundle.domains[0];
    struct tg_tls_settings ts = {.server = true, .max_chain_depth = 4, .peer_optional = true};
    struct tg_identity_pem p = {0};
    char *cert = NULL, *key = NULL, *bundle = NULL, why[TG_ERRLEN];
    size_t cert_len = 0, key_len = 0, bundle_len = 0;
    int rc;

    for (size_t i = 0; i < own->roots_pem.n; i++)
        bundle_len += strlen(own->roots_pem.v[i]) + 1;
    if ((bundle = malloc(bundle_len + 1)) == NULL)
        return TG_ENOMEM;
    bundle_len = 0;
    for (size_t i = 0; i < own->roots_pem.n; i++) {
        size_t n = strlen(own->roots_pem.v[i]);

        memcpy(bundle + bundle_len, own->roots_pem.v[i], n);
        bundle_len += n;
        bundle[bundle_len++] = '\n';
    }
    if ((rc = read_pem(s, "server.cert", s->cfg->server_cert, &cert, &cert_len, err)) < 0 ||
        (rc = read_pem(s, "server.key", s->cfg->server_key, &key, &key_len, err)) < 0)
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
    if (!tg_spiffe_in_domain(&s->server_id->leaf.id, s->cfg->trust_domain)) {
        rc = tg_err_set(err, TG_ECONFIG, "server.cert %s: %s is not of trust domain %s",
                        s->cfg->server_cert, s->server_id->leaf.id.id, s->cfg->trust_domain);
        goto done;
    }
    if ((rc = tg_tls_ctx_new(s->server_id, &ts, &s->tls, why)) < 0)
        tg_err_set(err, rc, "server: %s", why);
done:
    free(cert);
    wipe_free(key, key_len);
    free(bundle);
    return rc;
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
    if ((rc = load_jwt_keys(s, err)) < 0 || (rc = load_ca(s, err)) < 0 ||
        (rc = load_bundle(s, err)) < 0 || (rc = load_server(s, err)) < 0 ||
        (rc = load_mesh(s, err)) < 0)
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
