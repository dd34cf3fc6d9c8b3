/* The one YAML layer: every file a user writes (the sidecar's config, tollgate-cp's config and
 * its mesh files) is read here, into a small tree, and walked with schema tables, so limits,
 * grammars and messages are the same everywhere. lib/config/yaml.c is the only file that
 * includes libyaml's header.
 *
 * tg_cfg_doc_parse() refuses, with "FILE:LINE: what is wrong" in err: a text over
 * TG_CFG_MAX_FILE bytes, YAML syntax errors, anchors, aliases and tags (a settings file has
 * no need of them, and an alias lets a small file stand for a huge one), a second document,
 * a key that is not a single value, a key given twice in one mapping, a NUL byte in a value,
 * nesting deeper than TG_CFG_MAX_DEPTH and a list or mapping of more than TG_CFG_MAX_ITEMS
 * entries. An empty text gives a NULL root.
 *
 * tg_cfg_walk() fills a struct from a mapping, by a table of struct tg_cfg_field: key name,
 * kind, offset, required, limits, choices. Unknown keys are errors; a key in a table with
 * kind TG_CFG_RENAMED is an old spelling, refused with "renamed to 'NEW'". Every error is
 * one line, "FILE:LINE: KEY.PATH: what is wrong", with values escaped (esc.h). Strings,
 * lists and arrays are malloc'd into the struct, and owned by it (the caller frees them,
 * also after a failure: what was read so far is counted). Pure: no libuv, no wolfSSL. */
#ifndef TOLLGATE_CFGLOAD_H
#define TOLLGATE_CFGLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/config.h"
#include "tollgate/err.h"

#define TG_CFG_MAX_FILE (1024 * 1024) /* bytes of YAML in one file */
#define TG_CFG_MAX_ITEMS 4096         /* entries in any one list or mapping */
#define TG_CFG_MAX_DEPTH 32           /* nested lists and mappings */
#define TG_CFG_KEYPATH 160            /* "inbound[12].allow[3]" and the like */

enum tg_cfg_type { TG_CFG_T_SCALAR, TG_CFG_T_LIST, TG_CFG_T_MAPPING };

struct tg_cfg_node {
    enum tg_cfg_type type;
    size_t line;               /* 1-based */
    bool plain;                /* a scalar written without quotes */
    bool null;                 /* a plain "", "~" or "null": no value */
    char *str;                 /* a scalar's value, NUL-terminated, without NUL bytes inside */
    size_t n;                  /* entries of a list, pairs of a mapping */
    struct tg_cfg_node **kids; /* a list's entries; a mapping's key, value, key, value... */
    struct tg_cfg_node *next;  /* every node of a document, chained for tg_cfg_doc_free */
};

struct tg_cfg_doc {
    struct tg_cfg_node *root; /* NULL: the text was empty */
    struct tg_cfg_node *nodes;
};

/* Parses text (len bytes; no NUL needed); name stands for the file in messages. 0 with *doc
 * (tg_cfg_doc_free), or TG_ECONFIG / TG_ENOMEM with err. */
TG_MUST_USE int tg_cfg_doc_parse(const char *text, size_t len, const char *name,
                                 struct tg_cfg_doc *doc, char *err);
void tg_cfg_doc_free(struct tg_cfg_doc *doc);

/* The value of key in mapping m, or NULL; *key_node, when not NULL, gets the key's node. */
const struct tg_cfg_node *tg_cfg_get(const struct tg_cfg_node *m, const char *key,
                                     const struct tg_cfg_node **key_node);

/* One walk: the file's name for messages, the directory relative paths resolve against
 * (NULL: left as written), where the error goes, and the caller's own state. */
struct tg_cfg {
    const char *file;
    const char *base;
    char *err;
    void *user;
};

struct tg_cfg_field;

/* A handler for TG_CFG_FUNC (reads v into dst), or a check after a TG_CFG_MAP or after each
 * element of a TG_CFG_LIST (dst is the object just filled). obj is the object of the
 * mapping the key is in. 0 or an error (with err set). */
typedef int (*tg_cfg_fn)(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path,
                         void *dst, void *obj);
/* Checks one string of a TG_CFG_STRS list and may write a normal form into norm (room for
 * TG_CFG_NORM bytes; left "" to keep s). 0, or TG_EINVAL with why. */
#define TG_CFG_NORM 2049
typedef int (*tg_cfg_item_fn)(const char *s, char *norm, char *why);

enum tg_cfg_kind {
    TG_CFG_MAP,      /* a nested mapping read with sub into obj + off (0: the same object) */
    TG_CFG_LIST,     /* a list of mappings read with sub: array at off, size_t count at count */
    TG_CFG_STR,      /* char *, not empty; item, when set, checks it */
    TG_CFG_UINT,     /* unsigned integer of size bytes, min..max, written without quotes */
    TG_CFG_BOOL,     /* bool: true or false */
    TG_CFG_ENUM,     /* an integer of size bytes, one of choices (exact spelling) */
    TG_CFG_SIZE,     /* size_t: bytes, or a number with KiB or MiB, min..max */
    TG_CFG_DURATION, /* uint64_t milliseconds: "250ms", "10s", "5m", "1h", min..max (max 0: any) */
    TG_CFG_PATH,     /* char *, a file path resolved against the file's directory */
    TG_CFG_PATHS,    /* struct tg_strlist of paths */
    TG_CFG_ADDR,     /* struct tg_addr: IP:PORT or [IPv6]:PORT; port 0 allowed when min is 0 */
    TG_CFG_HOSTPORT, /* struct tg_addr: as ADDR, or a DNS name:PORT (len 0, text only) */
    TG_CFG_CIDR,     /* struct tg_mesh_dest's net, prefix and text: an address or a CIDR */
    TG_CFG_PORT,     /* uint16_t, 1..65535 */
    TG_CFG_PORTS,    /* struct tg_intlist of ports */
    TG_CFG_STRS,     /* struct tg_strlist of non-empty strings (item checks each), >= min */
    TG_CFG_IDS,      /* struct tg_strlist of workload SPIFFE IDs, at least min */
    TG_CFG_LABELS,   /* struct tg_labels: a mapping of label names to values */
    TG_CFG_FUNC,     /* fn reads the value into obj + off */
    TG_CFG_RENAMED,  /* an old spelling: refused, naming renamed */
};

struct tg_cfg_choice {
    const char *name;
    int value;
};

struct tg_cfg_field {
    const char *key;
    enum tg_cfg_kind kind;
    size_t off;
    size_t size;  /* UINT, ENUM: of the member; LIST: of one element */
    size_t count; /* LIST: offset of the size_t count */
    bool required;
    uint64_t min, max;
    const struct tg_cfg_choice *choices; /* ENUM: ends with a NULL name */
    const struct tg_cfg_field *sub;      /* MAP, LIST: ends with a NULL key */
    tg_cfg_fn fn;                        /* FUNC: the reader; MAP, LIST: a check */
    void (*init)(void *el);              /* LIST: defaults of a new element */
    tg_cfg_item_fn item;                 /* STR, STRS: checks each string */
    const char *renamed;                 /* RENAMED: the new spelling */
    const char *what; /* LIST: what the entries are; ENUM: what a value is ("a mode") */
};

#define TG_CFG_SIZEOF(type, m) sizeof(((type *)0)->m)
/* One row of a table: key, kind, offset; ROWX with more designated initialisers. */
#define TG_CFG_ROW(k, kd, o)                                                                       \
    {                                                                                              \
        .key = (k), .kind = (kd), .off = (o)                                                       \
    }
#define TG_CFG_ROWX(k, kd, o, ...)                                                                 \
    {                                                                                              \
        .key = (k), .kind = (kd), .off = (o), __VA_ARGS__                                          \
    }

/* Fills obj from the mapping m (path names it: "" at the top) by fields. */
TG_MUST_USE int tg_cfg_walk(struct tg_cfg *cfg, const struct tg_cfg_node *m, const char *path,
                            const struct tg_cfg_field *fields, void *obj);

/* One value v, of the kind f says, into obj + f->off (f->key is not looked at). */
TG_MUST_USE int tg_cfg_read(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path,
                            const struct tg_cfg_field *f, void *obj);
/* "FILE:LINE: PATH: what" (LINE left out when 0, PATH when empty or NULL); TG_ECONFIG. */
int tg_cfg_fail(const struct tg_cfg *cfg, size_t line, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* v is not the want'ed kind of node: says what it is instead ("want W, not a list"). */
int tg_cfg_wrong_type(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path,
                      const char *want);
/* "FILE: out of memory"; TG_ENOMEM. */
int tg_cfg_nomem(const struct tg_cfg *cfg);
/* The directory relative paths in the file name are resolved against, malloc'd into *base:
 * "a/b.yaml" -> "a", "b.yaml" -> NULL (left as written); absolute: put under the working
 * directory first. Symbolic links are kept (a ConfigMap mount swaps one on every update).
 * 0 or TG_ENOMEM. */
TG_MUST_USE int tg_cfg_base(const char *name, bool absolute, char **base);
/* "PARENT.KEY" into dst[TG_CFG_KEYPATH]. */
const char *tg_cfg_join(char *dst, const char *parent, const char *key);
/* A scalar with a value, else an error naming what was wanted. */
TG_MUST_USE int tg_cfg_scalar(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path,
                              const char **out);
/* v as a path resolved against cfg->base, malloc'd into *dst. */
TG_MUST_USE int tg_cfg_path(struct tg_cfg *cfg, const struct tg_cfg_node *v, const char *path,
                            const char *s, char **dst);
void tg_strlist_free(struct tg_strlist *l);
void tg_labels_free(struct tg_labels *l);

/* Grammars, each written once. A trust domain name without spiffe:// ("example.org"). */
TG_MUST_USE int tg_trust_domain_check(const char *s, char *why);
/* A SPIFFE ID of a workload (with a path). */
TG_MUST_USE int tg_workload_id_check(const char *s, char *why);
/* A DNS name or a numeric address, then ":PORT" (a name is resolved later: a->len stays 0). */
TG_MUST_USE int tg_hostport_parse(const char *s, struct tg_addr *out, char *err);
/* A size: bytes, or a number with KiB or MiB. */
TG_MUST_USE int tg_size_parse(const char *s, uint64_t *bytes, char *err);

/* The log levels and formats, as every binary's file spells them (enum tg_log_level and
 * tg_log_format values). */
extern const struct tg_cfg_choice tg_cfg_log_levels[];
extern const struct tg_cfg_choice tg_cfg_log_formats[];

/* The tables of the sections a sidecar's config and tollgate-cp's mesh files share, read
 * into a struct tg_config: "authorization", "rate_limits", "revocations", "mesh", and
 * "settings" (tollgate-cp's: the sidecar's tls and timeouts keys, and inbound.mode into
 * settings_mode); NULL for another name. */
const struct tg_cfg_field *tg_config_section_fields(const char *section);

#endif
