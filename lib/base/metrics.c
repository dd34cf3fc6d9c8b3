#include "tollgate/metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    pthread_mutex_init(&m->http_limited_ids.lock, NULL);
    tg_peers_init(&m->peers);
    return 0;
}

void tg_metrics_count_limited_id(struct tg_metrics *m, const char *id)
{
    struct tg_id_counts *c = &m->http_limited_ids;
    size_t i;

    pthread_mutex_lock(&c->lock);
    for (i = 0; i < c->n && strcmp(c->id[i], id) != 0; i++)
        ;
    if (i < c->n)
        c->count[i]++;
    else if (c->n < TG_METRICS_IDS && (c->id[c->n] = strdup(id)) != NULL)
        c->count[c->n++] = 1;
    else
        c->other++;
    pthread_mutex_unlock(&c->lock);
}

void tg_metrics_cleanup(struct tg_metrics *m)
{
    free(m->slots);
    m->slots = NULL;
    for (size_t i = 0; i < m->http_limited_ids.n; i++)
        free(m->http_limited_ids.id[i]);
    m->http_limited_ids.n = 0;
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
    putf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Writes 'name{listener="..",direction=".."' and leaves the brace open for more labels. */
static void series_start(struct out *o, const struct tg_metrics *m, const char *name,
                         size_t listener)
{
    puts_(o, name);
    puts_(o, "{listener=\"");
    put_label_value(o, m->listener_names[listener]);
    puts_(o, "\",direction=\"");
    put_label_value(o, m->listener_directions[listener]);
    puts_(o, "\"");
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

/* A counter family by listener and reason: n counters side by side from def's offset, the
 * r-th labelled reasons[r]. */
static void per_listener_reason(struct out *o, const struct tg_metrics *m,
                                const struct family_def *def, const char *const *reasons, size_t n)
{
    family(o, def->name, "counter", def->help);
    for (size_t l = 0; l < m->n_listeners; l++) {
        for (size_t r = 0; r < n; r++) {
            series_start(o, m, def->name, l);
            putf(o, ",reason=\"%s\"} %" PRIu64 "\n", reasons[r],
                 sum(m, l, def->offset + r * sizeof(struct tg_counter)));
        }
    }
}

char *tg_metrics_render(struct tg_metrics *m, size_t *len)
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
    static const char *const plain_reasons[TG_PLAIN_N] = {"not_allowed", "denied"};
    const char *hs_reasons[TG_HSF_N];
    struct out o = {0};
    int64_t expiry = atomic_load_explicit(&m->process.identity_expiry_unix, memory_order_relaxed);
    size_t l;

    for (size_t r = 0; r < TG_HSF_N; r++)
        hs_reasons[r] = tg_hs_fail_name((enum tg_hs_fail)r);
    per_listener(&o, m, traffic, TG_NELEM(traffic));

    family(&o, "tollgate_connections_active", "gauge", "Connections open now.");
    for (l = 0; l < m->n_listeners; l++) {
        /* closed first: both only grow, so opened read afterwards is never smaller */
        uint64_t closed = sum(m, l, offsetof(struct tg_listener_stats, closed));
        uint64_t opened = sum(m, l, offsetof(struct tg_listener_stats, opened));

        series_start(&o, m, "tollgate_connections_active", l);
        putf(&o, "} %" PRIu64 "\n", opened > closed ? opened - closed : 0);
    }

    per_listener(&o, m, bytes_families, TG_NELEM(bytes_families));

    family(&o, "tollgate_handshakes_total", "counter", "TLS handshakes completed.");
    for (l = 0; l < m->n_listeners; l++) {
        series_start(&o, m, "tollgate_handshakes_total", l);
        putf(&o, ",result=\"ok\"} %" PRIu64 "\n",
             sum(m, l, offsetof(struct tg_listener_stats, hs_ok)));
    }
    per_listener_reason(&o, m, &hs_failed, hs_reasons, TG_HSF_N);
    per_listener(&o, m, refusal_families, TG_NELEM(refusal_families));
    per_listener_reason(&o, m, &plain_refused, plain_reasons, TG_PLAIN_N);
    per_listener(&o, m, capture_http_families, TG_NELEM(capture_http_families));
    {
        struct tg_id_counts *c = &m->http_limited_ids;

        family(&o, "tollgate_http_rate_limited_by_id_total", "counter",
               "Requests refused with 429, by caller (the first 20 callers; later ones as "
               "\"other\").");
        pthread_mutex_lock(&c->lock);
        for (size_t i = 0; i < c->n; i++) {
            puts_(&o, "tollgate_http_rate_limited_by_id_total{id=\"");
            put_label_value(&o, c->id[i]);
            putf(&o, "\"} %" PRIu64 "\n", c->count[i]);
        }
        if (c->other > 0)
            putf(&o, "tollgate_http_rate_limited_by_id_total{id=\"other\"} %" PRIu64 "\n",
                 c->other);
        pthread_mutex_unlock(&c->lock);
    }

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
               "Seconds until our certificate expires.");
        putf(&o, "tollgate_identity_expiry_seconds %" PRId64 "\n",
             now > 0 && expiry < INT64_MIN + now ? INT64_MIN : expiry - now);
    }
    family(&o, "tollgate_generation", "gauge", "Id of the newest configuration generation.");
    putf(&o, "tollgate_generation %" PRIu64 "\n",
         atomic_load_explicit(&m->process.generation, memory_order_relaxed));

    if (o.failed || o.p == NULL) {
        free(o.p);
        return NULL;
    }
    *len = o.len;
    return o.p;
}
