/* Run with MCSAFE_STRATEGY naming no strategy, or one this CPU cannot run:
 * a configuration error the Rust crate panics on. From C it is -EINVAL from
 * every call, with nothing touched, and the process lives. */
#include "common.h"

int main(void) {
    snprintf(current, sizeof current, "MCSAFE_STRATEGY=\"%s\"", getenv("MCSAFE_STRATEGY"));
    unsigned char a[64], b[64];
    memset(a, 1, sizeof a);
    memset(b, 2, sizeof b);
    uint64_t value = 9;
    uint32_t crc = 9;
    CHECK(mcsafe_copy(b, a, 64, NULL) == -EINVAL, "copy before install");
    CHECK(mcsafe_install() == -EINVAL, "install");
    CHECK(mcsafe_install() == -EINVAL, "install again");
    CHECK(mcsafe_copy(b, a, 64, NULL) == -EINVAL, "copy");
    CHECK(mcsafe_fill(b, 0, 64, NULL) == -EINVAL, "fill");
    CHECK(mcsafe_read_u64(a, &value, NULL) == -EINVAL, "read_u64");
    CHECK(mcsafe_crc32c(0, a, 64, &crc, NULL) == -EINVAL, "crc32c");
    CHECK(b[0] == 2 && b[63] == 2 && value == 9 && crc == 9, "something was written");
    CHECK(strcmp(mcsafe_strategy(), "none") == 0, "strategy %s", mcsafe_strategy());
    CHECK(strstr(mcsafe_strerror(-EINVAL), "MCSAFE_STRATEGY") != NULL, "strerror");
    printf("config: a bad MCSAFE_STRATEGY gives -EINVAL everywhere, %d failures\n", failures);
    return failures ? 1 : 0;
}
