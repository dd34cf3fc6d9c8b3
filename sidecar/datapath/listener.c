/* Listening sockets: one per worker per listener, all bound with SO_REUSEPORT so the
 * kernel spreads new connections across the workers. */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tollgate/worker.h"

#define BACKLOG 1024

int tg_listener_probe(const struct tg_addr *addr, char *err)
{
    int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1, rc = 0;

    if (fd < 0)
        return tg_err_set(err, -errno, "listen %s: socket: %s", addr->text, strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)); /* TIME_WAIT is fine */
    if (bind(fd, (const struct sockaddr *)&addr->ss, addr->len) < 0)
        rc = tg_err_set(err, -errno, "listen %s: %s%s", addr->text, strerror(errno),
                        errno == EADDRINUSE ? " (another process holds it)" : "");
    close(fd);
    return rc;
}

int tg_listener_bind(uv_loop_t *loop, uv_tcp_t *tcp, const struct tg_addr *addr,
                     uv_connection_cb on_conn, char *err)
{
    int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1, rc;

    if (fd < 0)
        return tg_err_set(err, -errno, "listen %s: socket: %s", addr->text, strerror(errno));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
        rc = -errno;
        close(fd);
        return tg_err_set(err, rc, "listen %s: setsockopt: %s", addr->text, strerror(-rc));
    }
    if (addr->ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&addr->ss, addr->len) < 0) {
        rc = -errno;
        close(fd);
        return tg_err_set(err, rc, "listen %s: %s", addr->text, strerror(-rc));
    }
    if ((rc = uv_tcp_init(loop, tcp)) < 0) {
        close(fd);
        return tg_err_set(err, rc, "listen %s: %s", addr->text, uv_strerror(rc));
    }
    if ((rc = uv_tcp_open(tcp, fd)) < 0 ||
        (rc = uv_listen((uv_stream_t *)tcp, BACKLOG, on_conn)) < 0) {
        /* the handle owns fd now: closing the handle closes it */
        uv_close((uv_handle_t *)tcp, NULL);
        return tg_err_set(err, rc, "listen %s: %s", addr->text, uv_strerror(rc));
    }
    return 0;
}
