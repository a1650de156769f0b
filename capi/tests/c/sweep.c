/* The truncated-memfd sweep of mcsafe_copy: for each side, length, alignment
 * and position of the lost page, the exact prefix, the fault's fields, bytes
 * past len untouched, and one signal per faulting call (mcsafe's counter),
 * none of them reaching the program's own SIGBUS handler, installed first. */
#include "common.h"

#define VALID_PAGES 80
/* Enough lost pages that every range of the sweep (up to 300000 bytes from the
 * boundary) lies inside the mapping: past its end, qemu-user places the next
 * mapping (the heap buffer), and the two ranges would overlap. */
#define LOST_PAGES 76
#define CANARY 0xa5

static volatile sig_atomic_t foreign;

/* A copy fault must never get here: count it, then let the next fault kill
 * the process (the faulting instruction repeats). */
static void own_handler(int sig, siginfo_t *info, void *context) {
    (void)info; (void)context;
    foreign++;
    signal(sig, SIG_DFL);
}

static const size_t lengths[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65,
    127, 128, 129, 255, 256, 257, 511, 512, 513, 1023, 1024, 1025, 2047, 2048, 2049, 4095,
    4096, 4097, 8191, 8192, 8193, 16384, 65536, 65537, 200000, 300000};
/* Bytes before the lost page at which a buffer starts. */
static const size_t befores[] = {0, 1, 2, 3, 7, 8, 15, 16, 31, 32, 33, 63, 64, 65, 100, 127,
    128, 255, 256, 1000, 4095, 4096, 4097, 8191, 8192, 12345, 65536, 100000, 250000};
static const size_t aligns[] = {0, 1, 13, 32};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static size_t cases, faults;

static void one(struct lost_tail *t, unsigned char *heap, int side, size_t len, size_t before,
                size_t align) {
    unsigned char *mapped = t->boundary - before;
    unsigned char *buf = heap + align;
    unsigned char *dst = side == MCSAFE_SIDE_SOURCE ? buf : mapped;
    const unsigned char *src = side == MCSAFE_SIDE_SOURCE ? mapped : buf;
    size_t expect = before < len ? before : len; /* bytes that can be copied */
    int faulting = before < len;
    uint64_t seed = (uint64_t)(len * 31 + before * 7 + align);

    /* The heap side: source pattern or destination canaries. */
    if (side == MCSAFE_SIDE_SOURCE) {
        memset(heap, CANARY, align + len + 64);
    } else {
        for (size_t i = 0; i < len; i++) buf[i] = pattern(seed, i);
        memset(mapped - (before + 16 <= t->valid ? 16 : 0), CANARY,
               expect + (before + 16 <= t->valid ? 16 : 0));
    }
    struct mcsafe_fault fault;
    memset(&fault, 0xee, sizeof fault);
    struct mcsafe_fault untouched = fault;
    uint64_t signals = recovered_now();
    int rc = mcsafe_copy(dst, src, len, &fault);
    signals = recovered_now() - signals;
    cases++;

    snprintf(current, sizeof current, "%s side, len %zu, %zu bytes before the lost page, align %zu",
             side == MCSAFE_SIDE_SOURCE ? "source" : "destination", len, before, align);
    if (faulting) {
        faults++;
        CHECK(rc == -EIO, "rc %d", rc);
        CHECK(fault.copied == before, "copied %zu", fault.copied);
        CHECK(fault.side == side, "side %d", fault.side);
        CHECK(fault.kind == MCSAFE_KIND_ADDRESS_ERROR, "kind %d", fault.kind);
        CHECK(fault.si_code == BUS_ADRERR, "si_code %d", fault.si_code);
        CHECK(fault.granule == PAGE, "granule %zu", fault.granule);
        CHECK((fault.addr & ~(uintptr_t)(fault.granule - 1)) == (uintptr_t)t->boundary,
              "addr %#jx, boundary %p", (uintmax_t)fault.addr, (void *)t->boundary);
        CHECK(signals == 1, "%ju signals", (uintmax_t)signals);
    } else {
        CHECK(rc == 0, "rc %d", rc);
        CHECK(memcmp(&fault, &untouched, sizeof fault) == 0, "fault written on success");
        CHECK(signals == 0, "%ju signals", (uintmax_t)signals);
    }
    /* The exact prefix. */
    CHECK(memcmp(dst, src, expect) == 0, "prefix differs");
    /* Nothing written past len (the heap destination has canaries there), nor
     * before the mapped destination. */
    if (side == MCSAFE_SIDE_SOURCE) {
        for (size_t i = 0; i < 64; i++)
            CHECK(buf[len + i] == CANARY, "byte %zu past len written", i);
        for (size_t i = 0; i < align; i++)
            CHECK(heap[i] == CANARY, "byte before dst written");
    } else if (before + 16 <= t->valid) {
        for (size_t i = 1; i <= 16; i++)
            CHECK(mapped[-(ptrdiff_t)i] == CANARY, "byte before dst written");
    }
}

int main(void) {
    struct sigaction own;
    memset(&own, 0, sizeof own);
    own.sa_sigaction = own_handler;
    own.sa_flags = SA_SIGINFO;
    sigemptyset(&own.sa_mask);
    if (sigaction(SIGBUS, &own, NULL) != 0) { perror("sigaction"); return 2; }
    int rc = mcsafe_install();
    if (rc != 0) { fprintf(stderr, "mcsafe_install: %s\n", mcsafe_strerror(rc)); return 2; }

    struct lost_tail t = lost_tail(VALID_PAGES, LOST_PAGES, 1);
    unsigned char *heap = malloc(300000 + 256);
    if (!heap) return 2;
    for (int side = MCSAFE_SIDE_SOURCE; side <= MCSAFE_SIDE_DESTINATION; side++)
        for (size_t l = 0; l < COUNT(lengths); l++)
            for (size_t b = 0; b < COUNT(befores); b++)
                for (size_t a = 0; a < COUNT(aligns); a++)
                    one(&t, heap, side, lengths[l], befores[b], aligns[a]);
    CHECK(foreign == 0, "%d copy faults reached the program's own handler", (int)foreign);
    const char *forced = getenv("MCSAFE_STRATEGY");
    if (forced)
        CHECK(strcmp(mcsafe_strategy(), forced) == 0, "strategy %s, MCSAFE_STRATEGY %s",
              mcsafe_strategy(), forced);
    printf("sweep: %zu cases, %zu faults recovered exactly, strategy %s, %d failures\n", cases,
           faults, mcsafe_strategy(), failures);
    return failures ? 1 : 0;
}
