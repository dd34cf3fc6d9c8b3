/* Integration test harness: real processes on 127.0.0.1, one temporary directory per test.
 *
 * Use it_setup/it_teardown as a Check *checked* fixture (it runs in the forked test process).
 * it_setup makes a fresh directory and chdir()s into it, so every file name below is
 * relative to it. A guardian process removes the directory when the test process ends,
 * however it ends: a failed ck_assert _exit()s without running the teardown, so the
 * teardown cannot be the only cleaner. A test that did not reach it_teardown gets the tails
 * of its processes' logs printed on stderr first (set IT_KEEP=1 to keep the directory).
 *
 * Processes: spawned with fork/exec from the test's main thread only (PR_SET_PDEATHSIG is
 * tied to the thread that forks). Their stdout/stderr go to NAME.out / NAME.err. Nothing
 * outlives the test: PDEATHSIG, Check's kill of the process group, and it_teardown, which
 * stops every process still running (SIGTERM, bounded wait, SIGKILL, reap).
 *
 * Every wait has a deadline and reports failure instead of hanging. Helpers that cannot
 * sensibly continue (a spawn that fails, a cert tool that fails) ck_assert themselves;
 * waits and probes return a result for the test to assert with its own message. */
#ifndef TG_IT_HARNESS_H
#define TG_IT_HARNESS_H

#include <check.h>
#include "check_main.h"
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define IT_MAX_PROCS 32
#define IT_LINE_MAX 4096

/* ---- fixture ------------------------------------------------------------------------ */

void it_setup(void);
void it_teardown(void);

/* A test case named tcase, added to s, that runs tests[0..n-1] once each between setup and
 * teardown (a checked fixture; either may be NULL), each within seconds. Returns it, for what
 * the file adds (loop tests). tests/CMakeLists.txt finds the name in IT_TEST_CASE(s, "name"
 * and IT_TEST_SUITE("suite", "name" to run each test case as a ctest test of its own. */
TCase *it_test_case_of(Suite *s, const char *tcase, void (*setup)(void), void (*teardown)(void),
                       int seconds, const TTest *const *tests, size_t n);
/* A suite named suite of that one test case: what most test files are. *tc, unless tc is
 * NULL, gets the test case. */
Suite *it_test_suite_of(const char *suite, const char *tcase, TCase **tc, void (*setup)(void),
                        void (*teardown)(void), int seconds, const TTest *const *tests, size_t n);
#define IT_TEST_CASE(s, tcase, setup, teardown, seconds, ...)                                      \
    it_test_case_of(s, tcase, setup, teardown, seconds, TG_TEST_LIST(__VA_ARGS__))
#define IT_TEST_SUITE(suite, tcase, tc, setup, teardown, seconds, ...)                             \
    it_test_suite_of(suite, tcase, tc, setup, teardown, seconds, TG_TEST_LIST(__VA_ARGS__))
const char *it_dir(void);             /* absolute path of this test's directory */
const char *it_env(const char *name); /* ck_asserts that the variable is set */
uint64_t it_now_ms(void);             /* CLOCK_MONOTONIC */
void it_sleep_ms(int ms);

/* ---- processes ---------------------------------------------------------------------- */

struct it_proc {
    pid_t pid;        /* 0 once reaped */
    int status;       /* exit code, or 128 + signal; valid once reaped */
    int stdin_fd;     /* write end of the child's stdin when spawned with a pipe, else -1 */
    bool must_exit_0; /* it_teardown fails the test if it stopped with another status */
    char name[64];
    char out_path[PATH_MAX + 80];
    char err_path[PATH_MAX + 80];
};

enum it_stdin { IT_STDIN_NULL, IT_STDIN_PIPE };

/* Starts argv[0] (a path) with argv. The process is owned by the harness registry. */
struct it_proc *it_spawn(const char *name, const char *const argv[], enum it_stdin in);

/* Waits up to timeout_ms for the process to exit on its own. Returns its status
 * (exit code or 128 + signal), or -1 if it is still running. */
int it_wait(struct it_proc *p, int timeout_ms);

/* The resident set of pid in KiB (VmRSS), or -1. */
long it_rss_kib(pid_t pid);

/* SIGTERM, up to timeout_ms for it to exit, then SIGKILL and reap. Returns the status.
 * Safe to call again on a reaped process (returns the recorded status). */
int it_stop(struct it_proc *p, int timeout_ms);

/* The openssl CLI: $OPENSSL, else /usr/bin/openssl or /usr/local/bin/openssl. */
const char *it_openssl(void);

/* Runs argv to completion with input on stdin (NULL: /dev/null). Kills it at timeout_ms.
 * Returns the exit status, or -1 on timeout. *out / *err (if not NULL) get its output,
 * malloc'd; the caller frees them. */
int it_run(const char *const argv[], const char *input, int timeout_ms, char **out, char **err);

/* ---- files -------------------------------------------------------------------------- */

void it_write_file(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes to NAME.tmp, then rename()s it over name: the way a rotating agent replaces it. */
void it_replace_file(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *it_read_file(const char *name, size_t *len); /* malloc'd, NUL-terminated; NULL if none */
bool it_file_contains(const char *name, const char *needle);
/* Waits until name contains needle. */
bool it_wait_file_contains(const char *name, const char *needle, int timeout_ms);

/* Lines of name that contain every one of the NULL-terminated substrings. */
int it_count_lines(const char *name, ...) __attribute__((sentinel));
/* Copies the last such line into dst (cap bytes). */
bool it_last_line(const char *name, char *dst, size_t cap, ...) __attribute__((sentinel));
/* Waits until at least min lines match; returns the count seen last. */
int it_wait_lines(const char *name, int min, int timeout_ms, ...) __attribute__((sentinel));

/* The string value of "key":"..." in a flat JSON line (no unescaping). False if absent/null. */
bool it_json_str(const char *line, const char *key, char *dst, size_t cap);
/* The numeric value of "key":N; -1 if absent. */
long long it_json_num(const char *line, const char *key);
/* Waits up to 5 s until exactly one line of the access log name contains match, and copies it
 * into line (IT_LINE_MAX bytes); ck_asserts that it came and that it has outcome "ok". */
void it_log_line_ok(const char *name, const char *match, char *line);
/* ck_asserts that line's "key" is the string want. */
void it_expect_json_str(const char *line, const char *key, const char *want);

/* Serial numbers are compared after lowercasing and dropping ':' and leading zeros. */
void it_serial_norm(const char *in, char *dst, size_t cap);

/* ---- certificates ------------------------------------------------------------------- */

/* `openssl x509 -extfile` text of an X.509-SVID leaf whose URI SAN is the one %s. */
#define IT_SVID_EXT                                                                                \
    "basicConstraints = critical, CA:FALSE\n"                                                      \
    "keyUsage = critical, digitalSignature\n"                                                      \
    "extendedKeyUsage = serverAuth, clientAuth\n"                                                  \
    "subjectAltName = URI:%s\n"                                                                    \
    "subjectKeyIdentifier = hash\n"                                                                \
    "authorityKeyIdentifier = keyid\n"

/* Runs $TG_CERTS_BIN with the NULL-terminated arguments; ck_asserts it exits 0. */
void it_certs(const char *arg, ...) __attribute__((sentinel));
/* Runs bin with the arguments from arg on, up to a NULL; ck_asserts it exits 0 within 30 s. */
void it_tool_v(const char *bin, const char *arg, va_list ap);
/* The normalised serial of the first certificate in pem, by `tollgate-certs show`. */
void it_cert_serial(const char *pem, char *dst, size_t cap);
/* Its SHA-256 fingerprint as `tollgate-certs show` prints it. */
void it_cert_sha256(const char *pem, char *dst, size_t cap);

/* `openssl ca` as CA (CA.pem, CA.key) with args from fmt ("-revoke api.pem"), on its own
 * database in the test directory (CA-ca.cnf, CA-index.txt, CA-crlnumber: made on first use,
 * then kept). ck_asserts that it exits 0. */
void it_openssl_ca(const char *ca, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Replaces CA's database with the n serials (hex, upper case) revoked. */
void it_crl_index(const char *ca, const char *const *serials, size_t n);
/* A CRL of CA listing what its database holds revoked, into out in one step (rename, as a
 * rotating agent does): valid for valid_s seconds, or when valid_s <= 0 stale (its
 * nextUpdate a day ago, so no wait is needed for it to go stale). */
void it_crl(const char *ca, const char *out, int valid_s);

/* ---- network ------------------------------------------------------------------------ */

/* A loopback port that nothing listens on now and that this test has not handed out. */
int it_free_port(void);
/* Sets *dst[0..n-1] to distinct free ports: IT_FREE_PORTS(&in_port, &admin). */
void it_free_ports_of(int *const *dst, size_t n);
#define IT_FREE_PORTS(...)                                                                         \
    it_free_ports_of((int *const[]){__VA_ARGS__},                                                  \
                     sizeof((int *const[]){__VA_ARGS__}) / sizeof(int *))
/* Connects to 127.0.0.1:port with SO_RCVTIMEO/SO_SNDTIMEO = timeout_ms. Returns the fd,
 * or -errno. */
int it_connect(int port, int timeout_ms);
/* The same from source address src (IPv4, any port; NULL: the kernel's choice). */
int it_connect_from(const char *src, int port, int timeout_ms);
bool it_wait_port(int port, int timeout_ms);
int it_local_port(int fd);
bool it_send_all(int fd, const void *buf, size_t len);
/* Reads until len bytes, EOF, an error or a timeout. Returns the bytes read. */
size_t it_recv_full(int fd, void *buf, size_t len);
/* 0 on EOF; 1 if data arrived instead; -errno on error (-EAGAIN: timed out). */
int it_recv_eof(int fd);
/* connect, send msg, read the same number of bytes, compare. Returns the client's local
 * port (to find its access-log line), or -1 with why in err (cap 256). */
int it_round_trip(int port, const char *msg, char *err);

/* HTTP/1.1 request to 127.0.0.1:port; returns the status (or -1) and *body (malloc'd). */
int it_http(int port, const char *method, const char *path, char **body);
bool it_wait_http(int port, const char *path, int want_status, int timeout_ms);

/* /stats: sum of the series of metric name whose labels include every `k="v"` of labels
 * (comma separated, may be ""). -1 when no series matched. */
double it_metric(const char *stats, const char *name, const char *labels);
double it_stat(int admin_port, const char *name, const char *labels);
/* Waits until it_stat() >= min; returns the value seen last. */
double it_wait_stat(int admin_port, const char *name, const char *labels, double min,
                    int timeout_ms);

/* `openssl s_client` (TLS 1.3) to port presenting CERT.pem/CERT.key, trusting ca.pem: sends
 * a marker line and waits a second for it to come back, then leaves. Whether the marker
 * was echoed (the caller got through to the app). */
bool it_s_client_echo(int port, const char *cert);

/* A command line built argument by argument; v is NULL-terminated at every step. */
#define IT_ARGV_MAX 48
struct it_argv {
    const char *v[IT_ARGV_MAX + 1];
    size_t n;
    char addr[32], cert[64], key[64]; /* storage for what it_openssl_argv puts in v */
};
/* Starts a with `openssl verb` ("s_client" or "s_server") on 127.0.0.1:port (-connect, or
 * -accept for s_server), presenting CERT.pem/CERT.key unless cert is NULL, with -cert_chain
 * chain unless chain is NULL. */
void it_openssl_argv(struct it_argv *a, const char *verb, int port, const char *cert,
                     const char *chain);
/* Appends args[0..n-1] (NULL ones skipped); ck_asserts that they fit. */
void it_argv_add_of(struct it_argv *a, const char *const *args, size_t n);
#define IT_ARGV_ADD(a, ...)                                                                        \
    it_argv_add_of(a, (const char *const[]){__VA_ARGS__},                                          \
                   sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

/* ---- echo server -------------------------------------------------------------------- */

/* A forked poll() echo server on 127.0.0.1:*port (0: pick one, written back). Echoes every
 * byte; after the client's EOF and all echoed it shuts its write side and closes. Writes a
 * line "accept" to NAME.out for every connection it accepts. */
struct it_proc *it_echo_start(const char *name, int *port);
int it_echo_accepts(const struct it_proc *echo);

/* tests/integration/held_handshake.py as name: a peer (as cert, at 127.0.0.1:port; serve:
 * the server) whose TCP connection is made first and whose TLS handshake waits for the file
 * `go`. It prints "connected", then "through" or "refused: why". */
struct it_proc *it_held_handshake(const char *name, int port, const char *cert, bool serve);
/* Once `go` is written: waits (20 s at most) for held to end and copies its last line into
 * out (cap bytes). Whether its bytes got through. */
bool it_held_through(struct it_proc *held, char *out, size_t cap);

/* A python3 HTTP/1.1 server (a thread per connection, keep-alive) on 127.0.0.1:port as
 * process NAME, from NAME.py: its request handler class H has the methods in methods
 * (python, indented by 4) and reply(self, out), a 200 with the bytes out as its body. Waits
 * until it listens. */
struct it_proc *it_http_app_start(const char *name, int port, const char *methods);

/* ---- data --------------------------------------------------------------------------- */

/* Deterministic bytes of stream seed starting at offset pos (any alignment). */
void it_pattern(uint64_t seed, uint64_t pos, void *buf, size_t len);
/* Offset of the first byte of buf that differs from the pattern, or len. */
size_t it_pattern_check(uint64_t seed, uint64_t pos, const void *buf, size_t len);

struct it_sha256;
struct it_sha256 *it_sha256_new(void);
void it_sha256_update(struct it_sha256 *h, const void *buf, size_t len);
void it_sha256_final(struct it_sha256 *h, char hex[65]); /* frees h */

/* A pthread body (arg: struct it_sender *) that sends bytes of pattern seed to fd in chunks
 * of chunk bytes, sleeping pause_ms after each, then shuts its write side. sent counts what
 * went out (less than bytes when a send failed), hex is its SHA-256. */
struct it_sender {
    int fd;
    uint64_t seed, bytes;
    size_t chunk;
    int pause_ms;
    uint64_t sent;
    char hex[65];
};
void *it_pattern_sender(void *arg);

/* ---- sidecars ----------------------------------------------------------------------- */

/* Starts `$TG_BIN run -c config` as NAME and waits for 200 on admin /ready (admin_port > 0)
 * or for wait_port to accept (when admin_port is 0). ck_asserts, with the sidecar's stderr
 * in the message, when it does not come up in time. Marked must_exit_0. */
struct it_proc *it_sidecar_start(const char *name, const char *config, int admin_port,
                                 int wait_port);

/* The standard mesh: CA "ca", identities "web" (spiffe://mesh.local/ns/default/sa/web) and
 * "api" (.../sa/api); an echo server; sidecar B (web identity; inbound web-in: in_port ->
 * echo, allow [api]; inbound dead-in: dead_in_port -> closed_port, where nothing listens)
 * and sidecar A (api identity; outbound api-out: out_port -> in_port, expect [web];
 * outbound dead-out: dead_out_port -> dead_in_port). Both have admin ports and access logs
 * (a.out, b.out). drain is the timeouts.drain value, e.g. "2s". */
#define IT_WEB_ID "spiffe://mesh.local/ns/default/sa/web"
#define IT_API_ID "spiffe://mesh.local/ns/default/sa/api"

struct it_mesh {
    int echo_port, in_port, dead_in_port, closed_port, out_port, dead_out_port;
    int a_admin, b_admin;
    struct it_proc *echo, *a, *b;
    char web_serial[80], api_serial[80]; /* normalised */
};

void it_mesh_certs(void); /* ca, web, api only */

/* A calling sidecar NAME (config NAME.yaml): identity cert (PEM, leaf first), key and trust
 * bundle; one outbound listener "out" on 127.0.0.1:port to 127.0.0.1:upstream expecting
 * IT_WEB_ID; admin on admin. Started as it_sidecar_start starts one. */
struct it_proc *it_client_start(const char *name, const char *cert, const char *key,
                                const char *bundle, int port, int upstream, int admin);
void it_mesh_start(struct it_mesh *m, const char *drain);

/* ---- sidecar configs ---------------------------------------------------------------- */

/* The one builder of sidecar config files for the integration tests: a test sets the knobs
 * it needs in a struct it_cfg and writes only the YAML of what it is about; the name of
 * every key written here (admin, identity, control_plane, timeouts, inbound, outbound, their
 * listeners' name/listen/upstream/allow/expect) lives in it_cfg_write and nowhere else. */
#define IT_CP_ID "spiffe://mesh.local/ns/tollgate-system/sa/tollgate-cp"
#define IT_CFG_LISTENERS 16

struct it_listener {
    const char *name; /* NULL: the end of the list */
    int listen;       /* 127.0.0.1:listen */
    int upstream;     /* 127.0.0.1:upstream; 0: not written */
    const char *peer; /* the one SPIFFE ID on the other side; NULL: not written. Inbound:
                       * the caller allowed (allow); outbound: the one the upstream must
                       * present (expect) */
    const char *more; /* more keys of the listener, flow-map text ("protocol: http") */
};

struct it_cfg {
    int admin;             /* admin: 127.0.0.1:admin; 0: no admin port */
    const char *admin_at;  /* the admin address as written ("[::]:PORT"), instead of admin */
    int workers;           /* 0: not written */
    const char *log_level; /* NULL: not written (info); the access log is on by default */
    const char *id;        /* identity: cert ID.pem, key ID.key; NULL: no identity section */
    const char *bundle;    /* identity.trust_bundle; NULL: ca.pem */
    const char *id_more;   /* more identity keys, flow-map text ("crl: [crl.pem]") */
    const char *timeouts;  /* flow-map text ("handshake: 2s, drain: 1s"); NULL: none */
    /* control_plane, when cp_port > 0: CA ca.pem, server ID IT_CP_ID */
    int cp_port;
    const char *cp_host;   /* NULL: 127.0.0.1 */
    const char *cp_list;   /* control_plane.address as written (replicas), not HOST:cp_port */
    const char *cp_token;  /* the token file */
    const char *cp_node;   /* node_id; NULL: not written */
    double cp_renew;       /* renew_fraction; 0: not written */
    const char *cp_labels; /* control_plane.labels, flow-map text ("app: web"); NULL: none */
    /* control_plane.pod_info (a directory); NULL: none */
    const char *cp_pod_info;
    struct it_listener in[IT_CFG_LISTENERS], out[IT_CFG_LISTENERS];
};

/* The knobs most sidecars of a test share: admin port, identity, workers (0: the default),
 * timeouts (NULL: none); listeners and the rest are set on the result. */
struct it_cfg it_cfg_of(int admin, const char *id, int workers, const char *timeouts);

/* Writes the config file (to FILE.tmp, then renamed over it, as it_replace_file): c's
 * settings, then the test's own top-level YAML from fmt (NULL: none), then c's inbound and
 * outbound listeners. A test with listeners of its own writes them in fmt, c's in/out left
 * empty. */
void it_cfg_write(const char *file, const struct it_cfg *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A sidecar of the control plane at cp_port: it_cfg_write(file, c, NULL) with c's admin port
 * admin, token file token, node_id file and, unless c sets them, timeouts {handshake: 5s,
 * idle: 1h, connect: 2s, drain: 2s}. */
void it_cfg_write_cp(const char *file, int admin, int cp_port, const char *token, struct it_cfg *c);
/* tollgate-cp's tokens.txt: a.token (A, service account api) and b.token (B, web), both in
 * namespace default, then the lines of more (NULL: none); writes a.token and b.token too. */
void it_cp_tokens(const char *more);

/* ---- control planes ----------------------------------------------------------------- */

/* The one builder of tollgate-cp config files: listen 127.0.0.1:port, admin 127.0.0.1:admin
 * (0: none), trust_domain mesh.local, its certificate cp.pem and its CA ca.pem (keys
 * beside them), then the test's own top-level YAML from fmt. Written by rename. */
void it_cp_cfg_write(const char *file, int port, int admin, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Starts `$TG_CP_BIN run -c config` as NAME and waits (10 s) for port to accept. */
struct it_proc *it_cp_start(const char *name, const char *config, int port);

/* ---- streams ------------------------------------------------------------------------ */

/* n connections to port (loopback), each sending a pattern seeded seed0 + i, paced to about
 * 4 KiB per 10 ms with at most 128 KiB unanswered, and checking every echoed byte; one
 * poll() thread drives them all. ck_asserts that each got its first echo within 10 s. */
struct it_streams;
struct it_streams *it_streams_start(int port, int n, uint64_t seed0);
/* At least 1 MiB more echoed within 5 s, in all. */
void it_streams_expect_progress(struct it_streams *st, const char *what);
/* No stream dropped or corrupted so far. */
void it_streams_expect_ok(struct it_streams *st, const char *what);
/* Half-closes every stream, waits (bounded) for all echoes and EOF, asserts each stream
 * intact, closes and frees. Returns the bytes echoed in all. */
uint64_t it_streams_stop(struct it_streams *st);

/* A new connection through port whose access-log line in log (matched by our local port)
 * says ok; its "serial" (normalised) into serial. */
void it_probe_serial(int port, const char *log, char *serial, size_t cap);
/* New connections see serial want within timeout_ms and keep seeing it (three more): probe
 * makes one and gives the serial it saw (normalised). what names the step in a failure. */
void it_expect_serial(void (*probe)(char *serial, size_t cap), const char *want, int timeout_ms,
                      const char *what);

/* Built with AddressSanitizer: its quarantine holds freed memory back on purpose, so RSS
 * cannot stay flat under it and memory bounds must allow for it. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN true
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN true
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN false
#endif

/* `promtool check metrics` (PROMTOOL, else /usr/bin/promtool) passes on text, a scrape of
 * what (for the message). */
void it_promtool_clean(const char *what, const char *text);

#endif
