/*
 * forklift_sys.h -- the few things Swift cannot do itself, or cannot do safely.
 *
 * - Signal handlers: a C function that only writes the signal number to a self-pipe
 *   (Swift 6 rejects the mutable C global such a handler needs).
 * - Variadic or macro-only libc calls (prctl, fcntl, the W* status macros).
 * - The process title, which needs the original argv captured before main().
 */
#ifndef FORKLIFT_SYS_H
#define FORKLIFT_SYS_H

#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>

#include "forklift_scoreboard.h"

/* Signals ------------------------------------------------------------------------------ */

/* Route caught signals to `write_fd` (non-blocking), one byte per signal: the number. */
void forklift_signal_pipe_set(int write_fd);
/* Catch `signo` with the pipe-writing handler. `restart` sets SA_RESTART, so a slow
 * syscall in progress (a read inside libfcgi) is resumed instead of failing with EINTR. */
int forklift_signal_catch(int signo, int restart);
int forklift_signal_default(int signo);
int forklift_signal_ignore(int signo);
/* Block every signal, returning the previous mask in *old (for fork). */
int forklift_signals_block_all(void *old_mask, size_t mask_size);
int forklift_signals_set_mask(const void *mask, size_t mask_size);
int forklift_signals_unblock_all(void);
size_t forklift_sigset_size(void);
/* Workers: block `signals` for good and return a signalfd for them (non-blocking): they are
 * read, never delivered, so no system call of a request is ever interrupted and no mask
 * changes per request. _read returns the next signal's number, -1 when none is pending. */
int forklift_signalfd_open(const int *signals, int count);
int forklift_signalfd_read(int fd);
/* This thread's mask becomes exactly `signals` (every other one unblocked). */
int forklift_signals_block_only(const int *signals, int count);

/* Block (block != 0) or unblock the listed signals in this thread's mask. */
int forklift_signals_mask(const int *signals, int count, int block);

/* Processes ---------------------------------------------------------------------------- */

pid_t forklift_fork(void);
int forklift_pipe2(int fds[2], int flags); /* pipe2 is a GNU extension Swift does not see */
int forklift_eventfd_cloexec(void);          /* eventfd(0, EFD_CLOEXEC): sys/eventfd.h is not in Glibc's module */
int forklift_memfd_create(const char *name); /* an anonymous file, close-on-exec */
int forklift_memfd_create_sealable(const char *name); /* the same, with MFD_ALLOW_SEALING */
/* Seal a memfd for good: no write, no growing or shrinking, no other seal. */
int forklift_memfd_seal(int fd);
/* 1 when all four of those seals are set. */
int forklift_memfd_is_sealed(int fd);
/* mmap `fd` at exactly `address` (MAP_FIXED_NOREPLACE), read-only or read-write, shared or
 * private; NULL with errno (EEXIST: something is mapped there). */
void *forklift_map_fixed(void *address, size_t length, int writable, int shared, int fd);
int forklift_set_parent_death_signal(int signo);
/* PR_SET_CHILD_SUBREAPER: orphans below this process become its children, not init's. */
int forklift_set_child_subreaper(void);
/* setgroups, setresgid(g, g, g), setresuid(u, u, u); PR_SET_DUMPABLE, which a change of
 * user clears (then the process's /proc files belong to root, and its host cannot read them). */
int forklift_set_groups(size_t count, const gid_t *groups);
int forklift_set_all_gids(gid_t gid);
int forklift_set_all_uids(uid_t uid);
int forklift_set_dumpable(int dumpable);
/* Capabilities left after a change of user (1), none (0), unknown (-1); PR_SET_KEEPCAPS 0. */
int forklift_keeps_capabilities(void);
int forklift_clear_keep_capabilities(void);
/* accept4(fd, NULL, NULL, SOCK_CLOEXEC). */
int forklift_accept_cloexec(int fd);
int forklift_set_name(const char *name); /* PR_SET_NAME: the 15-char comm */

int forklift_wifexited(int status);
int forklift_wexitstatus(int status);
int forklift_wifsignaled(int status);
int forklift_wtermsig(int status);
int forklift_wcoredump(int status);

/* File descriptors --------------------------------------------------------------------- */

int forklift_set_nonblocking(int fd, int on);
int forklift_set_cloexec(int fd, int on);

/* Bytes buffered in stdout/stderr that were never flushed (a fork would duplicate them). */
size_t forklift_stdio_pending(void);

/* Atomics on shared memory (sequentially consistent) ------------------------------------ */

int32_t forklift_atomic_load(const int32_t *address);
void forklift_atomic_store(int32_t *address, int32_t value);
int32_t forklift_atomic_add(int32_t *address, int32_t delta); /* returns the new value */

/* Faults in read-only shared memory ------------------------------------------------------ */

/* Record a read-only region (preloaded data) and what to call it in a crash message. */
int forklift_fault_region_add(const void *start, size_t length, const char *label);
/* In a worker: on SIGSEGV/SIGBUS inside a recorded region, write one line naming the region to
 * `log_fd`, then die of the signal as usual (the handler is reset after one use). A fatal
 * signal (SEGV, BUS, ABRT, ILL, FPE, TRAP) sent by another process kills the worker at once:
 * the Swift runtime's backtracer, left to itself, would print a backtrace and carry on. */
/* `backtraces`: a crash writes its backtrace through forklift_write_backtrace and the worker
 * dies at once, instead of going to the Swift backtracer. `json`: the line naming a fault in a
 * sealed region is a JSON object (log_format = "json"). */
int forklift_fault_reporter_install(int log_fd, int backtraces, int json);

/* Listening sockets ------------------------------------------------------------------- */

/* Connections waiting to be accepted, and the queue's capacity: TCP_INFO for TCP, sock_diag
 * netlink for unix sockets. 0 on success. */
int forklift_listen_queue(int fd, uint32_t *waiting, uint32_t *backlog);

/* Request params ----------------------------------------------------------------------- */

/* The params the worker itself needs (routing, the scoreboard), found in one pass over a
 * NUL-terminated "NAME=value" array; NULL where absent. Pointers into the array. */
typedef struct {
    const char *request_method;
    const char *request_uri;
    const char *content_length;
    const char *document_uri;
    const char *script_name;
    const char *path_info;
    const char *query_string;
} forklift_request_params;
void forklift_scan_params(char *const *envp, forklift_request_params *out);
/* PARAMS pairs lying whole in bytes from *index on, skipped: *index and *consumed advance;
   1 when a pair's lengths exceed what is left of limit (see request_params.c). */
int forklift_params_skip_whole(const uint8_t *bytes, size_t count, size_t *index, size_t *consumed, size_t limit);

/* Backtraces --------------------------------------------------------------------------- */

/* The host, before it forks workers: glibc's first backtrace() dlopens the unwinder and
 * looks its functions up, once per process (30-45 page faults, about 0.3 ms of a worker's
 * start in BENCHMARKS.md's A/B runs); done here it is done for every worker forked after. */
void forklift_backtrace_warm(void);
/* Workers: where backtraces go (the host's pipe); warms the unwinder up, unless the host
 * did, so that the signal handlers below never allocate. */
void forklift_backtrace_init(int report_fd);
/* Signal-safe: one line "backtrace KIND PID SIGNO ADDR..." (hex return addresses). */
void forklift_write_backtrace(const char *kind, int signo);
/* `signo` makes the worker write its current stack ("stack") and carry on (SA_RESTART). */
int forklift_stack_dump_install(int signo);
/* The host: the object whose segment holds `address`, its path, and its load bias. */
int forklift_find_image(uintptr_t address, char *path, size_t capacity, uintptr_t *bias);

/* Process title ------------------------------------------------------------------------ */

/* Overwrite the argv area so `ps` shows `title`. The environment is moved out of the way
 * first, as nginx does. Safe to call repeatedly; truncates to the space argv and environ
 * had at startup. */
void forklift_set_process_title(const char *title);



/* epoll (not in Swift's Glibc module; epoll_event is packed on x86_64) ------------------ */

/* Passing a descriptor (SCM_RIGHTS) with an 8-byte payload over a unix datagram socket,
 * without blocking. send: 0, or -1 with errno (EAGAIN when the peer's queue is full).
 * receive: the descriptor (close-on-exec), or -1 with errno (EAGAIN when none is queued,
 * EPROTO for a message that is not one descriptor and its payload). */
int forklift_send_descriptor(int channel, int fd, uint64_t payload);
int forklift_receive_descriptor(int channel, uint64_t *payload);

/* One message over a unix SOCK_SEQPACKET socket, with at most one descriptor (SCM_RIGHTS).
 * send: blocking; fd < 0 attaches none; 0, or -1 with errno. receive: without blocking; the
 * message's length (0: the peer closed its end), or -1 with errno (EAGAIN: none queued); *fd is
 * the attached descriptor (close-on-exec) or -1, and a message longer than `capacity` is cut. */
int forklift_send_message(int channel, const void *data, size_t length, int fd);
ssize_t forklift_receive_message(int channel, void *buffer, size_t capacity, int *fd);

int forklift_epoll_create(void);
/* Watch `fd` for readability; `exclusive` sets EPOLLEXCLUSIVE (wake one waiter, not all). */
int forklift_epoll_add(int epfd, int fd, int exclusive);
/* Stop watching `fd` (EPOLL_CTL_DEL): 0, or -1 with errno. */
int forklift_epoll_del(int epfd, int fd);
/* Wait; the descriptors that became readable are stored in ready_fds. Returns their count. */
int forklift_epoll_wait(int epfd, int *ready_fds, int max_ready, int timeout_ms);

/* The start of a request, read by the worker ahead of libfcgi (request_start.c). One buffer
   per process. consuming: read from the socket and served to libfcgi's reads (its OS_Read);
   0: only peeked at, libfcgi reads the socket itself. */
int forklift_request_start_init(size_t capacity, int consuming);
int forklift_request_start_consuming(void);
/* The buffer now belongs to fd (-1: none), empty. */
void forklift_request_start_reset(int fd);
/* One recv(MSG_DONTWAIT) of fd into the buffer (after what it holds; peeking: all of it
   again); recv's result, -1 with ENOBUFS when it is full. Resets it first for another fd. */
ssize_t forklift_request_start_receive(int fd);
/* What it holds that libfcgi has not read yet. */
const unsigned char *forklift_request_start_bytes(size_t *count);
int forklift_request_start_full(void);
/* The first count bytes are the worker's (a management record it answers): gone. */
int forklift_request_start_consume(int fd, size_t count);
/* Bytes of fd held and not yet read by libfcgi (0 when peeking). */
size_t forklift_request_start_pending(int fd);
/* Puts bytes in the buffer as if received from fd (the start-up check of OS_Read). */
int forklift_request_start_load(int fd, const void *bytes, size_t count);
int OS_Read(int fd, char *buffer, size_t length);

/* A connection's reads and writes with the pool's request_read_timeout and
   request_write_timeout in the call (connection_io.c): -1 with EAGAIN when the connection
   made no progress for that long. libfcgi's go through them (OS_Read, OS_Write). Until a
   process calls forklift_io_timeouts they are plain read() and write(). */
void forklift_io_timeouts(int read_ms, int write_ms);
ssize_t forklift_read_within(int fd, void *buffer, size_t length);
/* All of it, or -1. */
ssize_t forklift_write_within(int fd, const void *buffer, size_t length);
/* `length` bytes as FCGI_STDOUT records for `request_id`, each of up to
   65528 content bytes and padded to a multiple of 8, as libfcgi pads its own, written
   straight from `bytes` with a few sendmsg calls rather than through libfcgi's 8 KiB
   buffer (see ResponseBridge.write); within request_write_timeout as above. `held` is
   libfcgi's stdout buffer with `held_length` bytes in it, the 8 it reserves for a record's
   header first (NULL or 8: nothing held): made into a record as libfcgi's flush would and
   sent first, in the same call, so that the client is woken once rather than twice. All of
   it, or -1. */
ssize_t forklift_write_stdout(int fd, int request_id, unsigned char *held, size_t held_length,
                              const void *bytes, size_t length);
/* How many times libfcgi called OS_Write (the start-up check that it calls this one). */
unsigned long forklift_io_writes(void);
int OS_Write(int fd, char *buffer, size_t length);

#endif
