/*
 * The start of a request as the worker reads it itself, before libfcgi (see the Swift
 * RequestStart). The worker reads a connection's records into this buffer with one recv and
 * checks them (RecordScanner); libfcgi then reads them from here: it reads every connection
 * through OS_Read, which this file defines, and Debian's libfcgi calls it through its PLT, so
 * the executable's definition is the one it gets (checked when a worker starts; where it is
 * not, the worker peeks at the socket instead and libfcgi reads the socket itself). That is a
 * read() per request less than a peek followed by libfcgi's own read.
 *
 * One buffer per process: a worker reads one connection at a time.
 */
#include "forklift_sys.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct {
    unsigned char *bytes;
    size_t capacity;
    /* Not yet taken by libfcgi: [start, end). */
    size_t start, end;
    /* The connection they came from; -1: none. */
    int fd;
    /* 1: bytes are consumed from the socket (and served to libfcgi); 0: only peeked at. */
    int consuming;
} held = {NULL, 0, 0, 0, -1, 0};

int forklift_request_start_init(size_t capacity, int consuming) {
    unsigned char *bytes = realloc(held.bytes, capacity);
    if (bytes == NULL) return -1;
    held.bytes = bytes;
    held.capacity = capacity;
    held.start = held.end = 0;
    held.fd = -1;
    held.consuming = consuming;
    return 0;
}

int forklift_request_start_consuming(void) { return held.consuming; }

void forklift_request_start_reset(int fd) {
    held.fd = fd;
    held.start = held.end = 0;
}

ssize_t forklift_request_start_receive(int fd) {
    if (fd != held.fd) forklift_request_start_reset(fd);
    if (!held.consuming) {
        ssize_t count = recv(fd, held.bytes, held.capacity, MSG_PEEK | MSG_DONTWAIT);
        held.start = 0;
        held.end = count > 0 ? (size_t)count : 0;
        return count;
    }
    if (held.start > 0) {
        memmove(held.bytes, held.bytes + held.start, held.end - held.start);
        held.end -= held.start;
        held.start = 0;
    }
    if (held.end == held.capacity) {
        errno = ENOBUFS;
        return -1;
    }
    ssize_t count = recv(fd, held.bytes + held.end, held.capacity - held.end, MSG_DONTWAIT);
    if (count > 0) held.end += (size_t)count;
    return count;
}

const unsigned char *forklift_request_start_bytes(size_t *count) {
    *count = held.end - held.start;
    return held.bytes + held.start;
}

int forklift_request_start_full(void) { return held.end - held.start == held.capacity; }

int forklift_request_start_consume(int fd, size_t count) {
    if (!held.consuming) {
        /* Peeked only: take them from the socket now (they are all there: they were peeked). */
        unsigned char scratch[512];
        while (count > 0) {
            ssize_t got = recv(fd, scratch, count < sizeof scratch ? count : sizeof scratch, 0);
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) return -1;
            count -= (size_t)got;
        }
        held.start = held.end = 0;
        return 0;
    }
    if (count > held.end - held.start) count = held.end - held.start;
    held.start += count;
    return 0;
}

size_t forklift_request_start_pending(int fd) {
    return held.consuming && fd == held.fd ? held.end - held.start : 0;
}

int forklift_request_start_load(int fd, const void *bytes, size_t count) {
    if (count > held.capacity) return -1;
    forklift_request_start_reset(fd);
    memcpy(held.bytes, bytes, count);
    held.end = count;
    return 0;
}

/* libfcgi's (os_unix.c): the bytes the worker already read from `fd` first, then the socket
 * within request_read_timeout (connection_io.c). */
int OS_Read(int fd, char *buffer, size_t length) {
    if (held.consuming && fd == held.fd && held.start < held.end) {
        size_t count = held.end - held.start;
        if (count > length) count = length;
        memcpy(buffer, held.bytes + held.start, count);
        held.start += count;
        return (int)count;
    }
    return (int)forklift_read_within(fd, buffer, length);
}
