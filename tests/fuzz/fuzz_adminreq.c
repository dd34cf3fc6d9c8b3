/* Fuzzing of the admin request head parser and the access rule (adminreq.h). The bytes are
 * a head ending where the input ends: parsing must not crash; an accepted head's method,
 * path and Host must point inside the input, the method be a token and the path start with
 * '/' and hold only visible ASCII; a non-loopback peer is always refused, and a refusal of a
 * loopback peer is always one of the browser rules. */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "tollgate/adminreq.h"

static int inside(const char *p, size_t n, const uint8_t *buf, size_t size)
{
    return (const uint8_t *)p >= buf && (const uint8_t *)p + n <= buf + size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tg_adminreq rq;
    struct sockaddr_in lo = {.sin_family = AF_INET}, out = {.sin_family = AF_INET};
    const char *p = (const char *)data;
    const char *why;

    if (tg_adminreq_parse(p, size, &rq) != 0)
        return 0;
    if (rq.method_len == 0 || !inside(rq.method, rq.method_len, data, size) || rq.path_len == 0 ||
        !inside(rq.path, rq.path_len, data, size) || rq.path[0] != '/')
        abort();
    for (size_t i = 0; i < rq.path_len; i++)
        if (rq.path[i] <= 0x20 || rq.path[i] >= 0x7f || rq.path[i] == '?')
            abort();
    if (rq.host != NULL && !inside(rq.host, rq.host_len, data, size))
        abort();
    lo.sin_addr.s_addr = htonl(0x7f000001);
    out.sin_addr.s_addr = htonl(0x0a000001);
    if (tg_adminreq_refusal(&rq, (struct sockaddr *)&out) == NULL)
        abort();
    why = tg_adminreq_refusal(&rq, (struct sockaddr *)&lo);
    if ((rq.origin || rq.cross_site || rq.form_type) && why == NULL)
        abort();
    if (!rq.origin && !rq.cross_site && !rq.form_type && why != NULL &&
        (rq.host == NULL || rq.host_len == 0 || strstr(why, "Host") == NULL))
        abort();
    return 0;
}
