/* sd_notify(3) without libsystemd: see notify.h. */
#include "tollgate/notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int tg_notify_parse_addr(const char *value, struct sockaddr_un *addr, socklen_t *len, char *err)
{
    size_t n = value != NULL ? strlen(value) : 0;

    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    if (n == 0)
        return tg_err_set(err, TG_EINVAL, "NOTIFY_SOCKET is empty");
    if (value[0] != '/' && value[0] != '@')
        return tg_err_set(err, TG_EINVAL,
                          "NOTIFY_SOCKET \"%.64s\" is neither an absolute path nor an abstract "
                          "name (@...)",
                          value);
    if (n >= sizeof(addr->sun_path) || (value[0] == '@' && n < 2))
        return tg_err_set(err, TG_EINVAL, "NOTIFY_SOCKET is %zu bytes: a name is 2 to %zu", n,
                          sizeof(addr->sun_path) - 1);
    memcpy(addr->sun_path, value, n);
    if (value[0] == '@') /* abstract: a leading NUL, the length counts the name exactly */
        addr->sun_path[0] = '\0';
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (value[0] == '/'));
    return 0;
}

static int parse_u64(const char *s, const char *name, uint64_t *out, char *err)
{
    char *end;
    unsigned long long v;

    if (s[0] < '0' || s[0] > '9')
        return tg_err_set(err, TG_EINVAL, "%s \"%.32s\" is not a decimal number", name, s);
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v == 0)
        return tg_err_set(err, TG_EINVAL, "%s \"%.32s\" is not a positive decimal number", name, s);
    *out = v;
    return 0;
}

int tg_notify_parse_watchdog(const char *usec, const char *pid, pid_t self, uint64_t *out,
                             char *err)
{
    uint64_t v, p;
    int rc;

    *out = 0;
    if (usec == NULL)
        return 0;
    if ((rc = parse_u64(usec, "WATCHDOG_USEC", &v, err)) < 0)
        return rc;
    if (pid != NULL) {
        if ((rc = parse_u64(pid, "WATCHDOG_PID", &p, err)) < 0)
            return rc;
        if (p != (uint64_t)self) /* meant for another process (our parent's watchdog) */
            return 0;
    }
    *out = v;
    return 0;
}

int tg_notify_open(struct tg_notify *n, char *err)
{
    const char *sock = getenv("NOTIFY_SOCKET");
    int rc;

    memset(n, 0, sizeof(*n));
    n->fd = -1;
    if (sock == NULL)
        return 0;
    if ((rc = tg_notify_parse_addr(sock, &n->addr, &n->addr_len, err)) < 0)
        return rc;
    if ((rc = tg_notify_parse_watchdog(getenv("WATCHDOG_USEC"), getenv("WATCHDOG_PID"), getpid(),
                                       &n->watchdog_usec, err)) < 0)
        return rc;
    if ((n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
        return tg_err_set(err, -errno, "NOTIFY_SOCKET: socket: %s", strerror(errno));
    return 0;
}

int tg_notify_send(const struct tg_notify *n, const char *msg)
{
    if (n->fd < 0)
        return 0;
    if (sendto(n->fd, msg, strlen(msg), MSG_NOSIGNAL, (const struct sockaddr *)&n->addr,
               n->addr_len) < 0)
        return -errno;
    return 0;
}

void tg_notify_close(struct tg_notify *n)
{
    if (n->fd >= 0)
        close(n->fd);
    n->fd = -1;
}
