/*
 * sockopt.c - shm_setsockopt and shm_getsockopt: level SOL_SHMSOCK is ours, every other
 * level is the kernel socket's.
 */
#include <errno.h>
#include <string.h>

#include "fd_table.h"
#include "result.h"
#include "shmsock.h"

/* For a descriptor that is not a shm socket: the kernel's errno if it is not a socket. */
static int passthrough_status(int sockfd, void *optval, socklen_t *optlen)
{
    int type;
    socklen_t len = sizeof(type);
    if (shmsock_libc.getsockopt(sockfd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
        return -1;
    if (optlen == NULL || optval == NULL || *optlen < sizeof(int))
        return (int)shmsock_result(-EINVAL);
    int status = SHM_STATUS_PASSTHROUGH;
    memcpy(optval, &status, sizeof(status));
    *optlen = sizeof(status);
    return 0;
}

int shm_setsockopt(int sockfd, int level, int optname, const void *optval, socklen_t optlen)
{
    struct shmsock_entry *entry = shmsock_fd_get(sockfd);
    if (level != SOL_SHMSOCK) {
        int r = shmsock_libc.setsockopt(sockfd, level, optname, optval, optlen);
        if (r == 0 && entry != NULL && level == SOL_SOCKET &&
            (optname == SO_SNDBUF || optname == SO_SNDBUFFORCE))
            shmsock_conn_sndbuf_changed(entry->conn);
        if (r == 0 && entry != NULL && level == SOL_SOCKET && optname == SO_PASSCRED &&
            optval != NULL && optlen >= sizeof(int)) {
            int on;
            memcpy(&on, optval, sizeof(on));
            shmsock_conn_passcred_changed(entry->conn, on);
        }
        if (r == 0 && entry != NULL && level == SOL_SOCKET && optname == SO_INQ) {
            /* The kernel accepted it (STREAM, 0 or 1): our reads add SCM_INQ themselves, and
             * the kernel socket's own count (of event records) must not reach them. */
            int on;
            memcpy(&on, optval, sizeof(on));
            int off = 0;
            (void)shmsock_libc.setsockopt(sockfd, SOL_SOCKET, SO_INQ, &off, sizeof(off));
            shmsock_conn_set_inq(entry->conn, on);
        }
        if (r == 0 && entry != NULL && level == SOL_SOCKET && optname == SO_PEEK_OFF)
            shmsock_conn_peek_off_changed(entry->conn);
        shmsock_fd_put(entry);
        return r;
    }
    int r;
    if (entry == NULL) {
        int type;
        socklen_t len = sizeof(type);
        if (shmsock_libc.getsockopt(sockfd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
            return -1;
        r = -ENOPROTOOPT;
    } else if (optval == NULL || optlen < sizeof(int)) {
        r = -EINVAL;
    } else {
        int value;
        memcpy(&value, optval, sizeof(value));
        r = shmsock_conn_set_option(entry->conn, optname, value);
    }
    shmsock_fd_put(entry);
    return (int)shmsock_result(r);
}

int shm_getsockopt(int sockfd, int level, int optname, void *optval, socklen_t *optlen)
{
    if (level != SOL_SHMSOCK)
        return shmsock_libc.getsockopt(sockfd, level, optname, optval, optlen);
    struct shmsock_entry *entry = shmsock_fd_get(sockfd);
    if (entry == NULL) {
        if (optname == SHM_STATUS)
            return passthrough_status(sockfd, optval, optlen);
        int type;
        socklen_t len = sizeof(type);
        if (shmsock_libc.getsockopt(sockfd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
            return -1;
        return (int)shmsock_result(-ENOPROTOOPT);
    }
    int r = -EINVAL;
    int value = 0;
    if (optname == SHM_INFO) {
        struct shm_sock_info info;
        if (optval != NULL && optlen != NULL && *optlen >= sizeof(info)) {
            r = shmsock_conn_get_info(entry->conn, &info);
            memcpy(optval, &info, sizeof(info));
            *optlen = sizeof(info);
        }
    } else if (optval != NULL && optlen != NULL && *optlen >= sizeof(int)) {
        r = shmsock_conn_get_option(entry->conn, optname, &value);
        if (r == 0) {
            memcpy(optval, &value, sizeof(value));
            *optlen = sizeof(value);
        }
    }
    shmsock_fd_put(entry);
    return (int)shmsock_result(r);
}
