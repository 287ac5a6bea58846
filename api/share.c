/*
 * share.c - see share.h.
 */
#define _GNU_SOURCE
#include "share.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "poll_wait.h"
#include "rights.h"

/* Holders whose process id the record keeps, so that one that ended without close() or
 * exit() (an _exit, a crash, a fork-and-exec) is found and its share given up. */
#define SHARE_PIDS 5

struct shmsock_share {
    unsigned holders; /* atomic: processes holding the socket's state */
    unsigned flags;   /* atomic: SHARE_* */
    pid_t user;       /* atomic: the process using it since the last fork; 0 = none yet */
    pid_t holder_pid[SHARE_PIDS]; /* atomic each: holders by process id; 0 = free slot */
    unsigned untracked;           /* atomic: holders that found no free slot */
    int64_t looked_ns;            /* atomic: when a holder last looked for ended ones */
};

/* socket->given_away (see "Giving a socket away" below) */
#define GIVING 1
#define GIVEN 2

enum {
    SHARE_NEGOTIATING = 1u, /* one process may run it over shared memory */
    SHARE_KERNEL_ONLY = 2u, /* every process keeps it on the kernel path */
};

/*
 * Records come from pages shared with every child forked after they were made. Only the
 * process that made a page takes records from it: a child starts a page of its own, so two
 * processes never hand out the same record. Records are not reused (a few bytes per socket
 * that was held across a fork).
 */
#define RECORDS_PER_PAGE (4096 / sizeof(struct shmsock_share))

static pthread_mutex_t page_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shmsock_share *page; /* under page_lock: the page records come from */
static size_t page_used;           /* under page_lock */
static pid_t self;                 /* this process (getpid() is a system call) */

static pid_t self_pid(void)
{
    pid_t pid = __atomic_load_n(&self, __ATOMIC_RELAXED);
    if (pid == 0) {
        pid = getpid();
        __atomic_store_n(&self, pid, __ATOMIC_RELAXED);
    }
    return pid;
}

struct shmsock_share *shmsock_share_create(void)
{
    pthread_mutex_lock(&page_lock);
    if (page == NULL || page_used == RECORDS_PER_PAGE) {
        void *fresh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (fresh == MAP_FAILED) {
            pthread_mutex_unlock(&page_lock);
            return NULL;
        }
        page = fresh;
        page_used = 0;
    }
    struct shmsock_share *share = &page[page_used++];
    pthread_mutex_unlock(&page_lock);
    share->holders = 1;
    share->flags = 0;
    share->user = self_pid();
    share->holder_pid[0] = self_pid();
    return share;
}

void shmsock_share_joined(struct shmsock_share *share)
{
    if (share == NULL)
        return;
    pid_t me = self_pid();
    for (int i = 0; i < SHARE_PIDS; i++) {
        pid_t none = 0;
        if (__atomic_compare_exchange_n(&share->holder_pid[i], &none, me, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            return;
    }
    __atomic_add_fetch(&share->untracked, 1u, __ATOMIC_ACQ_REL);
}

/* Give up one share: ours (`pid`, by its slot; or one untracked), or a dead process's. */
static void give_up(struct shmsock_share *share, pid_t pid, bool dead)
{
    for (int i = 0; i < SHARE_PIDS; i++) {
        pid_t expected = pid;
        if (__atomic_compare_exchange_n(&share->holder_pid[i], &expected, 0, false,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            __atomic_sub_fetch(&share->holders, 1u, __ATOMIC_ACQ_REL);
            return;
        }
    }
    if (dead)
        return; /* another holder took it out first */
    unsigned untracked = __atomic_load_n(&share->untracked, __ATOMIC_ACQUIRE);
    while (untracked > 0 &&
           !__atomic_compare_exchange_n(&share->untracked, &untracked, untracked - 1, false,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    }
    __atomic_sub_fetch(&share->holders, 1u, __ATOMIC_ACQ_REL);
}

/* Looking for holders that ended costs a system call per holder: at most this often. */
#define LOOK_INTERVAL_NS 20000000 /* 20 ms */

/*
 * Some holder other than us still counts: if its process has ended (kill(pid, 0) says there
 * is no such process), give its share up. A zombie still counts until its parent reaps it, and
 * a recycled process id keeps the share: both only keep the socket on the kernel path longer.
 */
static void give_up_ended_holders(struct shmsock_share *share)
{
    int64_t now = shmsock_now_ns();
    int64_t looked = __atomic_load_n(&share->looked_ns, __ATOMIC_ACQUIRE);
    if (now - looked < LOOK_INTERVAL_NS ||
        !__atomic_compare_exchange_n(&share->looked_ns, &looked, now, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE))
        return;
    pid_t me = self_pid();
    for (int i = 0; i < SHARE_PIDS; i++) {
        pid_t pid = __atomic_load_n(&share->holder_pid[i], __ATOMIC_ACQUIRE);
        if (pid != 0 && pid != me && kill(pid, 0) < 0 && errno == ESRCH)
            give_up(share, pid, true);
    }
}

/* Holders now, after giving up the shares of those that ended. */
static unsigned holders_now(struct shmsock_share *share)
{
    unsigned holders = __atomic_load_n(&share->holders, __ATOMIC_ACQUIRE);
    if (holders > 1) {
        give_up_ended_holders(share);
        holders = __atomic_load_n(&share->holders, __ATOMIC_ACQUIRE);
    }
    return holders;
}

void shmsock_share_before_fork(struct shmsock_socket *socket)
{
    if (socket->share == NULL) {
        socket->share = shmsock_share_create();
        if (socket->share == NULL) {
            /* No record: keep the connection on the kernel path in both processes if it can
             * be; if it cannot, two processes may drive it, so say so. */
            if (shmsock_share_hand_over(socket) < 0)
                shmsock_log("fork: out of memory for a socket's record; parent and child "
                            "must not both use a socket on shared memory");
            return;
        }
    }
    struct shmsock_share *share = socket->share;
    /* We alone hold it: our state says whether it has begun (a decision made at an earlier
     * call that never came to negotiate is taken back). */
    if (__atomic_load_n(&share->holders, __ATOMIC_ACQUIRE) == 1 &&
        !(__atomic_load_n(&share->flags, __ATOMIC_ACQUIRE) & SHARE_KERNEL_ONLY))
        __atomic_store_n(&share->flags,
                         shmsock_conn_negotiation_started(socket->conn) ? SHARE_NEGOTIATING : 0u,
                         __ATOMIC_RELEASE);
    __atomic_add_fetch(&share->holders, 1u, __ATOMIC_ACQ_REL);
    __atomic_store_n(&share->user, 0, __ATOMIC_RELEASE); /* the first to use it after the fork */
}

void shmsock_share_after_fork_child(void)
{
    __atomic_store_n(&self, getpid(), __ATOMIC_RELAXED);
    pthread_mutex_init(&page_lock, NULL);
    page = NULL; /* the parent's page stays the parent's to hand out */
    page_used = 0;
}

void shmsock_share_leave(struct shmsock_share *share)
{
    if (share != NULL)
        give_up(share, self_pid(), false);
}

/* Negotiation off in this process (the record says kernel path for everyone). */
static void kernel_path_here(struct shmsock_socket *socket)
{
    if (__atomic_exchange_n(&socket->kernel_only_here, 1, __ATOMIC_ACQ_REL))
        return;
    (void)shmsock_conn_decline_offers(socket->conn);
}

/* This process uses the socket's shared-memory state since the last fork: 0, or -EOPNOTSUPP
 * (logged) if another process does. */
static int claim(struct shmsock_share *share)
{
    pid_t me = self_pid();
    pid_t user = __atomic_load_n(&share->user, __ATOMIC_ACQUIRE);
    if (user == me)
        return 0;
    if (user == 0 && __atomic_compare_exchange_n(&share->user, &user, me, false, __ATOMIC_ACQ_REL,
                                                 __ATOMIC_ACQUIRE))
        return 0;
    shmsock_log("pid %d: a socket on shared memory is in use by pid %d since fork(); "
                "this call fails with EOPNOTSUPP (moving a connection back to the kernel "
                "path is not supported yet)",
                (int)me, (int)user);
    return -EOPNOTSUPP;
}

int shmsock_share_use(struct shmsock_socket *socket)
{
    if (__atomic_load_n(&socket->given_away, __ATOMIC_ACQUIRE) == GIVEN) {
        shmsock_log("pid %d: this socket was passed with SCM_RIGHTS before it was used; the "
                    "receiving process runs it (on shared memory, if its peer offers), so "
                    "this call fails with EOPNOTSUPP",
                    (int)self_pid());
        return -EOPNOTSUPP;
    }
    struct shmsock_share *share = socket->share;
    if (share == NULL)
        return 0;
    unsigned flags = __atomic_load_n(&share->flags, __ATOMIC_ACQUIRE);
    if (flags & SHARE_KERNEL_ONLY) {
        kernel_path_here(socket);
        return 0;
    }
    if (flags & SHARE_NEGOTIATING) {
        /* Its answer (or offer) waits until this process holds it alone. */
        shmsock_conn_hold_negotiation(socket->conn, holders_now(share) > 1);
        return claim(share);
    }
    /* Nothing decided. Our state of the connection (the plain bytes sent and received, which
     * place the switch) is exact only while one process alone has used the socket since the
     * fork: the first to call claims it; a second one means several use it, and then it stays
     * on the kernel path for good, in every process (forked writers on one end). */
    pid_t me = self_pid();
    pid_t user = __atomic_load_n(&share->user, __ATOMIC_ACQUIRE);
    if (user != me &&
        !(user == 0 && __atomic_compare_exchange_n(&share->user, &user, me, false, __ATOMIC_ACQ_REL,
                                                   __ATOMIC_ACQUIRE))) {
        while (!(flags & (SHARE_NEGOTIATING | SHARE_KERNEL_ONLY)) &&
               !__atomic_compare_exchange_n(&share->flags, &flags, flags | SHARE_KERNEL_ONLY, false,
                                            __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        }
        return shmsock_share_use(socket); /* kernel path, or the user's (it negotiated) */
    }
    /* While other processes hold it, nothing leaves that would let the peer switch (no offer,
     * no answer); the peer's offer may still be read (shmsock_share_after_read). Held by
     * this one alone, it negotiates. */
    bool shared = holders_now(share) > 1;
    shmsock_conn_hold_negotiation(socket->conn, shared);
    if (!shared && !__atomic_compare_exchange_n(&share->flags, &flags, SHARE_NEGOTIATING, false,
                                                __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return shmsock_share_use(socket); /* decided meanwhile: look again */
    return 0;
}

void shmsock_share_after_read(struct shmsock_socket *socket)
{
    struct shmsock_share *share = socket->share;
    if (share == NULL || !shmsock_conn_negotiation_started(socket->conn))
        return;
    /* The read took the peer's offer: this process negotiates for the socket (its answer
     * leaves once it holds the socket alone); another process's calls are refused. */
    unsigned flags = __atomic_load_n(&share->flags, __ATOMIC_ACQUIRE);
    while (!(flags & (SHARE_NEGOTIATING | SHARE_KERNEL_ONLY)) &&
           !__atomic_compare_exchange_n(&share->flags, &flags, flags | SHARE_NEGOTIATING, false,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    }
    if (flags & SHARE_KERNEL_ONLY)
        return; /* handed over meanwhile: the offer stays unanswered, the peer plain */
    (void)claim(share);
}

/* A listening socket carries no payload: what it accepts is new, and held by one process. */
static bool is_listening(struct shmsock_socket *socket)
{
    int status = 0;
    return shmsock_conn_get_option(socket->conn, SHM_STATUS, &status) == 0 &&
           status == SHM_STATUS_PASSTHROUGH;
}

int shmsock_share_hand_over(struct shmsock_socket *socket)
{
    struct shmsock_share *share = socket->share;
    if (is_listening(socket))
        return 0;
    if (share == NULL) {
        if (shmsock_conn_negotiation_started(socket->conn))
            return -EOPNOTSUPP;
        kernel_path_here(socket);
        return 0;
    }
    unsigned flags = __atomic_load_n(&share->flags, __ATOMIC_ACQUIRE);
    for (;;) {
        if (flags & SHARE_KERNEL_ONLY) {
            kernel_path_here(socket);
            return 0;
        }
        /* Negotiating, but only in name if we are its user and it never began. */
        if ((flags & SHARE_NEGOTIATING) &&
            (__atomic_load_n(&share->user, __ATOMIC_ACQUIRE) != self_pid() ||
             shmsock_conn_negotiation_started(socket->conn)))
            return -EOPNOTSUPP;
        if (__atomic_compare_exchange_n(&share->flags, &flags, SHARE_KERNEL_ONLY, false,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            break;
    }
    kernel_path_here(socket);
    return 0;
}

/*
 * Giving a socket away. The process that receives a connected socket cannot know what its
 * sender did with it: if the sender sent or read plain bytes, the receiver's counts (which
 * place the switch to shared memory) would be wrong, so such a socket stays on the kernel path
 * there. A socket its sender never used has no history: the receiver may run it as a fresh
 * connection. The sender says so on the socket itself, which both processes share: O_APPEND
 * in its file status flags (a flag without meaning for a socket, set by nobody else; the
 * receiver takes it off at once). The sender gives up the socket: its later calls would make
 * history the receiver does not count, so they fail with EOPNOTSUPP (logged).
 */
static bool may_give_away(struct shmsock_socket *socket)
{
    if (__atomic_load_n(&socket->kernel_only_here, __ATOMIC_ACQUIRE))
        return false;
    struct shmsock_share *share = socket->share;
    if (share != NULL &&
        (holders_now(share) > 1 || __atomic_load_n(&share->flags, __ATOMIC_ACQUIRE) != 0))
        return false; /* another process holds it, or it was decided after a fork */
    return shmsock_conn_untouched(socket->conn);
}

static int set_given_mark(int fd, bool on)
{
    int flags = shmsock_libc.fcntl(fd, F_GETFL);
    if (flags < 0)
        return -errno;
    int wanted = on ? flags | O_APPEND : flags & ~O_APPEND;
    if (wanted != flags && shmsock_libc.fcntl(fd, F_SETFL, wanted) < 0)
        return -errno;
    return 0;
}

bool shmsock_share_take_given(int fd)
{
    int flags = shmsock_libc.fcntl(fd, F_GETFL);
    if (flags < 0 || !(flags & O_APPEND))
        return false;
    return set_given_mark(fd, false) == 0;
}

/* One passed descriptor: a shm socket among them is given away or handed over, or the send
 * refused. */
static int hand_over_passed(int fd, void *arg)
{
    (void)arg;
    struct shmsock_entry *entry = shmsock_fd_get(fd);
    if (entry == NULL)
        return 0;
    int err = 0;
    if (__atomic_load_n(&entry->socket->given_away, __ATOMIC_ACQUIRE) != 0) {
        err = -EOPNOTSUPP; /* given away already (or being given, by another thread) */
    } else if (!is_listening(entry->socket) && may_give_away(entry->socket)) {
        int expected = 0;
        if (__atomic_compare_exchange_n(&entry->socket->given_away, &expected, GIVING, false,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            if (set_given_mark(fd, true) == 0) {
                shmsock_fd_put(entry);
                return 0;
            }
            __atomic_store_n(&entry->socket->given_away, 0, __ATOMIC_RELEASE);
        }
    }
    if (err == 0)
        err = shmsock_share_hand_over(entry->socket);
    shmsock_fd_put(entry);
    if (err < 0)
        shmsock_log("SCM_RIGHTS: fd %d is a socket on shared memory; the receiving process "
                    "could not read it, so sendmsg fails with EOPNOTSUPP",
                    fd);
    return err;
}

int shmsock_share_hand_over_rights(const struct msghdr *msg)
{
    int err = shmsock_rights_each(msg, hand_over_passed, NULL);
    if (err < 0)
        shmsock_share_rights_sent(msg, false); /* the message will not go */
    return err;
}

static int settle_given(int fd, void *arg)
{
    bool sent = *(bool *)arg;
    struct shmsock_entry *entry = shmsock_fd_get(fd);
    if (entry == NULL)
        return 0;
    int expected = GIVING;
    if (__atomic_compare_exchange_n(&entry->socket->given_away, &expected, sent ? GIVEN : 0, false,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) &&
        !sent)
        (void)set_given_mark(fd, false);
    shmsock_fd_put(entry);
    return 0;
}

void shmsock_share_rights_sent(const struct msghdr *msg, bool sent)
{
    (void)shmsock_rights_each(msg, settle_given, &sent);
}

/* One descriptor of the table, before an exec: handed over if the exec keeps it open. */
static void hand_over_if_inherited(int fd, struct shmsock_socket *socket, void *arg)
{
    int *result = arg;
    int flags = shmsock_libc.fcntl(fd, F_GETFD);
    if (flags < 0 || (flags & FD_CLOEXEC))
        return;
    if (shmsock_share_hand_over(socket) < 0) {
        shmsock_log("exec: fd %d is a socket on shared memory without FD_CLOEXEC; the new "
                    "program could not read it, so the exec fails with EOPNOTSUPP",
                    fd);
        *result = -EOPNOTSUPP;
    }
}

int shmsock_share_before_exec(void)
{
    int result = 0;
    shmsock_fd_table_lock();
    shmsock_fd_for_each_descriptor(hand_over_if_inherited, &result);
    shmsock_fd_table_unlock();
    return result;
}
