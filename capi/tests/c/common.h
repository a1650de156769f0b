/* Helpers of the C tests (capi/tests/c.rs compiles and runs them). */
#ifndef MCSAFE_TEST_COMMON_H
#define MCSAFE_TEST_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <mcsafe.h>

#define PAGE 4096

static int failures;
/* What the current case is, printed with each failed check. */
static char current[200];

/* Reports a failed check with its location and goes on; main() exits 1. */
#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (!(cond)) {                                                          \
            if (failures++ < 20) {                                              \
                fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, \
                        #cond);                                                 \
                fprintf(stderr, __VA_ARGS__);                                   \
                fprintf(stderr, " (%s)\n", current);                            \
            }                                                                   \
        }                                                                       \
    } while (0)

/* Deterministic bytes: neighbours differ, so a shifted copy is caught. */
static inline unsigned char pattern(uint64_t seed, size_t i) {
    uint64_t x = (uint64_t)i + seed * 0x9e3779b97f4a7c15ull;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 29;
    return (unsigned char)x;
}

/* A shared memfd mapping of valid + lost pages whose last `lost` pages lie
 * past the end of the file: touching them raises SIGBUS BUS_ADRERR. */
struct lost_tail {
    unsigned char *base;
    unsigned char *boundary; /* first lost byte */
    size_t valid, len;
};

static inline struct lost_tail lost_tail(size_t valid_pages, size_t lost_pages, uint64_t seed) {
    struct lost_tail t;
    int fd = memfd_create("mcsafe-c-test", 0);
    if (fd < 0) { perror("memfd_create"); exit(2); }
    t.valid = valid_pages * PAGE;
    t.len = (valid_pages + lost_pages) * PAGE;
    if (ftruncate(fd, (off_t)t.len) != 0) { perror("ftruncate"); exit(2); }
    t.base = mmap(NULL, t.len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (t.base == MAP_FAILED) { perror("mmap"); exit(2); }
    for (size_t i = 0; i < t.len; i++) t.base[i] = pattern(seed, i);
    if (ftruncate(fd, (off_t)t.valid) != 0) { perror("ftruncate"); exit(2); }
    close(fd);
    t.boundary = t.base + t.valid;
    return t;
}

static inline uint64_t recovered_now(void) {
    struct mcsafe_stats s;
    if (mcsafe_get_stats(&s) != 0) { fprintf(stderr, "mcsafe_get_stats failed\n"); exit(2); }
    return s.recovered;
}

/* Bitwise CRC32C (reflected polynomial 0x82f63b78): the reference. */
static inline uint32_t crc32c_ref(uint32_t crc, const unsigned char *p, size_t len) {
    crc = ~crc;
    while (len--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
    }
    return ~crc;
}

#endif
