/*
 * zerocopy.c - shm_send_alloc, shm_send_commit, shm_send_abort, shm_recv_view,
 * shm_recv_release: the facade over the connection's zero-copy calls.
 */
#include <errno.h>

#include "fd_table.h"
#include "share.h"
#include "result.h"
#include "shmsock.h"

/* The entry of a shm socket, or NULL with errno set as the kernel would for this fd. */
static struct shmsock_entry *shm_entry(int fd)
{
    struct shmsock_entry *entry = shmsock_fd_get(fd);
    if (entry == NULL) {
        int type;
        socklen_t len = sizeof(type);
        if (shmsock_libc.getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0)
            errno = EOPNOTSUPP; /* a socket, but not one that runs over shared memory */
        return NULL;
    }
    int err = shmsock_share_use(entry->socket);
    if (err < 0) {
        shmsock_fd_put(entry);
        errno = -err;
        return NULL;
    }
    return entry;
}

void *shm_send_alloc(int sockfd, size_t len, int flags)
{
    struct shmsock_entry *entry = shm_entry(sockfd);
    if (entry == NULL)
        return NULL;
    int err;
    void *buf = shmsock_conn_send_alloc(entry->conn, len, flags, &err);
    shmsock_fd_put(entry);
    if (buf == NULL)
        errno = -err;
    return buf;
}

ssize_t shm_send_commit(int sockfd, void *buf, size_t len, int flags)
{
    struct shmsock_entry *entry = shm_entry(sockfd);
    if (entry == NULL)
        return -1;
    ssize_t r = shmsock_conn_send_commit(entry->conn, buf, len, flags);
    int type = shmsock_conn_type(entry->conn);
    shmsock_fd_put(entry);
    return shmsock_send_result(r, flags, type);
}

int shm_send_abort(int sockfd, void *buf)
{
    struct shmsock_entry *entry = shm_entry(sockfd);
    if (entry == NULL)
        return -1;
    int r = shmsock_conn_send_abort(entry->conn, buf);
    shmsock_fd_put(entry);
    return (int)shmsock_result(r);
}

ssize_t shm_recv_view(int sockfd, const void **buf, int flags)
{
    struct shmsock_entry *entry = shm_entry(sockfd);
    if (entry == NULL)
        return -1;
    ssize_t r = shmsock_conn_recv_view(entry->conn, buf, flags);
    shmsock_fd_put(entry);
    return shmsock_result(r);
}

int shm_recv_release(int sockfd, const void *buf)
{
    struct shmsock_entry *entry = shm_entry(sockfd);
    if (entry == NULL)
        return -1;
    int r = shmsock_conn_recv_release(entry->conn, buf);
    shmsock_fd_put(entry);
    return (int)shmsock_result(r);
}
