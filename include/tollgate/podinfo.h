/* The pod a sidecar runs in, as the Kubernetes downward API writes it into a volume
 * (control_plane.pod_info: a directory): the files "name" (metadata.name), "namespace"
 * (metadata.namespace) and "labels" (metadata.labels). Pure: the caller reads the files.
 *
 * The labels file is the kubelet's rendering of a map: one `key="value"` per line, sorted by
 * key, lines joined by '\n' with no newline after the last (one is tolerated). Parsed
 * strictly, as Kubernetes validates labels, so a file that is not the kubelet's is refused
 * whole rather than half read:
 *   - a key is an optional prefix (a DNS subdomain: lowercase [a-z0-9.-], at most 253
 *     bytes) and '/', then a name of 1 to 63 characters of [A-Za-z0-9._-] beginning and
 *     ending with a letter or digit;
 *   - a value is in double quotes, 0 to 63 characters of the same set, beginning and ending
 *     with a letter or digit when not empty; no escapes (no valid label value needs one);
 *   - each key once, at most TG_PODINFO_MAX_LABELS lines, no CR, no NUL, no blank line.
 * The name is a DNS subdomain (at most 253 bytes), the namespace a DNS label (at most 63);
 * each file holds the value alone (one trailing '\n' tolerated). */
#ifndef TOLLGATE_PODINFO_H
#define TOLLGATE_PODINFO_H

#include <stdbool.h>
#include <stddef.h>

#include "tollgate/err.h"
#include "tollgate/resource.h"

#define TG_PODINFO_MAX_LABELS 64 /* what a Hello carries */
#define TG_PODINFO_FILE_MAX (64 * 1024)
#define TG_PODINFO_NAME_MAX 253
#define TG_PODINFO_NS_MAX 63

struct tg_podinfo {
    char name[TG_PODINFO_NAME_MAX + 1];
    char ns[TG_PODINFO_NS_MAX + 1];
    struct tg_res_label *labels; /* heap: tg_podinfo_cleanup */
    size_t n_labels;
};

/* Parses the three files' contents (each len bytes, not NUL-terminated); dir names the
 * directory in messages ("DIR/labels:3: ..."). 0 with *out filled (tg_podinfo_cleanup), or
 * TG_EINVAL / TG_ENOMEM with err; *out is untouched on failure. */
TG_MUST_USE int tg_podinfo_parse(const char *dir, const char *name, size_t name_len, const char *ns,
                                 size_t ns_len, const char *labels, size_t labels_len,
                                 struct tg_podinfo *out, char *err);
/* Frees the labels; *p is empty after. */
void tg_podinfo_cleanup(struct tg_podinfo *p);

/* Whether s (n bytes) is a label key, or a label value, as above. */
bool tg_podinfo_label_key_ok(const char *s, size_t n);
bool tg_podinfo_label_value_ok(const char *s, size_t n);

#endif
