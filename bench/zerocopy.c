/*
 * zerocopy.c - the zero-copy and batch calls, linked weakly.
 *
 * shm_send_alloc/commit, shm_recv_view/release and shm_sendmmsg/recvmmsg are declared in
 * shmsock.h but may not be implemented yet in a given tree. They are referenced weakly here,
 * so the benchmark links either way: while one is missing its cases report
 * "not linked: shm_..." and the rest of the run goes on. (bench/BUILD passes -Wl,-u for each,
 * so a definition in an archive member nothing else pulls in is still linked.)
 */
#include "bench.h"

#include <errno.h>

#include "shmsock.h"

#pragma weak shm_send_alloc
#pragma weak shm_send_commit
#pragma weak shm_recv_view
#pragma weak shm_recv_release
#pragma weak shm_sendmmsg
#pragma weak shm_recvmmsg

const char *zerocopy_missing(void)
{
    if (!shm_send_alloc)
        return "shm_send_alloc";
    if (!shm_send_commit)
        return "shm_send_commit";
    if (!shm_recv_view)
        return "shm_recv_view";
    if (!shm_recv_release)
        return "shm_recv_release";
    return NULL;
}

const char *mmsg_missing(void)
{
    if (!shm_sendmmsg)
        return "shm_sendmmsg";
    if (!shm_recvmmsg)
        return "shm_recvmmsg";
    return NULL;
}

void *zc_send_alloc(int fd, size_t len, int flags)
{
    if (!shm_send_alloc) {
        errno = ENOSYS;
        return NULL;
    }
    return shm_send_alloc(fd, len, flags);
}

ssize_t zc_send_commit(int fd, void *buf, size_t len, int flags)
{
    if (!shm_send_commit) {
        errno = ENOSYS;
        return -1;
    }
    return shm_send_commit(fd, buf, len, flags);
}

ssize_t zc_recv_view(int fd, const void **buf, int flags)
{
    if (!shm_recv_view) {
        errno = ENOSYS;
        return -1;
    }
    return shm_recv_view(fd, buf, flags);
}

int zc_recv_release(int fd, const void *buf)
{
    if (!shm_recv_release) {
        errno = ENOSYS;
        return -1;
    }
    return shm_recv_release(fd, buf);
}

int zc_sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
    if (!shm_sendmmsg) {
        errno = ENOSYS;
        return -1;
    }
    return shm_sendmmsg(fd, vec, vlen, flags);
}

int zc_recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags, struct timespec *timeout)
{
    if (!shm_recvmmsg) {
        errno = ENOSYS;
        return -1;
    }
    return shm_recvmmsg(fd, vec, vlen, flags, timeout);
}
