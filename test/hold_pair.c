/*
 * hold_pair.c - helper of shmsock_ss_test.sh: opens a STREAM pair over shared memory, moves
 * 10 messages of 100 bytes from one end to the other, prints "ready", then waits (until its
 * standard input closes) so that shmsock-ss can look at it.
 */
#include <stdio.h>
#include <unistd.h>

#include "shmsock.h"

int main(void)
{
    int sv[2];
    char buf[100] = {0};
    if (shm_socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return 1;
    for (int i = 0; i < 2; i++) { /* two round trips: both sides on shared memory */
        if (shm_send(sv[0], buf, 1, 0) != 1 || shm_recv(sv[1], buf, 1, 0) != 1 ||
            shm_send(sv[1], buf, 1, 0) != 1 || shm_recv(sv[0], buf, 1, 0) != 1)
            return 2;
    }
    for (int i = 0; i < 10; i++) {
        if (shm_send(sv[0], buf, sizeof(buf), 0) != (ssize_t)sizeof(buf))
            return 3;
        size_t got = 0;
        while (got < sizeof(buf)) {
            ssize_t n = shm_recv(sv[1], buf + got, sizeof(buf) - got, 0);
            if (n <= 0)
                return 4;
            got += (size_t)n;
        }
    }
    printf("ready\n");
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0) {
    }
    return 0;
}
