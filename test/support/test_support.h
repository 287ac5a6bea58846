/*
 * test_support.h - helpers shared by the cmocka tests.
 *
 * Most behaviour tests run the same steps twice: once on plain kernel sockets (the
 * specification) and once on shm sockets, and compare. `struct sock_api` is the table of calls
 * each run uses, so a test body is written once.
 */
#ifndef SHMSOCK_TEST_SUPPORT_H
#define SHMSOCK_TEST_SUPPORT_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

struct sock_api {
    const char *name; /* "kernel" or "shm" */
    bool is_shm;
    int (*socket)(int, int, int);
    int (*socketpair)(int, int, int, int[2]);
    int (*bind)(int, const struct sockaddr *, socklen_t);
    int (*listen)(int, int);
    int (*accept)(int, struct sockaddr *, socklen_t *);
    int (*accept4)(int, struct sockaddr *, socklen_t *, int);
    int (*connect)(int, const struct sockaddr *, socklen_t);
    ssize_t (*send)(int, const void *, size_t, int);
    ssize_t (*recv)(int, void *, size_t, int);
    ssize_t (*sendmsg)(int, const struct msghdr *, int);
    ssize_t (*recvmsg)(int, struct msghdr *, int);
    ssize_t (*read)(int, void *, size_t);
    ssize_t (*write)(int, const void *, size_t);
    int (*shutdown)(int, int);
    int (*close)(int);
    int (*setsockopt)(int, int, int, const void *, socklen_t);
    int (*getsockopt)(int, int, int, void *, socklen_t *);
    int (*fcntl)(int, int, ...);
    int (*poll)(struct pollfd *, nfds_t, int);
};

extern const struct sock_api test_kernel_api;
extern const struct sock_api test_shm_api;

/* Both tables, kernel first, for loops: for (i = 0; i < 2; i++) run(test_apis[i]). */
extern const struct sock_api *const test_apis[2];

/*
 * A connected pair made through bind/listen/connect/accept on a fresh abstract address
 * (so it exercises the same path as a real client and server). Returns 0 and fills
 * *client, *server; fails the test on error.
 */
void test_connect_pair(const struct sock_api *api, int type, int *client, int *server);

/* A fresh unique abstract AF_UNIX address (sun_path[0] == 0). */
socklen_t test_abstract_addr(struct sockaddr_un *addr);

/*
 * Exchange one message each way so two shm sockets finish negotiating; afterwards
 * SHM_STATUS reads SHM_STATUS_SHM on both. On kernel sockets it is the same exchange.
 */
void test_handshake(const struct sock_api *api, int a, int b);

/* SHM_STATUS of a shm socket (fails the test if getsockopt fails). */
int test_shm_status(int fd);

/* Write/read exactly len bytes (loops over short transfers); fail the test on error. */
void test_send_all(const struct sock_api *api, int fd, const void *buf, size_t len);
void test_recv_all(const struct sock_api *api, int fd, void *buf, size_t len);

/* Attach one SCM_RIGHTS control message carrying fds[0..n) to m, built in `control`: at
 * least CMSG_SPACE(n * sizeof(int)) bytes, aligned for struct cmsghdr. */
void test_attach_fds(struct msghdr *m, void *control, const int *fds, size_t n);

/* Fill buf with a deterministic pattern derived from seed; check it. */
void test_fill_pattern(void *buf, size_t len, unsigned seed);
bool test_check_pattern(const void *buf, size_t len, unsigned seed);

/*
 * Watchdog for blocking steps: if the process is still running `seconds` from now, print
 * "watchdog: <what> still blocked after N s" and _exit(1) (a hang becomes a failure of the
 * whole test program, never a stuck run). test_watchdog(0, NULL) cancels. Uses alarm() and
 * SIGALRM: a test that needs SIGALRM itself must not use it.
 */
void test_watchdog(unsigned seconds, const char *what);

/* CLOCK_MONOTONIC in seconds, for deadlines and durations. */
double test_now_seconds(void);

#endif
