/*
 * busy_poll.c - SHM_BUSY_POLL's adaptation: the per-connection back-off and the
 * machine-wide "is a core idle" hint. See busy_poll.h; the spin itself is in events_ring.c.
 */
#define _GNU_SOURCE
#include "libc.h"
#include "busy_poll.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/sysinfo.h>
#include <unistd.h>

bool shmsock_busy_poll_due(struct shmsock_busy_poll *bp)
{
    if (bp->skip == 0)
        return true;
    bp->skip--;
    return false;
}

void shmsock_busy_poll_outcome(struct shmsock_busy_poll *bp, bool paid)
{
    if (paid) {
        bp->wasted = 0;
        bp->backoff = 0;
        return;
    }
    if (++bp->wasted < SHMSOCK_BUSY_POLL_WASTE_LIMIT)
        return;
    /* The first back-off, or a probe after one that was wasted too: twice as long. */
    if (bp->backoff == 0)
        bp->backoff = SHMSOCK_BUSY_POLL_FIRST_BACKOFF;
    else if (bp->backoff < SHMSOCK_BUSY_POLL_MAX_BACKOFF)
        bp->backoff *= 2;
    bp->skip = bp->backoff;
}

/* Runnable tasks now (the 4th field of /proc/loadavg, "R/T": R counts the caller), or -1. */
static long runnable_tasks(void)
{
    int fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char buf[128];
    ssize_t n = shmsock_libc.read(fd, buf, sizeof(buf) - 1);
    shmsock_libc.close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *at = buf;
    for (int field = 0; field < 3; field++) { /* the three load averages */
        while (*at != ' ' && *at != '\0')
            at++;
        while (*at == ' ')
            at++;
    }
    char *end;
    long runnable = strtol(at, &end, 10);
    return end != at && *end == '/' ? runnable : -1;
}

static int online_cpus;       /* atomic: 0 until known */
static int64_t load_read_us;  /* atomic: when /proc/loadavg was last read (0: never) */
static bool load_idle = true; /* atomic: what it said */

static bool ignore_load; /* atomic: tests only */

void shmsock_busy_poll_ignore_load(bool ignore)
{
    __atomic_store_n(&ignore_load, ignore, __ATOMIC_RELAXED);
}

bool shmsock_busy_poll_cores_idle(int64_t now_us)
{
    if (__atomic_load_n(&ignore_load, __ATOMIC_RELAXED))
        return true;
    int64_t read_us = __atomic_load_n(&load_read_us, __ATOMIC_ACQUIRE);
    if (read_us != 0 && now_us - read_us < SHMSOCK_BUSY_POLL_LOAD_PERIOD_US)
        return __atomic_load_n(&load_idle, __ATOMIC_RELAXED);
    /* One thread of the process reads; the others keep the previous answer meanwhile. */
    if (!__atomic_compare_exchange_n(&load_read_us, &read_us, now_us, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE))
        return __atomic_load_n(&load_idle, __ATOMIC_RELAXED);
    int cpus = __atomic_load_n(&online_cpus, __ATOMIC_RELAXED);
    if (cpus == 0) {
        cpus = get_nprocs();
        if (cpus < 1)
            cpus = 1;
        __atomic_store_n(&online_cpus, cpus, __ATOMIC_RELAXED);
    }
    long runnable = runnable_tasks();
    bool idle = runnable < 0 || runnable <= cpus;
    __atomic_store_n(&load_idle, idle, __ATOMIC_RELAXED);
    return idle;
}
