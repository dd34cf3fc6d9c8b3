/* Fuzzing of the CRL reader (crl.h): any input is read or refused with one line; what is
 * read holds its promises: the issuer lies inside the input, the serials are sorted, unique,
 * spelled as certificates spell theirs (lowercase hex, no leading zero byte), and each is
 * found by tg_crl_lists. Any broken promise aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "tollgate/crl.h"

static bool spelled(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n % 2 != 0 || (n > 2 && s[0] == '0' && s[1] == '0'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tg_crl_view v;
    char err[TG_ERRLEN] = "";
    int rc = tg_crl_parse(data, size, &v, err);

    if (rc < 0) {
        if (rc != TG_ENOMEM)
            fuzz_check_err(err);
        if (v.serials != NULL || v.n_serials != 0)
            abort();
        return 0;
    }
    if (v.issuer < data || v.issuer + v.issuer_len > data + size)
        abort();
    for (size_t i = 0; i < v.n_serials; i++) {
        if (!spelled(v.serials[i]) || !tg_crl_lists(&v, v.serials[i]))
            abort();
        if (i > 0 && strcmp(v.serials[i - 1], v.serials[i]) >= 0)
            abort();
    }
    tg_crl_view_cleanup(&v);
    return 0;
}
