#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

int log_current_level = LOG_LEVEL_INFO;
static int log_format = LOG_FORMAT_TEXT;

static const char *const level_upper[] = { "DEBUG", "INFO ", "WARN ", "ERROR" };
static const char *const level_lower[] = { "debug", "info", "warn", "error" };

void log_init(int level, int format) {
    log_current_level = level;
    log_format = format;
}

int log_level_parse(const char *s) {
    static const char *const names[] = { "debug", "info", "warn", "error", "off" };
    for (int i = 0; i < 5; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

int log_format_parse(const char *s) {
    if (strcmp(s, "text") == 0) return LOG_FORMAT_TEXT;
    if (strcmp(s, "json") == 0) return LOG_FORMAT_JSON;
    return -1;
}

static size_t format_ts(char *out, size_t cap) {
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(out + n, cap - n, ".%03dZ", (int)(tv.tv_usec / 1000));
    return n;
}

static void emit(const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(2, p, n);
        if (w <= 0) return; /* stderr gone: nothing sensible to do */
        p += w;
        n -= (size_t)w;
    }
}

void log_write(int level, const char *fmt, ...) {
    if (level < LOG_LEVEL_DEBUG || level > LOG_LEVEL_ERROR) return;
    char msg[2048];
    char ts[40];
    va_list ap;
    va_start(ap, fmt);
    int mlen = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (mlen < 0) return;
    if ((size_t)mlen >= sizeof msg) mlen = (int)sizeof msg - 1;
    format_ts(ts, sizeof ts);

    char line[4096 + 64];
    size_t n;
    if (log_format == LOG_FORMAT_JSON) {
        skv_buf b;
        skv_buf_init(&b);
        skv_buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts, level_lower[level]);
        skv_buf_append_json_str(&b, msg, (size_t)mlen);
        skv_buf_append(&b, "\"}\n", 3);
        emit(b.data, b.len);
        skv_buf_free(&b);
        return;
    }
    /* Keep one event on one line whatever the message holds (keys are client bytes). */
    for (int i = 0; i < mlen; i++)
        if ((unsigned char)msg[i] < 0x20 || msg[i] == 0x7f) msg[i] = '?';
    n = (size_t)snprintf(line, sizeof line, "%s %s %.*s\n", ts, level_upper[level], mlen, msg);
    if (n >= sizeof line) n = sizeof line - 1;
    emit(line, n);
}

void log_access(const char *line, unsigned long len) { emit(line, len); }
