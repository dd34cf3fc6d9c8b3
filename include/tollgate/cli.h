/* The command line of the two daemons, tollgate and tollgate-cp: verbs that take -h/--help
 * and, some, a required -c/--config FILE. Help goes to stdout with exit 0; a usage error is
 * one line on stderr naming what was wrong ("PROG: VERB: ..."), then the usage, and exit
 * TG_EXIT_USAGE. Pure: no libuv, no wolfSSL. */
#ifndef TOLLGATE_CLI_H
#define TOLLGATE_CLI_H

#include <stdbool.h>
#include <stddef.h>

#define TG_EXIT_USAGE 2

struct tg_cli_verb {
    const char *name;
    bool takes_config; /* -c FILE, required */
    const char *usage;
};

struct tg_cli {
    const char *prog;        /* the prefix of error lines: "tollgate" */
    const char *usage;       /* the program's usage, for help and errors before a verb */
    const char *config_what; /* names FILE in "missing -c FILE (...)" */
    const struct tg_cli_verb *verbs;
    size_t n_verbs;
};

/* The verb called name, or NULL. */
const struct tg_cli_verb *tg_cli_verb(const struct tg_cli *cli, const char *name);

/* Prints "PROG: " and the formatted reason on stderr, then usage; returns TG_EXIT_USAGE. */
int tg_cli_usage_error(const struct tg_cli *cli, const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The verb argv[1] names ("--help" and "-h" stand for help, "--version" for version), with
 * its options parsed by tg_cli_parse_verb. Returns -1 to go on with *v (and *config), else
 * the exit status: a usage error (no verb, an unknown one, bad options) or help printed. */
int tg_cli_start(const struct tg_cli *cli, int argc, char **argv, const struct tg_cli_verb **v,
                 const char **config);

/* help [COMMAND]: the program's usage, or COMMAND's, on stdout (exit 0); a usage error for
 * an unknown COMMAND or a second argument. */
int tg_cli_help(const struct tg_cli *cli, int argc, char **argv);

/* Parses argv[2..] of verb v: -h/--help (the verb's usage on stdout), and -c/--config FILE
 * when the verb takes one. Returns -1 to go on (*config set when the verb takes one), else
 * the exit status. */
int tg_cli_parse_verb(const struct tg_cli *cli, const struct tg_cli_verb *v, int argc, char **argv,
                      const char **config);

#endif
