/*
 * A complete Forklift plugin in C: greets with the `greeting` setting and counts the
 * requests each worker served. Below /later it finishes the response first and then does
 * its slow work (`later_ms` of it), as PHP's fastcgi_finish_request() allows.
 *
 *   cc -shared -fPIC -I path/to/Sources/CForkliftABI/include hello_c.c -o libhello_c.so
 */
#include <forklift_plugin.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct state {
    const forklift_host_api *host;
    const char *greeting;   /* points into the host's config: valid for the process's life */
    unsigned long served;   /* per worker: each has its own copy after fork */
    long later_ms;          /* the slow work done after the response, below /later */
};

static int preload(const forklift_host_api *host, const forklift_plugin_config *config,
                   void **state_out, forklift_error *error) {
    struct state *state = calloc(1, sizeof *state);
    if (state == NULL) {
        snprintf(error->message, sizeof error->message, "out of memory");
        return FORKLIFT_FAILED;
    }
    state->host = host;
    state->greeting = "Hello";
    for (size_t i = 0; i < config->settings_count; i++) {
        if (strcmp(config->settings[i].key, "greeting") == 0) state->greeting = config->settings[i].value;
        if (strcmp(config->settings[i].key, "later_ms") == 0) state->later_ms = atol(config->settings[i].value);
    }
    const char *message = "hello_c preloaded";
    host->log(host, FORKLIFT_LOG_INFO, message, strlen(message));
    *state_out = state;
    return FORKLIFT_OK;
}

static int handle(void *opaque, forklift_request *request, forklift_response *response,
                  forklift_error *error) {
    struct state *state = opaque;
    const forklift_host_api *host = state->host;
    state->served++;

    const char *method = host->request_param(request, "REQUEST_METHOD");
    char body[512];
    int length = snprintf(body, sizeof body, "%s from C! %s %s (request %lu of this worker)\n",
                          state->greeting, method ? method : "-", host->request_path(request), state->served);

    if (host->response_set_status(response, 200) != FORKLIFT_OK ||
        host->response_add_header(response, "Content-Type", "text/plain") != FORKLIFT_OK ||
        host->response_write(response, body, (size_t)length) != FORKLIFT_OK) {
        snprintf(error->message, sizeof error->message, "the client went away");
        return FORKLIFT_FAILED;
    }

    /* response_finish was appended to the host's table: a host older than it has none. */
    const size_t finish_end = offsetof(forklift_host_api, response_finish) + sizeof host->response_finish;
    if (strstr(host->request_path(request), "/later") != NULL && host->struct_size >= finish_end) {
        if (host->response_finish(response) != FORKLIFT_OK) {
            snprintf(error->message, sizeof error->message, "the client went away before the end");
            return FORKLIFT_FAILED;
        }
        /* The client has everything; this stands for slow work (statistics, a conversion). */
        struct timespec work = {.tv_sec = state->later_ms / 1000, .tv_nsec = (state->later_ms % 1000) * 1000000L};
        nanosleep(&work, NULL);
        const char *done = "hello_c: the work after the response is done";
        host->log(host, FORKLIFT_LOG_NOTICE, done, strlen(done));
    }
    return FORKLIFT_OK;
}

static const forklift_plugin plugin = {
    .abi_version = FORKLIFT_ABI_VERSION,
    .struct_size = sizeof(forklift_plugin),
    .name = "hello_c",
    .version = "1.0.0",
    .preload = preload,
    .worker_init = NULL,   /* optional hooks may be NULL */
    .handle = handle,
    .worker_exit = NULL,
};

const forklift_plugin *forklift_plugin_entry(void) { return &plugin; }
