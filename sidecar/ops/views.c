/* /stats and /config_dump of the sidecar's admin endpoint (views.h). */
#include "tollgate/views.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/esc.h"
#include "tollgate/revocation.h"

/* The control-plane client's counters, in Prometheus text. */
static void cp_stats(FILE *f, const struct tg_cp_client_stats *st)
{
    const struct {
        const char *name, *type, *help;
        uint64_t v;
    } rows[] = {
        {"connected", "gauge", "1 while the control-plane stream is up.", st->connected ? 1 : 0},
        {"connects_total", "counter", "Control-plane streams established.", st->connects},
        {"reconnects_total", "counter", "Control-plane connection attempts after the first.",
         st->reconnects},
        {"disconnects_total", "counter", "Established control-plane streams lost.",
         st->disconnects},
        {"failovers_total", "counter",
         "Control-plane streams established with another replica than the last one.",
         st->failovers},
        {"pushes_accepted_total", "counter", "Pushes applied and ACKed.", st->pushes_accepted},
        {"pushes_rejected_total", "counter", "Pushes refused (NACK); the last good is kept.",
         st->pushes_rejected},
        {"csrs_sent_total", "counter", "Certificate signing requests sent.", st->csrs_sent},
        {"certs_accepted_total", "counter", "Signed certificates applied.", st->certs_accepted},
        {"certs_rejected_total", "counter", "Signed certificates refused (NACK).",
         st->certs_rejected},
        {"csrs_refused_total", "counter", "CSRs the control plane refused.", st->csrs_refused},
    };

    for (size_t i = 0; i < TG_NELEM(rows); i++)
        fprintf(f, "# HELP tollgate_cp_%s %s\n# TYPE tollgate_cp_%s %s\ntollgate_cp_%s %llu\n",
                rows[i].name, rows[i].help, rows[i].name, rows[i].type, rows[i].name,
                (unsigned long long)rows[i].v);
}

/* tollgate_certificate_expiry_timestamp_seconds of our certificate and each root (none
 * before the first certificate, in control-plane or Workload API mode). False when out of
 * memory. */
static bool cert_expiry(FILE *f, const struct tg_identity *id)
{
    struct tg_cert_expiry *c = calloc(id != NULL ? 1 + id->n_roots : 1, sizeof(*c));
    size_t n = c != NULL && id != NULL ? tg_identity_expiries(id, c) : 0, len = 0;
    char *text = c != NULL ? tg_metrics_render_certs(c, n, &len) : NULL;

    if (text != NULL)
        fwrite(text, 1, len, f);
    free(text);
    free(c);
    return text != NULL;
}

char *tg_view_stats(struct tg_metrics *m, const struct tg_gen *gen, const struct tg_cp_client *cp,
                    size_t *len)
{
    const struct tg_identity *id = gen != NULL ? gen->identity : NULL;
    char *base = tg_metrics_render(m, id != NULL ? id->leaf.id.id : NULL, len), *text = NULL;
    size_t n = 0;
    bool ok;
    FILE *f;

    if (base == NULL)
        return NULL;
    if ((f = open_memstream(&text, &n)) == NULL) {
        free(base);
        return NULL;
    }
    fwrite(base, 1, *len, f);
    free(base);
    ok = cert_expiry(f, id);
    if (cp != NULL) {
        const struct tg_cp_client_stats *st = tg_cp_client_stats(cp);

        cp_stats(f, st);
        fputs("# HELP tollgate_cp_handshakes_failed_total TLS handshakes with the control plane "
              "that failed, by reason.\n# TYPE tollgate_cp_handshakes_failed_total counter\n",
              f);
        for (int r = 0; r < TG_HSF_N; r++)
            fprintf(f, "tollgate_cp_handshakes_failed_total{reason=\"%s\"} %llu\n",
                    tg_hs_fail_name((enum tg_hs_fail)r),
                    (unsigned long long)st->handshakes_failed[r]);
        /* an info metric: the replica's name and address (config grammar: no quote or
         * backslash to escape), 1 while connected to it */
        fputs("# HELP tollgate_cp_replica The control-plane replica the sidecar is, or was last, "
              "on (1 while connected).\n# TYPE tollgate_cp_replica gauge\n",
              f);
        if (st->replica[0] != '\0')
            fprintf(f, "tollgate_cp_replica{replica=\"%s\"} %d\n", st->replica,
                    st->connected ? 1 : 0);
    }
    if (fclose(f) != 0 || !ok) {
        free(text);
        return NULL;
    }
    *len = n;
    return text;
}

/* Appends s to the JSON text as a string literal, escaped by the one escaper (esc.h). */
static void json_str(FILE *f, const char *s)
{
    size_t n = strlen(s), i = 0;

    fputc('"', f);
    while (i < n) {
        struct tg_esc_piece p;

        tg_esc_next(TG_ESC_JSON, s + i, n - i, &p);
        fwrite(p.out, 1, p.out_len, f);
        i += p.in_len;
    }
    fputc('"', f);
}

/* control_plane: the stream's state and the version of each resource we hold. */
static void dump_cp(const struct tg_view_src *v, FILE *f)
{
    const struct tg_cp_client_stats *st = tg_cp_client_stats(v->cp);

    fputs(",\"control_plane\":{\"address\":", f);
    json_str(f, v->cfg->cp.address.text);
    fputs(",\"addresses\":[", f);
    for (size_t i = 0; i < v->cfg->cp.addresses.n; i++) {
        fputs(i ? "," : "", f);
        json_str(f, v->cfg->cp.addresses.v[i]);
    }
    fprintf(f, "],\"connected\":%s,\"replica\":", st->connected ? "true" : "false");
    json_str(f, st->replica);
    fprintf(f, ",\"failovers\":%llu,\"last_error\":", (unsigned long long)st->failovers);
    json_str(f, st->last_error);
    fputs(",\"resources\":{", f);
    for (int t = TG_RES_IDENTITY, n = 0; t < TG_RES_N; t++, n++) {
        fprintf(f, "%s\"%s\":", n ? "," : "", tg_res_type_name((enum tg_res_type)t));
        json_str(f, tg_cp_client_version(v->cp, (enum tg_res_type)t));
    }
    fputs("}}", f);
}

/* identity.workload_api: where the SVID comes from and how the stream fares. */
static void dump_wl(const struct tg_view_src *v, FILE *f)
{
    const struct tg_wl_stats *st = tg_wl_client_stats(v->wl);

    fputs(",\"workload_api\":{\"endpoint\":", f);
    json_str(f, v->cfg->wl.endpoint);
    fputs(",\"socket\":", f);
    json_str(f, v->cfg->wl.socket);
    fputs(",\"spiffe_id\":", f);
    json_str(f, v->cfg->wl.spiffe_id != NULL ? v->cfg->wl.spiffe_id : "(the first SVID)");
    fprintf(f, ",\"connected\":%s,\"updates\":%llu,\"refused\":%llu,\"reconnects\":%llu,",
            st->connected ? "true" : "false", (unsigned long long)st->updates,
            (unsigned long long)st->refused, (unsigned long long)st->reconnects);
    fputs("\"last_error\":", f);
    json_str(f, st->last_error);
    fputc('}', f);
}

/* peers: the verified peers' table (peers.h), most recently seen first. */
static void dump_peers(const struct tg_view_src *v, FILE *f)
{
    struct tg_peer_row *rows;
    uint64_t untracked, evicted;
    size_t n = tg_peers_snapshot(&v->rt->metrics->peers, &rows, &untracked, &evicted);

    fprintf(f,
            ",\"peers\":{\"max\":%d,\"untracked_connections\":%llu,\"evicted\":%llu,"
            "\"list\":[",
            TG_PEERS_MAX, (unsigned long long)untracked, (unsigned long long)evicted);
    for (size_t i = 0; i < n; i++) {
        const struct tg_peer_row *r = &rows[i];

        fputs(i ? ",{\"spiffe_id\":" : "{\"spiffe_id\":", f);
        json_str(f, r->id);
        fprintf(f,
                ",\"sha256\":\"%s\",\"serial\":\"%s\",\"not_after\":%lld,\"first_seen\":%lld,"
                "\"last_seen\":%lld,\"inbound\":%llu,\"outbound\":%llu,\"active\":%llu}",
                r->sha256, r->serial, (long long)r->not_after, (long long)r->first_seen,
                (long long)r->last_seen, (unsigned long long)r->inbound,
                (unsigned long long)r->outbound, (unsigned long long)r->active);
    }
    fputs("]}", f);
    tg_peers_snapshot_free(rows, n);
}

/* mesh: the table the generation holds (its file's or the pushed one), counted, and each
 * destination whose own tunnel mode is set (the others follow their listener's); and
 * tunnel_pool, the limits of outbound tunnels. */
static void dump_tunnels(const struct tg_view_src *v, FILE *f)
{
    const struct tg_tunnel_pool_cfg *p = &v->cfg->tunnel_pool;

    if (v->gen != NULL) {
        const struct tg_mesh *m = &v->gen->mesh;

        fprintf(f, ",\"mesh\":{\"outside\":\"%s\",\"destinations\":%zu,\"tunnel\":[",
                m->refuse_outside ? "refuse" : "passthrough", m->n);
        for (size_t i = 0, n = 0; i < m->n; i++) {
            const struct tg_mesh_dest *d = &m->dests[i];

            if (d->tunnel == TG_TUNNEL_UNSET)
                continue;
            fputs(n++ ? ",{\"address\":" : "{\"address\":", f);
            json_str(f, d->text);
            fprintf(f, ",\"port\":%u,\"tunnel\":\"%s\"}", (unsigned)d->port,
                    tg_config_tunnel_name(d->tunnel));
        }
        fputs("]}", f);
    }
    fprintf(f,
            ",\"tunnel_pool\":{\"streams_per_connection\":%u,\"connections_per_destination\":%u,"
            "\"idle_timeout_ms\":%llu}",
            p->streams_per_connection, p->connections_per_destination,
            (unsigned long long)p->idle_timeout_ms);
}

static const char *identity_from(const struct tg_view_src *v, const char *path)
{
    return v->cfg->wl.enabled ? "(workload API)" : v->cfg->cp.enabled ? "(control plane)" : path;
}

char *tg_view_config_dump(const struct tg_view_src *v, size_t *len)
{
    const struct tg_identity *id = v->gen != NULL ? v->gen->identity : NULL;
    char *text = NULL;
    FILE *f = open_memstream(&text, len);

    if (f == NULL)
        return NULL;
    fprintf(f, "{\"generation\":%llu,\"identity\":",
            (unsigned long long)(v->gen != NULL ? v->gen->id : 0));
    if (id == NULL) {
        fputs("null", f); /* control plane or Workload API, before the first certificate */
    } else {
        fputs("{\"spiffe_id\":", f);
        json_str(f, id->leaf.id.id);
        fprintf(f, ",\"serial\":\"%s\",\"sha256\":\"%s\",\"not_before\":%lld,\"not_after\":%lld,",
                id->leaf.serial, id->leaf.sha256, (long long)id->leaf.not_before,
                (long long)id->leaf.not_after);
        fputs("\"cert\":", f);
        json_str(f, identity_from(v, v->cfg->cert_path));
        fputs(",\"trust_bundle\":", f);
        json_str(f, identity_from(v, v->cfg->bundle_path));
        fprintf(f, ",\"n_roots\":%zu,\"roots\":[", id->n_roots);
        for (size_t i = 0; i < id->n_roots; i++) {
            const struct tg_cert_info *r = &id->roots[i];

            fprintf(f, "%s{\"trust_domain\":", i ? "," : "");
            json_str(f, tg_identity_root_domain(id, i));
            fputs(",\"cn\":", f);
            json_str(f, r->cn);
            fprintf(f, ",\"serial\":\"%s\",\"sha256\":\"%s\",\"not_after\":%lld}", r->serial,
                    r->sha256, (long long)r->not_after);
        }
        fputs("],\"crls\":[", f);
        for (size_t i = 0; i < tg_revocations_n(id->rev); i++) {
            struct tg_rev_crl_info crl;

            tg_revocations_crl(id->rev, i, &crl);
            fputs(i ? ",{\"issuer\":" : "{\"issuer\":", f);
            json_str(f, crl.issuer);
            fputs(",\"trust_domain\":", f);
            json_str(f, crl.domain);
            fprintf(f, ",\"signer\":\"%s\",\"revoked\":%zu}", crl.root ? "root" : "intermediate",
                    crl.n_serials);
        }
        fputs("]}", f);
    }
    fputs(",\"trust_domains\":[", f);
    for (size_t i = 0; id != NULL && i < id->n_domains; i++) {
        fputs(i ? "," : "", f);
        json_str(f, id->domains[i].name);
    }
    fputc(']', f);
    if (v->cp != NULL)
        dump_cp(v, f);
    if (v->wl != NULL)
        dump_wl(v, f);
    dump_peers(v, f);
    fputs(",\"listeners\":[", f);
    for (size_t i = 0; i < v->rt->n_listeners; i++) {
        const struct tg_listener_def *l = &v->rt->listeners[i];

        fprintf(f, "%s{\"name\":", i ? "," : "");
        json_str(f, l->name);
        fprintf(f, ",\"direction\":\"%s\",\"listen\":", l->inbound ? "inbound" : "outbound");
        json_str(f, l->listen->text);
        fputs(",\"upstream\":", f);
        json_str(f, !l->transparent        ? l->upstream->text
                    : l->upstream_loopback ? "loopback, original port"
                                           : "original destination");
        if (l->tunnels)
            fputs(",\"tunnels\":true", f);
        if (!l->inbound)
            fprintf(f, ",\"tunnel\":\"%s\"", tg_config_tunnel_name(l->tunnel));
        fprintf(f, ",\"%s\":[", l->inbound ? "allow" : "expect");
        for (size_t j = 0; j < l->rule.ids->n; j++) {
            if (j)
                fputc(',', f);
            json_str(f, l->rule.ids->v[j]);
        }
        fputs("]}", f);
    }
    fputc(']', f);
    dump_tunnels(v, f);
    fputs("}\n", f);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}
