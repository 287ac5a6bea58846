/*
 * adopt.h - sockets that reach this process without a call of ours making them.
 */
#ifndef SHMSOCK_API_ADOPT_H
#define SHMSOCK_API_ADOPT_H

#include <sys/socket.h>

/* After a successful receive: every AF_UNIX stream or seqpacket socket among msg's SCM_RIGHTS
 * descriptors becomes a shm socket of this process. A connected one stays on the kernel path
 * for good and its peer's offers never reach the program (its history is the sender's); a
 * listening or unconnected one may negotiate what it accepts or connects. */
void shmsock_adopt_received_sockets(const struct msghdr *msg);

#endif
