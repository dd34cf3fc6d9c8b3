/* Fuzzing of what comes from the SPIFFE Workload API socket. Every input is used twice:
 * as an X509SVIDResponse (tg_wl_decode: protobuf-c unpacking, the SVID picked, its DER
 * chain, key, bundle, federated bundles and CRLs split and turned into PEM; then
 * tg_svid_identity, the identity checks), and as the bytes a server sends on the HTTP/2
 * connection of a FetchX509SVID call (tg_grpc_recv: nghttp2, gRPC framing, message
 * reassembly with a small size bound). Whatever the bytes: no crash, no leak, a refusal is
 * one line, and the adapter ends the call at most once. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "tollgate/grpc.h"
#include "tollgate/workload.h"

static int ends;
static size_t sink;

static int on_message(void *arg, const uint8_t *msg, size_t len, char *err)
{
    (void)arg;
    (void)err;
    sink += len + (len > 0 ? msg[len - 1] : 0);
    return 0;
}

static void on_end(void *arg, int status, const char *why)
{
    (void)arg;
    (void)status;
    fuzz_check_err(why);
    ends++;
}

static void fuzz_grpc(const uint8_t *data, size_t size)
{
    static const struct tg_grpc_meta meta[] = {{"workload.spiffe.io", "true"}};
    const struct tg_grpc_call call = {"localhost", TG_WL_PATH, meta, 1, NULL, 0, 4096};
    const struct tg_grpc_ops ops = {on_message, on_end, NULL};
    struct tg_grpc *g;
    char err[TG_ERRLEN] = "";
    uint8_t *out;
    size_t len;

    if (tg_grpc_new(&call, &ops, &g, err) < 0)
        abort();
    if (tg_grpc_take_output(g, &out, &len, err) < 0)
        abort();
    free(out);
    ends = 0;
    /* in two pieces: a frame cut anywhere must be reassembled */
    if (tg_grpc_recv(g, data, size / 2, err) < 0 ||
        tg_grpc_recv(g, data + size / 2, size - size / 2, err) < 0)
        fuzz_check_err(err);
    if (tg_grpc_take_output(g, &out, &len, err) == 0)
        free(out);
    if (ends > 1)
        abort();
    tg_grpc_free(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tg_svid *s = NULL;
    struct tg_identity *id = NULL;
    char err[TG_ERRLEN] = "";

    if (tg_wl_decode(data, size, NULL, &s, err) < 0) {
        fuzz_check_err(err);
    } else {
        if (tg_svid_identity(s, &id, err) < 0)
            fuzz_check_err(err);
        tg_identity_free(id);
        tg_svid_free(s);
    }
    fuzz_grpc(data, size);
    if (getenv("FUZZ_WORKLOAD_VERBOSE") != NULL) /* seeing what a seed reaches */
        fprintf(stderr, "decode %s; %zu message bytes, %d ends\n", err[0] ? err : "ok", sink, ends);
    return 0;
}
