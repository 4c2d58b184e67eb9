/*
 * err — the one error model of shardkv.
 *
 * Every function that can fail returns 0 (SKV_OK) or a negative code from
 * the table below; never errno, never -1.  skv_strerror() gives a human
 * message, skv_errname() the stable symbolic name ("ENOTFOUND") that also
 * appears in logs.  A function that returns an error never also invokes a
 * callback it was given.
 */
#ifndef SKV_ERR_H
#define SKV_ERR_H

#define SKV_ERRNO_MAP(X)                                        \
    X(NOMEM,    -1, "out of memory")                            \
    X(INVAL,    -2, "invalid argument")                         \
    X(NOTFOUND, -3, "not found")                                \
    X(EXISTS,   -4, "already exists")                           \
    X(PRECOND,  -5, "precondition failed")                      \
    X(TOOBIG,   -6, "too large")                                \
    X(IO,       -7, "input/output error")                       \
    X(RANGE,    -8, "value out of range")                       \
    X(AGAIN,    -9, "try again")                                \
    X(NOSPACE, -10, "no space left")                            \
    X(STATE,   -11, "operation not allowed in the current state") \
    X(SYS,     -12, "system call failed")

enum {
    SKV_OK = 0,
#define SKV__ERR_ENUM(name, code, msg) SKV_E##name = (code),
    SKV_ERRNO_MAP(SKV__ERR_ENUM)
#undef SKV__ERR_ENUM
};

/* Message for an error code; never NULL, static storage. */
const char *skv_strerror(int err);
/* Symbolic name ("ENOTFOUND") for an error code; never NULL, static storage. */
const char *skv_errname(int err);

#endif
