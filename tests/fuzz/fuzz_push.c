/* Fuzzing of the sidecar's decoding of pushes from the control plane
 * (tg_cp_client_decode_push: protobuf-c unpacking, then struct tg_resource). Whatever the
 * bytes, it accepts or refuses without crashing or leaking; a refusal is one line; an
 * accepted resource is of a pushed type, has a version, and every list it holds is
 * readable to its end. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "tollgate/cp_client.h"

static size_t sink;

static void touch_list(const struct tg_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        sink += strlen(l->v[i]);
}

/* A name and the list it names (a trust domain's roots, a destination's identities). */
static void touch_named(const char *name, const struct tg_strlist *l)
{
    sink += strlen(name);
    touch_list(l);
}

static void touch(const struct tg_resource *r)
{
    switch (r->type) {
    case TG_RES_TRUST_BUNDLE:
        for (size_t i = 0; i < r->u.trust_bundle.n_domains; i++)
            touch_named(r->u.trust_bundle.domains[i].trust_domain,
                        &r->u.trust_bundle.domains[i].roots_pem);
        break;
    case TG_RES_AUTHORIZATION:
        for (size_t i = 0; i < r->u.authorization.n_rules; i++) {
            const struct tg_res_rule *x = &r->u.authorization.rules[i];

            sink += strlen(x->name) + strlen(x->scope_namespace) + x->ports.n + x->not_ports.n;
            for (size_t j = 0; j < x->n_scope_labels; j++)
                sink += strlen(x->scope_labels[j].key) + strlen(x->scope_labels[j].value);
            touch_list(&x->principals);
            touch_list(&x->not_serials);
        }
        break;
    case TG_RES_RATE_LIMITS:
        for (size_t i = 0; i < r->u.rate_limits.n_limits; i++)
            sink += strlen(r->u.rate_limits.limits[i].match);
        break;
    case TG_RES_REVOCATIONS:
        touch_list(&r->u.revocations.serials);
        touch_list(&r->u.revocations.fingerprints);
        for (size_t i = 0; i < r->u.revocations.n_crls; i++)
            sink += r->u.revocations.crls[i].len;
        break;
    case TG_RES_MESH_TABLE:
        for (size_t i = 0; i < r->u.mesh_table.n_destinations; i++)
            touch_named(r->u.mesh_table.destinations[i].address,
                        &r->u.mesh_table.destinations[i].expected_ids);
        break;
    case TG_RES_PROXY_SETTINGS:
        sink += strlen(r->u.proxy_settings.min_tls_version);
        touch_list(&r->u.proxy_settings.cipher_suites);
        break;
    default:
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tg_resource *r = NULL;
    char version[129], err[TG_ERRLEN] = "";
    int rc = tg_cp_client_decode_push(data, size, &r, version, sizeof(version), err);

    if (rc < 0) {
        if (r != NULL)
            abort();
        fuzz_check_err(err);
        return 0;
    }
    if (r == NULL || version[0] == '\0')
        abort();
    touch(r);
    tg_resource_free(r);
    return 0;
}
