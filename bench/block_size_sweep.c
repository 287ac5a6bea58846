/*
 * block_size_sweep.c - how the block size affects throughput, against the kernel socket.
 *
 * For each message size and each block size, a child process streams messages to its parent
 * over a shm SOCK_STREAM socketpair (the producer writes every byte, the consumer reads every
 * byte and sums it); the kernel AF_UNIX socket runs the same transfer in the same run.
 * Prints MB/s and the ratio shm/kernel. Used to choose SHM_DEFAULT_BLOCK_SIZE.
 *
 *   bazel run -c opt //bench:block_size_sweep [-- seconds_per_case]
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmsock.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Bytes per second moved from a child to this process; block_size 0 means kernel socket. */
static double run(size_t message, int block_size, double seconds)
{
    int sv[2];
    if (shm_socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
        perror("socketpair");
        exit(1);
    }
    int negotiate = block_size != 0;
    for (int i = 0; i < 2; i++) {
        shm_setsockopt(sv[i], SOL_SHMSOCK, SHM_NEGOTIATE, &negotiate, sizeof(negotiate));
        if (block_size)
            shm_setsockopt(sv[i], SOL_SHMSOCK, SHM_BLOCK_SIZE, &block_size, sizeof(block_size));
    }
    /* One round trip first so both sides negotiate before timing starts. */
    char byte = 0;
    shm_send(sv[0], &byte, 1, 0);
    shm_recv(sv[1], &byte, 1, 0);
    shm_send(sv[1], &byte, 1, 0);
    shm_recv(sv[0], &byte, 1, 0);
    unsigned char *buf = malloc(message);
    pid_t child = fork();
    if (child == 0) {
        shm_close(sv[1]);
        double end = now() + seconds;
        uint8_t seq = 0;
        while (now() < end) {
            memset(buf, seq++, message); /* the producer writes every byte */
            size_t off = 0;
            while (off < message) {
                ssize_t n = shm_send(sv[0], buf + off, message - off, 0);
                if (n <= 0)
                    _exit(1);
                off += (size_t)n;
            }
        }
        _exit(0);
    }
    shm_close(sv[0]);
    double start = now();
    uint64_t total = 0, sum = 0;
    for (;;) {
        ssize_t n = shm_recv(sv[1], buf, message, 0);
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++) /* the consumer reads every byte */
            sum += buf[i];
        total += (uint64_t)n;
    }
    double elapsed = now() - start;
    waitpid(child, NULL, 0);
    shm_close(sv[1]);
    free(buf);
    if (sum == 1) /* keep the summing loop */
        printf(" ");
    return (double)total / elapsed;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define REPETITIONS 5

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 0.5;
    size_t messages[] = {64, 1024, 65536, 1048576};
    int blocks[] = {1024, 4096, 16384, 65536};
    printf("median of %d interleaved runs (kernel, shm, kernel, shm, ...), %.1f s each\n",
           REPETITIONS, seconds);
    printf("%-10s %-10s %12s %12s %8s %8s %8s\n", "message", "block", "kernel MB/s", "shm MB/s",
           "ratio", "min", "max");
    for (size_t m = 0; m < sizeof(messages) / sizeof(*messages); m++) {
        for (size_t b = 0; b < sizeof(blocks) / sizeof(*blocks); b++) {
            double kernel[REPETITIONS], shm[REPETITIONS], ratio[REPETITIONS];
            for (int r = 0; r < REPETITIONS; r++) {
                kernel[r] = run(messages[m], 0, seconds);
                shm[r] = run(messages[m], blocks[b], seconds);
                ratio[r] = shm[r] / kernel[r];
            }
            qsort(kernel, REPETITIONS, sizeof(double), compare_double);
            qsort(shm, REPETITIONS, sizeof(double), compare_double);
            qsort(ratio, REPETITIONS, sizeof(double), compare_double);
            printf("%-10zu %-10d %12.1f %12.1f %8.2f %8.2f %8.2f\n", messages[m], blocks[b],
                   kernel[REPETITIONS / 2] / 1e6, shm[REPETITIONS / 2] / 1e6,
                   ratio[REPETITIONS / 2], ratio[0], ratio[REPETITIONS - 1]);
            fflush(stdout);
        }
    }
    return 0;
}
