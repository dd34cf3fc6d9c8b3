/* The stand-in Kubernetes API server (tests/k8s/apiserver.py) for integration tests: its
 * certificates (a CA made here, a server certificate for 127.0.0.1), the process, and its
 * plain-HTTP control port. ck_asserts on every failure. */
#ifndef TG_IT_K8S_H
#define TG_IT_K8S_H

#include <check.h>
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
/* The mesh side of a test against the stand-in: a CA (ca.pem, ca.key), the control plane's
 * certificate for IT_CP_ID (cp.pem, cp.key), and bootstrap tokens for sidecars A
 * (default/api: a.token) and B (default/web: b.token) in tokens.txt. */
void it_k8s_mesh_files(void);
/* A cp.yaml (it_cp_cfg_write) listening on port, admin on admin (0: none), with top (lines,
 * "" for none), tokens.txt, mesh.yaml and kubernetes.discovery against the stand-in plus
 * discovery (indented lines, "" for none). */
void it_k8s_write_cp(const char *file, int port, int admin, const char *top, const char *discovery);
/* Sidecars A (a.yaml: outbound api-out on out_port -> B's in_port, expecting B's ID) and B
 * (b.yaml: inbound web-in on in_port -> echo_port, allowing b_allow, NULL: no allow list),
 * each with its control plane's port, admin port and Hello labels (flow-map text, NULL: none),
 * written by it_cfg_write_cp. */
struct it_k8s_pair {
    int a_cp, b_cp, a_admin, b_admin, in_port, out_port, echo_port;
    const char *b_allow, *a_labels, *b_labels;
    const char *a_pod_info, *b_pod_info; /* control_plane.pod_info directories; NULL: none */
};
/* Writes a downward API directory dir (control_plane.pod_info) for pod name in namespace ns with
 * the labels file's text labels (the kubelet's `key="value"` lines). */
void it_k8s_pod_info(const char *dir, const char *ns, const char *name, const char *labels);
void it_k8s_write_sidecars(const struct it_k8s_pair *p);
/* Both sidecars of p against the control plane at cp_port: free ports for the rest, an echo
 * server ("echo") behind B, and the two configs written as it_k8s_write_sidecars (p's
 * labels, pod_info and b_allow as set). */
void it_k8s_pair_setup(int cp_port, struct it_k8s_pair *p);
/* Whether a round trip through A (out_port) and B succeeds within timeout_ms (want true), or
 * fails on every try for that long (want false): polls, so a push on its way is waited for. */
bool it_k8s_traffic_becomes(int out_port, bool want, int timeout_ms);
/* A counter of GET /stats. */
long long it_k8s_stat(const char *key);
/* Waits until the counter key is want. */
bool it_k8s_wait_stat(const char *key, long long want, int timeout_ms);

/* PUT a Running Pod ns/name under service account sa with metadata.labels labels (a JSON
 * object's text) and pod IP ip. */
void it_k8s_pod(const char *ns, const char *name, const char *sa, const char *labels,
                const char *ip);
/* it_setup, the stand-in API server (accepting token-one) with namespace default holding Pods
 * api-0 (service account api, labels api_labels) and web-0 (web, web_labels), and the mesh
 * side's files (it_k8s_mesh_files). */
void it_k8s_two_pods(const char *api_labels, const char *web_labels);
/* A suite of one test case named name holding test, with setup and teardown around it and
 * a 60 s timeout. */
Suite *it_k8s_suite(const char *name, const TTest *test, void (*setup)(void),
                    void (*teardown)(void));

#endif
