/*
 * crc32c — CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected), the
 * checksum of log records and snapshots.  Uses the SSE4.2 crc32 instruction
 * when the CPU has it (checked once at run time), else slicing-by-8 tables.
 * crc32c(0, "123456789", 9) == 0xE3069283.  Thread-safe.
 */
#ifndef SKV_CRC32C_H
#define SKV_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc (0 to start) over data[0..len). */
uint32_t crc32c(uint32_t crc, const void *data, size_t len);

/* The table-driven path alone, same contract (for tests: the SSE4.2 path
 * must agree with it). */
uint32_t crc32c_sw(uint32_t crc, const void *data, size_t len);

#endif
