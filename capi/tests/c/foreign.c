/* A program that installed its own SIGBUS handler before mcsafe_install still
 * gets its own faults: a real fault outside mcsafe (a load from a lost page),
 * a signal sent with kill(2), one queued with sigqueue(3) carrying a value.
 * Copy faults never reach it. */
#include "common.h"

#include <setjmp.h>

static sigjmp_buf back;
static volatile sig_atomic_t calls;
static volatile int last_code;
static void *volatile last_addr;
static volatile int last_value;

static void own_handler(int sig, siginfo_t *info, void *context) {
    (void)sig; (void)context;
    calls++;
    last_code = info->si_code;
    last_addr = info->si_addr;
    last_value = info->si_value.sival_int;
    /* A real fault would repeat if we returned: jump back instead. */
    if (info->si_code > 0) siglongjmp(back, 1);
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
    struct mcsafe_stats before, after;
    mcsafe_get_stats(&before);

    struct lost_tail t = lost_tail(1, 1, 5);
    /* 1. A real fault outside mcsafe: ours, with the kernel's siginfo. */
    snprintf(current, sizeof current, "a load from a lost page, outside mcsafe");
    if (sigsetjmp(back, 1) == 0) {
        volatile unsigned char *p = t.boundary + 123;
        (void)*p;
        CHECK(0, "the load did not fault");
    }
    CHECK(calls == 1, "%d calls", (int)calls);
    CHECK(last_code == BUS_ADRERR, "si_code %d", last_code);
    CHECK(last_addr == (void *)(t.boundary + 123), "si_addr %p", last_addr);

    /* 2. A copy fault: recovered by mcsafe, our handler not called. */
    snprintf(current, sizeof current, "a copy fault");
    unsigned char buf[2 * PAGE];
    struct mcsafe_fault fault;
    rc = mcsafe_copy(buf, t.base, 2 * PAGE, &fault);
    CHECK(rc == -EIO && fault.copied == PAGE, "rc %d copied %zu", rc, fault.copied);
    CHECK(calls == 1, "the copy fault reached the program's handler");

    /* 3. kill(2) and sigqueue(3): sent signals are the program's. */
    snprintf(current, sizeof current, "kill(getpid(), SIGBUS)");
    kill(getpid(), SIGBUS);
    CHECK(calls == 2 && last_code == SI_USER, "%d calls, si_code %d", (int)calls, last_code);
    snprintf(current, sizeof current, "sigqueue(getpid(), SIGBUS, 4242)");
    union sigval value = {.sival_int = 4242};
    sigqueue(getpid(), SIGBUS, value);
    CHECK(calls == 3 && last_code == SI_QUEUE && last_value == 4242, "%d calls, si_code %d, value %d",
          (int)calls, last_code, last_value);

    /* 4. And again after all that: the chain is intact. */
    snprintf(current, sizeof current, "a second load from a lost page");
    if (sigsetjmp(back, 1) == 0) {
        volatile unsigned char *p = t.boundary;
        (void)*p;
    }
    CHECK(calls == 4 && last_code == BUS_ADRERR, "%d calls", (int)calls);
    rc = mcsafe_copy(buf, t.base, 2 * PAGE, &fault);
    CHECK(rc == -EIO && fault.copied == PAGE, "rc %d", rc);
    CHECK(mcsafe_install() == 0, "mcsafe_install after forwarding: %d", mcsafe_install());

    mcsafe_get_stats(&after);
    snprintf(current, sizeof current, "counters");
    CHECK(after.passed_on - before.passed_on == 4, "passed on %ju",
          (uintmax_t)(after.passed_on - before.passed_on));
    CHECK(after.recovered - before.recovered == 2, "recovered %ju",
          (uintmax_t)(after.recovered - before.recovered));
    printf("foreign: 4 foreign SIGBUS reached the program's own handler, 2 copy faults recovered, "
           "%d failures\n", failures);
    return failures ? 1 : 0;
}
