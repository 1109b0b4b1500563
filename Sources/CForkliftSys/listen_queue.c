/*
 * How many connections wait in a listening socket's accept queue, and its capacity.
 *
 * TCP: getsockopt(TCP_INFO) on a listener reports the queue in tcpi_unacked and the backlog
 * in tcpi_sacked. Unix sockets have no such option (which is why PHP-FPM reports 0 there);
 * the sock_diag netlink interface does: for a listening AF_UNIX socket, UNIX_DIAG_RQLEN gives
 * the queue length and the backlog. The socket is found by its inode, which fstat gives.
 */
#include "forklift_sys.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static int unix_queue(int fd, uint32_t *waiting, uint32_t *backlog) {
    struct stat info;
    if (fstat(fd, &info) != 0) return -1;
    int diag = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (diag < 0) return -1;
    struct timeval timeout = {0, 100000}; /* never hold the host up: 100 ms at most */
    setsockopt(diag, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);

    struct {
        struct nlmsghdr header;
        struct unix_diag_req request;
    } message;
    memset(&message, 0, sizeof message);
    message.header.nlmsg_len = sizeof message;
    message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    message.header.nlmsg_flags = NLM_F_REQUEST;
    message.request.sdiag_family = AF_UNIX;
    message.request.udiag_states = 1u << 10; /* TCP_LISTEN */
    message.request.udiag_ino = (uint32_t)info.st_ino;
    message.request.udiag_show = UDIAG_SHOW_RQLEN;
    message.request.udiag_cookie[0] = ~0u; /* INET_DIAG_NOCOOKIE: any */
    message.request.udiag_cookie[1] = ~0u;
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    if (sendto(diag, &message, sizeof message, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
        close(diag);
        return -1;
    }
    long buffer[1024];
    ssize_t length = recv(diag, buffer, sizeof buffer, 0);
    close(diag);
    if (length <= 0) return -1;
    for (struct nlmsghdr *header = (struct nlmsghdr *)buffer; NLMSG_OK(header, (size_t)length); header = NLMSG_NEXT(header, length)) {
        if (header->nlmsg_type == NLMSG_ERROR || header->nlmsg_type == NLMSG_DONE) return -1;
        struct unix_diag_msg *reply = NLMSG_DATA(header);
        if (reply->udiag_ino != (uint32_t)info.st_ino) continue;
        int attributes_length = (int)header->nlmsg_len - (int)NLMSG_LENGTH(sizeof *reply);
        for (struct rtattr *attribute = (struct rtattr *)(reply + 1); RTA_OK(attribute, attributes_length);
             attribute = RTA_NEXT(attribute, attributes_length)) {
            if (attribute->rta_type == UNIX_DIAG_RQLEN && RTA_PAYLOAD(attribute) >= sizeof(struct unix_diag_rqlen)) {
                struct unix_diag_rqlen *queue = RTA_DATA(attribute);
                *waiting = queue->udiag_rqueue;
                *backlog = queue->udiag_wqueue;
                return 0;
            }
        }
    }
    errno = ENOENT;
    return -1;
}

int forklift_listen_queue(int fd, uint32_t *waiting, uint32_t *backlog) {
    struct sockaddr_storage address;
    socklen_t length = sizeof address;
    if (getsockname(fd, (struct sockaddr *)&address, &length) != 0) return -1;
    if (address.ss_family == AF_UNIX) return unix_queue(fd, waiting, backlog);
    struct tcp_info info;
    socklen_t size = sizeof info;
    memset(&info, 0, sizeof info);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &size) != 0) return -1;
    *waiting = info.tcpi_unacked;
    *backlog = info.tcpi_sacked;
    return 0;
}
