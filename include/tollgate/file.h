/* The one whole-file reader: every file a user names (configs, PEM certificates and keys,
 * CRLs, token files, mesh files) is read here, so the limits, the checks and the messages
 * are the same everywhere.
 *
 * tg_file_read() reads all of PATH into a NUL-terminated malloc'd buffer. It refuses a path
 * that is not a regular file, a file over max bytes (TG_ETOOBIG) and a read error (TG_EIO,
 * never a short result), with one line in err: "[WHAT: ]PATH: cannot open: ...",
 * "[WHAT: ]PATH: larger than N bytes". With TG_FILE_SECRET (keys, tokens) every buffer that
 * held the file's bytes is wiped before it is freed, on the error paths and when the buffer
 * grows; the caller frees the result with tg_wipe_free(). Pure: no libuv, any thread. */
#ifndef TOLLGATE_FILE_H
#define TOLLGATE_FILE_H

#include <stddef.h>

#include "tollgate/err.h"

#define TG_FILE_MAX (1024 * 1024) /* the limit of every file we read, unless a caller says */

enum { TG_FILE_SECRET = 1 };

/* what: the config key that names the file, or NULL. *out is set only on success. */
TG_MUST_USE int tg_file_read(const char *what, const char *path, size_t max, unsigned flags,
                             char **out, size_t *len, char *err);

/* Wipes n bytes at p, then frees it. NULL is fine. */
void tg_wipe_free(void *p, size_t n);

#endif
