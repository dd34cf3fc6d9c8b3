#include "tollgate/cli.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tollgate/err.h"

const struct tg_cli_verb *tg_cli_verb(const struct tg_cli *cli, const char *name)
{
    for (size_t i = 0; i < cli->n_verbs; i++)
        if (strcmp(cli->verbs[i].name, name) == 0)
            return &cli->verbs[i];
    return NULL;
}

int tg_cli_usage_error(const struct tg_cli *cli, const char *usage, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", cli->prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fputs(usage, stderr);
    return TG_EXIT_USAGE;
}

int tg_cli_start(const struct tg_cli *cli, int argc, char **argv, const struct tg_cli_verb **v,
                 const char **config)
{
    if (argc < 2)
        return tg_cli_usage_error(cli, cli->usage, "missing command");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
        argv[1] = tg_unconst("help");
    if (strcmp(argv[1], "--version") == 0)
        argv[1] = tg_unconst("version");
    if ((*v = tg_cli_verb(cli, argv[1])) == NULL)
        return tg_cli_usage_error(cli, cli->usage, "unknown command '%s'", argv[1]);
    return tg_cli_parse_verb(cli, *v, argc, argv, config);
}

int tg_cli_help(const struct tg_cli *cli, int argc, char **argv)
{
    const struct tg_cli_verb *v;

    if (argc > 3)
        return tg_cli_usage_error(cli, tg_cli_verb(cli, "help")->usage,
                                  "help: unexpected argument '%s'", argv[3]);
    if (argc < 3) {
        fputs(cli->usage, stdout);
        return 0;
    }
    if ((v = tg_cli_verb(cli, argv[2])) == NULL)
        return tg_cli_usage_error(cli, cli->usage, "help: unknown command '%s'", argv[2]);
    fputs(v->usage, stdout);
    return 0;
}

int tg_cli_parse_verb(const struct tg_cli *cli, const struct tg_cli_verb *v, int argc, char **argv,
                      const char **config)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    *config = NULL;
    optind = 2;
    opterr = 0;
    while ((c = getopt_long(argc, argv, v->takes_config ? ":c:h" : ":h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(v->usage, stdout);
            return 0;
        }
        if (c == 'c' && *config != NULL)
            return tg_cli_usage_error(cli, v->usage, "%s: -c/--config given twice", v->name);
        if (c == 'c') {
            *config = optarg;
            continue;
        }
        if (c == ':')
            return tg_cli_usage_error(cli, v->usage, "%s: -c/--config wants the config FILE",
                                      v->name);
        if (optopt != 0)
            return tg_cli_usage_error(cli, v->usage, "%s: unknown option '-%c'", v->name, optopt);
        return tg_cli_usage_error(cli, v->usage, "%s: unknown option '%s'", v->name,
                                  argv[optind - 1]);
    }
    if (v->takes_config && *config == NULL)
        return tg_cli_usage_error(cli, v->usage, "%s: missing -c FILE (%s)", v->name,
                                  cli->config_what);
    if (optind < argc && strcmp(v->name, "help") != 0)
        return tg_cli_usage_error(cli, v->usage, "%s: unexpected argument '%s'", v->name,
                                  argv[optind]);
    return -1;
}
