/* mcsafe_install's -EAGAIN and -EBUSY, as the header documents them: SIGBUS
 * blocked in the calling thread is -EAGAIN (first use included), a handler
 * that replaced mcsafe's without passing copy faults on (SIG_DFL, SIG_IGN, one
 * that exits) is -EBUSY, and in both cases copies still run; a replacement
 * that chains, and mcsafe's own handler put back, are 0 again, with copy
 * faults recovered. */
#include "common.h"

static struct sigaction mcsafe_action; /* the action a replacement replaced */

/* A replacement that chains: every SIGBUS goes on to the action it replaced. */
static void chaining_handler(int sig, siginfo_t *info, void *context) {
    if (mcsafe_action.sa_flags & SA_SIGINFO) {
        mcsafe_action.sa_sigaction(sig, info, context);
    } else {
        _exit(4); /* mcsafe's action always has SA_SIGINFO */
    }
}

/* A replacement that does not: it ends the process on any SIGBUS. */
static void exiting_handler(int sig, siginfo_t *info, void *context) {
    (void)sig; (void)info; (void)context;
    _exit(3);
}

static void set_handler(void (*handler)(int, siginfo_t *, void *), struct sigaction *old) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = handler;
    action.sa_flags = SA_SIGINFO;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGBUS, &action, old) != 0) { perror("sigaction"); exit(2); }
}

static void set_disposition(void (*disposition)(int)) {
    if (signal(SIGBUS, disposition) == SIG_ERR) { perror("signal"); exit(2); }
}

/* A 64-byte copy between ordinary buffers: 0 and the bytes. */
static void check_copies_run(const char *after) {
    unsigned char a[64], b[64];
    for (int i = 0; i < 64; i++) { a[i] = pattern(3, (size_t)i); b[i] = 0; }
    int rc = mcsafe_copy(b, a, 64, NULL);
    CHECK(rc == 0 && memcmp(a, b, 64) == 0, "after %s: copy rc %d", after, rc);
}

/* A copy fault: -EIO, exact, recovered. */
static void check_copy_fault_recovered(const char *after) {
    struct lost_tail t = lost_tail(1, 1, 8);
    unsigned char buf[2 * PAGE];
    struct mcsafe_fault fault;
    uint64_t before = recovered_now();
    int rc = mcsafe_copy(buf, t.base, 2 * PAGE, &fault);
    CHECK(rc == -EIO && fault.copied == PAGE, "after %s: rc %d copied %zu", after, rc,
          fault.copied);
    CHECK(recovered_now() == before + 1, "after %s: not one recovered signal", after);
    munmap(t.base, t.len);
}

int main(void) {
    sigset_t bus;
    sigemptyset(&bus);
    sigaddset(&bus, SIGBUS);

    /* 1. SIGBUS blocked in this thread: -EAGAIN, from the first use on. */
    snprintf(current, sizeof current, "SIGBUS blocked");
    if (pthread_sigmask(SIG_BLOCK, &bus, NULL) != 0) { perror("pthread_sigmask"); return 2; }
    check_copies_run("first use with SIGBUS blocked");
    int rc = mcsafe_install();
    CHECK(rc == -EAGAIN, "install: %d (%s)", rc, mcsafe_strerror(rc));
    CHECK(strstr(mcsafe_strerror(rc), "blocked") != NULL, "strerror: %s", mcsafe_strerror(rc));
    check_copies_run("-EAGAIN");
    if (pthread_sigmask(SIG_UNBLOCK, &bus, NULL) != 0) { perror("pthread_sigmask"); return 2; }
    rc = mcsafe_install();
    CHECK(rc == 0, "install after unblocking: %d (%s)", rc, mcsafe_strerror(rc));
    check_copy_fault_recovered("unblocking");

    /* 2. A replacement that chains: 0, faults recovered through it. */
    snprintf(current, sizeof current, "a chaining replacement");
    set_handler(chaining_handler, &mcsafe_action);
    rc = mcsafe_install();
    CHECK(rc == 0, "install: %d (%s)", rc, mcsafe_strerror(rc));
    check_copy_fault_recovered("a chaining replacement");

    /* 3. Replacements that do not: -EBUSY, copies still run. */
    const char *names[] = {"SIG_DFL", "SIG_IGN", "a handler that exits"};
    for (int i = 0; i < 3; i++) {
        snprintf(current, sizeof current, "replaced by %s", names[i]);
        if (i == 0) set_disposition(SIG_DFL);
        if (i == 1) set_disposition(SIG_IGN);
        if (i == 2) set_handler(exiting_handler, NULL);
        rc = mcsafe_install();
        CHECK(rc == -EBUSY, "install: %d (%s)", rc, mcsafe_strerror(rc));
        CHECK(mcsafe_install() == rc, "install again");
        CHECK(strstr(mcsafe_strerror(rc), "replaced") != NULL, "strerror: %s",
              mcsafe_strerror(rc));
        check_copies_run(names[i]);
    }

    /* 4. mcsafe's own handler put back: 0, faults recovered again. */
    snprintf(current, sizeof current, "mcsafe's handler put back");
    if (sigaction(SIGBUS, &mcsafe_action, NULL) != 0) { perror("sigaction"); return 2; }
    rc = mcsafe_install();
    CHECK(rc == 0, "install: %d (%s)", rc, mcsafe_strerror(rc));
    check_copy_fault_recovered("mcsafe's handler put back");

    printf("install_codes: -EAGAIN and -EBUSY as documented, copies still run, %d failures\n",
           failures);
    return failures ? 1 : 0;
}
