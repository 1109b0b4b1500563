#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include "forklift_sys.h"

/* SCM_RIGHTS needs the CMSG_* macros, which Swift cannot import. */

/* sendmsg of `length` bytes with `fd` attached (none when fd < 0), retried on EINTR. */
static ssize_t send_with_descriptor(int channel, const void *data, size_t length, int fd, int flags) {
    union { struct cmsghdr header; char space[CMSG_SPACE(sizeof(int))]; } control;
    memset(&control, 0, sizeof control);
    struct iovec iov = { .iov_base = (void *)data, .iov_len = length };
    struct msghdr message = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (fd >= 0) {
        message.msg_control = control.space;
        message.msg_controllen = sizeof control.space;
        struct cmsghdr *header = CMSG_FIRSTHDR(&message);
        header->cmsg_level = SOL_SOCKET;
        header->cmsg_type = SCM_RIGHTS;
        header->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(header), &fd, sizeof(int));
    }
    ssize_t sent;
    do { sent = sendmsg(channel, &message, flags | MSG_NOSIGNAL); } while (sent < 0 && errno == EINTR);
    return sent;
}

int forklift_send_descriptor(int channel, int fd, uint64_t payload) {
    return send_with_descriptor(channel, &payload, sizeof payload, fd, MSG_DONTWAIT) == (ssize_t)sizeof payload ? 0 : -1;
}

int forklift_receive_descriptor(int channel, uint64_t *payload) {
    union { struct cmsghdr header; char space[CMSG_SPACE(sizeof(int))]; } control;
    memset(&control, 0, sizeof control);
    struct iovec iov = { .iov_base = payload, .iov_len = sizeof *payload };
    struct msghdr message = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.space, .msg_controllen = sizeof control.space };
    ssize_t received;
    do { received = recvmsg(channel, &message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC); } while (received < 0 && errno == EINTR);
    if (received < 0) return -1;
    int fd = -1;
    for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header; header = CMSG_NXTHDR(&message, header)) {
        if (header->cmsg_level == SOL_SOCKET && header->cmsg_type == SCM_RIGHTS && header->cmsg_len >= CMSG_LEN(sizeof(int))) {
            memcpy(&fd, CMSG_DATA(header), sizeof(int));
        }
    }
    if (fd < 0 && (message.msg_flags & MSG_CTRUNC) && received == (ssize_t)sizeof *payload) {
        /* The kernel could not install the descriptor (the receiver is at RLIMIT_NOFILE). */
        errno = EMFILE;
        return -1;
    }
    if (fd < 0 || received != (ssize_t)sizeof *payload || (message.msg_flags & (MSG_CTRUNC | MSG_TRUNC))) {
        /* A message without exactly one descriptor and its payload is not ours to trust. */
        if (fd >= 0) close(fd);
        errno = EPROTO;
        return -1;
    }
    return fd;
}

int forklift_send_message(int channel, const void *data, size_t length, int fd) {
    ssize_t sent = send_with_descriptor(channel, data, length, fd, 0);
    if (sent < 0) return -1;
    if ((size_t)sent != length) { errno = EMSGSIZE; return -1; }
    return 0;
}

ssize_t forklift_receive_message(int channel, void *buffer, size_t capacity, int *fd) {
    union { struct cmsghdr header; char space[CMSG_SPACE(4 * sizeof(int))]; } control;
    memset(&control, 0, sizeof control);
    struct iovec iov = { .iov_base = buffer, .iov_len = capacity };
    struct msghdr message = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.space, .msg_controllen = sizeof control.space };
    *fd = -1;
    ssize_t received;
    do { received = recvmsg(channel, &message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC); } while (received < 0 && errno == EINTR);
    if (received < 0) return -1;
    for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header; header = CMSG_NXTHDR(&message, header)) {
        if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t index = 0; index < count; index++) {
            int received_fd;
            memcpy(&received_fd, CMSG_DATA(header) + index * sizeof(int), sizeof(int));
            /* One descriptor per message is the protocol: more are the sender's mistake. */
            if (*fd < 0) *fd = received_fd; else close(received_fd);
        }
    }
    return received;
}
