/*
 * client — the command-line client: `shardkv get|put|del|scan|incr|stats|shards`
 * talking HTTP/1.1 to a running node (docs/cli.md).
 *
 * Role: turn one command line into one or a few requests to --endpoint
 * (default http://127.0.0.1:8000, or SHARDKV_ENDPOINT), print the answer
 * readably or, with --json, as the server's JSON, and exit with a code a
 * script can test: 0 ok, 1 not found (404), 2 anything else (usage, no
 * connection, timeout, any other status).
 *
 * Transport: one blocking TCP socket per command (reused between the pages
 * of a scan and the two requests of `stats` while the server keeps it
 * alive); every wait goes through poll() against one deadline per request,
 * so --timeout bounds connect + send + receive together.
 *
 * Response parsing is pure and in place, as the request parser (http.h) is:
 * client_parse_head() reads a status line and header fields and returns
 * slices into the caller's buffer; client_reader wraps it with the body
 * framing (Content-Length, chunked through http_chunked_feed, or until the
 * server closes) and can be fed any split of the bytes.  Strictness: lines
 * end in CRLF; the version is HTTP/1.0 or HTTP/1.1; the status is three
 * digits; header names are tokens with nothing before the colon; no
 * obsolete line folding, no control bytes but HTAB in values; one
 * Content-Length (repeats must be equal), no Content-Length together with
 * Transfer-Encoding, and "chunked" as the only transfer coding.
 *
 * Thread-safety: none needed; the pure functions keep all state in
 * caller-owned structs, and client_main is the whole process.
 */
#ifndef SKV_CLIENT_H
#define SKV_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "http.h"

#define CLIENT_MAX_HEADERS 64
#define CLIENT_MAX_HEAD_BYTES (64 * 1024)      /* status line + header fields */
#define CLIENT_MAX_BODY_BYTES (1024ul << 20)   /* 1 GiB: the most one answer may hold */
#define CLIENT_DEFAULT_ENDPOINT "http://127.0.0.1:8000"

/* ---- command line ------------------------------------------------------ */

/* 1 when name is one of the client's subcommands ("get", "put", "del",
 * "scan", "incr", "stats", "shards"), else 0. */
int client_is_command(const char *name);

/*
 * Runs one client command; argv[0] is the subcommand name.  Writes the
 * answer to stdout and messages to stderr.  Returns the process exit code:
 * 0 success, 1 the server answered 404, 2 usage error, connection or
 * protocol failure, timeout, or any other non-2xx status.
 */
int client_main(int argc, char **argv);

/* ---- pure helpers (unit-tested and fuzzed) ------------------------------ */

typedef struct client_endpoint {
    char host[256];      /* host name or address, IPv6 without brackets */
    char port[6];        /* decimal, "80" when the URL gives none */
    char authority[300]; /* for the Host header: host[:port] as written */
    char base[1024];     /* path prefix, "" or "/x/y" (never a trailing '/') */
} client_endpoint;

/*
 * Parses an endpoint URL: [http://]host[:port][/path].  host is a name, an
 * IPv4 address or a bracketed IPv6 address; a missing scheme means http.
 * Returns 0 and fills *ep, or SKV_EINVAL with *why set to a static English
 * reason (other schemes such as https, user info, query or fragment, a bad
 * or missing port, an empty host, parts longer than the fields above).
 */
int client_endpoint_parse(const char *url, client_endpoint *ep, const char **why);

/* Appends in, percent-encoded, to out: every byte except the unreserved
 * A-Z a-z 0-9 - . _ ~ becomes %XX (upper-case hex).  Safe for a path
 * segment ('/' is encoded) and for a query value ('+', '&', '=' are). */
void client_pct_encode(skv_slice in, skv_buf *out);

/* Parses a timeout: a decimal number of seconds ("10", "2.5") or a number
 * with the unit ms, s or m ("500ms", "1m").  Sets *ms (at least 1).
 * Returns 0, or SKV_EINVAL for anything else, zero, or over 24 hours. */
int client_parse_timeout(const char *s, unsigned *ms);

typedef struct client_header {
    skv_slice name;  /* as received */
    skv_slice value; /* leading and trailing spaces and tabs trimmed */
} client_header;

typedef struct client_response {
    int status;              /* 100..999 */
    int minor_version;       /* 0 or 1 */
    skv_slice reason;        /* may be empty */
    size_t num_headers;
    client_header headers[CLIENT_MAX_HEADERS];
    int64_t content_length;  /* -1 when absent */
    int chunked;             /* Transfer-Encoding: chunked */
    int keep_alive;          /* the connection may carry another request */
} client_response;

/*
 * Parses one response head (status line, header fields, empty line) at
 * buf[0..len).  Returns the head's length (> 0; the body follows), 0 when
 * the head is incomplete (call again with more bytes), SKV_EINVAL when it
 * is malformed (see the strictness rules above), or SKV_ETOOBIG for more
 * than CLIENT_MAX_HEADERS fields or a complete head longer than
 * CLIENT_MAX_HEAD_BYTES.  The slices in *res point into buf.  *res is fully
 * written on a positive return, unspecified otherwise.
 */
int client_parse_head(const char *buf, size_t len, client_response *res);

/* Value of the first header called name (ASCII case-insensitive); a slice
 * with ptr == NULL when absent. */
skv_slice client_header_get(const client_response *res, const char *name);

/*
 * client_reader — one response, fed in pieces of any size.  Interim 1xx
 * responses (but 101) are skipped.  The body is framed by the request
 * method (no body for HEAD) and the status (none for 204 and 304), then
 * by Transfer-Encoding: chunked, then Content-Length, else it lasts until
 * the server closes the connection.
 */
typedef struct client_reader {
    client_response res;  /* valid once the head is complete */
    skv_buf head;         /* the final head's bytes; res's slices point here */
    skv_buf body;         /* the decoded body (NUL-terminated) */
    size_t max_body;
    int head_request;
    int state;            /* private */
    int framing;          /* private */
    uint64_t left;        /* private: Content-Length bytes still to come */
    http_chunked chunked; /* private */
    int fed;              /* private: a byte has been fed */
} client_reader;

/* Starts a reader for the answer to a request; head_request: the request
 * was HEAD.  max_body: most body bytes accepted (SKV_ETOOBIG beyond). */
void client_reader_init(client_reader *r, int head_request, size_t max_body);
void client_reader_free(client_reader *r);

/*
 * Feeds in[0..len).  Sets *consumed to the bytes used (bytes after the end
 * of the response are not used).  Returns 1 when the response is complete,
 * 0 when more bytes are needed, SKV_EINVAL on a malformed or unsupported
 * response (101, bad head, bad chunked framing), SKV_ETOOBIG when the head
 * or body is over its limit.  After an error the reader must not be fed
 * again; after completion further calls consume nothing and return 1.
 */
int client_reader_feed(client_reader *r, const char *in, size_t len, size_t *consumed);

/* The server closed the connection: returns 1 when that completes the
 * response (a body that lasts until the close, or an already complete
 * response), else SKV_EIO (truncated; r->head.len == 0 and no byte fed
 * means the server closed without answering). */
int client_reader_eof(client_reader *r);

/* 1 when at least one byte has been fed to the reader. */
int client_reader_started(const client_reader *r);

#endif
