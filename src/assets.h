/*
 * assets — the static files served by the node (the dashboard under /ui/,
 * the API reference at /docs, the OpenAPI document at /openapi.json),
 * compiled into the binary at build time so a node needs no files and no
 * network at run time.
 *
 * The build (tools/embed.c, run by the Makefile) turns every file under
 * web/ into a byte array in build/gen/assets_data.c, with its path relative
 * to web/ ("ui/index.html"), a content type chosen from the extension and a
 * strong ETag (a hash of the bytes).  The table is sorted by path.
 *
 * Thread-safety: read-only data; every function may be called from any thread.
 */
#ifndef SKV_ASSETS_H
#define SKV_ASSETS_H

#include <stddef.h>

#include "buf.h"

typedef struct asset {
    const char *path;          /* relative to web/, e.g. "ui/app.js" */
    const char *content_type;
    const unsigned char *data;
    size_t len;
    const char *etag;          /* quoted, e.g. "\"3f2a...\"" */
} asset;

/* The generated table (build/gen/assets_data.c). */
extern const asset assets_table[];
extern const size_t assets_count;

/* The asset at path (relative to web/, no leading slash), or NULL. */
const asset *assets_find(skv_slice path);

#endif
