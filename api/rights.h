/*
 * rights.h - the descriptors a message passes (SCM_RIGHTS), one at a time.
 */
#ifndef SHMSOCK_API_RIGHTS_H
#define SHMSOCK_API_RIGHTS_H

#include <sys/socket.h>

/* Call visit(fd, arg) for every descriptor of msg's SCM_RIGHTS control messages, in order;
 * stop at the first negative result and return it, else return 0. A control buffer that cannot
 * be walked is left to the kernel, which checks it (EFAULT, EINVAL). */
int shmsock_rights_each(const struct msghdr *msg, int (*visit)(int fd, void *arg), void *arg);

#endif
