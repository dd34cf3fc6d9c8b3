/* Error codes: 0 ok, negative error. libuv's UV_E* codes pass through unchanged; ours are
 * TG_E*, in -1000..-1999, clear of libuv's. tg_strerror() names both. */
#ifndef TOLLGATE_ERR_H
#define TOLLGATE_ERR_H

#include <stddef.h>

#define TG_ERRLEN 256
#define TG_MUST_USE __attribute__((warn_unused_result))
#define TG_NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* p without its const, for the interfaces that take a non-const pointer they do not write
 * through (protobuf-c's string fields, some wolfSSL calls) and for freeing a buffer held as
 * const. A union rather than a cast, so that -Wcast-qual keeps finding the accidental ones. */
static inline void *tg_unconst(const void *p)
{
    union {
        const void *c;
        void *v;
    } u = {.c = p};

    return u.v;
}

enum {
    TG_ENOMEM = -1000,  /* allocation failed */
    TG_EINVAL = -1001,  /* bad argument or input (the err text says which) */
    TG_ECONFIG = -1002, /* configuration file is wrong */
    TG_ETLS = -1003,    /* TLS library failure */
    TG_EAGAIN = -1004,  /* needs more input / output room; call again */
    TG_EPEER = -1005,   /* peer certificate refused (the err text says why) */
    TG_EIO = -1006,     /* file could not be read */
    TG_ECLOSED = -1007, /* peer closed (TLS close_notify or EOF) */
    TG_ETOOBIG = -1008, /* input over a size limit */
    TG_ESPIFFE = -1009, /* not a valid SPIFFE ID */
};

/* Static string naming a TG_E* or UV_E* code. Thread-safe. */
const char *tg_strerror(int code);

/* Writes "fmt..." into err (TG_ERRLEN bytes) unless err is NULL. Returns code. Formats with
 * tg_esc_vformat (esc.h): an argument cannot break the text into lines or hide in it, and one
 * the format quotes ("\"%s\"", '%s') cannot close its quotes. */
int tg_err_set(char *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
