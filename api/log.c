/*
 * log.c - see log.h.
 */
#define _GNU_SOURCE
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../impl/engine.h"

static int log_fd = -2; /* -2: not read yet; -1: off */

static int open_log(void)
{
    int fd = __atomic_load_n(&log_fd, __ATOMIC_ACQUIRE);
    if (fd != -2)
        return fd;
    const char *where = getenv("SHMSOCK_LOG");
    if (where == NULL || where[0] == '\0')
        fd = -1;
    else if (strcmp(where, "stderr") == 0)
        fd = STDERR_FILENO;
    else
        fd = open(where, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    int expected = -2;
    if (!__atomic_compare_exchange_n(&log_fd, &expected, fd, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        if (fd > STDERR_FILENO)
            shmsock_libc.close(fd); /* another thread opened it first */
        fd = expected;
    }
    return fd;
}

bool shmsock_log_enabled(void)
{
    return open_log() >= 0;
}

void shmsock_log(const char *format, ...)
{
    int fd = open_log();
    if (fd < 0)
        return;
    int saved = errno;
    char line[512];
    int used = snprintf(line, sizeof(line), "shmsock[%d]: ", (int)getpid());
    va_list ap;
    va_start(ap, format);
    int more = vsnprintf(line + used, sizeof(line) - (size_t)used - 1, format, ap);
    va_end(ap);
    size_t len = (size_t)used + (more < 0 ? 0 : (size_t)more);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    (void)shmsock_libc.write(fd, line, len);
    errno = saved;
}
