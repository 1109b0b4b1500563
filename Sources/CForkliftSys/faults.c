/*
 * Naming the cause of a write to sealed shared memory. The worker dies of it regardless (the
 * handler runs once, then the default action re-runs the faulting write), but first it says
 * which plugin's region it hit, using nothing but write(2): this runs in a signal handler.
 */
#include "forklift_sys.h"

#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_REGIONS 256
#define LABEL_SIZE 200

static struct { const char *start, *end; char label[LABEL_SIZE]; } regions[MAX_REGIONS];
static int region_count = 0;
static int fault_log_fd = 2;
static int crash_backtraces = 0;
static int json_lines = 0; /* log_format = "json": the line is a JSON object, as every other */
/* What was installed before us (the Swift runtime's backtracer, or the default): restored
 * before the fault re-runs, so it still gets its say. */
static struct sigaction previous_segv, previous_bus, previous_abrt, previous_ill, previous_fpe, previous_trap;

/* The fatal signals the Swift runtime's backtracer catches. After backtracing it resets the
 * signal to its default and *returns*, counting on the faulting instruction to fault again.
 * For a signal sent with kill() nothing faults again: the process would print a backtrace and
 * carry on (measured: a worker sent SIGSEGV or SIGABRT by another process kept serving). */
static struct sigaction *previous_for(int signo) {
    switch (signo) {
    case SIGBUS: return &previous_bus;
    case SIGABRT: return &previous_abrt;
    case SIGILL: return &previous_ill;
    case SIGFPE: return &previous_fpe;
    case SIGTRAP: return &previous_trap;
    default: return &previous_segv;
    }
}

int forklift_fault_region_add(const void *start, size_t length, const char *label) {
    if (region_count >= MAX_REGIONS) return -1;
    regions[region_count].start = start;
    regions[region_count].end = (const char *)start + length;
    strncpy(regions[region_count].label, label, LABEL_SIZE - 1);
    region_count++;
    return 0;
}

static size_t append(char *buffer, size_t used, size_t size, const char *text) {
    while (*text && used < size) buffer[used++] = *text++;
    return used;
}

static size_t append_number(char *buffer, size_t used, size_t size, unsigned long value, int base) {
    char digits[32];
    int count = 0;
    do { digits[count++] = "0123456789abcdef"[value % (unsigned long)base]; value /= (unsigned long)base; } while (value && count < 32);
    while (count && used < size) buffer[used++] = digits[--count];
    return used;
}

static size_t append_padded(char *buffer, size_t used, size_t size, unsigned long value, int width) {
    unsigned long limit = 1;
    for (int i = 1; i < width; i++) limit *= 10;
    while (limit > 1 && value < limit && used < size) { buffer[used++] = '0'; limit /= 10; }
    return append_number(buffer, used, size, value, 10);
}

/* A label inside a JSON string: quotes, backslashes and control bytes escaped. */
static size_t append_json_text(char *buffer, size_t used, size_t size, const char *text) {
    for (; *text && used + 6 < size; text++) {
        unsigned char c = (unsigned char)*text;
        if (c == '"' || c == '\\') { buffer[used++] = '\\'; buffer[used++] = (char)c; }
        else if (c < 0x20) { used = append(buffer, used, size, "\\u00"); buffer[used++] = "0123456789abcdef"[c >> 4]; buffer[used++] = "0123456789abcdef"[c & 15]; }
        else buffer[used++] = (char)c;
    }
    return used;
}

/* {"time":"2026-12-02T05:30:36.543Z","level":"critical","process":"worker","pid":N,"message":"
 * UTC from days since the epoch (Howard Hinnant's civil_from_days): no gmtime_r, which is not
 * async-signal-safe. */
static size_t append_json_start(char *buffer, size_t used, size_t size) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    long days = now.tv_sec / 86400, second = now.tv_sec % 86400;
    long z = days + 719468, era = z / 146097, doe = z - era * 146097;
    long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    long day = doy - (153 * mp + 2) / 5 + 1, month = mp < 10 ? mp + 3 : mp - 9, year = yoe + era * 400 + (month <= 2);
    used = append(buffer, used, size, "{\"time\":\"");
    used = append_padded(buffer, used, size, (unsigned long)year, 4);
    used = append(buffer, used, size, "-");
    used = append_padded(buffer, used, size, (unsigned long)month, 2);
    used = append(buffer, used, size, "-");
    used = append_padded(buffer, used, size, (unsigned long)day, 2);
    used = append(buffer, used, size, "T");
    used = append_padded(buffer, used, size, (unsigned long)(second / 3600), 2);
    used = append(buffer, used, size, ":");
    used = append_padded(buffer, used, size, (unsigned long)(second / 60 % 60), 2);
    used = append(buffer, used, size, ":");
    used = append_padded(buffer, used, size, (unsigned long)(second % 60), 2);
    used = append(buffer, used, size, ".");
    used = append_padded(buffer, used, size, (unsigned long)(now.tv_nsec / 1000000), 3);
    used = append(buffer, used, size, "Z\",\"level\":\"critical\",\"process\":\"worker\",\"pid\":");
    used = append_number(buffer, used, size, (unsigned long)getpid(), 10);
    return append(buffer, used, size, ",\"message\":\"");
}

/* A fault inside a recorded region: one line naming it. */
static void report_region(int signo, const char *address) {
    for (int i = 0; i < region_count; i++) {
        if (address < regions[i].start || address >= regions[i].end) continue;
        char line[1024];
        size_t n = 0;
        if (json_lines) {
            n = append_json_start(line, n, sizeof line);
        } else {
            n = append(line, n, sizeof line, "forklift: worker ");
            n = append_number(line, n, sizeof line, (unsigned long)getpid(), 10);
            n = append(line, n, sizeof line, ": ");
        }
        if (signo == SIGBUS) {
            /* Reading a mapped file past its end: the file was truncated on disk. */
            n = append(line, n, sizeof line, "SIGBUS reading ");
            n = json_lines ? append_json_text(line, n, sizeof line, regions[i].label) : append(line, n, sizeof line, regions[i].label);
            n = append(line, n, sizeof line, ": the file was changed or truncated on disk while mapped; replace data files by rename()");
        } else {
            n = append(line, n, sizeof line, "SIGSEGV writing to read-only shared memory of ");
            n = json_lines ? append_json_text(line, n, sizeof line, regions[i].label) : append(line, n, sizeof line, regions[i].label);
            n = append(line, n, sizeof line, " at 0x");
            n = append_number(line, n, sizeof line, (unsigned long)address, 16);
            n = append(line, n, sizeof line, ": data preloaded before fork must not be modified by workers");
        }
        n = append(line, n, sizeof line, json_lines ? "\"}\n" : "\n");
        ssize_t ignored = write(fault_log_fd, line, n);
        (void)ignored;
        return;
    }
}

static void fault_handler(int signo, siginfo_t *info, void *context) {
    (void)context;
    if (info != NULL && info->si_code <= 0 && (info->si_pid != getpid() || signo != SIGABRT)) {
        /* Sent, not a fault: by another process, or raised here (kill, raise, pthread_kill).
         * Die of it, as its sender means (and as the host counts it). Only abort() is left to
         * the crash path below: it re-raises with the default action itself. */
        signal(signo, SIG_DFL);
        raise(signo); /* pending until this handler returns, then the default action */
        return;
    }
    int fault = info != NULL && info->si_code > 0;
    if (fault && (signo == SIGSEGV || signo == SIGBUS)) report_region(signo, (const char *)info->si_addr);
    if (crash_backtraces) {
        /* The host names the frames and logs them with the request; the worker dies at once,
         * without the Swift backtracer (which takes a fraction of a second, and cannot name
         * the frames of plugins loaded from a private copy). */
        forklift_write_backtrace("crash", signo);
        signal(signo, SIG_DFL);
        if (!fault) raise(signo); /* abort(): the default action once we return */
        return; /* a fault recurs at once, and ends the process */
    }
    /* The previous handler (the Swift backtracer, or the default) gets its say: a fault
     * recurs when this returns; abort() re-raises. */
    sigaction(signo, previous_for(signo), NULL);
    if (!fault) raise(signo);
}

int forklift_fault_reporter_install(int log_fd, int backtraces, int json) {
    fault_log_fd = log_fd;
    crash_backtraces = backtraces;
    json_lines = json;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = fault_handler;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGSEGV, &action, &previous_segv) != 0) return -1;
    if (sigaction(SIGABRT, &action, &previous_abrt) != 0) return -1;
    if (sigaction(SIGILL, &action, &previous_ill) != 0) return -1;
    if (sigaction(SIGFPE, &action, &previous_fpe) != 0) return -1;
    if (sigaction(SIGTRAP, &action, &previous_trap) != 0) return -1;
    return sigaction(SIGBUS, &action, &previous_bus);
}
