/* tollgate: CLI verbs only. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "tollgate/config.h"
#include "tollgate/control.h"
#include "tollgate/file.h"
#include "tollgate/gen.h"
#include "tollgate/iptables.h"
#include "tollgate/log.h"
#include "tollgate/tls.h"

static int usage(FILE *f)
{
    fprintf(f, "usage: tollgate run -c FILE      run the sidecar\n"
               "       tollgate check -c FILE    check a config file and the files it names\n"
               "       tollgate version          versions, and whether AES-NI is compiled in\n"
               "       tollgate init-iptables ... capture rules (tollgate init-iptables --help)\n");
    return f == stderr ? 2 : 0;
}

static const char *config_arg(int argc, char **argv)
{
    for (int i = 2; i + 1 < argc; i++)
        if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0)
            return argv[i + 1];
    return NULL;
}

static int load(int argc, char **argv, struct tg_config **cfg)
{
    const char *path = config_arg(argc, argv);
    char err[TG_ERRLEN] = "";

    if (path == NULL || argc != 4)
        return usage(stderr);
    if (tg_config_load(path, cfg, err) < 0) {
        fprintf(stderr, "tollgate: %s\n", err);
        return 1;
    }
    return 0;
}

/* control_plane: the identity comes later; check that the files it needs are readable. */
static int check_cp(struct tg_config *cfg)
{
    const char *files[] = {cfg->cp.ca_path, cfg->cp.token_path};
    const char *keys[] = {"control_plane.ca", "control_plane.token"};

    for (size_t i = 0; i < 2; i++) {
        char *text = NULL, err[TG_ERRLEN];
        size_t len = 0;
        bool pem;

        if (tg_file_read(keys[i], files[i], TG_FILE_MAX, i == 1 ? TG_FILE_SECRET : 0, &text, &len,
                         err) < 0) {
            fprintf(stderr, "tollgate: %s: %s\n", cfg->path, err);
            return 1;
        }
        pem = strstr(text, "-----BEGIN CERTIFICATE-----") != NULL;
        tg_wipe_free(text, len);
        if (len == 0) {
            fprintf(stderr, "tollgate: %s: %s: %s: empty\n", cfg->path, keys[i], files[i]);
            return 1;
        }
        if (i == 0 && !pem) {
            fprintf(stderr, "tollgate: %s: %s: %s: not a PEM certificate\n", cfg->path, keys[i],
                    files[i]);
            return 1;
        }
    }
    printf("%s: ok: identity from the control plane at %s (%s), %zu inbound, %zu outbound "
           "listeners\n",
           cfg->path, cfg->cp.address.text, cfg->cp.server_ids.v[0], cfg->n_inbound,
           cfg->n_outbound);
    return 0;
}

static int cmd_check(int argc, char **argv)
{
    struct tg_config *cfg;
    struct tg_gen_input in = {0};
    struct tg_gen *g;
    char err[TG_ERRLEN] = "";
    int rc = load(argc, argv, &cfg);

    if (rc != 0)
        return rc;
    if (cfg->cp.enabled) {
        rc = check_cp(cfg);
        tg_config_unref(cfg);
        return rc;
    }
    in.cfg = cfg;
    if (tg_tls_init() < 0 || tg_gen_build(&in, &g, err) < 0) {
        fprintf(stderr, "tollgate: %s: %s\n", cfg->path, err);
        tg_config_unref(cfg);
        return 1;
    }
    printf("%s: ok: %s (serial %s, expires in %lld s), %zu inbound, %zu outbound listeners\n",
           cfg->path, g->identity->leaf.id.id, g->identity->leaf.serial,
           (long long)(g->identity->leaf.not_after - tg_identity_now()), cfg->n_inbound,
           cfg->n_outbound);
    tg_gen_unref(g);
    tg_config_unref(cfg);
    tg_tls_cleanup();
    return 0;
}

static int cmd_run(int argc, char **argv)
{
    struct tg_config *cfg;
    int rc = load(argc, argv, &cfg);

    if (rc != 0)
        return rc;
    tg_log_set_level(cfg->log_level);
    if (tg_tls_init() < 0) {
        fprintf(stderr, "tollgate: TLS library failed to start\n");
        tg_config_unref(cfg);
        return 1;
    }
    if (!tg_tls_aesni())
        tg_warn("crypto is not accelerated: %s", tg_tls_version_text());
    rc = tg_control_run(cfg);
    tg_config_unref(cfg);
    tg_tls_cleanup();
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr);
    if (strcmp(argv[1], "run") == 0)
        return cmd_run(argc, argv);
    if (strcmp(argv[1], "check") == 0)
        return cmd_check(argc, argv);
    if (strcmp(argv[1], "init-iptables") == 0)
        return tg_iptables_main(argc, argv);
    if (strcmp(argv[1], "version") == 0) {
        printf("tollgate %s\n%s\nlibuv %s\n", TG_VERSION, tg_tls_version_text(),
               uv_version_string());
        return 0;
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0)
        return usage(stdout);
    fprintf(stderr, "tollgate: unknown command '%s'\n", argv[1]);
    return usage(stderr);
}
