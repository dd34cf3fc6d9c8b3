#include "tollgate/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void tg_wipe_free(void *p, size_t n)
{
    if (p != NULL)
        explicit_bzero(p, n);
    free(p);
}

static int fail(char *err, int code, const char *what, const char *path, const char *why)
{
    return tg_err_set(err, code, "%s%s%s: %s", what != NULL ? what : "", what != NULL ? ": " : "",
                      path, why);
}

/* A new buffer of cap bytes holding the n bytes of old; old is wiped (secret) and freed.
 * realloc is not used: it could leave a copy of a secret behind. */
static char *grow(char *old, size_t n, size_t cap, bool secret)
{
    char *b = malloc(cap);

    if (b != NULL && n > 0)
        memcpy(b, old, n);
    if (secret)
        tg_wipe_free(old, n);
    else
        free(old);
    return b;
}

int tg_file_read(const char *what, const char *path, size_t max, unsigned flags, char **out,
                 size_t *len, char *err)
{
    bool secret = (flags & TG_FILE_SECRET) != 0;
    char *buf = NULL, why[TG_ERRLEN];
    size_t n = 0, cap;
    struct stat st;
    int rc, fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        snprintf(why, sizeof(why), "cannot open: %s", tg_strerror(-errno));
        return fail(err, TG_EIO, what, path, why);
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = fail(err, TG_EIO, what, path, "cannot read: not a regular file");
        goto fail;
    }
    /* the size is a hint (a file may change while we read, /proc reports 0): read to EOF;
     * one byte more than the size so that EOF is seen without growing */
    cap = (st.st_size > 0 && (size_t)st.st_size <= max ? (size_t)st.st_size + 1 : 4096) + 1;
    if ((buf = malloc(cap)) == NULL) {
        rc = fail(err, TG_ENOMEM, what, path, "out of memory");
        goto fail;
    }
    for (;;) {
        ssize_t r;

        if (n + 1 == cap) {
            if (n > max)
                break;
            cap = cap - 1 > max / 2 ? max + 2 : 2 * cap;
            if ((buf = grow(buf, n, cap, secret)) == NULL) {
                rc = fail(err, TG_ENOMEM, what, path, "out of memory");
                goto fail;
            }
        }
        r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(why, sizeof(why), "cannot read: %s", tg_strerror(-errno));
            rc = fail(err, TG_EIO, what, path, why);
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > max) {
        snprintf(why, sizeof(why), "larger than %zu bytes", max);
        rc = fail(err, TG_ETOOBIG, what, path, why);
        goto fail;
    }
    close(fd);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
fail:
    close(fd);
    if (secret)
        tg_wipe_free(buf, cap);
    else
        free(buf);
    return rc;
}
