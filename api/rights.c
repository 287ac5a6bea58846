/*
 * rights.c - see rights.h.
 */
#include "rights.h"

#include <stddef.h>
#include <string.h>

int shmsock_rights_each(const struct msghdr *msg, int (*visit)(int fd, void *arg), void *arg)
{
    if (msg == NULL || msg->msg_control == NULL || msg->msg_controllen < sizeof(struct cmsghdr))
        return 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)msg); c != NULL;
         c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0))
            continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
            int r = visit(fd, arg);
            if (r < 0)
                return r;
        }
    }
    return 0;
}
