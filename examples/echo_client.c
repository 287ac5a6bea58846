/*
 * echo_client.c - an echo client written with shmsock calls.
 *
 *   echo_client [--seqpacket] [--count N] [--min BYTES] [--max BYTES] SOCKET
 *
 * Connects to SOCKET (a filesystem path, or "@name" for an abstract name), sends N messages
 * (default 1000) of sizes between --min and --max bytes (default 64..65536), reads each echo
 * back, checks it byte for byte, and prints a summary. Exit status 0 only if every echo was
 * correct.
 *
 * This file and echo_client.c are the same program, line for line: `diff -u
 * examples/echo_client_plain.c examples/echo_client.c` is the porting guide. This one uses
 * shmsock's calls: against a shmsock server the payload goes through shared memory, against
 * a plain server it stays on the kernel socket. The summary says which (SHM_STATUS).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "shmsock.h"

/* Each message is sent whole before its echo is read, so it must fit in the buffers of the
 * connection (as with any socket); 128 KiB leaves room to spare. */
#define MAX_MESSAGE (128u * 1024u)

/* Fill a sockaddr_un from "path" or "@abstract". Returns its length, or 0 if too long. */
static socklen_t make_address(const char *name, struct sockaddr_un *addr)
{
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    size_t len = strlen(name);
    if (len == 0 || len >= sizeof(addr->sun_path))
        return 0;
    memcpy(addr->sun_path, name, len);
    if (name[0] == '@') {
        addr->sun_path[0] = '\0'; /* abstract: no trailing NUL, length says where it ends */
        return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    }
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
}

/* Deterministic bytes for message `index`, so that every echo can be checked exactly. */
static void fill_message(unsigned char *buf, size_t len, uint32_t index)
{
    uint32_t x = index * 2654435761u + 1u;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (unsigned char)x;
    }
}

/* Size of message `index`: the first is min, the second max, the rest in between. */
static size_t message_size(uint32_t index, size_t min, size_t max)
{
    if (index == 0 || min == max)
        return min;
    if (index == 1)
        return max;
    uint32_t x = index * 2246822519u;
    x ^= x >> 15;
    return min + x % (max - min + 1);
}

/* Send all of buf (a stream send may be partial). Returns 0, or -1 with errno set. */
static int send_all(int fd, const unsigned char *buf, size_t len)
{
    size_t sent = 0;
    while (sent < len) {
        ssize_t n = shm_send(fd, buf + sent, len - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        sent += (size_t)n;
    }
    return 0;
}

/* Read the echo of a len-byte message. Returns the bytes read (len if all is well), or -1. */
static ssize_t recv_echo(int fd, unsigned char *buf, size_t len, size_t capacity)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = shm_recv(fd, buf + got, capacity - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break; /* the server closed the connection */
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* What carried the payload: shmsock says it (SHM_STATUS). */
static const char *transport(int fd)
{
    int status = -1;
    socklen_t len = sizeof(status);
    if (shm_getsockopt(fd, SOL_SHMSOCK, SHM_STATUS, &status, &len) < 0)
        return "an unknown path (SHM_STATUS failed)";
    if (status == SHM_STATUS_SHM)
        return "shared memory (SHM_STATUS_SHM)";
    if (status == SHM_STATUS_OFFERED)
        return "the kernel socket (SHM_STATUS_OFFERED: offers under way, or a plain peer)";
    return "the kernel socket (SHM_STATUS_PLAIN: no offer exchanged)";
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--seqpacket] [--count N] [--min BYTES] [--max BYTES] SOCKET\n"
            "  SOCKET is a filesystem path or @name (abstract); sizes 1..%u\n",
            argv0, MAX_MESSAGE);
}

int main(int argc, char **argv)
{
    int type = SOCK_STREAM;
    unsigned long count = 1000, min = 64, max = 65536;
    const char *name = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seqpacket") == 0)
            type = SOCK_SEQPACKET;
        else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc)
            count = strtoul(argv[++i], NULL, 0);
        else if (strcmp(argv[i], "--min") == 0 && i + 1 < argc)
            min = strtoul(argv[++i], NULL, 0);
        else if (strcmp(argv[i], "--max") == 0 && i + 1 < argc)
            max = strtoul(argv[++i], NULL, 0);
        else if (argv[i][0] != '-' && name == NULL)
            name = argv[i];
        else
            return usage(argv[0]), 2;
    }
    if (name == NULL || min < 1 || min > max || max > MAX_MESSAGE)
        return usage(argv[0]), 2;
    const char *prog = strrchr(argv[0], '/') != NULL ? strrchr(argv[0], '/') + 1 : argv[0];

    struct sockaddr_un addr;
    socklen_t addr_len = make_address(name, &addr);
    if (addr_len == 0) {
        fprintf(stderr, "%s: socket name too long: %s\n", prog, name);
        return 2;
    }
    unsigned char *out = malloc(max), *in = malloc(max + 1);
    if (out == NULL || in == NULL) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return 1;
    }

    int fd = shm_socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("shm_socket");
        return 1;
    }
    /* Never hang on a broken server: a stuck send or a missing echo ends the run. */
    struct timeval timeout = {.tv_sec = 10};
    shm_setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    shm_setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    if (shm_connect(fd, (const struct sockaddr *)&addr, addr_len) < 0) {
        fprintf(stderr, "%s: connect %s: %s\n", prog, name, strerror(errno));
        shm_close(fd);
        return 1;
    }

    unsigned long long bytes = 0;
    int failed = 0;
    for (uint32_t m = 0; m < count && !failed; m++) {
        size_t len = message_size(m, min, max);
        fill_message(out, len, m);
        if (send_all(fd, out, len) < 0) {
            fprintf(stderr, "%s: message %u: send: %s\n", prog, m, strerror(errno));
            failed = 1;
            break;
        }
        ssize_t got = recv_echo(fd, in, len, max + 1);
        if (got < 0) {
            fprintf(stderr, "%s: message %u: recv: %s\n", prog, m, strerror(errno));
            failed = 1;
        } else if ((size_t)got != len) {
            fprintf(stderr, "%s: message %u: sent %zu bytes, echo has %zd\n", prog, m, len, got);
            failed = 1;
        } else if (memcmp(in, out, len) != 0) {
            size_t at = 0;
            while (in[at] == out[at])
                at++;
            fprintf(stderr, "%s: message %u (%zu bytes): echo differs at byte %zu\n", prog, m, len,
                    at);
            failed = 1;
        } else {
            bytes += len;
        }
    }

    if (!failed)
        printf("%s: %lu messages of %lu..%lu bytes (%llu bytes) echoed back correct over %s\n",
               prog, count, min, max, bytes, transport(fd));
    shm_close(fd);
    free(out);
    free(in);
    return failed ? 1 : 0;
}
