/*
 * batch.c - shm_sendmmsg and shm_recvmmsg, with the kernel's semantics: a count of messages,
 * or -1 and errno only when the first one failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <time.h>

#include "adopt.h"
#include "fd_table.h"
#include "result.h"
#include "share.h"
#include "shmsock.h"

int shm_sendmmsg(int sockfd, struct mmsghdr *msgvec, unsigned int vlen, int flags)
{
    struct shmsock_entry *entry = shmsock_fd_get(sockfd);
    if (entry == NULL) {
        /* A shm socket passed on a kernel socket is given away or handed over as by
         * shm_sendmsg; a message that cannot go ends the batch before it. */
        unsigned int ready = 0;
        int err = 0;
        for (; ready < vlen && err == 0; ready++)
            err = shmsock_share_hand_over_rights(&msgvec[ready].msg_hdr);
        if (err < 0 && --ready == 0)
            return (int)shmsock_result(err);
        int n = shmsock_libc.sendmmsg(sockfd, msgvec, ready, flags);
        int saved = errno;
        for (unsigned int i = 0; i < ready; i++)
            shmsock_share_rights_sent(&msgvec[i].msg_hdr, n > 0 && i < (unsigned int)n);
        errno = saved;
        return n;
    }
    unsigned int sent = 0;
    int saved = 0;
    for (; sent < vlen; sent++) {
        /* One doorbell for the batch: all but the last hold it back. */
        int more = sent + 1 < vlen ? MSG_MORE : 0;
        ssize_t n = shm_sendmsg(sockfd, &msgvec[sent].msg_hdr, flags | more);
        if (n < 0) {
            saved = errno;
            break;
        }
        msgvec[sent].msg_len = (unsigned int)n;
    }
    if (sent < vlen && sent > 0)
        shmsock_conn_flush_doorbell(entry->conn); /* the batch stopped early */
    shmsock_fd_put(entry);
    if (sent == 0 && vlen > 0) {
        errno = saved;
        return -1;
    }
    return (int)sent;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int shm_recvmmsg(int sockfd, struct mmsghdr *msgvec, unsigned int vlen, int flags,
                 struct timespec *timeout)
{
    struct shmsock_entry *entry = shmsock_fd_get(sockfd);
    if (entry == NULL) {
        int n = shmsock_libc.recvmmsg(sockfd, msgvec, vlen, flags, timeout);
        for (int i = 0; i < n; i++)
            shmsock_adopt_received_sockets(&msgvec[i].msg_hdr);
        return n;
    }
    shmsock_fd_put(entry);
    if (timeout != NULL &&
        (timeout->tv_sec < 0 || timeout->tv_nsec < 0 || timeout->tv_nsec >= 1000000000)) {
        errno = EINVAL;
        return -1;
    }
    int64_t deadline =
        timeout != NULL ? now_ns() + (int64_t)timeout->tv_sec * 1000000000 + timeout->tv_nsec : 0;
    unsigned int got = 0;
    int saved = 0;
    int each = flags & ~MSG_WAITFORONE;
    for (; got < vlen; got++) {
        ssize_t n = shm_recvmsg(sockfd, &msgvec[got].msg_hdr, each);
        if (n < 0) {
            saved = errno;
            break;
        }
        msgvec[got].msg_len = (unsigned int)n;
        if (flags & MSG_WAITFORONE)
            each |= MSG_DONTWAIT;
        /* As the kernel: the timeout is looked at only after a message. */
        if (timeout != NULL && now_ns() >= deadline) {
            got++;
            break;
        }
    }
    if (got == 0 && vlen > 0) {
        errno = saved;
        return -1;
    }
    return (int)got;
}
