/* The systemd notification protocol (sd_notify(3)) without libsystemd: one datagram of
 * "KEY=value" lines to the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or an abstract
 * name when it starts with '@'), and the watchdog interval from $WATCHDOG_USEC when
 * $WATCHDOG_PID is unset or names this process. Outside systemd (no $NOTIFY_SOCKET) every
 * call is a no-op. */
#ifndef TOLLGATE_NOTIFY_H
#define TOLLGATE_NOTIFY_H

#include "tollgate/err.h"

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

struct tg_notify {
    int fd; /* -1: not under systemd (or not asked to notify) */
    struct sockaddr_un addr;
    socklen_t addr_len;
    uint64_t watchdog_usec; /* 0: no watchdog */
};

/* Parses a $NOTIFY_SOCKET value into addr and its length. TG_EINVAL (err names why) for an
 * empty, relative or too long name. */
TG_MUST_USE int tg_notify_parse_addr(const char *value, struct sockaddr_un *addr, socklen_t *len,
                                     char *err);

/* The watchdog interval from $WATCHDOG_USEC and $WATCHDOG_PID (either may be NULL): 0 in *usec
 * when usec is NULL or pid names another process; TG_EINVAL for a value that is not a
 * positive decimal number. */
TG_MUST_USE int tg_notify_parse_watchdog(const char *usec, const char *pid, pid_t self,
                                         uint64_t *out, char *err);

/* From the environment. A bad variable is an error (err says which); no $NOTIFY_SOCKET leaves
 * n->fd at -1 and every later call does nothing. */
TG_MUST_USE int tg_notify_open(struct tg_notify *n, char *err);

/* Sends msg (newline-separated KEY=value lines) as one datagram; 0 when not under systemd.
 * A failed send is returned (negative errno) for the caller to log; it changes nothing. */
int tg_notify_send(const struct tg_notify *n, const char *msg);

void tg_notify_close(struct tg_notify *n);

#endif
