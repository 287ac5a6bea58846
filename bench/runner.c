/*
 * runner.c - one measurement in its own process (group), bounded in time.
 *
 * A library bug must fail a case, not hang or kill the whole run. Each measurement runs in
 * a child that leads its own process group (its helper, forked by the case, joins it); the
 * child and its helper arm alarm(), and this side waits for the result with a deadline and
 * then kills the group by its id. A result that never arrives becomes "timeout" or
 * "crashed: SIGSEGV" in the table.
 */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void result_error(struct run_result *out, const char *fmt, ...)
{
    if (!out->ok && out->error[0] != '\0')
        return; /* keep the first error */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->error, sizeof(out->error), fmt, ap);
    va_end(ap);
    out->ok = 0;
}

void result_note(struct run_result *out, const char *fmt, ...)
{
    size_t used = strlen(out->note);
    if (used + 3 >= sizeof(out->note))
        return;
    if (used) {
        strcpy(out->note + used, "; ");
        used += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->note + used, sizeof(out->note) - used, fmt, ap);
    va_end(ap);
}

const char *errno_name(int err)
{
    const char *name = strerrorname_np(err);
    return name ? name : "E?";
}

static int read_full(int fd, void *buf, size_t len, double deadline)
{
    char *p = buf;
    while (len > 0) {
        int wait_ms = (int)((deadline - now_seconds()) * 1000);
        if (wait_ms <= 0)
            return -1;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, wait_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void run_isolated(case_fn fn, const struct bench_config *cfg, enum bench_mode mode, size_t size,
                  struct run_result *out)
{
    memset(out, 0, sizeof(*out));
    int pipefd[2];
    if (pipe(pipefd) < 0) {
        result_error(out, "pipe: %s", errno_name(errno));
        return;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        result_error(out, "fork: %s", errno_name(errno));
        close(pipefd[0]);
        close(pipefd[1]);
        return;
    }
    if (pid == 0) {
        setpgid(0, 0);
        close(pipefd[0]);
        signal(SIGPIPE, SIG_IGN);
        alarm((unsigned)cfg->timeout_seconds);
        struct run_result r;
        memset(&r, 0, sizeof(r));
        r.ok = 1;
        r.doorbells_per_1k = NAN; /* only shm streaming cases measure it */
        fn(cfg, mode, size, &r);
        ssize_t ignored = write(pipefd[1], &r, sizeof(r));
        (void)ignored;
        _exit(0);
    }
    setpgid(pid, pid); /* also done by the child: whichever runs first */
    close(pipefd[1]);
    double deadline = now_seconds() + cfg->timeout_seconds + 3;
    int got = read_full(pipefd[0], out, sizeof(*out), deadline) == 0;
    close(pipefd[0]);
    kill(-pid, SIGKILL); /* the group still exists (pid is not reaped yet): no stray helper */
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (got)
        return;
    memset(out, 0, sizeof(*out));
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
        result_error(out, "timeout after %d s", cfg->timeout_seconds);
    else if (WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL)
        result_error(out, "crashed: SIG%s", sigabbrev_np(WTERMSIG(status)) ?: "?");
    else if (WIFSIGNALED(status))
        result_error(out, "timeout after %d s (killed)", cfg->timeout_seconds + 3);
    else
        result_error(out, "runner exited (%d) without a result", WEXITSTATUS(status));
}
