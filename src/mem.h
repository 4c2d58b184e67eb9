/*
 * mem — the out-of-memory policy.
 *
 * Small internal allocations (connection structs, metric tables, ring
 * arrays) go through skv_malloc()/skv_calloc()/skv_realloc()/skv_strdup(),
 * which abort with a log line when memory is exhausted: there is no sane
 * way to continue and every caller would otherwise carry dead error paths.
 *
 * Allocations whose size a client controls (stored keys and values) go
 * through skv_try_malloc(), which returns NULL; callers turn that into
 * SKV_ENOMEM and the client sees a 507.  skv_mem_fail_after() makes the
 * N-th following skv_try_malloc() fail, for fault-injection tests.
 * All functions are thread-safe.
 */
#ifndef SKV_MEM_H
#define SKV_MEM_H

#include <stddef.h>

void *skv_malloc(size_t size);
void *skv_calloc(size_t n, size_t size);
void *skv_realloc(void *ptr, size_t size);
char *skv_strdup(const char *s);
char *skv_strndup(const char *s, size_t n);

/* May return NULL.  Free with free(). */
void *skv_try_malloc(size_t size);

/* Fault injection: the n-th next skv_try_malloc() (1 = the next one) and
 * every later one fail, until called again with n = 0 (never fail). */
void skv_mem_fail_after(long n);

#endif
