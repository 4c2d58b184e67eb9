/*
 * log — leveled logs to stderr, one line per event, as text or JSON.
 *
 * Text:  2026-11-21T12:00:00.123Z INFO  message
 * JSON:  {"ts":"2026-11-21T12:00:00.123Z","level":"info","msg":"message"}
 *
 * Each line is formatted into a stack buffer and emitted with one write(2),
 * so lines from different threads never interleave.  The level check is an
 * inline load, so a disabled debug line costs one comparison and its
 * arguments are not evaluated.  log_init() must run before threads start;
 * the other functions are thread-safe.
 */
#ifndef SKV_LOG_H
#define SKV_LOG_H

enum log_level { LOG_LEVEL_DEBUG = 0, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR, LOG_LEVEL_OFF };
enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON };

extern int log_current_level; /* read by the macros below; set by log_init */

void log_init(int level, int format);
/* Parses "debug|info|warn|error|off"; returns the level or -1. */
int log_level_parse(const char *s);
/* Parses "text|json"; returns the format or -1. */
int log_format_parse(const char *s);

void log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes an already formatted access-log line (no level filtering). */
void log_access(const char *line, unsigned long len);

#define LOG_ENABLED(lvl) ((lvl) >= log_current_level)
#define log_debug(...) do { if (LOG_ENABLED(LOG_LEVEL_DEBUG)) log_write(LOG_LEVEL_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...)  do { if (LOG_ENABLED(LOG_LEVEL_INFO))  log_write(LOG_LEVEL_INFO,  __VA_ARGS__); } while (0)
#define log_warn(...)  do { if (LOG_ENABLED(LOG_LEVEL_WARN))  log_write(LOG_LEVEL_WARN,  __VA_ARGS__); } while (0)
#define log_error(...) do { if (LOG_ENABLED(LOG_LEVEL_ERROR)) log_write(LOG_LEVEL_ERROR, __VA_ARGS__); } while (0)

#endif
