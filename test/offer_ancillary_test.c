/*
 * offer_ancillary_test.c - unit tests for impl/ancillary.{h,c}: building the offer's control
 * message, recognising it after a real sendmsg/recvmsg (and not mistaking anything else for
 * it), and delivering received control data to the application as recvmsg(2) would
 * (MSG_CTRUNC, descriptors that do not fit closed). Delivery is compared with what the kernel
 * itself does for the same buffer sizes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "impl/ancillary.h"
#include "impl/region.h"

#define MAX_FDS 8

/* ---------------------------------------------------------------------------------------- */
/* helpers                                                                                  */

static bool fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

static void assert_fd_closed(int fd)
{
    errno = 0;
    assert_int_equal(fcntl(fd, F_GETFD), -1);
    assert_int_equal(errno, EBADF);
}

static bool same_file(int a, int b)
{
    struct stat sa, sb;
    assert_int_equal(fstat(a, &sa), 0);
    assert_int_equal(fstat(b, &sb), 0);
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static void seqpacket_pair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
}

static void enable_passcred(int fd)
{
    int one = 1;
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)), 0);
}

/* Send one byte with the given raw control data (NULL/0 for none). */
static void send_raw(int sock, const void *control, size_t controllen)
{
    char byte = 'x';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    m.msg_control = (void *)control;
    m.msg_controllen = controllen;
    assert_int_equal(sendmsg(sock, &m, 0), 1);
}

/* Send one byte with an SCM_RIGHTS message holding fds[0..n-1] (n may be 0). */
static void send_fds(int sock, const int *fds, size_t n)
{
    union shmsock_control_buffer buf;
    memset(&buf, 0, sizeof(buf));
    if (n == 0) {
        send_raw(sock, NULL, 0);
        return;
    }
    struct cmsghdr *c = &buf.align;
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(n * sizeof(int));
    memcpy(CMSG_DATA(c), fds, n * sizeof(int));
    send_raw(sock, &buf, CMSG_SPACE(n * sizeof(int)));
}

/* A received message with its control data in `buf` (full-size). */
struct received {
    union shmsock_control_buffer buf;
    char byte;
    struct iovec iov;
    struct msghdr msg;
};

static void recv_into(int sock, struct received *r, void *control, size_t controllen)
{
    memset(&r->msg, 0, sizeof(r->msg));
    r->iov.iov_base = &r->byte;
    r->iov.iov_len = 1;
    r->msg.msg_iov = &r->iov;
    r->msg.msg_iovlen = 1;
    r->msg.msg_control = control;
    r->msg.msg_controllen = controllen;
    assert_int_equal(recvmsg(sock, &r->msg, MSG_CMSG_CLOEXEC), 1);
}

static void recv_full(int sock, struct received *r)
{
    memset(&r->buf, 0, sizeof(r->buf));
    recv_into(sock, r, r->buf.bytes, sizeof(r->buf));
    assert_int_equal(r->msg.msg_flags & MSG_CTRUNC, 0);
}

/* All descriptors carried by the SCM_RIGHTS messages of `m`. */
static size_t collect_fds(const struct msghdr *m, int *out, size_t cap)
{
    size_t n = 0;
    if (m->msg_controllen == 0 || m->msg_control == NULL)
        return 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c != NULL; c = CMSG_NXTHDR((struct msghdr *)m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            assert_true(n < cap);
            memcpy(&out[n++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        }
    }
    return n;
}

/* A sealed memfd that starts with the magic but is otherwise just a file. */
static int magic_memfd(int seals)
{
    int fd = memfd_create("offer_test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 8192), 0);
    uint64_t magic = SHMSOCK_REGION_MAGIC;
    assert_int_equal(pwrite(fd, &magic, sizeof(magic), 0), (ssize_t)sizeof(magic));
    if (seals)
        assert_int_equal(fcntl(fd, F_ADD_SEALS, seals), 0);
    return fd;
}

/* Per-test fixture: a carrier socket pair, a region, and a release socket pair. */
struct fixture {
    int carrier[2];
    int release[2];
    struct shmsock_region region;
};

static int setup(void **state)
{
    static struct fixture f;
    seqpacket_pair(f.carrier);
    seqpacket_pair(f.release);
    assert_int_equal(shmsock_region_create(&f.region, 1024, 4), 0);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    close(f->carrier[0]);
    close(f->carrier[1]);
    close(f->release[0]);
    close(f->release[1]);
    shmsock_region_release(&f->region);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* offer: build and recognise                                                               */

static void test_build_offer_layout(void **state)
{
    struct fixture *f = *state;
    union shmsock_control_buffer buf;
    memset(&buf, 0xee, sizeof(buf));
    size_t len = shmsock_ancillary_build_offer(&buf, f->region.memfd, f->release[0]);
    assert_int_equal(len, CMSG_SPACE(2 * sizeof(int)));
    struct msghdr m = {.msg_control = buf.bytes, .msg_controllen = len};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    assert_non_null(c);
    assert_int_equal(c->cmsg_level, SOL_SOCKET);
    assert_int_equal(c->cmsg_type, SCM_RIGHTS);
    assert_int_equal(c->cmsg_len, CMSG_LEN(2 * sizeof(int)));
    int fds[2];
    memcpy(fds, CMSG_DATA(c), sizeof(fds));
    assert_int_equal(fds[0], f->region.memfd);
    assert_int_equal(fds[1], f->release[0]);
    assert_null(CMSG_NXTHDR(&m, c));
    /* Something the application sends is "present"; the offer buffer is too. */
    assert_true(shmsock_ancillary_present(&m));
}

static void test_offer_roundtrip_recognised(void **state)
{
    struct fixture *f = *state;
    union shmsock_control_buffer buf;
    size_t len = shmsock_ancillary_build_offer(&buf, f->region.memfd, f->release[0]);
    send_raw(f->carrier[0], &buf, len);

    struct received r;
    recv_full(f->carrier[1], &r);
    assert_int_equal(r.byte, 'x');
    int fds[2] = {-7, -7};
    assert_true(shmsock_ancillary_take_offer(&r.msg, fds, NULL));
    assert_int_equal(r.msg.msg_controllen, 0);

    /* fds[0] is our region (a fresh descriptor for the same file), fds[1] our socket. */
    assert_true(fds[0] >= 0 && fds[1] >= 0);
    assert_int_not_equal(fds[0], f->region.memfd);
    assert_true(same_file(fds[0], f->region.memfd));
    assert_true(same_file(fds[1], f->release[0]));
    struct shmsock_region peer;
    assert_int_equal(shmsock_region_attach(&peer, fds[0]), 0);
    assert_int_equal(peer.geometry.block_count, 4);
    shmsock_region_release(&peer);

    /* The control data is now empty: delivering it gives the application nothing. */
    union shmsock_control_buffer user_buf;
    struct msghdr user = {.msg_control = user_buf.bytes, .msg_controllen = sizeof(user_buf)};
    shmsock_ancillary_deliver(&r.msg, &user);
    assert_int_equal(user.msg_controllen, 0);
    assert_int_equal(user.msg_flags & MSG_CTRUNC, 0);
    /* ... and closing "its" descriptors closes nothing we took. */
    shmsock_ancillary_close_fds(&r.msg);
    assert_true(fd_is_open(fds[0]));
    assert_true(fd_is_open(fds[1]));
    close(fds[0]);
    close(fds[1]);
}

/*
 * Receive one message from `sock` and check that take_offer refuses it and leaves it intact:
 * control bytes and length unchanged, fds[] untouched, every received descriptor still open.
 * Then close_fds closes all of them.
 */
static void expect_not_offer_received(int sock)
{
    struct received r;
    recv_full(sock, &r);
    size_t controllen = r.msg.msg_controllen;
    union shmsock_control_buffer before;
    memcpy(&before, &r.buf, sizeof(before));
    int received[MAX_FDS];
    size_t n = collect_fds(&r.msg, received, MAX_FDS);

    int fds[2] = {-7, -7};
    assert_false(shmsock_ancillary_take_offer(&r.msg, fds, NULL));
    assert_int_equal(fds[0], -7);
    assert_int_equal(fds[1], -7);
    assert_int_equal(r.msg.msg_controllen, controllen);
    assert_ptr_equal(r.msg.msg_control, r.buf.bytes);
    assert_memory_equal(r.buf.bytes, before.bytes, controllen);
    for (size_t i = 0; i < n; i++)
        assert_true(fd_is_open(received[i]));

    shmsock_ancillary_close_fds(&r.msg);
    for (size_t i = 0; i < n; i++)
        assert_fd_closed(received[i]);
}

static void test_not_offer_one_fd(void **state)
{
    struct fixture *f = *state;
    int fds[1] = {f->region.memfd};
    send_fds(f->carrier[0], fds, 1);
    expect_not_offer_received(f->carrier[1]);
}

static void test_not_offer_three_fds(void **state)
{
    struct fixture *f = *state;
    int fds[3] = {f->region.memfd, f->release[0], f->release[1]};
    send_fds(f->carrier[0], fds, 3);
    expect_not_offer_received(f->carrier[1]);
}

static void test_not_offer_first_fd_pipe(void **state)
{
    struct fixture *f = *state;
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    int fds[2] = {p[0], f->release[0]};
    send_fds(f->carrier[0], fds, 2);
    expect_not_offer_received(f->carrier[1]);
    close(p[0]);
    close(p[1]);
}

static void test_not_offer_second_fd_not_socket(void **state)
{
    struct fixture *f = *state;
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    int fds[2] = {f->region.memfd, p[1]};
    send_fds(f->carrier[0], fds, 2);
    expect_not_offer_received(f->carrier[1]);
    /* Second a region memfd too. */
    int fds2[2] = {f->region.memfd, f->region.memfd};
    send_fds(f->carrier[0], fds2, 2);
    expect_not_offer_received(f->carrier[1]);
    close(p[0]);
    close(p[1]);
}

static void test_not_offer_swapped_order(void **state)
{
    struct fixture *f = *state;
    int fds[2] = {f->release[0], f->region.memfd};
    send_fds(f->carrier[0], fds, 2);
    expect_not_offer_received(f->carrier[1]);
}

static void test_not_offer_first_fd_not_sealed_region(void **state)
{
    struct fixture *f = *state;
    /* Starts with the magic but is not sealed. */
    int unsealed = magic_memfd(0);
    int fds[2] = {unsealed, f->release[0]};
    send_fds(f->carrier[0], fds, 2);
    expect_not_offer_received(f->carrier[1]);
    close(unsealed);
    /* Sealed, but without the magic. */
    int nomagic = memfd_create("offer_test_nomagic", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    assert_true(nomagic >= 0);
    assert_int_equal(ftruncate(nomagic, 8192), 0);
    assert_int_equal(fcntl(nomagic, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), 0);
    int fds2[2] = {nomagic, f->release[0]};
    send_fds(f->carrier[0], fds2, 2);
    expect_not_offer_received(f->carrier[1]);
    close(nomagic);
}

static void test_not_offer_no_control(void **state)
{
    struct fixture *f = *state;
    send_fds(f->carrier[0], NULL, 0);
    expect_not_offer_received(f->carrier[1]);
}

/*
 * The receiver passes credentials (SO_PASSCRED): the kernel adds SCM_CREDENTIALS beside the
 * offer. The offer is still recognised (impl/ancillary.c: "Credentials may come beside the
 * offer; they stay for the application"), and only the offer's message is cut out.
 */
static void test_offer_beside_kernel_credentials(void **state)
{
    struct fixture *f = *state;
    enable_passcred(f->carrier[1]);
    union shmsock_control_buffer buf;
    size_t len = shmsock_ancillary_build_offer(&buf, f->region.memfd, f->release[0]);
    send_raw(f->carrier[0], &buf, len);

    struct received r;
    recv_full(f->carrier[1], &r);
    int fds[2] = {-7, -7};
    assert_true(shmsock_ancillary_take_offer(&r.msg, fds, NULL));
    assert_true(same_file(fds[0], f->region.memfd));
    assert_true(same_file(fds[1], f->release[0]));

    /* What is left is exactly the credentials, for the application. */
    assert_int_equal(r.msg.msg_controllen, CMSG_SPACE(sizeof(struct ucred)));
    struct cmsghdr *c = CMSG_FIRSTHDR(&r.msg);
    assert_non_null(c);
    assert_int_equal(c->cmsg_level, SOL_SOCKET);
    assert_int_equal(c->cmsg_type, SCM_CREDENTIALS);
    struct ucred cred;
    memcpy(&cred, CMSG_DATA(c), sizeof(cred));
    assert_int_equal(cred.pid, getpid());
    assert_null(CMSG_NXTHDR(&r.msg, c));
    int left[MAX_FDS];
    assert_int_equal(collect_fds(&r.msg, left, MAX_FDS), 0);
    close(fds[0]);
    close(fds[1]);
}

/* Hand-built: the offer first, credentials after it. The credentials move up and stay. */
static void test_offer_then_credentials(void **state)
{
    struct fixture *f = *state;
    int region_fd = dup(f->region.memfd);
    int sock_fd = dup(f->release[0]);
    assert_true(region_fd >= 0 && sock_fd >= 0);

    union shmsock_control_buffer buf;
    memset(&buf, 0, sizeof(buf));
    size_t len = shmsock_ancillary_build_offer(&buf, region_fd, sock_fd);
    struct cmsghdr *extra = (struct cmsghdr *)(buf.bytes + len);
    struct ucred cred = {.pid = 4242, .uid = 17, .gid = 23};
    extra->cmsg_level = SOL_SOCKET;
    extra->cmsg_type = SCM_CREDENTIALS;
    extra->cmsg_len = CMSG_LEN(sizeof(cred));
    memcpy(CMSG_DATA(extra), &cred, sizeof(cred));
    len += CMSG_SPACE(sizeof(cred));

    struct msghdr m = {.msg_control = buf.bytes, .msg_controllen = len};
    int fds[2] = {-7, -7};
    assert_true(shmsock_ancillary_take_offer(&m, fds, NULL));
    assert_int_equal(fds[0], region_fd);
    assert_int_equal(fds[1], sock_fd);
    assert_int_equal(m.msg_controllen, CMSG_SPACE(sizeof(cred)));
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    assert_non_null(c);
    assert_int_equal(c->cmsg_type, SCM_CREDENTIALS);
    assert_int_equal(c->cmsg_len, CMSG_LEN(sizeof(cred)));
    struct ucred got;
    memcpy(&got, CMSG_DATA(c), sizeof(got));
    assert_int_equal(got.pid, 4242);
    assert_int_equal(got.uid, 17);
    assert_int_equal(got.gid, 23);
    assert_null(CMSG_NXTHDR(&m, c));
    close(region_fd);
    close(sock_fd);
}

/* Hand-built: an exact offer message plus a second SCM_RIGHTS message: not an offer. */
static void test_not_offer_second_rights_cmsg(void **state)
{
    struct fixture *f = *state;
    int region_fd = dup(f->region.memfd);
    int sock_fd = dup(f->release[0]);
    int other_fd = dup(f->release[1]);
    assert_true(region_fd >= 0 && sock_fd >= 0 && other_fd >= 0);

    union shmsock_control_buffer buf;
    memset(&buf, 0, sizeof(buf));
    size_t len = shmsock_ancillary_build_offer(&buf, region_fd, sock_fd);
    struct cmsghdr *extra = (struct cmsghdr *)(buf.bytes + len);
    extra->cmsg_level = SOL_SOCKET;
    extra->cmsg_type = SCM_RIGHTS;
    extra->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(extra), &other_fd, sizeof(int));
    len += CMSG_SPACE(sizeof(int));

    struct msghdr m = {.msg_control = buf.bytes, .msg_controllen = len};
    union shmsock_control_buffer before;
    memcpy(&before, &buf, sizeof(before));
    int fds[2] = {-7, -7};
    assert_false(shmsock_ancillary_take_offer(&m, fds, NULL));
    assert_int_equal(fds[0], -7);
    assert_int_equal(fds[1], -7);
    assert_int_equal(m.msg_controllen, len);
    assert_memory_equal(buf.bytes, before.bytes, len);
    assert_true(fd_is_open(region_fd));
    assert_true(fd_is_open(sock_fd));
    assert_true(fd_is_open(other_fd));

    /* Control: the same buffer without the second message is an offer. */
    m.msg_controllen = CMSG_SPACE(2 * sizeof(int));
    assert_true(shmsock_ancillary_take_offer(&m, fds, NULL));
    assert_int_equal(fds[0], region_fd);
    assert_int_equal(fds[1], sock_fd);
    assert_int_equal(m.msg_controllen, 0);
    close(region_fd);
    close(sock_fd);
    close(other_fd);
}

/* A valid offer buffer whose msghdr says there is no control data: not an offer. */
static void test_not_offer_zero_controllen(void **state)
{
    struct fixture *f = *state;
    union shmsock_control_buffer buf;
    shmsock_ancillary_build_offer(&buf, f->region.memfd, f->release[0]);
    struct msghdr m = {.msg_control = buf.bytes, .msg_controllen = 0};
    int fds[2] = {-7, -7};
    assert_false(shmsock_ancillary_take_offer(&m, fds, NULL));
    assert_int_equal(fds[0], -7);
    m.msg_control = NULL;
    m.msg_controllen = CMSG_SPACE(2 * sizeof(int));
    assert_false(shmsock_ancillary_take_offer(&m, fds, NULL));
    assert_int_equal(fds[0], -7);
}

static void test_present(void **state)
{
    (void)state;
    union shmsock_control_buffer buf;
    memset(&buf, 0, sizeof(buf));
    struct msghdr m;
    memset(&m, 0, sizeof(m));
    assert_false(shmsock_ancillary_present(&m));
    m.msg_controllen = 64; /* length without a buffer */
    assert_false(shmsock_ancillary_present(&m));
    m.msg_control = buf.bytes;
    m.msg_controllen = 0;
    assert_false(shmsock_ancillary_present(&m));
    m.msg_controllen = sizeof(struct cmsghdr) - 1;
    assert_false(shmsock_ancillary_present(&m));
    m.msg_controllen = CMSG_SPACE(sizeof(int));
    assert_true(shmsock_ancillary_present(&m));
}

/* ---------------------------------------------------------------------------------------- */
/* deliver                                                                                  */

/* What an application sees from one recvmsg: flags, control length, control messages. */
struct seen {
    bool ctrunc;
    size_t controllen;
    size_t n_cmsgs;
    int level[4], type[4];
    size_t len[4];
    size_t n_fds;
    int fds[MAX_FDS];
};

static void describe(const struct msghdr *m, struct seen *s)
{
    memset(s, 0, sizeof(*s));
    s->ctrunc = (m->msg_flags & MSG_CTRUNC) != 0;
    s->controllen = m->msg_controllen;
    if (m->msg_control != NULL && m->msg_controllen >= sizeof(struct cmsghdr)) {
        for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c != NULL;
             c = CMSG_NXTHDR((struct msghdr *)m, c)) {
            assert_true(s->n_cmsgs < 4);
            s->level[s->n_cmsgs] = c->cmsg_level;
            s->type[s->n_cmsgs] = c->cmsg_type;
            s->len[s->n_cmsgs] = c->cmsg_len;
            s->n_cmsgs++;
        }
    }
    s->n_fds = collect_fds(m, s->fds, MAX_FDS);
}

static void assert_seen_equal(const struct seen *kernel, const struct seen *ours)
{
    assert_int_equal(ours->ctrunc, kernel->ctrunc);
    assert_int_equal(ours->controllen, kernel->controllen);
    assert_int_equal(ours->n_cmsgs, kernel->n_cmsgs);
    for (size_t i = 0; i < kernel->n_cmsgs; i++) {
        assert_int_equal(ours->level[i], kernel->level[i]);
        assert_int_equal(ours->type[i], kernel->type[i]);
        assert_int_equal(ours->len[i], kernel->len[i]);
    }
    assert_int_equal(ours->n_fds, kernel->n_fds);
}

/* Files to pass: three distinct memfds. */
static void make_files(int files[3])
{
    for (int i = 0; i < 3; i++) {
        files[i] = memfd_create("deliver_test", MFD_CLOEXEC);
        assert_true(files[i] >= 0);
    }
}

/*
 * What the kernel gives an application whose control buffer has `room` bytes (NULL buffer when
 * room_null) for a message carrying `files` (n of them), with SO_PASSCRED if passcred.
 */
static void kernel_delivery(const int *files, size_t n, bool passcred, bool room_null, size_t room,
                            struct seen *out)
{
    int sv[2];
    seqpacket_pair(sv);
    if (passcred)
        enable_passcred(sv[1]);
    send_fds(sv[0], files, n);
    struct received r;
    memset(&r.buf, 0, sizeof(r.buf));
    recv_into(sv[1], &r, room_null ? NULL : r.buf.bytes, room_null ? 0 : room);
    describe(&r.msg, out);
    for (size_t i = 0; i < out->n_fds; i++)
        close(out->fds[i]);
    close(sv[0]);
    close(sv[1]);
}

/*
 * The same through shmsock: the message is received with a full control buffer, then
 * delivered into the application's buffer. `received_fds` gets what was received.
 */
static void our_delivery(const int *files, size_t n, bool passcred, bool room_null, size_t room,
                         union shmsock_control_buffer *user_buf, struct msghdr *user,
                         int *received_fds, size_t *n_received)
{
    int sv[2];
    seqpacket_pair(sv);
    if (passcred)
        enable_passcred(sv[1]);
    send_fds(sv[0], files, n);
    struct received r;
    recv_full(sv[1], &r);
    *n_received = collect_fds(&r.msg, received_fds, MAX_FDS);
    assert_int_equal(*n_received, n);

    memset(user_buf, 0, sizeof(*user_buf));
    memset(user, 0, sizeof(*user));
    user->msg_control = room_null ? NULL : user_buf->bytes;
    user->msg_controllen = room;
    shmsock_ancillary_deliver(&r.msg, user);
    close(sv[0]);
    close(sv[1]);
}

/* Descriptors received but not delivered are closed; delivered ones are the first files. */
static void check_fd_fates(const int *files, const int *received, size_t n_received,
                           const struct seen *ours)
{
    for (size_t i = 0; i < ours->n_fds; i++) {
        assert_int_equal(ours->fds[i], received[i]);
        assert_true(fd_is_open(ours->fds[i]));
        assert_true(same_file(ours->fds[i], files[i]));
    }
    for (size_t i = ours->n_fds; i < n_received; i++)
        assert_fd_closed(received[i]);
}

static void compare_with_kernel(size_t n_files, bool passcred, bool room_null, size_t room,
                                size_t expected_fds)
{
    int files[3];
    make_files(files);
    struct seen kernel;
    kernel_delivery(files, n_files, passcred, room_null, room, &kernel);

    union shmsock_control_buffer user_buf;
    struct msghdr user;
    int received[MAX_FDS];
    size_t n_received = 0;
    our_delivery(files, n_files, passcred, room_null, room, &user_buf, &user, received,
                 &n_received);
    struct seen ours;
    describe(&user, &ours);

    assert_int_equal(kernel.n_fds, expected_fds);
    assert_seen_equal(&kernel, &ours);
    check_fd_fates(files, received, n_received, &ours);
    for (size_t i = 0; i < ours.n_fds; i++)
        close(ours.fds[i]);
    for (int i = 0; i < 3; i++)
        close(files[i]);
}

static void test_deliver_three_fds_room_for_one(void **state)
{
    (void)state;
    int files[3];
    make_files(files);
    union shmsock_control_buffer user_buf;
    struct msghdr user;
    int received[MAX_FDS];
    size_t n_received = 0;
    our_delivery(files, 3, false, false, CMSG_LEN(sizeof(int)), &user_buf, &user, received,
                 &n_received);

    assert_true(user.msg_flags & MSG_CTRUNC);
    assert_int_equal(user.msg_controllen, CMSG_LEN(sizeof(int)));
    struct cmsghdr *c = CMSG_FIRSTHDR(&user);
    assert_non_null(c);
    assert_int_equal(c->cmsg_level, SOL_SOCKET);
    assert_int_equal(c->cmsg_type, SCM_RIGHTS);
    assert_int_equal(c->cmsg_len, CMSG_LEN(sizeof(int)));
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof(fd));
    assert_int_equal(fd, received[0]);
    assert_true(same_file(fd, files[0]));
    assert_fd_closed(received[1]);
    assert_fd_closed(received[2]);
    close(fd);
    for (int i = 0; i < 3; i++)
        close(files[i]);
}

static void test_deliver_matches_kernel_room_for_one(void **state)
{
    (void)state;
    compare_with_kernel(3, false, false, CMSG_LEN(sizeof(int)), 1);
}

static void test_deliver_matches_kernel_cmsg_space_one(void **state)
{
    (void)state;
    /* CMSG_SPACE(sizeof(int)) has padding for a second int: the kernel fills it. */
    compare_with_kernel(3, false, false, CMSG_SPACE(sizeof(int)), 2);
}

static void test_deliver_matches_kernel_exact_fit(void **state)
{
    (void)state;
    compare_with_kernel(3, false, false, CMSG_SPACE(3 * sizeof(int)), 3);
    compare_with_kernel(3, false, false, CMSG_LEN(3 * sizeof(int)), 3);
}

static void test_deliver_matches_kernel_no_room(void **state)
{
    (void)state;
    compare_with_kernel(3, false, false, sizeof(struct cmsghdr), 0);
    compare_with_kernel(3, false, false, sizeof(struct cmsghdr) - 1, 0);
}

static void test_deliver_null_control(void **state)
{
    (void)state;
    int files[3];
    make_files(files);
    union shmsock_control_buffer user_buf;
    struct msghdr user;
    int received[MAX_FDS];
    size_t n_received = 0;
    /* A NULL buffer with a nonzero length: nothing can be written. */
    our_delivery(files, 3, false, true, 100, &user_buf, &user, received, &n_received);
    assert_int_equal(user.msg_controllen, 0);
    for (size_t i = 0; i < n_received; i++)
        assert_fd_closed(received[i]);
    for (int i = 0; i < 3; i++)
        close(files[i]);
}

static void test_deliver_null_control_matches_kernel(void **state)
{
    (void)state;
    compare_with_kernel(3, false, true, 0, 0);
}

static void test_deliver_credentials(void **state)
{
    (void)state;
    int sv[2];
    seqpacket_pair(sv);
    enable_passcred(sv[1]);
    send_fds(sv[0], NULL, 0);
    struct received r;
    recv_full(sv[1], &r);

    union shmsock_control_buffer user_buf;
    memset(&user_buf, 0, sizeof(user_buf));
    struct msghdr user = {.msg_control = user_buf.bytes, .msg_controllen = sizeof(user_buf)};
    shmsock_ancillary_deliver(&r.msg, &user);
    assert_int_equal(user.msg_flags & MSG_CTRUNC, 0);
    assert_int_equal(user.msg_controllen, CMSG_SPACE(sizeof(struct ucred)));
    struct cmsghdr *c = CMSG_FIRSTHDR(&user);
    assert_non_null(c);
    assert_int_equal(c->cmsg_level, SOL_SOCKET);
    assert_int_equal(c->cmsg_type, SCM_CREDENTIALS);
    assert_int_equal(c->cmsg_len, CMSG_LEN(sizeof(struct ucred)));
    struct ucred cred;
    memcpy(&cred, CMSG_DATA(c), sizeof(cred));
    assert_int_equal(cred.pid, getpid());
    assert_int_equal(cred.uid, getuid());
    assert_int_equal(cred.gid, getgid());
    assert_null(CMSG_NXTHDR(&user, c));

    /* Room for exactly the credentials (CMSG_LEN): still complete, as in the kernel. */
    memset(&user_buf, 0, sizeof(user_buf));
    user.msg_control = user_buf.bytes;
    user.msg_controllen = CMSG_LEN(sizeof(struct ucred));
    user.msg_flags = 0;
    shmsock_ancillary_deliver(&r.msg, &user);
    assert_int_equal(user.msg_flags & MSG_CTRUNC, 0);
    c = CMSG_FIRSTHDR(&user);
    assert_non_null(c);
    assert_int_equal(c->cmsg_type, SCM_CREDENTIALS);
    memcpy(&cred, CMSG_DATA(c), sizeof(cred));
    assert_int_equal(cred.pid, getpid());
    close(sv[0]);
    close(sv[1]);
}

static void test_deliver_credentials_and_fds_match_kernel(void **state)
{
    (void)state;
    /* Everything fits. */
    compare_with_kernel(3, true, false, sizeof(union shmsock_control_buffer), 3);
    /* Credentials and one descriptor fit. */
    compare_with_kernel(3, true, false, CMSG_SPACE(sizeof(struct ucred)) + CMSG_LEN(sizeof(int)),
                        1);
    /* Credentials fit, no descriptor does. */
    compare_with_kernel(3, true, false, CMSG_SPACE(sizeof(struct ucred)), 0);
    /* Credentials alone, complete, with room for exactly them. */
    compare_with_kernel(0, true, false, CMSG_LEN(sizeof(struct ucred)), 0);
}

/* The kernel hands over a truncated credentials message (MSG_CTRUNC, cmsg_len unchanged). */
static void test_deliver_truncated_credentials_match_kernel(void **state)
{
    (void)state;
    compare_with_kernel(0, true, false, CMSG_LEN(sizeof(struct ucred)) - 4, 0);
}

/*
 * Credentials that do not fit, followed by descriptors: the kernel's truncated credentials use
 * up the buffer, so no descriptor is delivered (all closed).
 */
static void test_deliver_truncated_credentials_then_fds_match_kernel(void **state)
{
    (void)state;
    compare_with_kernel(1, true, false, CMSG_LEN(sizeof(struct ucred)) - 4, 0);
}

static void test_deliver_without_rights(void **state)
{
    (void)state;
    int files[3];
    make_files(files);
    int sv[2];
    seqpacket_pair(sv);
    enable_passcred(sv[1]);
    send_fds(sv[0], files, 3);
    struct received r;
    recv_full(sv[1], &r);
    int received[MAX_FDS];
    assert_int_equal(collect_fds(&r.msg, received, MAX_FDS), 3);

    union shmsock_control_buffer user_buf;
    memset(&user_buf, 0, sizeof(user_buf));
    struct msghdr user = {.msg_control = user_buf.bytes, .msg_controllen = sizeof(user_buf)};
    shmsock_ancillary_deliver_without_rights(&r.msg, &user);
    /* The credentials arrive; the descriptors are closed, none delivered. */
    assert_int_equal(user.msg_controllen, CMSG_SPACE(sizeof(struct ucred)));
    struct cmsghdr *c = CMSG_FIRSTHDR(&user);
    assert_non_null(c);
    assert_int_equal(c->cmsg_level, SOL_SOCKET);
    assert_int_equal(c->cmsg_type, SCM_CREDENTIALS);
    struct ucred cred;
    memcpy(&cred, CMSG_DATA(c), sizeof(cred));
    assert_int_equal(cred.pid, getpid());
    assert_null(CMSG_NXTHDR(&user, c));
    for (int i = 0; i < 3; i++)
        assert_fd_closed(received[i]);
    for (int i = 0; i < 3; i++)
        close(files[i]);
    close(sv[0]);
    close(sv[1]);
}

static void test_deliver_empty(void **state)
{
    (void)state;
    struct msghdr received;
    memset(&received, 0, sizeof(received));
    union shmsock_control_buffer user_buf;
    struct msghdr user = {.msg_control = user_buf.bytes, .msg_controllen = sizeof(user_buf)};
    shmsock_ancillary_deliver(&received, &user);
    assert_int_equal(user.msg_controllen, 0);
    assert_int_equal(user.msg_flags & MSG_CTRUNC, 0);
}

static void test_close_fds(void **state)
{
    (void)state;
    int files[3];
    make_files(files);
    int sv[2];
    seqpacket_pair(sv);
    send_fds(sv[0], files, 3);
    struct received r;
    recv_full(sv[1], &r);
    int received[MAX_FDS];
    size_t n = collect_fds(&r.msg, received, MAX_FDS);
    assert_int_equal(n, 3);
    shmsock_ancillary_close_fds(&r.msg);
    for (size_t i = 0; i < n; i++)
        assert_fd_closed(received[i]);
    /* The originals are untouched. */
    for (int i = 0; i < 3; i++) {
        assert_true(fd_is_open(files[i]));
        close(files[i]);
    }
    /* Empty control data: nothing to do. */
    struct msghdr empty;
    memset(&empty, 0, sizeof(empty));
    shmsock_ancillary_close_fds(&empty);
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_build_offer_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offer_roundtrip_recognised, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_offer_one_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_offer_three_fds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_offer_first_fd_pipe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_offer_second_fd_not_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_offer_swapped_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_offer_first_fd_not_sealed_region, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_offer_no_control, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offer_beside_kernel_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offer_then_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_offer_second_rights_cmsg, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_offer_zero_controllen, setup, teardown),
        cmocka_unit_test(test_present),
        cmocka_unit_test(test_deliver_three_fds_room_for_one),
        cmocka_unit_test(test_deliver_matches_kernel_room_for_one),
        cmocka_unit_test(test_deliver_matches_kernel_cmsg_space_one),
        cmocka_unit_test(test_deliver_matches_kernel_exact_fit),
        cmocka_unit_test(test_deliver_matches_kernel_no_room),
        cmocka_unit_test(test_deliver_null_control),
        cmocka_unit_test(test_deliver_null_control_matches_kernel),
        cmocka_unit_test(test_deliver_credentials),
        cmocka_unit_test(test_deliver_credentials_and_fds_match_kernel),
        cmocka_unit_test(test_deliver_truncated_credentials_match_kernel),
        cmocka_unit_test(test_deliver_truncated_credentials_then_fds_match_kernel),
        cmocka_unit_test(test_deliver_without_rights),
        cmocka_unit_test(test_deliver_empty),
        cmocka_unit_test(test_close_fds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
