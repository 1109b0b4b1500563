/*
 * fcgi-load: a FastCGI load generator (the benchmarks' client; benchmarks/peers.py builds it
 * with cc -O2 into .build-bench/).
 *
 *   fcgi-load --connect unix:/tmp/www.sock|/tmp/www.sock|127.0.0.1:9000 [options]
 *
 *   -c, --connections N     concurrent connections (default 1)
 *   -t, --threads N         threads (default 1); with more connections than threads, closed loop,
 *                           they take the connections' events from one epoll set (see `shared`)
 *   -d, --duration S        seconds to measure (default 2), or
 *   -n, --requests N        stop after N requests
 *   -w, --warmup S          seconds run before measuring (not counted; default 0)
 *   -k, --keep-conn         FCGI_KEEP_CONN: many requests per connection (default: one per connection)
 *   -R, --rate R            open loop: R requests per second in all, on schedule, on at most -c
 *                           connections; a request's latency counts from when it was due (so a
 *                           server that falls behind pays for the queue it causes: no
 *                           coordinated omission). Without it, each connection sends its next
 *                           request as soon as the last one is answered (closed loop).
 *   --path P                the request's path (default /), as DOCUMENT_URI, SCRIPT_NAME, REQUEST_URI
 *   --query Q               QUERY_STRING (and REQUEST_URI's query)
 *   -X, --method M          REQUEST_METHOD (default GET, POST with a body)
 *   -p, --param KEY=VALUE   a param more, or one replacing a default (repeatable)
 *   --body-size N           a body of N bytes ('x'), or
 *   --body-file F           a body from a file
 *   --expect-status N       a response of another status is an error (default 200; 0: any)
 *   --expect-length N       ... of another body length (after the headers)
 *   --expect-min-length N   ... with a shorter body
 *   --expect-substring S    ... without S in its first 64 KiB (headers included)
 *   --timeout S             a request taking longer is an error and its connection closed (default 30)
 *   --label L               a name for the JSON line
 *   --quiet                 only the JSON line
 *   --show                  print the first response (its first 64 KiB) to standard error
 *
 * Prints a human summary, then one JSON line (the last line of standard output): throughput,
 * errors by kind, latency p50/p90/p99/p99.9/max (log-linear buckets, < 0.8 % error), and the
 * spread of requests over connections (min, max, Jain's fairness index).
 *
 * A request's latency runs from its first byte sent (from the connect, for a new connection
 * per request; from when it was due, with --rate) to its END_REQUEST. A kept connection the server closes before answering any
 * byte of the next request is reopened and the request sent again ("reconnects", not errors:
 * what nginx does for an idle upstream connection closed under it).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define FCGI_BEGIN_REQUEST 1
#define FCGI_END_REQUEST 3
#define FCGI_PARAMS 4
#define FCGI_STDIN 5
#define FCGI_STDOUT 6
#define FCGI_STDERR 7
#define FCGI_KEEP_CONN 1
#define KEEP_BYTES 65536 /* what is kept of a response for the status and substring checks */
#define READ_CHUNK 65536

/* ---------- latency histogram: log-linear buckets of nanoseconds ---------- */

#define SUB 128                      /* buckets per power of two above 256 ns */
#define BUCKETS (256 + 48 * SUB)

typedef struct { uint64_t counts[BUCKETS]; uint64_t total, max, min; double sum; } histogram;

static int bucket_of(uint64_t v) {
    if (v < 256) return (int)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - 7;
    int index = 256 + (shift - 1) * SUB + (int)((v >> shift) - SUB);
    return index < BUCKETS ? index : BUCKETS - 1;
}

static uint64_t bucket_value(int index) { /* the middle of the bucket */
    if (index < 256) return (uint64_t)index;
    int shift = (index - 256) / SUB + 1;
    uint64_t low = (uint64_t)((index - 256) % SUB + SUB) << shift;
    return low + ((1ull << shift) >> 1);
}

static void record(histogram *h, uint64_t ns) {
    h->counts[bucket_of(ns)]++;
    h->total++;
    h->sum += (double)ns;
    if (ns > h->max) h->max = ns;
    if (h->min == 0 || ns < h->min) h->min = ns;
}

static uint64_t quantile(const histogram *h, double q) {
    if (h->total == 0) return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)h->total), seen = 0;
    if (rank == 0) rank = 1;
    for (int i = 0; i < BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = bucket_value(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

/* ---------- options ---------- */

static struct {
    char *connect;
    int connections, threads, keep, quiet, show;
    double duration, warmup, timeout;
    long requests;
    char *path, *query, *method, *label;
    char **params; int nparams;
    long body_size; char *body_file;
    int expect_status; long expect_length, expect_min_length; char *expect_substring;
    double rate;
} opt = { .connections = 1, .threads = 1, .duration = 2, .timeout = 30, .requests = 0,
          .path = "/", .query = "", .expect_status = 200, .expect_length = -1, .expect_min_length = -1 };

static struct sockaddr_storage address;
static socklen_t address_length;
static int address_family;

static unsigned char *request_bytes; /* the whole request, body included, the same every time */
static size_t request_length;

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void die(const char *fmt, const char *arg) {
    fprintf(stderr, "fcgi-load: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(2);
}

/* ---------- the request ---------- */

typedef struct { unsigned char *data; size_t length, capacity; } buffer;

static void append(buffer *b, const void *data, size_t n) {
    if (b->length + n > b->capacity) {
        size_t capacity = b->capacity ? b->capacity : 4096;
        while (capacity < b->length + n) capacity *= 2;
        b->data = realloc(b->data, capacity);
        if (!b->data) die("%s", "out of memory");
        b->capacity = capacity;
    }
    memcpy(b->data + b->length, data, n);
    b->length += n;
}

static void append_record(buffer *b, int type, const unsigned char *content, size_t n) {
    unsigned char head[8] = { 1, (unsigned char)type, 0, 1, (unsigned char)(n >> 8), (unsigned char)n, (unsigned char)((8 - n % 8) % 8), 0 };
    static const unsigned char zeros[8];
    append(b, head, 8);
    if (n) append(b, content, n);
    append(b, zeros, head[6]);
}

static void append_length(buffer *b, size_t n) {
    if (n < 128) { unsigned char c = (unsigned char)n; append(b, &c, 1); }
    else { unsigned char c[4] = { (unsigned char)((n >> 24) | 0x80), (unsigned char)(n >> 16), (unsigned char)(n >> 8), (unsigned char)n }; append(b, c, 4); }
}

typedef struct { const char *name; char *value; } param;

static void build_request(void) {
    unsigned char *body = NULL;
    size_t body_length = 0;
    if (opt.body_file) {
        FILE *f = fopen(opt.body_file, "rb");
        if (!f) die("cannot open %s", opt.body_file);
        buffer b = {0};
        unsigned char chunk[65536];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) append(&b, chunk, n);
        fclose(f);
        body = b.data; body_length = b.length;
    } else if (opt.body_size > 0) {
        body_length = (size_t)opt.body_size;
        body = malloc(body_length);
        memset(body, 'x', body_length);
    }
    const char *method = opt.method ? opt.method : (body_length ? "POST" : "GET");
    char uri[8192], length[32], port[16] = "0";
    snprintf(uri, sizeof uri, "%s%s%s", opt.path, *opt.query ? "?" : "", opt.query);
    snprintf(length, sizeof length, "%zu", body_length);
    if (address_family != AF_UNIX) snprintf(port, sizeof port, "%d", ntohs(((struct sockaddr_in *)&address)->sin_port));
    /* what nginx's fastcgi_params sends */
    param defaults[] = {
        { "QUERY_STRING", opt.query }, { "REQUEST_METHOD", (char *)method },
        { "CONTENT_TYPE", body_length ? "application/octet-stream" : "" }, { "CONTENT_LENGTH", body_length ? length : "" },
        { "SCRIPT_NAME", opt.path }, { "REQUEST_URI", uri }, { "DOCUMENT_URI", opt.path },
        { "DOCUMENT_ROOT", "/var/www" }, { "SERVER_PROTOCOL", "HTTP/1.1" }, { "REQUEST_SCHEME", "http" },
        { "GATEWAY_INTERFACE", "CGI/1.1" }, { "SERVER_SOFTWARE", "fcgi-load" },
        { "REMOTE_ADDR", "127.0.0.1" }, { "REMOTE_PORT", "40000" }, { "SERVER_ADDR", "127.0.0.1" },
        { "SERVER_PORT", port }, { "SERVER_NAME", "localhost" }, { "HTTP_HOST", "localhost" },
    };
    int ndefaults = sizeof defaults / sizeof defaults[0];
    buffer params = {0};
    for (int i = 0; i < ndefaults; i++) {
        int replaced = 0;
        for (int j = 0; j < opt.nparams; j++) {
            char *eq = strchr(opt.params[j], '=');
            if (eq && (size_t)(eq - opt.params[j]) == strlen(defaults[i].name) && !strncmp(opt.params[j], defaults[i].name, (size_t)(eq - opt.params[j]))) replaced = 1;
        }
        if (replaced) continue;
        size_t nl = strlen(defaults[i].name), vl = strlen(defaults[i].value);
        append_length(&params, nl); append_length(&params, vl);
        append(&params, defaults[i].name, nl); append(&params, defaults[i].value, vl);
    }
    for (int j = 0; j < opt.nparams; j++) {
        char *eq = strchr(opt.params[j], '=');
        if (!eq) die("a param is KEY=VALUE: %s", opt.params[j]);
        size_t nl = (size_t)(eq - opt.params[j]), vl = strlen(eq + 1);
        append_length(&params, nl); append_length(&params, vl);
        append(&params, opt.params[j], nl); append(&params, eq + 1, vl);
    }
    buffer b = {0};
    unsigned char begin[8] = { 0, 1, opt.keep ? FCGI_KEEP_CONN : 0, 0, 0, 0, 0, 0 };
    append_record(&b, FCGI_BEGIN_REQUEST, begin, 8);
    for (size_t at = 0; at < params.length; at += 65528) {
        size_t n = params.length - at < 65528 ? params.length - at : 65528;
        append_record(&b, FCGI_PARAMS, params.data + at, n);
    }
    append_record(&b, FCGI_PARAMS, NULL, 0);
    for (size_t at = 0; at < body_length; at += 65528) {
        size_t n = body_length - at < 65528 ? body_length - at : 65528;
        append_record(&b, FCGI_STDIN, body + at, n);
    }
    append_record(&b, FCGI_STDIN, NULL, 0);
    request_bytes = b.data;
    request_length = b.length;
    free(params.data);
    free(body);
}

static void resolve(const char *spec) {
    memset(&address, 0, sizeof address);
    const char *path = NULL;
    if (!strncmp(spec, "unix:", 5)) path = spec + 5;
    else if (strchr(spec, '/')) path = spec;
    if (path) {
        struct sockaddr_un *un = (struct sockaddr_un *)&address;
        if (strlen(path) >= sizeof un->sun_path) die("socket path too long: %s", path);
        un->sun_family = AF_UNIX;
        strcpy(un->sun_path, path);
        address_length = sizeof *un;
        address_family = AF_UNIX;
        return;
    }
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (!colon) die("--connect is unix:PATH, a path, or HOST:PORT: %s", spec);
    size_t hl = (size_t)(colon - spec);
    if (hl >= sizeof host) die("host too long: %s", spec);
    memcpy(host, spec, hl); host[hl] = 0;
    if (host[0] == '[' && hl > 1 && host[hl - 1] == ']') { memmove(host, host + 1, hl - 2); host[hl - 2] = 0; }
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *found;
    if (getaddrinfo(host, colon + 1, &hints, &found) != 0 || !found) die("cannot resolve %s", spec);
    memcpy(&address, found->ai_addr, found->ai_addrlen);
    address_length = found->ai_addrlen;
    address_family = found->ai_family;
    freeaddrinfo(found);
}

/* ---------- connections ---------- */

enum state { IDLE, CONNECTING, SENDING, RECEIVING };
enum error_kind { E_CONNECT, E_STATUS, E_LENGTH, E_BODY, E_PROTOCOL, E_CLOSED, E_TIMEOUT, E_KINDS };
static const char *error_names[E_KINDS] = { "connect", "status", "length", "body", "protocol", "closed", "timeout" };

typedef struct {
    int fd, state, reused;          /* reused: this connection served a request before */
    uint64_t started;               /* the request's first byte (or connect) */
    size_t sent;
    unsigned char head[8]; int head_have;  /* the record header being read */
    int type; size_t content_left, padding_left;
    unsigned char end_body[8]; int end_have;
    unsigned char *kept; size_t kept_length;  /* the first KEEP_BYTES of STDOUT */
    size_t stdout_length;
    long served;
    uint64_t retry_at;              /* a unix connect that found the backlog full waits */
    uint64_t due;                   /* --rate: when the request it carries was due (0: none) */
    uint32_t watched;               /* the epoll events asked for now (0: not in the epoll set) */
    uint64_t restart_started;       /* a request sent again after a reconnect keeps its start */
    atomic_int claim;               /* shared mode: FREE, ARMED or BUSY (see `shared`) */
} connection;

/* Shared mode (closed loop, more connections than threads): every thread waits on one epoll set
 * and takes one event at a time, so that a thread the scheduler puts aside holds up one
 * connection, not its whole share of them (with a set per thread, 64 connections on 2 threads,
 * a thread descheduled for a few ms left 32 answered requests unread: their latency was the
 * client's). A connection is armed EPOLLONESHOT, so one thread at a time handles it; `claim`
 * says who may touch it: FREE (not in the epoll set: its home thread's, to start or retry it),
 * ARMED (waiting in the set), BUSY (a thread is handling it). Arming is the last thing a
 * thread does to a connection. */
enum claim_state { FREE, ARMED, BUSY };
static int shared;
/* Shared mode: connections left FREE with a retry due (only their home thread restarts them, so
 * while there are any, every thread wakes every millisecond to look). */
static atomic_int retries_waiting;

typedef struct {
    int index, epoll, count, shown;
    connection *connections;         /* its own share (shared mode: the ones it starts and sweeps) */
    connection *armed;               /* shared mode: the connection it armed last */
    histogram latency;
    uint64_t errors[E_KINDS], reconnects, connect_retries, completed, bytes;
    uint64_t next_due, interval;    /* --rate: this thread's schedule (its share of the rate) */
    uint64_t late;                  /* --rate: requests sent more than 1 ms after they were due */
    pthread_t thread;
} worker;

static uint64_t measure_from, measure_until; /* ns, monotonic */
static atomic_long requests_left;           /* with -n */
static atomic_int stopping;


/* The close takes the descriptor out of the epoll set: no EPOLL_CTL_DEL (a system call less
 * per connection; the load generator's own cost is part of what every server is measured with). */
static void close_connection(worker *w, connection *c) {
    (void)w;
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->state = IDLE;
    c->reused = 0;
    c->watched = 0;
}

/* Asks epoll for `events` on the connection, with a system call only when that changes: a
 * request that goes out in one send (all of them but large bodies) never asks for EPOLLOUT,
 * so a kept connection costs epoll_wait, recv and send per request and nothing more. */
static void watch(worker *w, connection *c, uint32_t events) {
    if (shared) {
        /* One shot: armed again after every event. Marked ARMED only once in the set: a thread
         * that gets its event meanwhile waits for that (`claim`). */
        struct epoll_event e = { .events = events | EPOLLONESHOT, .data.ptr = c };
        int op = c->watched ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
        c->watched = events;
        w->armed = c;
        epoll_ctl(w->epoll, op, c->fd, &e);
        atomic_store_explicit(&c->claim, ARMED, memory_order_release);
        return;
    }
    if (c->watched == events) return;
    struct epoll_event e = { .events = events, .data.ptr = c };
    epoll_ctl(w->epoll, c->watched ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &e);
    c->watched = events;
}

/* Shared mode: takes an armed connection for this thread; waits while another thread is
 * arming it or sweeping it; 0 for a stale event (the connection was closed since). */
static int claim(connection *c) {
    for (;;) {
        int expected = ARMED;
        if (atomic_compare_exchange_strong(&c->claim, &expected, BUSY)) return 1;
        if (expected == FREE) return 0;
        sched_yield();
    }
}

/* Shared mode: the home thread takes a connection that is not in the epoll set. */
static int claim_free(connection *c) {
    int expected = FREE;
    return atomic_compare_exchange_strong(&c->claim, &expected, BUSY);
}

/* Shared mode: after handling a connection, it is FREE unless this thread armed it (then
 * another thread may have it already: hands off). */
static void release(worker *w, connection *c) {
    if (w->armed == c) return;
    if (c->retry_at) atomic_fetch_add(&retries_waiting, 1);
    atomic_store_explicit(&c->claim, FREE, memory_order_release);
}

static int claim_request(void) {
    if (atomic_load(&stopping)) return 0;
    if (opt.requests > 0) {
        if (atomic_fetch_sub(&requests_left, 1) <= 0) { atomic_store(&stopping, 1); return 0; }
    }
    return 1;
}

static void begin_response(connection *c) {
    c->head_have = 0; c->content_left = 0; c->padding_left = 0; c->type = 0;
    c->kept_length = 0; c->stdout_length = 0; c->end_have = 0;
}

static void send_more(worker *w, connection *c);

static void start_request(worker *w, connection *c, uint64_t now) {
    c->started = c->restart_started ? c->restart_started : c->due ? c->due : now;
    c->restart_started = 0;
    c->sent = 0;
    begin_response(c);
    if (c->fd < 0) {
        c->fd = socket(address_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0) { w->errors[E_CONNECT]++; c->state = IDLE; c->retry_at = now + 1000000; return; }
        if (address_family != AF_UNIX) { int one = 1; setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); }
        int r = connect(c->fd, (struct sockaddr *)&address, address_length);
        if (r < 0 && errno == EAGAIN && address_family == AF_UNIX) {
            /* a unix listener's backlog is full: try again shortly, not an error */
            close(c->fd); c->fd = -1;
            c->state = IDLE;
            c->retry_at = now + 200000;
            w->connect_retries++;
            return;
        }
        if (r < 0 && errno != EINPROGRESS) {
            close(c->fd); c->fd = -1;
            c->state = IDLE;
            c->retry_at = now + 1000000;
            if (now >= measure_from) w->errors[E_CONNECT]++;
            return;
        }
        c->state = r < 0 ? CONNECTING : SENDING;
        if (r < 0) { watch(w, c, EPOLLOUT); return; }
        if (!shared) watch(w, c, EPOLLIN); /* shared: send_more arms it, last */
    } else {
        c->state = SENDING;
    }
    send_more(w, c);
}

static void next_request(worker *w, connection *c, uint64_t now) {
    if (!opt.keep) close_connection(w, c);
    if (opt.rate > 0) {
        c->due = 0; /* free for the next request due (a kept connection stays open, idle) */
        c->state = IDLE;
        if (c->fd >= 0) watch(w, c, EPOLLIN);
        return;
    }
    if (claim_request()) start_request(w, c, now);
    else close_connection(w, c);
}

/* --rate: starts every request due by now on a free connection; the ones that find none wait
 * for one, their latency counting from when they were due. */
static void start_due(worker *w, uint64_t now) {
    while (w->next_due <= now) {
        connection *free_one = NULL;
        for (int i = 0; i < w->count && !free_one; i++) {
            connection *c = &w->connections[i];
            if (c->state == IDLE && !c->retry_at && !c->due) free_one = c;
        }
        if (!free_one) return;
        if (!claim_request()) return;
        free_one->due = w->next_due;
        w->next_due += w->interval;
        if (free_one->due >= measure_from && now - free_one->due > 1000000) w->late++;
        start_request(w, free_one, now);
    }
}

static void fail(worker *w, connection *c, int kind, uint64_t now) {
    if (c->started >= measure_from && now <= measure_until) w->errors[kind]++;
    close_connection(w, c);
    c->due = 0; /* --rate: that request is lost (an error); the schedule goes on */
    c->retry_at = now + (kind == E_CONNECT ? 1000000 : 1); /* nonzero: start again */
}

/* The server closed the connection. A kept one closed before any of the answer to its next
 * request (`before_answer`) is opened again and the request sent again, its latency counting
 * from the first try; anything else is an error. */
static void closed(worker *w, connection *c, int before_answer) {
    if (!before_answer) { fail(w, c, E_CLOSED, now_ns()); return; }
    w->reconnects++;
    c->restart_started = c->started;
    close_connection(w, c);
    start_request(w, c, now_ns());
}

static void send_more(worker *w, connection *c) {
    while (c->sent < request_length) {
        ssize_t n = send(c->fd, request_bytes + c->sent, request_length - c->sent, MSG_NOSIGNAL);
        if (n > 0) { c->sent += (size_t)n; continue; }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) { watch(w, c, EPOLLIN | EPOLLOUT); return; }
        if (n < 0 && errno == EINTR) continue;
        closed(w, c, c->reused && c->stdout_length == 0);
        return;
    }
    c->state = RECEIVING;
    watch(w, c, EPOLLIN);
}

/* Checks the response of a completed request; returns -1 when it is good, or the error kind. */
static int check(connection *c) {
    unsigned char *k = c->kept;
    size_t n = c->kept_length, header_end = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (k[i] == '\n' && k[i + 1] == '\n') { header_end = i + 2; break; }
        if (i + 3 < n && k[i] == '\r' && k[i + 1] == '\n' && k[i + 2] == '\r' && k[i + 3] == '\n') { header_end = i + 4; break; }
    }
    if (!header_end) return E_PROTOCOL;
    int status = 200;
    for (size_t i = 0; i < header_end; ) {
        size_t e = i;
        while (e < header_end && k[e] != '\n') e++;
        if (e - i > 7 && !strncasecmp((char *)k + i, "Status:", 7)) status = atoi((char *)k + i + 7);
        i = e + 1;
    }
    if (opt.expect_status && status != opt.expect_status) return E_STATUS;
    long body = (long)(c->stdout_length - header_end);
    if (opt.expect_length >= 0 && body != opt.expect_length) return E_LENGTH;
    if (opt.expect_min_length >= 0 && body < opt.expect_min_length) return E_LENGTH;
    if (opt.expect_substring && !memmem(k, n, opt.expect_substring, strlen(opt.expect_substring))) return E_BODY;
    return -1;
}

static void completed(worker *w, connection *c, uint64_t now) {
    int protocol_status = c->end_body[4];
    int bad = protocol_status != 0 ? E_PROTOCOL : check(c);
    if (opt.show && !w->shown) {
        w->shown = 1;
        fprintf(stderr, "fcgi-load: a response (%zu bytes of STDOUT%s, protocol status %d):\n", c->stdout_length,
                c->stdout_length > c->kept_length ? ", the first 64 KiB shown" : "", protocol_status);
        fwrite(c->kept, 1, c->kept_length, stderr);
        fputs("\n", stderr);
    }
    if (c->started >= measure_from && now <= measure_until) {
        if (bad >= 0) w->errors[bad]++;
        else {
            record(&w->latency, now - c->started);
            w->completed++;
            w->bytes += c->stdout_length;
            c->served++;
        }
    }
    c->reused = 1;
    next_request(w, c, now);
}

static void receive(worker *w, connection *c) {
    unsigned char chunk[READ_CHUNK];
    for (;;) {
        ssize_t n = recv(c->fd, chunk, sizeof chunk, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            closed(w, c, c->reused && c->stdout_length == 0 && c->head_have == 0 && c->type == 0);
            return;
        }
        if (n < 0) { if (errno == EINTR) continue; return; }
        size_t at = 0;
        while (at < (size_t)n) {
            if (c->content_left == 0 && c->padding_left == 0 && c->type == 0) {
                size_t need = 8 - (size_t)c->head_have, have = (size_t)n - at;
                size_t take = need < have ? need : have;
                memcpy(c->head + c->head_have, chunk + at, take);
                c->head_have += (int)take; at += take;
                if (c->head_have < 8) break;
                c->head_have = 0;
                c->type = c->head[1];
                c->content_left = ((size_t)c->head[4] << 8) | c->head[5];
                c->padding_left = c->head[6];
                c->end_have = 0;
                if (c->head[0] != 1) { fail(w, c, E_PROTOCOL, now_ns()); return; }
            }
            if (c->content_left > 0) {
                size_t have = (size_t)n - at, take = c->content_left < have ? c->content_left : have;
                if (c->type == FCGI_STDOUT) {
                    if (c->kept_length < KEEP_BYTES) {
                        size_t keep = KEEP_BYTES - c->kept_length < take ? KEEP_BYTES - c->kept_length : take;
                        memcpy(c->kept + c->kept_length, chunk + at, keep);
                        c->kept_length += keep;
                    }
                    c->stdout_length += take;
                } else if (c->type == FCGI_END_REQUEST) {
                    size_t keep = 8 - (size_t)c->end_have < take ? 8 - (size_t)c->end_have : take;
                    memcpy(c->end_body + c->end_have, chunk + at, keep);
                    c->end_have += (int)keep;
                }
                c->content_left -= take; at += take;
            }
            if (c->content_left == 0 && c->padding_left > 0) {
                size_t have = (size_t)n - at, take = c->padding_left < have ? c->padding_left : have;
                c->padding_left -= take; at += take;
            }
            if (c->content_left == 0 && c->padding_left == 0) {
                int type = c->type;
                c->type = 0;
                if (type == FCGI_END_REQUEST) {
                    if (at != (size_t)n) { fail(w, c, E_PROTOCOL, now_ns()); return; }
                    completed(w, c, now_ns());
                    return;
                }
            }
        }
    }
}

/* Shared mode: one event of the common epoll set, handled by whichever thread took it. */
static void handle_shared(worker *w, connection *c, uint32_t events, uint64_t now) {
    if (!claim(c)) return;
    w->armed = NULL;
    if (c->fd >= 0) {
        if (c->state == CONNECTING) {
            int error = 0; socklen_t length = sizeof error;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &length);
            if (error) fail(w, c, E_CONNECT, now);
            else { c->state = SENDING; send_more(w, c); }
        } else {
            if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && c->state != IDLE) receive(w, c);
            if (w->armed != c && c->fd >= 0 && c->state == SENDING && (events & EPOLLOUT)) send_more(w, c);
        }
    }
    /* still waiting for the rest of the response (or of the send): armed again */
    if (w->armed != c && c->fd >= 0 && c->state != IDLE) watch(w, c, c->watched ? c->watched : EPOLLIN);
    release(w, c);
}

/* Shared mode: the thread's loop. Its own connections it starts, retries and sweeps for timeouts
 * (each under `claim`); events it takes from the common set one at a time. */
static void *run_shared(worker *w) {
    uint64_t now = now_ns();
    for (int i = 0; i < w->count; i++) {
        connection *c = &w->connections[i];
        w->armed = NULL;
        if (claim_free(c)) {
            if (claim_request()) start_request(w, c, now);
            release(w, c);
        }
    }
    uint64_t last_sweep = now;
    for (;;) {
        now = now_ns();
        int busy = 0;
        for (int i = 0; i < w->count; i++) {
            connection *c = &w->connections[i];
            /* FREE: only this thread touches it, so its fields can be read */
            if (atomic_load_explicit(&c->claim, memory_order_acquire) != FREE || c->retry_at) busy = 1;
        }
        if (now >= measure_until || (atomic_load(&stopping) && opt.requests > 0 && !busy)) break;
        struct epoll_event event;
        /* At most 10 ms: another thread may have finished this one's last connection (-n) or
         * left one of them to retry; the epoll set wakes its threads last in, first out. */
        int n = epoll_wait(w->epoll, &event, 1, atomic_load(&retries_waiting) > 0 ? 1 : 10);
        now = now_ns();
        if (n == 1) handle_shared(w, event.data.ptr, event.events, now);
        for (int i = 0; i < w->count; i++) {
            connection *c = &w->connections[i];
            if (atomic_load_explicit(&c->claim, memory_order_acquire) != FREE || !c->retry_at || now < c->retry_at) continue;
            if (!claim_free(c)) continue;
            w->armed = NULL;
            c->retry_at = 0;
            atomic_fetch_sub(&retries_waiting, 1);
            if (claim_request()) start_request(w, c, now);
            release(w, c);
        }
        now = now_ns();
        if (now - last_sweep > 100000000) {
            last_sweep = now;
            for (int i = 0; i < w->count; i++) {
                connection *c = &w->connections[i];
                int expected = ARMED;
                if (!atomic_compare_exchange_strong(&c->claim, &expected, BUSY)) continue;
                w->armed = NULL;
                if (c->state != IDLE && now > c->started && now - c->started > (uint64_t)(opt.timeout * 1e9)) {
                    fail(w, c, E_TIMEOUT, now);
                    c->retry_at = 0;
                    if (claim_request()) start_request(w, c, now);
                    release(w, c);
                } else {
                    atomic_store_explicit(&c->claim, ARMED, memory_order_release); /* untouched: still in the set */
                }
            }
        }
    }
    return NULL;
}

static void *run(void *argument) {
    worker *w = argument;
    if (shared) return run_shared(w);
    struct epoll_event events[256];
    uint64_t now = now_ns();
    if (opt.rate > 0) {
        w->interval = (uint64_t)(1e9 * opt.threads / opt.rate);
        w->next_due = now + w->interval * (uint64_t)w->index / (uint64_t)opt.threads; /* the threads take turns */
    } else {
        for (int i = 0; i < w->count; i++) {
            connection *c = &w->connections[i];
            if (claim_request()) start_request(w, c, now);
        }
    }
    uint64_t last_sweep = now;
    for (;;) {
        now = now_ns();
        if (now >= measure_until || (atomic_load(&stopping) && opt.requests > 0)) {
            int busy = 0;
            for (int i = 0; i < w->count; i++) if (w->connections[i].state != IDLE) busy = 1;
            if (now >= measure_until || !busy) break;
        }
        int timeout = 100;
        for (int i = 0; i < w->count; i++) if (w->connections[i].state == IDLE && w->connections[i].retry_at) timeout = 1;
        int n;
        if (opt.rate > 0) {
            start_due(w, now);
            /* until the next request is due, to the microsecond (epoll_wait's milliseconds are too
             * coarse); one still due found no free connection: until a response frees one (not a
             * spin, which would take the core from the server that is behind) */
            uint64_t wait = w->next_due > now ? w->next_due - now : (uint64_t)timeout * 1000000;
            if (wait > (uint64_t)timeout * 1000000) wait = (uint64_t)timeout * 1000000;
            struct timespec until = { (time_t)(wait / 1000000000), (long)(wait % 1000000000) };
            n = epoll_pwait2(w->epoll, events, 256, &until, NULL);
        } else {
            n = epoll_wait(w->epoll, events, 256, timeout);
        }
        now = now_ns();
        for (int i = 0; i < n; i++) {
            connection *c = events[i].data.ptr;
            if (c->fd < 0) continue;
            if (c->state == CONNECTING) {
                int error = 0; socklen_t length = sizeof error;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &length);
                if (error) { fail(w, c, E_CONNECT, now); continue; }
                c->state = SENDING;
                send_more(w, c);
                continue;
            }
            if ((events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && c->state != IDLE) receive(w, c);
            else if (c->state == IDLE && (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
                close_connection(w, c); /* --rate: the server closed an idle kept connection */
                continue;
            }
            if (c->fd >= 0 && c->state == SENDING && (events[i].events & EPOLLOUT)) send_more(w, c);
        }
        for (int i = 0; i < w->count; i++) {
            connection *c = &w->connections[i];
            if (c->state == IDLE && c->retry_at && now >= c->retry_at) {
                c->retry_at = 0;
                if (c->due || (opt.rate <= 0 && claim_request())) start_request(w, c, now); /* a due request keeps its time */
            }
        }
        now = now_ns(); /* requests started above may be later than the epoll's time */
        if (now - last_sweep > 100000000) {
            last_sweep = now;
            for (int i = 0; i < w->count; i++) {
                connection *c = &w->connections[i];
                if (c->state != IDLE && now > c->started && now - c->started > (uint64_t)(opt.timeout * 1e9)) {
                    fail(w, c, E_TIMEOUT, now);
                    if (opt.rate <= 0 && claim_request()) start_request(w, c, now);
                }
            }
        }
    }
    return NULL;
}

/* ---------- main ---------- */

static void usage(void) {
    fputs("usage: fcgi-load --connect unix:PATH|PATH|HOST:PORT [-c N] [-t N] [-d S | -n N] [-w S] [-k] [-R RATE]\n"
          "       [--path P] [--query Q] [-X M] [-p K=V]... [--body-size N | --body-file F]\n"
          "       [--expect-status N] [--expect-length N] [--expect-min-length N] [--expect-substring S]\n"
          "       [--timeout S] [--label L] [--quiet] [--show]\n", stderr);
    exit(2);
}

static void json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
        else putchar(*s);
    }
    putchar('"');
}

int main(int argc, char **argv) {
    static struct option long_options[] = {
        { "connect", 1, 0, 'C' }, { "connections", 1, 0, 'c' }, { "threads", 1, 0, 't' },
        { "duration", 1, 0, 'd' }, { "requests", 1, 0, 'n' }, { "warmup", 1, 0, 'w' },
        { "keep-conn", 0, 0, 'k' }, { "path", 1, 0, 'P' }, { "query", 1, 0, 'Q' },
        { "method", 1, 0, 'X' }, { "param", 1, 0, 'p' }, { "body-size", 1, 0, 'b' },
        { "body-file", 1, 0, 'B' }, { "expect-status", 1, 0, 's' }, { "expect-length", 1, 0, 'l' },
        { "expect-min-length", 1, 0, 'm' }, { "expect-substring", 1, 0, 'S' }, { "timeout", 1, 0, 'T' },
        { "rate", 1, 0, 'R' }, { "label", 1, 0, 'L' }, { "quiet", 0, 0, 'q' }, { "show", 0, 0, 'V' }, { "help", 0, 0, 'h' }, { 0, 0, 0, 0 },
    };
    opt.params = calloc((size_t)argc, sizeof(char *));
    int o;
    while ((o = getopt_long(argc, argv, "c:t:d:n:w:kR:X:p:qh", long_options, NULL)) != -1) {
        switch (o) {
        case 'C': opt.connect = optarg; break;
        case 'c': opt.connections = atoi(optarg); break;
        case 't': opt.threads = atoi(optarg); break;
        case 'd': opt.duration = atof(optarg); break;
        case 'n': opt.requests = atol(optarg); break;
        case 'w': opt.warmup = atof(optarg); break;
        case 'k': opt.keep = 1; break;
        case 'R': opt.rate = atof(optarg); break;
        case 'P': opt.path = optarg; break;
        case 'Q': opt.query = optarg; break;
        case 'X': opt.method = optarg; break;
        case 'p': opt.params[opt.nparams++] = optarg; break;
        case 'b': opt.body_size = atol(optarg); break;
        case 'B': opt.body_file = optarg; break;
        case 's': opt.expect_status = atoi(optarg); break;
        case 'l': opt.expect_length = atol(optarg); break;
        case 'm': opt.expect_min_length = atol(optarg); break;
        case 'S': opt.expect_substring = optarg; break;
        case 'T': opt.timeout = atof(optarg); break;
        case 'L': opt.label = optarg; break;
        case 'q': opt.quiet = 1; break;
        case 'V': opt.show = 1; break;
        default: usage();
        }
    }
    if (!opt.connect || optind != argc || opt.connections < 1 || opt.threads < 1) usage();
    if (opt.threads > opt.connections) opt.threads = opt.connections;
    shared = opt.rate <= 0 && opt.threads > 1 && opt.connections > opt.threads;
    signal(SIGPIPE, SIG_IGN);
    resolve(opt.connect);
    build_request();
    atomic_store(&requests_left, opt.requests);

    uint64_t start = now_ns();
    measure_from = start + (uint64_t)(opt.warmup * 1e9);
    measure_until = opt.requests > 0 ? UINT64_MAX : measure_from + (uint64_t)(opt.duration * 1e9);
    worker *workers = calloc((size_t)opt.threads, sizeof(worker));
    for (int t = 0; t < opt.threads; t++) {
        worker *w = &workers[t];
        w->index = t;
        w->count = opt.connections / opt.threads + (t < opt.connections % opt.threads);
        w->connections = calloc((size_t)w->count, sizeof(connection));
        for (int i = 0; i < w->count; i++) { w->connections[i].fd = -1; w->connections[i].kept = malloc(KEEP_BYTES); }
        w->epoll = shared && t > 0 ? workers[0].epoll : epoll_create1(EPOLL_CLOEXEC);
        pthread_create(&w->thread, NULL, run, w);
    }
    histogram *total = calloc(1, sizeof(histogram));
    uint64_t errors[E_KINDS] = {0}, reconnects = 0, retries = 0, completed_count = 0, bytes = 0, error_total = 0, late = 0;
    long served_min = -1, served_max = 0;
    double served_sum = 0, served_squares = 0;
    /* All joined first: in shared mode a thread completes requests on other threads' connections. */
    for (int t = 0; t < opt.threads; t++) pthread_join(workers[t].thread, NULL);
    for (int t = 0; t < opt.threads; t++) {
        worker *w = &workers[t];
        for (int i = 0; i < BUCKETS; i++) total->counts[i] += w->latency.counts[i];
        total->total += w->latency.total; total->sum += w->latency.sum;
        if (w->latency.max > total->max) total->max = w->latency.max;
        if (w->latency.min && (!total->min || w->latency.min < total->min)) total->min = w->latency.min;
        for (int k = 0; k < E_KINDS; k++) { errors[k] += w->errors[k]; error_total += w->errors[k]; }
        reconnects += w->reconnects; retries += w->connect_retries;
        completed_count += w->completed; bytes += w->bytes; late += w->late;
        for (int i = 0; i < w->count; i++) {
            long s = w->connections[i].served;
            if (served_min < 0 || s < served_min) served_min = s;
            if (s > served_max) served_max = s;
            served_sum += (double)s; served_squares += (double)s * (double)s;
        }
    }
    uint64_t end = now_ns();
    double elapsed = opt.requests > 0 ? (double)(end - measure_from) / 1e9 : opt.duration;
    double rate = (double)completed_count / elapsed;
    double jain = served_squares > 0 ? served_sum * served_sum / ((double)opt.connections * served_squares) : 0;
    double p50 = quantile(total, 0.5) / 1e6, p90 = quantile(total, 0.9) / 1e6, p99 = quantile(total, 0.99) / 1e6;
    double p999 = quantile(total, 0.999) / 1e6, max = total->max / 1e6, mean = total->total ? total->sum / total->total / 1e6 : 0;

    if (!opt.quiet) {
        printf("fcgi-load: %s %s%s%s, %d connection%s on %d thread%s, %s, %.2f s\n", opt.connect, opt.path, *opt.query ? "?" : "", opt.query,
               opt.connections, opt.connections == 1 ? "" : "s", opt.threads, opt.threads == 1 ? "" : "s",
               opt.keep ? "kept connections (FCGI_KEEP_CONN)" : "a new connection per request", elapsed);
        printf("  requests %llu (%.0f/s, %.1f MB/s), errors %llu", (unsigned long long)completed_count, rate, (double)bytes / elapsed / 1e6, (unsigned long long)error_total);
        if (error_total) {
            printf(" (");
            for (int k = 0, first = 1; k < E_KINDS; k++) if (errors[k]) { printf("%s%s %llu", first ? "" : ", ", error_names[k], (unsigned long long)errors[k]); first = 0; }
            printf(")");
        }
        printf(", reconnects %llu, connect retries %llu\n", (unsigned long long)reconnects, (unsigned long long)retries);
        printf("  latency ms: mean %.3f, p50 %.3f, p90 %.3f, p99 %.3f, p99.9 %.3f, max %.3f\n", mean, p50, p90, p99, p999, max);
        printf("  requests per connection: min %ld, max %ld, Jain's fairness %.3f\n", served_min, served_max, jain);
        if (opt.rate > 0) printf("  offered %.0f/s; %llu requests sent more than 1 ms after they were due\n", opt.rate, (unsigned long long)late);
    }
    printf("{\"label\":");
    json_string(opt.label ? opt.label : "");
    printf(",\"connect\":");
    json_string(opt.connect);
    printf(",\"path\":");
    json_string(opt.path);
    printf(",\"connections\":%d,\"threads\":%d,\"keep_conn\":%s,\"seconds\":%.3f,\"requests\":%llu,\"rps\":%.1f,\"bytes\":%llu,"
           "\"errors\":%llu,", opt.connections, opt.threads, opt.keep ? "true" : "false", elapsed,
           (unsigned long long)completed_count, rate, (unsigned long long)bytes, (unsigned long long)error_total);
    printf("\"error_kinds\":{");
    for (int k = 0; k < E_KINDS; k++) printf("%s\"%s\":%llu", k ? "," : "", error_names[k], (unsigned long long)errors[k]);
    printf("},\"reconnects\":%llu,\"connect_retries\":%llu,", (unsigned long long)reconnects, (unsigned long long)retries);
    printf("\"latency_ms\":{\"mean\":%.4f,\"p50\":%.4f,\"p90\":%.4f,\"p99\":%.4f,\"p999\":%.4f,\"max\":%.4f},", mean, p50, p90, p99, p999, max);
    printf("\"per_connection\":{\"min\":%ld,\"max\":%ld,\"jain\":%.4f}", served_min, served_max, jain);
    if (opt.rate > 0) printf(",\"offered_rps\":%.1f,\"late\":%llu", opt.rate, (unsigned long long)late);
    printf("}\n");
    return 0;
}
