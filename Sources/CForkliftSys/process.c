#define _GNU_SOURCE
#include "forklift_sys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <grp.h>
#include <unistd.h>

pid_t forklift_fork(void) { return fork(); }
int forklift_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }
int forklift_eventfd_cloexec(void) { return eventfd(0, EFD_CLOEXEC); }
int forklift_memfd_create(const char *name) { return memfd_create(name, MFD_CLOEXEC); }
int forklift_memfd_create_sealable(const char *name) { return memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING); }

int forklift_set_parent_death_signal(int signo) { return prctl(PR_SET_PDEATHSIG, signo, 0, 0, 0); }
int forklift_set_name(const char *name) { return prctl(PR_SET_NAME, name, 0, 0, 0); }

int forklift_wifexited(int status) { return WIFEXITED(status); }
int forklift_wexitstatus(int status) { return WEXITSTATUS(status); }
int forklift_wifsignaled(int status) { return WIFSIGNALED(status); }
int forklift_wtermsig(int status) { return WTERMSIG(status); }
int forklift_wcoredump(int status) { return WCOREDUMP(status); }

int forklift_set_nonblocking(int fd, int on) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return -1;
    flags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
    return fcntl(fd, F_SETFL, flags);
}

int forklift_set_cloexec(int fd, int on) {
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0) return -1;
    flags = on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
    return fcntl(fd, F_SETFD, flags);
}

size_t forklift_stdio_pending(void) { return __fpending(stdout) + __fpending(stderr); }

int forklift_memfd_seal(int fd) {
    return fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
}

int forklift_memfd_is_sealed(int fd) {
    int want = F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL;
    int seals = fcntl(fd, F_GET_SEALS);
    return seals >= 0 && (seals & want) == want;
}

void *forklift_map_fixed(void *address, size_t length, int writable, int shared, int fd) {
    int prot = PROT_READ | (writable ? PROT_WRITE : 0);
    int flags = (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_FIXED_NOREPLACE;
    void *mapped = mmap(address, length, prot, flags, fd, 0);
    if (mapped == MAP_FAILED) return NULL;
    if (mapped != address) {
        /* A kernel older than 4.17 takes MAP_FIXED_NOREPLACE for a hint. */
        munmap(mapped, length);
        errno = EEXIST;
        return NULL;
    }
    return mapped;
}

int forklift_set_child_subreaper(void) { return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); }

/* Privileges (the host, before it loads plugins): the set-id calls with all three ids, so
 * that no saved id lets the process back; glibc applies them to every thread. */
int forklift_set_groups(size_t count, const gid_t *groups) { return setgroups(count, groups); }
int forklift_set_all_gids(gid_t gid) { return setresgid(gid, gid, gid); }
int forklift_set_all_uids(uid_t uid) { return setresuid(uid, uid, uid); }
int forklift_set_dumpable(int dumpable) { return prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0); }

/* A connection from `fd`, close-on-exec from the start (accept4, which Glibc's module lacks). */
int forklift_accept_cloexec(int fd) { return accept4(fd, NULL, NULL, SOCK_CLOEXEC); }

/* After a change of user: 1 when any capability is left in the permitted, effective or
 * ambient sets (SECBIT_KEEP_CAPS or SECBIT_NO_SETUID_FIXUP keep them across setresuid), 0 when
 * none, -1 when they cannot be read. Raw capget: no libcap needed. */
#include <linux/capability.h>
#include <sys/syscall.h>
int forklift_keeps_capabilities(void) {
    struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &header, data) != 0) return -1;
    for (int i = 0; i < 2; i++) {
        if (data[i].permitted || data[i].effective) return 1;
    }
    for (int cap = 0; cap < 64; cap++) {
        int raised = prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0);
        if (raised == 1) return 1;
        if (raised < 0) break; /* past the last capability this kernel knows */
    }
    return 0;
}
int forklift_clear_keep_capabilities(void) { return prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0); }
