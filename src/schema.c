/*
 * schema — definitions and document validation (see schema.h).
 */
#include "schema.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mem.h"

static const char *const type_names[] = { "any", "string", "integer", "number", "boolean", "object", "array" };

const char *schema_type_name(int type) {
    return type >= 0 && type < (int)(sizeof type_names / sizeof type_names[0]) ? type_names[type] : "any";
}

int schema_type_parse(const char *name) {
    for (int i = 0; i < (int)(sizeof type_names / sizeof type_names[0]); i++)
        if (strcmp(type_names[i], name) == 0) return i;
    return -1;
}

static int fail(schema_error *err, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(schema_error *err, const char *code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    err->code = code;
    return SKV_EINVAL;
}

static int name_chars_valid(const char *p, size_t n) {
    if (n == 0 || n > SCHEMA_MAX_NAME) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int schema_name_valid(skv_slice name) { return name_chars_valid(name.ptr, name.len); }

void schema_free(schema *s) {
    if (!s) return;
    for (size_t i = 0; i < s->nfields; i++) free(s->fields[i].name);
    free(s->fields);
    free(s->indexes);
    free(s->name);
    free(s);
}

int schema_field_find(const schema *s, skv_slice name) {
    for (size_t i = 0; i < s->nfields; i++)
        if (s->fields[i].name_len == name.len && memcmp(s->fields[i].name, name.ptr, name.len) == 0) return (int)i;
    return -1;
}

/* ---- parsing a definition ------------------------------------------------------------------ */

static int add_field(schema *s, const char *name, int type, schema_error *err) {
    if (s->nfields == SCHEMA_MAX_FIELDS)
        return fail(err, "bad_definition", "too many fields (at most %d)", SCHEMA_MAX_FIELDS);
    schema_field *f = &s->fields[s->nfields++];
    memset(f, 0, sizeof *f);
    f->name_len = strlen(name);
    f->name = skv_strndup(name, f->name_len);
    f->type = type;
    return SKV_OK;
}

static int parse_field(schema *s, const char *name, json_t *spec, schema_error *err) {
    if (!name_chars_valid(name, strlen(name)))
        return fail(err, "bad_definition", "field name '%.64s' must be 1 to %d of A-Z a-z 0-9 _ -", name,
                    SCHEMA_MAX_NAME);
    if (!json_is_object(spec))
        return fail(err, "bad_definition", "field '%s' must be an object such as {\"type\": \"string\"}", name);
    int type = SCHEMA_ANY;
    json_int_t max_length = 0;
    int required = 0;
    const char *k;
    json_t *v;
    json_object_foreach(spec, k, v) {
        if (strcmp(k, "type") == 0) {
            /* An embedded NUL ("string\u0000x") is not the type "string". */
            type = json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v)
                       ? schema_type_parse(json_string_value(v))
                       : -1;
            if (type < 0)
                return fail(err, "bad_definition",
                            "field '%s': type must be one of string, integer, number, boolean, object, array, any",
                            name);
        } else if (strcmp(k, "max_length") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > UINT32_MAX)
                return fail(err, "bad_definition", "field '%s': max_length must be a positive integer", name);
            max_length = json_integer_value(v);
        } else if (strcmp(k, "required") == 0) {
            if (!json_is_boolean(v)) return fail(err, "bad_definition", "field '%s': required must be a boolean", name);
            required = json_is_true(v);
        } else {
            return fail(err, "bad_definition", "field '%s': unknown member '%.64s' (type, max_length, required)", name,
                        k);
        }
    }
    if (max_length && type != SCHEMA_STRING)
        return fail(err, "bad_definition", "field '%s': max_length applies to strings only", name);
    int rc = add_field(s, name, type, err);
    if (rc) return rc;
    s->fields[s->nfields - 1].max_length = (uint32_t)max_length;
    s->fields[s->nfields - 1].required = required;
    return SKV_OK;
}

/* The position of the field named by member `what` (a string naming a
 * field, declared as a string when undeclared); -1 after *err. */
static int key_field(schema *s, json_t *name, const char *what, schema_error *err) {
    if (!json_is_string(name)) {
        fail(err, "bad_definition", "%s must be a field name (a string)", what);
        return -1;
    }
    const char *n = json_string_value(name);
    if (!name_chars_valid(n, json_string_length(name))) {
        fail(err, "bad_definition", "%s '%.64s' is not a valid field name", what, n);
        return -1;
    }
    int i = schema_field_find(s, skv_slice_make(n, json_string_length(name)));
    if (i >= 0) return i;
    if (add_field(s, n, SCHEMA_STRING, err)) return -1;
    return (int)s->nfields - 1;
}

static int parse_indexes(schema *s, json_t *list, schema_error *err) {
    if (!json_is_array(list)) return fail(err, "bad_definition", "indexes must be an array of field names");
    if (json_array_size(list) > SCHEMA_MAX_INDEXES)
        return fail(err, "bad_definition", "too many indexes (at most %d)", SCHEMA_MAX_INDEXES);
    s->indexes = skv_calloc(json_array_size(list) + 1, sizeof *s->indexes);
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        int f = key_field(s, v, "an index", err);
        if (f < 0) return SKV_EINVAL;
        const schema_field *fd = &s->fields[f];
        if (fd->type != SCHEMA_STRING && fd->type != SCHEMA_INTEGER && fd->type != SCHEMA_BOOLEAN)
            return fail(err, "bad_definition", "index on '%s': only string, integer and boolean fields can be indexed",
                        fd->name);
        if (strcmp(fd->name, "limit") == 0 || strcmp(fd->name, "cursor") == 0)
            return fail(err, "bad_definition", "'%s' cannot be indexed: it is a query parameter of listings", fd->name);
        for (size_t j = 0; j < s->nindexes; j++)
            if (s->indexes[j] == (size_t)f) return fail(err, "bad_definition", "'%s' is indexed twice", fd->name);
        s->indexes[s->nindexes++] = (size_t)f;
    }
    return SKV_OK;
}

static int check_key_type(const schema *s, size_t f, const char *what, schema_error *err) {
    int t = s->fields[f].type;
    if (t != SCHEMA_STRING && t != SCHEMA_INTEGER)
        return fail(err, "bad_definition", "the %s '%s' must be of type string or integer, not %s", what,
                    s->fields[f].name, schema_type_name(t));
    return SKV_OK;
}

static int parse_members(schema *s, json_t *def, schema_error *err) {
    static const char *const known[] = { "name", "primary_key", "shard_key", "fields", "indexes" };
    const char *k;
    json_t *v;
    json_object_foreach(def, k, v) {
        int ok = 0;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) ok |= strcmp(k, known[i]) == 0;
        if (!ok)
            return fail(err, "bad_definition",
                        "unknown member '%.64s' (name, primary_key, shard_key, fields, indexes)", k);
    }
    json_t *name = json_object_get(def, "name");
    if (!json_is_string(name) || !name_chars_valid(json_string_value(name), json_string_length(name)))
        return fail(err, "bad_definition", "name must be 1 to %d of A-Z a-z 0-9 _ -", SCHEMA_MAX_NAME);
    s->name_len = json_string_length(name);
    s->name = skv_strndup(json_string_value(name), s->name_len);
    json_t *fields = json_object_get(def, "fields");
    if (fields && !json_is_object(fields))
        return fail(err, "bad_definition", "fields must be an object of field name -> {\"type\": ...}");
    json_object_foreach(fields, k, v) {
        int rc = parse_field(s, k, v, err);
        if (rc) return rc;
    }
    json_t *pk = json_object_get(def, "primary_key");
    if (!pk) return fail(err, "bad_definition", "primary_key is required");
    int f = key_field(s, pk, "primary_key", err);
    if (f < 0) return SKV_EINVAL;
    s->pk = (size_t)f;
    json_t *sk = json_object_get(def, "shard_key");
    f = sk ? key_field(s, sk, "shard_key", err) : (int)s->pk;
    if (f < 0) return SKV_EINVAL;
    s->shard_key = (size_t)f;
    if (check_key_type(s, s->pk, "primary key", err) || check_key_type(s, s->shard_key, "shard key", err))
        return SKV_EINVAL;
    s->fields[s->pk].required = s->fields[s->shard_key].required = 1;
    json_t *idx = json_object_get(def, "indexes");
    return idx ? parse_indexes(s, idx, err) : SKV_OK;
}

int schema_parse(json_t *def, schema **out, schema_error *err) {
    *out = NULL;
    if (!json_is_object(def)) return fail(err, "bad_definition", "a collection definition must be a JSON object");
    schema *s = skv_calloc(1, sizeof *s);
    /* Every declared field, plus up to three implied (primary key, shard key, an index). */
    s->fields = skv_calloc(SCHEMA_MAX_FIELDS, sizeof *s->fields);
    int rc = parse_members(s, def, err);
    if (rc) {
        schema_free(s);
        return rc;
    }
    *out = s;
    return SKV_OK;
}

/* ---- serialising ----------------------------------------------------------------------------- */

static void append_str(skv_buf *out, const char *s, size_t n) {
    skv_buf_append(out, "\"", 1);
    skv_buf_append_json_str(out, s, n);
    skv_buf_append(out, "\"", 1);
}

void schema_to_json(const schema *s, skv_buf *out) {
    skv_buf_append_cstr(out, "{\"name\":");
    append_str(out, s->name, s->name_len);
    skv_buf_append_cstr(out, ",\"primary_key\":");
    append_str(out, s->fields[s->pk].name, s->fields[s->pk].name_len);
    skv_buf_append_cstr(out, ",\"shard_key\":");
    append_str(out, s->fields[s->shard_key].name, s->fields[s->shard_key].name_len);
    skv_buf_append_cstr(out, ",\"fields\":{");
    for (size_t i = 0; i < s->nfields; i++) {
        const schema_field *f = &s->fields[i];
        if (i) skv_buf_append(out, ",", 1);
        append_str(out, f->name, f->name_len);
        skv_buf_printf(out, ":{\"type\":\"%s\"", schema_type_name(f->type));
        if (f->max_length) skv_buf_printf(out, ",\"max_length\":%u", f->max_length);
        if (f->required) skv_buf_append_cstr(out, ",\"required\":true");
        skv_buf_append(out, "}", 1);
    }
    skv_buf_append_cstr(out, "},\"indexes\":[");
    for (size_t i = 0; i < s->nindexes; i++) {
        if (i) skv_buf_append(out, ",", 1);
        const schema_field *f = &s->fields[s->indexes[i]];
        append_str(out, f->name, f->name_len);
    }
    skv_buf_append_cstr(out, "]}");
}

/* ---- documents ----------------------------------------------------------------------------- */

/* Characters (code points) in valid UTF-8 text: bytes that do not continue a sequence. */
static size_t utf8_chars(const char *p, size_t n) {
    size_t chars = 0;
    for (size_t i = 0; i < n; i++) chars += ((unsigned char)p[i] & 0xC0) != 0x80;
    return chars;
}

static int type_matches(int type, json_t *v) {
    switch (type) {
    case SCHEMA_STRING: return json_is_string(v);
    case SCHEMA_INTEGER: return json_is_integer(v);
    case SCHEMA_NUMBER: return json_is_number(v);
    case SCHEMA_BOOLEAN: return json_is_boolean(v);
    case SCHEMA_OBJECT: return json_is_object(v);
    case SCHEMA_ARRAY: return json_is_array(v);
    default: return 1;
    }
}

static const char *article(int type) { return type == SCHEMA_INTEGER || type == SCHEMA_OBJECT || type == SCHEMA_ARRAY ? "an" : "a"; }

static int check_field(const schema *s, size_t i, json_t *v, schema_error *err) {
    const schema_field *f = &s->fields[i];
    if (!v || json_is_null(v)) {
        if (f->required) return fail(err, "missing_field", "field '%s' is required", f->name);
        return SKV_OK;
    }
    if (!type_matches(f->type, v))
        return fail(err, "wrong_type", "field '%s' must be %s %s", f->name, article(f->type), schema_type_name(f->type));
    if (f->type == SCHEMA_STRING && f->max_length) {
        size_t n = utf8_chars(json_string_value(v), json_string_length(v));
        if (n > f->max_length)
            return fail(err, "field_too_long", "field '%s' is %zu characters long; the limit is %u", f->name, n,
                        f->max_length);
    }
    if (i == s->pk && f->type == SCHEMA_STRING) {
        size_t n = json_string_length(v);
        if (n == 0 || n > SCHEMA_MAX_KEY_BYTES)
            return fail(err, "bad_key", "the primary key '%s' must be 1 to %d bytes", f->name, SCHEMA_MAX_KEY_BYTES);
    }
    return SKV_OK;
}

int schema_validate(const schema *s, json_t *doc, schema_error *err) {
    if (!json_is_object(doc)) return fail(err, "invalid_json", "a document must be a JSON object");
    for (size_t i = 0; i < s->nfields; i++) {
        int rc = check_field(s, i, json_object_get(doc, s->fields[i].name), err);
        if (rc) return rc;
    }
    return SKV_OK;
}

/* ---- key texts ----------------------------------------------------------------------------- */

int schema_value_text(const schema_field *f, json_t *v, skv_buf *out) {
    if (!v) return SKV_EINVAL;
    switch (f->type) {
    case SCHEMA_STRING:
        if (!json_is_string(v)) return SKV_EINVAL;
        skv_buf_append(out, json_string_value(v), json_string_length(v));
        return SKV_OK;
    case SCHEMA_INTEGER:
        if (!json_is_integer(v)) return SKV_EINVAL;
        skv_buf_append_i64(out, (int64_t)json_integer_value(v));
        return SKV_OK;
    case SCHEMA_BOOLEAN:
        if (!json_is_boolean(v)) return SKV_EINVAL;
        skv_buf_append_cstr(out, json_is_true(v) ? "true" : "false");
        return SKV_OK;
    default: return SKV_EINVAL;
    }
}

int schema_value_parse(const schema_field *f, skv_slice text, skv_buf *out) {
    int64_t n;
    switch (f->type) {
    case SCHEMA_STRING: skv_buf_append(out, text.ptr, text.len); return SKV_OK;
    case SCHEMA_INTEGER:
        if (skv_slice_to_i64(text, &n) != SKV_OK) return SKV_EINVAL;
        skv_buf_append_i64(out, n);
        return SKV_OK;
    case SCHEMA_BOOLEAN:
        if (!skv_slice_eq_cstr(text, "true") && !skv_slice_eq_cstr(text, "false")) return SKV_EINVAL;
        skv_buf_append(out, text.ptr, text.len);
        return SKV_OK;
    default: return SKV_EINVAL;
    }
}

void schema_value_json(const schema_field *f, skv_slice text, skv_buf *out) {
    if (f->type == SCHEMA_STRING) append_str(out, text.ptr, text.len);
    else skv_buf_append(out, text.ptr, text.len);
}
