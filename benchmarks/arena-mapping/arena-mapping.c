// What it costs a forked worker to read preloaded, read-only data kept in a sealed memfd
// instead of private anonymous memory (today's SharedArena). See README.md.
//
//   gcc -O2 -Wall -o /tmp/arena-mapping arena-mapping.c && /tmp/arena-mapping [SIZE_MiB [CHILDREN]]
//
// For each variant the parent fills SIZE bytes (every 8-byte word non-zero), then forks the
// children one after another; each child touches one byte per 4 KiB page, does 10 M dependent
// random 8-byte reads, reads /proc/self/smaps_rollup and reports through a pipe.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

#define PAGE 4096UL
#define RANDOM_READS 10000000UL
#define WARMUP_READS 1000000UL
#define MAX_CHILDREN 64

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static long minflt(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static uint64_t splitmix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static void fill(void *p, size_t size) {
    uint64_t *w = p;
    for (size_t i = 0; i < size / 8; i++) w[i] = splitmix(i) | 1;
}

// Dependent random reads: the next address depends on the value just loaded, so this is
// load latency (TLB and cache misses), not memory-level parallelism.
static uint64_t random_reads(const uint64_t *w, size_t words, unsigned long n, uint64_t x) {
    uint64_t v = 0;
    for (unsigned long i = 0; i < n; i++) {
        x ^= v;
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        v = w[(size_t)(((unsigned __int128)x * words) >> 64)];
    }
    return x ^ v;
}

// ---- /proc readers (kB) ----

struct mem {
    long rss, pss, pss_anon, pss_shmem, private_dirty, shared_dirty, shared_clean, anonymous, anon_huge, shmem_pmd, pte;
};

static void read_mem(struct mem *m) {
    memset(m, 0, sizeof *m);
    char line[256];
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (f) {
        while (fgets(line, sizeof line, f)) {
            long v;
            if (sscanf(line, "Rss: %ld", &v) == 1) m->rss = v;
            else if (sscanf(line, "Pss: %ld", &v) == 1) m->pss = v;
            else if (sscanf(line, "Pss_Anon: %ld", &v) == 1) m->pss_anon = v;
            else if (sscanf(line, "Pss_Shmem: %ld", &v) == 1) m->pss_shmem = v;
            else if (sscanf(line, "Private_Dirty: %ld", &v) == 1) m->private_dirty = v;
            else if (sscanf(line, "Shared_Dirty: %ld", &v) == 1) m->shared_dirty = v;
            else if (sscanf(line, "Shared_Clean: %ld", &v) == 1) m->shared_clean = v;
            else if (sscanf(line, "Anonymous: %ld", &v) == 1) m->anonymous = v;
            else if (sscanf(line, "AnonHugePages: %ld", &v) == 1) m->anon_huge = v;
            else if (sscanf(line, "ShmemPmdMapped: %ld", &v) == 1) m->shmem_pmd = v;
        }
        fclose(f);
    }
    f = fopen("/proc/self/status", "r");
    if (f) {
        while (fgets(line, sizeof line, f)) {
            long v;
            if (sscanf(line, "VmPTE: %ld", &v) == 1) m->pte = v;
        }
        fclose(f);
    }
}

// ---- variants ----

enum kind { ANON_THP, ANON_NOTHP, MEMFD_SHARED, MEMFD_PRIVATE };

struct variant {
    const char *name;
    enum kind kind;
    int map_populate;   // MAP_POPULATE on the parent's read-only mapping, before fork
    int populate_read;  // the child does MADV_POPULATE_READ over the range before reading
};

static const struct variant variants[] = {
    {"1 anon+THP, mprotect RO (today)", ANON_THP, 0, 0},
    {"1b anon, MADV_NOHUGEPAGE", ANON_NOTHP, 0, 0},
    {"2 memfd sealed, MAP_SHARED RO", MEMFD_SHARED, 0, 0},
    {"3 memfd sealed, MAP_PRIVATE RO", MEMFD_PRIVATE, 0, 0},
    {"4a = 2 + child POPULATE_READ", MEMFD_SHARED, 0, 1},
    {"4b = 3 + child POPULATE_READ", MEMFD_PRIVATE, 0, 1},
    {"4c = 2 + parent MAP_POPULATE", MEMFD_SHARED, 1, 0},
    {"4d = 3 + parent MAP_POPULATE", MEMFD_PRIVATE, 1, 0},
};

struct result {
    double fork_us;      // in the parent
    double populate_ms;  // MADV_POPULATE_READ, when asked for
    long populate_flt;
    double touch_ms;     // one byte per 4 KiB page
    long touch_flt;
    double rand_ns;      // per dependent random 8-byte read
    uint64_t check;
    struct mem mem;
};

static void *make(const struct variant *v, size_t size, int *fd_out, double *fill_ms) {
    double t0 = now_ns();
    void *p;
    *fd_out = -1;
    if (v->kind == ANON_THP || v->kind == ANON_NOTHP) {
        // as SharedArena does it
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) die("mmap anon");
        madvise(p, size, v->kind == ANON_THP ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
        fill(p, size);
        if (mprotect(p, size, PROT_READ)) die("mprotect");
    } else {
        int fd = memfd_create("arena", MFD_ALLOW_SEALING | MFD_CLOEXEC);
        if (fd < 0) die("memfd_create");
        if (ftruncate(fd, size)) die("ftruncate");
        void *w = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (w == MAP_FAILED) die("mmap rw");
        madvise(w, size, MADV_HUGEPAGE);  // would give shmem huge pages with shmem_enabled=advise
        fill(w, size);
        munmap(w, size);
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL)) die("F_ADD_SEALS");
        int flags = (v->kind == MEMFD_SHARED ? MAP_SHARED : MAP_PRIVATE) | (v->map_populate ? MAP_POPULATE : 0);
        p = mmap(NULL, size, PROT_READ, flags, fd, 0);
        if (p == MAP_FAILED) die("mmap ro");
        madvise(p, size, MADV_HUGEPAGE);
        *fd_out = fd;
    }
    *fill_ms = (now_ns() - t0) / 1e6;
    return p;
}

static void child(const struct variant *v, const uint64_t *base, size_t size, int out) {
    struct result r;
    memset(&r, 0, sizeof r);
    if (v->populate_read) {
        long f0 = minflt();
        double t0 = now_ns();
        if (madvise((void *)base, size, MADV_POPULATE_READ)) die("MADV_POPULATE_READ");
        r.populate_ms = (now_ns() - t0) / 1e6;
        r.populate_flt = minflt() - f0;
    }
    const volatile unsigned char *b = (const volatile unsigned char *)base;
    unsigned acc = 0;
    long f0 = minflt();
    double t0 = now_ns();
    for (size_t off = 0; off < size; off += PAGE) acc += b[off];
    r.touch_ms = (now_ns() - t0) / 1e6;
    r.touch_flt = minflt() - f0;

    size_t words = size / 8;
    uint64_t x = random_reads(base, words, WARMUP_READS, 88172645463325252ULL);
    t0 = now_ns();
    x = random_reads(base, words, RANDOM_READS, x | 1);
    r.rand_ns = (now_ns() - t0) / RANDOM_READS;
    r.check = x + acc;
    read_mem(&r.mem);
    if (write(out, &r, sizeof r) != sizeof r) _exit(2);
    _exit(0);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *xs, int n) {
    qsort(xs, n, sizeof *xs, cmp_double);
    return n % 2 ? xs[n / 2] : (xs[n / 2 - 1] + xs[n / 2]) / 2;
}

#define MED(field) ({ double xs_[MAX_CHILDREN]; for (int i_ = 0; i_ < n; i_++) xs_[i_] = (double)(rs[i_].field); median(xs_, n); })

static void run(const struct variant *v, size_t size, int n) {
    int fd;
    double fill_ms;
    uint64_t *base = make(v, size, &fd, &fill_ms);
    struct mem parent;
    read_mem(&parent);
    struct result rs[MAX_CHILDREN];
    for (int i = 0; i < n; i++) {
        int p[2];
        if (pipe(p)) die("pipe");
        double t0 = now_ns();
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) {
            close(p[0]);
            child(v, base, size, p[1]);
        }
        double fork_us = (now_ns() - t0) / 1e3;
        close(p[1]);
        ssize_t got = read(p[0], &rs[i], sizeof rs[i]);
        close(p[0]);
        int status;
        waitpid(pid, &status, 0);
        if (got != sizeof rs[i] || !WIFEXITED(status) || WEXITSTATUS(status)) {
            fprintf(stderr, "%s: child %d failed\n", v->name, i);
            exit(1);
        }
        rs[i].fork_us = fork_us;
    }
    char pop[32] = "-";
    if (v->populate_read) snprintf(pop, sizeof pop, "%.1f/%.0f", MED(populate_ms), MED(populate_flt));
    printf("%-32s %7.1f %6.0f %12s %8.1f %8.0f %7.1f %6.0f %6.0f %6.0f %6.0f %6.0f %6.0f %7.0f | %6.0f %6.0f\n",
           v->name, fill_ms, MED(fork_us), pop, MED(touch_ms), MED(touch_flt), MED(rand_ns),
           MED(mem.rss) / 1024, MED(mem.pss) / 1024, MED(mem.private_dirty) / 1024,
           MED(mem.anonymous) / 1024, MED(mem.anon_huge) / 1024, MED(mem.shmem_pmd) / 1024, MED(mem.pte),
           parent.rss / 1024.0, parent.anon_huge / 1024.0);
    fflush(stdout);
    munmap(base, size);
    if (fd >= 0) close(fd);
}

// ---- safety facts for a sealed memfd ----

static const char *outcome(int failed, int err) {
    static char buf[8][64];
    static int k;
    char *s = buf[k++ % 8];
    if (failed) snprintf(s, 64, "fails, %s (%s)", strerrorname_np(err), strerror(err));
    else snprintf(s, 64, "SUCCEEDS");
    return s;
}

static void safety(void) {
    const size_t size = 4UL << 20;
    int fd = memfd_create("safety", MFD_ALLOW_SEALING | MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, size)) die("memfd");
    char *w = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (w == MAP_FAILED) die("mmap");
    memset(w, 'A', size);
    int rc = fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE);
    printf("  F_SEAL_WRITE with a writable MAP_SHARED mapping still mapped: %s\n", outcome(rc < 0, errno));
    munmap(w, size);
    rc = fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
    printf("  after munmap, F_ADD_SEALS WRITE|GROW|SHRINK|SEAL: %s\n", rc < 0 ? outcome(1, errno) : "ok");
    int seals = fcntl(fd, F_GET_SEALS);
    printf("  F_GET_SEALS = 0x%x (%s%s%s%s%s)\n", seals, seals & F_SEAL_SEAL ? "SEAL " : "",
           seals & F_SEAL_SHRINK ? "SHRINK " : "", seals & F_SEAL_GROW ? "GROW " : "",
           seals & F_SEAL_WRITE ? "WRITE" : "", seals & ~0xf ? " +other" : "");

    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    printf("  mmap(PROT_READ|PROT_WRITE, MAP_SHARED): %s\n", outcome(p == MAP_FAILED, errno));
    if (p != MAP_FAILED) munmap(p, size);
    char *r = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    if (r == MAP_FAILED) die("mmap ro");
    rc = mprotect(r, size, PROT_READ | PROT_WRITE);
    printf("  mprotect(PROT_WRITE) on the read-only MAP_SHARED mapping: %s\n", outcome(rc < 0, errno));
    ssize_t n = write(fd, "x", 1);
    printf("  write(fd): %s\n", outcome(n < 0, errno));
    n = pwrite(fd, "x", 1, 0);
    printf("  pwrite(fd, offset 0): %s\n", outcome(n < 0, errno));
    rc = ftruncate(fd, size / 2);
    int e1 = errno;
    int rc2 = ftruncate(fd, size * 2);
    printf("  ftruncate smaller: %s; larger: %s\n", outcome(rc < 0, e1), outcome(rc2 < 0, errno));
    rc = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, PAGE);
    e1 = errno;
    rc2 = fallocate(fd, 0, size, PAGE);
    printf("  fallocate punch hole: %s; extend: %s\n", outcome(rc < 0, e1), outcome(rc2 < 0, errno));
    rc = fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE);
    printf("  F_ADD_SEALS after F_SEAL_SEAL: %s\n", outcome(rc < 0, errno));
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int fd2 = open(path, O_RDWR);
    n = fd2 < 0 ? -1 : write(fd2, "x", 1);
    printf("  reopen /proc/self/fd/N O_RDWR then write: open %s, write %s\n", outcome(fd2 < 0, errno),
           fd2 < 0 ? "-" : outcome(n < 0, errno));
    if (fd2 >= 0) close(fd2);
    char *q = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    printf("  mmap(PROT_READ|PROT_WRITE, MAP_PRIVATE): %s", outcome(q == MAP_FAILED, errno));
    if (q != MAP_FAILED) {
        q[0] = 'B';
        char c;
        if (pread(fd, &c, 1, 0) != 1) c = '?';
        printf("; a write there is a private copy: file byte 0 still '%c', shared mapping sees '%c'", c, r[0]);
        munmap(q, size);
    }
    printf("\n");
    q = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    rc = mprotect(q, size, PROT_READ | PROT_WRITE);
    printf("  mprotect(PROT_WRITE) on a read-only MAP_PRIVATE mapping: %s (writes would be private COW)\n",
           outcome(rc < 0, errno));
    munmap(q, size);
    pid_t pid = fork();
    if (pid == 0) {
        ((volatile char *)r)[0] = 'Z';
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    printf("  a forked child writing into the read-only MAP_SHARED mapping: %s\n",
           WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "is NOT killed");
    munmap(r, size);
    close(fd);
}

static void print_file(const char *label, const char *path) {
    char buf[256] = "?";
    FILE *f = fopen(path, "r");
    if (f) {
        if (!fgets(buf, sizeof buf, f)) strcpy(buf, "?");
        fclose(f);
    }
    buf[strcspn(buf, "\n")] = 0;
    printf("%s: %s\n", label, buf);
}

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
    int n = argc > 2 ? atoi(argv[2]) : 4;
    if (mib < 2 || n < 1 || n > MAX_CHILDREN) {
        fprintf(stderr, "usage: %s [SIZE_MiB >= 2 [CHILDREN 1..%d]]\n", argv[0], MAX_CHILDREN);
        return 2;
    }
    size_t size = mib << 20;
    struct utsname u;
    uname(&u);
    printf("kernel %s %s; size %zu MiB; %d children, one after another\n", u.release, u.machine, mib, n);
    print_file("loadavg", "/proc/loadavg");
    print_file("THP enabled", "/sys/kernel/mm/transparent_hugepage/enabled");
    print_file("THP defrag", "/sys/kernel/mm/transparent_hugepage/defrag");
    print_file("THP shmem_enabled", "/sys/kernel/mm/transparent_hugepage/shmem_enabled");
    if (access("/sys/kernel/debug/fault_around_bytes", R_OK) == 0)
        print_file("fault_around_bytes", "/sys/kernel/debug/fault_around_bytes");
    printf("sealed memfd safety:\n");
    safety();
    printf("\nmedians over children; fill = parent's setup; touch = 1 byte per 4 KiB page; rand = 10 M dependent"
           " 8-byte reads;\nmemory columns are the child's smaps_rollup after reading (MiB), PTE = VmPTE (kB);"
           " last two: parent's Rss and AnonHugePages\n");
    printf("%-32s %7s %6s %12s %8s %8s %7s %6s %6s %6s %6s %6s %6s %7s | %6s %6s\n", "variant", "fill_ms", "fork_us",
           "pop_ms/flt", "touch_ms", "touch_fl", "rand_ns", "Rss", "Pss", "PrivDi", "Anon", "AnonHP", "ShPMD", "PTE_kB",
           "P.Rss", "P.AHP");
    // warm-up: have the machine hand us SIZE of memory once, so the first variant does not pay alone
    void *warm = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (warm == MAP_FAILED) die("mmap warm-up");
    fill(warm, size);
    munmap(warm, size);
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) run(&variants[i], size, n);
    print_file("THP shmem_enabled at end", "/sys/kernel/mm/transparent_hugepage/shmem_enabled");
    print_file("loadavg at end", "/proc/loadavg");
    return 0;
}
