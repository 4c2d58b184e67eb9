/*
 * Unit tests for schema: definitions (the seed's users table, defaults for
 * shard_key and undeclared key fields, normalization that parses back to
 * itself, every refusal with its reason), document validation (missing,
 * null, wrong type, over-long by characters not bytes, the primary key's
 * limits, undeclared fields kept), and the canonical key texts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "schema.h"

static const char users[] =
    "{\"name\":\"users\",\"primary_key\":\"user_id\","
    "\"fields\":{\"user_id\":{\"type\":\"integer\"},\"name\":{\"type\":\"string\",\"max_length\":100},"
    "\"region\":{\"type\":\"string\",\"max_length\":50},\"email\":{\"type\":\"string\",\"max_length\":100}},"
    "\"indexes\":[\"region\"]}";

static json_t *js(const char *text) {
    json_error_t err;
    json_t *j = json_loads(text, JSON_ALLOW_NUL, &err);
    if (!j) fail_msg("bad test JSON %s: %s", text, err.text);
    return j;
}

static schema *parse_ok(const char *text) {
    json_t *j = js(text);
    schema *s = NULL;
    schema_error err;
    int rc = schema_parse(j, &s, &err);
    if (rc != SKV_OK) fail_msg("refused %s: %s", text, err.message);
    json_decref(j);
    return s;
}

/* Asserts text is refused with a message containing needle. */
static void parse_bad(const char *text, const char *needle) {
    json_t *j = js(text);
    schema *s = (schema *)1;
    schema_error err;
    assert_int_equal(schema_parse(j, &s, &err), SKV_EINVAL);
    assert_null(s);
    assert_string_equal(err.code, "bad_definition");
    if (!strstr(err.message, needle)) fail_msg("message '%s' lacks '%s'", err.message, needle);
    json_decref(j);
}

static void test_users_definition(void **state) {
    (void)state;
    schema *s = parse_ok(users);
    assert_string_equal(s->name, "users");
    assert_int_equal(s->nfields, 4);
    assert_string_equal(s->fields[s->pk].name, "user_id");
    assert_int_equal(s->fields[s->pk].type, SCHEMA_INTEGER);
    assert_int_equal(s->shard_key, s->pk); /* default */
    assert_true(s->fields[s->pk].required);
    assert_int_equal(s->nindexes, 1);
    assert_string_equal(s->fields[s->indexes[0]].name, "region");
    assert_int_equal(s->fields[s->indexes[0]].max_length, 50);
    assert_int_equal(schema_field_find(s, skv_slice_cstr("email")), 3);
    assert_int_equal(schema_field_find(s, skv_slice_cstr("nope")), -1);

    /* Normalized JSON parses back to the same normalized JSON. */
    skv_buf a, b;
    skv_buf_init(&a);
    skv_buf_init(&b);
    schema_to_json(s, &a);
    assert_string_equal(a.data,
                        "{\"name\":\"users\",\"primary_key\":\"user_id\",\"shard_key\":\"user_id\",\"fields\":{"
                        "\"user_id\":{\"type\":\"integer\",\"required\":true},"
                        "\"name\":{\"type\":\"string\",\"max_length\":100},"
                        "\"region\":{\"type\":\"string\",\"max_length\":50},"
                        "\"email\":{\"type\":\"string\",\"max_length\":100}},\"indexes\":[\"region\"]}");
    schema *s2 = parse_ok(a.data);
    schema_to_json(s2, &b);
    assert_string_equal(a.data, b.data);
    skv_buf_free(&a);
    skv_buf_free(&b);
    schema_free(s2);
    schema_free(s);
}

static void test_implied_fields(void **state) {
    (void)state;
    schema *s = parse_ok("{\"name\":\"by_region\",\"primary_key\":\"id\",\"shard_key\":\"region\","
                         "\"indexes\":[\"team\",\"active\"],\"fields\":{\"active\":{\"type\":\"boolean\"}}}");
    assert_int_equal(s->nfields, 4); /* active, id, region, team */
    assert_int_equal(s->fields[s->pk].type, SCHEMA_STRING);
    assert_string_equal(s->fields[s->shard_key].name, "region");
    assert_true(s->fields[s->shard_key].required);
    assert_int_equal(s->nindexes, 2);
    assert_int_equal(s->fields[s->indexes[1]].type, SCHEMA_BOOLEAN);
    schema_free(s);
}

static void test_bad_definitions(void **state) {
    (void)state;
    parse_bad("[1]", "JSON object");
    parse_bad("{\"primary_key\":\"id\"}", "name must be");
    parse_bad("{\"name\":\"a b\",\"primary_key\":\"id\"}", "name must be");
    parse_bad("{\"name\":\"\",\"primary_key\":\"id\"}", "name must be");
    parse_bad("{\"name\":\"x\"}", "primary_key is required");
    parse_bad("{\"name\":\"x\",\"primary_key\":5}", "primary_key must be a field name");
    parse_bad("{\"name\":\"x\",\"primary_key\":\"id\",\"index\":[\"a\"]}", "unknown member 'index'");
    parse_bad("{\"name\":\"x\",\"primary_key\":\"id\",\"fields\":{\"id\":{\"type\":\"number\"}}}",
              "must be of type string or integer");
    parse_bad("{\"name\":\"x\",\"primary_key\":\"id\",\"shard_key\":\"tags\",\"fields\":{\"tags\":{\"type\":\"array\"}}}",
              "shard key 'tags'");
    parse_bad("{\"name\":\"x\",\"primary_key\":\"id\",\"fields\":{\"a\":{\"type\":\"text\"}}}", "type must be one of");
    parse_bad("{\"name\":\"x\",\"primary_key\":\"id\",\"fields\":{\"a\":{\"type\":\"integer\",\"max_length\":3}}}",
              "max_length applies to strings only");
    parse_bad("{\"name\":\"x\",\"primary_key\":\"id\",\"fields\":{\"a\":{\"max_length\":0}}}",
              "max_length must be a positive integer");
    parse_bad("{\"name\":\"x\",\"primary_key\":\"id\",\"fields\":{\"a\":{\"required\":1}}}", "required must be a boolean");
    parse_bad("{\"name\":\"x\",\"primary_key\":\"id\",\"fields\":{\"a\":{\"kind\":1}}}", "unknown member 'kind'");
    parse_bad("{\"name\":\"x\",\"primary_key\":\"id\",\"fields\":{\"a.b\":{}}}", "field name 'a.b'");
    parse_bad("{\"name\":\"x\",\"primary_key\":\"id\",\"fields\":{\"a\":3}}", "must be an object");
    parse_bad("{\"name\":\"x\",\"primary_key\":\"id\",\"indexes\":\"a\"}", "indexes must be an array");
    parse_bad("{\"name\":\"x\",\"primary_key\":\"id\",\"indexes\":[\"a\",\"a\"]}", "indexed twice");
    parse_bad("{\"name\":\"x\",\"primary_key\":\"id\",\"indexes\":[\"limit\"]}", "cannot be indexed");
    parse_bad("{\"name\":\"x\",\"primary_key\":\"id\",\"indexes\":[\"o\"],\"fields\":{\"o\":{\"type\":\"object\"}}}",
              "only string, integer and boolean");
    /* Too many fields. */
    char big[8192];
    size_t n = (size_t)snprintf(big, sizeof big, "{\"name\":\"x\",\"primary_key\":\"id\",\"fields\":{");
    for (int i = 0; i < SCHEMA_MAX_FIELDS + 1; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, "%s\"f%d\":{}", i ? "," : "", i);
    snprintf(big + n, sizeof big - n, "}}");
    parse_bad(big, "too many fields");
}

/* Asserts doc is refused with code and a message containing needle. */
static void doc_bad(const schema *s, const char *doc, const char *code, const char *needle) {
    json_t *j = js(doc);
    schema_error err;
    assert_int_equal(schema_validate(s, j, &err), SKV_EINVAL);
    assert_string_equal(err.code, code);
    if (!strstr(err.message, needle)) fail_msg("message '%s' lacks '%s'", err.message, needle);
    json_decref(j);
}

static void doc_ok(const schema *s, const char *doc) {
    json_t *j = js(doc);
    schema_error err;
    if (schema_validate(s, j, &err) != SKV_OK) fail_msg("refused %s: %s", doc, err.message);
    json_decref(j);
}

static void test_documents(void **state) {
    (void)state;
    schema *s = parse_ok(users);
    doc_ok(s, "{\"user_id\":1,\"name\":\"Alice\",\"region\":\"US\",\"email\":\"alice@example.com\"}");
    doc_ok(s, "{\"user_id\":-9223372036854775808}");                     /* optional fields absent */
    doc_ok(s, "{\"user_id\":2,\"name\":null,\"extra\":{\"kept\":[1]}}"); /* null optional, undeclared kept */
    doc_bad(s, "[]", "invalid_json", "JSON object");
    doc_bad(s, "{\"name\":\"x\"}", "missing_field", "'user_id' is required");
    doc_bad(s, "{\"user_id\":null}", "missing_field", "'user_id'");
    doc_bad(s, "{\"user_id\":\"1\"}", "wrong_type", "'user_id' must be an integer");
    doc_bad(s, "{\"user_id\":1.0}", "wrong_type", "'user_id' must be an integer");
    doc_bad(s, "{\"user_id\":1,\"region\":5}", "wrong_type", "'region' must be a string");
    char doc[1024];
    char region[64];
    memset(region, 'r', 51);
    region[51] = '\0';
    snprintf(doc, sizeof doc, "{\"user_id\":1,\"region\":\"%s\"}", region);
    doc_bad(s, doc, "field_too_long", "'region' is 51 characters long; the limit is 50");
    region[50] = '\0';
    snprintf(doc, sizeof doc, "{\"user_id\":1,\"region\":\"%s\"}", region);
    doc_ok(s, doc);
    /* Characters, not bytes: 50 two-byte characters fit VARCHAR(50). */
    char wide[256] = "";
    for (int i = 0; i < 50; i++) strcat(wide, "\xc3\xa9");
    snprintf(doc, sizeof doc, "{\"user_id\":1,\"region\":\"%s\"}", wide);
    doc_ok(s, doc);
    schema_free(s);

    schema *t = parse_ok("{\"name\":\"notes\",\"primary_key\":\"id\",\"fields\":{\"n\":{\"type\":\"number\","
                         "\"required\":true},\"b\":{\"type\":\"boolean\"},\"any\":{}}}");
    doc_ok(t, "{\"id\":\"a\",\"n\":1.5,\"b\":false,\"any\":[null]}");
    doc_ok(t, "{\"id\":\"a\",\"n\":2}"); /* an integer is a number */
    doc_bad(t, "{\"id\":\"\",\"n\":1}", "bad_key", "1 to 512 bytes");
    doc_bad(t, "{\"id\":\"a\"}", "missing_field", "'n' is required");
    doc_bad(t, "{\"id\":\"a\",\"n\":1,\"b\":\"yes\"}", "wrong_type", "'b' must be a boolean");
    char longid[600];
    memset(longid, 'i', 513);
    longid[513] = '\0';
    snprintf(doc, sizeof doc, "{\"id\":\"%.513s\",\"n\":1}", longid);
    doc_bad(t, doc, "bad_key", "1 to 512 bytes");
    schema_free(t);
}

static void test_key_texts(void **state) {
    (void)state;
    schema_field fs = { "s", 1, SCHEMA_STRING, 0, 0 }, fi = { "i", 1, SCHEMA_INTEGER, 0, 0 },
                 fb = { "b", 1, SCHEMA_BOOLEAN, 0, 0 }, fo = { "o", 1, SCHEMA_OBJECT, 0, 0 };
    skv_buf out;
    skv_buf_init(&out);
    json_t *v = json_integer(-15);
    assert_int_equal(schema_value_text(&fi, v, &out), SKV_OK);
    assert_string_equal(out.data, "-15");
    assert_int_equal(schema_value_text(&fs, v, &out), SKV_EINVAL);
    assert_int_equal(schema_value_text(&fo, v, &out), SKV_EINVAL);
    json_decref(v);
    skv_buf_reset(&out);
    v = json_stringn("a\0b", 3);
    assert_int_equal(schema_value_text(&fs, v, &out), SKV_OK);
    assert_int_equal(out.len, 3);
    json_decref(v);
    skv_buf_reset(&out);
    assert_int_equal(schema_value_text(&fb, json_true(), &out), SKV_OK);
    assert_string_equal(out.data, "true");
    assert_int_equal(schema_value_text(&fi, NULL, &out), SKV_EINVAL);

    const char *ints_ok[] = { "0", "15", "-7", "9223372036854775807", "-9223372036854775808" };
    for (size_t i = 0; i < sizeof ints_ok / sizeof ints_ok[0]; i++) {
        skv_buf_reset(&out);
        assert_int_equal(schema_value_parse(&fi, skv_slice_cstr(ints_ok[i]), &out), SKV_OK);
        assert_string_equal(out.data, ints_ok[i]);
    }
    const char *ints_bad[] = { "", "007", "+1", "1.0", "x", "-0", "9223372036854775808", " 1" };
    for (size_t i = 0; i < sizeof ints_bad / sizeof ints_bad[0]; i++)
        assert_int_equal(schema_value_parse(&fi, skv_slice_cstr(ints_bad[i]), &out), SKV_EINVAL);
    skv_buf_reset(&out);
    assert_int_equal(schema_value_parse(&fs, skv_slice_cstr("US"), &out), SKV_OK);
    assert_string_equal(out.data, "US");
    assert_int_equal(schema_value_parse(&fb, skv_slice_cstr("TRUE"), &out), SKV_EINVAL);

    skv_buf_reset(&out);
    schema_value_json(&fs, skv_slice_cstr("a\"b"), &out);
    assert_string_equal(out.data, "\"a\\\"b\"");
    skv_buf_reset(&out);
    schema_value_json(&fi, skv_slice_cstr("15"), &out);
    assert_string_equal(out.data, "15");
    skv_buf_free(&out);

    assert_true(schema_name_valid(skv_slice_cstr("users_2-b")));
    assert_false(schema_name_valid(skv_slice_cstr("users/2")));
    assert_int_equal(schema_type_parse("boolean"), SCHEMA_BOOLEAN);
    assert_int_equal(schema_type_parse("bool"), -1);
    assert_string_equal(schema_type_name(SCHEMA_ARRAY), "array");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_users_definition),
        cmocka_unit_test(test_implied_fields),
        cmocka_unit_test(test_bad_definitions),
        cmocka_unit_test(test_documents),
        cmocka_unit_test(test_key_texts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
