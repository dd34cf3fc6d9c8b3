#include "tollgate/metrics.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "tollgate/file.h"

static const char *const hs_fail_names[TG_HSF_N] = {
    [TG_HSF_NO_CERT] = "no_peer_cert",
    [TG_HSF_UNTRUSTED] = "untrusted",
    [TG_HSF_EXPIRED] = "expired",
    [TG_HSF_NOT_YET_VALID] = "not_yet_valid",
    [TG_HSF_BAD_CERT] = "bad_cert",
    [TG_HSF_BAD_SPIFFE] = "bad_spiffe_id",
    [TG_HSF_TRUST_DOMAIN] = "trust_domain",
    [TG_HSF_NOT_ALLOWED] = "not_allowed",
    [TG_HSF_UNEXPECTED] = "unexpected_server",
    [TG_HSF_PROTOCOL] = "protocol",
    [TG_HSF_TIMEOUT] = "timeout",
    [TG_HSF_CLOSED] = "peer_closed",
    [TG_HSF_REVOKED] = "revoked",
    [TG_HSF_PEER_REFUSED] = "peer_refused",
    [TG_HSF_OTHER] = "other",
};

const char *tg_hs_fail_name(enum tg_hs_fail r)
{
    if ((unsigned)r >= TG_HSF_N)
        return hs_fail_names[TG_HSF_OTHER];
    return hs_fail_names[r];
}

int tg_metrics_init(struct tg_metrics *m, size_t n_workers, size_t n_listeners, const char **names,
                    const char **directions)
{
    size_t n;

    memset(m, 0, sizeof(*m));
    if (n_listeners != 0 && n_workers > SIZE_MAX / n_listeners)
        return TG_EINVAL;
    n = n_workers * n_listeners;
    /* calloc(0) may return NULL; one spare slot keeps "NULL means out of memory" true */
    m->slots = calloc(n == 0 ? 1 : n, sizeof(*m->slots));
    if (m->slots == NULL)
        return TG_ENOMEM;
    m->n_workers = n_workers;
    m->n_listeners = n_listeners;
    m->listener_names = names;
    m->listener_directions = directions;
    atomic_init(&m->process.identity_reloads.v, 0);
    atomic_init(&m->process.identity_reload_failures.v, 0);
    atomic_init(&m->process.identity_expiry_unix, 0);
    atomic_init(&m->process.generation, 0);
    atomic_init(&m->ids.n, 0);
    pthread_mutex_init(&m->ids.lock, NULL);
    tg_peers_init(&m->peers);
    return 0;
}

/* The index of id among the first n entries, or n. */
static size_t find_id(const struct tg_id_table *t, const char *id, size_t n)
{
    size_t i;

    for (i = 0; i < n && strcmp(t->id[i], id) != 0; i++)
        ;
    return i;
}

unsigned tg_metrics_id_index(struct tg_metrics *m, const char *id)
{
    struct tg_id_table *t = &m->ids;
    size_t n, i;

    if (id == NULL)
        return TG_METRICS_ID_UNKNOWN;
    /* acquire: the entries below n were written before n was released */
    n = atomic_load_explicit(&t->n, memory_order_acquire);
    if ((i = find_id(t, id, n)) < n)
        return (unsigned)i;
    if (n == TG_METRICS_IDS)
        return TG_METRICS_ID_OTHER; /* full: no lock from now on */
    pthread_mutex_lock(&t->lock);
    n = atomic_load_explicit(&t->n, memory_order_relaxed);
    if ((i = find_id(t, id, n)) == n) { /* still new: another thread did not add it meanwhile */
        if (n == TG_METRICS_IDS || (t->id[n] = strdup(id)) == NULL)
            i = TG_METRICS_ID_OTHER;
        else
            atomic_store_explicit(&t->n, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&t->lock);
    return (unsigned)i;
}

/* Bucket upper bounds, in microseconds for the data path and as the le label says them. */
struct bound {
    uint64_t us;
    const char *le;
};

#define MS(x, text)                                                                                \
    {                                                                                              \
        (x) * 1000u, text                                                                          \
    }
static const struct bound conn_bounds[] = {
    MS(1, "0.001"),  MS(5, "0.005"),  MS(10, "0.01"),    MS(25, "0.025"),
    MS(50, "0.05"),  MS(100, "0.1"),  MS(250, "0.25"),   MS(500, "0.5"),
    MS(1000, "1"),   MS(2500, "2.5"), MS(5000, "5"),     MS(10000, "10"),
    MS(30000, "30"), MS(60000, "60"), MS(300000, "300"), MS(1800000, "1800"),
};
static const struct bound hs_bounds[] = {
    {500, "0.0005"}, MS(1, "0.001"),  MS(2, "0.002"), MS(5, "0.005"),  MS(10, "0.01"),
    MS(25, "0.025"), MS(50, "0.05"),  MS(100, "0.1"), MS(250, "0.25"), MS(500, "0.5"),
    MS(1000, "1"),   MS(2500, "2.5"), MS(5000, "5"),  MS(10000, "10"),
};
static const struct bound req_bounds[] = {
    {500, "0.0005"}, MS(1, "0.001"),  {2500, "0.0025"}, MS(5, "0.005"),
    MS(10, "0.01"),  MS(25, "0.025"), MS(50, "0.05"),   MS(100, "0.1"),
    MS(250, "0.25"), MS(500, "0.5"),  MS(1000, "1"),    MS(2500, "2.5"),
    MS(5000, "5"),   MS(10000, "10"), MS(30000, "30"),  MS(60000, "60"),
};
#undef MS

static const struct {
    const char *name, *help;
    const struct bound *b;
    size_t n;
} hists[TG_HIST_N] = {
    [TG_HIST_CONN] = {"tollgate_connection_duration_seconds",
                      "Connections from accept to close, every outcome.", conn_bounds,
                      TG_NELEM(conn_bounds)},
    [TG_HIST_HANDSHAKE] = {"tollgate_handshake_duration_seconds",
                           "TLS handshakes that completed, from their first byte.", hs_bounds,
                           TG_NELEM(hs_bounds)},
    [TG_HIST_REQUEST] = {"tollgate_http_request_duration_seconds",
                         "Requests on protocol: http ports, from their head to the end of "
                         "their response.",
                         req_bounds, TG_NELEM(req_bounds)},
};

_Static_assert(TG_NELEM(conn_bounds) <= TG_HIST_BUCKETS && TG_NELEM(hs_bounds) <= TG_HIST_BUCKETS &&
                   TG_NELEM(req_bounds) <= TG_HIST_BUCKETS,
               "a histogram with more bounds than TG_HIST_BUCKETS");

void tg_histogram_observe(struct tg_histogram *h, enum tg_hist k, uint64_t us)
{
    const struct bound *b = hists[k].b;
    size_t i, n = hists[k].n;

    for (i = 0; i < n && us > b[i].us; i++) /* le: a value on a bound counts in it */
        ;
    tg_counter_add(&h->bucket[i], 1);
    tg_counter_add(&h->sum_us, us);
}

void tg_metrics_cleanup(struct tg_metrics *m)
{
    size_t n = atomic_load(&m->ids.n);

    free(m->slots);
    m->slots = NULL;
    for (size_t i = 0; i < n; i++)
        free(m->ids.id[i]);
    atomic_store(&m->ids.n, 0);
    tg_peers_cleanup(&m->peers);
    m->n_workers = 0;
    m->n_listeners = 0;
}

/* A growing output string; after a failed allocation every append is a no-op and
 * the render returns NULL. */
struct out {
    char *p;
    size_t len;
    size_t cap;
    bool failed;
};

static bool reserve(struct out *o, size_t more)
{
    size_t cap = o->cap == 0 ? 4096 : o->cap;
    char *p;

    if (o->failed)
        return false;
    if (more > SIZE_MAX / 2 - o->len) {
        o->failed = true;
        return false;
    }
    if (o->len + more < o->cap)
        return true;
    while (cap <= o->len + more)
        cap *= 2;
    p = realloc(o->p, cap);
    if (p == NULL) {
        o->failed = true;
        return false;
    }
    o->p = p;
    o->cap = cap;
    return true;
}

static void put(struct out *o, const char *s, size_t n)
{
    if (!reserve(o, n))
        return;
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void putf(struct out *o, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    int n;

    /* only ever called with short, fixed-shape text (names and numbers) */
    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        o->failed = true;
        return;
    }
    put(o, tmp, (size_t)n);
}

/* Label values escape backslash, double quote and line feed (exposition format 0.0.4). */
static void put_label_value(struct out *o, const char *s)
{
    if (s == NULL)
        return;
    for (; *s != '\0'; s++) {
        switch (*s) {
        case '\\':
            put(o, "\\\\", 2);
            break;
        case '"':
            put(o, "\\\"", 2);
            break;
        case '\n':
            put(o, "\\n", 2);
            break;
        default:
            put(o, s, 1);
        }
    }
}

static void family(struct out *o, const char *name, const char *type, const char *help)
{
    /* in pieces: putf's fixed buffer would fail a long help text */
    puts_(o, "# HELP ");
    puts_(o, name);
    puts_(o, " ");
    puts_(o, help);
    puts_(o, "\n# TYPE ");
    puts_(o, name);
    puts_(o, " ");
    puts_(o, type);
    puts_(o, "\n");
}

/* Writes '{listener="..",direction=".."' and leaves the brace open for more labels. */
static void listener_labels(struct out *o, const struct tg_metrics *m, size_t listener)
{
    puts_(o, "{listener=\"");
    put_label_value(o, m->listener_names[listener]);
    puts_(o, "\",direction=\"");
    put_label_value(o, m->listener_directions[listener]);
    puts_(o, "\"");
}

/* Writes 'name{listener="..",direction=".."' and leaves the brace open for more labels. */
static void series_start(struct out *o, const struct tg_metrics *m, const char *name,
                         size_t listener)
{
    puts_(o, name);
    listener_labels(o, m, listener);
}

static uint64_t sum(const struct tg_metrics *m, size_t listener, size_t offset)
{
    uint64_t total = 0;
    size_t w;

    for (w = 0; w < m->n_workers; w++) {
        const char *slot = (const char *)&m->slots[w * m->n_listeners + listener];

        total += tg_counter_get((const struct tg_counter *)(slot + offset));
    }
    return total;
}

/* A counter family with one series per listener: its name, help text and where its counter
 * sits in struct tg_listener_stats. */
struct family_def {
    const char *name, *help;
    size_t offset;
};

#define LISTENER_COUNTER(name, help, field)                                                        \
    {                                                                                              \
        name, help, offsetof(struct tg_listener_stats, field)                                      \
    }

static const struct family_def bytes_families[] = {
    LISTENER_COUNTER("tollgate_bytes_received_total", "Payload bytes received from the downstream.",
                     bytes_received),
    LISTENER_COUNTER("tollgate_bytes_sent_total", "Payload bytes sent to the downstream.",
                     bytes_sent),
};

static const struct family_def refusal_families[] = {
    LISTENER_COUNTER("tollgate_upstream_connect_failures_total",
                     "Connections to the upstream that failed.", upstream_connect_failed),
    LISTENER_COUNTER("tollgate_revoked_total",
                     "Inbound connections refused because the peer certificate is revoked.",
                     policy_revoked),
    LISTENER_COUNTER("tollgate_denied_total",
                     "Inbound connections refused by the authorization rules.", policy_denied),
    LISTENER_COUNTER("tollgate_rate_limited_total",
                     "Inbound connections refused over a per-identity connection limit.",
                     rate_limited),
    LISTENER_COUNTER("tollgate_listener_limited_total",
                     "Connections closed at accept over the listener's own limits "
                     "(max_connections, connections_per_second).",
                     listener_limited),
    LISTENER_COUNTER(
        "tollgate_throttled_total",
        "Times an inbound connection's reads were paused by its bytes_per_second limit.",
        throttled),
    LISTENER_COUNTER("tollgate_plaintext_connections_total",
                     "Connections passed through in plain text (permissive inbound, or a "
                     "destination outside the mesh).",
                     plaintext),
};

static const struct family_def capture_http_families[] = {
    LISTENER_COUNTER("tollgate_capture_refused_total",
                     "Captured connections refused: outside the mesh, a loop to ourselves, or "
                     "no original destination.",
                     refused_capture),
    LISTENER_COUNTER("tollgate_http_requests_total", "Requests parsed on protocol: http ports.",
                     http_requests),
    LISTENER_COUNTER("tollgate_http_bad_requests_total",
                     "Requests refused as malformed or ambiguous (400, 414, 431, 505).",
                     http_bad_requests),
    LISTENER_COUNTER("tollgate_http_denied_total",
                     "Requests refused by the authorization rules (403).", http_denied),
    LISTENER_COUNTER("tollgate_http_rate_limited_total",
                     "Requests refused over requests_per_second (429).", http_rate_limited),
};

static const struct family_def tunnel_families[] = {
    LISTENER_COUNTER("tollgate_tunnels_opened_total",
                     "Outbound tunnels opened: pooled mTLS connections whose handshake chose "
                     "ALPN h2, for HTTP/2 CONNECT streams (a dial that found no h2 is none).",
                     tunnels_opened),
    LISTENER_COUNTER("tollgate_tunnels_closed_total", "Outbound tunnels opened, then ended.",
                     tunnels_closed),
    LISTENER_COUNTER("tollgate_tunnel_streams_total",
                     "Outbound app connections carried as a stream of a tunnel.", tunnel_streams),
    LISTENER_COUNTER("tollgate_tunnel_streams_refused_total",
                     "Outbound tunnel streams refused by the server's sidecar.",
                     tunnel_streams_refused),
    LISTENER_COUNTER("tollgate_tunnel_retries_total",
                     "Outbound tunnel streams the server never took, tried again on another "
                     "tunnel.",
                     tunnel_retries),
    LISTENER_COUNTER("tollgate_tunnel_fallbacks_total",
                     "Outbound app connections sent direct although tunnel: auto (the sidecar "
                     "offers no tunnel, or the pool is full).",
                     tunnel_fallbacks),
    LISTENER_COUNTER("tollgate_tunnel_bytes_sent_total",
                     "Bytes of HTTP/2 frames into outbound tunnels (before TLS).",
                     tunnel_bytes_sent),
    LISTENER_COUNTER("tollgate_tunnel_bytes_received_total",
                     "Bytes of HTTP/2 frames out of outbound tunnels (after TLS).",
                     tunnel_bytes_received),
};

/* Each family of defs (n of them), a counter per listener. */
static void per_listener(struct out *o, const struct tg_metrics *m, const struct family_def *defs,
                         size_t n)
{
    for (size_t i = 0; i < n; i++) {
        family(o, defs[i].name, "counter", defs[i].help);
        for (size_t l = 0; l < m->n_listeners; l++) {
            series_start(o, m, defs[i].name, l);
            putf(o, "} %" PRIu64 "\n", sum(m, l, defs[i].offset));
        }
    }
}

/* A counter family by listener and one more label: n counters side by side from def's
 * offset, the r-th labelled label="values[r]". */
static void per_listener_label(struct out *o, const struct tg_metrics *m,
                               const struct family_def *def, const char *label,
                               const char *const *values, size_t n)
{
    family(o, def->name, "counter", def->help);
    for (size_t l = 0; l < m->n_listeners; l++) {
        for (size_t r = 0; r < n; r++) {
            series_start(o, m, def->name, l);
            putf(o, ",%s=\"%s\"} %" PRIu64 "\n", label, values[r],
                 sum(m, l, def->offset + r * sizeof(struct tg_counter)));
        }
    }
}

/* A histogram family, one set of buckets per listener: each bucket summed over workers and
 * made cumulative; _count is the +Inf bucket, so a scrape never shows a count that disagrees
 * with its buckets. */
static void histogram(struct out *o, const struct tg_metrics *m, enum tg_hist k)
{
    const char *name = hists[k].name;
    size_t base =
        offsetof(struct tg_listener_stats, hist) + (size_t)k * sizeof(struct tg_histogram);

    family(o, name, "histogram", hists[k].help);
    for (size_t l = 0; l < m->n_listeners; l++) {
        uint64_t cum = 0, us = sum(m, l, base + offsetof(struct tg_histogram, sum_us));

        for (size_t b = 0; b <= hists[k].n; b++) {
            cum += sum(m, l, base + b * sizeof(struct tg_counter));
            putf(o, "%s_bucket", name);
            listener_labels(o, m, l);
            putf(o, ",le=\"%s\"} %" PRIu64 "\n", b < hists[k].n ? hists[k].b[b].le : "+Inf", cum);
        }
        putf(o, "%s_sum", name);
        listener_labels(o, m, l);
        putf(o, "} %" PRIu64 ".%06" PRIu64 "\n", us / 1000000, us % 1000000);
        putf(o, "%s_count", name);
        listener_labels(o, m, l);
        putf(o, "} %" PRIu64 "\n", cum);
    }
}

/* The label value of identity index i (n of them in the table). */
static const char *id_label(const struct tg_metrics *m, size_t i)
{
    return i < TG_METRICS_IDS ? m->ids.id[i] : i == TG_METRICS_ID_OTHER ? "other" : "unknown";
}

/* A counter family by listener, source and destination identity: the peer is the source of
 * an inbound listener's connections and the destination of an outbound one's, own_id the
 * other end. Series that are still 0 are left out (up to 22 per listener). */
static void per_identity(struct out *o, const struct tg_metrics *m, const struct family_def *def,
                         const char *own_id, size_t n_ids)
{
    family(o, def->name, "counter", def->help);
    for (size_t l = 0; l < m->n_listeners; l++) {
        bool in = strcmp(m->listener_directions[l], "inbound") == 0;

        for (size_t i = 0; i < TG_METRICS_ID_SLOTS; i++) {
            uint64_t v;

            if (i < TG_METRICS_IDS && i >= n_ids)
                continue;
            if ((v = sum(m, l, def->offset + i * sizeof(struct tg_counter))) == 0)
                continue;
            series_start(o, m, def->name, l);
            puts_(o, ",source_id=\"");
            put_label_value(o, in ? id_label(m, i) : own_id);
            puts_(o, "\",destination_id=\"");
            put_label_value(o, in ? own_id : id_label(m, i));
            putf(o, "\"} %" PRIu64 "\n", v);
        }
    }
}

/* tollgate_http_rate_limited_by_id_total{id}: process-wide, the listeners summed. */
static void limited_by_id(struct out *o, const struct tg_metrics *m, size_t n_ids)
{
    size_t off = offsetof(struct tg_listener_stats, limited_by_id);

    family(o, "tollgate_http_rate_limited_by_id_total", "counter",
           "Requests refused with 429, by caller (the first 20 identities seen; later ones as "
           "\"other\").");
    for (size_t i = 0; i < TG_METRICS_ID_SLOTS; i++) {
        uint64_t v = 0;

        if (i < TG_METRICS_IDS && i >= n_ids)
            continue;
        for (size_t l = 0; l < m->n_listeners; l++)
            v += sum(m, l, off + i * sizeof(struct tg_counter));
        if (v == 0)
            continue;
        puts_(o, "tollgate_http_rate_limited_by_id_total{id=\"");
        put_label_value(o, id_label(m, i));
        putf(o, "\"} %" PRIu64 "\n", v);
    }
}

static char *finish(struct out *o, size_t *len)
{
    if (o->failed || o->p == NULL) {
        free(o->p);
        return NULL;
    }
    *len = o->len;
    return o->p;
}

/* btime of /proc/stat (text): the boot time, unix seconds; 0 when absent. */
static long long boot_time(const char *stat)
{
    const char *p = strstr(stat, "\nbtime ");
    long long t = 0;

    return p != NULL && sscanf(p, "\nbtime %lld", &t) == 1 ? t : 0;
}

static void gauge_line(struct out *o, const char *name, const char *type, const char *help,
                       const char *value)
{
    family(o, name, type, help);
    putf(o, "%s %s\n", name, value);
}

/* The process_* series as Prometheus' client libraries name them (client_golang's process
 * collector reads the same files). */
static void render_process(struct out *o, const struct tg_build_info *b)
{
    char *stat = NULL, *sys = NULL, num[64], err[TG_ERRLEN];
    unsigned long long utime = 0, stime = 0, start = 0, vsize = 0;
    size_t len;
    long long rss = 0, btime;
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    const char *p;
    struct rlimit rl;
    DIR *d;

    family(o, "tollgate_build_info", "gauge",
           "Always 1: the version, the wolfSSL linked and whether it uses AES-NI.");
    puts_(o, "tollgate_build_info{version=\"");
    put_label_value(o, b->version != NULL ? b->version : "unknown");
    puts_(o, "\",wolfssl=\"");
    put_label_value(o, b->wolfssl != NULL ? b->wolfssl : "unknown");
    putf(o, "\",aesni=\"%s\"} 1\n", b->aesni ? "true" : "false");

    /* /proc/self/stat: "pid (comm) state ...": comm may hold spaces and parentheses, so the
     * fields are counted from its last ')': utime and stime are fields 14 and 15, starttime
     * 22, vsize 23, rss 24 (proc(5)) */
    if (tg_file_read(NULL, "/proc/self/stat", TG_FILE_MAX, 0, &stat, &len, err) == 0 &&
        (p = strrchr(stat, ')')) != NULL &&
        sscanf(p + 2,
               "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d "
               "%llu %llu %lld",
               &utime, &stime, &start, &vsize, &rss) == 5 &&
        tick > 0 && page > 0) {
        snprintf(num, sizeof(num), "%.2f", (double)(utime + stime) / (double)tick);
        gauge_line(o, "process_cpu_seconds_total", "counter",
                   "Total user and system CPU time spent in seconds.", num);
        snprintf(num, sizeof(num), "%lld", rss * (long long)page);
        gauge_line(o, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
                   num);
        snprintf(num, sizeof(num), "%llu", vsize);
        gauge_line(o, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
                   num);
        if (tg_file_read(NULL, "/proc/stat", TG_FILE_MAX, 0, &sys, &len, err) == 0 &&
            (btime = boot_time(sys)) > 0) {
            snprintf(num, sizeof(num), "%.2f", (double)btime + (double)start / (double)tick);
            gauge_line(o, "process_start_time_seconds", "gauge",
                       "Start time of the process since unix epoch in seconds.", num);
        }
    }
    free(stat);
    free(sys);
    if ((d = opendir("/proc/self/fd")) != NULL) {
        long long n = -1; /* the directory's own descriptor is not counted */
        struct dirent *e;

        while ((e = readdir(d)) != NULL)
            n += e->d_name[0] != '.';
        closedir(d);
        snprintf(num, sizeof(num), "%lld", n < 0 ? 0 : n);
        gauge_line(o, "process_open_fds", "gauge", "Number of open file descriptors.", num);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        snprintf(num, sizeof(num), "%llu", (unsigned long long)rl.rlim_cur);
        gauge_line(o, "process_max_fds", "gauge", "Maximum number of open file descriptors.", num);
    }
}

char *tg_metrics_render_process(const struct tg_build_info *b, size_t *len)
{
    struct out o = {0};

    render_process(&o, b);
    return finish(&o, len);
}

char *tg_metrics_render_certs(const struct tg_cert_expiry *c, size_t n, size_t *len)
{
    static const char name[] = "tollgate_certificate_expiry_timestamp_seconds";
    struct out o = {0};

    /* a timestamp: an alert compares it with time() and needs no knowledge of when it was
     * read */
    family(&o, name, "gauge",
           "When a certificate expires (notAfter, unix seconds): kind=\"identity\" ours, "
           "kind=\"root\" each root of the trust bundle, kind=\"ca\" the signing CA.");
    for (size_t i = 0; i < n; i++) {
        putf(&o, "%s{kind=\"", name);
        put_label_value(&o, c[i].kind);
        puts_(&o, "\",trust_domain=\"");
        put_label_value(&o, c[i].trust_domain);
        puts_(&o, "\",serial=\"");
        put_label_value(&o, c[i].serial);
        putf(&o, "\"} %" PRId64 "\n", c[i].not_after);
    }
    return finish(&o, len);
}

/* A gauge per listener: the counter at opened less the one at closed (offsets in struct
 * tg_listener_stats). */
static void active(struct out *o, const struct tg_metrics *m, const char *name, const char *help,
                   size_t opened_at, size_t closed_at)
{
    family(o, name, "gauge", help);
    for (size_t l = 0; l < m->n_listeners; l++) {
        /* closed first: both only grow, so opened read afterwards is never smaller */
        uint64_t closed = sum(m, l, closed_at), opened = sum(m, l, opened_at);

        series_start(o, m, name, l);
        putf(o, "} %" PRIu64 "\n", opened > closed ? opened - closed : 0);
    }
}

char *tg_metrics_render(const struct tg_metrics *m, const char *own_id, size_t *len)
{
    static const struct family_def traffic[] = {
        LISTENER_COUNTER("tollgate_connections_opened_total", "Connections accepted.", opened),
        LISTENER_COUNTER("tollgate_connections_closed_total", "Connections ended.", closed),
    };
    static const struct family_def hs_failed = LISTENER_COUNTER(
        "tollgate_handshakes_failed_total", "TLS handshakes failed, by reason.", hs_failed);
    static const struct family_def plain_refused = LISTENER_COUNTER(
        "tollgate_plaintext_refused_total",
        "Plain-text callers of a permissive inbound port refused, by reason (not_allowed: the "
        "listener's allow list; denied: the authorization rules).",
        plain_refused);
    static const struct family_def responses = LISTENER_COUNTER(
        "tollgate_http_responses_total",
        "Responses on protocol: http ports (the app's, or the sidecar's own), by status class.",
        http_responses);
    static const struct family_def conns_by_id = LISTENER_COUNTER(
        "tollgate_connections_by_identity_total",
        "mTLS connections established, by source and destination SPIFFE ID (the first 20 peers "
        "seen; later ones as \"other\").",
        conns_by_id);
    static const struct family_def requests_by_id =
        LISTENER_COUNTER("tollgate_http_requests_by_identity_total",
                         "Requests answered on protocol: http ports, by source and destination "
                         "SPIFFE ID (\"unknown\": a plain-text caller).",
                         requests_by_id);
    static const char *const plain_reasons[TG_PLAIN_N] = {"not_allowed", "denied"};
    static const char *const classes[TG_HTTP_CLASSES] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    const char *hs_reasons[TG_HSF_N];
    struct out o = {0};
    int64_t expiry = atomic_load_explicit(&m->process.identity_expiry_unix, memory_order_relaxed);
    size_t l, n_ids = atomic_load_explicit(&m->ids.n, memory_order_acquire);

    if (own_id == NULL)
        own_id = "unknown";
    for (size_t r = 0; r < TG_HSF_N; r++)
        hs_reasons[r] = tg_hs_fail_name((enum tg_hs_fail)r);
    per_listener(&o, m, traffic, TG_NELEM(traffic));

    active(&o, m, "tollgate_connections_active", "Connections open now.",
           offsetof(struct tg_listener_stats, opened), offsetof(struct tg_listener_stats, closed));
    per_identity(&o, m, &conns_by_id, own_id, n_ids);
    histogram(&o, m, TG_HIST_CONN);

    per_listener(&o, m, bytes_families, TG_NELEM(bytes_families));

    family(&o, "tollgate_handshakes_total", "counter", "TLS handshakes completed.");
    for (l = 0; l < m->n_listeners; l++) {
        series_start(&o, m, "tollgate_handshakes_total", l);
        putf(&o, ",result=\"ok\"} %" PRIu64 "\n",
             sum(m, l, offsetof(struct tg_listener_stats, hs_ok)));
    }
    per_listener_label(&o, m, &hs_failed, "reason", hs_reasons, TG_HSF_N);
    histogram(&o, m, TG_HIST_HANDSHAKE);
    per_listener(&o, m, refusal_families, TG_NELEM(refusal_families));
    per_listener_label(&o, m, &plain_refused, "reason", plain_reasons, TG_PLAIN_N);
    per_listener(&o, m, capture_http_families, TG_NELEM(capture_http_families));
    limited_by_id(&o, m, n_ids);
    per_listener(&o, m, tunnel_families, TG_NELEM(tunnel_families));
    active(&o, m, "tollgate_tunnels_active", "Outbound tunnels open now.",
           offsetof(struct tg_listener_stats, tunnels_opened),
           offsetof(struct tg_listener_stats, tunnels_closed));
    family(&o, "tollgate_tunnel_pool_limit", "gauge",
           "The outbound tunnel pool's limits (tunnel_pool:), per worker.");
    putf(&o, "tollgate_tunnel_pool_limit{limit=\"streams_per_connection\"} %u\n",
         m->tunnel_pool.streams_per_connection);
    putf(&o, "tollgate_tunnel_pool_limit{limit=\"connections_per_destination\"} %u\n",
         m->tunnel_pool.connections_per_destination);
    putf(&o, "tollgate_tunnel_pool_limit{limit=\"idle_timeout_seconds\"} %.3f\n",
         (double)m->tunnel_pool.idle_timeout_ms / 1000.0);
    per_listener_label(&o, m, &responses, "code_class", classes, TG_HTTP_CLASSES);
    per_identity(&o, m, &requests_by_id, own_id, n_ids);
    histogram(&o, m, TG_HIST_REQUEST);

    family(&o, "tollgate_identity_reloads_total", "counter",
           "New identities or trust bundles published.");
    putf(&o, "tollgate_identity_reloads_total %" PRIu64 "\n",
         tg_counter_get(&m->process.identity_reloads));
    family(&o, "tollgate_identity_reload_failures_total", "counter",
           "Identity or trust bundle changes refused.");
    putf(&o, "tollgate_identity_reload_failures_total %" PRIu64 "\n",
         tg_counter_get(&m->process.identity_reload_failures));
    if (expiry != 0) {
        int64_t now = (int64_t)time(NULL);

        /* negative once the certificate has expired, so an alert can fire on < 0 */
        family(&o, "tollgate_identity_expiry_seconds", "gauge",
               "Deprecated: use tollgate_certificate_expiry_timestamp_seconds. Seconds until "
               "our certificate expires.");
        putf(&o, "tollgate_identity_expiry_seconds %" PRId64 "\n",
             now > 0 && expiry < INT64_MIN + now ? INT64_MIN : expiry - now);
    }
    family(&o, "tollgate_generation", "gauge", "Id of the newest configuration generation.");
    putf(&o, "tollgate_generation %" PRIu64 "\n",
         atomic_load_explicit(&m->process.generation, memory_order_relaxed));
    render_process(&o, &m->build);
    return finish(&o, len);
}
