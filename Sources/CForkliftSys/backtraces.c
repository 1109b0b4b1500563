/*
 * A worker's own backtrace, written from a signal handler (no ptrace: containers often deny
 * it, which is why php-fpm's slowlog fails there). The handler only captures return
 * addresses and writes them in one write(2) of under PIPE_BUF bytes to the host's pipe; the
 * host, whose images sit at the same addresses (plugins are loaded before the fork), turns
 * them into names. Nothing here allocates once `forklift_backtrace_init` has run.
 */
#define _GNU_SOURCE
#include "forklift_sys.h"

#include <errno.h>
#include <execinfo.h>
#include <link.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static int backtrace_fd = -1;
/* Set in the host, and so in every worker it forks. */
static int unwinder_warm = 0;

void forklift_backtrace_warm(void) {
    if (unwinder_warm) return;
    void *warm[2];
    backtrace(warm, 2); /* loads the unwinder now: its first use may allocate */
    unwinder_warm = 1;
}

void forklift_backtrace_init(int report_fd) {
    forklift_backtrace_warm();
    backtrace_fd = report_fd;
}

static size_t put(char *line, size_t used, size_t size, const char *text) {
    while (*text && used < size) line[used++] = *text++;
    return used;
}

static size_t put_number(char *line, size_t used, size_t size, unsigned long value, int base) {
    char digits[24];
    int count = 0;
    do { digits[count++] = "0123456789abcdef"[value % (unsigned long)base]; value /= (unsigned long)base; } while (value && count < 24);
    while (count && used < size) line[used++] = digits[--count];
    return used;
}

void forklift_write_backtrace(const char *kind, int signo) {
    int fd = backtrace_fd;
    if (fd < 0) return;
    void *frames[64];
    int count = backtrace(frames, 64);
    char line[2048]; /* under PIPE_BUF: one atomic write, never mixed with another worker's */
    size_t n = 0;
    n = put(line, n, sizeof line - 2, "backtrace ");
    n = put(line, n, sizeof line - 2, kind);
    n = put(line, n, sizeof line - 2, " ");
    n = put_number(line, n, sizeof line - 2, (unsigned long)getpid(), 10);
    n = put(line, n, sizeof line - 2, " ");
    n = put_number(line, n, sizeof line - 2, (unsigned long)signo, 10);
    for (int i = 0; i < count && n + 20 < sizeof line - 2; i++) {
        n = put(line, n, sizeof line - 2, " ");
        n = put_number(line, n, sizeof line - 2, (unsigned long)frames[i], 16);
    }
    line[n++] = '\n';
    ssize_t ignored = write(fd, line, n);
    (void)ignored;
}

static void stack_dump_handler(int signo) {
    int saved = errno;
    forklift_write_backtrace("stack", signo);
    errno = saved;
}

int forklift_stack_dump_install(int signo) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = stack_dump_handler;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART; /* reads and writes resume; sleeps and polls return early, as with any signal */
    return sigaction(signo, &action, NULL);
}

/* The loaded object holding `address`, for the host's symbolication. */
struct image_search { uintptr_t address; char *path; size_t capacity; uintptr_t bias; int found; };

static int find_image(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    struct image_search *search = data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *segment = &info->dlpi_phdr[i];
        if (segment->p_type != PT_LOAD) continue;
        uintptr_t start = info->dlpi_addr + segment->p_vaddr;
        if (search->address >= start && search->address < start + segment->p_memsz) {
            const char *name = info->dlpi_name && info->dlpi_name[0] ? info->dlpi_name : "/proc/self/exe";
            strncpy(search->path, name, search->capacity - 1);
            search->path[search->capacity - 1] = 0;
            search->bias = info->dlpi_addr;
            search->found = 1;
            return 1;
        }
    }
    return 0;
}

int forklift_find_image(uintptr_t address, char *path, size_t capacity, uintptr_t *bias) {
    struct image_search search = {address, path, capacity, 0, 0};
    dl_iterate_phdr(find_image, &search);
    if (search.found) *bias = search.bias;
    return search.found;
}
