/*
 * io.c - the preload's calls that move bytes: send, sendto, sendmsg, sendmmsg, recv, recvfrom,
 * recvmsg, recvmmsg, read, write, readv, writev, their _FORTIFY_SOURCE forms (__read_chk,
 * __recv_chk, __recvfrom_chk), sendfile and splice.
 *
 * Each is the shm_ call of the same name, which passes every descriptor that is not a shm
 * socket to the C library. sendfile and splice cannot let the kernel move bytes into or out of
 * a shm socket (they would bypass shared memory and the peer would misread them), so on a shm
 * socket they copy through a buffer here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include "../fd_table.h"
#include "preload.h"
#include "shmsock.h"

ssize_t send(int sockfd, const void *buf, size_t len, int flags)
{
    shmsock_preload_ready();
    return shm_send(sockfd, buf, len, flags);
}

ssize_t sendto(int sockfd, const void *buf, size_t len, int flags, const struct sockaddr *dest_addr,
               socklen_t addrlen)
{
    shmsock_preload_ready();
    return shm_sendto(sockfd, buf, len, flags, dest_addr, addrlen);
}

ssize_t sendmsg(int sockfd, const struct msghdr *msg, int flags)
{
    shmsock_preload_ready();
    return shm_sendmsg(sockfd, msg, flags);
}

int sendmmsg(int sockfd, struct mmsghdr *msgvec, unsigned int vlen, int flags)
{
    shmsock_preload_ready();
    return shm_sendmmsg(sockfd, msgvec, vlen, flags);
}

ssize_t recv(int sockfd, void *buf, size_t len, int flags)
{
    shmsock_preload_ready();
    return shm_recv(sockfd, buf, len, flags);
}

ssize_t recvfrom(int sockfd, void *buf, size_t len, int flags, struct sockaddr *src_addr,
                 socklen_t *addrlen)
{
    shmsock_preload_ready();
    return shm_recvfrom(sockfd, buf, len, flags, src_addr, addrlen);
}

ssize_t recvmsg(int sockfd, struct msghdr *msg, int flags)
{
    shmsock_preload_ready();
    return shm_recvmsg(sockfd, msg, flags);
}

int recvmmsg(int sockfd, struct mmsghdr *msgvec, unsigned int vlen, int flags,
             struct timespec *timeout)
{
    shmsock_preload_ready();
    return shm_recvmmsg(sockfd, msgvec, vlen, flags, timeout);
}

ssize_t read(int fd, void *buf, size_t count)
{
    shmsock_preload_ready();
    return shm_read(fd, buf, count);
}

ssize_t write(int fd, const void *buf, size_t count)
{
    shmsock_preload_ready();
    return shm_write(fd, buf, count);
}

ssize_t readv(int fd, const struct iovec *iov, int iovcnt)
{
    shmsock_preload_ready();
    return shm_readv(fd, iov, iovcnt);
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
    shmsock_preload_ready();
    return shm_writev(fd, iov, iovcnt);
}

/* The C library's own check, which ends the program ("buffer overflow detected"). */
extern void __chk_fail(void) __attribute__((noreturn));

ssize_t __read_chk(int fd, void *buf, size_t nbytes, size_t buflen);
ssize_t __read_chk(int fd, void *buf, size_t nbytes, size_t buflen)
{
    if (nbytes > buflen)
        __chk_fail();
    return read(fd, buf, nbytes);
}

ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags);
ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags)
{
    if (len > buflen)
        __chk_fail();
    return recv(fd, buf, len, flags);
}

ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags,
                       struct sockaddr *src_addr, socklen_t *addrlen);
ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags,
                       struct sockaddr *src_addr, socklen_t *addrlen)
{
    if (len > buflen)
        __chk_fail();
    return recvfrom(fd, buf, len, flags, src_addr, addrlen);
}

/* SOCK_STREAM or SOCK_SEQPACKET for a shm socket, 0 for any other descriptor. */
static int shm_socket_type(int fd)
{
    struct shmsock_entry *entry = shmsock_fd_get(fd);
    int type = entry != NULL ? shmsock_conn_type(entry->conn) : 0;
    shmsock_fd_put(entry);
    return type;
}

static bool is_shm_socket(int fd)
{
    return shm_socket_type(fd) != 0;
}

#define BOUNCE_SIZE (64 * 1024)

/* sendfile(2) into a shm socket: read from in_fd (at *offset, which then moves, or at its file
 * position), send what was read. Returns the bytes sent, as sendfile does; bytes read but not
 * sent are given back to the file position (or *offset), so nothing is skipped. */
static ssize_t sendfile_copy(int out_fd, int in_fd, off_t *offset, size_t count)
{
    char *buf = malloc(BOUNCE_SIZE);
    if (buf == NULL) {
        errno = ENOMEM;
        return -1;
    }
    size_t done = 0;
    int saved = 0;
    while (done < count) {
        size_t want = count - done < BOUNCE_SIZE ? count - done : BOUNCE_SIZE;
        ssize_t got =
            offset != NULL ? pread(in_fd, buf, want, *offset) : shmsock_libc.read(in_fd, buf, want);
        if (got <= 0) {
            saved = got < 0 ? errno : 0;
            break;
        }
        ssize_t sent = shm_write(out_fd, buf, (size_t)got);
        if (sent < 0) {
            saved = errno;
            sent = 0;
        }
        if (offset != NULL)
            *offset += sent;
        else if (sent < got)
            (void)lseek(in_fd, (off_t)(sent - got), SEEK_CUR); /* not sent: not consumed */
        done += (size_t)sent;
        if (sent < got)
            break;
    }
    free(buf);
    if (done == 0 && saved != 0) {
        errno = saved;
        return -1;
    }
    return (ssize_t)done;
}

ssize_t sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
    shmsock_preload_ready();
    if (!is_shm_socket(out_fd))
        return shmsock_libc.sendfile(out_fd, in_fd, offset, count);
    return sendfile_copy(out_fd, in_fd, offset, count);
}

/* The same call for programs built with _FILE_OFFSET_BITS=64 (off_t is 64-bit here). */
ssize_t sendfile64(int out_fd, int in_fd, off_t *offset, size_t count);
ssize_t sendfile64(int out_fd, int in_fd, off_t *offset, size_t count)
{
    return sendfile(out_fd, in_fd, offset, count);
}

/* splice(2) with a shm socket on one side (the other is a pipe, as splice requires). Out of
 * the socket: peek, write to the pipe what it takes, then consume exactly that much, so bytes
 * the pipe had no room for stay in the socket. Into the socket: read from the pipe only what
 * the send took (peek is impossible on a pipe, so read a bounded amount and send it all). */
static ssize_t splice_copy(int fd_in, int fd_out, size_t len, unsigned flags, bool from_socket)
{
    size_t want = len < BOUNCE_SIZE ? len : BOUNCE_SIZE;
    char *buf = malloc(want > 0 ? want : 1);
    if (buf == NULL) {
        errno = ENOMEM;
        return -1;
    }
    int nonblock = (flags & SPLICE_F_NONBLOCK) ? MSG_DONTWAIT : 0;
    ssize_t r;
    if (from_socket) {
        r = shm_recv(fd_in, buf, want, MSG_PEEK | nonblock);
        if (r > 0) {
            r = shmsock_libc.write(fd_out, buf, (size_t)r);
            if (r > 0 && shm_recv(fd_in, buf, (size_t)r, MSG_WAITALL) != r)
                r = -1; /* peeked bytes vanished: another reader took them */
        }
    } else {
        r = shmsock_libc.read(fd_in, buf, want);
        if (r > 0) {
            size_t got = (size_t)r, sent = 0;
            while (sent < got) { /* bytes taken from the pipe must all be sent */
                ssize_t n = shm_send(fd_out, buf + sent, got - sent, MSG_NOSIGNAL);
                if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                    /* Even on a non-blocking socket: they cannot go back into the pipe. */
                    struct pollfd wait = {.fd = fd_out, .events = POLLOUT};
                    (void)shm_poll(&wait, 1, -1);
                    continue;
                }
                if (n < 0)
                    break;
                sent += (size_t)n;
            }
            r = sent > 0 ? (ssize_t)sent : -1;
        }
    }
    int saved = errno;
    free(buf);
    errno = saved;
    return r;
}

ssize_t splice(int fd_in, loff_t *off_in, int fd_out, loff_t *off_out, size_t len,
               unsigned int flags)
{
    shmsock_preload_ready();
    int in_type = shm_socket_type(fd_in), out_type = shm_socket_type(fd_out);
    bool in_shm = in_type != 0, out_shm = out_type != 0;
    if (!in_shm && !out_shm)
        return shmsock_libc.splice(fd_in, off_in, fd_out, off_out, len, flags);
    if ((in_shm && off_in != NULL) || (out_shm && off_out != NULL)) {
        errno = ESPIPE; /* as the kernel: a socket has no offset */
        return -1;
    }
    /* The kernel splices only out of a stream socket, and always through a pipe. */
    if ((in_shm && out_shm) || in_type == SOCK_SEQPACKET) {
        errno = EINVAL;
        return -1;
    }
    return splice_copy(fd_in, fd_out, len, flags, in_shm);
}
