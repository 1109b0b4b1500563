/*
 * Reads and writes on a worker's connection with request_read_timeout and
 * request_write_timeout applied in the call itself: each gives up when the connection made no
 * progress for that long (a read with nothing to read, a write the client takes none of). The
 * fast path is the one recv or send a blocking call would make; poll() only when it would
 * block. libfcgi's reads and writes come here (OS_Read in request_start.c, OS_Write below: the
 * executable's definitions win over libfcgi's, which Debian's build calls through its PLT,
 * checked when a worker starts). That saves the two setsockopt(SO_RCVTIMEO, SO_SNDTIMEO) each
 * accepted connection cost otherwise; a unix socket does not inherit them from its listener.
 */
#include "forklift_sys.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* Milliseconds; 0: wait as long as it takes. */
static int read_timeout_ms, write_timeout_ms;
/* Set by a worker (forklift_io_timeouts). Other processes of the executable that use libfcgi
 * (the status responder) keep its plain blocking calls, which honour their socket options. */
static int timeouts_in_calls;
static unsigned long writes_through_here;

void forklift_io_timeouts(int read_ms, int write_ms) {
    timeouts_in_calls = 1;
    read_timeout_ms = read_ms > 0 ? read_ms : 0;
    write_timeout_ms = write_ms > 0 ? write_ms : 0;
}

unsigned long forklift_io_writes(void) { return writes_through_here; }

static long long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Waits for `events` until `deadline` (ms, 0: none): 1 ready, 0 timed out (errno EAGAIN, what
 * a socket timeout gives), -1 an error. */
static int wait_until(int fd, short events, long long deadline) {
    for (;;) {
        int left = -1;
        if (deadline) {
            long long remaining = deadline - now_ms();
            if (remaining <= 0) {
                errno = EAGAIN;
                return 0;
            }
            left = remaining > 1 << 30 ? 1 << 30 : (int)remaining;
        }
        struct pollfd watched = {fd, events, 0};
        int ready = poll(&watched, 1, left);
        if (ready > 0) return 1; /* readable, writable, or hung up: the next call says which */
        if (ready < 0 && errno != EINTR) return -1;
    }
}

ssize_t forklift_read_within(int fd, void *buffer, size_t length) {
    if (!timeouts_in_calls) return read(fd, buffer, length);
    for (;;) {
        ssize_t count = recv(fd, buffer, length, MSG_DONTWAIT);
        if (count >= 0) return count;
        if (errno == EINTR) continue;
        if (errno == ENOTSOCK) return read(fd, buffer, length);
        if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
        long long deadline = read_timeout_ms ? now_ms() + read_timeout_ms : 0;
        if (wait_until(fd, POLLIN, deadline) <= 0) return -1;
    }
}

ssize_t forklift_write_within(int fd, const void *buffer, size_t length) {
    if (!timeouts_in_calls) return write(fd, buffer, length);
    const char *bytes = buffer;
    size_t done = 0;
    while (done < length) {
        ssize_t count = send(fd, bytes + done, length - done, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (count > 0) {
            done += (size_t)count;
            continue;
        }
        if (count < 0 && errno == EINTR) continue;
        if (count < 0 && errno == ENOTSOCK) {
            count = write(fd, bytes + done, length - done);
            if (count < 0 && errno == EINTR) continue;
            if (count <= 0) return -1;
            done += (size_t)count;
            continue;
        }
        if (count == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return -1;
        /* From the last progress: a client that reads slowly but reads is not given up. */
        long long deadline = write_timeout_ms ? now_ms() + write_timeout_ms : 0;
        if (wait_until(fd, POLLOUT, deadline) <= 0) return -1;
    }
    return (ssize_t)length;
}

/* The largest record content that keeps a record's length a multiple of 8 (the protocol's
   limit is 65535). */
#define RECORD_CONTENT_MAX 65528
/* Records per sendmsg: up to 1 MiB of content, three iovecs each, and libfcgi's held record. */
#define RECORDS_PER_CALL 16

static void stdout_header(unsigned char *h, int request_id, size_t content, size_t padding) {
    h[0] = 1; /* FCGI_VERSION_1 */
    h[1] = 6; /* FCGI_STDOUT */
    h[2] = (unsigned char)(request_id >> 8);
    h[3] = (unsigned char)request_id;
    h[4] = (unsigned char)(content >> 8);
    h[5] = (unsigned char)content;
    h[6] = (unsigned char)padding;
    h[7] = 0;
}

/* What libfcgi's EmptyBuffProc does to its buffer before it writes it: the header it reserved
   filled in, the content padded with zeros to a multiple of 8 (the buffer's length is one, so
   the padding fits). The length of the record, 0 when nothing is held. */
static size_t seal_held(unsigned char *held, size_t held_length, int request_id) {
    if (!held || held_length <= 8) return 0;
    size_t content = held_length - 8;
    size_t padding = (8 - content % 8) % 8;
    for (size_t i = 0; i < padding; i++) held[held_length + i] = 0;
    stdout_header(held, request_id, content, padding);
    return held_length + padding;
}

ssize_t forklift_write_stdout(int fd, int request_id, unsigned char *held, size_t held_length,
                              const void *bytes, size_t length) {
    static const unsigned char zeros[8];
    unsigned char headers[RECORDS_PER_CALL][8];
    struct iovec vectors[RECORDS_PER_CALL * 3 + 1];
    const unsigned char *next = bytes;
    size_t left = length;
    size_t held_record = seal_held(held, held_length, request_id);
    while (left > 0 || held_record) {
        /* The next records, as header, content and padding, after libfcgi's the first time. */
        int count = 0;
        if (held_record) {
            vectors[count++] = (struct iovec){held, held_record};
            held_record = 0;
        }
        for (int record = 0; record < RECORDS_PER_CALL && left > 0; record++) {
            size_t content = left < RECORD_CONTENT_MAX ? left : RECORD_CONTENT_MAX;
            size_t padding = (8 - content % 8) % 8;
            stdout_header(headers[record], request_id, content, padding);
            vectors[count++] = (struct iovec){headers[record], 8};
            vectors[count++] = (struct iovec){(void *)next, content};
            if (padding) vectors[count++] = (struct iovec){(void *)zeros, padding};
            next += content;
            left -= content;
        }
        /* All of them, however many calls the socket takes them in. */
        struct iovec *pending = vectors;
        int remaining = count;
        long long deadline = 0;
        while (remaining > 0) {
            struct msghdr message = {.msg_iov = pending, .msg_iovlen = (size_t)remaining};
            ssize_t sent;
            if (!timeouts_in_calls) {
                sent = writev(fd, pending, remaining);
            } else {
                sent = sendmsg(fd, &message, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (sent < 0 && errno == ENOTSOCK) sent = writev(fd, pending, remaining);
            }
            if (sent < 0 && errno == EINTR) continue;
            if (sent < 0 && timeouts_in_calls && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                /* From the last progress, as forklift_write_within. */
                if (!deadline && write_timeout_ms) deadline = now_ms() + write_timeout_ms;
                if (wait_until(fd, POLLOUT, deadline) <= 0) return -1;
                continue;
            }
            if (sent == 0) errno = EIO; /* not for a non-empty send on a stream socket */
            if (sent <= 0) return -1;
            deadline = 0;
            while (remaining > 0 && (size_t)sent >= pending->iov_len) {
                sent -= (ssize_t)pending->iov_len;
                pending++;
                remaining--;
            }
            if (remaining > 0 && sent > 0) {
                pending->iov_base = (char *)pending->iov_base + sent;
                pending->iov_len -= (size_t)sent;
            }
        }
    }
    return (ssize_t)length;
}

/* libfcgi's (os_unix.c), which returns write()'s result; a short count is an error to it, as
 * -1 is. */
int OS_Write(int fd, char *buffer, size_t length) {
    writes_through_here++;
    return (int)forklift_write_within(fd, buffer, length);
}
