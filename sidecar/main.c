/* tollgate: CLI verbs only. Every verb answers -h/--help on stdout with exit 0; a usage
 * error is one line on stderr naming what was wrong, then the verb's usage, exit 2. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "tollgate/accesslog.h"
#include "tollgate/cli.h"
#include "tollgate/config.h"
#include "tollgate/control.h"
#include "tollgate/file.h"
#include "tollgate/gen.h"
#include "tollgate/iptables.h"
#include "tollgate/log.h"
#include "tollgate/tls.h"

static const char main_usage[] =
    "usage: tollgate COMMAND [OPTIONS]\n"
    "  run -c FILE          run the sidecar\n"
    "  check -c FILE        check a config file and the files it names\n"
    "  init-iptables ...    write or remove the capture rules (tollgate init-iptables --help)\n"
    "  version              versions, and whether AES-NI is compiled in (also: --version)\n"
    "  help [COMMAND]       this text, or one command's (also: --help, -h, COMMAND --help)\n";

/* The verbs other than init-iptables (whose options and help live in iptables.c). */
static const struct tg_cli_verb verbs[] = {
    {"run", true,
     "usage: tollgate run -c FILE\n"
     "Runs the sidecar with the config FILE (-c or --config) until SIGTERM or SIGINT, which\n"
     "drain (timeouts.drain); SIGHUP reloads the identity files at once. Logs go to stderr.\n"
     "Under systemd ($NOTIFY_SOCKET set, Type=notify) it sends READY=1 once every listener\n"
     "accepts, STOPPING=1 on drain, and WATCHDOG=1 while its workers answer ($WATCHDOG_USEC).\n"
     "Exit 0 after a drain, 1 when the config, a listener or $NOTIFY_SOCKET fails.\n"},
    {"check", true,
     "usage: tollgate check -c FILE\n"
     "Loads FILE (-c or --config) and every file it names as run would, builds the TLS\n"
     "contexts, and prints one line. Exit 0 when all is well, 1 naming the file, line and key\n"
     "of the first problem.\n"},
    {"version", false,
     "usage: tollgate version      (or: tollgate --version)\n"
     "Prints the versions of tollgate, wolfSSL (and whether AES-NI is compiled in) and libuv.\n"},
    {"help", false,
     "usage: tollgate help [COMMAND]      (or: tollgate --help, tollgate COMMAND --help)\n"
     "Prints the list of commands, or the usage of one.\n"},
};

static const struct tg_cli cli = {"tollgate", main_usage, "the config file", verbs,
                                  TG_NELEM(verbs)};

static int load(const char *path, struct tg_config **cfg)
{
    char err[TG_ERRLEN] = "";

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
    printf("%s: ok: identity from the control plane at %s", cfg->path, cfg->cp.address.text);
    for (size_t i = 1; i < cfg->cp.addresses.n; i++)
        printf(", %s", cfg->cp.addresses.v[i]); /* the other replicas */
    printf(" (%s), %zu inbound, %zu outbound listeners\n", cfg->cp.server_ids.v[0], cfg->n_inbound,
           cfg->n_outbound);
    return 0;
}

/* identity.workload_api: the config only (the SVID comes at run time); says whether the
 * socket is there yet, which an agent that starts later makes fine. */
static int check_wl(const struct tg_config *cfg)
{
    struct stat st;
    const char *state = stat(cfg->wl.socket, &st) != 0 ? "not there yet"
                        : S_ISSOCK(st.st_mode)         ? "present"
                                                       : "present but not a socket";

    printf("%s: ok: identity from the Workload API at %s (socket %s)%s%s, %zu inbound, %zu "
           "outbound listeners\n",
           cfg->path, cfg->wl.socket, state, cfg->cp.enabled ? ", control plane at " : "",
           cfg->cp.enabled ? cfg->cp.address.text : "", cfg->n_inbound, cfg->n_outbound);
    return 0;
}

static int cmd_check(const char *path)
{
    struct tg_config *cfg;
    struct tg_gen_input in = {0};
    struct tg_gen *g;
    char err[TG_ERRLEN] = "";
    int rc = load(path, &cfg);

    if (rc != 0)
        return rc;
    if (cfg->wl.enabled || cfg->cp.enabled) {
        rc = cfg->wl.enabled ? check_wl(cfg) : check_cp(cfg);
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

static int cmd_run(const char *path)
{
    struct tg_config *cfg;
    int rc = load(path, &cfg);

    if (rc != 0)
        return rc;
    tg_log_set_level(cfg->log_level);
    tg_log_set_format(cfg->log_format);
    tg_accesslog_set_style(cfg->access_log_text ? TG_ACCESSLOG_TEXT : TG_ACCESSLOG_JSON);
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

static int cmd_version(void)
{
    printf("tollgate %s\n%s\nlibuv %s\n", TG_VERSION, tg_tls_version_text(), uv_version_string());
    return 0;
}

/* help [COMMAND]; init-iptables has its own. */
static int cmd_help(int argc, char **argv)
{
    char *help_argv[] = {argv[0], tg_unconst("init-iptables"), tg_unconst("--help"), NULL};

    if (argc == 3 && strcmp(argv[2], "init-iptables") == 0)
        return tg_iptables_main(3, help_argv);
    return tg_cli_help(&cli, argc, argv);
}

int main(int argc, char **argv)
{
    const struct tg_cli_verb *v;
    const char *config;
    int rc;

    if (argc >= 2 && strcmp(argv[1], "init-iptables") == 0)
        return tg_iptables_main(argc, argv);
    if ((rc = tg_cli_start(&cli, argc, argv, &v, &config)) >= 0)
        return rc;
    if (strcmp(v->name, "run") == 0)
        return cmd_run(config);
    if (strcmp(v->name, "check") == 0)
        return cmd_check(config);
    if (strcmp(v->name, "version") == 0)
        return cmd_version();
    return cmd_help(argc, argv);
}
