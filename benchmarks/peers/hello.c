/*
 * The C peer: a classic libfcgi responder (FCGX_Accept_r loop), run under spawn-fcgi with as
 * many children as Forklift has workers. It answers the benchmark's cases as Forklift's
 * plugins do (benchmarks/peers.py builds it with cc -O2 ... -lfcgi):
 *
 *   /hello                   "Hello, world!\n" (Plugins/Hello)
 *   /echo...                 Plugins/Echo's format: method, path, pid, every param, body-length, the body
 *   .../sleep?ms=N           one usleep of N ms, then "slept M ms\n", 64 KiB of 'z' and "\nend\n"
 *                            (Tests/Fixtures/Behaviors; ms=0 is the 64 KiB response case)
 *   anything else            404
 *
 * The path is routed as Forklift routes it: DOCUMENT_URI, else SCRIPT_NAME + PATH_INFO, else
 * REQUEST_URI without its query.
 */
#include <fcgiapp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *param(FCGX_Request *r, const char *name) {
    const char *v = FCGX_GetParam(name, r->envp);
    return v ? v : "";
}

static void route(FCGX_Request *r, char *path, size_t size) {
    const char *uri = FCGX_GetParam("DOCUMENT_URI", r->envp);
    if (uri && *uri) { snprintf(path, size, "%s", uri); return; }
    const char *script = FCGX_GetParam("SCRIPT_NAME", r->envp);
    if (script && *script) { snprintf(path, size, "%s%s", script, param(r, "PATH_INFO")); return; }
    snprintf(path, size, "%s", param(r, "REQUEST_URI"));
    char *q = strchr(path, '?');
    if (q) *q = 0;
}

static int segment_is(const char *path, const char *prefix) { /* whole segments, as Forklift's routes */
    size_t n = strlen(prefix);
    return !strncmp(path, prefix, n) && (path[n] == 0 || path[n] == '/');
}

static const char *last_segment(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static char tail[65536 + 5];

static void sleep_case(FCGX_Request *r) {
    const char *q = strrchr(param(r, "QUERY_STRING"), '=');
    long ms = q ? atol(q + 1) : 0;
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    usleep((useconds_t)(ms * 1000));
    clock_gettime(CLOCK_MONOTONIC, &end);
    long slept = (end.tv_sec - start.tv_sec) * 1000 + (end.tv_nsec - start.tv_nsec) / 1000000;
    FCGX_FPrintF(r->out, "Content-Type: text/plain; charset=utf-8\r\n\r\nslept %ld ms\n", slept);
    FCGX_PutStr(tail, sizeof tail, r->out);
}

static void echo_case(FCGX_Request *r, const char *path) {
    static char *body;
    static size_t capacity;
    size_t length = 0;
    for (;;) {
        if (capacity - length < 65536) {
            capacity = capacity ? capacity * 2 : 1 << 20;
            body = realloc(body, capacity);
        }
        int n = FCGX_GetStr(body + length, 65536, r->in);
        if (n <= 0) break;
        length += (size_t)n;
    }
    FCGX_FPrintF(r->out, "Content-Type: text/plain; charset=utf-8\r\n\r\nmethod: %s\npath: %s\npid: %d\n",
                 param(r, "REQUEST_METHOD"), path, (int)getpid());
    for (char **e = r->envp; *e; e++) FCGX_FPrintF(r->out, "param: %s\n", *e);
    FCGX_FPrintF(r->out, "body-length: %lu\n\n", (unsigned long)length); /* libfcgi's printf has no %zu */
    FCGX_PutStr(body, (int)length, r->out);
}

int main(void) {
    memset(tail, 'z', 65536);
    memcpy(tail + 65536, "\nend\n", 5);
    FCGX_Init();
    FCGX_Request request;
    FCGX_InitRequest(&request, 0, 0); /* fd 0: the socket spawn-fcgi opened */
    char path[4096];
    while (FCGX_Accept_r(&request) >= 0) {
        route(&request, path, sizeof path);
        if (segment_is(path, "/hello")) {
            FCGX_PutS("Content-Type: text/plain; charset=utf-8\r\n\r\nHello, world!\n", request.out);
        } else if (segment_is(path, "/echo")) {
            echo_case(&request, path);
        } else if (!strcmp(last_segment(path), "sleep")) {
            sleep_case(&request);
        } else {
            FCGX_FPrintF(request.out, "Status: 404\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nno route for %s\n", path);
        }
        FCGX_Finish_r(&request);
    }
    return 0;
}
