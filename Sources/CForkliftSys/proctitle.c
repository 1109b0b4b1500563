/*
 * The process title, nginx's way: argv[0..] and the environment strings lie contiguously
 * in memory; copy the environment to the heap, then use the whole area for the title.
 * glibc passes (argc, argv, envp) to constructors, which is how we see the real argv.
 */
#define _GNU_SOURCE
#include "forklift_sys.h"

#include <stdlib.h>
#include <string.h>

extern char **environ;

static char *title_start = NULL;
static size_t title_capacity = 0;
static int environment_moved = 0;
static char **saved_argv = NULL;
static int saved_argc = 0;

__attribute__((constructor)) static void forklift_capture_argv(int argc, char **argv, char **envp) {
    (void)envp;
    saved_argc = argc;
    saved_argv = argv;
}

static void move_environment(void) {
    if (environment_moved || saved_argv == NULL || saved_argc == 0) return;
    environment_moved = 1;
    char *end = saved_argv[0] + strlen(saved_argv[0]) + 1;
    for (int i = 1; i < saved_argc; i++) {
        if (saved_argv[i] == end) end = saved_argv[i] + strlen(saved_argv[i]) + 1;
    }
    size_t count = 0;
    while (environ && environ[count]) count++;
    char **copy = calloc(count + 1, sizeof(char *));
    if (copy == NULL) return;
    for (size_t i = 0; i < count; i++) {
        if (environ[i] == end) end = environ[i] + strlen(environ[i]) + 1;
        copy[i] = strdup(environ[i]);
        if (copy[i] == NULL) return;
    }
    environ = copy;
    title_start = saved_argv[0];
    title_capacity = (size_t)(end - title_start);
}

void forklift_set_process_title(const char *title) {
    move_environment();
    if (title_start == NULL || title_capacity < 2) return;
    size_t length = strlen(title);
    if (length > title_capacity - 1) length = title_capacity - 1;
    memcpy(title_start, title, length);
    memset(title_start + length, 0, title_capacity - length);
}
