/*
 * copy_cost.c - the cost per message of the copying send and receive on shared memory, one
 * thread, no waiting: batches of non-blocking sends of `size` bytes on one end of a
 * SOCK_SEQPACKET pair, then as many reads on the other, after the pair has switched to shared
 * memory (coalesced mode). Prints the best of 7 runs in ns per send + receive. Made to measure
 * the check of the application's buffers (impl/iov.c, issue 13): build it on the commits
 * before and after and compare the two numbers.
 *
 *   bazel run -c opt //bench:copy_cost -- 64 20000 32       (size, rounds, batch)
 *   bazel run -c opt //bench:copy_cost -- 1048576 100 4
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "shmsock.h"

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: copy_cost SIZE ROUNDS BATCH\n");
        return 2;
    }
    size_t size = strtoul(argv[1], NULL, 0);
    long rounds = strtol(argv[2], NULL, 0);
    int batch = atoi(argv[3]);
    int sv[2];
    if (shm_socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0) {
        perror("shm_socketpair");
        return 1;
    }
    /* Room for a batch of large messages: the region follows SO_SNDBUF. */
    int sndbuf = (int)(size * (size_t)batch * 2 + (1 << 20));
    shm_setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    char c;
    for (int k = 0; k < 2; k++) {
        if (shm_send(sv[0], "x", 1, 0) != 1 || shm_recv(sv[1], &c, 1, 0) != 1 ||
            shm_send(sv[1], "y", 1, 0) != 1 || shm_recv(sv[0], &c, 1, 0) != 1) {
            perror("handshake");
            return 1;
        }
    }
    int status = 0;
    socklen_t len = sizeof(status);
    shm_getsockopt(sv[0], SOL_SHMSOCK, SHM_STATUS, &status, &len);
    if (status != SHM_STATUS_SHM) {
        fprintf(stderr, "copy_cost: the pair is not on shared memory\n");
        return 1;
    }
    char *out = malloc(size), *in = malloc(size);
    if (out == NULL || in == NULL)
        return 1;
    memset(out, 3, size);
    memset(in, 0, size);
    double best = 1e30;
    for (int run = 0; run < 7; run++) {
        double start = now_seconds();
        for (long i = 0; i < rounds; i++) {
            for (int b = 0; b < batch; b++) {
                if (shm_send(sv[0], out, size, MSG_DONTWAIT) != (ssize_t)size) {
                    perror("shm_send");
                    return 1;
                }
            }
            for (int b = 0; b < batch; b++) {
                if (shm_recv(sv[1], in, size, MSG_DONTWAIT) != (ssize_t)size) {
                    perror("shm_recv");
                    return 1;
                }
            }
        }
        double ns = (now_seconds() - start) / ((double)rounds * batch) * 1e9;
        if (ns < best)
            best = ns;
    }
    printf("%zu B, batches of %d: best of 7: %.1f ns per send + receive\n", size, batch, best);
    free(out);
    free(in);
    shm_close(sv[0]);
    shm_close(sv[1]);
    return 0;
}
