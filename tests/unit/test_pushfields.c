/* cp_client.c: a push carrying a field this sidecar does not know is refused, wherever the
 * field sits (the push itself, the resource, a repeated message inside it, a map entry), and
 * the refusal names the message and the field; the same push without it is accepted. */
#include <check.h>
#include "check_main.h"
#include <stdlib.h>
#include <string.h>

#include "tollgate.pb-c.h"
#include "tollgate/cp_client.h"
#include "unit_util.h"

enum where { NOWHERE, IN_PUSH, IN_POLICY, IN_RULE, IN_LABEL };

static const char *const names[] = {"", "Push", "AuthorizationPolicy", "Rule", "ScopeLabelsEntry"};

/* An authorization push with one rule and one scope label; an unknown varint field 99 where
 * asked. Returns the decode's result, err filled. */
static int decode_with_unknown(enum where w, char *err)
{
    static uint8_t one = 1;
    ProtobufCMessageUnknownField u = {99, PROTOBUF_C_WIRE_TYPE_VARINT, 1, &one};
    Tollgate__V1__ServerMessage sm = TOLLGATE__V1__SERVER_MESSAGE__INIT;
    Tollgate__V1__Push p = TOLLGATE__V1__PUSH__INIT;
    Tollgate__V1__AuthorizationPolicy ap = TOLLGATE__V1__AUTHORIZATION_POLICY__INIT;
    Tollgate__V1__Rule rule = TOLLGATE__V1__RULE__INIT, *rp = &rule;
    Tollgate__V1__Rule__ScopeLabelsEntry label = TOLLGATE__V1__RULE__SCOPE_LABELS_ENTRY__INIT,
                                         *lp = &label;
    char *principals[] = {UT_STR("spiffe://mesh.local/ns/default/sa/web")};
    char *methods[] = {UT_STR("GET")}, *paths[] = {UT_STR("/api/*")};
    char *hosts[] = {UT_STR("web.local")};
    ProtobufCMessage *at[] = {NULL, &p.base, &ap.base, &rule.base, &label.base};
    struct tg_resource *r = NULL;
    char version[129];
    uint8_t buf[1024];
    size_t len;
    int rc;

    label.key = UT_STR("app");
    label.value = UT_STR("web");
    rule.name = UT_STR("r");
    rule.principals = principals;
    rule.n_principals = 1;
    rule.methods = methods; /* the HTTP conditions are known fields */
    rule.n_methods = 1;
    rule.paths = paths;
    rule.n_paths = 1;
    rule.hosts = hosts;
    rule.n_hosts = 1;
    rule.scope_labels = &lp;
    rule.n_scope_labels = 1;
    ap.rules = &rp;
    ap.n_rules = 1;
    p.type = TOLLGATE__V1__RESOURCE_TYPE__RESOURCE_TYPE_AUTHORIZATION;
    p.version = UT_STR("v1");
    p.nonce = UT_STR("1");
    p.resource_case = TOLLGATE__V1__PUSH__RESOURCE_AUTHORIZATION;
    p.authorization = &ap;
    sm.msg_case = TOLLGATE__V1__SERVER_MESSAGE__MSG_PUSH;
    sm.push = &p;
    if (w != NOWHERE) {
        at[w]->n_unknown_fields = 1;
        at[w]->unknown_fields = &u;
    }
    ck_assert_uint_le(tollgate__v1__server_message__get_packed_size(&sm), sizeof(buf));
    len = tollgate__v1__server_message__pack(&sm, buf);
    rc = tg_cp_client_decode_push(buf, len, &r, version, sizeof(version), err);
    if (rc == 0) {
        const struct tg_res_rule *d = &r->u.authorization.rules[0];

        ck_assert(d->methods.n == 1 && strcmp(d->methods.v[0], "GET") == 0);
        ck_assert(d->paths.n == 1 && strcmp(d->paths.v[0], "/api/*") == 0);
        ck_assert(d->hosts.n == 1 && strcmp(d->hosts.v[0], "web.local") == 0);
    }
    tg_resource_free(r);
    return rc;
}

START_TEST(test_push_unknown_field_refused)
{
    char err[TG_ERRLEN] = "";
    int rc = decode_with_unknown((enum where)_i, err);

    if (_i == NOWHERE) {
        ck_assert_msg(rc == 0, "the push without an unknown field: %s", err);
        return;
    }
    ck_assert_int_eq(rc, TG_EINVAL);
    ck_assert_msg(strstr(err, names[_i]) != NULL && strstr(err, "field 99") != NULL,
                  "want %s and field 99 named: %s", names[_i], err);
}
END_TEST

Suite *tg_test_suite(void)
{
    TCase *tc;
    Suite *s = tg_test_suite_of("pushfields", "unknown_fields", NULL, 0, &tc);

    tcase_add_loop_test(tc, test_push_unknown_field_refused, NOWHERE, IN_LABEL + 1);
    return s;
}
