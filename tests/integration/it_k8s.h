/* The stand-in Kubernetes API server (tests/k8s/apiserver.py) for integration tests: its
 * certificates (a CA made here, a server certificate for 127.0.0.1), the process, and its
 * plain-HTTP control port. ck_asserts on every failure. */
#ifndef TG_IT_K8S_H
#define TG_IT_K8S_H

#include <stdbool.h>
#include <stddef.h>

extern int it_k8s_api_port, it_k8s_ctl_port;

/* Makes api-ca.pem (the CA to trust), api.pem and api.key in the test's directory. */
void it_k8s_certs(void);
/* Starts the stand-in as "apiserver", accepting token, with BOOKMARKs every bookmark_s and
 * list pages of max_page items (0: no cap); sets the two ports. */
void it_k8s_start(const char *token, const char *bookmark_s, int max_page);
/* One request to the control port; returns the status, the body in buf. */
int it_k8s_ctl(const char *method, const char *path, const char *body, char *buf, size_t cap);
/* PUT /objects/<plural> (ADDED or MODIFIED); DELETE /objects/<plural>/<ns>/<name>. */
void it_k8s_put(const char *plural, const char *json);
void it_k8s_del(const char *plural, const char *ns, const char *name);
/* A counter of GET /stats. */
long long it_k8s_stat(const char *key);
/* Waits until the counter key is want. */
bool it_k8s_wait_stat(const char *key, long long want, int timeout_ms);

#endif
