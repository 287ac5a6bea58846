/*
 * shmsock-run - run an unmodified program with its AF_UNIX stream and seqpacket sockets on
 * shared memory.
 *
 *   shmsock-run [OPTIONS] [--] PROGRAM [ARGS...]
 *
 * It only prepares the environment and execs PROGRAM: libshmsock-preload.so goes first in
 * LD_PRELOAD, the options become the SHMSOCK_* variables that library reads, and the work
 * happens inside the program. Exit status as env(1): PROGRAM's own, 127 if it is not found,
 * 126 if it cannot be run, 125 if shmsock-run itself fails (no preload library); 2 for a
 * usage error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shmsock.h"
#include "impl/wire.h"

#define PRELOAD_NAME "libshmsock-preload.so"
#define EXIT_USAGE 2
#define EXIT_LAUNCHER 125
#define EXIT_CANNOT_RUN 126
#define EXIT_NOT_FOUND 127

enum { OPT_COALESCE = 256, OPT_BUSY_POLL, OPT_BLOCK_SIZE, OPT_VERSION };

static const struct option long_options[] = {
    {"exclude", required_argument, NULL, 'x'},
    {"log", required_argument, NULL, 'l'},
    {"verbose", no_argument, NULL, 'v'},
    {"coalesce", required_argument, NULL, OPT_COALESCE},
    {"busy-poll", required_argument, NULL, OPT_BUSY_POLL},
    {"block-size", required_argument, NULL, OPT_BLOCK_SIZE},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: shmsock-run [OPTIONS] [--] PROGRAM [ARGS...]\n"
            "Runs PROGRAM with its AF_UNIX stream and seqpacket sockets on shared memory\n"
            "(LD_PRELOAD of " PRELOAD_NAME "). Options:\n"
            "  -x, --exclude ADDR    keep connections to ADDR on the kernel path (a path, or\n"
            "                        @name for an abstract name); repeatable\n"
            "  -l, --log FILE        log to FILE (appended to), or to standard error: stderr\n"
            "  -v, --verbose         the same as --log stderr\n"
            "      --coalesce 0|1    default SHM_COALESCE of each socket\n"
            "      --busy-poll US    default SHM_BUSY_POLL (microseconds)\n"
            "      --block-size N    default SHM_BLOCK_SIZE (a power of two, %u..%u)\n"
            "  -h, --help            print this help and exit\n"
            "      --version         print the version and exit\n"
            "The library is SHMSOCK_PRELOAD_LIB if set, else " PRELOAD_NAME " found beside\n"
            "shmsock-run or in its ../lib (see shmsock-run(1)).\n",
            SHMSOCK_MIN_BLOCK_SIZE, SHMSOCK_MAX_BLOCK_SIZE);
}

/* A decimal number (digits only: no sign, no blanks) in [min, max]; else -1. */
static long parse_number(const char *value, long min, long max)
{
    if (value[0] < '0' || value[0] > '9')
        return -1;
    char *end;
    errno = 0;
    long n = strtol(value, &end, 10);
    if (errno != 0 || *end != '\0' || n < min || n > max)
        return -1;
    return n;
}

static void bad_value(const char *option, const char *value, const char *expected)
{
    fprintf(stderr, "shmsock-run: %s: '%s' is not %s\n", option, value, expected);
    exit(EXIT_USAGE);
}

/* Append to a ':'-separated list (NULL: empty); exits if out of memory. */
static char *list_append(char *list, const char *item)
{
    size_t old = list == NULL ? 0 : strlen(list);
    char *grown = realloc(list, old + 1 + strlen(item) + 1);
    if (grown == NULL) {
        perror("shmsock-run");
        exit(EXIT_LAUNCHER);
    }
    if (old == 0)
        strcpy(grown, item);
    else
        sprintf(grown + old, ":%s", item);
    return grown;
}

/* 0 if path is a readable ELF file; else -1 with a message (the library is checked here so
 * that the user reads why, instead of ld.so's warning and a program that runs without it). */
static int check_library(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char magic[4];
    const char *problem = NULL;
    if (fd < 0 || fstat(fd, &st) < 0)
        problem = strerror(errno);
    else if (!S_ISREG(st.st_mode))
        problem = "not a regular file";
    else if (read(fd, magic, sizeof(magic)) != (ssize_t)sizeof(magic) ||
             memcmp(magic, "\177ELF", sizeof(magic)) != 0)
        problem = "not a shared library (no ELF header)";
    if (fd >= 0)
        close(fd);
    if (problem == NULL)
        return 0;
    fprintf(stderr, "shmsock-run: %s: %s\n", path, problem);
    return -1;
}

/* path checked and made absolute (the program may change directory before it starts a
 * child that inherits LD_PRELOAD); NULL after a message. */
static char *checked_path(const char *path)
{
    if (check_library(path) < 0)
        return NULL;
    char *absolute = realpath(path, NULL);
    if (absolute == NULL)
        fprintf(stderr, "shmsock-run: %s: %s\n", path, strerror(errno));
    return absolute;
}

/* The preload library's absolute path (malloc'd), or NULL after a message. */
static char *find_library(void)
{
    const char *forced = getenv("SHMSOCK_PRELOAD_LIB");
    char candidates[3][PATH_MAX + 64];
    int count = 0;
    if (forced != NULL && forced[0] != '\0') {
        /* Asked for one file: no silent fall-back to another. */
        return checked_path(forced);
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash != NULL)
            *slash = '\0';
        /* Beside the executable (build/), an installed copy (bin/ -> lib/), and Bazel's
         * output tree (bazel-bin/tools/ -> bazel-bin/api/preload/). */
        snprintf(candidates[count++], sizeof(candidates[0]), "%s/" PRELOAD_NAME, exe);
        snprintf(candidates[count++], sizeof(candidates[0]), "%s/../lib/" PRELOAD_NAME, exe);
        snprintf(candidates[count++], sizeof(candidates[0]), "%s/../api/preload/" PRELOAD_NAME,
                 exe);
    }
    for (int i = 0; i < count; i++) {
        if (access(candidates[i], F_OK) == 0)
            return checked_path(candidates[i]);
    }
    fprintf(stderr, "shmsock-run: cannot find " PRELOAD_NAME);
    for (int i = 0; i < count; i++)
        fprintf(stderr, "%s %s", i == 0 ? " (looked for" : ",", candidates[i]);
    fprintf(stderr, "%s; set SHMSOCK_PRELOAD_LIB to its path\n", count > 0 ? ")" : "");
    return NULL;
}

/* LD_PRELOAD with lib first and the entries of old after it, lib itself (by any path) not
 * twice. ld.so separates entries with ':' or blanks; the result uses ':'. */
static char *compose_preload(const char *lib, const char *old)
{
    struct stat lib_st;
    if (stat(lib, &lib_st) < 0)
        return NULL;
    char *result = list_append(NULL, lib);
    if (old == NULL)
        return result;
    char *copy = strdup(old);
    if (copy == NULL) {
        free(result);
        return NULL;
    }
    char *saveptr = NULL;
    for (char *entry = strtok_r(copy, ": \t", &saveptr); entry != NULL;
         entry = strtok_r(NULL, ": \t", &saveptr)) {
        struct stat st;
        /* A name without '/' is searched for by ld.so, not opened from here: keep it. */
        if (strchr(entry, '/') != NULL && stat(entry, &st) == 0 && st.st_dev == lib_st.st_dev &&
            st.st_ino == lib_st.st_ino)
            continue;
        result = list_append(result, entry);
    }
    free(copy);
    return result;
}

static void set_env(const char *name, const char *value)
{
    if (setenv(name, value, 1) < 0) {
        perror("shmsock-run: setenv");
        exit(EXIT_LAUNCHER);
    }
}

int main(int argc, char **argv)
{
    char *exclude = NULL;
    const char *log = NULL;
    const char *coalesce = NULL, *busy_poll = NULL, *block_size = NULL;
    int c;
    /* '+': stop at the first non-option, so that PROGRAM's own options pass through. */
    while ((c = getopt_long(argc, argv, "+x:l:vh", long_options, NULL)) != -1) {
        switch (c) {
        case 'x':
            /* SHMSOCK_EXCLUDE is ':'-separated: such an address cannot be written in it. */
            if (optarg[0] == '\0' || strchr(optarg, ':') != NULL)
                bad_value("--exclude", optarg, "an address (non-empty, without ':')");
            exclude = list_append(exclude, optarg);
            break;
        case 'l':
            if (optarg[0] == '\0')
                bad_value("--log", optarg, "a file name or stderr");
            log = optarg;
            break;
        case 'v':
            log = "stderr";
            break;
        case OPT_COALESCE:
            if (parse_number(optarg, 0, 1) < 0)
                bad_value("--coalesce", optarg, "0 or 1");
            coalesce = optarg;
            break;
        case OPT_BUSY_POLL:
            if (parse_number(optarg, 0, INT_MAX) < 0)
                bad_value("--busy-poll", optarg, "a number of microseconds (0 or more)");
            busy_poll = optarg;
            break;
        case OPT_BLOCK_SIZE: {
            long n = parse_number(optarg, SHMSOCK_MIN_BLOCK_SIZE, SHMSOCK_MAX_BLOCK_SIZE);
            if (n < 0 || (n & (n - 1)) != 0) {
                char expected[96];
                snprintf(expected, sizeof(expected), "a power of two from %u to %u",
                         SHMSOCK_MIN_BLOCK_SIZE, SHMSOCK_MAX_BLOCK_SIZE);
                bad_value("--block-size", optarg, expected);
            }
            block_size = optarg;
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        case OPT_VERSION:
            printf("shmsock-run %d.%d.%d\n", SHMSOCK_VERSION_MAJOR, SHMSOCK_VERSION_MINOR,
                   SHMSOCK_VERSION_PATCH);
            return 0;
        default: /* getopt_long has said what is wrong */
            fprintf(stderr, "Try 'shmsock-run --help'.\n");
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "shmsock-run: no program to run\n");
        usage(stderr);
        return EXIT_USAGE;
    }

    char *lib = find_library();
    if (lib == NULL)
        return EXIT_LAUNCHER;
    /* ld.so would split the path there. */
    if (strpbrk(lib, ": \t") != NULL) {
        fprintf(stderr, "shmsock-run: %s: LD_PRELOAD cannot hold a path with ':' or blanks\n", lib);
        return EXIT_LAUNCHER;
    }
    char *preload = compose_preload(lib, getenv("LD_PRELOAD"));
    if (preload == NULL) {
        fprintf(stderr, "shmsock-run: %s: %s\n", lib, strerror(errno));
        return EXIT_LAUNCHER;
    }
    set_env("LD_PRELOAD", preload);
    free(preload); /* setenv copied it */
    free(lib);
    if (exclude != NULL) {
        const char *old = getenv("SHMSOCK_EXCLUDE");
        /* Ours after the user's: both are kept. */
        if (old != NULL && old[0] != '\0') {
            char *both = list_append(list_append(NULL, old), exclude);
            set_env("SHMSOCK_EXCLUDE", both);
            free(both);
        } else {
            set_env("SHMSOCK_EXCLUDE", exclude);
        }
    }
    if (log != NULL)
        set_env("SHMSOCK_LOG", log);
    if (coalesce != NULL)
        set_env("SHMSOCK_COALESCE", coalesce);
    if (busy_poll != NULL)
        set_env("SHMSOCK_BUSY_POLL", busy_poll);
    if (block_size != NULL)
        set_env("SHMSOCK_BLOCK_SIZE", block_size);

    execvp(argv[optind], argv + optind);
    int err = errno;
    free(exclude);
    fprintf(stderr, "shmsock-run: %s: %s\n", argv[optind], strerror(err));
    return err == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_RUN;
}
