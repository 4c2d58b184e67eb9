#include "mem.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_long fail_countdown; /* 0 = never fail */

static void oom(size_t size) {
    char msg[96];
    int n = snprintf(msg, sizeof msg, "shardkv: out of memory allocating %zu bytes, aborting\n", size);
    if (n > 0 && write(2, msg, (size_t)n) < 0) { /* nothing more to do */ }
    abort();
}

void *skv_malloc(size_t size) {
    void *p = malloc(size ? size : 1);
    if (!p) oom(size);
    return p;
}

void *skv_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size);
    return p;
}

void *skv_realloc(void *ptr, size_t size) {
    void *p = realloc(ptr, size ? size : 1);
    if (!p) oom(size);
    return p;
}

char *skv_strndup(const char *s, size_t n) {
    char *p = skv_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *skv_strdup(const char *s) { return skv_strndup(s, strlen(s)); }

void *skv_try_malloc(size_t size) {
    long c = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    if (c > 0) {
        if (c == 1) return NULL; /* stays at 1: every later call fails too */
        atomic_fetch_sub_explicit(&fail_countdown, 1, memory_order_relaxed);
    }
    return malloc(size ? size : 1);
}

void skv_mem_fail_after(long n) { atomic_store(&fail_countdown, n < 0 ? 0 : n); }
