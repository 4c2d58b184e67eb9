#include "assets.h"

#include <string.h>

static int cmp_path(skv_slice a, const char *b) {
    size_t blen = strlen(b);
    size_t n = a.len < blen ? a.len : blen;
    int c = n ? memcmp(a.ptr, b, n) : 0;
    if (c) return c;
    return a.len < blen ? -1 : a.len > blen;
}

const asset *assets_find(skv_slice path) {
    size_t lo = 0, hi = assets_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_path(path, assets_table[mid].path);
        if (c == 0) return &assets_table[mid];
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}
