#include "forklift_sys.h"

#include <sys/epoll.h>

int forklift_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int forklift_epoll_add(int epfd, int fd, int exclusive) {
    struct epoll_event event = {0};
    event.events = EPOLLIN | (exclusive ? EPOLLEXCLUSIVE : 0);
    event.data.fd = fd;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event);
}

int forklift_epoll_del(int epfd, int fd) { return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL); }

int forklift_epoll_wait(int epfd, int *ready_fds, int max_ready, int timeout_ms) {
    struct epoll_event events[8];
    if (max_ready > 8) max_ready = 8;
    int count = epoll_wait(epfd, events, max_ready, timeout_ms);
    for (int i = 0; i < count; i++) ready_fds[i] = events[i].data.fd;
    return count;
}
