#include "forklift_sys.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile int signal_pipe_write_fd = -1;

static void forklift_signal_handler(int signo) {
    int saved = errno; /* the interrupted code may be about to read errno */
    unsigned char byte = (unsigned char)signo;
    int fd = signal_pipe_write_fd;
    if (fd >= 0) {
        /* Non-blocking: when the pipe is full the master already has plenty to wake up for. */
        ssize_t ignored = write(fd, &byte, 1);
        (void)ignored;
    }
    errno = saved;
}

void forklift_signal_pipe_set(int write_fd) { signal_pipe_write_fd = write_fd; }

int forklift_signal_catch(int signo, int restart) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = forklift_signal_handler;
    sigfillset(&action.sa_mask);
    action.sa_flags = restart ? SA_RESTART : 0;
    if (signo == SIGCHLD) action.sa_flags |= SA_NOCLDSTOP;
    return sigaction(signo, &action, NULL);
}

static int set_disposition(int signo, void (*handler)(int)) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = handler;
    sigemptyset(&action.sa_mask);
    return sigaction(signo, &action, NULL);
}

int forklift_signal_default(int signo) { return set_disposition(signo, SIG_DFL); }
int forklift_signal_ignore(int signo) { return set_disposition(signo, SIG_IGN); }

size_t forklift_sigset_size(void) { return sizeof(sigset_t); }

int forklift_signals_block_all(void *old_mask, size_t mask_size) {
    if (mask_size < sizeof(sigset_t)) { errno = EINVAL; return -1; }
    sigset_t all;
    sigfillset(&all);
    return sigprocmask(SIG_SETMASK, &all, (sigset_t *)old_mask);
}

int forklift_signals_set_mask(const void *mask, size_t mask_size) {
    if (mask_size < sizeof(sigset_t)) { errno = EINVAL; return -1; }
    return sigprocmask(SIG_SETMASK, (const sigset_t *)mask, NULL);
}

int forklift_signals_unblock_all(void) {
    sigset_t none;
    sigemptyset(&none);
    return sigprocmask(SIG_SETMASK, &none, NULL);
}

int forklift_signals_mask(const int *signals, int count, int block) {
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < count; i++) sigaddset(&set, signals[i]);
    return sigprocmask(block ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
}

#include <sys/signalfd.h>

int forklift_signalfd_open(const int *signals, int count) {
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < count; i++) sigaddset(&set, signals[i]);
    /* Blocked for good: they stay pending until read from the descriptor, and never
     * interrupt a system call (no handler runs). */
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) return -1;
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

int forklift_signalfd_read(int fd) {
    struct signalfd_siginfo info;
    ssize_t n;
    do { n = read(fd, &info, sizeof info); } while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof info ? (int)info.ssi_signo : -1;
}

int forklift_signals_block_only(const int *signals, int count) {
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < count; i++) sigaddset(&set, signals[i]);
    return sigprocmask(SIG_SETMASK, &set, NULL);
}
