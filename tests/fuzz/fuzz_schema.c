/*
 * libFuzzer target for collection definitions and document validation
 * (schema.h).
 *
 * The input is split at its first NUL byte into a definition and a
 * document (JSON text has no raw NUL; without one, the whole input is
 * both).  Each is loaded as the routes load a request body (jansson,
 * JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL).
 *
 * Definitions: schema_parse answers 0 or SKV_EINVAL with code
 * bad_definition and a NUL-terminated message, and *out NULL on refusal.
 * A parsed schema keeps every rule of schema.h (valid unique names, key
 * fields of type string or integer and required, indexes unique, of an
 * indexable type, not limit/cursor, the limits) and holds what the JSON
 * said (name, keys, declared fields with their type, max_length and
 * required).  Its normalized JSON (schema_to_json) loads both as a stored
 * record is loaded at start-up (coll.c, flags 0) and as a request body,
 * parses to a schema with the same fields, keys and indexes, and
 * normalizes to the identical text: what POST stores survives a restart.
 *
 * Documents, against the built-in users schema, a few fixed definitions
 * that use every type, and the input's own definition when it parsed:
 * schema_validate answers 0 or SKV_EINVAL with one of the documented codes,
 * and exactly as an independent model of the rules (same verdict, same
 * code, fields checked in definition order).  For an accepted document:
 *   - the primary key, shard key and every present indexed value have a
 *     canonical text (schema_value_text); parsing that text back as a URL
 *     id or query value (schema_value_parse) gives the same text, and its
 *     JSON form (schema_value_json) loads to a value with the same text;
 *   - the document stored as compact JSON (json_dumps as coll_http.c) and
 *     loaded back as docidx.c loads it still validates, with identical
 *     key and index texts;
 *   - with the primary key replaced by its schema_value_json form (a PUT
 *     that takes the id from the URL) it still validates, same texts.
 * Also: schema_value_parse on the raw input is canonical (accepted text
 * parses to itself for integer and boolean fields, and is a fixed point),
 * and schema_name_valid / schema_type_parse agree with the documented
 * rules.  Any violation aborts; leaks are reported by LeakSanitizer.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

#define BODY_FLAGS (JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL)

/* The built-in users definition (a copy of coll.c's users_definition) and
 * others that between them use every type, an implied key field, a shard
 * key other than the primary key and a string primary key with a limit. */
static const char *const fixed_defs[] = {
    "{\"name\":\"users\",\"primary_key\":\"user_id\",\"shard_key\":\"user_id\","
    "\"fields\":{\"user_id\":{\"type\":\"integer\"},\"name\":{\"type\":\"string\",\"max_length\":100},"
    "\"region\":{\"type\":\"string\",\"max_length\":50},\"email\":{\"type\":\"string\",\"max_length\":100}},"
    "\"indexes\":[\"region\"]}",
    "{\"name\":\"books\",\"primary_key\":\"isbn\",\"fields\":{\"isbn\":{\"type\":\"string\",\"max_length\":20},"
    "\"year\":{\"type\":\"integer\"},\"title\":{\"type\":\"string\",\"required\":true},"
    "\"price\":{\"type\":\"number\"},\"in_print\":{\"type\":\"boolean\"},\"tags\":{\"type\":\"array\"},"
    "\"meta\":{\"type\":\"object\"},\"extra\":{\"type\":\"any\"},\"note\":{}},"
    "\"indexes\":[\"year\",\"in_print\",\"author\"]}",
    "{\"name\":\"regional\",\"primary_key\":\"id\",\"shard_key\":\"region\","
    "\"fields\":{\"id\":{\"type\":\"integer\"}},\"indexes\":[\"region\",\"id\"]}",
    "{\"name\":\"codes\",\"primary_key\":\"code\",\"shard_key\":\"n\","
    "\"fields\":{\"code\":{\"type\":\"string\",\"max_length\":3},\"n\":{\"type\":\"integer\"},"
    "\"flag\":{\"type\":\"boolean\",\"required\":true}},\"indexes\":[\"flag\",\"n\",\"code\"]}",
};
#define NFIXED (sizeof fixed_defs / sizeof fixed_defs[0])

static schema *fixed[NFIXED];

/* ---- an independent reading of the rules ---------------------------------------------------- */

static int ref_name_valid(const char *p, size_t n) {
    if (n < 1 || n > 64) return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", p[i]) || p[i] == '\0')
            return 0;
    return 1;
}

/* Code points of valid UTF-8 (jansson strings are valid UTF-8). */
static size_t ref_code_points(const char *p, size_t n) {
    size_t count = 0;
    for (size_t i = 0; i < n; count++) {
        unsigned char c = (unsigned char)p[i];
        i += c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    }
    return count;
}

static int ref_type_ok(int type, json_t *v) {
    switch (type) {
    case SCHEMA_ANY: return 1;
    case SCHEMA_STRING: return json_typeof(v) == JSON_STRING;
    case SCHEMA_INTEGER: return json_typeof(v) == JSON_INTEGER;
    case SCHEMA_NUMBER: return json_typeof(v) == JSON_INTEGER || json_typeof(v) == JSON_REAL;
    case SCHEMA_BOOLEAN: return json_typeof(v) == JSON_TRUE || json_typeof(v) == JSON_FALSE;
    case SCHEMA_OBJECT: return json_typeof(v) == JSON_OBJECT;
    case SCHEMA_ARRAY: return json_typeof(v) == JSON_ARRAY;
    default: CHECK(0); return 0;
    }
}

/* The code schema_validate should answer (NULL: accept). */
static const char *ref_validate(const schema *s, json_t *doc) {
    if (!doc || json_typeof(doc) != JSON_OBJECT) return "invalid_json";
    for (size_t i = 0; i < s->nfields; i++) {
        const schema_field *f = &s->fields[i];
        json_t *v = json_object_getn(doc, f->name, f->name_len);
        if (!v || json_typeof(v) == JSON_NULL) {
            if (f->required) return "missing_field";
            continue;
        }
        if (!ref_type_ok(f->type, v)) return "wrong_type";
        if (f->type == SCHEMA_STRING && f->max_length &&
            ref_code_points(json_string_value(v), json_string_length(v)) > f->max_length)
            return "field_too_long";
        if (i == s->pk && f->type == SCHEMA_STRING &&
            (json_string_length(v) == 0 || json_string_length(v) > SCHEMA_MAX_KEY_BYTES))
            return "bad_key";
    }
    return NULL;
}

/* ---- definitions ----------------------------------------------------------------------------- */

static void check_error(const schema_error *err) {
    CHECK(err->code != NULL);
    CHECK(memchr(err->message, '\0', sizeof err->message) != NULL);
    CHECK(err->message[0] != '\0');
}

static void check_invariants(const schema *s) {
    CHECK(ref_name_valid(s->name, s->name_len) && strlen(s->name) == s->name_len);
    CHECK(s->nfields >= 1 && s->nfields <= SCHEMA_MAX_FIELDS);
    for (size_t i = 0; i < s->nfields; i++) {
        const schema_field *f = &s->fields[i];
        CHECK(ref_name_valid(f->name, f->name_len) && strlen(f->name) == f->name_len);
        CHECK(schema_field_find(s, skv_slice_make(f->name, f->name_len)) == (int)i); /* names unique */
        CHECK(f->type >= SCHEMA_ANY && f->type <= SCHEMA_ARRAY);
        CHECK(f->max_length == 0 || f->type == SCHEMA_STRING);
        CHECK(f->required == 0 || f->required == 1);
    }
    CHECK(s->pk < s->nfields && s->shard_key < s->nfields);
    int pt = s->fields[s->pk].type, st = s->fields[s->shard_key].type;
    CHECK(pt == SCHEMA_STRING || pt == SCHEMA_INTEGER);
    CHECK(st == SCHEMA_STRING || st == SCHEMA_INTEGER);
    CHECK(s->fields[s->pk].required && s->fields[s->shard_key].required);
    CHECK(s->nindexes <= SCHEMA_MAX_INDEXES);
    for (size_t i = 0; i < s->nindexes; i++) {
        CHECK(s->indexes[i] < s->nfields);
        const schema_field *f = &s->fields[s->indexes[i]];
        CHECK(f->type == SCHEMA_STRING || f->type == SCHEMA_INTEGER || f->type == SCHEMA_BOOLEAN);
        CHECK(strcmp(f->name, "limit") != 0 && strcmp(f->name, "cursor") != 0);
        for (size_t j = 0; j < i; j++) CHECK(s->indexes[j] != s->indexes[i]);
    }
}

static int field_named(const schema *s, json_t *name) {
    CHECK(json_is_string(name));
    return schema_field_find(s, skv_slice_make(json_string_value(name), json_string_length(name)));
}

/* The parsed schema holds what the definition said. */
static void check_matches_json(const schema *s, json_t *def) {
    json_t *name = json_object_get(def, "name");
    CHECK(json_string_length(name) == s->name_len && memcmp(json_string_value(name), s->name, s->name_len) == 0);
    int pk = field_named(s, json_object_get(def, "primary_key"));
    CHECK(pk == (int)s->pk);
    json_t *sk = json_object_get(def, "shard_key");
    CHECK((sk ? field_named(s, sk) : pk) == (int)s->shard_key);
    const char *k;
    size_t klen;
    json_t *spec;
    json_object_keylen_foreach(json_object_get(def, "fields"), k, klen, spec) {
        int i = schema_field_find(s, skv_slice_make(k, klen));
        CHECK(i >= 0);
        const schema_field *f = &s->fields[i];
        json_t *t = json_object_get(spec, "type");
        CHECK(f->type == (t ? schema_type_parse(json_string_value(t)) : SCHEMA_ANY));
        /* the whole type name, not a prefix up to an escaped NUL */
        CHECK(!t || json_string_length(t) == strlen(schema_type_name(f->type)));
        json_t *ml = json_object_get(spec, "max_length");
        CHECK(f->max_length == (ml ? (uint32_t)json_integer_value(ml) : 0));
        int req = json_is_true(json_object_get(spec, "required")) || i == (int)s->pk || i == (int)s->shard_key;
        CHECK(f->required == req);
    }
    json_t *idx = json_object_get(def, "indexes");
    CHECK(json_array_size(idx) == s->nindexes);
    for (size_t i = 0; i < s->nindexes; i++) CHECK(field_named(s, json_array_get(idx, i)) == (int)s->indexes[i]);
}

static void check_same_schema(const schema *a, const schema *b) {
    CHECK(a->name_len == b->name_len && memcmp(a->name, b->name, a->name_len) == 0);
    CHECK(a->nfields == b->nfields && a->pk == b->pk && a->shard_key == b->shard_key);
    for (size_t i = 0; i < a->nfields; i++) {
        const schema_field *x = &a->fields[i], *y = &b->fields[i];
        CHECK(x->name_len == y->name_len && memcmp(x->name, y->name, x->name_len) == 0);
        CHECK(x->type == y->type && x->max_length == y->max_length && x->required == y->required);
    }
    CHECK(a->nindexes == b->nindexes);
    for (size_t i = 0; i < a->nindexes; i++) CHECK(a->indexes[i] == b->indexes[i]);
}

/* Normalized text -> schema -> the same text, under the given load flags. */
static void check_reparse(const schema *s, const skv_buf *text, size_t flags) {
    json_error_t jerr;
    json_t *j = json_loadb(text->data, text->len, flags, &jerr);
    if (!j) fprintf(stderr, "normalized definition does not load: %s\n%s\n", jerr.text, text->data);
    CHECK(j != NULL);
    schema *s2 = NULL;
    schema_error err;
    int rc = schema_parse(j, &s2, &err);
    if (rc) fprintf(stderr, "normalized definition refused: %s\n%s\n", err.message, text->data);
    CHECK(rc == SKV_OK && s2 != NULL);
    check_same_schema(s, s2);
    skv_buf again;
    skv_buf_init(&again);
    schema_to_json(s2, &again);
    CHECK(again.len == text->len && memcmp(again.data, text->data, text->len) == 0);
    skv_buf_free(&again);
    schema_free(s2);
    json_decref(j);
}

/* Parses the definition; returns the schema (the caller frees) or NULL. */
static schema *check_definition(json_t *def) {
    schema *s = (schema *)&s; /* must be overwritten */
    schema_error err;
    memset(&err, 0, sizeof err);
    int rc = schema_parse(def, &s, &err);
    CHECK(rc == SKV_OK || rc == SKV_EINVAL);
    if (rc) {
        CHECK(s == NULL);
        check_error(&err);
        CHECK(strcmp(err.code, "bad_definition") == 0);
        return NULL;
    }
    CHECK(s != NULL);
    CHECK(json_is_object(def));
    check_invariants(s);
    check_matches_json(s, def);
    skv_buf text;
    skv_buf_init(&text);
    schema_to_json(s, &text);
    check_reparse(s, &text, 0);
    check_reparse(s, &text, BODY_FLAGS);
    skv_buf_free(&text);
    return s;
}

/* ---- documents ------------------------------------------------------------------------------ */

#define MAX_TEXTS (2 + SCHEMA_MAX_INDEXES)

typedef struct key_texts {
    skv_buf t[MAX_TEXTS]; /* primary key, shard key, each index (empty when absent) */
    int present[MAX_TEXTS];
} key_texts;

static void texts_init(key_texts *k) {
    for (size_t i = 0; i < MAX_TEXTS; i++) {
        skv_buf_init(&k->t[i]);
        k->present[i] = 0;
    }
}

static void texts_free(key_texts *k) {
    for (size_t i = 0; i < MAX_TEXTS; i++) skv_buf_free(&k->t[i]);
}

static int same_buf(const skv_buf *a, const skv_buf *b) {
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* The canonical text of a field's value round-trips through the URL/query
 * parser and through its JSON form. */
static void check_text_roundtrip(const schema_field *f, const skv_buf *text) {
    skv_slice t = skv_slice_make(text->data ? text->data : "", text->len);
    skv_buf parsed;
    skv_buf_init(&parsed);
    CHECK(schema_value_parse(f, t, &parsed) == SKV_OK);
    CHECK(same_buf(&parsed, text));
    skv_buf_free(&parsed);

    skv_buf js;
    skv_buf_init(&js);
    schema_value_json(f, t, &js);
    json_error_t jerr;
    json_t *v = json_loadb(js.data, js.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!v) fprintf(stderr, "value json does not load: %s\n", js.data);
    CHECK(v != NULL);
    skv_buf back;
    skv_buf_init(&back);
    CHECK(schema_value_text(f, v, &back) == SKV_OK);
    CHECK(same_buf(&back, text));
    skv_buf_free(&back);
    json_decref(v);
    skv_buf_free(&js);
}

/* Key and index texts of an accepted document. */
static void collect_texts(const schema *s, json_t *doc, key_texts *k) {
    size_t fields[MAX_TEXTS];
    size_t n = 0;
    fields[n++] = s->pk;
    fields[n++] = s->shard_key;
    for (size_t i = 0; i < s->nindexes; i++) fields[n++] = s->indexes[i];
    for (size_t i = 0; i < n; i++) {
        const schema_field *f = &s->fields[fields[i]];
        json_t *v = json_object_getn(doc, f->name, f->name_len);
        skv_buf_reset(&k->t[i]);
        k->present[i] = v && !json_is_null(v);
        if (i < 2) CHECK(k->present[i]); /* keys are required */
        if (!k->present[i]) {
            /* absent or null has no text */
            CHECK(schema_value_text(f, v, &k->t[i]) == SKV_EINVAL && k->t[i].len == 0);
            continue;
        }
        CHECK(schema_value_text(f, v, &k->t[i]) == SKV_OK);
        check_text_roundtrip(f, &k->t[i]);
    }
    CHECK(k->t[0].len >= 1);
    if (s->fields[s->pk].type == SCHEMA_STRING) CHECK(k->t[0].len <= SCHEMA_MAX_KEY_BYTES);
}

static void check_same_texts(const key_texts *a, const key_texts *b) {
    for (size_t i = 0; i < MAX_TEXTS; i++) {
        CHECK(a->present[i] == b->present[i]);
        CHECK(same_buf(&a->t[i], &b->t[i]));
    }
}

static void check_validates_same(const schema *s, json_t *doc, const key_texts *want) {
    schema_error err;
    CHECK(doc != NULL);
    CHECK(schema_validate(s, doc, &err) == SKV_OK);
    key_texts got;
    texts_init(&got);
    collect_texts(s, doc, &got);
    check_same_texts(want, &got);
    texts_free(&got);
}

static void check_document(const schema *s, json_t *doc) {
    schema_error err;
    memset(&err, 0, sizeof err);
    int rc = schema_validate(s, doc, &err);
    const char *want = ref_validate(s, doc);
    CHECK(rc == SKV_OK || rc == SKV_EINVAL);
    if (rc) {
        check_error(&err);
        if (!want || strcmp(want, err.code) != 0)
            fprintf(stderr, "schema %s: validate says %s (%s), model says %s\n", s->name, err.code, err.message,
                    want ? want : "ok");
        CHECK(want && strcmp(want, err.code) == 0);
        return;
    }
    if (want) fprintf(stderr, "schema %s: validate accepts, model says %s\n", s->name, want);
    CHECK(want == NULL);

    key_texts k;
    texts_init(&k);
    collect_texts(s, doc, &k);

    /* Stored as compact JSON, loaded back as the index loads it. */
    char *stored = json_dumps(doc, JSON_COMPACT);
    CHECK(stored != NULL);
    json_t *reloaded = json_loadb(stored, strlen(stored), JSON_ALLOW_NUL, NULL);
    check_validates_same(s, reloaded, &k);
    json_decref(reloaded);
    free(stored);

    /* The primary key taken from its URL form. */
    const schema_field *pkf = &s->fields[s->pk];
    skv_buf js;
    skv_buf_init(&js);
    schema_value_json(pkf, skv_slice_make(k.t[0].data, k.t[0].len), &js);
    json_t *pkv = json_loadb(js.data, js.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    CHECK(pkv != NULL);
    json_t *copy = json_deep_copy(doc);
    CHECK(copy != NULL);
    CHECK(json_object_setn_new(copy, pkf->name, pkf->name_len, pkv) == 0);
    check_validates_same(s, copy, &k);
    json_decref(copy);
    skv_buf_free(&js);
    texts_free(&k);
}

/* ---- value texts and names ------------------------------------------------------------------ */

static void check_value_parse(const schema_field *f, skv_slice in) {
    skv_buf out;
    skv_buf_init(&out);
    int rc = schema_value_parse(f, in, &out);
    CHECK(rc == SKV_OK || rc == SKV_EINVAL);
    if (f->type != SCHEMA_STRING && f->type != SCHEMA_INTEGER && f->type != SCHEMA_BOOLEAN) CHECK(rc == SKV_EINVAL);
    if (rc == SKV_OK) {
        /* canonical: "007", "+1", "-0" are refused rather than rewritten */
        CHECK(out.len == in.len && (in.len == 0 || memcmp(out.data, in.ptr, in.len) == 0));
        if (f->type == SCHEMA_BOOLEAN) CHECK(skv_slice_eq_cstr(in, "true") || skv_slice_eq_cstr(in, "false"));
    } else {
        CHECK(out.len == 0);
    }
    skv_buf_free(&out);
}

static void check_names(const char *p, size_t n) {
    CHECK(schema_name_valid(skv_slice_make(p, n)) == ref_name_valid(p, n));
    if (n < 16 && !memchr(p, '\0', n)) {
        char name[16];
        memcpy(name, p, n);
        name[n] = '\0';
        int t = schema_type_parse(name);
        CHECK(t >= -1 && t <= SCHEMA_ARRAY);
        if (t >= 0) CHECK(strcmp(schema_type_name(t), name) == 0);
    }
}

/* ---- driver --------------------------------------------------------------------------------- */

static void init_fixed(void) {
    if (fixed[0]) return;
    for (size_t i = 0; i < NFIXED; i++) {
        json_t *j = json_loads(fixed_defs[i], 0, NULL);
        CHECK(j != NULL);
        fixed[i] = check_definition(j);
        CHECK(fixed[i] != NULL);
        json_decref(j);
    }
}

static json_t *load(const char *p, size_t n) { return json_loadb(p, n, BODY_FLAGS, NULL); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    init_fixed();
    /* An exact-size copy so that any read past the end is caught. */
    char *in = malloc(size ? size : 1);
    CHECK(in != NULL);
    if (size) memcpy(in, data, size);
    const char *nul = memchr(in, '\0', size);
    size_t def_len = nul ? (size_t)(nul - in) : size;
    const char *doc_text = nul ? nul + 1 : in;
    size_t doc_len = nul ? size - def_len - 1 : size;

    json_t *def = load(in, def_len);
    schema *own = def ? check_definition(def) : NULL;
    json_decref(def);

    json_t *doc = load(doc_text, doc_len);
    if (doc) {
        for (size_t i = 0; i < NFIXED; i++) check_document(fixed[i], doc);
        if (own) check_document(own, doc);
        json_decref(doc);
    }

    skv_slice raw = skv_slice_make(doc_text, doc_len);
    for (size_t i = 0; i < NFIXED; i++)
        for (size_t j = 0; j < fixed[i]->nfields; j++) check_value_parse(&fixed[i]->fields[j], raw);
    check_names(in, size);

    schema_free(own);
    free(in);
    return 0;
}
