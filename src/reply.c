#include "reply.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "http.h"

void reply_start(reply *r, int status) {
    if (r->accepted && status >= 200 && status < 300) status = 202;
    r->status = status;
    /* The hot statuses skip snprintf. */
    static const char ok[] = "HTTP/1.1 200 OK\r\n", created[] = "HTTP/1.1 201 Created\r\n",
                      not_found[] = "HTTP/1.1 404 Not Found\r\n";
    if (status == 200) {
        skv_buf_append(r->out, ok, sizeof ok - 1);
    } else if (status == 201) {
        skv_buf_append(r->out, created, sizeof created - 1);
    } else if (status == 404) {
        skv_buf_append(r->out, not_found, sizeof not_found - 1);
    } else {
        char line[64];
        int n = snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", status, http_status_reason(status));
        skv_buf_append(r->out, line, (size_t)n);
    }
    if (r->date) skv_buf_append_cstr(r->out, r->date);
    if (r->extra) skv_buf_append_cstr(r->out, r->extra);
}

void reply_header(reply *r, const char *name, const char *value, size_t len) {
    skv_buf_append_cstr(r->out, name);
    skv_buf_append(r->out, ": ", 2);
    skv_buf_append(r->out, value, len);
    skv_buf_append(r->out, "\r\n", 2);
}

void reply_header_cstr(reply *r, const char *name, const char *value) { reply_header(r, name, value, strlen(value)); }

void reply_header_u64(reply *r, const char *name, uint64_t v) {
    char tmp[24];
    size_t n = skv_u64_to_dec(v, tmp);
    reply_header(r, name, tmp, n);
}

void reply_etag(reply *r, uint64_t version) {
    char tmp[28];
    tmp[0] = '"';
    size_t n = skv_u64_to_dec(version, tmp + 1);
    tmp[n + 1] = '"';
    reply_header(r, "ETag", tmp, n + 2);
}

void reply_body(reply *r, const char *content_type, const void *body, size_t len) {
    skv_buf *o = r->out;
    if (content_type) {
        skv_buf_append(o, "Content-Type: ", 14);
        skv_buf_append_cstr(o, content_type);
        skv_buf_append(o, "\r\n", 2);
    }
    if (r->status != 204 && r->status != 304) { /* RFC 9110 8.6: no Content-Length on 204; 304 has no body */
        skv_buf_append(o, "Content-Length: ", 16);
        skv_buf_append_u64(o, len);
        skv_buf_append(o, "\r\n", 2);
    }
    if (r->keep_alive)
        skv_buf_append(o, "\r\n", 2);
    else
        skv_buf_append(o, "Connection: close\r\n\r\n", 21);
    if (!r->head_only && r->status != 304) skv_buf_append(o, body, len);
}

void reply_json_buf(reply *r, const skv_buf *json) {
    reply_body(r, "application/json", json->data, json->len);
}

void reply_json(reply *r, int status, const skv_buf *json) {
    reply_start(r, status);
    reply_json_buf(r, json);
}

void reply_error(reply *r, int status, const char *code, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    skv_buf b;
    skv_buf_init(&b);
    skv_buf_append_cstr(&b, "{\"error\":{\"code\":\"");
    skv_buf_append_cstr(&b, code);
    skv_buf_append_cstr(&b, "\",\"message\":\"");
    skv_buf_append_json_str(&b, msg, strlen(msg));
    skv_buf_append_cstr(&b, "\"}");
    if (r->seed_style) {
        skv_buf_append_cstr(&b, ",\"detail\":\"");
        skv_buf_append_json_str(&b, msg, strlen(msg));
        skv_buf_append_cstr(&b, "\"");
    }
    skv_buf_append_cstr(&b, "}");
    reply_json(r, status, &b);
    skv_buf_free(&b);
}

void reply_format_date(long t, char *out, size_t cap) {
    struct tm tm;
    time_t tt = (time_t)t;
    gmtime_r(&tt, &tm);
    strftime(out, cap, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
}
