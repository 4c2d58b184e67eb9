/*
 * crc32c — CRC-32C (Castagnoli), reflected polynomial 0x82F63B78, initial
 * value and final xor 0xFFFFFFFF (hidden behind crc32c()'s "0 to start").
 *
 * Two implementations of the same update step:
 *   - hw_update: the SSE4.2 crc32 instruction, 8 bytes at a time; compiled
 *     with a per-function target attribute so the rest of the program stays
 *     baseline x86-64, and used only when the CPU reports SSE4.2;
 *   - sw_update: slicing-by-8 over eight 256-entry tables built at first use.
 *
 * The choice is made once, under pthread_once, and published in crc_impl
 * with release/acquire atomics: after the first call every call is one
 * atomic load plus an indirect call.  The tables are filled inside the same
 * pthread_once, so crc32c_sw() can never see them half built.
 */
#include "crc32c.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#define CRC32C_POLY_REFLECTED 0x82F63B78u

typedef uint32_t (*crc_update_fn)(uint32_t crc, const unsigned char *p, size_t len);

static uint32_t crc_table[8][256];
static crc_update_fn crc_impl; /* NULL until crc_init has run; atomic access only */
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

/* ---- software: slicing-by-8 ---------------------------------------------------------------- */

static void build_tables(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int bit = 0; bit < 8; bit++) c = (c >> 1) ^ (CRC32C_POLY_REFLECTED & (0u - (c & 1u)));
        crc_table[0][i] = c;
    }
    /* crc_table[k][i] = the CRC state after byte i followed by k zero bytes. */
    for (int k = 1; k < 8; k++)
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t prev = crc_table[k - 1][i];
            crc_table[k][i] = (prev >> 8) ^ crc_table[0][prev & 0xffu];
        }
}

static uint32_t load_le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* crc is the raw (already inverted) register. */
static uint32_t sw_update(uint32_t crc, const unsigned char *p, size_t len) {
    while (len >= 8) {
        uint32_t lo = crc ^ load_le32(p);
        uint32_t hi = load_le32(p + 4);
        crc = crc_table[7][lo & 0xffu] ^ crc_table[6][(lo >> 8) & 0xffu] ^
              crc_table[5][(lo >> 16) & 0xffu] ^ crc_table[4][lo >> 24] ^
              crc_table[3][hi & 0xffu] ^ crc_table[2][(hi >> 8) & 0xffu] ^
              crc_table[1][(hi >> 16) & 0xffu] ^ crc_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len > 0) {
        crc = (crc >> 8) ^ crc_table[0][(crc ^ *p) & 0xffu];
        p++;
        len--;
    }
    return crc;
}

/* ---- hardware: SSE4.2 crc32 instruction ----------------------------------------------------- */

#if defined(__x86_64__)
#define CRC32C_HAVE_HW 1

__attribute__((target("sse4.2"))) static uint32_t hw_update(uint32_t crc, const unsigned char *p,
                                                             size_t len) {
    /* Align to 8 so the 8-byte loads in the main loop never straddle lines needlessly. */
    while (len > 0 && ((uintptr_t)p & 7u) != 0) {
        crc = __builtin_ia32_crc32qi(crc, *p);
        p++;
        len--;
    }
    unsigned long long c = crc;
    while (len >= 8) {
        unsigned long long v;
        memcpy(&v, p, 8); /* x86 is little-endian: the byte order the instruction expects */
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        len -= 8;
    }
    crc = (uint32_t)c;
    if (len >= 4) {
        unsigned int v;
        memcpy(&v, p, 4);
        crc = __builtin_ia32_crc32si(crc, v);
        p += 4;
        len -= 4;
    }
    while (len > 0) {
        crc = __builtin_ia32_crc32qi(crc, *p);
        p++;
        len--;
    }
    return crc;
}
#else
#define CRC32C_HAVE_HW 0
#endif

/* ---- dispatch ------------------------------------------------------------------------------- */

static void crc_init(void) {
    build_tables();
    crc_update_fn chosen = sw_update;
#if CRC32C_HAVE_HW
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2")) chosen = hw_update;
#endif
    __atomic_store_n(&crc_impl, chosen, __ATOMIC_RELEASE);
}

uint32_t crc32c(uint32_t crc, const void *data, size_t len) {
    crc_update_fn fn = __atomic_load_n(&crc_impl, __ATOMIC_ACQUIRE);
    if (fn == NULL) {
        pthread_once(&crc_once, crc_init);
        fn = __atomic_load_n(&crc_impl, __ATOMIC_ACQUIRE);
    }
    return ~fn(~crc, data, len);
}

uint32_t crc32c_sw(uint32_t crc, const void *data, size_t len) {
    pthread_once(&crc_once, crc_init);
    return ~sw_update(~crc, data, len);
}
