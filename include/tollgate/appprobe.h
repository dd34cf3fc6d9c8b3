/* The app's own probes, run by the sidecar for the kubelet (as Istio's /app-health/ does).
 *
 * Injection (controlplane/k8s/k8s_inject.h) rewrites each httpGet and tcpSocket probe of an
 * app container to GET http://POD:15021/app-health/<container>/<livez|readyz|startupz> on
 * the sidecar's health listener (config `health:`), and hands the sidecar the original
 * probes as JSON in the environment variable TG_APPPROBE_ENV (from the pod annotation
 * TG_APPPROBE_ANNOTATION, by the downward API):
 *   {"app/livez": {"httpGet": {"path": "/healthz", "port": 8080}, "timeoutSeconds": 1},
 *    "app/readyz": {"tcpSocket": {"port": 8080}, "timeoutSeconds": 2}}
 * Ports are numbers (injection resolves named ports); path defaults to "/"; timeoutSeconds
 * to 1 (the kubelet's default). The sidecar probes the app locally, on 127.0.0.1, which the
 * capture rules never redirect: httpGet is one HTTP/1.1 GET (Host 127.0.0.1:PORT,
 * Connection: close) whose status line, 200 to 399, is a pass, as for the kubelet; tcpSocket
 * passes when the connection is accepted. Anything else, or no answer within the timeout, is
 * a failure: the health listener answers 200 or 503 with the reason.
 *
 * Loop thread only (the control thread's, where the health listener runs). */
#ifndef TOLLGATE_APPPROBE_H
#define TOLLGATE_APPPROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tollgate/err.h"

#define TG_APPPROBE_ENV "TOLLGATE_APP_PROBES"
#define TG_APPPROBE_ANNOTATION "tollgate.dev/app-probes"
#define TG_APPPROBE_PREFIX "/app-health/"
#define TG_APPPROBE_MAX 64 /* probes in one table */

struct tg_appprobe {
    char *name; /* "app/livez" */
    bool http;  /* httpGet; else tcpSocket */
    uint16_t port;
    char *path; /* httpGet: "/healthz" (with its query) */
    uint64_t timeout_ms;
};

struct tg_appprobes {
    struct tg_appprobe *v;
    size_t n;
};

/* Parses the JSON above. 0 with *out (tg_appprobes_free), or TG_EINVAL with err naming the
 * probe and field at fault, TG_ENOMEM. */
TG_MUST_USE int tg_appprobes_parse(const char *json, size_t len, struct tg_appprobes **out,
                                   char *err);
void tg_appprobes_free(struct tg_appprobes *t);
/* The probe named name[0..len) ("app/livez"), or NULL. */
const struct tg_appprobe *tg_appprobes_find(const struct tg_appprobes *t, const char *name,
                                            size_t len);

/* Runs p against 127.0.0.1 (p is copied). done(arg, ok, why) runs exactly once on the loop,
 * never from inside this call; why is a static or short-lived reason. 0, or TG_ENOMEM
 * (done will not run). */
TG_MUST_USE int tg_appprobe_run(uv_loop_t *loop, const struct tg_appprobe *p,
                                void (*done)(void *arg, bool ok, const char *why), void *arg);

#endif
