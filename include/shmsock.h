/*
 * shmsock.h - sockets whose payload travels through shared memory.
 *
 * Every call here has the exact signature of the POSIX/Linux call it replaces, so a program
 * can be ported with `#define send shm_send` or by renaming calls. The descriptor returned by
 * shm_socket(), shm_accept() and shm_socketpair() IS the kernel socket's descriptor: it can be
 * put into select/poll/epoll, passed to bind/listen/connect semantics, inspected with `ss -x`.
 *
 * How it works (see docs/PROTOCOL.md for the details):
 *   - AF_UNIX SOCK_STREAM and SOCK_SEQPACKET sockets are shm sockets. Other families, and
 *     AF_UNIX SOCK_DGRAM for now, pass straight through to the kernel: every shm_* call on
 *     them behaves exactly as the plain call.
 *   - Two connected shm sockets negotiate by themselves: each side attaches an *offer* (a
 *     sealed memfd holding its region, plus a socket for release events) as SCM_RIGHTS
 *     ancillary data to the first payload it sends. Once a side has sent its offer and received
 *     the peer's, its payload goes through blocks of its region and the kernel socket carries
 *     only small events. A peer that never offers (a plain kernel socket) simply keeps a plain
 *     kernel connection: it sees exactly the bytes/messages that were sent.
 *   - The offer rule, for plain peers that read ancillary data themselves: an offer is never
 *     attached to a message that already carries the application's ancillary data, it is
 *     always exactly two descriptors (a sealed memfd whose header starts with the magic
 *     "SHMSOCK\0", then a Unix socket), and shm_setsockopt(fd, SOL_SHMSOCK, SHM_NEGOTIATE, 0)
 *     before the first send turns offers off for that socket. A plain server that calls
 *     recvmsg() with a control buffer on a connection from a shm client sees those two
 *     descriptors on the first message: it should close them, or the client should turn
 *     negotiation off.
 *
 * Error convention: like the calls they replace, these return -1 and set errno on failure.
 * Beyond the kernel's errors, a connection whose peer breaks the shmsock protocol (forged
 * event, bad offer) fails with ECONNRESET or EPROTO; other connections are not affected.
 *
 * Use shm_close() (not close()) on descriptors created by shmsock, so the library can free
 * the shared-memory state kept for them. shm_close() sends nothing to the peer: the peer sees
 * the end of the connection when the last copy of the descriptor is closed, as with kernel
 * sockets (fork-and-hand-off servers keep working).
 *
 * Several processes (fork): while more than one process holds a socket that has not begun to
 * negotiate, no offer and no answer leaves: it works as a kernel socket in every process; the
 * first process to call on it claims it, and a call from a second one puts it on the kernel
 * path for good. The claimant may read the peer's offer: it takes it (unseen by the
 * program) and answers once it holds the socket alone (the others closed it or called exit());
 * a socket one process alone holds negotiates as usual. A socket already negotiating at the
 * fork, or whose offer a process took, is driven by that process; calls from another process
 * fail with EOPNOTSUPP (logged with SHMSOCK_LOG), since a connection cannot yet move back to
 * the kernel path. A holder that ends with _exit(), an exec or a crash keeps its share, so the
 * others stay on the kernel path. Passing a shm socket with SCM_RIGHTS
 * keeps it on the kernel path if it has not begun to negotiate, and fails with EOPNOTSUPP if it
 * has (the receiving process could not read it). shm_recvmsg adopts the sockets it receives:
 * a connected one on the kernel path (the peer's offers kept from the program), a listening or
 * unconnected one as new.
 *
 * Readiness: the descriptor is readable whenever a message (or the peer's end) is waiting,
 * for level- and edge-triggered epoll alike. Writability is the exception: the kernel socket
 * reports POLLOUT even when every block of the region is in use. A non-blocking sender that
 * gets EAGAIN because no block is free waits with shm_poll(), shm_ppoll(), shm_select(),
 * shm_pselect() or the shm_epoll_*() calls (which understand blocks), not with the kernel's
 * calls on the raw descriptor, which would report it writable at once and spin.
 *
 * Threads: a socket may be used from several threads at once. Concurrent senders never
 * interleave parts of their messages; a reading thread and a writing thread do not block
 * each other.
 */
#ifndef SHMSOCK_H
#define SHMSOCK_H

#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHMSOCK_VERSION_MAJOR 0
#define SHMSOCK_VERSION_MINOR 1
#define SHMSOCK_VERSION_PATCH 0

/* SO_INQ (Linux 6.17+ for AF_UNIX SOCK_STREAM) and its control message, for C libraries whose
 * headers predate them: the kernel's values. */
#ifndef SO_INQ
#define SO_INQ 84
#endif
#ifndef SCM_INQ
#define SCM_INQ SO_INQ
#endif

/* Socket option level for shmsock's own options (shm_setsockopt/shm_getsockopt). */
#define SOL_SHMSOCK 0x53484d /* "SHM" */

/*
 * SHM_NEGOTIATE (int, read/write, default 1): whether this socket offers shared memory to its
 * peer. Set to 0 before the first send/receive to make the socket behave as a plain kernel
 * socket in every respect (no descriptor is ever attached to its messages, offers it receives
 * are handed to the application as ordinary ancillary data). Setting it after the connection
 * has switched to shared memory fails with EISCONN.
 */
#define SHM_NEGOTIATE 1

/*
 * SHM_BLOCK_SIZE (int, read/write): size in bytes of one block of the region this socket
 * sends from. A power of two, at least 1024 and at most 1 MiB (EINVAL otherwise). Takes
 * effect when the region is created (the first send, or while the first receive waits for the
 * peer's first message); once an offer has been sent or received, setting it fails with
 * EISCONN (a region made while waiting and not offered yet is made again with the new value).
 * Default: SHM_DEFAULT_BLOCK_SIZE.
 */
#define SHM_BLOCK_SIZE 2

/*
 * SHM_STATUS (int, read-only): what carries this connection's payload:
 *   SHM_STATUS_PLAIN    - no offer sent or received: the kernel socket carries payload
 *                         (nothing exchanged yet, or SHM_NEGOTIATE is 0);
 *   SHM_STATUS_OFFERED  - this side has sent or received an offer but does not send through
 *                         shared memory (yet): the switch is under way (it happens on a later
 *                         send, usually within two round trips), or, if it stays so, the peer
 *                         is a plain kernel socket (SHM_INFO's fallback tells which);
 *   SHM_STATUS_SHM      - this side sends through shared memory and the peer does too;
 *   SHM_STATUS_PASSTHROUGH - not a shm socket type (other family, SOCK_DGRAM, or listening).
 */
#define SHM_STATUS 3
#define SHM_STATUS_PLAIN 0
#define SHM_STATUS_OFFERED 1
#define SHM_STATUS_SHM 2
#define SHM_STATUS_PASSTHROUGH 3

/*
 * shm_status - SHM_STATUS of fd without a system call (an atomic load or two): what carries
 * its payload, SHM_STATUS_PLAIN, SHM_STATUS_OFFERED or SHM_STATUS_SHM, for a shm socket;
 * SHM_STATUS_PASSTHROUGH for any other descriptor (another family or type, a socket made
 * listening with shm_listen, a file, a closed number: it is not checked with the kernel) and
 * for a negative fd. Never fails; safe in a signal handler.
 */
int shm_status(int fd);

/*
 * SHM_COALESCE (int, read/write, default 1): how this socket's events travel once on shared
 * memory. 1: coalesced mode - events and releases go through rings in shared memory, and the
 * kernel socket carries a doorbell only when the reader is about to sleep. 0: event mode (the
 * specification's) - every event and every release is its own kernel message. A message
 * with ancillary data, or a reader with SO_PASSCRED, moves that direction to event mode for
 * the rest of the connection. Setting it after the switch fails with EISCONN.
 */
#define SHM_COALESCE 4

/*
 * SHM_BUSY_POLL (int, microseconds, read/write, default 0): before a blocking receive sleeps
 * in the kernel, spin at most this long on the ring (like SO_BUSY_POLL). Costs CPU, saves the
 * wake-up latency. Negative values fail with EINVAL. Coalesced mode only (the peer's events
 * come through its ring); a receive in event mode sleeps at once.
 *
 * Adaptive: the spin runs only while it pays. A receive does not spin while the machine has
 * no idle core (more runnable tasks than online CPUs in /proc/loadavg, read at most every
 * 10 ms per process), and a spin stops at once when the spinner loses its core: the peer
 * needs that CPU to answer. Per connection, a spin that ends without a message (the window
 * ran out, or the spinner was preempted) is wasted; after 2 wasted spins in a row the next 8
 * blocking receives sleep at once, and each probe after that which is wasted too doubles the
 * count (up to 4096); one spin that pays starts over. So a reader whose peer answers late
 * costs a few windows of CPU, not one per message; a zero value never spins.
 */
#define SHM_BUSY_POLL 5

/*
 * SHM_REGION_SIZE (int, bytes, read/write, default 0): size of the block area of the region
 * this socket sends from. 0 follows SO_SNDBUF (as a kernel send buffer does). Rounded up to
 * whole blocks; at most 4096 blocks (EINVAL beyond, or if negative). Like SHM_BLOCK_SIZE it
 * takes effect when the region is created and fails with EISCONN once an offer has been sent
 * or received. A
 * zero-copy message (shm_send_alloc) must fit in the region: raise it for large messages.
 * Set SHM_BLOCK_SIZE first (the limit is checked against the block size of the moment). Read
 * back, it gives the real size once the region exists.
 */
#define SHM_REGION_SIZE 6

/*
 * SHM_INFO (struct shm_sock_info, read-only): what carries the connection and what went
 * through it. The value is 14, the same as <sys/shm.h>'s SHM_INFO, so both headers can be
 * included (they are different levels). Fails with EINVAL if optlen is too small.
 */
#ifndef SHM_INFO
#define SHM_INFO 14
#endif

/* shm_sock_info.fallback: why the connection does not (yet) run over shared memory. */
#define SHM_FALLBACK_NONE 0           /* it does */
#define SHM_FALLBACK_PENDING 1        /* not yet: no offer exchanged, or the exchange under way */
#define SHM_FALLBACK_DISABLED 2       /* SHM_NEGOTIATE is 0 on this socket */
#define SHM_FALLBACK_PLAIN_PEER 3     /* the peer dropped our offer: a plain kernel socket */
#define SHM_FALLBACK_PROTOCOL_ERROR 4 /* the peer broke the protocol; the connection ended */

struct shm_sock_info {
    int status;              /* SHM_STATUS_* */
    int fallback;            /* SHM_FALLBACK_* */
    int coalesced;           /* our sends use coalesced mode (0: event mode or not on shm) */
    int peer_coalesced;      /* the peer's sends reach us through its ring */
    unsigned int block_size; /* our region (0 before it exists) */
    unsigned int block_count;
    unsigned int peer_block_size; /* the peer's region (0 before its offer) */
    unsigned int peer_block_count;
    unsigned long long blocks_in_use;     /* of our region: sent, not yet released by the peer */
    unsigned long long peer_blocks_held;  /* of the peer's: received, not yet released by us */
    unsigned long long messages_sent;     /* DATA events published (a STREAM send may be several) */
    unsigned long long bytes_sent;        /* payload bytes sent through shared memory */
    unsigned long long messages_received; /* reads served from shared memory */
    unsigned long long bytes_received;
    unsigned long long doorbells_sent; /* kernel messages that only woke the peer */
    unsigned long long doorbells_received;
};

/* Default block size (bytes). By default the region holds SO_SNDBUF bytes rounded up to whole
 * blocks (see SHM_REGION_SIZE). */
#define SHM_DEFAULT_BLOCK_SIZE 4096

/*
 * shm_socket - create an endpoint for communication, like socket(2).
 * AF_UNIX with SOCK_STREAM or SOCK_SEQPACKET (optionally |SOCK_NONBLOCK, |SOCK_CLOEXEC) gives
 * a shm socket; anything else is a plain kernel socket.
 * Returns the new descriptor (the kernel socket's own), or -1 with errno as socket(2):
 * EAFNOSUPPORT, EINVAL, EMFILE, ENFILE, ENOBUFS/ENOMEM, EPROTONOSUPPORT, EACCES.
 */
int shm_socket(int domain, int type, int protocol);

/*
 * shm_socketpair - create a pair of connected sockets, like socketpair(2). For AF_UNIX
 * SOCK_STREAM/SOCK_SEQPACKET both ends are shm sockets. Returns 0 and fills sv[0], sv[1], or
 * -1 with errno as socketpair(2): EAFNOSUPPORT, EFAULT, EMFILE, ENFILE, EOPNOTSUPP,
 * EPROTONOSUPPORT.
 */
int shm_socketpair(int domain, int type, int protocol, int sv[2]);

/*
 * shm_bind - bind a name to a socket, like bind(2): filesystem paths and abstract names
 * (sun_path[0] == '\0') both work. Returns 0, or -1 with errno: EADDRINUSE, EACCES, EBADF,
 * EINVAL, ENOTSOCK, ENOENT, ENAMETOOLONG, EROFS, ...
 */
int shm_bind(int sockfd, const struct sockaddr *addr, socklen_t addrlen);

/*
 * shm_listen - mark a socket as accepting connections, like listen(2). Returns 0, or -1 with
 * errno: EADDRINUSE, EBADF, ENOTSOCK, EOPNOTSUPP, EINVAL.
 */
int shm_listen(int sockfd, int backlog);

/*
 * shm_accept - accept a connection, like accept(2). The new socket is a shm socket of the
 * listener's type. Blocks unless the listener is non-blocking. Returns the new descriptor, or
 * -1 with errno: EAGAIN/EWOULDBLOCK, EBADF, ECONNABORTED, EINTR, EINVAL, EMFILE, ENFILE,
 * ENOBUFS/ENOMEM, ENOTSOCK, EOPNOTSUPP.
 */
int shm_accept(int sockfd, struct sockaddr *addr, socklen_t *addrlen);

/*
 * shm_accept4 - accept4(2): as shm_accept(), with flags SOCK_NONBLOCK and/or SOCK_CLOEXEC for
 * the new descriptor. Errors as shm_accept(), plus EINVAL for unknown flags.
 */
int shm_accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags);

/*
 * shm_connect - connect a socket, like connect(2). Returns 0, or -1 with errno:
 * ECONNREFUSED (nobody listens on that name), ENOENT (no such path), EISCONN (already
 * connected), EAGAIN (non-blocking and the backlog is full), EINTR, EACCES, EBADF,
 * EAFNOSUPPORT, EINVAL, ENOTSOCK, EPROTOTYPE.
 */
int shm_connect(int sockfd, const struct sockaddr *addr, socklen_t addrlen);

/*
 * shm_send - send a message, like send(2). Flags: MSG_DONTWAIT, MSG_NOSIGNAL, MSG_EOR, MSG_OOB
 * (as the kernel's while the connection has not begun to negotiate: it then stays on the
 * kernel path for good, and shm_recv with MSG_OOB likewise; on shared memory EOPNOTSUPP, since
 * the in-band bytes bypass the kernel and a connection cannot yet move back), MSG_MORE (in
 * coalesced mode: the message is published but the peer is not woken until a later send without
 * MSG_MORE, so a reader that sleeps does not see it until then; ignored otherwise, as AF_UNIX
 * ignores it). On SOCK_STREAM a send may be partial (a non-blocking one, or one interrupted by a
 * signal after some bytes went). Returns the number of bytes sent, or -1 with errno:
 *   EAGAIN/EWOULDBLOCK - non-blocking and no room (no free block, or kernel buffer full);
 *   EPIPE   - the peer is gone or this side shut down writing; on SOCK_STREAM SIGPIPE is
 *             raised too unless MSG_NOSIGNAL is given (SOCK_SEQPACKET raises none, as in
 *             the kernel);
 *   ECONNRESET - the peer closed with data unread, or broke the protocol;
 *   EMSGSIZE - SOCK_SEQPACKET message larger than the socket accepts (as the kernel: the send
 *             buffer size minus 32 bytes);
 *   EFAULT  - buf is not readable memory (nothing is sent, as the kernel's; see README for
 *             a buffer unmapped after a successful call);
 *   ENOTCONN - not connected; EINTR - interrupted before anything was sent; EBADF; ENOTSOCK;
 *   EOPNOTSUPP - unsupported flag; EPROTO - the peer broke the protocol; ENOMEM/ENOBUFS.
 * Blocking sends honour SO_SNDTIMEO (EAGAIN when it expires).
 */
ssize_t shm_send(int sockfd, const void *buf, size_t len, int flags);

/*
 * shm_sendto - sendto(2). On a connected shm socket dest_addr must be NULL (else EISCONN as
 * for a connected AF_UNIX stream... the kernel ignores it on SOCK_STREAM: so do we). Otherwise
 * as shm_send().
 */
ssize_t shm_sendto(int sockfd, const void *buf, size_t len, int flags,
                   const struct sockaddr *dest_addr, socklen_t addrlen);

/*
 * shm_sendmsg - sendmsg(2): gathers msg_iov; ancillary data (SCM_RIGHTS, SCM_CREDENTIALS)
 * travels with the message exactly as on a kernel socket, on the shared-memory path too.
 * Returns bytes sent or -1 with errno as shm_send(), plus EINVAL/EBADF/EPERM for bad
 * ancillary data as sendmsg(2).
 */
ssize_t shm_sendmsg(int sockfd, const struct msghdr *msg, int flags);

/*
 * shm_recv - receive a message, like recv(2). Flags: MSG_DONTWAIT, MSG_PEEK, MSG_WAITALL
 * (SOCK_STREAM), MSG_TRUNC (return the real length of a longer SOCK_SEQPACKET message),
 * MSG_CMSG_CLOEXEC (with shm_recvmsg). On SOCK_STREAM a read returns what is waiting, up to
 * len, as the kernel's does; on SOCK_SEQPACKET each call returns one message, and a longer one
 * is truncated (its rest is discarded). A SOCK_STREAM MSG_PEEK may show fewer bytes than the
 * kernel's where the peer's events travel through the kernel (event mode: SHM_COALESCE = 0
 * or SO_PASSCRED; or after the peer sent ancillary data); see README, "Behaviour and limits".
 * SO_PEEK_OFF is honoured while the peer's bytes come through the kernel socket, not once
 * they come from shared memory (a peek then starts at the first unread byte).
 * Returns the number of bytes received, 0 at end of stream (peer closed or shut down
 * writing; or a zero-length SOCK_SEQPACKET message), or -1 with errno:
 *   EAGAIN/EWOULDBLOCK - non-blocking and nothing waiting, or SO_RCVTIMEO expired;
 *   EINTR - interrupted by a signal before any data; ECONNRESET - peer closed with data unread
 *   or broke the protocol; EPROTO - peer broke the protocol; ENOTCONN; EBADF; ENOTSOCK; EINVAL;
 *   EFAULT - the bytes to be copied do not fit in writable memory (a SOCK_STREAM read leaves
 *   them waiting; a SOCK_SEQPACKET read drops the message, as the kernel's does).
 */
ssize_t shm_recv(int sockfd, void *buf, size_t len, int flags);

/* shm_recvfrom - recvfrom(2); src_addr receives the peer address as the kernel gives it. */
ssize_t shm_recvfrom(int sockfd, void *buf, size_t len, int flags, struct sockaddr *src_addr,
                     socklen_t *addrlen);

/*
 * shm_recvmsg - recvmsg(2): scatters into msg_iov, returns ancillary data the peer sent with
 * the message (SCM_RIGHTS, SCM_CREDENTIALS when SO_PASSCRED is set) in msg_control, and sets
 * msg_flags (MSG_TRUNC, MSG_CTRUNC). shmsock's own offers are never returned as ancillary data.
 * Returns and errors as shm_recv().
 */
ssize_t shm_recvmsg(int sockfd, struct msghdr *msg, int flags);

/* shm_read - read(2) on a socket: shm_recv(fd, buf, count, 0), except that a count of 0
 * returns 0 at once (read(2) does not wait); on other fds, read(2). */
ssize_t shm_read(int fd, void *buf, size_t count);

/* shm_write - write(2) on a socket: shm_send(fd, buf, count, 0) (SIGPIPE as write(2); a
 * count of 0 sends an empty SOCK_SEQPACKET message, as write(2)); on other fds, write(2). */
ssize_t shm_write(int fd, const void *buf, size_t count);

/* shm_readv - readv(2): shm_recvmsg() with the given iovec; no bytes: 0 at once, as readv(2). */
ssize_t shm_readv(int fd, const struct iovec *iov, int iovcnt);

/* shm_writev - writev(2): shm_sendmsg() with the given iovec; no bytes: 0, nothing sent, as
 * writev(2) (which, unlike write(2), sends no empty message). */
ssize_t shm_writev(int fd, const struct iovec *iov, int iovcnt);

/*
 * shm_shutdown - shut down part of a connection, like shutdown(2). After SHUT_WR the peer reads
 * what was sent and then end of stream (0); sends here fail with EPIPE. Blocks the peer sent
 * keep being released. Returns 0, or -1 with errno: EBADF, EINVAL, ENOTSOCK, and ENOTCONN
 * where the kernel reports it (Linux returns 0 for an unconnected AF_UNIX socket).
 */
int shm_shutdown(int sockfd, int how);

/*
 * shm_close - close a descriptor, like close(2), and free the shared-memory state kept for it
 * in this process. Sends nothing: the peer sees end of stream when the last copy of the
 * descriptor (in any process) is closed. Async-signal-safe, on any descriptor (no lock; the
 * state's memory is given back at the next socket made). Returns 0, or -1 with errno: EBADF,
 * EINTR, EIO.
 */
int shm_close(int fd);

/*
 * shm_setsockopt - setsockopt(2). Level SOL_SHMSOCK takes the SHM_* options above; every other
 * level goes to the kernel socket (SO_RCVTIMEO, SO_SNDTIMEO, SO_SNDBUF, SO_PASSCRED, ... apply
 * to the shared-memory path too). Returns 0, or -1 with errno: EBADF, EFAULT, EINVAL,
 * ENOPROTOOPT, ENOTSOCK, EISCONN (shm option that can no longer change). SO_INQ (SOL_SOCKET,
 * SOCK_STREAM only, as the kernel) makes every read add an SCM_INQ control message with the
 * payload bytes still queued, counted as shm_ioctl's FIONREAD.
 */
int shm_setsockopt(int sockfd, int level, int optname, const void *optval, socklen_t optlen);

/*
 * shm_getsockopt - getsockopt(2). SO_TYPE, SO_ERROR, SO_PEERCRED, SO_RCVTIMEO, ... come from
 * the kernel socket; level SOL_SHMSOCK gives SHM_* options. Returns 0, or -1 with errno:
 * EBADF, EFAULT, EINVAL, ENOPROTOOPT, ENOTSOCK.
 */
int shm_getsockopt(int sockfd, int level, int optname, void *optval, socklen_t *optlen);

/* shm_getsockname - getsockname(2). Returns 0 or -1 with errno: EBADF, EFAULT, EINVAL, ENOTSOCK. */
int shm_getsockname(int sockfd, struct sockaddr *addr, socklen_t *addrlen);

/*
 * shm_getpeername - getpeername(2). Returns 0 or -1 with errno: EBADF, EFAULT, EINVAL,
 * ENOTCONN, ENOTSOCK.
 */
int shm_getpeername(int sockfd, struct sockaddr *addr, socklen_t *addrlen);

/*
 * shm_fcntl - fcntl(2), with every command: the argument (an int, a pointer such as F_GETLK's
 * or F_OFD_SETLK's struct flock, or none) reaches the kernel intact. O_NONBLOCK set here applies
 * to the shared-memory path too. A descriptor made with F_DUPFD or F_DUPFD_CLOEXEC names the
 * same shm socket as fd (see shm_dup). Returns as fcntl(2); -1 with errno EBADF, EINVAL,
 * EMFILE, ... on failure, or ENOMEM if the duplicate could not be recorded (it is then closed).
 */
int shm_fcntl(int fd, int cmd, ... /* arg */);

/*
 * shm_dup, shm_dup2, shm_dup3 - dup(2), dup2(2), dup3(2). If oldfd is a shm socket, the new
 * descriptor names the same socket and connection, usable with every shm_ call; closing one
 * of them with shm_close leaves the other working (the connection ends when the last is
 * closed, as a kernel socket does). A shm socket that newfd named before is closed, as the
 * kernel closes it. Return the new descriptor, or -1 with errno: EBADF, EBUSY, EINTR, EINVAL,
 * EMFILE, or ENOMEM if the duplicate could not be recorded (it is then closed).
 */
int shm_dup(int oldfd);
int shm_dup2(int oldfd, int newfd);
int shm_dup3(int oldfd, int newfd, int flags);

/*
 * shm_ioctl - ioctl(2). On a shm socket, FIONREAD (SIOCINQ) stores in the int at the third
 * argument what the kernel stores for a plain AF_UNIX socket: on SOCK_STREAM the payload bytes
 * a read would find, on SOCK_SEQPACKET the bytes of every message queued. Payload that travels
 * through shared memory is counted where it waits (the peer's ring, or an event record on the
 * kernel socket); the event records themselves never are. SIOCOUTQ stores what was sent and
 * the peer has not read yet: the kernel's count before the switch to shared memory, after it
 * the bytes of the blocks the peer holds (whole blocks; the kernel counts the memory of its
 * buffers, which is more than their bytes, so the two differ in value but are 0 at the same
 * times). Every other request, and every descriptor that is not a shm socket, goes to the
 * kernel unchanged. Returns as ioctl(2): 0, or -1 with errno EBADF, EFAULT, EINVAL, ENOTTY,
 * ... as the kernel's.
 */
int shm_ioctl(int fd, unsigned long request, ... /* void *argp */);

/*
 * shm_poll - poll(2) that understands shm sockets: POLLOUT on a shm socket is reported only
 * when a send would find a free block (and room in the kernel socket), so a writer that got
 * EAGAIN can wait here without spinning; POLLIN, POLLHUP, POLLERR and everything on other
 * descriptors are as poll(2). Returns the number of ready entries, 0 on timeout, or -1 with
 * errno: EFAULT, EINTR, EINVAL, ENOMEM.
 */
int shm_poll(struct pollfd *fds, nfds_t nfds, int timeout);

/*
 * shm_ppoll - ppoll(2) with shm_poll's writability: POLLOUT on a shm socket only when a send
 * would make progress. timeout NULL waits for ever; sigmask is installed for the wait only, as
 * ppoll does. Returns the number of ready entries, 0 on timeout, or -1 with errno: EFAULT,
 * EINTR, EINVAL (bad timeout, nfds too large), ENOMEM.
 */
int shm_ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
              const sigset_t *sigmask);

/*
 * shm_select, shm_pselect - select(2) and pselect(2) with shm_poll's writability: a shm socket
 * in writefds is reported only when a send would make progress, so a writer waiting for room
 * does not spin. Readable and exceptional conditions, and every other descriptor, are as the
 * kernel reports them; shm_select leaves the time not slept in *timeout, as Linux does.
 * Returns the number of bits set in the three sets, 0 on timeout, or -1 with errno: EBADF (a
 * descriptor in a set is not open), EINTR, EINVAL (nfds < 0, bad timeout), ENOMEM.
 */
int shm_select(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds,
               struct timeval *timeout);
int shm_pselect(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds,
                const struct timespec *timeout, const sigset_t *sigmask);

/*
 * shm_epoll_create1, shm_epoll_ctl, shm_epoll_wait, shm_epoll_pwait, shm_epoll_pwait2 -
 * epoll(7) where EPOLLOUT on a shm socket is reported only when a send would make progress (a
 * free block), so a writer whose reader is slow sleeps instead of spinning. Level-triggered,
 * EPOLLET (a new edge when blocks come back after a send met EAGAIN), EPOLLONESHOT and
 * EPOLLEXCLUSIVE behave as on the kernel socket. Use them together: a set filled with
 * shm_epoll_ctl is waited on with shm_epoll_wait (the kernel's epoll_wait would return the
 * library's own data for shm sockets watched for EPOLLOUT). Everything else, and every other
 * descriptor, is the kernel's epoll. Close the set with shm_close. Return as the kernel's:
 * shm_epoll_create1 a descriptor; shm_epoll_ctl 0; the waits the number of events, 0 on
 * timeout; -1 with errno on failure: EBADF, EEXIST, EFAULT, EINTR, EINVAL, ELOOP, ENOENT,
 * ENOMEM, ENOSPC, EPERM, as epoll_create1(2), epoll_ctl(2) and epoll_wait(2).
 */
int shm_epoll_create1(int flags);
int shm_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event);
int shm_epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout);
int shm_epoll_pwait(int epfd, struct epoll_event *events, int maxevents, int timeout,
                    const sigset_t *sigmask);
int shm_epoll_pwait2(int epfd, struct epoll_event *events, int maxevents,
                     const struct timespec *timeout, const sigset_t *sigmask);

/* ---- Batches: the kernel's sendmmsg(2)/recvmmsg(2) ---- */

struct mmsghdr; /* from <sys/socket.h> with _GNU_SOURCE */

/*
 * shm_sendmmsg - sendmmsg(2): send up to vlen messages with one call; msg_len of each entry
 * receives the bytes sent. On a shm socket in coalesced mode the doorbell for the whole batch
 * is rung once, after the last message (as if all but the last carried MSG_MORE).
 * Returns the number of messages sent (0 if vlen is 0), or -1 with errno as shm_sendmsg() if
 * the first one failed.
 */
int shm_sendmmsg(int sockfd, struct mmsghdr *msgvec, unsigned int vlen, int flags);

/*
 * shm_recvmmsg - recvmmsg(2): receive up to vlen messages. Flags as shm_recvmsg(), plus
 * MSG_WAITFORONE (block for the first message only). The timeout, as in the kernel, is only
 * checked between messages. Returns the number of messages received, or -1 with errno as
 * shm_recvmsg() if none was.
 */
int shm_recvmmsg(int sockfd, struct mmsghdr *msgvec, unsigned int vlen, int flags,
                 struct timespec *timeout);

/* ---- Zero-copy: write in place, read in place ---- */

/*
 * shm_send_alloc - reserve room for one message of up to len bytes and return where to write
 * it: on a connection that runs over shared memory this is in the socket's own region (no
 * copy happens at send time); otherwise it is a buffer of the library's and the message is
 * sent through the kernel socket at commit. One reservation may be outstanding per socket.
 * Flags: MSG_DONTWAIT (or O_NONBLOCK) - fail with EAGAIN instead of waiting for free blocks.
 * Returns the address, or NULL with errno: EAGAIN (no room now, non-blocking, or
 * SO_SNDTIMEO expired), EALREADY (a reservation is outstanding), EMSGSIZE (larger than the
 * region, or than a SOCK_SEQPACKET message may be), EPIPE (peer gone; no SIGPIPE), EINTR,
 * EBADF, ENOTSOCK, EOPNOTSUPP (a socket that is not a shm socket), ENOMEM.
 */
void *shm_send_alloc(int sockfd, size_t len, int flags);

/*
 * shm_send_commit - send the message written at buf (returned by shm_send_alloc), of len
 * bytes (at most what was reserved). Flags: MSG_MORE (hold the doorbell), MSG_NOSIGNAL.
 * Returns len, or -1 with errno: EINVAL (buf is not the outstanding reservation, or len too
 * large), EPIPE (SIGPIPE as shm_send on SOCK_STREAM), ECONNRESET, EPROTO, EOPNOTSUPP; the
 * reservation is given up either way. When the reservation was the library's buffer (not on
 * shared memory yet), the commit is an ordinary blocking send: it may also fail as
 * shm_send() does (EMSGSIZE, EINTR, EAGAIN on SO_SNDTIMEO), or, on SOCK_STREAM, return a
 * count smaller than len if it was interrupted after part of the message went.
 */
ssize_t shm_send_commit(int sockfd, void *buf, size_t len, int flags);

/* shm_send_abort - give up the outstanding reservation without sending. 0, or -1 EINVAL. */
int shm_send_abort(int sockfd, void *buf);

/*
 * shm_recv_view - receive the next message without copying it: *buf is set to a read-only
 * view of it in the peer's shared memory, valid until shm_recv_release(). On SOCK_STREAM a
 * view is the next piece of the stream as the peer sent it (at most one send's worth, or
 * what a copying read left of it). The peer cannot reuse those blocks until the view is
 * released, so several views may be held, e.g. by worker threads. Flags: MSG_DONTWAIT.
 * On a connection not (yet) on shared memory the view is a copy in a buffer of the library's
 * (at most 64 KiB: a longer SOCK_SEQPACKET message is truncated, as by shm_recv with such a
 * buffer), and only one such view may be held at a time. Ancillary data sent with a message
 * is not available through views (its descriptors are closed): use shm_recvmsg() for those.
 * Returns the length, or -1 with errno as shm_recv(), plus EALREADY (the one copied view is
 * still held), ENOBUFS (more views held than the peer can have sent), EOPNOTSUPP (not a shm
 * socket). A view of length 0 (end of stream, or an empty SOCK_SEQPACKET message) holds
 * nothing and needs no release (releasing it does nothing and returns 0); every other view
 * must be released.
 */
ssize_t shm_recv_view(int sockfd, const void **buf, int flags);

/* shm_recv_release - give back a view from shm_recv_view(). 0, or -1 with errno EINVAL. */
int shm_recv_release(int sockfd, const void *buf);

#ifdef __cplusplus
}
#endif

#endif /* SHMSOCK_H */
