/* What an idle app connection costs on a tunnel (issue 16: at most 0.25x haproxy's KB per
 * idle connection): once a stream's bytes have moved, the inbound sidecar gives its buffers
 * back to the worker's pool, as a direct connection's are, instead of holding a block per
 * direction for as long as the stream is open. Measured as bench/run.sh does: VmRSS after
 * IDLE app connections each made one round trip and stay open, less VmRSS before. */
#include "harness.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define IDLE 150 /* within the default pool: 2 tunnels of 100 streams */

static struct it_proc *a, *b;
static int echo_port, in_port, out_port, a_admin, b_admin;

static void setup(void)
{
    struct it_cfg bc, ac;

    it_setup();
    it_mesh_certs();
    it_echo_start("echo", &echo_port);
    IT_FREE_PORTS(&in_port, &out_port, &a_admin, &b_admin);
    bc = it_cfg_of(b_admin, "web", 1, NULL);
    ac = it_cfg_of(a_admin, "api", 1, NULL);
    bc.in[0] = (struct it_listener){"tun-in", in_port, echo_port, IT_API_ID, "tunnels: true"};
    ac.out[0] = (struct it_listener){"tun-out", out_port, in_port, IT_WEB_ID, "tunnel: \"on\""};
    it_cfg_write("b.yaml", &bc, NULL);
    it_cfg_write("a.yaml", &ac, NULL);
    b = it_sidecar_start("b", "b.yaml", b_admin, 0);
    a = it_sidecar_start("a", "a.yaml", a_admin, 0);
}

/* One connection through A that echoes msg once and stays open: its fd. */
static int held_round_trip(int i)
{
    char msg[32], got[32];
    int fd = it_connect(out_port, 5000);
    size_t n = (size_t)snprintf(msg, sizeof(msg), "idle stream %d\n", i);

    ck_assert_msg(fd >= 0, "connection %d: connect failed", i);
    ck_assert_msg(it_send_all(fd, msg, n), "connection %d: send failed", i);
    ck_assert_msg(it_recv_full(fd, got, n) == n && memcmp(got, msg, n) == 0,
                  "connection %d: no echo", i);
    return fd;
}

START_TEST(test_idle_tunnel_streams_hold_no_buffers)
{
    static int fds[IDLE];
    long a0, b0, a1, b1;
    double a_kb, b_kb;

    close(held_round_trip(-1)); /* the tunnel is up, the pools have their first blocks */
    it_sleep_ms(200);
    a0 = it_rss_kib(a->pid);
    b0 = it_rss_kib(b->pid);
    for (int i = 0; i < IDLE; i++)
        fds[i] = held_round_trip(i);
    it_sleep_ms(300);
    /* every one rode the tunnel (tunnel: on refuses otherwise) */
    ck_assert(it_stat(a_admin, "tollgate_tunnel_streams_total", "") >= IDLE + 1);
    a1 = it_rss_kib(a->pid);
    b1 = it_rss_kib(b->pid);
    a_kb = (double)(a1 - a0) / IDLE;
    b_kb = (double)(b1 - b0) / IDLE;
    fprintf(stderr, "%d idle tunnelled app connections: A +%.1f KiB, B +%.1f KiB each%s\n", IDLE,
            a_kb, b_kb, UNDER_ASAN ? " (ASan: not checked)" : "");
    /* Each side's own records for a stream are 2 to 3 KiB; a held 64 KiB block costs at
     * least a touched page, and B held two per stream. */
    if (!UNDER_ASAN) {
        ck_assert_msg(b_kb < 6.0, "B holds %.1f KiB per idle stream", b_kb);
        ck_assert_msg(a_kb < 6.0, "A holds %.1f KiB per idle app connection", a_kb);
    }
    for (int i = 0; i < IDLE; i++)
        close(fds[i]);
    ck_assert_int_eq(it_stop(a, 5000), 0);
    ck_assert_int_eq(it_stop(b, 5000), 0);
}
END_TEST

Suite *tg_test_suite(void)
{
    return IT_TEST_SUITE("tunmem", "tunmem", NULL, setup, it_teardown, 60,
                         test_idle_tunnel_streams_hold_no_buffers);
}
