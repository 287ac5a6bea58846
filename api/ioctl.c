/*
 * ioctl.c - shm_ioctl: the queue sizes of a shm socket (FIONREAD/SIOCINQ, SIOCOUTQ) come from
 * the engine; every other request, and every other descriptor, is the kernel's.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>

#include "fd_table.h"
#include "share.h"
#include "result.h"
#include "shmsock.h"

int shm_ioctl(int fd, unsigned long request, ...)
{
    va_list ap;
    va_start(ap, request);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    struct shmsock_entry *entry = shmsock_fd_get(fd);
    if (entry == NULL)
        return shmsock_libc.ioctl(fd, request, arg);
    /* The kernel's own answer first: it checks the request, the socket's state and the
     * pointer (EFAULT) as for a plain socket; ours replaces its number. */
    int r = shmsock_libc.ioctl(fd, request, arg);
    if (r == 0 && (request == SIOCINQ || request == SIOCOUTQ)) {
        int err = shmsock_share_use(entry->socket); /* our counts are those of its user */
        if (err < 0) {
            shmsock_fd_put(entry);
            return (int)shmsock_result(err);
        }
        int value = 0;
        err = shmsock_conn_queued(entry->conn, request, &value);
        if (err == 0)
            *(int *)arg = value;
        r = (int)shmsock_result(err);
    }
    shmsock_fd_put(entry);
    return r;
}
