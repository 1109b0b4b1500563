/*
 * forklift_plugin.h -- the Forklift plugin ABI.
 *
 * This header is the whole contract between the Forklift host and a plugin shared object.
 * Only C types cross it: no Swift class, String or Array, because every plugin links its own
 * copy of the Swift SDK and the runtime treats those copies as different types.
 *
 * A plugin exports one symbol, FORKLIFT_ENTRY_SYMBOL, a function returning a pointer to a
 * static forklift_plugin. The host checks abi_version and struct_size before touching any
 * other field. Hooks, by the process they run in:
 *
 *   preload      the pool's host process, once, before any worker is forked: load big data here
 *   worker_init  each worker, right after fork, before its first request
 *   handle       each worker, once per request routed to this plugin
 *   worker_exit  each worker, when it leaves (recycled or stopped); not after a crash
 *
 * Hooks return FORKLIFT_OK (0) on success. On failure they return FORKLIFT_FAILED and write a
 * NUL-terminated message into error->message (at most FORKLIFT_ERROR_CAPACITY bytes with the
 * NUL); the host logs it with the plugin's name.
 *
 * docs/plugin-abi.md explains every field with a complete plugin in C.
 */
#ifndef FORKLIFT_PLUGIN_H
#define FORKLIFT_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever a field changes meaning or moves. Appending fields keeps the version and
 * grows struct_size, so an older plugin stays loadable by a newer host. */
#define FORKLIFT_ABI_VERSION 1u

/* The symbol every plugin exports: `const forklift_plugin *forklift_plugin_entry(void);` */
#define FORKLIFT_ENTRY_SYMBOL "forklift_plugin_entry"

/* Optional: exported by debug builds of the Swift SDK (so, with SwiftPM, of the plugin). The
 * host then warns when the plugin's preload takes much memory: nothing a debug build preloads
 * stays shared by the workers. `void forklift_sdk_debug_build(void);` */
#define FORKLIFT_DEBUG_BUILD_SYMBOL "forklift_sdk_debug_build"

#define FORKLIFT_ERROR_CAPACITY 1024

/* request_read's answer when the body is longer than the pool's max_body_size. */
#define FORKLIFT_BODY_TOO_LARGE (-2)

enum {
    FORKLIFT_OK = 0,
    FORKLIFT_FAILED = 1,
};

/* Levels for forklift_host_api.log, lowest first. */
enum {
    FORKLIFT_LOG_DEBUG = 0,
    FORKLIFT_LOG_INFO = 1,
    FORKLIFT_LOG_NOTICE = 2,
    FORKLIFT_LOG_WARNING = 3,
    FORKLIFT_LOG_ERROR = 4,
};

/* Where a failing hook explains itself. Owned by the host; valid for the duration of the call. */
typedef struct forklift_error {
    char message[FORKLIFT_ERROR_CAPACITY];
} forklift_error;

/* Opaque handles owned by the host, valid only during the handle() call they are passed to. */
typedef struct forklift_request forklift_request;
typedef struct forklift_response forklift_response;

/* Keyed shared data, as shared_data_open hands it to the plugin. The memory stays mapped at
 * the same address for the life of the process, in every worker and in later generations. */
typedef struct forklift_shared_data {
    void *base;                       /* the first byte of the data */
    size_t capacity;                  /* fresh: the bytes that may be filled; inherited: the bytes used */
    const void *root;                 /* inherited: what the builder sealed with; fresh: NULL */
    size_t root_length;
    int inherited;                    /* 1: handed on by a running generation, read-only; 0: fresh */
    uint64_t handle;                  /* the host's: pass the struct back to shared_data_seal */
} forklift_shared_data;

/* One entry of the plugin's `settings` table, flattened: nested tables become dotted keys
 * ("model.path"); strings are given raw, numbers and booleans as TOML writes them, arrays
 * as JSON text. */
typedef struct forklift_setting {
    const char *key;
    const char *value;
} forklift_setting;

/* What the host tells a plugin about its configuration at preload. The pointers stay valid
 * for the life of the process, so a plugin may keep them. */
typedef struct forklift_plugin_config {
    uint32_t struct_size;             /* sizeof(forklift_plugin_config) as the host saw it */
    const char *instance_name;        /* NAME in [pool.POOL.plugin.NAME] */
    const char *pool_name;            /* POOL */
    const char *route;                /* the route prefix this instance serves, e.g. "/hello" */
    const forklift_setting *settings; /* settings_count entries, sorted by key */
    size_t settings_count;
    const char *settings_json;        /* the whole settings table as a JSON object */
} forklift_plugin_config;

/* The host's services. One copy per plugin instance; its address never changes, so keep it. */
typedef struct forklift_host_api {
    uint32_t abi_version;             /* FORKLIFT_ABI_VERSION of the host */
    uint32_t struct_size;             /* sizeof(forklift_host_api) as the host saw it */
    void *host_context;               /* the host's; pass the api back, never read this */

    /* Log a message (not NUL-terminated; `length` bytes) with the plugin's name attached.
     * Usable from every hook and from any thread the plugin runs. */
    void (*log)(const struct forklift_host_api *api, int level, const char *message, size_t length);

    /* The value of the FastCGI param `name` (e.g. "REQUEST_METHOD"), or NULL when absent. */
    const char *(*request_param)(const forklift_request *request, const char *name);
    /* The path the host routed the request by (DOCUMENT_URI, else SCRIPT_NAME + PATH_INFO,
     * else REQUEST_URI without its query string), e.g. "/hello/world". Never NULL. */
    const char *(*request_path)(const forklift_request *request);
    /* Every param in the order the client sent them, as a NULL-terminated array of
     * "NAME=VALUE" strings (libfcgi's envp, zero-copy). */
    const char *const *(*request_params)(const forklift_request *request);
    /* Read up to `capacity` bytes of the request body. Returns the number of bytes read,
     * 0 at the end of the body, -1 if the client went away, FORKLIFT_BODY_TOO_LARGE (-2) once
     * the body turned out longer than the pool's max_body_size (the host then answers 413 if
     * the handler sent no headers). */
    long (*request_read)(forklift_request *request, void *buffer, size_t capacity);

    /* Set the status code (default 200). Fails once headers were sent. */
    int (*response_set_status)(forklift_response *response, int status);
    /* Add a header line. Fails once headers were sent, or on CR/LF in name or value. */
    int (*response_add_header)(forklift_response *response, const char *name, const char *value);
    /* Write body bytes; the first write sends the status and headers. */
    int (*response_write)(forklift_response *response, const void *data, size_t length);
    /* Send what is buffered to the client now (headers too, if not sent yet). */
    int (*response_flush)(forklift_response *response);

    /* Preload only: announce memory the plugin made read-only (mprotect) for its workers to
     * share. A worker that writes there is killed by SIGSEGV, and the log names `label` and
     * the plugin. Appended in ABI 1: check struct_size before calling. */
    int (*register_read_only_region)(const struct forklift_host_api *api, void *start, size_t length,
                                     const char *label);

    /* Complete the response now, and go on working (PHP-FPM's fastcgi_finish_request): what
     * was written is sent with FCGI_END_REQUEST, the client has the whole response, and the
     * connection is closed, or (kept) handed back so that another worker serves the client's
     * next request. The handler may then do slow work; later writes and flushes fail, reads of
     * the body return 0 (the rest of it was read away). The worker takes its next request when
     * handle returns, and request_terminate_timeout counts until then. Calling it twice is
     * fine. Returns FORKLIFT_FAILED if the client was gone. Appended in ABI 1: check
     * struct_size before calling. */
    int (*response_finish)(forklift_response *response);

    /* Preload only: data built under a key the plugin chooses (a version, a hash of its
     * sources), which the next generation of the same pool and plugin inherits instead of
     * building it again when it asks for the same key, format and root_length (docs/shared-data.md).
     * On FORKLIFT_OK, *data says which: inherited = 1, the bytes are the running generation's,
     * read-only, and data->root holds the root_length bytes it sealed with; inherited = 0, the
     * bytes are fresh, writable, zero: fill at most data->capacity of them, then call
     * shared_data_seal. `key` is 1 to 200 bytes without whitespace or control characters.
     * Appended in ABI 1: check struct_size before calling. */
    int (*shared_data_open)(const struct forklift_host_api *api, const char *key, uint32_t format, size_t root_length,
                            size_t capacity, const char *label, struct forklift_shared_data *data, forklift_error *error);
    /* Preload only: make fresh data read-only for good (sealed memfd), keeping `used` bytes and
     * the root_length bytes at `root` (offsets or pointers into the data, nothing else), and
     * offer it to later generations. Data not sealed when preload returns is sealed then,
     * and offered to nobody. Appended in ABI 1: check struct_size before calling. */
    int (*shared_data_seal)(const struct forklift_host_api *api, struct forklift_shared_data *data, const void *root,
                            size_t root_length, size_t used, forklift_error *error);
} forklift_host_api;

/* What a plugin exports. Every hook but handle may be NULL. `state` is whatever preload
 * stored in *state; the host passes it back to every later hook. */
typedef struct forklift_plugin {
    uint32_t abi_version;             /* FORKLIFT_ABI_VERSION the plugin was compiled against */
    uint32_t struct_size;             /* sizeof(forklift_plugin) as the plugin saw it */
    const char *name;                 /* short name, e.g. "hello" */
    const char *version;              /* shown in logs, e.g. "1.2.0" */

    int (*preload)(const forklift_host_api *host, const forklift_plugin_config *config,
                   void **state, forklift_error *error);
    int (*worker_init)(void *state, forklift_error *error);
    int (*handle)(void *state, forklift_request *request, forklift_response *response,
                  forklift_error *error);
    void (*worker_exit)(void *state);
} forklift_plugin;

typedef const forklift_plugin *(*forklift_plugin_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* FORKLIFT_PLUGIN_H */
