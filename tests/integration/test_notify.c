/* systemd's notification protocol (notify.h), against a socket the test holds, as systemd
 * holds it for a Type=notify unit: READY=1 comes once every listener accepts, STOPPING=1 when
 * SIGTERM starts the drain, WATCHDOG=1 every WATCHDOG_USEC/2 while the workers answer and
 * not at all when WATCHDOG_PID names another process; a NOTIFY_SOCKET the sidecar cannot use
 * stops it at start with a message naming the variable. */
#include "check_main.h"
#include "harness.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/un.h>
#include <unistd.h>

static int sock = -1;
static char sock_name[64];
static int in_port, admin_port, echo_port;

/* An abstract socket (NOTIFY_SOCKET=@name), as systemd gives most units. */
static void setup(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct it_cfg c;
    socklen_t len;

    it_setup();
    it_mesh_certs();
    echo_port = 0;
    it_echo_start("echo", &echo_port);
    in_port = it_free_port();
    admin_port = it_free_port();
    snprintf(sock_name, sizeof(sock_name), "@tollgate-test-notify-%ld", (long)getpid());
    memcpy(sa.sun_path, sock_name, strlen(sock_name));
    sa.sun_path[0] = '\0';
    len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(sock_name));
    sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(sock, 0);
    ck_assert_msg(bind(sock, (struct sockaddr *)&sa, len) == 0, "bind %s: %s", sock_name,
                  strerror(errno));
    setenv("NOTIFY_SOCKET", sock_name, 1);
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    c = it_cfg_of(admin_port, "web", 2, "drain: 1s");
    c.in[0] = (struct it_listener){"web-in", in_port, echo_port, IT_API_ID, NULL};
    it_cfg_write("s.yaml", &c, NULL);
}

static void teardown(void)
{
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    if (sock >= 0)
        close(sock);
    sock = -1;
    it_teardown();
}

/* The next datagram within timeout_ms into buf (NUL-terminated); false on timeout. */
static bool recv_msg(char *buf, size_t cap, int timeout_ms)
{
    struct pollfd p = {.fd = sock, .events = POLLIN};
    ssize_t n;

    if (poll(&p, 1, timeout_ms) != 1)
        return false;
    n = recv(sock, buf, cap - 1, 0);
    ck_assert_int_ge(n, 0);
    buf[n] = '\0';
    return true;
}

/* Waits up to timeout_ms for a datagram containing needle; counts WATCHDOG=1 seen on the way. */
static bool wait_msg(const char *needle, int timeout_ms, char *got, size_t cap, int *watchdogs)
{
    uint64_t end = it_now_ms() + (uint64_t)timeout_ms;

    while (it_now_ms() < end) {
        if (!recv_msg(got, cap, (int)(end - it_now_ms())))
            return false;
        if (watchdogs != NULL && strstr(got, "WATCHDOG=1") != NULL)
            (*watchdogs)++;
        if (strstr(got, needle) != NULL)
            return true;
    }
    return false;
}

static struct it_proc *spawn(void)
{
    const char *argv[] = {it_env("TG_BIN"), "run", "-c", "s.yaml", NULL};

    return it_spawn("s", argv, IT_STDIN_NULL);
}

START_TEST(test_ready_after_listeners_then_stopping_on_sigterm)
{
    char msg[512];
    struct it_proc *s = spawn();
    int fd, st;

    ck_assert_msg(wait_msg("READY=1", 10000, msg, sizeof(msg), NULL), "no READY=1");
    /* the moment READY=1 is read, the listener accepts (one attempt, no retry) */
    fd = it_connect(in_port, 1000);
    ck_assert_msg(fd >= 0, "READY=1 came but the listener refused: %s", strerror(-fd));
    close(fd);
    ck_assert_msg(strstr(msg, "STATUS=ready: " IT_WEB_ID ", 1 listeners") != NULL, "%s", msg);
    ck_assert_msg(strstr(msg, "MAINPID=") != NULL, "%s", msg);
    st = it_stop(s, 10000);
    ck_assert_int_eq(st, 0);
    ck_assert_msg(wait_msg("STOPPING=1", 1000, msg, sizeof(msg), NULL), "no STOPPING=1");
    ck_assert_msg(strstr(msg, "STATUS=draining (SIGTERM)") != NULL, "%s", msg);
}
END_TEST

START_TEST(test_watchdog_pings_at_half_the_interval)
{
    char msg[512];
    struct it_proc *s;
    int pings = 0;
    uint64_t t0;

    setenv("WATCHDOG_USEC", "200000", 1); /* 200 ms: a ping every 100 ms */
    s = spawn();
    ck_assert_msg(wait_msg("READY=1", 10000, msg, sizeof(msg), &pings), "no READY=1");
    pings = 0;
    t0 = it_now_ms();
    while (pings < 8 && it_now_ms() - t0 < 3000)
        if (wait_msg("WATCHDOG=1", 1000, msg, sizeof(msg), NULL))
            pings++;
    ck_assert_msg(pings == 8, "%d WATCHDOG=1 in %llu ms", pings,
                  (unsigned long long)(it_now_ms() - t0));
    /* 8 pings, 100 ms apart: about 700 to 800 ms, never as slow as the 200 ms limit */
    ck_assert_msg(it_now_ms() - t0 < 8 * 200, "8 pings took %llu ms",
                  (unsigned long long)(it_now_ms() - t0));
    ck_assert_int_eq(it_stop(s, 10000), 0);
}
END_TEST

/* The thread id of the sidecar's thread named comm (/proc/PID/task/TID/comm); 0: none. */
static pid_t find_thread(pid_t pid, const char *comm)
{
    char path[400], name[32];
    struct dirent *e;
    pid_t tid = 0;
    DIR *d;

    snprintf(path, sizeof(path), "/proc/%ld/task", (long)pid);
    ck_assert_ptr_nonnull(d = opendir(path));
    while (tid == 0 && (e = readdir(d)) != NULL) {
        FILE *f;

        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/%ld/task/%s/comm", (long)pid, e->d_name);
        if ((f = fopen(path, "r")) == NULL)
            continue;
        if (fgets(name, sizeof(name), f) != NULL && strncmp(name, comm, strlen(comm)) == 0 &&
            name[strlen(comm)] == '\n')
            tid = (pid_t)atol(e->d_name);
        fclose(f);
    }
    closedir(d);
    return tid;
}

/* A worker stuck (one thread stopped with ptrace, the others running): no WATCHDOG=1 while it
 * is stuck, and the log says which worker; once it runs again, the pings come back. */
START_TEST(test_stuck_worker_stops_the_watchdog)
{
    char msg[512];
    struct it_proc *s;
    int pings = 0, st;
    pid_t tid;

    setenv("WATCHDOG_USEC", "200000", 1);
    s = spawn();
    ck_assert_msg(wait_msg("READY=1", 10000, msg, sizeof(msg), NULL), "no READY=1");
    ck_assert_msg(wait_msg("WATCHDOG=1", 1000, msg, sizeof(msg), NULL), "no WATCHDOG=1");
    ck_assert_msg((tid = find_thread(s->pid, "tg-worker-1")) > 0, "no thread tg-worker-1");
    ck_assert_msg(ptrace(PTRACE_SEIZE, tid, NULL, NULL) == 0, "PTRACE_SEIZE %ld: %s", (long)tid,
                  strerror(errno));
    ck_assert_msg(ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) == 0, "PTRACE_INTERRUPT: %s",
                  strerror(errno));
    ck_assert_int_eq(waitpid(tid, &st, __WALL), tid);
    ck_assert(WIFSTOPPED(st));
    /* one tick may still have been earned before the stop: then none for 600 ms (3 ticks) */
    wait_msg("WATCHDOG=1", 250, msg, sizeof(msg), NULL);
    wait_msg("WATCHDOG=1", 600, msg, sizeof(msg), &pings);
    ck_assert_int_eq(pings, 0);
    ck_assert(it_wait_file_contains(s->err_path, "watchdog: worker 1 has not answered", 2000));
    ck_assert_int_eq(ptrace(PTRACE_DETACH, tid, NULL, NULL), 0);
    ck_assert_msg(wait_msg("WATCHDOG=1", 1000, msg, sizeof(msg), NULL), "no WATCHDOG=1 again");
    ck_assert(it_wait_file_contains(s->err_path, "watchdog: every worker answers again", 2000));
    ck_assert_int_eq(it_stop(s, 10000), 0);
}
END_TEST

START_TEST(test_watchdog_for_another_pid_is_not_ours)
{
    char msg[512];
    struct it_proc *s;
    int pings = 0;

    setenv("WATCHDOG_USEC", "100000", 1);
    setenv("WATCHDOG_PID", "1", 1); /* the parent's watchdog, passed down: not ours */
    s = spawn();
    ck_assert_msg(wait_msg("READY=1", 10000, msg, sizeof(msg), &pings), "no READY=1");
    wait_msg("WATCHDOG=1", 500, msg, sizeof(msg), &pings);
    ck_assert_int_eq(pings, 0);
    ck_assert_int_eq(it_stop(s, 10000), 0);
}
END_TEST

START_TEST(test_bad_notify_socket_stops_at_start)
{
    static const char *const bad[][2] = {
        {"run/notify", "neither an absolute path"},
        {"@", "NOTIFY_SOCKET is 1 bytes"},
    };
    char *err;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct it_proc *s;

        setenv("NOTIFY_SOCKET", bad[i][0], 1);
        s = spawn();
        s->must_exit_0 = false;
        ck_assert_int_eq(it_wait(s, 10000), 1);
        err = it_read_file(s->err_path, NULL);
        ck_assert_msg(err != NULL && strstr(err, bad[i][1]) != NULL, "%s: %s", bad[i][0],
                      err ? err : "(no stderr)");
        free(err);
        it_stop(s, 1000);
    }
    setenv("WATCHDOG_USEC", "soon", 1);
    setenv("NOTIFY_SOCKET", sock_name, 1);
    {
        struct it_proc *s = spawn();

        s->must_exit_0 = false;
        ck_assert_int_eq(it_wait(s, 10000), 1);
        ck_assert(it_file_contains(s->err_path, "WATCHDOG_USEC \"soon\" is not a decimal"));
    }
}
END_TEST

/* Control-plane mode: no READY=1 while there is no identity (the listener is not open yet),
 * then READY=1 once the first certificate has come and the listener accepts. */
START_TEST(test_control_plane_ready_only_with_an_identity)
{
    char msg[512];
    struct it_proc *s;
    struct it_cfg c = it_cfg_of(0, NULL, 1, NULL);
    int cp_port = it_free_port(), fd;

    it_certs("issue", "--ca", "ca", "--out", "cp", "--spiffe", IT_CP_ID, NULL);
    it_write_file("tokens.txt", "bbbbbbbbbbbbbbbbbbbbbbbb default web\n");
    it_write_file("s.token", "bbbbbbbbbbbbbbbbbbbbbbbb\n");
    it_cp_cfg_write("cp.yaml", cp_port, 0, "tokens: tokens.txt\n");
    c.in[0] = (struct it_listener){"web-in", in_port, echo_port, IT_API_ID, NULL};
    it_cfg_write_cp("s.yaml", admin_port, cp_port, "s.token", &c);
    s = spawn();
    ck_assert_msg(wait_msg("STATUS=waiting for an identity", 10000, msg, sizeof(msg), NULL),
                  "no waiting STATUS");
    ck_assert_msg(!wait_msg("READY=1", 1000, msg, sizeof(msg), NULL), "READY=1 without identity");
    fd = it_connect(in_port, 1000);
    ck_assert_msg(fd < 0, "the listener accepts before the identity came");
    it_cp_start("cp", "cp.yaml", cp_port);
    ck_assert_msg(wait_msg("READY=1", 15000, msg, sizeof(msg), NULL), "no READY=1 after the cp");
    fd = it_connect(in_port, 1000);
    ck_assert_msg(fd >= 0, "READY=1 came but the listener refused: %s", strerror(-fd));
    close(fd);
    ck_assert_int_eq(it_stop(s, 10000), 0);
}
END_TEST

Suite *tg_test_suite(void)
{
    return IT_TEST_SUITE(
        "notify", "notify", NULL, setup, teardown, 60,
        test_ready_after_listeners_then_stopping_on_sigterm,
        test_watchdog_pings_at_half_the_interval, test_stuck_worker_stops_the_watchdog,
        test_watchdog_for_another_pid_is_not_ours, test_bad_notify_socket_stops_at_start,
        test_control_plane_ready_only_with_an_identity);
}
