/* Fuzzing of tollgate-cp's file parsers (controlplane/cp_config.c, cp_authn.c). The first
 * byte picks the parser: 0 the mesh file, 1 the configuration file, 2 the tokens file; the
 * rest is the file. Each must accept or refuse without crashing or leaking, a refusal must
 * be one line naming the file, and what is accepted must hold together. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "cp_authn.h"
#include "cp_config.h"

static void check_mesh(const struct tg_cp_mesh *m)
{
    const struct tg_res_authorization *a = &m->res[TG_RES_AUTHORIZATION]->u.authorization;
    const struct tg_res_mesh_table *t = &m->res[TG_RES_MESH_TABLE]->u.mesh_table;

    for (size_t i = 0; i < a->n_rules; i++)
        if (a->rules[i].name == NULL || a->rules[i].name[0] == '\0')
            abort();
    for (size_t i = 0; i < t->n_destinations; i++)
        if (t->destinations[i].address == NULL || t->destinations[i].expected_ids.n == 0)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[TG_ERRLEN] = "";
    const char *text = (const char *)data + 1;
    size_t len;
    int rc;

    if (size < 1)
        return 0;
    len = size - 1;
    if (data[0] % 3 == 0) {
        struct tg_cp_mesh m;

        if (tg_cp_mesh_init(&m) < 0)
            return 0;
        rc = tg_cp_mesh_parse(&m, text, len, "fuzz.yaml", err);
        if (rc < 0)
            fuzz_check_err_names(err, "fuzz.yaml", true);
        else
            check_mesh(&m);
        tg_cp_mesh_cleanup(&m);
    } else if (data[0] % 3 == 1) {
        struct tg_cp_config *c = NULL;

        rc = tg_cp_config_parse(text, len, "fuzz.yaml", &c, err);
        if (rc < 0) {
            fuzz_check_err_names(err, "fuzz.yaml", true);
        } else if (c->trust_domain == NULL || c->server_cert == NULL || c->ca_key == NULL ||
                   c->cert_ttl_ms < 1000) {
            abort();
        } else if (c->limits.max_per_address < 1 ||
                   c->limits.max_per_address > c->limits.max_unauthenticated ||
                   c->limits.max_unauthenticated > c->limits.max_connections ||
                   c->limits.handshake_ms < 100 || c->limits.hello_ms < 100) {
            abort(); /* the front door's caps hold together */
        }
        tg_cp_config_free(c);
    } else {
        struct tg_cp_tokens t = {0};

        rc = tg_cp_tokens_parse(text, len, "fuzz.yaml", &t, err);
        if (rc < 0) {
            fuzz_check_err_names(err, "fuzz.yaml", true);
        } else {
            for (size_t i = 0; i < t.n; i++)
                if (strlen(t.v[i].token) < TG_CP_TOKEN_MIN || t.v[i].ns[0] == '\0')
                    abort();
        }
        tg_cp_tokens_cleanup(&t);
    }
    return 0;
}
