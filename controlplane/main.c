/* tollgate-cp: the reference control plane. CLI verbs only:
 *   tollgate-cp run -c mesh.yaml     serve until SIGTERM/SIGINT (SIGHUP: reload now)
 *   tollgate-cp check -c mesh.yaml   load every file as run would; 0 when all is well
 *   tollgate-cp version              (or --version)
 *   tollgate-cp help [COMMAND]       (or --help, -h, COMMAND --help)
 * Help and the version go to stdout with exit 0; a usage error is one line on stderr naming
 * what was wrong, then the usage, exit 2. */
#include <malloc.h>
#include <stdarg.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cp_server.h"
#include "cp_state.h"
#include "tollgate/cli.h"
#include "tollgate/log.h"

struct run {
    uv_loop_t loop;
    struct tg_cp_server *srv;
    uv_signal_t sigterm, sigint, sighup;
    bool stopping;
};

static const char main_usage[] =
    "usage: tollgate-cp COMMAND [OPTIONS]\n"
    "  run -c FILE      serve the mesh described by FILE (mesh.yaml)\n"
    "  check -c FILE    load FILE and every file it names as run would\n"
    "  version          the versions of tollgate-cp and wolfSSL (also: --version)\n"
    "  help [COMMAND]   this text, or one command's (also: --help, -h, COMMAND --help)\n";

static const struct tg_cli_verb verbs[] = {
    {"run", true,
     "usage: tollgate-cp run -c FILE\n"
     "Serves the mesh of FILE (-c or --config: mesh.yaml) until SIGTERM or SIGINT; SIGHUP\n"
     "reloads the files now (they are also watched). Exit 0 when stopped, 1 when FILE or a\n"
     "file it names is bad.\n"},
    {"check", true,
     "usage: tollgate-cp check -c FILE\n"
     "Loads FILE (-c or --config) and every file it names as run would and prints one line.\n"
     "Exit 0 when all is well, 1 naming the first problem.\n"},
    {"version", false,
     "usage: tollgate-cp version      (or: tollgate-cp --version)\n"
     "Prints the versions of tollgate-cp and wolfSSL.\n"},
    {"help", false,
     "usage: tollgate-cp help [COMMAND]      (or: tollgate-cp --help, COMMAND --help)\n"
     "Prints the list of commands, or the usage of one.\n"},
};

static const struct tg_cli cli = {"tollgate-cp", main_usage, "mesh.yaml", verbs, TG_NELEM(verbs)};

static void on_signal_closed(uv_handle_t *h)
{
    (void)h;
}

static void on_server_closed(void *arg)
{
    struct run *r = arg;

    r->srv = NULL;
    uv_close((uv_handle_t *)&r->sigterm, on_signal_closed);
    uv_close((uv_handle_t *)&r->sigint, on_signal_closed);
    uv_close((uv_handle_t *)&r->sighup, on_signal_closed);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct run *r = h->data;

    if (signum == SIGHUP) {
        if (r->srv != NULL)
            (void)tg_cp_server_reload(r->srv, "SIGHUP");
        return;
    }
    if (r->stopping)
        return;
    r->stopping = true;
    tg_info("signal %d: stopping", signum);
    tg_cp_server_close(r->srv, on_server_closed, r);
}

/* Every stream is a file descriptor: take the hard limit of open files, and say so when even
 * that is below limits.max_connections (accept then fails, and the newcomer is dropped). */
static void raise_nofile(const struct tg_cp_limits *lim)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || getrlimit(RLIMIT_NOFILE, &rl) != 0)
            return;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < lim->max_connections + 64)
        tg_warn("open files limit %llu is below limits.max_connections (%llu) plus 64: raise "
                "it (ulimit -n, LimitNOFILE=) or lower max_connections",
                (unsigned long long)rl.rlim_cur, (unsigned long long)lim->max_connections);
}

static int cmd_run(const char *path)
{
    struct run r;
    char err[TG_ERRLEN] = "";
    int rc;

    memset(&r, 0, sizeof(r));
    signal(SIGPIPE, SIG_IGN);
    /* A push of a mesh table (some 500 KB at 5,000 pods) is queued on up to
     * TG_CP_PUSHING_MAX streams at a time and freed as each is written: keep those buffers in
     * the heap for the next streams, rather than glibc mapping fresh pages for each and giving
     * them back (a page fault per 4 KiB per stream was half the CPU of a push to 500
     * streams). What stays free at the heap's top is bounded by the trim threshold. */
    mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 32 * 1024 * 1024);
    uv_loop_init(&r.loop);
    rc = tg_cp_server_new(&r.loop, path, &r.srv, err);
    if (rc < 0) {
        tg_error("%s", err);
        uv_run(&r.loop, UV_RUN_DEFAULT); /* lets a half-started server close */
        uv_loop_close(&r.loop);
        return 1;
    }
    raise_nofile(&tg_cp_server_state(r.srv)->cfg->limits);
    r.sigterm.data = r.sigint.data = r.sighup.data = &r;
    uv_signal_init(&r.loop, &r.sigterm);
    uv_signal_init(&r.loop, &r.sigint);
    uv_signal_init(&r.loop, &r.sighup);
    uv_signal_start(&r.sigterm, on_signal, SIGTERM);
    uv_signal_start(&r.sigint, on_signal, SIGINT);
    uv_signal_start(&r.sighup, on_signal, SIGHUP);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&r.loop);
    if (rc != 0)
        tg_warn("loop closed with handles open: %s", uv_strerror(rc));
    return 0;
}

static int cmd_check(const char *path)
{
    struct tg_cp_state *s;
    char err[TG_ERRLEN] = "";
    const struct tg_res_trust_bundle *b;

    if (tg_cp_state_load(path, &s, NULL, err) < 0) {
        fprintf(stderr, "tollgate-cp check: %s\n", err);
        return 1;
    }
    b = &s->res[TG_RES_TRUST_BUNDLE]->u.trust_bundle;
    printf("%s: ok: trust domain %s, %zu roots (+%zu other domains), CA serial %s, server %s, "
           "certificates for %llu s, %zu tokens, %zu service-account keys, %zu rules, %zu limits, "
           "%zu revoked, %zu destinations, listen %s\n",
           path, s->cfg->trust_domain, b->domains[0].roots_pem.n, b->n_domains - 1,
           tg_cp_ca_serial(s->ca), s->server_id->leaf.id.id,
           (unsigned long long)(s->cfg->cert_ttl_ms / 1000), s->tokens.n,
           tg_cp_jwt_keys_count(s->jwt_keys), s->res[TG_RES_AUTHORIZATION]->u.authorization.n_rules,
           s->res[TG_RES_RATE_LIMITS]->u.rate_limits.n_limits,
           s->res[TG_RES_REVOCATIONS]->u.revocations.serials.n +
               s->res[TG_RES_REVOCATIONS]->u.revocations.fingerprints.n,
           s->res[TG_RES_MESH_TABLE]->u.mesh_table.n_destinations, s->cfg->listen.text);
    tg_cp_state_unref(s);
    return 0;
}

int main(int argc, char **argv)
{
    const struct tg_cli_verb *v;
    const char *path;
    int rc;

    if ((rc = tg_cli_start(&cli, argc, argv, &v, &path)) >= 0)
        return rc;
    if (strcmp(v->name, "help") == 0)
        return tg_cli_help(&cli, argc, argv);
    if (strcmp(v->name, "version") == 0) {
        printf("tollgate-cp %s (%s)\n", TG_VERSION, tg_tls_version_text());
        return 0;
    }
    if (tg_tls_init() < 0) {
        fprintf(stderr, "tollgate-cp: TLS library failed to start\n");
        return 1;
    }
    rc = strcmp(v->name, "run") == 0 ? cmd_run(path) : cmd_check(path);
    tg_tls_cleanup();
    return rc;
}
