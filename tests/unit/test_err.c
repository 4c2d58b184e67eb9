/*
 * Unit tests for err: the SKV_ERRNO_MAP table is walked with the same
 * X-macro the module uses, so a code added to the table is tested without
 * touching this file.  Every code must be negative and unique, and have a
 * distinct symbolic name ("E" + the table name) and a distinct, non-empty
 * message; success and codes outside the table have fixed fallbacks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"

typedef struct err_row {
    int code;
    const char *table_name; /* "NOMEM" */
    const char *table_msg;
} err_row;

static const err_row rows[] = {
#define ROW(name, code, msg) { SKV_E##name, #name, msg },
    SKV_ERRNO_MAP(ROW)
#undef ROW
};
#define NROWS (sizeof rows / sizeof rows[0])

static void test_table_not_empty(void **state) {
    (void)state;
    assert_true(NROWS >= 12);
    assert_int_equal(SKV_OK, 0);
}

static void test_codes_negative_and_distinct(void **state) {
    (void)state;
    for (size_t i = 0; i < NROWS; i++) {
        assert_true(rows[i].code < 0);
        for (size_t j = i + 1; j < NROWS; j++) assert_int_not_equal(rows[i].code, rows[j].code);
    }
}

static void test_names_match_table_and_distinct(void **state) {
    (void)state;
    for (size_t i = 0; i < NROWS; i++) {
        const char *name = skv_errname(rows[i].code);
        assert_non_null(name);
        assert_int_equal(name[0], 'E');
        assert_string_equal(name + 1, rows[i].table_name);
        assert_string_not_equal(name, "EUNKNOWN");
        assert_string_not_equal(name, "OK");
        for (size_t j = i + 1; j < NROWS; j++) assert_string_not_equal(name, skv_errname(rows[j].code));
    }
    assert_string_equal(skv_errname(SKV_ENOTFOUND), "ENOTFOUND");
    assert_string_equal(skv_errname(SKV_ENOMEM), "ENOMEM");
}

static void test_messages_match_table_and_distinct(void **state) {
    (void)state;
    for (size_t i = 0; i < NROWS; i++) {
        const char *msg = skv_strerror(rows[i].code);
        assert_non_null(msg);
        assert_true(strlen(msg) > 0);
        assert_string_equal(msg, rows[i].table_msg);
        assert_string_not_equal(msg, "unknown error");
        assert_string_not_equal(msg, "success");
        for (size_t j = i + 1; j < NROWS; j++) assert_string_not_equal(msg, skv_strerror(rows[j].code));
    }
    assert_string_equal(skv_strerror(SKV_ENOTFOUND), "not found");
}

static void test_ok(void **state) {
    (void)state;
    assert_string_equal(skv_strerror(SKV_OK), "success");
    assert_string_equal(skv_errname(SKV_OK), "OK");
}

static void test_unknown_codes(void **state) {
    (void)state;
    static const int unknown[] = { 1, 2, 100, -13, -100, -1000000, INT32_MIN, INT32_MAX };
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        int known = 0;
        for (size_t j = 0; j < NROWS; j++) known |= rows[j].code == unknown[i];
        if (known) continue; /* the table grew past -12; skip that value */
        assert_string_equal(skv_strerror(unknown[i]), "unknown error");
        assert_string_equal(skv_errname(unknown[i]), "EUNKNOWN");
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_not_empty),
        cmocka_unit_test(test_codes_negative_and_distinct),
        cmocka_unit_test(test_names_match_table_and_distinct),
        cmocka_unit_test(test_messages_match_table_and_distinct),
        cmocka_unit_test(test_ok),
        cmocka_unit_test(test_unknown_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
