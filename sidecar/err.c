#include "tollgate/err.h"
#include "tollgate/esc.h"

#include <stdarg.h>
#include <uv.h>

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
        return code < 0 && code > -1000 ? uv_strerror(code) : "unknown error";
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
