/* liveness.c - errors and the kernel's word on the connection. See liveness.h. */
#define _GNU_SOURCE
#include "libc.h"
#include "liveness.h"

#include <errno.h>
#include <sys/socket.h>

int shmsock_conn_fail(struct shmsock_conn *conn, int err)
{
    int expected = 0;
    __atomic_compare_exchange_n(&conn->live.error, &expected, err, false, __ATOMIC_ACQ_REL,
                                __ATOMIC_ACQUIRE);
    /* End the connection for the peer too, as a kernel socket reset would. */
    shmsock_libc.shutdown(conn->fd, SHUT_RDWR);
    return __atomic_load_n(&conn->live.error, __ATOMIC_ACQUIRE);
}

int shmsock_kernel_empty_send(struct shmsock_conn *conn, int flags)
{
    struct msghdr empty = {0};
    return shmsock_libc.sendmsg(conn->fd, &empty, (flags & MSG_DONTWAIT) | MSG_NOSIGNAL) < 0
               ? -errno
               : 0;
}

int shmsock_take_deferred_error(struct shmsock_conn *conn)
{
    int err = conn->live.deferred_error;
    conn->live.deferred_error = 0;
    return err;
}

int shmsock_kernel_error(struct shmsock_conn *conn)
{
    int pending = 0;
    socklen_t len = sizeof(pending);
    if (shmsock_libc.getsockopt(conn->fd, SOL_SOCKET, SO_ERROR, &pending, &len) < 0)
        return 0;
    return -pending;
}

void shmsock_defer_error(struct shmsock_conn *conn, int err)
{
    if (conn->live.deferred_error == 0)
        conn->live.deferred_error = err;
}
