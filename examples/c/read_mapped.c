/* read_mapped: reads a file through a mapping, surviving lost pages.
 *
 * What a C storage engine does with libmcsafe: map the file, copy out of the
 * mapping with mcsafe_copy, and when a page is lost (hardware poison, a page
 * that could not be read in, a mapping past the end of a truncated file),
 * report the lost byte range, read it as zeros, and go on after it. The
 * process lives.
 *
 *   usage: read_mapped FILE [LENGTH]
 *
 * LENGTH (default: the file's size) is how many bytes to map and read; more
 * than the file holds maps pages past its end, as a reader sees a file that
 * was truncated under it. Prints each lost range (file offsets) and a summary
 * with the CRC32C of what was read (lost bytes as zeros). Exit status: 0
 * nothing lost, 1 something lost, 2 error.
 *
 * Build (docs/c.md):
 *   cc -O2 read_mapped.c -o read_mapped $(pkg-config --cflags --libs mcsafe)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mcsafe.h>

#define BLOCK (1u << 20)

/* The lost ranges found so far, merged when adjacent, and reported by
 * report_lost(). */
struct lost_ranges {
    size_t start, len; /* the range being grown */
    size_t total, count;
    int kind;
};

static void flush_lost(struct lost_ranges *lost) {
    if (lost->len == 0) return;
    printf("lost: bytes %zu..%zu (%zu bytes): %s\n", lost->start, lost->start + lost->len,
           lost->len, mcsafe_fault_kind_name(lost->kind));
    lost->total += lost->len;
    lost->count++;
    lost->len = 0;
}

static void report_lost(struct lost_ranges *lost, size_t offset, size_t len, int kind) {
    if (lost->len > 0 && lost->start + lost->len == offset && lost->kind == kind) {
        lost->len += len;
        return;
    }
    flush_lost(lost);
    lost->start = offset;
    lost->len = len;
    lost->kind = kind;
}

/* Copies len bytes at file offset `offset` of the mapping `map` into `out`.
 * Lost granules read as zeros and are reported; the copy goes on after each.
 * Returns 0, or a negative errno other than -EIO (bad arguments, see
 * mcsafe_strerror). Every granule is touched once: after a fault, the next
 * copy starts past the lost granule. */
static int read_skipping_lost(const unsigned char *map, size_t offset, size_t len,
                              unsigned char *out, struct lost_ranges *lost) {
    size_t done = 0;
    while (done < len) {
        struct mcsafe_fault fault;
        int rc = mcsafe_copy(out + done, map + offset + done, len - done, &fault);
        if (rc == 0) return 0;
        if (rc != -EIO) return rc;
        /* out[done, done + copied) is good; the granule that follows is gone.
         * It may start before the byte we stopped at (when it began before
         * this copy's source), so skip to its end. */
        size_t at = done + fault.copied;
        uintptr_t granule_end = (fault.addr & ~(uintptr_t)(fault.granule - 1)) + fault.granule;
        size_t skip = granule_end - (uintptr_t)(map + offset + at);
        if (skip > len - at) skip = len - at;
        memset(out + at, 0, skip);
        report_lost(lost, offset + at, skip, fault.kind);
        done = at + skip;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s FILE [LENGTH]\n", argv[0]);
        return 2;
    }
    int rc = mcsafe_install();
    if (rc != 0) {
        /* -ENOTSUP (other targets: plain copies) and the rest: say so. */
        fprintf(stderr, "read_mapped: mcsafe_install: %s\n", mcsafe_strerror(rc));
        if (rc != -ENOTSUP) return 2;
    }
    int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        perror(argv[1]);
        return 2;
    }
    size_t len = argc == 3 ? (size_t)strtoull(argv[2], NULL, 0) : (size_t)st.st_size;
    if (len == 0) {
        printf("read 0 bytes\n");
        return 0;
    }
    const unsigned char *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    close(fd);

    unsigned char *buf = malloc(BLOCK);
    if (!buf) return 2;
    struct lost_ranges lost = {0, 0, 0, 0, 0};
    uint32_t crc = 0;
    for (size_t offset = 0; offset < len; offset += BLOCK) {
        size_t n = len - offset < BLOCK ? len - offset : BLOCK;
        rc = read_skipping_lost(map, offset, n, buf, &lost);
        if (rc != 0) {
            fprintf(stderr, "read_mapped: %s\n", mcsafe_strerror(rc));
            return 2;
        }
        /* ... hand buf[0, n) to the engine; here, checksum it. */
        mcsafe_crc32c(crc, buf, n, &crc, NULL);
    }
    flush_lost(&lost);
    printf("read %zu bytes, lost %zu bytes in %zu ranges, crc32c 0x%08x (strategy %s)\n", len,
           lost.total, lost.count, crc, mcsafe_strategy());
    return lost.total ? 1 : 0;
}
