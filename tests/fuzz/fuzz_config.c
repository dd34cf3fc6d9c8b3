/* Feeds bytes to tg_config_parse() as a whole file. Besides the sanitizers' checks: a refusal
 * must be one line naming the file, and an accepted config must keep the loader's promises
 * (at least one listener, every listener named and bound, an upstream address unless
 * transparent, expect never empty unless transparent). The same bytes also go through
 * tg_addr_parse() and tg_duration_parse(). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "tollgate/config.h"

static void check_config(const struct tg_config *c)
{
    if (c->n_inbound + c->n_outbound == 0 || c->cert_path == NULL || c->key_path == NULL ||
        c->bundle_path == NULL || c->workers > 256 || c->max_chain_depth < 1 ||
        c->max_chain_depth > 16 || c->buffer_size < 4096 || c->buffer_size > 16u << 20 ||
        c->handshake_timeout_ms == 0 || c->idle_timeout_ms == 0 || c->connect_timeout_ms == 0)
        abort();
    for (size_t i = 0; i < c->n_inbound; i++) {
        const struct tg_inbound_cfg *l = &c->inbound[i];

        /* an upstream address exactly when not transparent; loopback only when transparent;
         * allow_unauthenticated only beside an allow list */
        if (l->name == NULL || l->listen.len == 0 || (l->upstream.len == 0) != l->transparent ||
            (l->upstream_loopback && !l->transparent) || (l->allow_unauth && l->allow.n == 0))
            abort();
    }
    for (size_t i = 0; i < c->n_outbound; i++) {
        const struct tg_outbound_cfg *l = &c->outbound[i];

        if (l->name == NULL || l->listen.len == 0 || (l->upstream.len == 0) != l->transparent ||
            (!l->transparent && l->expect.n == 0))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tg_config *c = NULL;
    char err[TG_ERRLEN] = "";
    int rc = tg_config_parse((const char *)data, size, "fuzz.yaml", &c, err);

    if (rc == 0) {
        check_config(c);
        tg_config_unref(c);
    } else if (rc != TG_ECONFIG && rc != TG_ENOMEM) {
        abort();
    } else {
        fuzz_check_err_names(err, "fuzz.yaml", false);
        if (c != NULL)
            abort();
    }
    if (size < 256) {
        char s[256];
        struct tg_addr a;
        uint64_t ms;

        memcpy(s, data, size);
        s[size] = '\0';
        if (tg_addr_parse(s, size & 1, &a, err) == 0 && (a.len == 0 || strcmp(a.text, s) != 0))
            abort();
        if (tg_duration_parse(s, &ms, err) == 0 && (s[0] < '0' || s[0] > '9'))
            abort(); /* a duration starts with a digit */
    }
    return 0;
}
