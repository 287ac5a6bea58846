/*
 * queues.h - what a shm socket's queues hold, counted as the kernel counts a plain socket's
 * (FIONREAD/SIOCINQ, SIOCOUTQ, SO_INQ's SCM_INQ). The numbers are made in queues.c alone;
 * engine.h declares the ioctl side for api/, this header the part the receive path needs.
 */
#ifndef SHMSOCK_IMPL_QUEUES_H
#define SHMSOCK_IMPL_QUEUES_H

#include <stddef.h>
#include <sys/socket.h>

#include "conn.h"

/*
 * SO_INQ is on (STREAM): after a read that returned >= 0, append an SCM_INQ control message
 * with the bytes still queued to msg's control data, as the kernel's put_cmsg does (control_room:
 * the msg_controllen the application passed; what does not fit sets MSG_CTRUNC). recv_lock held.
 */
void shmsock_queues_put_inq(struct shmsock_conn *conn, struct msghdr *msg, size_t control_room);

#endif
