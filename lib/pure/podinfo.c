/* The downward API's pod files (podinfo.h). */
#include "tollgate/podinfo.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define LABEL_NAME_MAX 63

static bool alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* [A-Za-z0-9._-], beginning and ending with [A-Za-z0-9]: a label name or a non-empty value. */
static bool qualified_ok(const char *s, size_t n)
{
    if (n == 0 || n > LABEL_NAME_MAX || !alnum(s[0]) || !alnum(s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return false;
    return true;
}

/* A DNS-1123 subdomain: lowercase labels of [a-z0-9-] joined by dots, max bytes in all. */
static bool subdomain_ok(const char *s, size_t n, size_t max)
{
    size_t label = 0;

    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && label > 0)))
            return false;
        if (++label > 63)
            return false;
    }
    return label > 0 && s[n - 1] != '-';
}

bool tg_podinfo_label_key_ok(const char *s, size_t n)
{
    const char *slash = memchr(s, '/', n);

    if (slash == NULL)
        return qualified_ok(s, n);
    return subdomain_ok(s, (size_t)(slash - s), 253) &&
           qualified_ok(slash + 1, n - (size_t)(slash - s) - 1);
}

bool tg_podinfo_label_value_ok(const char *s, size_t n)
{
    return n == 0 || qualified_ok(s, n);
}

void tg_podinfo_cleanup(struct tg_podinfo *p)
{
    tg_res_labels_free(p->labels, p->n_labels);
    p->labels = NULL;
    p->n_labels = 0;
}

/* A file that holds one value: its bytes without one trailing '\n'. */
static size_t one_value(const char *s, size_t n)
{
    return n > 0 && s[n - 1] == '\n' ? n - 1 : n;
}

/* One `key="value"` line into l[*n]. 0, or TG_EINVAL / TG_ENOMEM with err. */
static int parse_line(const char *dir, unsigned line_no, const char *line, size_t len,
                      struct tg_res_label *l, size_t *n, char *err)
{
    const char *eq = memchr(line, '=', len);
    size_t klen, vlen;

    klen = eq != NULL ? (size_t)(eq - line) : 0;
    if (eq == NULL || len < klen + 3 || eq[1] != '"' || line[len - 1] != '"')
        return tg_err_set(err, TG_EINVAL, "%s/labels:%u: want key=\"value\"", dir, line_no);
    vlen = len - klen - 3;
    if (!tg_podinfo_label_key_ok(line, klen))
        return tg_err_set(err, TG_EINVAL,
                          "%s/labels:%u: \"%.*s\" is not a label key ([prefix/]name: a DNS "
                          "subdomain, then 1 to 63 of [A-Za-z0-9._-])",
                          dir, line_no, (int)(klen < 80 ? klen : 80), line);
    if (!tg_podinfo_label_value_ok(eq + 2, vlen))
        return tg_err_set(err, TG_EINVAL,
                          "%s/labels:%u: the value of %.*s is not a label value (0 to 63 of "
                          "[A-Za-z0-9._-], no escapes)",
                          dir, line_no, (int)klen, line);
    for (size_t i = 0; i < *n; i++)
        if (strlen(l[i].key) == klen && memcmp(l[i].key, line, klen) == 0)
            return tg_err_set(err, TG_EINVAL, "%s/labels:%u: %.*s given twice", dir, line_no,
                              (int)klen, line);
    l[*n].key = strndup(line, klen);
    l[*n].value = strndup(eq + 2, vlen);
    (*n)++; /* so the caller frees a half-made entry */
    if (l[*n - 1].key == NULL || l[*n - 1].value == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    return 0;
}

static int parse_labels(const char *dir, const char *text, size_t len, struct tg_res_label **out,
                        size_t *n_out, char *err)
{
    struct tg_res_label *l = NULL;
    size_t n = 0, pos = 0;
    unsigned line_no = 0;
    int rc = 0;

    if (len > TG_PODINFO_FILE_MAX)
        return tg_err_set(err, TG_EINVAL, "%s/labels: over %d bytes", dir, TG_PODINFO_FILE_MAX);
    if (memchr(text, '\0', len) != NULL || memchr(text, '\r', len) != NULL)
        return tg_err_set(err, TG_EINVAL, "%s/labels: a NUL or CR byte", dir);
    len = one_value(text, len);
    if (len > 0 && (l = calloc(TG_PODINFO_MAX_LABELS, sizeof(*l))) == NULL)
        return tg_err_set(err, TG_ENOMEM, "out of memory");
    while (pos < len && rc == 0) {
        const char *line = text + pos, *nl = memchr(line, '\n', len - pos);
        size_t line_len = nl != NULL ? (size_t)(nl - line) : len - pos;

        pos += line_len + 1;
        line_no++;
        if (n == TG_PODINFO_MAX_LABELS)
            rc = tg_err_set(err, TG_EINVAL, "%s/labels: more than %d labels", dir,
                            TG_PODINFO_MAX_LABELS);
        else if (line_len == 0)
            rc = tg_err_set(err, TG_EINVAL, "%s/labels:%u: a blank line", dir, line_no);
        else
            rc = parse_line(dir, line_no, line, line_len, l, &n, err);
    }
    if (rc == 0 && len > 0 && text[len - 1] == '\n')
        rc = tg_err_set(err, TG_EINVAL, "%s/labels:%u: a blank line", dir, line_no + 1);
    if (rc < 0) {
        tg_res_labels_free(l, n);
        return rc;
    }
    *out = l;
    *n_out = n;
    return 0;
}

int tg_podinfo_parse(const char *dir, const char *name, size_t name_len, const char *ns,
                     size_t ns_len, const char *labels, size_t labels_len, struct tg_podinfo *out,
                     char *err)
{
    struct tg_podinfo p = {0};
    int rc;

    name_len = one_value(name, name_len);
    ns_len = one_value(ns, ns_len);
    if (!subdomain_ok(name, name_len, TG_PODINFO_NAME_MAX))
        return tg_err_set(err, TG_EINVAL,
                          "%s/name: not a pod name (a DNS subdomain of at most %d bytes)", dir,
                          TG_PODINFO_NAME_MAX);
    if (!subdomain_ok(ns, ns_len, TG_PODINFO_NS_MAX) || memchr(ns, '.', ns_len) != NULL)
        return tg_err_set(err, TG_EINVAL,
                          "%s/namespace: not a namespace (a DNS label of at most %d bytes)", dir,
                          TG_PODINFO_NS_MAX);
    if ((rc = parse_labels(dir, labels, labels_len, &p.labels, &p.n_labels, err)) < 0)
        return rc;
    memcpy(p.name, name, name_len);
    memcpy(p.ns, ns, ns_len);
    *out = p;
    return 0;
}
