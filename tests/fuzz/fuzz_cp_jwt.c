/* Fuzzing of tollgate-cp's service-account token verification (controlplane/cp_jwt.c). The
 * first byte picks: 0 a token verified against two fixed keys (tests/unit/jwt/keys.pem: RSA
 * 2048 and EC P-256), 1 a keys file (PEM or JWK Set). Each must be accepted or refused without
 * crashing or leaking; a refusal is one line; an accepted token (none should be, without the
 * private keys) must yield names fit for a SPIFFE path. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "cp_jwt.h"

static const char keys_pem[] = "-----BEGIN PUBLIC KEY-----\n"
                               "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAvkhrH8Vp/J4BIWrbY6jq\n"
                               "07qgt17IFw5hoJx8yzYtN5OXxL/tBIWDMUKGX70Yu8gF6h1WcNcLYsBl4sR2meI2\n"
                               "JN6a5++khtJ4B3GWYwZLYx8YPzrymntgpdpMO62LLjJLk1ydmEl9iPETxG3R3CNK\n"
                               "veCm6LIGMRCEwRRxhX0qd3rLcA0ZWj+eR4z5NK+qhqvfmvfP8JeVL4LKV2ROnSH5\n"
                               "9hjEmUrljU6xtV8QmxTVE2dDf9oFBt9PkJRWRJLKKHqBPxDZOP5XdO85pFcy2uBV\n"
                               "nQIa/zRtZUSkprb2dA9CvKyqEeJFj+bh1TkB5nZCRZs7qVDQjcnkiYUcZWjSVdWL\n"
                               "EwIDAQAB\n"
                               "-----END PUBLIC KEY-----\n"
                               "-----BEGIN PUBLIC KEY-----\n"
                               "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEblqp16EGyo+hc4L3dbS+xvua5AOh\n"
                               "VtWG1DIBdOj7SVFO48MFT1O4f3KshPMicuoW+7twl2riesWbfW7Ai3Zokw==\n"
                               "-----END PUBLIC KEY-----\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct tg_cp_jwt_keys *keys;
    static char tollgate[] = "tollgate";
    static char *aud[] = {tollgate};
    static const struct tg_strlist audiences = {aud, 1};
    char err[TG_ERRLEN] = "", ns[TG_CP_JWT_NAME_MAX + 1] = "", sa[TG_CP_JWT_NAME_MAX + 1] = "";
    char *text;
    int rc;

    if (size < 1 || size > 64 * 1024)
        return 0;
    if (keys == NULL &&
        tg_cp_jwt_keys_parse(keys_pem, sizeof(keys_pem) - 1, "keys.pem", &keys, err) < 0)
        abort();
    if ((text = malloc(size)) == NULL)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    if (data[0] % 2 == 0) {
        struct tg_cp_jwt_rules r = {"https://kubernetes.default.svc.cluster.local", &audiences,
                                    keys, 1767225600};

        rc = tg_cp_jwt_verify(&r, text, ns, sa, err);
        if (rc < 0)
            fuzz_check_err(err);
        else if (ns[0] == '\0' || sa[0] == '\0' || strchr(ns, '/') || strchr(sa, '/'))
            abort();
    } else {
        struct tg_cp_jwt_keys *k = NULL;

        rc = tg_cp_jwt_keys_parse(text, size - 1, "fuzz.pem", &k, err);
        if (rc < 0 && k != NULL)
            abort();
        if (rc < 0)
            fuzz_check_err_names(err, "fuzz.pem", true);
        if (rc == 0 &&
            (tg_cp_jwt_keys_count(k) == 0 || tg_cp_jwt_keys_count(k) > TG_CP_JWT_MAX_KEYS))
            abort();
        tg_cp_jwt_keys_free(k);
    }
    free(text);
    return 0;
}
