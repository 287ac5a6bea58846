/* result.c - see result.h. */
#include "result.h"

#include <errno.h>
#include <signal.h>
#include <sys/socket.h>

ssize_t shmsock_result(ssize_t r)
{
    if (r >= 0)
        return r;
    errno = (int)-r;
    return -1;
}

ssize_t shmsock_send_result(ssize_t r, int flags, int type)
{
    if (r == -EPIPE && type == SOCK_STREAM && !(flags & MSG_NOSIGNAL))
        raise(SIGPIPE);
    return shmsock_result(r);
}
