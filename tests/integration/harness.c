/* Integration test harness; see harness.h. Runs inside Check's forked test process. */
#include "harness.h"
#include "tollgate/err.h"

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define OK_MARKER ".it-ok" /* written by it_teardown: the guardian keeps quiet */
#define DUMP_TAIL 3000     /* bytes of each log the guardian prints after a failure */
#define MAX_SUBS 16        /* substrings per line match */
#define MAX_ARGS 64
#define PORT_BASE 20000                 /* below the ephemeral range (32768-60999): no clash with */
#define PORT_SPAN 12000                 /* the local ports of our own outgoing connections */
#define PORT_CLAIMS "tollgate-it-ports" /* under /tmp: one lock file per port handed out */
#define HTTP_MAX (4 * 1024 * 1024)

static char dir[PATH_MAX];
static int guard_fd = -1; /* write end: the guardian sees EOF when every holder is gone */
static pid_t guard_pid;
static struct it_proc procs[IT_MAX_PROCS];
static size_t n_procs;
static int ports[512];
static int port_locks[512]; /* flock()ed claim files, held until the test process ends */
static size_t n_ports;
static unsigned run_seq;

/* ---- fixture ------------------------------------------------------------------------ */

uint64_t it_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void it_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

const char *it_env(const char *name)
{
    const char *v = getenv(name);

    ck_assert_msg(v != NULL && v[0] != '\0', "environment variable %s is not set", name);
    return v;
}

const char *it_dir(void)
{
    return dir;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void dump_tail(const char *name)
{
    char path[PATH_MAX * 2];
    char buf[DUMP_TAIL + 1];
    struct stat st;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fd = open(path, O_RDONLY);
    if (fd < 0)
        return;
    if (fstat(fd, &st) == 0 && st.st_size > DUMP_TAIL)
        lseek(fd, st.st_size - DUMP_TAIL, SEEK_SET);
    n = read(fd, buf, DUMP_TAIL);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    fprintf(stderr, "---- %s (last %zd bytes) ----\n%s%s", name, n, buf,
            buf[n - 1] == '\n' ? "" : "\n");
}

/* The guardian: waits for every holder of the pipe's write end to be gone, then cleans. */
static void guardian(int rfd)
{
    char c, marker[PATH_MAX * 2];
    const char *keep = getenv("IT_KEEP");
    struct dirent *de;
    DIR *d;

    for (int fd = 3; fd < 1024; fd++)
        if (fd != rfd)
            close(fd);
    for (;;) {
        ssize_t r = read(rfd, &c, 1);

        if (r == 0 || (r < 0 && errno != EINTR))
            break;
    }
    snprintf(marker, sizeof(marker), "%s/%s", dir, OK_MARKER);
    if (access(marker, F_OK) != 0 && (d = opendir(dir)) != NULL) {
        fprintf(stderr, "==== test did not finish cleanly; logs in %s ====\n", dir);
        while ((de = readdir(d)) != NULL) {
            size_t l = strlen(de->d_name);

            if (de->d_name[0] == '.' || l < 4)
                continue;
            if (strcmp(de->d_name + l - 4, ".err") == 0 || strcmp(de->d_name + l - 4, ".out") == 0)
                dump_tail(de->d_name);
        }
        closedir(d);
    }
    if (keep != NULL && keep[0] == '1') {
        fprintf(stderr, "IT_KEEP: kept %s\n", dir);
        _exit(0);
    }
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    _exit(0);
}

static void ports_release(void) /* the claims of it_free_port */
{
    for (size_t i = 0; i < n_ports; i++)
        close(port_locks[i]);
    n_ports = 0;
}

void it_setup(void)
{
    const char *tmp = getenv("TMPDIR");
    int p[2];

    signal(SIGPIPE, SIG_IGN);
    n_procs = 0;
    ports_release();
    snprintf(dir, sizeof(dir), "%s/tg-it-XXXXXX", tmp != NULL && tmp[0] ? tmp : "/tmp");
    ck_assert_msg(mkdtemp(dir) != NULL, "mkdtemp %s: %s", dir, strerror(errno));
    ck_assert_msg(chdir(dir) == 0, "chdir %s: %s", dir, strerror(errno));
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    guard_pid = fork();
    ck_assert_msg(guard_pid >= 0, "fork: %s", strerror(errno));
    if (guard_pid == 0) {
        setpgid(0, 0); /* out of the test's group, which Check kills when the test ends */
        close(p[1]);
        guardian(p[0]);
    }
    close(p[0]);
    guard_fd = p[1];
}

void it_teardown(void)
{
    char bad[1024] = "";
    char marker[PATH_MAX * 2];
    size_t blen = 0;

    for (size_t i = n_procs; i-- > 0;) {
        struct it_proc *p = &procs[i];
        int st = it_stop(p, 5000);

        if (p->must_exit_0 && st != 0 && blen < sizeof(bad) - 100)
            blen += (size_t)snprintf(bad + blen, sizeof(bad) - blen, " %s exited %d;", p->name, st);
    }
    ports_release();
    if (chdir("/") != 0)
        perror("chdir /");
    if (bad[0] == '\0') {
        snprintf(marker, sizeof(marker), "%s/%s", dir, OK_MARKER);
        close(open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
    }
    close(guard_fd);
    guard_fd = -1;
    for (uint64_t end = it_now_ms() + 10000; it_now_ms() < end;) {
        if (waitpid(guard_pid, NULL, WNOHANG) != 0)
            break;
        it_sleep_ms(10);
    }
    ck_assert_msg(bad[0] == '\0', "processes did not stop cleanly:%s", bad);
}

/* ---- processes ---------------------------------------------------------------------- */

static void proc_paths(struct it_proc *p, const char *name)
{
    memset(p, 0, sizeof(*p));
    p->stdin_fd = -1;
    snprintf(p->name, sizeof(p->name), "%s", name);
    snprintf(p->out_path, sizeof(p->out_path), "%s/%s.out", dir, name);
    snprintf(p->err_path, sizeof(p->err_path), "%s/%s.err", dir, name);
}

/* In the child, right after fork: die with the test process, whatever happens to it. */
static void child_init(pid_t parent)
{
    sigset_t none;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static void spawn_into(struct it_proc *p, const char *name, const char *const argv[],
                       enum it_stdin in)
{
    int pin[2] = {-1, -1};
    int outfd, errfd;
    pid_t parent = getpid();

    proc_paths(p, name);
    if (in == IT_STDIN_PIPE)
        ck_assert_int_eq(pipe2(pin, O_CLOEXEC), 0);
    outfd = open(p->out_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    errfd = open(p->err_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    ck_assert_msg(outfd >= 0 && errfd >= 0, "open %s: %s", p->out_path, strerror(errno));
    p->pid = fork();
    ck_assert_msg(p->pid >= 0, "fork: %s", strerror(errno));
    if (p->pid == 0) {
        int infd = in == IT_STDIN_PIPE ? pin[0] : open("/dev/null", O_RDONLY);

        child_init(parent);
        signal(SIGPIPE, SIG_DFL);
        if (dup2(infd, 0) < 0 || dup2(outfd, 1) < 0 || dup2(errfd, 2) < 0)
            _exit(127);
        execv(argv[0], tg_unconst(argv));
        dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(outfd);
    close(errfd);
    if (in == IT_STDIN_PIPE) {
        close(pin[0]);
        p->stdin_fd = pin[1];
    }
}

static struct it_proc *new_proc(void)
{
    ck_assert_msg(n_procs < IT_MAX_PROCS, "more than %d processes", IT_MAX_PROCS);
    return &procs[n_procs++];
}

struct it_proc *it_spawn(const char *name, const char *const argv[], enum it_stdin in)
{
    struct it_proc *p = new_proc();

    spawn_into(p, name, argv, in);
    return p;
}

int it_wait(struct it_proc *p, int timeout_ms)
{
    uint64_t end = it_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    int st;

    if (p->pid == 0)
        return p->status;
    for (;;) {
        pid_t r = waitpid(p->pid, &st, WNOHANG);

        if (r == p->pid) {
            p->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            p->pid = 0;
            if (p->stdin_fd >= 0)
                close(p->stdin_fd);
            p->stdin_fd = -1;
            return p->status;
        }
        if (r < 0 && errno != EINTR) {
            p->status = -1;
            p->pid = 0;
            return -1;
        }
        if (it_now_ms() >= end)
            return -1;
        it_sleep_ms(5);
    }
}

long it_rss_kib(pid_t pid)
{
    char path[64], *text, *p;
    long kib = -1;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    text = it_read_file(path, NULL);
    if (text != NULL && (p = strstr(text, "VmRSS:")) != NULL)
        kib = strtol(p + 6, NULL, 10);
    free(text);
    return kib;
}

int it_stop(struct it_proc *p, int timeout_ms)
{
    int st;

    if (p->pid == 0)
        return p->status;
    kill(p->pid, SIGTERM);
    st = it_wait(p, timeout_ms);
    if (st >= 0 || p->pid == 0)
        return st;
    kill(p->pid, SIGKILL);
    return it_wait(p, 5000);
}

const char *it_openssl(void)
{
    const char *env = getenv("OPENSSL");

    if (env != NULL && env[0] != '\0')
        return env;
    if (access("/usr/bin/openssl", X_OK) == 0)
        return "/usr/bin/openssl";
    ck_assert_msg(access("/usr/local/bin/openssl", X_OK) == 0, "no openssl CLI found");
    return "/usr/local/bin/openssl";
}

int it_run(const char *const argv[], const char *input, int timeout_ms, char **out, char **err)
{
    struct it_proc p;
    char name[32];
    int st;

    snprintf(name, sizeof(name), ".run-%u", run_seq++);
    spawn_into(&p, name, argv, input != NULL ? IT_STDIN_PIPE : IT_STDIN_NULL);
    if (input != NULL) {
        it_send_all(p.stdin_fd, input, strlen(input)); /* a pipe: send falls back below */
        close(p.stdin_fd);
        p.stdin_fd = -1;
    }
    st = it_wait(&p, timeout_ms);
    if (st < 0) {
        it_stop(&p, 1000);
        st = -1;
    }
    if (out != NULL)
        *out = it_read_file(p.out_path, NULL);
    if (err != NULL)
        *err = it_read_file(p.err_path, NULL);
    return st;
}

/* ---- files -------------------------------------------------------------------------- */

__attribute__((format(printf, 2, 0))) static void write_to(const char *path, const char *fmt,
                                                           va_list ap)
{
    char *text = NULL;
    int n = vasprintf(&text, fmt, ap);
    FILE *f;
    bool ok;

    ck_assert_msg(n >= 0, "vasprintf");
    f = fopen(path, "w");
    ck_assert_msg(f != NULL, "fopen %s: %s", path, strerror(errno));
    ok = fwrite(text, 1, (size_t)n, f) == (size_t)n;
    ok = fclose(f) == 0 && ok;
    ck_assert_msg(ok, "write %s", path);
    free(text);
}

void it_write_file(const char *name, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    write_to(name, fmt, ap);
    va_end(ap);
}

void it_replace_file(const char *name, const char *fmt, ...)
{
    char tmp[PATH_MAX];
    va_list ap;

    snprintf(tmp, sizeof(tmp), "%s.tmp", name);
    va_start(ap, fmt);
    write_to(tmp, fmt, ap);
    va_end(ap);
    ck_assert_msg(rename(tmp, name) == 0, "rename %s: %s", tmp, strerror(errno));
}

char *it_read_file(const char *name, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf;
    ssize_t r;
    int fd = open(name, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return NULL;
    buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    while ((r = read(fd, buf + n, cap - n - 1)) > 0) {
        n += (size_t)r;
        if (cap - n - 1 == 0) {
            cap *= 2;
            char *grown = realloc(buf, cap);

            ck_assert_ptr_nonnull(grown);
            buf = grown;
        }
    }
    close(fd);
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

bool it_file_contains(const char *name, const char *needle)
{
    char *text = it_read_file(name, NULL);
    bool found = text != NULL && strstr(text, needle) != NULL;

    free(text);
    return found;
}

bool it_wait_file_contains(const char *name, const char *needle, int timeout_ms)
{
    uint64_t end = it_now_ms() + (uint64_t)timeout_ms;

    for (;;) {
        if (it_file_contains(name, needle))
            return true;
        if (it_now_ms() >= end)
            return false;
        it_sleep_ms(20);
    }
}

static size_t collect_subs(va_list ap, const char **subs)
{
    size_t n = 0;
    const char *s;

    while ((s = va_arg(ap, const char *)) != NULL) {
        ck_assert_msg(n < MAX_SUBS, "too many substrings");
        subs[n++] = s;
    }
    return n;
}

static int match_lines(const char *name, const char **subs, size_t n_subs, char *last, size_t cap)
{
    char *text = it_read_file(name, NULL);
    char *line, *save = NULL;
    int count = 0;

    if (text == NULL)
        return 0;
    for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        size_t i;

        for (i = 0; i < n_subs && strstr(line, subs[i]) != NULL; i++)
            ;
        if (i < n_subs)
            continue;
        count++;
        if (last != NULL)
            snprintf(last, cap, "%s", line);
    }
    free(text);
    return count;
}

/* match_lines with the substrings of a NULL-terminated argument list. */
static int match_lines_v(const char *name, char *last, size_t cap, va_list ap)
{
    const char *subs[MAX_SUBS];
    size_t n = collect_subs(ap, subs);

    return match_lines(name, subs, n, last, cap);
}

int it_count_lines(const char *name, ...)
{
    va_list ap;
    int count;

    va_start(ap, name);
    count = match_lines_v(name, NULL, 0, ap);
    va_end(ap);
    return count;
}

bool it_last_line(const char *name, char *dst, size_t cap, ...)
{
    va_list ap;
    int count;

    dst[0] = '\0';
    va_start(ap, cap);
    count = match_lines_v(name, dst, cap, ap);
    va_end(ap);
    return count > 0;
}

int it_wait_lines(const char *name, int min, int timeout_ms, ...)
{
    const char *subs[MAX_SUBS];
    uint64_t end = it_now_ms() + (uint64_t)timeout_ms;
    size_t n;
    va_list ap;
    int count;

    va_start(ap, timeout_ms);
    n = collect_subs(ap, subs);
    va_end(ap);
    for (;;) {
        count = match_lines(name, subs, n, NULL, 0);
        if (count >= min || it_now_ms() >= end)
            return count;
        it_sleep_ms(20);
    }
}

static const char *json_value(const char *line, const char *key)
{
    char pat[128];
    const char *v;

    snprintf(pat, sizeof(pat), "\"%s\":", key);
    v = strstr(line, pat);
    if (v == NULL)
        return NULL;
    v += strlen(pat);
    while (*v == ' ')
        v++;
    return v;
}

bool it_json_str(const char *line, const char *key, char *dst, size_t cap)
{
    const char *v = json_value(line, key);
    size_t n = 0;

    dst[0] = '\0';
    if (v == NULL || *v != '"')
        return false;
    for (v++; *v != '\0' && *v != '"'; v++) {
        if (*v == '\\' && v[1] != '\0')
            v++;
        if (n + 1 < cap)
            dst[n++] = *v;
    }
    dst[n] = '\0';
    return *v == '"';
}

void it_log_line_ok(const char *name, const char *match, char *line)
{
    int n = it_wait_lines(name, 1, 5000, match, NULL);

    ck_assert_msg(n == 1, "%d access log lines with %s in %s, want 1", n, match, name);
    ck_assert(it_last_line(name, line, IT_LINE_MAX, match, NULL));
    ck_assert_msg(strstr(line, "\"outcome\":\"ok\"") != NULL, "%s", line);
}

void it_expect_json_str(const char *line, const char *key, const char *want)
{
    char v[IT_LINE_MAX];

    ck_assert_msg(it_json_str(line, key, v, sizeof(v)) && strcmp(v, want) == 0, "%s is not %s: %s",
                  key, want, line);
}

long long it_json_num(const char *line, const char *key)
{
    const char *v = json_value(line, key);

    if (v == NULL || !(isdigit((unsigned char)*v) || *v == '-'))
        return -1;
    return strtoll(v, NULL, 10);
}

void it_serial_norm(const char *in, char *dst, size_t cap)
{
    size_t n = 0;

    for (; *in != '\0'; in++) {
        if (*in == ':' || (n == 0 && *in == '0'))
            continue;
        if (n + 1 < cap)
            dst[n++] = (char)tolower((unsigned char)*in);
    }
    dst[n] = '\0';
}

/* ---- certificates ------------------------------------------------------------------- */

void it_tool_v(const char *bin, const char *arg, va_list ap)
{
    const char *argv[MAX_ARGS];
    size_t n = 0;
    char *err = NULL;
    int st;

    argv[n++] = bin;
    for (const char *a = arg; a != NULL; a = va_arg(ap, const char *)) {
        ck_assert(n < MAX_ARGS - 1);
        argv[n++] = a;
    }
    argv[n] = NULL;
    st = it_run(argv, NULL, 30000, NULL, &err);
    ck_assert_msg(st == 0, "%s %s ... exited %d: %s", bin, arg, st, err ? err : "");
    free(err);
}

void it_certs(const char *arg, ...)
{
    va_list ap;

    va_start(ap, arg);
    it_tool_v(it_env("TG_CERTS_BIN"), arg, ap);
    va_end(ap);
}

/* The value of "field=" in `tollgate-certs show pem`, up to the end of its line. */
static void cert_field(const char *pem, const char *field, char *dst, size_t cap)
{
    const char *argv[] = {it_env("TG_CERTS_BIN"), "show", pem, NULL};
    char *out = NULL, *s;
    int st = it_run(argv, NULL, 30000, &out, NULL);

    ck_assert_msg(st == 0 && out != NULL, "tollgate-certs show %s exited %d", pem, st);
    s = strstr(out, field);
    ck_assert_msg(s != NULL, "no %s in: %s", field, out);
    s += strlen(field);
    snprintf(dst, cap, "%.*s", (int)strcspn(s, " \n"), s);
    free(out);
}

void it_cert_serial(const char *pem, char *dst, size_t cap)
{
    char raw[256];

    cert_field(pem, "serial=", raw, sizeof(raw));
    it_serial_norm(raw, dst, cap);
}

void it_cert_sha256(const char *pem, char *dst, size_t cap)
{
    cert_field(pem, "sha256=", dst, cap);
}

void it_openssl_ca(const char *ca, const char *fmt, ...)
{
    char cmd[2048], args[512], cnf[256], file[256], *out = NULL, *err = NULL;
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    va_list ap;

    snprintf(file, sizeof(file), "%s-index.txt", ca);
    if (access(file, F_OK) != 0)
        it_crl_index(ca, NULL, 0);
    snprintf(file, sizeof(file), "%s-crlnumber", ca);
    if (access(file, F_OK) != 0)
        it_write_file(file, "01\n");
    snprintf(cnf, sizeof(cnf), "%s-ca.cnf", ca);
    it_write_file(cnf,
                  "[ca]\ndefault_ca = d\n[d]\ndatabase = %s-index.txt\ncrlnumber = %s\n"
                  "default_md = sha256\ndefault_crl_days = 1\npolicy = p\n[p]\n",
                  ca, file);
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "'%s' ca -config %s -batch -keyfile %s.key -cert %s.pem %s",
             it_openssl(), cnf, ca, ca, args);
    ck_assert_msg(it_run(argv, NULL, 15000, &out, &err) == 0, "openssl ca %s: %s", args, err);
    free(out);
    free(err);
}

void it_crl_index(const char *ca, const char *const *serials, size_t n)
{
    char index[256], *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    ck_assert_ptr_nonnull(f);
    for (size_t i = 0; i < n; i++) /* R, expiry, revocation, serial (even length), file, subject */
        fprintf(f, "R\t301231235959Z\t240101000000Z\t%s%s\tunknown\t/CN=x%zu\n",
                strlen(serials[i]) % 2 ? "0" : "", serials[i], i);
    ck_assert_int_eq(fclose(f), 0);
    snprintf(index, sizeof(index), "%s-index.txt", ca);
    it_write_file(index, "%s", text);
    free(text);
}

void it_crl(const char *ca, const char *out, int valid_s)
{
    char last[32], next[32], tmp[256];
    time_t t1 = time(NULL) - 2 * 86400, t2 = time(NULL) - 86400;
    struct tm tm;

    if (valid_s > 0) {
        it_openssl_ca(ca, "-gencrl -crlsec %d -out %s.new", valid_s, out);
    } else {
        gmtime_r(&t1, &tm);
        strftime(last, sizeof(last), "%Y%m%d%H%M%SZ", &tm);
        gmtime_r(&t2, &tm);
        strftime(next, sizeof(next), "%Y%m%d%H%M%SZ", &tm);
        it_openssl_ca(ca, "-gencrl -crl_lastupdate %s -crl_nextupdate %s -out %s.new", last, next,
                      out);
    }
    snprintf(tmp, sizeof(tmp), "%s.new", out);
    ck_assert_msg(rename(tmp, out) == 0, "rename %s: %s", tmp, strerror(errno));
}

bool it_s_client_echo(int port, const char *cert)
{
    char cmd[512], *out = NULL;
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    bool echoed;

    snprintf(cmd, sizeof(cmd),
             "(echo marker-7f3a; sleep 1) | '%s' s_client -connect 127.0.0.1:%d -CAfile ca.pem "
             "-tls1_3 -brief -cert %s.pem -key %s.key 2>&1",
             it_openssl(), port, cert, cert);
    ck_assert_msg(it_run(argv, NULL, 15000, &out, NULL) >= 0, "s_client as %s did not end", cert);
    echoed = out != NULL && strstr(out, "marker-7f3a") != NULL;
    free(out);
    return echoed;
}

void *it_pattern_sender(void *arg)
{
    struct it_sender *s = arg;
    struct it_sha256 *h = it_sha256_new();
    char *buf = malloc(s->chunk);

    ck_assert_ptr_nonnull(buf);
    while (s->sent < s->bytes) {
        size_t n = s->bytes - s->sent < s->chunk ? (size_t)(s->bytes - s->sent) : s->chunk;

        it_pattern(s->seed, s->sent, buf, n);
        if (!it_send_all(s->fd, buf, n))
            break;
        it_sha256_update(h, buf, n);
        s->sent += n;
        if (s->pause_ms > 0)
            it_sleep_ms(s->pause_ms);
    }
    shutdown(s->fd, SHUT_WR);
    it_sha256_final(h, s->hex);
    free(buf);
    return NULL;
}

void it_argv_add_of(struct it_argv *a, const char *const *args, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (args[i] == NULL)
            continue;
        ck_assert_msg(a->n < IT_ARGV_MAX, "more than %d arguments for %s", IT_ARGV_MAX, a->v[0]);
        a->v[a->n++] = args[i];
        a->v[a->n] = NULL;
    }
}

void it_openssl_argv(struct it_argv *a, const char *verb, int port, const char *cert,
                     const char *chain)
{
    bool server = strcmp(verb, "s_server") == 0;

    a->n = 0;
    snprintf(a->addr, sizeof(a->addr), "127.0.0.1:%d", port);
    IT_ARGV_ADD(a, it_openssl(), verb, server ? "-accept" : "-connect", a->addr);
    if (cert != NULL) {
        snprintf(a->cert, sizeof(a->cert), "%s.pem", cert);
        snprintf(a->key, sizeof(a->key), "%s.key", cert);
        IT_ARGV_ADD(a, "-cert", a->cert, "-key", a->key);
    }
    if (chain != NULL)
        IT_ARGV_ADD(a, "-cert_chain", chain);
}

/* ---- network ------------------------------------------------------------------------ */

static bool port_bindable(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

/* Integration tests run in parallel (ctest -j), each handing out ports: a port is claimed
 * by an exclusive flock() on /tmp/tollgate-it-ports/PORT before it is handed out, so two
 * tests never get the same one between its pick and its bind. The kernel drops the lock
 * when the test process ends, however it ends: no stale claims. Returns the lock's fd, or
 * -1 when another test holds the port. */
static int port_claim(int port)
{
    char path[PATH_MAX];
    int fd;

    snprintf(path, sizeof(path), "/tmp/%s", PORT_CLAIMS);
    if (mkdir(path, 0755) == 0)
        chmod(path, 01777); /* shared by every user's tests, like /tmp */
    else if (errno != EEXIST)
        ck_abort_msg("mkdir %s: %s", path, strerror(errno));
    snprintf(path, sizeof(path), "/tmp/%s/%d", PORT_CLAIMS, port);
    fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
    ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

void it_free_ports_of(int *const *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        *dst[i] = it_free_port();
}

int it_free_port(void)
{
    unsigned start = ((unsigned)getpid() * 7919u + (unsigned)it_now_ms()) % PORT_SPAN;

    ck_assert(n_ports < sizeof(ports) / sizeof(ports[0]));
    for (unsigned i = 0; i < PORT_SPAN; i++) {
        int port = PORT_BASE + (int)((start + i * 37u) % PORT_SPAN), lock;
        bool used = false;

        for (size_t j = 0; j < n_ports; j++)
            used = used || ports[j] == port;
        if (used || (lock = port_claim(port)) < 0)
            continue;
        if (!port_bindable(port)) { /* in use by something that is not one of our tests */
            close(lock);
            continue;
        }
        port_locks[n_ports] = lock;
        ports[n_ports++] = port;
        return port;
    }
    ck_abort_msg("no free loopback port");
    return -1;
}

int it_connect(int port, int timeout_ms)
{
    return it_connect_from(NULL, port, timeout_ms);
}

int it_connect_from(const char *src, int port, int timeout_ms)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct sockaddr_in from = {.sin_family = AF_INET};
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -errno;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)); /* also bounds connect() */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (src != NULL && inet_pton(AF_INET, src, &from.sin_addr) != 1) {
        close(fd);
        return -EINVAL;
    }
    if ((src != NULL && bind(fd, (struct sockaddr *)&from, sizeof(from)) != 0) ||
        connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int e = errno;

        close(fd);
        return -e;
    }
    return fd;
}

bool it_wait_port(int port, int timeout_ms)
{
    uint64_t end = it_now_ms() + (uint64_t)timeout_ms;

    for (;;) {
        int fd = it_connect(port, 1000);

        if (fd >= 0) {
            close(fd);
            return true;
        }
        if (it_now_ms() >= end)
            return false;
        it_sleep_ms(20);
    }
}

int it_local_port(int fd)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);

    if (getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        return -1;
    return ntohs(sa.sin_port);
}

bool it_send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

        if (n < 0 && errno == ENOTSOCK)
            n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

size_t it_recv_full(int fd, void *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = recv(fd, (char *)buf + got, len - got, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return got;
}

int it_recv_eof(int fd)
{
    char c;
    ssize_t n;

    do
        n = recv(fd, &c, 1, 0);
    while (n < 0 && errno == EINTR);
    if (n == 0)
        return 0;
    if (n > 0)
        return 1;
    return errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

int it_round_trip(int port, const char *msg, char *err)
{
    size_t len = strlen(msg);
    char *buf = malloc(len + 1);
    int fd = it_connect(port, 10000);
    int local = -1, eof;
    size_t got;

    ck_assert_ptr_nonnull(buf);
    if (fd < 0) {
        snprintf(err, 256, "connect to %d: %s", port, strerror(-fd));
        goto out;
    }
    local = it_local_port(fd);
    if (!it_send_all(fd, msg, len)) {
        snprintf(err, 256, "send to %d: %s", port, strerror(errno));
        local = -1;
        goto out;
    }
    got = it_recv_full(fd, buf, len);
    if (got != len || memcmp(buf, msg, len) != 0) {
        snprintf(err, 256, "echo via %d: got %zu of %zu bytes (%s)", port, got, len,
                 got == len ? "different" : strerror(errno));
        local = -1;
        goto out;
    }
    shutdown(fd, SHUT_WR);
    eof = it_recv_eof(fd);
    if (eof != 0) {
        snprintf(err, 256, "no EOF after half-close via %d: %s", port,
                 eof > 0 ? "more data" : strerror(-eof));
        local = -1;
    }
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    return local;
}

int it_http(int port, const char *method, const char *path, char **body)
{
    char req[512];
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    int fd = it_connect(port, 5000);
    int status = -1;
    ssize_t r;
    char *b;

    ck_assert_ptr_nonnull(buf);
    if (body != NULL)
        *body = NULL;
    if (fd < 0) {
        free(buf);
        return -1;
    }
    snprintf(req, sizeof(req),
             "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
             method, path);
    if (!it_send_all(fd, req, strlen(req)))
        goto out;
    while ((r = recv(fd, buf + n, cap - n - 1, 0)) > 0) {
        n += (size_t)r;
        if (cap - n - 1 == 0) {
            if (cap >= HTTP_MAX)
                break;
            cap *= 2;
            char *grown = realloc(buf, cap);

            ck_assert_ptr_nonnull(grown);
            buf = grown;
        }
    }
    buf[n] = '\0';
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
        status = -1;
    b = strstr(buf, "\r\n\r\n");
    if (body != NULL && b != NULL)
        *body = strdup(b + 4);
out:
    close(fd);
    free(buf);
    return status;
}

bool it_wait_http(int port, const char *path, int want_status, int timeout_ms)
{
    uint64_t end = it_now_ms() + (uint64_t)timeout_ms;

    for (;;) {
        if (it_http(port, "GET", path, NULL) == want_status)
            return true;
        if (it_now_ms() >= end)
            return false;
        it_sleep_ms(50);
    }
}

double it_metric(const char *stats, const char *name, const char *labels)
{
    size_t nlen = strlen(name);
    double sum = -1;

    if (stats == NULL)
        return -1;
    for (const char *line = stats; *line != '\0';) {
        const char *eol = strchr(line, '\n');
        size_t llen = eol != NULL ? (size_t)(eol - line) : strlen(line);
        char buf[1024];

        if (llen < sizeof(buf) && line[0] != '#' && strncmp(line, name, nlen) == 0 &&
            (line[nlen] == '{' || line[nlen] == ' ')) {
            const char *want = labels;
            char *val;
            bool ok = true;

            memcpy(buf, line, llen);
            buf[llen] = '\0';
            val = line[nlen] == '{' ? strchr(buf, '}') : buf + nlen;
            if (val != NULL) {
                *val = '\0'; /* labels end here */
                while (ok && want != NULL && *want != '\0') {
                    const char *comma = strchr(want, ',');
                    size_t wl = comma != NULL ? (size_t)(comma - want) : strlen(want);
                    char one[256];

                    snprintf(one, sizeof(one), "%.*s", (int)wl, want);
                    ok = strstr(buf + nlen, one) != NULL;
                    want = comma != NULL ? comma + 1 : NULL;
                }
                if (ok)
                    sum = (sum < 0 ? 0 : sum) + strtod(val + 1, NULL);
            }
        }
        line += llen + (eol != NULL);
    }
    return sum;
}

double it_stat(int admin_port, const char *name, const char *labels)
{
    char *body = NULL;
    double v = -1;

    if (it_http(admin_port, "GET", "/stats", &body) == 200)
        v = it_metric(body, name, labels);
    free(body);
    return v;
}

double it_wait_stat(int admin_port, const char *name, const char *labels, double min,
                    int timeout_ms)
{
    uint64_t end = it_now_ms() + (uint64_t)timeout_ms;

    for (;;) {
        double v = it_stat(admin_port, name, labels);

        if (v >= min || it_now_ms() >= end)
            return v;
        it_sleep_ms(50);
    }
}

/* ---- echo server -------------------------------------------------------------------- */

#define ECHO_BUF (64 * 1024)
#define ECHO_MAX 2048

struct echo_conn {
    int fd;
    bool rd_eof;
    size_t off, len;
    char buf[ECHO_BUF];
};

static void echo_drop(struct echo_conn **c, size_t *n, size_t i)
{
    close(c[i]->fd);
    free(c[i]);
    c[i] = c[--*n];
}

/* Serves one step of connection c; false when it is finished (or broken). */
static bool echo_step(struct echo_conn *c, short revents)
{
    if ((revents & (POLLIN | POLLHUP | POLLERR)) && !c->rd_eof && c->off + c->len < ECHO_BUF) {
        ssize_t r = read(c->fd, c->buf + c->off + c->len, ECHO_BUF - c->off - c->len);

        if (r > 0)
            c->len += (size_t)r;
        else if (r == 0)
            c->rd_eof = true;
        else if (errno != EAGAIN && errno != EINTR)
            return false;
    }
    if (c->len > 0) {
        ssize_t w = send(c->fd, c->buf + c->off, c->len, MSG_NOSIGNAL);

        if (w > 0) {
            c->off += (size_t)w;
            c->len -= (size_t)w;
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
            return false;
        }
    }
    if (c->len == 0)
        c->off = 0;
    else if (c->off + c->len == ECHO_BUF && c->off > 0) {
        memmove(c->buf, c->buf + c->off, c->len);
        c->off = 0;
    }
    if (c->rd_eof && c->len == 0) {
        shutdown(c->fd, SHUT_WR); /* half-close carried back: the client sees EOF */
        return false;
    }
    return true;
}

static void echo_loop(int lfd, int logfd)
{
    static struct echo_conn *conns[ECHO_MAX];
    static struct pollfd pfd[ECHO_MAX + 1];
    size_t n = 0;

    for (;;) {
        pfd[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
        for (size_t i = 0; i < n; i++) {
            struct echo_conn *c = conns[i];
            short ev = 0;

            if (!c->rd_eof && c->off + c->len < ECHO_BUF)
                ev |= POLLIN;
            if (c->len > 0)
                ev |= POLLOUT;
            pfd[i + 1] = (struct pollfd){.fd = c->fd, .events = ev};
        }
        if (poll(pfd, n + 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            _exit(2);
        }
        /* connections first: accepting appends to conns and would shift pfd indexes */
        for (size_t i = n; i-- > 0;)
            if (pfd[i + 1].revents != 0 && !echo_step(conns[i], pfd[i + 1].revents))
                echo_drop(conns, &n, i);
        if (pfd[0].revents & POLLIN) {
            int fd;

            while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                struct echo_conn *c = n < ECHO_MAX ? malloc(sizeof(*c)) : NULL;

                if (write(logfd, "accept\n", 7) != 7)
                    _exit(3);
                if (c == NULL) {
                    close(fd);
                    continue;
                }
                c->fd = fd;
                c->rd_eof = false;
                c->off = c->len = 0;
                conns[n++] = c;
            }
        }
    }
}

struct it_proc *it_echo_start(const char *name, int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    struct it_proc *p = new_proc();
    int one = 1;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    pid_t parent = getpid();

    ck_assert_int_ge(lfd, 0);
    if (*port == 0)
        *port = it_free_port();
    sa.sin_port = htons((uint16_t)*port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    ck_assert_msg(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "echo bind %d: %s", *port,
                  strerror(errno));
    ck_assert_int_eq(listen(lfd, 1024), 0);
    proc_paths(p, name);
    p->pid = fork();
    ck_assert_msg(p->pid >= 0, "fork: %s", strerror(errno));
    if (p->pid == 0) {
        int logfd, errfd;

        child_init(parent);
        for (int fd = 3; fd < 1024; fd++) /* the test's sockets must not stay open here */
            if (fd != lfd)
                close(fd);
        signal(SIGTERM, SIG_DFL);
        logfd = open(p->out_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
        errfd = open(p->err_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
        if (logfd < 0 || errfd < 0)
            _exit(4);
        dup2(errfd, 2);
        echo_loop(lfd, logfd);
        _exit(0);
    }
    close(lfd);
    return p;
}

int it_echo_accepts(const struct it_proc *echo)
{
    return it_count_lines(echo->out_path, "accept", NULL);
}

struct it_proc *it_held_handshake(const char *name, int port, const char *cert, bool serve)
{
    char script[PATH_MAX], p[16];

    snprintf(script, sizeof(script), "%s/tests/integration/held_handshake.py",
             it_env("TG_SOURCE_DIR"));
    snprintf(p, sizeof(p), "%d", port);
    const char *argv[] = {"/usr/bin/python3", script, p, cert, "go", serve ? "serve" : NULL, NULL};

    return it_spawn(name, argv, IT_STDIN_NULL);
}

bool it_held_through(struct it_proc *held, char *out, size_t cap)
{
    ck_assert_msg(it_wait(held, 20000) == 0, "%s did not end", held->name);
    ck_assert(it_last_line(held->out_path, out, cap, NULL));
    return strcmp(out, "through") == 0;
}

/* ---- data --------------------------------------------------------------------------- */

static uint64_t mix(uint64_t x) /* splitmix64's finaliser */
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

void it_pattern(uint64_t seed, uint64_t pos, void *buf, size_t len)
{
    unsigned char *b = buf;
    uint64_t key = mix(seed + 0x9e3779b97f4a7c15ULL);

    while (len > 0) {
        uint64_t w = mix(key ^ (pos >> 3));
        unsigned sh = (unsigned)(pos & 7);
        size_t n = 8 - sh < len ? 8 - sh : len;

        for (size_t k = 0; k < n; k++)
            b[k] = (unsigned char)(w >> ((sh + k) * 8));
        b += n;
        pos += n;
        len -= n;
    }
}

size_t it_pattern_check(uint64_t seed, uint64_t pos, const void *buf, size_t len)
{
    unsigned char want[4096];
    const unsigned char *b = buf;

    for (size_t done = 0; done < len;) {
        size_t n = len - done < sizeof(want) ? len - done : sizeof(want);

        it_pattern(seed, pos + done, want, n);
        if (memcmp(want, b + done, n) != 0) {
            for (size_t k = 0; k < n; k++)
                if (want[k] != b[done + k])
                    return done + k;
        }
        done += n;
    }
    return len;
}

struct it_sha256 {
    wc_Sha256 s;
};

struct it_sha256 *it_sha256_new(void)
{
    struct it_sha256 *h = malloc(sizeof(*h));

    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(wc_InitSha256(&h->s), 0);
    return h;
}

void it_sha256_update(struct it_sha256 *h, const void *buf, size_t len)
{
    const unsigned char *p = buf;

    while (len > 0) {
        word32 n = len > (1u << 30) ? (1u << 30) : (word32)len;

        ck_assert_int_eq(wc_Sha256Update(&h->s, p, n), 0);
        p += n;
        len -= n;
    }
}

void it_sha256_final(struct it_sha256 *h, char hex[65])
{
    unsigned char d[WC_SHA256_DIGEST_SIZE];

    ck_assert_int_eq(wc_Sha256Final(&h->s, d), 0);
    wc_Sha256Free(&h->s);
    free(h);
    for (size_t i = 0; i < sizeof(d); i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

/* ---- sidecars ----------------------------------------------------------------------- */

struct it_proc *it_sidecar_start(const char *name, const char *config, int admin_port,
                                 int wait_port)
{
    const char *argv[] = {it_env("TG_BIN"), "run", "-c", config, NULL};
    struct it_proc *p = it_spawn(name, argv, IT_STDIN_NULL);
    bool up;

    p->must_exit_0 = true;
    for (uint64_t end = it_now_ms() + 10000;;) {
        if (admin_port > 0)
            up = it_http(admin_port, "GET", "/ready", NULL) == 200;
        else
            up = it_wait_port(wait_port, 0);
        if (up || it_now_ms() >= end || it_wait(p, 0) >= 0)
            break;
        it_sleep_ms(20);
    }
    if (!up) {
        int st = it_wait(p, 0);
        char *err = it_read_file(p->err_path, NULL);

        p->must_exit_0 = false; /* the failure is reported here */
        ck_abort_msg("sidecar %s (%s) not ready (exit status %d, -1: running); stderr:\n%s", name,
                     config, st, err ? err : "");
    }
    return p;
}

void it_mesh_certs(void)
{
    it_certs("ca", "--out", "ca", "--cn", "mesh test CA", NULL);
    it_certs("issue", "--ca", "ca", "--out", "web", "--spiffe", IT_WEB_ID, NULL);
    it_certs("issue", "--ca", "ca", "--out", "api", "--spiffe", IT_API_ID, NULL);
}

struct it_proc *it_client_start(const char *name, const char *cert, const char *key,
                                const char *bundle, int port, int upstream, int admin)
{
    char file[80];

    snprintf(file, sizeof(file), "%s.yaml", name);
    it_write_file(file,
                  "admin: 127.0.0.1:%d\n"
                  "workers: 1\n"
                  "identity: {cert: %s, key: %s, trust_bundle: %s}\n"
                  "timeouts: {handshake: 5s, idle: 1h, connect: 2s, drain: 1s}\n"
                  "outbound:\n"
                  "  - {name: out, listen: '127.0.0.1:%d', upstream: '127.0.0.1:%d', "
                  "expect: [\"" IT_WEB_ID "\"]}\n",
                  admin, cert, key, bundle, port, upstream);
    return it_sidecar_start(name, file, admin, 0);
}

void it_mesh_start(struct it_mesh *m, const char *drain)
{
    char timeouts[128];
    struct it_cfg a, b;

    memset(m, 0, sizeof(*m));
    it_mesh_certs();
    it_cert_serial("web.pem", m->web_serial, sizeof(m->web_serial));
    it_cert_serial("api.pem", m->api_serial, sizeof(m->api_serial));
    m->echo = it_echo_start("echo", &m->echo_port);
    m->in_port = it_free_port();
    m->dead_in_port = it_free_port();
    m->closed_port = it_free_port();
    m->out_port = it_free_port();
    m->dead_out_port = it_free_port();
    m->a_admin = it_free_port();
    m->b_admin = it_free_port();
    snprintf(timeouts, sizeof(timeouts), "handshake: 5s, idle: 1h, connect: 2s, drain: %s", drain);
    b = it_cfg_of(m->b_admin, "web", 2, timeouts);
    b.in[0] = (struct it_listener){"web-in", m->in_port, m->echo_port, IT_API_ID, NULL};
    b.in[1] = (struct it_listener){"dead-in", m->dead_in_port, m->closed_port, IT_API_ID, NULL};
    it_cfg_write("b.yaml", &b, NULL);
    a = it_cfg_of(m->a_admin, "api", 2, timeouts);
    a.out[0] = (struct it_listener){"api-out", m->out_port, m->in_port, IT_WEB_ID, NULL};
    a.out[1] = (struct it_listener){"dead-out", m->dead_out_port, m->dead_in_port, IT_WEB_ID, NULL};
    it_cfg_write("a.yaml", &a, NULL);
    m->b = it_sidecar_start("b", "b.yaml", m->b_admin, 0);
    m->a = it_sidecar_start("a", "a.yaml", m->a_admin, 0);
}

/* ---- an HTTP app -------------------------------------------------------------------- */

struct it_proc *it_http_app_start(const char *name, int port, const char *methods)
{
    char file[128];
    const char *argv[] = {"/usr/bin/python3", file, NULL};
    struct it_proc *p;

    snprintf(file, sizeof(file), "%s.py", name);
    it_write_file(file,
                  "import http.server, socketserver\n"
                  "class H(http.server.BaseHTTPRequestHandler):\n"
                  "    protocol_version = 'HTTP/1.1'\n"
                  "    def log_message(self, *a): pass\n"
                  "    def reply(self, out):\n"
                  "        self.send_response(200)\n"
                  "        self.send_header('Content-Length', str(len(out)))\n"
                  "        self.end_headers()\n"
                  "        self.wfile.write(out)\n"
                  "%s"
                  "class S(socketserver.ThreadingMixIn, http.server.HTTPServer):\n"
                  "    daemon_threads = True\n"
                  "    allow_reuse_address = True\n"
                  "S(('127.0.0.1', %d), H).serve_forever()\n",
                  methods, port);
    p = it_spawn(name, argv, IT_STDIN_NULL);
    ck_assert_msg(it_wait_port(port, 10000), "%s (python3 %s) did not start", name, file);
    return p;
}

/* ---- sidecar configs ---------------------------------------------------------------- */

static void cfg_listeners(FILE *f, const char *section, const char *peer_key,
                          const struct it_listener *l)
{
    if (l[0].name == NULL)
        return;
    fprintf(f, "%s:\n", section);
    for (size_t i = 0; i < IT_CFG_LISTENERS && l[i].name != NULL; i++) {
        fprintf(f, "  - {name: %s, listen: '127.0.0.1:%d'", l[i].name, l[i].listen);
        if (l[i].upstream > 0)
            fprintf(f, ", upstream: '127.0.0.1:%d'", l[i].upstream);
        if (l[i].peer != NULL)
            fprintf(f, ", %s: [\"%s\"]", peer_key, l[i].peer);
        if (l[i].more != NULL)
            fprintf(f, ", %s", l[i].more);
        fprintf(f, "}\n");
    }
}

struct it_cfg it_cfg_of(int admin, const char *id, int workers, const char *timeouts)
{
    return (struct it_cfg){.admin = admin, .id = id, .workers = workers, .timeouts = timeouts};
}

void it_cfg_write(const char *file, const struct it_cfg *c, const char *fmt, ...)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    va_list ap;

    ck_assert_ptr_nonnull(f);
    if (c->admin_at != NULL)
        fprintf(f, "admin: \"%s\"\n", c->admin_at);
    else if (c->admin > 0)
        fprintf(f, "admin: 127.0.0.1:%d\n", c->admin);
    if (c->workers > 0)
        fprintf(f, "workers: %d\n", c->workers);
    if (c->log_level != NULL)
        fprintf(f, "log_level: %s\n", c->log_level);
    if (c->id != NULL)
        fprintf(f, "identity: {cert: %s.pem, key: %s.key, trust_bundle: %s%s%s}\n", c->id, c->id,
                c->bundle != NULL ? c->bundle : "ca.pem", c->id_more != NULL ? ", " : "",
                c->id_more != NULL ? c->id_more : "");
    if (c->cp_port > 0) {
        if (c->cp_list != NULL)
            fprintf(f, "control_plane:\n  address: %s\n", c->cp_list);
        else
            fprintf(f, "control_plane:\n  address: %s:%d\n",
                    c->cp_host != NULL ? c->cp_host : "127.0.0.1", c->cp_port);
        fprintf(f, "  ca: ca.pem\n  token: %s\n  server_ids: [\"" IT_CP_ID "\"]\n", c->cp_token);
        if (c->cp_node != NULL)
            fprintf(f, "  node_id: %s\n", c->cp_node);
        if (c->cp_renew > 0)
            fprintf(f, "  renew_fraction: %.2f\n", c->cp_renew);
        if (c->cp_labels != NULL)
            fprintf(f, "  labels: {%s}\n", c->cp_labels);
        if (c->cp_pod_info != NULL)
            fprintf(f, "  pod_info: %s\n", c->cp_pod_info);
    }
    if (c->timeouts != NULL)
        fprintf(f, "timeouts: {%s}\n", c->timeouts);
    if (fmt != NULL) {
        va_start(ap, fmt);
        vfprintf(f, fmt, ap);
        va_end(ap);
    }
    cfg_listeners(f, "inbound", "allow", c->in);
    cfg_listeners(f, "outbound", "expect", c->out);
    ck_assert_int_eq(fclose(f), 0);
    it_replace_file(file, "%s", text);
    free(text);
}

void it_cp_tokens(const char *more)
{
    it_write_file("tokens.txt",
                  "# TOKEN NAMESPACE SERVICE_ACCOUNT\n"
                  "aaaaaaaaaaaaaaaaaaaaaaaa default api\n"
                  "bbbbbbbbbbbbbbbbbbbbbbbb default web\n%s",
                  more != NULL ? more : "");
    it_write_file("a.token", "aaaaaaaaaaaaaaaaaaaaaaaa\n");
    it_write_file("b.token", "bbbbbbbbbbbbbbbbbbbbbbbb\n");
}

void it_cfg_write_cp(const char *file, int admin, int cp_port, const char *token, struct it_cfg *c)
{
    c->admin = admin;
    c->cp_port = cp_port;
    c->cp_token = token;
    c->cp_node = file;
    if (c->timeouts == NULL)
        c->timeouts = "handshake: 5s, idle: 1h, connect: 2s, drain: 2s";
    it_cfg_write(file, c, NULL);
}

/* ---- control planes ----------------------------------------------------------------- */

void it_cp_cfg_write(const char *file, int port, int admin, const char *fmt, ...)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    va_list ap;

    ck_assert_ptr_nonnull(f);
    fprintf(f, "listen: 127.0.0.1:%d\n", port);
    if (admin > 0)
        fprintf(f, "admin: 127.0.0.1:%d\n", admin);
    fprintf(f, "trust_domain: mesh.local\n"
               "server: {cert: cp.pem, key: cp.key}\n"
               "ca: {cert: ca.pem, key: ca.key}\n");
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    ck_assert_int_eq(fclose(f), 0);
    it_replace_file(file, "%s", text);
    free(text);
}

struct it_proc *it_cp_start(const char *name, const char *config, int port)
{
    const char *argv[] = {it_env("TG_CP_BIN"), "run", "-c", config, NULL};
    struct it_proc *p = it_spawn(name, argv, IT_STDIN_NULL);

    ck_assert_msg(it_wait_port(port, 10000), "%s (tollgate-cp) did not listen on %d", name, port);
    return p;
}

/* ---- streams: many connections each echoing a paced, checked pattern ----------------- */

#define STREAM_WINDOW (128 * 1024) /* bytes in flight per stream */
#define STREAM_TICK_MS 10
#define STREAM_TICK_BUDGET 4096 /* bytes per stream per tick */
/* Under ASan all streams together get ten streams' worth (4 MB/s each way): 100 streams at
 * full rate kept the instrumented sidecars on a core of their own and checked nothing more */
#define STREAM_TICK_TOTAL_ASAN (10 * STREAM_TICK_BUDGET)
#define STREAM_IO_CHUNK (64 * 1024)
#define STREAM_STOP_GRACE_MS 20000 /* after stop: every stream must see all its echo and EOF */

struct it_stream {
    int fd;
    uint64_t seed;
    uint64_t sent;
    _Atomic uint64_t recvd;
    bool shut, eof, failed;
    char err[160];
};

struct it_streams {
    int n;
    struct it_stream *s;
    atomic_bool stop;
    _Atomic uint64_t total;
    pthread_t th;
};

static void __attribute__((format(printf, 2, 3)))
stream_fail(struct it_stream *s, const char *fmt, ...)
{
    va_list ap;

    s->failed = true;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof(s->err), fmt, ap);
    va_end(ap);
}

static void stream_write(struct it_stream *s, size_t *budget, char *buf)
{
    size_t room = STREAM_WINDOW - (size_t)(s->sent - atomic_load(&s->recvd));
    size_t n = *budget < room ? *budget : room;
    ssize_t w;

    it_pattern(s->seed, s->sent, buf, n);
    w = send(s->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
        s->sent += (uint64_t)w;
        *budget -= (size_t)w;
    } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
        stream_fail(s, "send after %llu bytes (%llu back): %s", (unsigned long long)s->sent,
                    (unsigned long long)atomic_load(&s->recvd), strerror(errno));
    }
}

static void stream_read(struct it_streams *st, struct it_stream *s, char *buf)
{
    ssize_t r = recv(s->fd, buf, STREAM_IO_CHUNK, MSG_DONTWAIT);
    uint64_t recvd = atomic_load(&s->recvd);

    if (r > 0) {
        size_t ok = it_pattern_check(s->seed, recvd, buf, (size_t)r);

        if (ok < (size_t)r || recvd + (uint64_t)r > s->sent) {
            stream_fail(s, "corrupt echo at offset %llu (sent %llu)",
                        (unsigned long long)(recvd + ok), (unsigned long long)s->sent);
            return;
        }
        atomic_store(&s->recvd, recvd + (uint64_t)r);
        atomic_fetch_add(&st->total, (uint64_t)r);
    } else if (r == 0) {
        if (!s->shut)
            stream_fail(s, "connection dropped: EOF after %llu of %llu bytes",
                        (unsigned long long)recvd, (unsigned long long)s->sent);
        else if (recvd != s->sent)
            stream_fail(s, "EOF with %llu of %llu bytes back", (unsigned long long)recvd,
                        (unsigned long long)s->sent);
        else
            s->eof = true;
    } else if (errno != EAGAIN && errno != EINTR) {
        stream_fail(s, "recv after %llu of %llu bytes: %s", (unsigned long long)recvd,
                    (unsigned long long)s->sent, strerror(errno));
    }
}

/* One poll loop for all streams, paced by a per-tick byte budget. After stop: half-close
 * each stream and read until every echo is complete and EOF arrives. */
static void *stream_main(void *arg)
{
    struct it_streams *st = arg;
    struct pollfd *pfd = calloc((size_t)st->n, sizeof(*pfd));
    size_t *budget = calloc((size_t)st->n, sizeof(*budget));
    char *buf = malloc(STREAM_IO_CHUNK);
    uint64_t refill_at = 0, deadline = 0;
    size_t tick_budget = STREAM_TICK_BUDGET;

    if (UNDER_ASAN && (size_t)st->n * tick_budget > STREAM_TICK_TOTAL_ASAN)
        tick_budget = STREAM_TICK_TOTAL_ASAN / (size_t)st->n;
    for (;;) {
        uint64_t now = it_now_ms();
        int open = 0;

        if (atomic_load(&st->stop) && deadline == 0) {
            deadline = now + STREAM_STOP_GRACE_MS;
            for (int i = 0; i < st->n; i++)
                if (!st->s[i].failed && shutdown(st->s[i].fd, SHUT_WR) == 0)
                    st->s[i].shut = true;
        }
        if (now >= refill_at) {
            for (int i = 0; i < st->n; i++)
                budget[i] = tick_budget;
            refill_at = now + STREAM_TICK_MS;
        }
        for (int i = 0; i < st->n; i++) {
            struct it_stream *s = &st->s[i];
            short ev = POLLIN;

            pfd[i] = (struct pollfd){.fd = -1};
            if (s->eof || s->failed)
                continue;
            open++;
            if (!s->shut && budget[i] > 0 && s->sent - atomic_load(&s->recvd) < STREAM_WINDOW)
                ev |= POLLOUT;
            pfd[i] = (struct pollfd){.fd = s->fd, .events = ev};
        }
        if (open == 0)
            break;
        if (deadline != 0 && now > deadline) {
            for (int i = 0; i < st->n; i++)
                if (!st->s[i].eof && !st->s[i].failed)
                    stream_fail(&st->s[i], "no EOF %d ms after stop (%llu of %llu bytes back)",
                                STREAM_STOP_GRACE_MS,
                                (unsigned long long)atomic_load(&st->s[i].recvd),
                                (unsigned long long)st->s[i].sent);
            break;
        }
        if (poll(pfd, st->n, STREAM_TICK_MS) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < st->n; i++) {
            struct it_stream *s = &st->s[i];

            if (pfd[i].fd < 0 || pfd[i].revents == 0)
                continue;
            if (pfd[i].revents & POLLOUT)
                stream_write(s, &budget[i], buf);
            if (!s->failed && (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                stream_read(st, s, buf);
        }
    }
    free(buf);
    free(pfd);
    free(budget);
    return NULL;
}

struct it_streams *it_streams_start(int port, int n, uint64_t seed0)
{
    struct it_streams *st = calloc(1, sizeof(*st));
    uint64_t all_ready;

    ck_assert_ptr_nonnull(st);
    st->n = n;
    st->s = calloc((size_t)n, sizeof(*st->s));
    ck_assert_ptr_nonnull(st->s);
    for (int i = 0; i < n; i++) {
        struct it_stream *s = &st->s[i];

        s->seed = seed0 + (uint64_t)i;
        s->fd = it_connect(port, 10000);
        ck_assert_msg(s->fd >= 0, "stream %d: connect: %s", i, strerror(-s->fd));
        fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) | O_NONBLOCK);
    }
    ck_assert_int_eq(pthread_create(&st->th, NULL, stream_main, st), 0);
    all_ready = it_now_ms() + 10000;
    for (int i = 0; i < n; i++) {
        while (atomic_load(&st->s[i].recvd) == 0 && it_now_ms() < all_ready)
            it_sleep_ms(10);
        ck_assert_msg(atomic_load(&st->s[i].recvd) > 0, "stream %d: no echo in 10 s", i);
    }
    return st;
}

void it_streams_expect_progress(struct it_streams *st, const char *what)
{
    uint64_t before = atomic_load(&st->total);
    uint64_t end = it_now_ms() + 5000;

    while (atomic_load(&st->total) < before + 1024 * 1024 && it_now_ms() < end)
        it_sleep_ms(20);
    ck_assert_msg(atomic_load(&st->total) >= before + 1024 * 1024,
                  "%s: streams stalled (%llu bytes echoed in all)", what,
                  (unsigned long long)atomic_load(&st->total));
}

void it_streams_expect_ok(struct it_streams *st, const char *what)
{
    for (int i = 0; i < st->n; i++)
        ck_assert_msg(!st->s[i].failed, "%s: stream %d: %s", what, i, st->s[i].err);
}

uint64_t it_streams_stop(struct it_streams *st)
{
    uint64_t total;

    atomic_store(&st->stop, true);
    pthread_join(st->th, NULL);
    for (int i = 0; i < st->n; i++) {
        struct it_stream *s = &st->s[i];

        ck_assert_msg(!s->failed && s->eof, "stream %d: %s", i, s->failed ? s->err : "no EOF");
        ck_assert_msg(s->sent > 0 && atomic_load(&s->recvd) == s->sent,
                      "stream %d: %llu sent, %llu back", i, (unsigned long long)s->sent,
                      (unsigned long long)atomic_load(&s->recvd));
        close(s->fd);
    }
    total = atomic_load(&st->total);
    free(st->s);
    free(st);
    return total;
}

void it_probe_serial(int port, const char *log, char *serial, size_t cap)
{
    char err[256] = "", peer[64], line[IT_LINE_MAX], raw[128];
    int local = it_round_trip(port, "probe\n", err);

    ck_assert_msg(local > 0, "new connection through %d failed: %s", port, err);
    snprintf(peer, sizeof(peer), "\"peer\":\"127.0.0.1:%d\"", local);
    /* >= 1: an earlier connection may have had the same local port (the last line is ours) */
    ck_assert_msg(it_wait_lines(log, 1, 10000, peer, NULL) >= 1, "no %s line for %s", log, peer);
    it_last_line(log, line, sizeof(line), peer, NULL);
    ck_assert_msg(strstr(line, "\"outcome\":\"ok\"") != NULL, "%s", line);
    ck_assert_msg(it_json_str(line, "serial", raw, sizeof(raw)), "no serial: %s", line);
    it_serial_norm(raw, serial, cap);
}

void it_expect_serial(void (*probe)(char *serial, size_t cap), const char *want, int timeout_ms,
                      const char *what)
{
    uint64_t end = it_now_ms() + (uint64_t)timeout_ms;
    char got[80];

    for (;;) {
        probe(got, sizeof(got));
        if (strcmp(got, want) == 0)
            break;
        ck_assert_msg(it_now_ms() < end, "%s: new connections still see serial %s, want %s", what,
                      got, want);
        it_sleep_ms(100);
    }
    for (int i = 0; i < 3; i++) {
        probe(got, sizeof(got));
        ck_assert_msg(strcmp(got, want) == 0, "%s: serial went back to %s", what, got);
    }
}

TCase *it_test_case_of(Suite *s, const char *tcase, void (*setup)(void), void (*teardown)(void),
                       int seconds, const TTest *const *tests, size_t n)
{
    TCase *tc = tg_test_case_of(s, tcase, tests, n);

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, seconds);
    return tc;
}

Suite *it_test_suite_of(const char *suite, const char *tcase, TCase **tc, void (*setup)(void),
                        void (*teardown)(void), int seconds, const TTest *const *tests, size_t n)
{
    Suite *s = suite_create(suite);
    TCase *c = it_test_case_of(s, tcase, setup, teardown, seconds, tests, n);

    if (tc != NULL)
        *tc = c;
    return s;
}

void it_promtool_clean(const char *what, const char *text)
{
    const char *bin = getenv("PROMTOOL") != NULL ? getenv("PROMTOOL") : "/usr/bin/promtool";
    const char *const argv[] = {bin, "check", "metrics", NULL};
    char *out = NULL, *err = NULL;
    int rc;

    ck_assert_msg(text != NULL && *text != '\0', "%s: no scrape", what);
    rc = it_run(argv, text, 20000, &out, &err);
    ck_assert_msg(rc == 0,
                  "%s: promtool check metrics exited %d (127: promtool is missing, "
                  "scripts/setup.sh installs it):\n%s%s",
                  what, rc, out != NULL ? out : "", err != NULL ? err : "");
    free(out);
    free(err);
}
