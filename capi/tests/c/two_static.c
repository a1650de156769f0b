/* Calls libmcsafe and a Rust static library that contains the mcsafe crate:
 * capi/tests/c.rs expects the static link of this program to FAIL (two copies
 * of mcsafe's routines). Should it ever link, running it must not pass
 * silently either: mcsafe_install then finds two mcsafe notes (-EEXIST). */
#include <stdio.h>

#include <mcsafe.h>

int rust_user_copy(void *dst, const void *src, size_t len);

int main(void) {
    char src[64] = "two copies", dst[64];
    int rc = mcsafe_install();
    printf("mcsafe_install: %d (%s); rust_user_copy: %d\n", rc, mcsafe_strerror(rc),
           rust_user_copy(dst, src, sizeof src));
    return rc == 0 ? 0 : 1;
}
