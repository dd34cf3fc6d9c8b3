/* Who is asking: the control plane's decision of which SPIFFE ID a stream may be issued.
 * Pure: no I/O beyond tg_cp_tokens_load reading its file, no libuv, no wolfSSL.
 *
 * The identity comes from how the stream authenticated, never from the CSR:
 *   - a verified client certificate: its SPIFFE ID, which must be
 *     spiffe://<our trust domain>/ns/<ns>/sa/<sa> and neither its serial nor its fingerprint
 *     revoked (a bootstrap token sent alongside is ignored);
 *   - else a bootstrap token from Hello, looked up in the tokens file: the namespace and
 *     service account written next to it;
 *   - else, when Kubernetes tokens are configured and the token has the shape of a JWT, a
 *     projected service-account token: with kubernetes.token_review the API server's answer
 *     (cp_review.h, asked for by cp_stream.c: the namespace, service account and pod it
 *     names), else verified by cp_jwt.c with the keys file: the namespace and service
 *     account of its "kubernetes.io" claims.
 * Hello's namespace and service_account are claims: left empty they say nothing, but a claim
 * that differs from the authenticated identity is refused (a misconfigured sidecar should
 * hear about it rather than run under another name). */
#ifndef TOLLGATE_CP_AUTHN_H
#define TOLLGATE_CP_AUTHN_H

#include <stdbool.h>
#include <stddef.h>

#include "cp_jwt.h"
#include "cp_review.h"
#include "tollgate/config.h"
#include "tollgate/err.h"
#include "tollgate/spiffe.h"

#define TG_CP_NAME_MAX TG_CP_JWT_NAME_MAX /* namespace and service account names */
#define TG_CP_TOKEN_MIN 16
#define TG_CP_TOKEN_MAX 256

struct tg_cp_token {
    char *token; /* wiped before free */
    char *ns;
    char *sa;
};

struct tg_cp_tokens {
    struct tg_cp_token *v;
    size_t n;
};

/* The tokens file: one "TOKEN NAMESPACE SERVICE_ACCOUNT" per line, separated by blanks;
 * blank lines and lines starting with '#' are skipped. Tokens are 16 to 256 characters of
 * [A-Za-z0-9._~+/=-] and appear once; names are SPIFFE path segments ([A-Za-z0-9._-], not
 * "." or ".."), at most 128 bytes. name stands for the file in messages
 * ("tokens.txt:3: ..."). 0, or TG_ECONFIG / TG_ENOMEM with err; out is untouched on failure. */
TG_MUST_USE int tg_cp_tokens_parse(const char *text, size_t len, const char *name,
                                   struct tg_cp_tokens *out, char *err);
TG_MUST_USE int tg_cp_tokens_load(const char *path, struct tg_cp_tokens *out, char *err);
/* Wipes the tokens and frees everything; *t becomes empty. */
void tg_cp_tokens_cleanup(struct tg_cp_tokens *t);

struct tg_cp_authn_in {
    const char *trust_domain;
    const char *peer_id;     /* the verified client certificate's SPIFFE ID; NULL: none */
    const char *peer_serial; /* its serial and SHA-256 fingerprint, hex (for revocation) */
    const char *peer_sha256;
    const char *token;                 /* Hello.token; NULL or "": none */
    const struct tg_cp_tokens *tokens; /* NULL: no token is accepted */
    const struct tg_cp_jwt_rules *jwt; /* NULL: no service-account token is accepted */
    const struct tg_cp_review *review; /* the API server's answer for token (cp_review.h,
                                        * kubernetes.token_review); NULL: none */
    const char *claim_ns;              /* Hello claims; NULL or "": none */
    const char *claim_sa;
    const struct tg_strlist *revoked_serials;      /* normalised (tg_policy_serial_norm); NULL ok */
    const struct tg_strlist *revoked_fingerprints; /* lowercase hex; NULL ok */
};

struct tg_cp_who {
    char id[TG_SPIFFE_MAX + 1]; /* what to sign */
    char ns[TG_CP_NAME_MAX + 1];
    char sa[TG_CP_NAME_MAX + 1];
    bool by_cert;                       /* else by token */
    bool by_jwt;                        /* the token was a service-account token (it expires) */
    char pod[TG_CP_REVIEW_POD_MAX + 1]; /* the pod the token was issued for, as the API
                                         * server says (TokenReview); "" otherwise */
};

/* Whether token has the shape of a JWT (a service-account token), not of a tokens file's. */
bool tg_cp_authn_jwt_shaped(const char *token);

/* 0 with *out filled, or TG_EPEER with a one-line reason in err (fit to send back). */
TG_MUST_USE int tg_cp_authn_decide(const struct tg_cp_authn_in *in, struct tg_cp_who *out,
                                   char *err);

#endif
