/* tg_intercept_peek on arbitrary first bytes: never reads past the input, and a verdict of
 * MESH or OTHER never changes when more bytes follow (a prefix that asked for MORE is
 * allowed to become anything). */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_util.h"
#include "tollgate/intercept.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum tg_peek whole = tg_intercept_peek(data, size);

    for (size_t n = 0; n < size; n++) {
        enum tg_peek part = tg_intercept_peek(data, n);

        if (part != TG_PEEK_MORE && part != whole)
            abort();
    }
    return 0;
}
