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

/* The name-value pairs lying whole in a PARAMS record's content from *index on, skipped
 * (ParamsParser's fast path; it reads a pair cut by the record's end itself). *consumed counts
 * their bytes; 1 when a pair's declared lengths exceed what is left of limit (nothing past
 * its lengths is then counted), else 0. */
static int pair_length(const uint8_t *bytes, size_t count, size_t *at, size_t *length) {
    if (*at >= count) return 0;
    if (!(bytes[*at] & 0x80)) {
        *length = bytes[(*at)++];
        return 1;
    }
    if (count - *at < 4) return 0;
    *length = ((size_t)(bytes[*at] & 0x7F) << 24) | ((size_t)bytes[*at + 1] << 16) | ((size_t)bytes[*at + 2] << 8) | bytes[*at + 3];
    *at += 4;
    return 1;
}

int forklift_params_skip_whole(const uint8_t *bytes, size_t count, size_t *index, size_t *consumed, size_t limit) {
    size_t at = *index, total = *consumed;
    for (;;) {
        size_t cursor = at, name, value;
        if (!pair_length(bytes, count, &cursor, &name) || !pair_length(bytes, count, &cursor, &value)) break;
        size_t used = cursor - at;
        /* total <= limit throughout: no difference below wraps. */
        if (used > limit - total || name > limit - total - used || value > limit - total - used - name) {
            *index = cursor;
            *consumed = total + used;
            return 1;
        }
        if (name > count - cursor || value > count - cursor - name) break; /* cut by the record's end */
        at = cursor + name + value;
        total += used + name + value;
    }
    *index = at;
    *consumed = total;
    return 0;
}
