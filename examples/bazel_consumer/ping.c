/*
 * ping.c - a program that uses shmsock as a library from outside its source tree.
 *
 * Built by examples/bazel_consumer (Bazel, "@shmsock//:shmsock") and by
 * tools/check_install.sh (an installed shmsock, `pkg-config --cflags --libs shmsock`).
 * Creates a shm socketpair, sends pings and pongs across it, checks every byte and prints
 * what carried the payload (SHM_STATUS). Exit status 0 only if the payload went through
 * shared memory intact.
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <shmsock.h>

#define ROUNDS 100

static const char *status_name(int status)
{
    switch (status) {
    case SHM_STATUS_PLAIN:
        return "SHM_STATUS_PLAIN";
    case SHM_STATUS_OFFERED:
        return "SHM_STATUS_OFFERED";
    case SHM_STATUS_SHM:
        return "SHM_STATUS_SHM";
    case SHM_STATUS_PASSTHROUGH:
        return "SHM_STATUS_PASSTHROUGH";
    default:
        return "unknown";
    }
}

/* Send msg on from, read it back on to; 0 if it arrived whole and unchanged. */
static int exchange(int from, int to, const char *msg)
{
    char buf[64];
    size_t len = strlen(msg) + 1;
    if (shm_send(from, msg, len, MSG_NOSIGNAL) != (ssize_t)len) {
        perror("shm_send");
        return -1;
    }
    if (shm_recv(to, buf, sizeof(buf), MSG_WAITALL) < 0) {
        perror("shm_recv");
        return -1;
    }
    return memcmp(buf, msg, len) == 0 ? 0 : -1;
}

int main(void)
{
    int sv[2];
    if (shm_socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0) {
        perror("shm_socketpair");
        return 1;
    }
    int failed = 0;
    for (int i = 0; i < ROUNDS && !failed; i++)
        failed = exchange(sv[0], sv[1], "ping") < 0 || exchange(sv[1], sv[0], "pong") < 0;

    int status = -1;
    socklen_t len = sizeof(status);
    if (shm_getsockopt(sv[0], SOL_SHMSOCK, SHM_STATUS, &status, &len) < 0) {
        perror("shm_getsockopt(SHM_STATUS)");
        failed = 1;
    }
    printf("ping: shmsock %d.%d.%d: %d ping/pong rounds %s, payload carried by %s\n",
           SHMSOCK_VERSION_MAJOR, SHMSOCK_VERSION_MINOR, SHMSOCK_VERSION_PATCH, ROUNDS,
           failed ? "FAILED" : "ok", status_name(status));
    shm_close(sv[0]);
    shm_close(sv[1]);
    return failed || status != SHM_STATUS_SHM ? 1 : 0;
}
