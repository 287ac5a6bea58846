/*
 * libc.c - see libc.h.
 */
#define _GNU_SOURCE
#include "libc.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <unistd.h>

/* Until resolved: the functions this file was linked against. That is the C library in a
 * program without an interposer; in the preload it is the preload itself, which is why the
 * preload resolves the table before its first call. */
struct shmsock_libc_calls shmsock_libc = {
    .socket = socket,
    .socketpair = socketpair,
    .accept = accept,
    .accept4 = accept4,
    .connect = connect,
    .bind = bind,
    .listen = listen,
    .shutdown = shutdown,
    .close = close,
    .close_range = close_range,
    .dup = dup,
    .dup2 = dup2,
    .dup3 = dup3,
    .fcntl = fcntl,
    .ioctl = ioctl,
    .getsockopt = getsockopt,
    .setsockopt = setsockopt,
    .getsockname = getsockname,
    .getpeername = getpeername,
    .send = send,
    .sendto = sendto,
    .sendmsg = sendmsg,
    .sendmmsg = sendmmsg,
    .recv = recv,
    .recvfrom = recvfrom,
    .recvmsg = recvmsg,
    .recvmmsg = recvmmsg,
    .read = read,
    .write = write,
    .readv = readv,
    .writev = writev,
    .poll = poll,
    .ppoll = ppoll,
    .select = select,
    .pselect = pselect,
    .epoll_ctl = epoll_ctl,
    .epoll_wait = epoll_wait,
    .epoll_pwait = epoll_pwait,
    .epoll_pwait2 = epoll_pwait2,
    .fclose = fclose,
    .sendfile = sendfile,
    .splice = splice,
};

static int resolved; /* atomic */

/* The next definition of `name` after this object: the C library's. NULL in a static binary
 * without a dynamic loader; the table then keeps the linked function, which is libc's. */
#define RESOLVE(field, name)                                                                       \
    do {                                                                                           \
        void *next = dlsym(RTLD_NEXT, name);                                                       \
        if (next != NULL)                                                                          \
            *(void **)&shmsock_libc.field = next;                                                  \
    } while (0)

void shmsock_libc_resolve(void)
{
    if (__atomic_load_n(&resolved, __ATOMIC_ACQUIRE))
        return;
    RESOLVE(socket, "socket");
    RESOLVE(socketpair, "socketpair");
    RESOLVE(accept, "accept");
    RESOLVE(accept4, "accept4");
    RESOLVE(connect, "connect");
    RESOLVE(bind, "bind");
    RESOLVE(listen, "listen");
    RESOLVE(shutdown, "shutdown");
    RESOLVE(close, "close");
    RESOLVE(close_range, "close_range");
    RESOLVE(dup, "dup");
    RESOLVE(dup2, "dup2");
    RESOLVE(dup3, "dup3");
    RESOLVE(fcntl, "fcntl64"); /* takes every command's argument whole (off_t is 64-bit) */
    RESOLVE(ioctl, "ioctl");
    RESOLVE(getsockopt, "getsockopt");
    RESOLVE(setsockopt, "setsockopt");
    RESOLVE(getsockname, "getsockname");
    RESOLVE(getpeername, "getpeername");
    RESOLVE(send, "send");
    RESOLVE(sendto, "sendto");
    RESOLVE(sendmsg, "sendmsg");
    RESOLVE(sendmmsg, "sendmmsg");
    RESOLVE(recv, "recv");
    RESOLVE(recvfrom, "recvfrom");
    RESOLVE(recvmsg, "recvmsg");
    RESOLVE(recvmmsg, "recvmmsg");
    RESOLVE(read, "read");
    RESOLVE(write, "write");
    RESOLVE(readv, "readv");
    RESOLVE(writev, "writev");
    RESOLVE(poll, "poll");
    RESOLVE(ppoll, "ppoll");
    RESOLVE(select, "select");
    RESOLVE(pselect, "pselect");
    RESOLVE(epoll_ctl, "epoll_ctl");
    RESOLVE(epoll_wait, "epoll_wait");
    RESOLVE(epoll_pwait, "epoll_pwait");
    RESOLVE(epoll_pwait2, "epoll_pwait2");
    RESOLVE(fclose, "fclose");
    RESOLVE(sendfile, "sendfile64"); /* off_t is 64-bit: the two are one call */
    RESOLVE(splice, "splice");
    __atomic_store_n(&resolved, 1, __ATOMIC_RELEASE);
}

bool shmsock_libc_resolved(void)
{
    return __atomic_load_n(&resolved, __ATOMIC_ACQUIRE) != 0;
}

/* Before main, and before the constructors of objects loaded after this one. */
__attribute__((constructor(101))) static void resolve_at_load(void)
{
    shmsock_libc_resolve();
}
