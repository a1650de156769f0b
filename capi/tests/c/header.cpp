// The installed header from C++: g++ -std=c++17 -Wall -Wextra -Werror
// -pedantic, linked like a C++ engine would (extern "C" names, no mangling).
#include <mcsafe.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <type_traits>
#include <vector>

static_assert(std::is_standard_layout<mcsafe_fault>::value, "a C struct");
static_assert(std::is_trivially_copyable<mcsafe_stats>::value, "a C struct");

int main() {
    std::vector<unsigned char> src(4096, 7), dst(4096);
    mcsafe_fault fault{};
    int rc = mcsafe_install();
    rc |= mcsafe_copy(dst.data(), src.data(), src.size(), &fault);
    std::uint32_t crc = 0;
    rc |= mcsafe_crc32c(0, "123456789", 9, &crc, nullptr);
    if (rc != 0 || dst != src || crc != 0xe3069283u) {
        std::fprintf(stderr, "header.cpp: %s\n", mcsafe_strerror(rc));
        return 1;
    }
    std::printf("header.cpp: mcsafe %s (%s) from C++\n", mcsafe_version(), mcsafe_strategy());
    return 0;
}
