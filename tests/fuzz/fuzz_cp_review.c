/* Fuzzing of the API server's TokenReview answers as tollgate-cp reads them
 * (controlplane/cp_review.c): the input is the answer's body (HTTP 201). It must be read
 * without crashing or leaking; a refusal says why in one line, and an acceptance holds names
 * fit for a SPIFFE path and a pod name of at most 253 bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "cp_review.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char tollgate[] = "tollgate";
    static char *aud[] = {tollgate};
    static const struct tg_strlist audiences = {aud, 1};
    struct tg_cp_review r;
    char *body;

    if (size > 64 * 1024 || (body = malloc(size + 1)) == NULL)
        return 0;
    memcpy(body, data, size);
    body[size] = '\0';
    tg_cp_review_read(201, body, "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjEwMDB9.c2ln", &audiences, 100, &r);
    if (!r.ok)
        fuzz_check_err(r.why);
    else if (!tg_cp_jwt_name_ok(r.ns) || !tg_cp_jwt_name_ok(r.sa) || strlen(r.pod) > 253 ||
             r.until > 1000 || r.until <= 100)
        abort();
    free(body);
    return 0;
}
