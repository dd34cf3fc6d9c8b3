/* Fuzzing of the downward API's pod files (lib/pure/podinfo.c): the input is the three files
 * joined by NUL bytes (name, namespace, labels). Each must parse or be refused with one line
 * naming the directory, without crashing or leaking; what parses must hold at most 64 labels,
 * each a valid label key and value, no key twice. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "tollgate/podinfo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p[3] = {"", "", ""};
    size_t n[3] = {0, 0, 0}, at = 0;
    struct tg_podinfo pod = {0};
    char err[TG_ERRLEN] = "";

    for (int i = 0; i < 3 && at <= size; i++) {
        const uint8_t *nul = i < 2 ? memchr(data + at, '\0', size - at) : NULL;

        p[i] = (const char *)data + at;
        n[i] = nul != NULL ? (size_t)(nul - (data + at)) : size - at;
        at += n[i] + 1;
        if (nul == NULL)
            break;
    }
    if (tg_podinfo_parse("/pod", p[0], n[0], p[1], n[1], p[2], n[2], &pod, err) < 0) {
        fuzz_check_err_names(err, "/pod", true);
        return 0;
    }
    if (pod.n_labels > TG_PODINFO_MAX_LABELS)
        abort();
    for (size_t i = 0; i < pod.n_labels; i++) {
        if (!tg_podinfo_label_key_ok(pod.labels[i].key, strlen(pod.labels[i].key)) ||
            !tg_podinfo_label_value_ok(pod.labels[i].value, strlen(pod.labels[i].value)))
            abort();
        for (size_t j = 0; j < i; j++)
            if (strcmp(pod.labels[i].key, pod.labels[j].key) == 0)
                abort();
    }
    tg_podinfo_cleanup(&pod);
    return 0;
}
