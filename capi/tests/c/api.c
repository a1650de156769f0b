/* mcsafe_fill, mcsafe_read_u64 and mcsafe_crc32c, with and without a lost
 * page; -EINVAL for every kind of bad input, with nothing touched; the
 * strings and the counters. */
#include "common.h"

#define FILLER 0x5a

static void fill_tests(void) {
    struct lost_tail t = lost_tail(4, 2, 2);
    static const size_t befores[] = {0, 1, 63, 64, 100, 4095, 4096, 5000, 12287};
    for (size_t b = 0; b < sizeof befores / sizeof befores[0]; b++) {
        size_t before = befores[b];
        for (size_t extra = 1; extra <= 9000; extra = extra * 3 + 1) {
            size_t len = before + extra;
            snprintf(current, sizeof current, "fill, len %zu, %zu bytes before the lost page", len, before);
            unsigned char *dst = t.boundary - before;
            memset(t.base, FILLER, t.valid);
            struct mcsafe_fault fault;
            uint64_t signals = recovered_now();
            int rc = mcsafe_fill(dst, 0x1ab, len, &fault); /* (unsigned char)0x1ab == 0xab */
            signals = recovered_now() - signals;
            CHECK(rc == -EIO, "rc %d", rc);
            CHECK(fault.copied == before, "copied %zu", fault.copied);
            CHECK(fault.side == MCSAFE_SIDE_DESTINATION, "side %d", fault.side);
            CHECK(fault.kind == MCSAFE_KIND_ADDRESS_ERROR, "kind %d", fault.kind);
            CHECK((fault.addr & ~(uintptr_t)4095) == (uintptr_t)t.boundary, "addr %#jx",
                  (uintmax_t)fault.addr);
            CHECK(signals == 1, "%ju signals", (uintmax_t)signals);
            for (size_t i = 0; i < before; i++)
                if (dst[i] != 0xab) { CHECK(0, "byte %zu not filled", i); break; }
            if (dst > t.base) CHECK(dst[-1] == FILLER, "byte before dst written");
        }
    }
    unsigned char buf[100];
    memset(buf, 0, sizeof buf);
    snprintf(current, sizeof current, "fill without a fault");
    CHECK(mcsafe_fill(buf + 1, 7, 98, NULL) == 0, "rc");
    CHECK(buf[0] == 0 && buf[1] == 7 && buf[98] == 7 && buf[99] == 0, "bytes");
}

static void read_u64_tests(void) {
    struct lost_tail t = lost_tail(1, 1, 3);
    unsigned char bytes[16];
    for (int i = 0; i < 16; i++) bytes[i] = (unsigned char)(i + 1);
    uint64_t value = 0, expect;
    snprintf(current, sizeof current, "read_u64 unaligned");
    memcpy(&expect, bytes + 3, 8);
    CHECK(mcsafe_read_u64(bytes + 3, &value, NULL) == 0 && value == expect, "value %#jx",
          (uintmax_t)value);
    /* Straddling the lost page: copied is the bytes before it; in it: 0. */
    for (size_t before = 0; before <= 8; before++) {
        snprintf(current, sizeof current, "read_u64, %zu bytes before the lost page", before);
        struct mcsafe_fault fault;
        value = 0x1234;
        uint64_t signals = recovered_now();
        int rc = mcsafe_read_u64(t.boundary - before, &value, &fault);
        signals = recovered_now() - signals;
        if (before == 8) {
            memcpy(&expect, t.boundary - 8, 8);
            CHECK(rc == 0 && value == expect && signals == 0, "rc %d", rc);
            continue;
        }
        CHECK(rc == -EIO, "rc %d", rc);
        CHECK(value == 0x1234, "value written on a fault");
        CHECK(fault.copied == before && fault.side == MCSAFE_SIDE_SOURCE, "copied %zu side %d",
              fault.copied, fault.side);
        CHECK(signals == 1, "%ju signals", (uintmax_t)signals);
    }
}

static uint32_t crc_of(const void *p, size_t len) {
    uint32_t out = 0;
    int rc = mcsafe_crc32c(0, p, len, &out, NULL);
    CHECK(rc == 0, "rc %d", rc);
    return out;
}

static void crc32c_tests(void) {
    /* RFC 3720 (iSCSI) appendix B.4, and the standard check value. */
    unsigned char v[48];
    snprintf(current, sizeof current, "crc32c RFC 3720 vectors");
    memset(v, 0, 32);
    CHECK(crc_of(v, 32) == 0x8a9136aa, "32 zeros: %#x", crc_of(v, 32));
    memset(v, 0xff, 32);
    CHECK(crc_of(v, 32) == 0x62a8ab43, "32 0xff: %#x", crc_of(v, 32));
    for (int i = 0; i < 32; i++) v[i] = (unsigned char)i;
    CHECK(crc_of(v, 32) == 0x46dd794e, "ascending: %#x", crc_of(v, 32));
    for (int i = 0; i < 32; i++) v[i] = (unsigned char)(31 - i);
    CHECK(crc_of(v, 32) == 0x113fdb5c, "descending: %#x", crc_of(v, 32));
    static const unsigned char pdu[48] = {
        0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14,
        0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    CHECK(crc_of(pdu, 48) == 0xd9963a56, "iSCSI read PDU: %#x", crc_of(pdu, 48));
    CHECK(crc_of("123456789", 9) == 0xe3069283, "check value: %#x", crc_of("123456789", 9));
    /* Continuing a CRC: two pieces give the CRC of the whole. */
    uint32_t first = 0, both = 0;
    CHECK(mcsafe_crc32c(0, "1234", 4, &first, NULL) == 0, "first piece");
    CHECK(mcsafe_crc32c(first, "56789", 5, &both, NULL) == 0 && both == 0xe3069283,
          "continued: %#x", both);
    uint32_t same = 0;
    CHECK(mcsafe_crc32c(0x1234, NULL, 0, &same, NULL) == 0 && same == 0x1234, "len 0");

    /* Across a lost page: the CRC of exactly the bytes before it. */
    struct lost_tail t = lost_tail(3, 1, 4);
    static const size_t befores[] = {0, 1, 7, 8, 9, 63, 64, 100, 4095, 4096, 4097, 12288};
    for (size_t b = 0; b < sizeof befores / sizeof befores[0]; b++) {
        size_t before = befores[b];
        for (size_t extra = 1; extra <= 4096; extra *= 4) {
            snprintf(current, sizeof current, "crc32c, %zu bytes before the lost page, len %zu",
                     before, before + extra);
            const unsigned char *src = t.boundary - before;
            struct mcsafe_fault fault;
            uint32_t out = 0;
            uint64_t signals = recovered_now();
            int rc = mcsafe_crc32c(0xfeed, src, before + extra, &out, &fault);
            signals = recovered_now() - signals;
            CHECK(rc == -EIO, "rc %d", rc);
            CHECK(fault.copied == before, "copied %zu", fault.copied);
            CHECK(fault.side == MCSAFE_SIDE_SOURCE, "side %d", fault.side);
            CHECK(out == crc32c_ref(0xfeed, src, before), "crc %#x, expected %#x", out,
                  crc32c_ref(0xfeed, src, before));
            CHECK(signals == 1, "%ju signals", (uintmax_t)signals);
        }
    }
}

/* Bad input: -EINVAL, and nothing read or written (the buffers, *fault,
 * *value and *out keep their bytes). */
static void invalid_input_tests(void) {
    unsigned char a[64], b[64], a0[64], b0[64];
    memset(a, 1, sizeof a);
    memset(b, 2, sizeof b);
    memcpy(a0, a, 64);
    memcpy(b0, b, 64);
    struct mcsafe_fault fault, fault0;
    memset(&fault, 0xee, sizeof fault);
    fault0 = fault;
    uint64_t value = 77;
    uint32_t out = 88;
    void *top = (void *)((uintptr_t)1 << 62);
    void *last = (void *)(uintptr_t)-16;
    const size_t huge = (size_t)1 << 62;
    struct { const char *what; int rc; } cases[] = {
        {"copy: NULL dst", mcsafe_copy(NULL, b, 1, &fault)},
        {"copy: NULL src", mcsafe_copy(a, NULL, 1, &fault)},
        {"copy: src wraps", mcsafe_copy(a, last, 64, &fault)},
        {"copy: dst wraps", mcsafe_copy(last, b, 64, &fault)},
        {"copy: src leaves user space", mcsafe_copy(a, top, 1, &fault)},
        {"copy: len past user space", mcsafe_copy(a, b, huge, &fault)},
        {"copy: SIZE_MAX", mcsafe_copy(a, b, SIZE_MAX, &fault)},
        {"copy: same buffer", mcsafe_copy(a, a, 64, &fault)},
        {"copy: dst overlaps src's end", mcsafe_copy(a + 8, a, 16, &fault)},
        {"copy: src overlaps dst's end", mcsafe_copy(a, a + 15, 16, &fault)},
        {"fill: NULL", mcsafe_fill(NULL, 0, 1, &fault)},
        {"fill: wraps", mcsafe_fill(last, 0, 64, &fault)},
        {"fill: leaves user space", mcsafe_fill(top, 0, 1, &fault)},
        {"read_u64: NULL src", mcsafe_read_u64(NULL, &value, &fault)},
        {"read_u64: NULL value", mcsafe_read_u64(b, NULL, &fault)},
        {"read_u64: wraps", mcsafe_read_u64((void *)(uintptr_t)-4, &value, &fault)},
        {"crc32c: NULL out", mcsafe_crc32c(0, b, 8, NULL, &fault)},
        {"crc32c: NULL out, len 0", mcsafe_crc32c(0, b, 0, NULL, &fault)},
        {"crc32c: NULL src", mcsafe_crc32c(0, NULL, 8, &out, &fault)},
        {"crc32c: wraps", mcsafe_crc32c(0, last, 64, &out, &fault)},
        {"get_stats: NULL", mcsafe_get_stats(NULL)},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(current, sizeof current, "%s", cases[i].what);
        CHECK(cases[i].rc == -EINVAL, "rc %d", cases[i].rc);
    }
    snprintf(current, sizeof current, "after the bad input");
    CHECK(memcmp(a, a0, 64) == 0 && memcmp(b, b0, 64) == 0, "a buffer was written");
    CHECK(memcmp(&fault, &fault0, sizeof fault) == 0, "*fault was written");
    CHECK(value == 77 && out == 88, "an output was written");
    /* len 0 reads no pointer, even NULL or wild ones. */
    snprintf(current, sizeof current, "len 0");
    CHECK(mcsafe_copy(NULL, NULL, 0, NULL) == 0, "copy");
    CHECK(mcsafe_copy(last, top, 0, NULL) == 0, "copy, wild pointers");
    CHECK(mcsafe_fill(NULL, 0, 0, NULL) == 0, "fill");
    /* Adjacent buffers do not overlap. */
    snprintf(current, sizeof current, "adjacent buffers");
    CHECK(mcsafe_copy(a, a + 32, 32, NULL) == 0 && mcsafe_copy(a + 32, a, 32, NULL) == 0, "rc");
}

static void string_tests(void) {
    snprintf(current, sizeof current, "strings");
    CHECK(strcmp(mcsafe_version(), MCSAFE_TEST_VERSION) == 0, "version %s", mcsafe_version());
    const char *s = mcsafe_strategy();
    CHECK(!strcmp(s, "fragile") || !strcmp(s, "rep_movsb") || !strcmp(s, "avx2") ||
              !strcmp(s, "avx512") || !strcmp(s, "advsimd"), "strategy %s", s);
    const char *d = mcsafe_dispatch();
    CHECK(strstr(d, s) != NULL && strstr(d, "non-temporal stores from") != NULL &&
              strstr(d, "MCSAFE_TUNABLES") != NULL, "dispatch %s", d);
    CHECK(strstr(mcsafe_strerror(-EIO), "lost") != NULL, "%s", mcsafe_strerror(-EIO));
    CHECK(strstr(mcsafe_strerror(EINVAL), "invalid") != NULL, "%s", mcsafe_strerror(EINVAL));
    CHECK(strstr(mcsafe_strerror(-EEXIST), "another copy") != NULL, "%s", mcsafe_strerror(-EEXIST));
    CHECK(strstr(mcsafe_strerror(-ENOTSUP), "target") != NULL, "%s", mcsafe_strerror(-ENOTSUP));
    CHECK(strstr(mcsafe_strerror(12345), "not an mcsafe") != NULL, "%s", mcsafe_strerror(12345));
    CHECK(strstr(mcsafe_strerror(INT_MIN), "not an mcsafe") != NULL, "INT_MIN");
    CHECK(strstr(mcsafe_fault_kind_name(MCSAFE_KIND_POISON), "BUS_MCEERR_AR") != NULL, "poison");
    CHECK(strstr(mcsafe_fault_kind_name(MCSAFE_KIND_ADDRESS_ERROR), "BUS_ADRERR") != NULL, "adrerr");
    CHECK(strstr(mcsafe_fault_kind_name(MCSAFE_KIND_OBJECT_ERROR), "BUS_OBJERR") != NULL, "objerr");
    CHECK(strcmp(mcsafe_fault_kind_name(0), "unknown") == 0, "kind 0");
}

int main(void) {
    int rc = mcsafe_install();
    if (rc != 0) { fprintf(stderr, "mcsafe_install: %s\n", mcsafe_strerror(rc)); return 2; }
    CHECK(mcsafe_install() == 0, "a second mcsafe_install");
    fill_tests();
    read_u64_tests();
    crc32c_tests();
    invalid_input_tests();
    string_tests();
    printf("api: fill, read_u64, crc32c, invalid input and strings checked, %d failures\n",
           failures);
    return failures ? 1 : 0;
}
