/* The installed header alone, as strict C99: gcc -std=c99 -Wall -Wextra
 * -Werror -pedantic. Uses every declaration once. */
#include <mcsafe.h>

#include <stdio.h>

int main(void) {
    struct mcsafe_fault fault = {0, 0, 0, MCSAFE_SIDE_SOURCE, MCSAFE_KIND_POISON, 0};
    struct mcsafe_stats stats;
    char src[16] = "fifteen bytes..", dst[16];
    uint64_t word;
    uint32_t crc;
    int rc = mcsafe_install();
    rc |= mcsafe_copy(dst, src, sizeof src, &fault);
    rc |= mcsafe_fill(dst, 0, sizeof dst, &fault);
    rc |= mcsafe_read_u64(src, &word, &fault);
    rc |= mcsafe_crc32c(0, src, sizeof src, &crc, &fault);
    rc |= mcsafe_get_stats(&stats);
    printf("%s %s %s %s %d %d %d\n", mcsafe_version(), mcsafe_strategy(), mcsafe_strerror(rc),
           mcsafe_fault_kind_name(MCSAFE_KIND_ADDRESS_ERROR), MCSAFE_SIDE_DESTINATION,
           MCSAFE_KIND_OBJECT_ERROR, fault.side);
    return rc != 0;
}
