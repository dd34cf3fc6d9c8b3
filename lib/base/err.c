#include "tollgate/err.h"
#include "tollgate/esc.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* libuv's codes in this range are -errno on Linux; its texts are glibc's with a lower-case
 * first letter, which we keep, so that this library links without libuv (STYLE.md). */
static const char *errno_text(int e)
{
    static _Thread_local char buf[128];
    const char *s = strerror_r(e, buf, sizeof(buf)); /* GNU: may return a static string */

    if (s != buf)
        snprintf(buf, sizeof(buf), "%s", s);
    buf[0] = (char)tolower((unsigned char)buf[0]);
    return buf;
}

const char *tg_strerror(int code)
{
    switch (code) {
    case 0:
        return "ok";
    case TG_ENOMEM:
        return "out of memory";
    case TG_EINVAL:
        return "invalid input";
    case TG_ECONFIG:
        return "bad configuration";
    case TG_ETLS:
        return "TLS library error";
    case TG_EAGAIN:
        return "try again";
    case TG_EPEER:
        return "peer certificate refused";
    case TG_EIO:
        return "I/O error";
    case TG_ECLOSED:
        return "closed by peer";
    case TG_ETOOBIG:
        return "over size limit";
    case TG_ESPIFFE:
        return "not a valid SPIFFE ID";
    default:
        return code < 0 && code > -1000 ? errno_text(-code) : "unknown error";
    }
}

int tg_err_set(char *err, int code, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return code;
    va_start(ap, fmt);
    tg_esc_vformat(err, TG_ERRLEN, fmt, ap);
    va_end(ap);
    return code;
}
