/*
 * schema — collection definitions and the validation of documents against
 * them.
 *
 * A definition (what POST /v1/collections takes and what is stored, in
 * normalized compact form, under the collection's STORE_NS_SCHEMA key):
 *
 *   {"name": "users",                 1..64 of [A-Za-z0-9_-]
 *    "primary_key": "user_id",        a field of type string or integer
 *    "shard_key": "user_id",          optional, default primary_key; string or integer
 *    "fields": {"user_id": {"type": "integer"},
 *               "name": {"type": "string", "max_length": 100, "required": true}, ...},
 *    "indexes": ["region"]}           fields of type string, integer or boolean
 *
 * Field types: string, integer (64-bit), number, boolean, object, array,
 * any.  max_length (strings only) counts characters (Unicode code points),
 * as SQL's VARCHAR(n).  A field named as primary key, shard key or index
 * but not declared is declared as a string.  The primary and shard keys
 * are required; other fields only with "required": true, and a non-required
 * field may be absent or null.  Fields not declared are accepted and kept.
 * Unknown members in a definition are refused (a typo such as "index" must
 * not silently define nothing).  Limits: SCHEMA_MAX_FIELDS fields,
 * SCHEMA_MAX_INDEXES indexes; "limit" and "cursor" cannot be indexed (they
 * are the query parameters of a listing).
 *
 * Key texts.  A primary key, a shard key and an indexed value each have a
 * canonical text: a string's bytes, an integer's decimal digits, "true" /
 * "false".  The primary key's text names the document's internal key, the
 * shard key's text is what the ring hashes (the seed hashes str(user_id)),
 * an indexed value's text is what the index stores and a query compares.
 *
 * Nothing here is shared or locked: a schema is immutable once parsed and
 * may be read from any thread.
 */
#ifndef SKV_SCHEMA_H
#define SKV_SCHEMA_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define SCHEMA_MAX_NAME 64       /* collection and field names, bytes */
#define SCHEMA_MAX_FIELDS 64
#define SCHEMA_MAX_INDEXES 16
#define SCHEMA_MAX_KEY_BYTES 512 /* a string primary key, bytes */

enum schema_type {
    SCHEMA_ANY = 0,
    SCHEMA_STRING,
    SCHEMA_INTEGER,
    SCHEMA_NUMBER,
    SCHEMA_BOOLEAN,
    SCHEMA_OBJECT,
    SCHEMA_ARRAY,
};

typedef struct schema_field {
    char *name;          /* NUL-terminated */
    size_t name_len;
    int type;            /* enum schema_type */
    uint32_t max_length; /* strings: at most this many characters; 0 = no limit */
    int required;        /* absent or null is refused */
} schema_field;

typedef struct schema {
    char *name;          /* NUL-terminated */
    size_t name_len;
    size_t nfields;
    schema_field *fields;
    size_t pk;           /* position of the primary key in fields */
    size_t shard_key;    /* position of the shard key in fields */
    size_t nindexes;
    size_t *indexes;     /* positions in fields, in definition order */
} schema;

/* Why a definition or a document was refused: a stable snake_case code
 * and a human message naming the field. */
typedef struct schema_error {
    const char *code;    /* bad_definition, missing_field, wrong_type, field_too_long, bad_key */
    char message[256];
} schema_error;

/* 1 when name is a valid collection name (1..64 of [A-Za-z0-9_-]). */
int schema_name_valid(skv_slice name);

/*
 * Parses and checks a definition (a request body or a stored record).
 * Returns 0 and *out (free with schema_free), or SKV_EINVAL with *err
 * (code "bad_definition").
 */
int schema_parse(json_t *def, schema **out, schema_error *err);
void schema_free(schema *s);

/* Appends the normalized definition as compact JSON. */
void schema_to_json(const schema *s, skv_buf *out);

/* The position of the field called name, or -1. */
int schema_field_find(const schema *s, skv_slice name);

/*
 * Checks a document (any JSON value) against s: an object, every required
 * field present and not null, every present declared field of its type
 * and length, a non-empty primary key of at most SCHEMA_MAX_KEY_BYTES.
 * Returns 0, or SKV_EINVAL with *err (invalid_json for a non-object,
 * missing_field, wrong_type, field_too_long, bad_key).
 */
int schema_validate(const schema *s, json_t *doc, schema_error *err);

/* The canonical text of v as a value of field f (string, integer or
 * boolean), appended to out.  Returns 0, or SKV_EINVAL when v is not of
 * f's type (or f is not of one of those types). */
int schema_value_text(const schema_field *f, json_t *v, skv_buf *out);

/* Parses text (a URL id or a query value) as a value of field f and
 * appends its canonical text to out.  Returns 0 or SKV_EINVAL ("007",
 * "1.0" or "x" for an integer field; anything but true/false for a
 * boolean). */
int schema_value_parse(const schema_field *f, skv_slice text, skv_buf *out);

/* Appends the JSON form of a canonical text of field f: 15, true, "abc". */
void schema_value_json(const schema_field *f, skv_slice text, skv_buf *out);

/* Name of a type ("string"), and the type of a name (-1 when unknown). */
const char *schema_type_name(int type);
int schema_type_parse(const char *name);

#endif
