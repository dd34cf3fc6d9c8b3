/* tollgate-cp's mutating admission webhook: AdmissionReview v1 over HTTPS (decisions in
 * k8s_inject.h), its serving certificate, and the caBundle the API server trusts it by.
 *
 * Serving: HTTPS (TLS 1.2 or 1.3, no client certificate asked) on cfg->listen, one request
 * per connection (Connection: close) over tg_msgstream in raw mode. Only POST of
 * TG_K8S_WEBHOOK_PATH with a Content-Length body of at most TG_K8S_WEBHOOK_BODY_MAX bytes
 * (the API server's own limit on an object is 3 MiB): 404 another path, 405 another method
 * (Allow: POST), 411 no Content-Length, 413 a larger body (answered as soon as the head says
 * so), 400 a head that does not parse or a body that is not an AdmissionReview, 200 with the
 * AdmissionReview response otherwise. At most TG_K8S_WEBHOOK_MAX_CONNS connections at once
 * (a new one over that is closed at once) and each must deliver its whole request within
 * TG_K8S_WEBHOOK_REQUEST_MS of its accept (then closed). A client that does not speak TLS
 * fails the handshake and gets no answer.
 *
 * Certificate: issued by the control plane's own CA (tg_cp_ca_issue_dns) to a key made in
 * memory, for the Service's names: S, S.NS, S.NS.svc, S.NS.svc.cluster.local; valid
 * TG_K8S_WEBHOOK_CERT_S (never past the CA), renewed at half of that and whenever the CA
 * changes (tg_k8s_webhook_set_ca). A connection keeps the context it was accepted with.
 *
 * caBundle: the MutatingWebhookConfiguration cfg->configuration holds the roots the API
 * server verifies us with. At start, and whenever the roots change, the control plane reads
 * it (GET) and, where a webhook of it whose clientConfig.service names our Service and
 * namespace has another caBundle, writes ours with a JSON patch that first tests the
 * resourceVersion read (a concurrent writer makes it fail: read again). A configuration
 * without such a webhook is an error. Failures are logged and retried, 1 s doubling to 60 s.
 * The requests run on libuv's thread pool (libcurl's easy interface: one request at a time,
 * away from the loop), with the API server, CA and token of kubernetes.discovery.
 *
 * Loop thread only. */
#ifndef TOLLGATE_K8S_WEBHOOK_H
#define TOLLGATE_K8S_WEBHOOK_H

#include <stdint.h>
#include <uv.h>

#include "cp_ca.h"
#include "k8s_inject.h"
#include "tollgate/config.h"

#define TG_K8S_WEBHOOK_PATH "/inject"
#define TG_K8S_WEBHOOK_BODY_MAX (4u << 20)
#define TG_K8S_WEBHOOK_HEAD_MAX 16384
#define TG_K8S_WEBHOOK_MAX_CONNS 128
#define TG_K8S_WEBHOOK_REQUEST_MS 10000
#define TG_K8S_WEBHOOK_CERT_S (7 * 24 * 3600)

struct tg_k8s_webhook_cfg {
    const struct tg_addr *listen;
    const char *service;       /* the webhook's Service */
    const char *ns;            /* and its namespace */
    const char *configuration; /* the MutatingWebhookConfiguration to keep current */
    const char *image;         /* the sidecar's image */
    const char *api_server;    /* "https://host:port" */
    const char *ca_file;       /* the API server's CA */
    const char *token_file;    /* our bearer token */
};

struct tg_k8s_webhook_stats {
    uint64_t requests;  /* AdmissionReviews decided */
    uint64_t injected;  /* patched */
    uint64_t refused;   /* allowed: false */
    uint64_t rejected;  /* HTTP errors: bad method, path, size, body */
    uint64_t certs;     /* serving certificates issued */
    uint64_t bundle_ok; /* caBundle checks that ended current (patched or already so) */
    uint64_t bundle_failed;
};

struct tg_k8s_webhook;

/* Issues the certificate from ca, listens, and starts the caBundle check with bundle_pem
 * (our roots, PEM). cfg's strings are copied; ca is borrowed until the next set_ca or close.
 * 0 with *out, or a negative code with err (nothing left running). */
TG_MUST_USE int tg_k8s_webhook_new(uv_loop_t *loop, const struct tg_k8s_webhook_cfg *cfg,
                                   const struct tg_cp_ca *ca, const char *bundle_pem,
                                   tg_k8s_inject_lookup lookup, void *arg,
                                   struct tg_k8s_webhook **out, char *err);
/* The configuration was reloaded: a new certificate when ca is another CA (serial), the
 * caBundle written again when bundle_pem differs. */
void tg_k8s_webhook_set_ca(struct tg_k8s_webhook *w, const struct tg_cp_ca *ca,
                           const char *bundle_pem);
int tg_k8s_webhook_port(const struct tg_k8s_webhook *w);
const struct tg_k8s_webhook_stats *tg_k8s_webhook_stats(const struct tg_k8s_webhook *w);
/* Stops; on_closed(arg) once every handle and request is done, then w is freed. */
void tg_k8s_webhook_close(struct tg_k8s_webhook *w, void (*on_closed)(void *arg), void *arg);

#endif
