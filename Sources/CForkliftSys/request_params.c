#include "forklift_sys.h"

#include <string.h>

/* One pass over libfcgi's envp ("NAME=value" strings) for the params the worker itself needs,
 * instead of one linear FCGX_GetParam scan per name. */
static const char *match(const char *entry, const char *name, size_t length) {
    /* strncmp, not memcmp: it stops at the end of a shorter entry. */
    return strncmp(entry, name, length) == 0 && entry[length] == '=' ? entry + length + 1 : NULL;
}

#define MATCH(field, literal) \
    if (!out->field && (value = match(entry, literal, sizeof literal - 1))) { out->field = value; continue; }

void forklift_scan_params(char *const *envp, forklift_request_params *out) {
    memset(out, 0, sizeof *out);
    if (envp == NULL) return;
    for (char *const *cursor = envp; *cursor; cursor++) {
        const char *entry = *cursor, *value;
        switch (entry[0]) {
        case 'C': MATCH(content_length, "CONTENT_LENGTH") break;
        case 'D': MATCH(document_uri, "DOCUMENT_URI") break;
        case 'P': MATCH(path_info, "PATH_INFO") break;
        case 'Q': MATCH(query_string, "QUERY_STRING") break;
        case 'R':
            MATCH(request_method, "REQUEST_METHOD")
            MATCH(request_uri, "REQUEST_URI")
            break;
        case 'S': MATCH(script_name, "SCRIPT_NAME") break;
        default: break;
        }
    }
}
