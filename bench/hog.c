/*
 * hog.c - --hog: one busy process per core while the latency cases run.
 *
 * A latency figure taken on idle cores flatters whichever side sleeps and wakes more: with
 * every core busy, each wake-up waits for the scheduler. The hogs spin without ever yielding
 * (no sched_yield, no system call), at the default priority, and die with the benchmark
 * (PR_SET_PDEATHSIG) even if it is killed.
 */
#include "bench.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

int hogs_start(pid_t *pids, int max)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int n = cores < 1 ? 1 : cores > max ? max : (int)cores;
    pid_t parent = getpid();
    fflush(stdout);
    fflush(stderr);
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            hogs_stop(pids, i);
            return -1;
        }
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent)
                _exit(0); /* the benchmark is already gone */
            for (volatile unsigned long spin = 0;; spin++)
                ;
        }
        pids[i] = pid;
    }
    return n;
}

void hogs_stop(pid_t *pids, int n)
{
    for (int i = 0; i < n; i++)
        kill(pids[i], SIGKILL);
    for (int i = 0; i < n; i++)
        while (waitpid(pids[i], NULL, 0) < 0 && errno == EINTR)
            ;
}
