/*
 * hostile_peer_test.c - a peer that speaks the shmsock protocol at the raw level and sends,
 * one case at a time, every kind of bad input the library must survive.
 *
 * The library end of each connection is a shm socket (shm_socketpair); the other end of the
 * same pair is driven only with libc calls (sendmsg/recvmsg) and the engine's own region
 * helpers (impl/region.h), so it behaves as a peer process built from a different, buggy or
 * malicious implementation. The raw peer builds its own region and release channel, offers
 * them blindly with its first payload (or answers the library's offer on its release
 * channel), reads the library's answer, publishes reader_careful / send_mode / switch_point
 * in its header, and then forges:
 *   - as producer: DATA events on the kernel socket (event mode, send_mode 0) or in its event
 *     ring (coalesced mode, send_mode 1): token out of range, offset/length outside the region
 *     or inconsistent with the block count, unknown type, reserved field set, truncated or
 *     oversized records, records of the wrong kind, ring heads behind the tail or more than a
 *     ring ahead, doorbells for generations never armed, a run the library still holds;
 *   - as consumer: RELEASE records on the library's release channel (event mode) or in its own
 *     release ring (coalesced): out of range, not outstanding, double release, wrong block
 *     count, wrong offset, non-zero length, wrong type, rewound/runaway release head, a second
 *     OFFER;
 *   - offers: descriptors that are not a sealed memfd (pipe, regular file, /dev/zero, unsealed
 *     or partly sealed memfd), a memfd smaller than its header claims or than a header, wrong
 *     magic, wrong version, bad geometry, a second socket that is not a socket, several offers;
 *   - a peer that rewrites its region header (geometry, switch point, send mode) and ring
 *     indices after negotiation.
 *
 * Expected outcome of every protocol violation (docs/PROTOCOL.md, "Validation"): the library
 * call that meets it, and every later call on that connection, return -1 with errno EPROTO
 * (ECONNRESET is accepted too, as include/shmsock.h allows both); the kernel socket is shut
 * down so the raw peer reads end of stream; the process does not crash, nothing is read
 * outside a mapping (the suite also runs under ASan/UBSan), no descriptor leaks, and a second,
 * healthy shm connection in the same process still transfers data in both directions.
 *
 * Some inputs are NOT violations by the documented rules and are checked as such:
 *   - on the application's kernel socket, descriptors that are not exactly "[sealed memfd with
 *     the magic, socket]" are the application's own ancillary data (PROTOCOL.md, Negotiation
 *     step 2): a pipe, a regular file, /dev/zero, an unsealed memfd or a memfd with the wrong
 *     magic attached to the first payload are handed to the application, the connection stays
 *     a plain kernel connection and keeps working;
 *   - the same descriptors sent as an OFFER event on the library's release channel (where
 *     only shmsock speaks) are a violation: EPROTO.
 *   - a forged RELEASE is noticed when the producer next reclaims blocks (releases are read
 *     only when needed, conn_send.c try_reserve): the test uses 13-block regions (16 KiB
 *     blocks) and sends until the library runs out of blocks; the call that reclaims must
 *     fail with EPROTO, and so must every later call.
 *
 * Every case runs on SOCK_STREAM and SOCK_SEQPACKET. Library calls carry SO_RCVTIMEO /
 * SO_SNDTIMEO of 2 s and a watchdog guards each case, so a hang is a failure, not a stuck run.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "impl/event.h"
#include "impl/region.h"
#include "shmsock.h"
#include "test_support.h"

#define LIB_TIMEOUT_MS 2000
#define RAW_TIMEOUT_MS 2000
#define RAW_BLOCK_SIZE 4096u
#define RAW_BLOCK_COUNT 8u

static int stream_type = SOCK_STREAM;
static int seqpacket_type = SOCK_SEQPACKET;

/* ---------------------------------------------------------------------------------------- */
/* the healthy connection that must keep working                                           */

static int healthy[2][2]; /* [0]: STREAM pair, [1]: SEQPACKET pair */

static int type_index(int type)
{
    return type == SOCK_STREAM ? 0 : 1;
}

static void check_healthy(int type)
{
    int *pair = healthy[type_index(type)];
    char out[100], in[100];
    for (int dir = 0; dir < 2; dir++) {
        int from = pair[dir], to = pair[1 - dir];
        test_fill_pattern(out, sizeof(out), (unsigned)(dir + 7));
        assert_int_equal(shm_send(from, out, sizeof(out), MSG_NOSIGNAL), (ssize_t)sizeof(out));
        memset(in, 0, sizeof(in));
        test_recv_all(&test_shm_api, to, in, sizeof(in));
        assert_memory_equal(in, out, sizeof(in));
    }
    assert_int_equal(test_shm_status(pair[0]), SHM_STATUS_SHM);
    assert_int_equal(test_shm_status(pair[1]), SHM_STATUS_SHM);
}

static int group_setup(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++) {
        if (shm_socketpair(AF_UNIX, i == 0 ? SOCK_STREAM : SOCK_SEQPACKET, 0, healthy[i]) < 0)
            return -1;
        test_handshake(&test_shm_api, healthy[i][0], healthy[i][1]);
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++) {
        shm_close(healthy[i][0]);
        shm_close(healthy[i][1]);
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* the raw peer                                                                             */

struct raw {
    int type;
    int lib;  /* the library's shm socket */
    int peer; /* the raw end of the same pair: only libc calls touch it */
    uint64_t plain_sent;
    /* Our direction (raw -> library). */
    struct shmsock_region own; /* writable; own.memfd until offered */
    int rel_rx;                /* where the library's releases / answer arrive */
    int rel_offer;             /* the end we offer */
    uint64_t event_head;
    /* The library's direction (library -> raw). */
    struct shmsock_region lib_region; /* read-only */
    int lib_rel;                      /* the library's release channel: our RELEASEs go here */
    uint64_t release_head;
    int fds_before;
};

static int count_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    assert_non_null(dir);
    int n = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] != '.')
            n++;
    }
    closedir(dir);
    return n;
}

static void set_timeouts(int fd, int ms, bool shm)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    int (*set)(int, int, int, const void *, socklen_t) = shm ? shm_setsockopt : setsockopt;
    assert_int_equal(set(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    assert_int_equal(set(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
}

static void set_lib_option(struct raw *r, int name, int value)
{
    assert_int_equal(shm_setsockopt(r->lib, SOL_SHMSOCK, name, &value, sizeof(value)), 0);
}

static void raw_open(struct raw *r, int type)
{
    memset(r, 0, sizeof(*r));
    r->fds_before = count_fds();
    r->type = type;
    r->rel_rx = r->rel_offer = r->lib_rel = -1;
    r->own.memfd = -1;
    r->lib_region.memfd = -1;
    int sv[2];
    assert_int_equal(shm_socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv), 0);
    r->lib = sv[0];
    r->peer = sv[1];
    set_timeouts(r->lib, LIB_TIMEOUT_MS, true);
    set_timeouts(r->peer, RAW_TIMEOUT_MS, false);
    test_watchdog(30, "hostile peer case");
}

static void close_if_open(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* End the case: close everything, check that no descriptor leaked, and that the healthy
 * connection still works. */
static void raw_close(struct raw *r)
{
    shmsock_region_release(&r->own);
    shmsock_region_release(&r->lib_region);
    close_if_open(&r->rel_rx);
    close_if_open(&r->rel_offer);
    close_if_open(&r->lib_rel);
    assert_int_equal(shm_close(r->lib), 0);
    assert_int_equal(shm_close(r->peer), 0); /* never used with shm_* but in the fd table */
    assert_int_equal(count_fds(), r->fds_before);
    check_healthy(r->type);
    test_watchdog(0, NULL);
}

static struct shmsock_region_header *own_header(struct raw *r)
{
    return r->own.base;
}

static const struct shmsock_region_header *lib_header(struct raw *r)
{
    return r->lib_region.base;
}

/* Send payload on the raw end, with `fds` (n of them) attached as one SCM_RIGHTS. */
static void raw_send_with_fds(struct raw *r, const void *buf, size_t len, const int *fds, size_t n)
{
    union {
        struct cmsghdr align;
        char bytes[CMSG_SPACE(8 * sizeof(int))];
    } control;
    memset(&control, 0, sizeof(control));
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (n > 0) {
        msg.msg_control = control.bytes;
        msg.msg_controllen = CMSG_SPACE(n * sizeof(int));
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(n * sizeof(int));
        memcpy(CMSG_DATA(cmsg), fds, n * sizeof(int));
    }
    assert_int_equal(sendmsg(r->peer, &msg, MSG_NOSIGNAL), (ssize_t)len);
    r->plain_sent += r->type == SOCK_STREAM ? len : 1u;
}

static void raw_make_region(struct raw *r)
{
    assert_int_equal(shmsock_region_create(&r->own, RAW_BLOCK_SIZE, RAW_BLOCK_COUNT), 0);
    int channel[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, channel), 0);
    r->rel_rx = channel[0];
    r->rel_offer = channel[1];
    set_timeouts(r->rel_rx, RAW_TIMEOUT_MS, false);
}

/* Receive one record and up to two descriptors on fd (blocking, with the raw timeout). */
static ssize_t recv_record(int fd, unsigned char record[SHMSOCK_EVENT_SIZE], int fds[2])
{
    union shmsock_control_buffer_like {
        struct cmsghdr align;
        char bytes[CMSG_SPACE(8 * sizeof(int))];
    } control;
    struct iovec iov = {.iov_base = record, .iov_len = SHMSOCK_EVENT_SIZE};
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = control.bytes,
                         .msg_controllen = sizeof(control)};
    fds[0] = fds[1] = -1;
    ssize_t n = recvmsg(fd, &msg, MSG_WAITALL | MSG_CMSG_CLOEXEC);
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < count; i++) {
                int fd_in;
                memcpy(&fd_in, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                if (i < 2)
                    fds[i] = fd_in;
                else
                    close(fd_in);
            }
        }
    }
    return n;
}

static struct shmsock_event decode(const unsigned char record[SHMSOCK_EVENT_SIZE])
{
    struct shmsock_event event;
    memcpy(&event, record, sizeof(event));
    return event;
}

/* Take the library's OFFER answer from our release channel and map its region. The answer
 * carries the region alone: our channel serves both directions, so our releases for the
 * library's blocks go back on it. */
static void raw_take_answer(struct raw *r)
{
    unsigned char record[SHMSOCK_EVENT_SIZE];
    int fds[2];
    assert_int_equal(recv_record(r->rel_rx, record, fds), SHMSOCK_EVENT_SIZE);
    assert_int_equal(decode(record).type, SHMSOCK_EVENT_OFFER);
    assert_true(fds[0] >= 0);
    assert_int_equal(fds[1], -1);
    assert_int_equal(shmsock_region_attach(&r->lib_region, fds[0]), 0);
    close(fds[0]);
    r->lib_rel = dup(r->rel_rx);
    assert_true(r->lib_rel >= 0);
}

/* Publish our switch: events from now on, sent in `mode`. */
static void raw_switch(struct raw *r, uint32_t mode)
{
    struct shmsock_region_header *h = own_header(r);
    __atomic_store_n(&h->reader_careful, 1u, __ATOMIC_RELEASE);
    __atomic_store_n(&h->send_mode, mode, __ATOMIC_RELEASE);
    __atomic_store_n(&h->switch_point, r->plain_sent + 1, __ATOMIC_RELEASE);
}

/*
 * The raw peer offers first (blind offer on its first payload), the library reads that
 * payload and answers; the raw peer maps the library's region and switches in `mode`.
 */
static void raw_negotiate_as_offerer(struct raw *r, uint32_t mode)
{
    raw_make_region(r);
    int fds[2] = {r->own.memfd, r->rel_offer};
    raw_send_with_fds(r, "hello", 5, fds, 2);
    close_if_open(&r->own.memfd);
    close_if_open(&r->rel_offer);
    char buf[64];
    assert_int_equal(shm_recv(r->lib, buf, sizeof(buf), 0), 5);
    assert_memory_equal(buf, "hello", 5);
    raw_take_answer(r);
    assert_int_equal(__atomic_load_n(&lib_header(r)->reader_careful, __ATOMIC_ACQUIRE), 1u);
    raw_switch(r, mode);
}

/* Send one record on the kernel socket (event mode). */
static void raw_send_record(struct raw *r, const void *record, size_t len)
{
    assert_int_equal(send(r->peer, record, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void raw_send_event(struct raw *r, const struct shmsock_event *event)
{
    raw_send_record(r, event, sizeof(*event));
}

/* Put one record into our event ring and publish it (coalesced mode). */
static void raw_ring_push(struct raw *r, const struct shmsock_event *event)
{
    unsigned char *slot = (unsigned char *)r->own.base + SHMSOCK_EVENT_RING_OFFSET +
                          (r->event_head % SHMSOCK_RING_SLOTS) * SHMSOCK_RING_SLOT_SIZE;
    memcpy(slot, event, sizeof(*event));
    r->event_head++;
    __atomic_store_n(&own_header(r)->event_head, r->event_head, __ATOMIC_RELEASE);
}

/* Ring the library for its current arm generation (coalesced mode). */
static void raw_doorbell(struct raw *r, uint64_t generation)
{
    struct shmsock_event bell = {.type = SHMSOCK_EVENT_DOORBELL, .offset = generation};
    __atomic_store_n(&own_header(r)->event_rung, generation + 1, __ATOMIC_RELEASE);
    raw_send_event(r, &bell);
}

static uint64_t lib_event_arm(struct raw *r)
{
    return __atomic_load_n(&lib_header(r)->event_arm, __ATOMIC_ACQUIRE);
}

/* Publish a DATA event in `mode` (ring + doorbell, or kernel record). */
static void raw_publish(struct raw *r, uint32_t mode, const struct shmsock_event *event)
{
    if (mode == SHMSOCK_SEND_MODE_COALESCED) {
        raw_ring_push(r, event);
        raw_doorbell(r, lib_event_arm(r));
    } else {
        raw_send_event(r, event);
    }
}

static struct shmsock_event raw_data(struct raw *r, uint32_t token, uint32_t blocks,
                                     uint64_t length)
{
    return shmsock_event_data(&r->own.geometry, token, blocks, length);
}

/* A valid message from the raw peer: payload in block `token`, DATA event published. */
static void raw_send_valid(struct raw *r, uint32_t mode, uint32_t token, const char *text)
{
    size_t len = strlen(text);
    memcpy(shmsock_region_block(&r->own, token), text, len);
    struct shmsock_event event = raw_data(r, token, 1, len);
    raw_publish(r, mode, &event);
}

/* The library receives the valid message `text`. */
static void lib_expect_message(struct raw *r, const char *text)
{
    char buf[256];
    size_t len = strlen(text);
    assert_int_equal(shm_recv(r->lib, buf, sizeof(buf), 0), (ssize_t)len);
    assert_memory_equal(buf, text, len);
}

static bool is_reset(int err)
{
    return err == EPROTO || err == ECONNRESET;
}

/* The connection is dead for the application: receives and sends fail with EPROTO (or
 * ECONNRESET), and the raw peer sees the end of the kernel socket. */
static void expect_dead(struct raw *r)
{
    char buf[64];
    errno = 0;
    assert_int_equal(shm_recv(r->lib, buf, sizeof(buf), MSG_DONTWAIT), -1);
    assert_true(is_reset(errno));
    errno = 0;
    assert_int_equal(shm_send(r->lib, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT), -1);
    assert_true(is_reset(errno));
    /* The raw peer reads end of stream (the library shut the kernel socket down); anything
     * already queued for it (events, doorbells) may come first. */
    unsigned char sink[4096];
    ssize_t n;
    int rounds = 0;
    while ((n = recv(r->peer, sink, sizeof(sink), 0)) > 0 && rounds++ < 1000) {
    }
    assert_int_equal(n, 0);
}

/* The next receive fails with EPROTO/ECONNRESET, and so does everything after it. */
static void expect_recv_fails(struct raw *r)
{
    char buf[256];
    errno = 0;
    ssize_t n = shm_recv(r->lib, buf, sizeof(buf), 0);
    int err = errno;
    if (n != -1 || !is_reset(err))
        fprintf(stderr, "    library shm_recv returned %zd, errno %d (%s); expected -1 EPROTO\n", n,
                err, strerror(err));
    assert_int_equal(n, -1);
    assert_true(is_reset(err));
    expect_dead(r);
}

/* The next send fails with EPROTO/ECONNRESET, and so does everything after it. */
static void expect_send_fails(struct raw *r)
{
    errno = 0;
    ssize_t n = shm_send(r->lib, "y", 1, MSG_NOSIGNAL);
    int err = errno;
    if (n != -1 || !is_reset(err))
        fprintf(stderr, "    library shm_send returned %zd, errno %d (%s); expected -1 EPROTO\n", n,
                err, strerror(err));
    expect_dead(r); /* later calls first: tells a wrong first errno from a live connection */
    assert_int_equal(n, -1);
    assert_true(is_reset(err));
}

/* ---------------------------------------------------------------------------------------- */
/* raw producer, library consumer: forged DATA events                                      */

enum forgery {
    F_VALID, /* control: the raw peer itself is correct */
    F_TOKEN_OUT_OF_RANGE,
    F_TOKEN_HUGE,
    F_OFFSET_OUTSIDE,
    F_OFFSET_NOT_AT_TOKEN,
    F_OFFSET_HUGE,
    F_LENGTH_BEYOND_BLOCKS,
    F_LENGTH_HUGE,
    F_LENGTH_TOO_SHORT_FOR_COUNT,
    F_COUNT_ZERO,
    F_COUNT_PAST_END,
    F_COUNT_HUGE,
    F_TYPE_UNKNOWN,
    F_TYPE_ZERO,
    F_TYPE_RELEASE,
    F_TYPE_OFFER,
    F_RESERVED_SET,
    F_HELD_RUN, /* a DATA event for a run the library still holds (a view) */
};

static struct shmsock_event forge(struct raw *r, enum forgery f)
{
    const struct shmsock_geometry *g = &r->own.geometry;
    struct shmsock_event e = raw_data(r, 1, 1, 10);
    switch (f) {
    case F_VALID:
    case F_HELD_RUN:
        break;
    case F_TOKEN_OUT_OF_RANGE:
        e = raw_data(r, g->block_count, 1, 10);
        break;
    case F_TOKEN_HUGE:
        e.token = UINT32_MAX;
        break;
    case F_OFFSET_OUTSIDE:
        e.offset = g->region_size + 4096;
        break;
    case F_OFFSET_NOT_AT_TOKEN:
        e.offset += 16;
        break;
    case F_OFFSET_HUGE:
        e.offset = UINT64_MAX - 4;
        break;
    case F_LENGTH_BEYOND_BLOCKS:
        e.length = g->block_size + 1;
        break;
    case F_LENGTH_HUGE:
        e.length = UINT64_MAX;
        break;
    case F_LENGTH_TOO_SHORT_FOR_COUNT:
        e.block_count = 2;
        e.length = 10;
        break;
    case F_COUNT_ZERO:
        e.block_count = 0;
        break;
    case F_COUNT_PAST_END:
        e = raw_data(r, g->block_count - 1, 2, g->block_size + 10);
        break;
    case F_COUNT_HUGE:
        e.block_count = UINT32_MAX;
        e.length = (uint64_t)UINT32_MAX * g->block_size;
        break;
    case F_TYPE_UNKNOWN:
        e.type = 99;
        break;
    case F_TYPE_ZERO:
        e.type = 0;
        break;
    case F_TYPE_RELEASE:
        e.type = SHMSOCK_EVENT_RELEASE;
        e.length = 0;
        break;
    case F_TYPE_OFFER:
        e = (struct shmsock_event){.type = SHMSOCK_EVENT_OFFER};
        break;
    case F_RESERVED_SET:
        e.reserved = 1;
        break;
    }
    return e;
}

static void run_data_forgery(int type, uint32_t mode, enum forgery f)
{
    struct raw r;
    raw_open(&r, type);
    raw_negotiate_as_offerer(&r, mode);
    /* One good message first: the switch is behind us and the raw peer is correct. */
    raw_send_valid(&r, mode, 0, "first valid message");
    lib_expect_message(&r, "first valid message");

    if (f == F_HELD_RUN) {
        /* The library holds block 2 through a view; the peer reuses it. */
        raw_send_valid(&r, mode, 2, "held");
        const void *view = NULL;
        assert_int_equal(shm_recv_view(r.lib, &view, 0), 4);
        struct shmsock_event again = raw_data(&r, 2, 1, 4);
        raw_publish(&r, mode, &again);
        expect_recv_fails(&r);
        assert_int_equal(shm_recv_release(r.lib, view), 0);
        raw_close(&r);
        return;
    }
    memcpy(shmsock_region_block(&r.own, 1), "0123456789", 10);
    struct shmsock_event e = forge(&r, f);
    raw_publish(&r, mode, &e);
    if (f == F_VALID) {
        lib_expect_message(&r, "0123456789");
        raw_send_valid(&r, mode, 3, "still fine");
        lib_expect_message(&r, "still fine");
    } else {
        expect_recv_fails(&r);
    }
    raw_close(&r);
}

#define DATA_CASE(name, mode, f)                                                                   \
    static void test_##name(void **state)                                                          \
    {                                                                                              \
        run_data_forgery(*(int *)*state, mode, f);                                                 \
    }

#define EV SHMSOCK_SEND_MODE_EVENTS
#define CO SHMSOCK_SEND_MODE_COALESCED

DATA_CASE(events_valid_control, EV, F_VALID)
DATA_CASE(events_token_out_of_range, EV, F_TOKEN_OUT_OF_RANGE)
DATA_CASE(events_token_huge, EV, F_TOKEN_HUGE)
DATA_CASE(events_offset_outside_region, EV, F_OFFSET_OUTSIDE)
DATA_CASE(events_offset_not_at_token, EV, F_OFFSET_NOT_AT_TOKEN)
DATA_CASE(events_offset_huge, EV, F_OFFSET_HUGE)
DATA_CASE(events_length_beyond_blocks, EV, F_LENGTH_BEYOND_BLOCKS)
DATA_CASE(events_length_huge, EV, F_LENGTH_HUGE)
DATA_CASE(events_length_inconsistent_with_count, EV, F_LENGTH_TOO_SHORT_FOR_COUNT)
DATA_CASE(events_count_zero, EV, F_COUNT_ZERO)
DATA_CASE(events_count_past_end, EV, F_COUNT_PAST_END)
DATA_CASE(events_count_huge, EV, F_COUNT_HUGE)
DATA_CASE(events_type_unknown, EV, F_TYPE_UNKNOWN)
DATA_CASE(events_type_zero, EV, F_TYPE_ZERO)
DATA_CASE(events_type_release_on_carrier, EV, F_TYPE_RELEASE)
DATA_CASE(events_type_offer_after_switch, EV, F_TYPE_OFFER)
DATA_CASE(events_reserved_set, EV, F_RESERVED_SET)
DATA_CASE(events_data_for_held_run, EV, F_HELD_RUN)

DATA_CASE(ring_valid_control, CO, F_VALID)
DATA_CASE(ring_token_out_of_range, CO, F_TOKEN_OUT_OF_RANGE)
DATA_CASE(ring_token_huge, CO, F_TOKEN_HUGE)
DATA_CASE(ring_offset_outside_region, CO, F_OFFSET_OUTSIDE)
DATA_CASE(ring_offset_not_at_token, CO, F_OFFSET_NOT_AT_TOKEN)
DATA_CASE(ring_offset_huge, CO, F_OFFSET_HUGE)
DATA_CASE(ring_length_beyond_blocks, CO, F_LENGTH_BEYOND_BLOCKS)
DATA_CASE(ring_length_huge, CO, F_LENGTH_HUGE)
DATA_CASE(ring_length_inconsistent_with_count, CO, F_LENGTH_TOO_SHORT_FOR_COUNT)
DATA_CASE(ring_count_zero, CO, F_COUNT_ZERO)
DATA_CASE(ring_count_past_end, CO, F_COUNT_PAST_END)
DATA_CASE(ring_count_huge, CO, F_COUNT_HUGE)
DATA_CASE(ring_type_unknown, CO, F_TYPE_UNKNOWN)
DATA_CASE(ring_type_zero, CO, F_TYPE_ZERO)
DATA_CASE(ring_type_release_in_event_ring, CO, F_TYPE_RELEASE)
DATA_CASE(ring_type_offer_in_event_ring, CO, F_TYPE_OFFER)
DATA_CASE(ring_reserved_set, CO, F_RESERVED_SET)
DATA_CASE(ring_data_for_held_run, CO, F_HELD_RUN)

/* ---- malformed kernel records (event mode) ---- */

static void run_bad_record(int type, const void *bytes, size_t len)
{
    struct raw r;
    raw_open(&r, type);
    raw_negotiate_as_offerer(&r, EV);
    raw_send_valid(&r, EV, 0, "ok");
    lib_expect_message(&r, "ok");
    raw_send_record(&r, bytes, len);
    expect_recv_fails(&r);
    raw_close(&r);
}

static void test_events_truncated_record(void **state)
{
    unsigned char half[SHMSOCK_EVENT_SIZE / 2] = {SHMSOCK_EVENT_DATA};
    run_bad_record(*(int *)*state, half, sizeof(half));
}

static void test_events_one_byte_record(void **state)
{
    unsigned char one = SHMSOCK_EVENT_DATA;
    run_bad_record(*(int *)*state, &one, 1);
}

static void test_events_oversized_record(void **state)
{
    unsigned char big[SHMSOCK_EVENT_SIZE + 8];
    memset(big, 0, sizeof(big));
    big[0] = SHMSOCK_EVENT_DATA;
    run_bad_record(*(int *)*state, big, sizeof(big));
}

static void test_events_garbage_block(void **state)
{
    unsigned char junk[4 * SHMSOCK_EVENT_SIZE];
    memset(junk, 0xA5, sizeof(junk));
    run_bad_record(*(int *)*state, junk, sizeof(junk));
}

static void test_events_to_kernel_on_carrier(void **state)
{
    struct shmsock_event e = {.type = SHMSOCK_EVENT_TO_KERNEL};
    run_bad_record(*(int *)*state, &e, sizeof(e));
}

/* ---- the event ring itself (coalesced mode) ---- */

enum ring_attack {
    RING_HEAD_BEHIND_TAIL,
    RING_HEAD_FAR_AHEAD,
    RING_HEAD_HUGE,
    RING_DOORBELL_FUTURE_GENERATION,
    RING_KERNEL_DATA_WITHOUT_TO_KERNEL,
    RING_GARBAGE_ON_CARRIER,
};

static void run_ring_attack(int type, enum ring_attack attack)
{
    struct raw r;
    raw_open(&r, type);
    raw_negotiate_as_offerer(&r, CO);
    raw_send_valid(&r, CO, 0, "one");
    lib_expect_message(&r, "one");
    raw_send_valid(&r, CO, 1, "two");
    lib_expect_message(&r, "two");
    struct shmsock_region_header *h = own_header(&r);
    struct shmsock_event data = raw_data(&r, 2, 1, 3);
    memcpy(shmsock_region_block(&r.own, 2), "abc", 3);
    switch (attack) {
    case RING_HEAD_BEHIND_TAIL:
        __atomic_store_n(&h->event_head, 1, __ATOMIC_RELEASE); /* the library's tail is 2 */
        raw_doorbell(&r, lib_event_arm(&r));
        break;
    case RING_HEAD_FAR_AHEAD:
        __atomic_store_n(&h->event_head, r.event_head + SHMSOCK_RING_SLOTS + 1, __ATOMIC_RELEASE);
        raw_doorbell(&r, lib_event_arm(&r));
        break;
    case RING_HEAD_HUGE:
        __atomic_store_n(&h->event_head, UINT64_MAX, __ATOMIC_RELEASE);
        raw_doorbell(&r, lib_event_arm(&r));
        break;
    case RING_DOORBELL_FUTURE_GENERATION:
        raw_doorbell(&r, lib_event_arm(&r) + 1000);
        break;
    case RING_KERNEL_DATA_WITHOUT_TO_KERNEL:
        raw_send_event(&r, &data);
        break;
    case RING_GARBAGE_ON_CARRIER: {
        unsigned char junk[SHMSOCK_EVENT_SIZE];
        memset(junk, 0x5A, sizeof(junk));
        raw_send_record(&r, junk, sizeof(junk));
        break;
    }
    }
    expect_recv_fails(&r);
    raw_close(&r);
}

#define RING_CASE(name, attack)                                                                    \
    static void test_##name(void **state)                                                          \
    {                                                                                              \
        run_ring_attack(*(int *)*state, attack);                                                   \
    }

RING_CASE(ring_head_behind_tail, RING_HEAD_BEHIND_TAIL)
RING_CASE(ring_head_more_than_a_ring_ahead, RING_HEAD_FAR_AHEAD)
RING_CASE(ring_head_huge, RING_HEAD_HUGE)
RING_CASE(ring_doorbell_for_unarmed_generation, RING_DOORBELL_FUTURE_GENERATION)
RING_CASE(ring_kernel_data_without_to_kernel, RING_KERNEL_DATA_WITHOUT_TO_KERNEL)
RING_CASE(ring_garbage_on_carrier, RING_GARBAGE_ON_CARRIER)

/* ---- the raw peer rewrites its header after negotiation ---- */

enum rewrite {
    RW_GEOMETRY_BIGGER,     /* claims more blocks, then uses one past the real end */
    RW_GEOMETRY_VALID_USE,  /* claims other geometry, keeps sending valid events: fine */
    RW_SWITCH_POINT_BEHIND, /* before the library read it: fewer plain units than it read */
    RW_SWITCH_POINT_LATER,  /* after the library read it: ignored */
    RW_SEND_MODE_UNKNOWN,   /* before the switch is read */
    RW_SEND_MODE_FLIPPED,   /* after: ignored (the mode is read once) */
    RW_MAGIC_AND_VERSION,   /* after: ignored (the header was checked once) */
};

static void run_rewrite(int type, uint32_t mode, enum rewrite what)
{
    struct raw r;
    raw_open(&r, type);
    struct shmsock_region_header *h;
    if (what == RW_SWITCH_POINT_BEHIND || what == RW_SEND_MODE_UNKNOWN) {
        raw_make_region(&r);
        int fds[2] = {r.own.memfd, r.rel_offer};
        raw_send_with_fds(&r, "hello", 5, fds, 2);
        close_if_open(&r.own.memfd);
        close_if_open(&r.rel_offer);
        char buf[64];
        assert_int_equal(shm_recv(r.lib, buf, sizeof(buf), 0), 5);
        raw_take_answer(&r);
        raw_send_with_fds(&r, "world", 5, NULL, 0);
        assert_int_equal(shm_recv(r.lib, buf, sizeof(buf), 0), 5);
        h = own_header(&r);
        __atomic_store_n(&h->reader_careful, 1u, __ATOMIC_RELEASE);
        if (what == RW_SWITCH_POINT_BEHIND) {
            __atomic_store_n(&h->send_mode, mode, __ATOMIC_RELEASE);
            __atomic_store_n(&h->switch_point, 2, __ATOMIC_RELEASE); /* "one unit" */
        } else {
            __atomic_store_n(&h->send_mode, 7u, __ATOMIC_RELEASE);
            __atomic_store_n(&h->switch_point, r.plain_sent + 1, __ATOMIC_RELEASE);
        }
        raw_send_valid(&r, mode, 0, "data");
        expect_recv_fails(&r);
        raw_close(&r);
        return;
    }
    raw_negotiate_as_offerer(&r, mode);
    raw_send_valid(&r, mode, 0, "before");
    lib_expect_message(&r, "before");
    h = own_header(&r);
    switch (what) {
    case RW_GEOMETRY_BIGGER:
    case RW_GEOMETRY_VALID_USE:
        h->block_count = SHMSOCK_MAX_BLOCK_COUNT;
        h->block_size = SHMSOCK_MAX_BLOCK_SIZE;
        h->region_size = UINT64_MAX / 2;
        h->header_size = 64;
        break;
    case RW_SWITCH_POINT_LATER:
        __atomic_store_n(&h->switch_point, 1000000, __ATOMIC_RELEASE);
        break;
    case RW_SEND_MODE_FLIPPED:
        __atomic_store_n(&h->send_mode, mode == EV ? CO : EV, __ATOMIC_RELEASE);
        break;
    case RW_MAGIC_AND_VERSION:
        h->magic = 0;
        h->version = 99;
        h->ring_slots = 1;
        h->event_ring_offset = 0xFFFFFFF0u;
        break;
    default:
        break;
    }
    if (what == RW_GEOMETRY_BIGGER) {
        /* Valid for the forged geometry (1 MiB blocks from 64 on), far past the real file. */
        struct shmsock_event e = {.type = SHMSOCK_EVENT_DATA,
                                  .token = 100,
                                  .offset = 64 + 100ull * SHMSOCK_MAX_BLOCK_SIZE,
                                  .length = 100,
                                  .block_count = 1};
        raw_publish(&r, mode, &e);
        expect_recv_fails(&r);
    } else {
        raw_send_valid(&r, mode, 1, "after rewrite");
        lib_expect_message(&r, "after rewrite");
        raw_send_valid(&r, mode, 2, "and again");
        lib_expect_message(&r, "and again");
    }
    raw_close(&r);
}

#define REWRITE_CASE(name, mode, what)                                                             \
    static void test_##name(void **state)                                                          \
    {                                                                                              \
        run_rewrite(*(int *)*state, mode, what);                                                   \
    }

REWRITE_CASE(events_rewrite_geometry_then_use_it, EV, RW_GEOMETRY_BIGGER)
REWRITE_CASE(ring_rewrite_geometry_then_use_it, CO, RW_GEOMETRY_BIGGER)
REWRITE_CASE(events_rewrite_geometry_ignored, EV, RW_GEOMETRY_VALID_USE)
REWRITE_CASE(ring_rewrite_geometry_ignored, CO, RW_GEOMETRY_VALID_USE)
REWRITE_CASE(events_switch_point_behind_plain_read, EV, RW_SWITCH_POINT_BEHIND)
REWRITE_CASE(ring_switch_point_behind_plain_read, CO, RW_SWITCH_POINT_BEHIND)
REWRITE_CASE(events_switch_point_rewritten_later_ignored, EV, RW_SWITCH_POINT_LATER)
REWRITE_CASE(ring_switch_point_rewritten_later_ignored, CO, RW_SWITCH_POINT_LATER)
REWRITE_CASE(send_mode_unknown, EV, RW_SEND_MODE_UNKNOWN)
REWRITE_CASE(events_send_mode_flipped_later_ignored, EV, RW_SEND_MODE_FLIPPED)
REWRITE_CASE(ring_send_mode_flipped_later_ignored, CO, RW_SEND_MODE_FLIPPED)
REWRITE_CASE(events_magic_version_rewritten_later_ignored, EV, RW_MAGIC_AND_VERSION)
REWRITE_CASE(ring_magic_version_rewritten_later_ignored, CO, RW_MAGIC_AND_VERSION)

/* ---------------------------------------------------------------------------------------- */
/* library producer, raw consumer: forged RELEASE records                                  */

/*
 * Negotiate with the raw peer as offerer, then let the library switch its own sends (event
 * mode: SHM_COALESCE 0; coalesced: 1) with 16 KiB blocks (13 blocks for the default
 * SO_SNDBUF), and send a first message of two blocks (token 0, blocks 0-1). Returns its DATA
 * event. Releases are read only when the library runs out of blocks: LIB_BLOCKS - 2 more
 * one-block sends fit without reading them.
 */
#define LIB_BLOCK_SIZE 16384u
#define LIB_BLOCKS 13u
#define LIB_FIRST_LEN (LIB_BLOCK_SIZE + 1)
static struct shmsock_event lib_switch_and_send(struct raw *r, int coalesce)
{
    set_lib_option(r, SHM_COALESCE, coalesce);
    /* The library's region is made when it answers the offer: set the block size first. */
    set_lib_option(r, SHM_BLOCK_SIZE, (int)LIB_BLOCK_SIZE);
    raw_negotiate_as_offerer(r, EV);
    assert_int_equal(r->lib_region.geometry.block_count, LIB_BLOCKS);
    static char first[LIB_FIRST_LEN];
    memset(first, 'f', sizeof(first));
    memcpy(first, "m0", 2);
    assert_int_equal(shm_send(r->lib, first, sizeof(first), MSG_NOSIGNAL), (ssize_t)sizeof(first));
    assert_int_equal(test_shm_status(r->lib), SHM_STATUS_SHM);
    const struct shmsock_region_header *h = lib_header(r);
    assert_int_equal(__atomic_load_n(&h->switch_point, __ATOMIC_ACQUIRE), 1u);
    uint32_t mode = __atomic_load_n(&h->send_mode, __ATOMIC_ACQUIRE);
    assert_int_equal(mode, coalesce ? CO : EV);
    struct shmsock_event event;
    unsigned char record[SHMSOCK_EVENT_SIZE];
    int fds[2];
    if (coalesce) {
        /* The first event is rung (the raw peer has never armed: generation 0). */
        assert_int_equal(recv_record(r->peer, record, fds), SHMSOCK_EVENT_SIZE);
        assert_int_equal(decode(record).type, SHMSOCK_EVENT_DOORBELL);
        assert_true(__atomic_load_n(&h->event_head, __ATOMIC_ACQUIRE) >= 1);
        memcpy(&event, (const unsigned char *)r->lib_region.base + SHMSOCK_EVENT_RING_OFFSET,
               sizeof(event));
    } else {
        assert_int_equal(recv_record(r->peer, record, fds), SHMSOCK_EVENT_SIZE);
        event = decode(record);
    }
    assert_int_equal(event.type, SHMSOCK_EVENT_DATA);
    assert_int_equal(event.token, 0u);
    assert_int_equal(event.length, LIB_FIRST_LEN);
    assert_int_equal(event.block_count, 2u);
    assert_memory_equal((const unsigned char *)r->lib_region.base + event.offset, "m0", 2);
    return event;
}

/* Return a RELEASE record to the library: on its release channel, or in our release ring. */
static void raw_release(struct raw *r, int coalesce, const struct shmsock_event *release)
{
    if (!coalesce) {
        assert_int_equal(send(r->lib_rel, release, sizeof(*release), MSG_NOSIGNAL),
                         (ssize_t)sizeof(*release));
        return;
    }
    unsigned char *slot = (unsigned char *)r->own.base + SHMSOCK_RELEASE_RING_OFFSET +
                          (r->release_head % SHMSOCK_RING_SLOTS) * SHMSOCK_RING_SLOT_SIZE;
    memcpy(slot, release, sizeof(*release));
    r->release_head++;
    __atomic_store_n(&own_header(r)->release_head, r->release_head, __ATOMIC_RELEASE);
}

enum release_forgery {
    R_VALID, /* control: returning the real token lets the library send on */
    R_OUT_OF_RANGE,
    R_HUGE_TOKEN,
    R_NOT_OUTSTANDING,
    R_DOUBLE,
    R_WRONG_COUNT,
    R_COUNT_ZERO,
    R_WRONG_OFFSET,
    R_LENGTH_SET,
    R_TYPE_DATA,
    R_TYPE_UNKNOWN,
    R_RESERVED_SET,
    R_MISALIGNED,  /* half a record, then a whole one: the channel is out of step */
    R_HEAD_BEHIND, /* coalesced only */
    R_HEAD_AHEAD,  /* coalesced only */
};

static void run_release_forgery(int type, int coalesce, enum release_forgery f)
{
    struct raw r;
    raw_open(&r, type);
    struct shmsock_event data = lib_switch_and_send(&r, coalesce);
    const struct shmsock_geometry *g = &r.lib_region.geometry;
    struct shmsock_event rel = shmsock_event_release(g, data.token, data.block_count);
    switch (f) {
    case R_VALID:
        raw_release(&r, coalesce, &rel);
        break;
    case R_OUT_OF_RANGE:
        rel = shmsock_event_release(g, g->block_count, 1);
        raw_release(&r, coalesce, &rel);
        break;
    case R_HUGE_TOKEN:
        rel.token = UINT32_MAX;
        raw_release(&r, coalesce, &rel);
        break;
    case R_NOT_OUTSTANDING:
        /* Block 1 is sent, but as part of token 0's run: token 1 is not outstanding. */
        rel = shmsock_event_release(g, 1, 1);
        raw_release(&r, coalesce, &rel);
        break;
    case R_DOUBLE:
        raw_release(&r, coalesce, &rel);
        raw_release(&r, coalesce, &rel);
        break;
    case R_WRONG_COUNT:
        rel = shmsock_event_release(g, 0, 1);
        raw_release(&r, coalesce, &rel);
        break;
    case R_COUNT_ZERO:
        rel.block_count = 0;
        raw_release(&r, coalesce, &rel);
        break;
    case R_WRONG_OFFSET:
        rel.offset += 8;
        raw_release(&r, coalesce, &rel);
        break;
    case R_LENGTH_SET:
        rel.length = 1;
        raw_release(&r, coalesce, &rel);
        break;
    case R_TYPE_DATA:
        rel.type = SHMSOCK_EVENT_DATA;
        rel.length = 2;
        raw_release(&r, coalesce, &rel);
        break;
    case R_TYPE_UNKNOWN:
        rel.type = 77;
        raw_release(&r, coalesce, &rel);
        break;
    case R_RESERVED_SET:
        rel.reserved = 5;
        raw_release(&r, coalesce, &rel);
        break;
    case R_MISALIGNED: {
        unsigned char half[SHMSOCK_EVENT_SIZE / 2];
        memset(half, 0, sizeof(half));
        assert_int_equal(send(r.lib_rel, half, sizeof(half), MSG_NOSIGNAL), (ssize_t)sizeof(half));
        raw_release(&r, 0, &rel);
        break;
    }
    case R_HEAD_BEHIND:
        raw_release(&r, 1, &rel);
        /* The library has not read it yet: its tail is 0. Publish a head it has passed
         * only after a read: first let it reclaim by sending, then rewind. */
        for (unsigned i = 0; i < LIB_BLOCKS - 1; i++) /* the last one reclaims token 0 */
            assert_int_equal(shm_send(r.lib, "mf", 2, MSG_NOSIGNAL), 2);
        __atomic_store_n(&own_header(&r)->release_head, 0, __ATOMIC_RELEASE);
        break;
    case R_HEAD_AHEAD:
        __atomic_store_n(&own_header(&r)->release_head, SHMSOCK_RING_SLOTS + 5, __ATOMIC_RELEASE);
        break;
    }
    if (f == R_VALID) {
        /* More sends than free blocks: the last ones need the returned blocks. */
        for (unsigned i = 0; i < LIB_BLOCKS; i++)
            assert_int_equal(shm_send(r.lib, "mv", 2, MSG_NOSIGNAL), 2);
        raw_close(&r);
        return;
    }
    /* The library notices when it reclaims: at the latest when its blocks are all out. Sends
     * before that may succeed; the one that reclaims must fail with EPROTO. */
    ssize_t n = 0;
    int err = 0;
    int sends = 0;
    for (sends = 0; sends < (int)LIB_BLOCKS + 2; sends++) {
        errno = 0;
        n = shm_send(r.lib, "mx", 2, MSG_NOSIGNAL);
        err = errno;
        if (n < 0)
            break;
    }
    if (n != -1 || !is_reset(err))
        fprintf(stderr,
                "    library shm_send #%d returned %zd, errno %d (%s); expected -1 EPROTO\n",
                sends + 1, n, err, strerror(err));
    expect_dead(&r);
    assert_int_equal(n, -1);
    assert_true(is_reset(err));
    raw_close(&r);
}

#define RELEASE_CASE(name, coalesce, f)                                                            \
    static void test_##name(void **state)                                                          \
    {                                                                                              \
        run_release_forgery(*(int *)*state, coalesce, f);                                          \
    }

RELEASE_CASE(events_release_valid_control, 0, R_VALID)
RELEASE_CASE(events_release_out_of_range, 0, R_OUT_OF_RANGE)
RELEASE_CASE(events_release_huge_token, 0, R_HUGE_TOKEN)
RELEASE_CASE(events_release_not_outstanding, 0, R_NOT_OUTSTANDING)
RELEASE_CASE(events_release_double, 0, R_DOUBLE)
RELEASE_CASE(events_release_wrong_block_count, 0, R_WRONG_COUNT)
RELEASE_CASE(events_release_block_count_zero, 0, R_COUNT_ZERO)
RELEASE_CASE(events_release_wrong_offset, 0, R_WRONG_OFFSET)
RELEASE_CASE(events_release_length_set, 0, R_LENGTH_SET)
RELEASE_CASE(events_release_type_data, 0, R_TYPE_DATA)
RELEASE_CASE(events_release_type_unknown, 0, R_TYPE_UNKNOWN)
RELEASE_CASE(events_release_reserved_set, 0, R_RESERVED_SET)
RELEASE_CASE(events_release_channel_misaligned, 0, R_MISALIGNED)

RELEASE_CASE(ring_release_valid_control, 1, R_VALID)
RELEASE_CASE(ring_release_out_of_range, 1, R_OUT_OF_RANGE)
RELEASE_CASE(ring_release_huge_token, 1, R_HUGE_TOKEN)
RELEASE_CASE(ring_release_not_outstanding, 1, R_NOT_OUTSTANDING)
RELEASE_CASE(ring_release_double, 1, R_DOUBLE)
RELEASE_CASE(ring_release_wrong_block_count, 1, R_WRONG_COUNT)
RELEASE_CASE(ring_release_block_count_zero, 1, R_COUNT_ZERO)
RELEASE_CASE(ring_release_wrong_offset, 1, R_WRONG_OFFSET)
RELEASE_CASE(ring_release_length_set, 1, R_LENGTH_SET)
RELEASE_CASE(ring_release_type_data, 1, R_TYPE_DATA)
RELEASE_CASE(ring_release_type_unknown, 1, R_TYPE_UNKNOWN)
RELEASE_CASE(ring_release_reserved_set, 1, R_RESERVED_SET)
RELEASE_CASE(ring_release_head_behind_tail, 1, R_HEAD_BEHIND)
RELEASE_CASE(ring_release_head_more_than_a_ring_ahead, 1, R_HEAD_AHEAD)

/* ---------------------------------------------------------------------------------------- */
/* offers                                                                                   */

enum bad_region {
    BR_PIPE,
    BR_REGULAR_FILE,
    BR_DEV_ZERO,
    BR_UNSEALED_MEMFD,
    BR_PARTLY_SEALED_MEMFD, /* F_SEAL_SEAL but no F_SEAL_SHRINK */
    BR_WRONG_MAGIC,
    BR_SMALLER_THAN_CLAIMED,
    BR_SMALLER_THAN_HEADER,
    BR_WRONG_VERSION,
    BR_BAD_BLOCK_SIZE,
    BR_ZERO_BLOCKS,
    BR_BAD_RING_OFFSET,
    BR_VALID, /* control */
};

/* Whether the documented offer rule lets `kind` be recognised as an offer at all. */
static bool looks_like_offer(enum bad_region kind)
{
    return kind >= BR_SMALLER_THAN_CLAIMED;
}

/* A sealed memfd holding a valid header for `blocks` blocks, then corrupted per `kind`. */
static int make_bad_region_fd(enum bad_region kind, int *extra)
{
    *extra = -1;
    int fds[2];
    switch (kind) {
    case BR_PIPE:
        assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
        *extra = fds[1];
        return fds[0];
    case BR_REGULAR_FILE: {
        char path[] = "/tmp/shmsock-hostile-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        unlink(path);
        uint64_t magic = SHMSOCK_REGION_MAGIC;
        char page[SHMSOCK_REGION_HEADER_SIZE];
        memset(page, 0, sizeof(page));
        memcpy(page, &magic, sizeof(magic));
        assert_int_equal(write(fd, page, sizeof(page)), (ssize_t)sizeof(page));
        return fd;
    }
    case BR_DEV_ZERO: {
        int fd = open("/dev/zero", O_RDWR | O_CLOEXEC);
        assert_true(fd >= 0);
        return fd;
    }
    default:
        break;
    }
    /* A real region, copied into a fresh memfd so that we control size and seals. */
    struct shmsock_region model;
    assert_int_equal(shmsock_region_create(&model, RAW_BLOCK_SIZE, RAW_BLOCK_COUNT), 0);
    struct shmsock_region_header header;
    memcpy(&header, model.base, sizeof(header));
    uint64_t size = model.geometry.region_size;
    shmsock_region_release(&model);
    int seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
    switch (kind) {
    case BR_UNSEALED_MEMFD:
        seals = 0;
        break;
    case BR_PARTLY_SEALED_MEMFD:
        seals = F_SEAL_GROW | F_SEAL_SEAL;
        break;
    case BR_WRONG_MAGIC:
        header.magic ^= 1;
        break;
    case BR_SMALLER_THAN_CLAIMED:
        size -= RAW_BLOCK_SIZE; /* header still says the full size */
        break;
    case BR_SMALLER_THAN_HEADER:
        size = 4096; /* the control page only; the rings and blocks are missing */
        break;
    case BR_WRONG_VERSION:
        header.version = SHMSOCK_PROTOCOL_VERSION + 1;
        break;
    case BR_BAD_BLOCK_SIZE:
        header.block_size = 3000;
        break;
    case BR_ZERO_BLOCKS:
        header.block_count = 0;
        break;
    case BR_BAD_RING_OFFSET:
        header.event_ring_offset = 64;
        break;
    default:
        break;
    }
    int fd = memfd_create("hostile", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    assert_int_equal(pwrite(fd, &header, sizeof(header), 0), (ssize_t)sizeof(header));
    if (seals != 0)
        assert_int_equal(fcntl(fd, F_ADD_SEALS, seals), 0);
    return fd;
}

/* Blind offer on the kernel socket with a bad region descriptor. */
static void run_blind_bad_offer(int type, enum bad_region kind)
{
    struct raw r;
    raw_open(&r, type);
    int extra;
    int bad = make_bad_region_fd(kind, &extra);
    int channel[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, channel), 0);
    int fds[2] = {bad, channel[1]};
    raw_send_with_fds(&r, "offer", 5, fds, 2);
    close(bad);
    close_if_open(&extra);
    close(channel[1]);
    if (looks_like_offer(kind) && kind != BR_VALID) {
        expect_recv_fails(&r);
    } else {
        /* Not an offer by the documented rule: the application's own descriptors. */
        char buf[64];
        union {
            struct cmsghdr align;
            char bytes[CMSG_SPACE(4 * sizeof(int))];
        } control;
        struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
        struct msghdr msg = {.msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = control.bytes,
                             .msg_controllen = sizeof(control)};
        assert_int_equal(shm_recvmsg(r.lib, &msg, MSG_CMSG_CLOEXEC), 5);
        assert_memory_equal(buf, "offer", 5);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        if (kind == BR_VALID) {
            assert_null(c); /* the offer is shmsock's own, never the application's */
        } else {
            assert_non_null(c);
            assert_int_equal(c->cmsg_type, SCM_RIGHTS);
            assert_int_equal(c->cmsg_len, CMSG_LEN(2 * sizeof(int)));
            int got[2];
            memcpy(got, CMSG_DATA(c), sizeof(got));
            close(got[0]);
            close(got[1]);
            assert_int_equal(test_shm_status(r.lib), SHM_STATUS_PLAIN);
        }
        /* The connection goes on working. */
        raw_send_with_fds(&r, "more", 4, NULL, 0);
        assert_int_equal(shm_recv(r.lib, buf, sizeof(buf), 0), 4);
        assert_memory_equal(buf, "more", 4);
        if (kind != BR_VALID) {
            assert_int_equal(shm_send(r.lib, "back", 4, MSG_NOSIGNAL), 4);
            assert_int_equal(recv(r.peer, buf, sizeof(buf), 0), 4);
            assert_memory_equal(buf, "back", 4);
        }
    }
    close(channel[0]);
    raw_close(&r);
}

/* What the raw peer's answer carries after its region descriptor. */
enum answer_second {
    SECOND_SOCKET,     /* a release socket of its own */
    SECOND_NOT_SOCKET, /* a pipe where the release socket should be */
    SECOND_NONE,       /* nothing: the answer shares the library's channel (version 2) */
};

/*
 * The library offers first; the raw peer answers with an OFFER event on the library's
 * release channel carrying a bad region descriptor. Only shmsock speaks there: any bad
 * answer is a violation, found by the library's next send.
 */
static void run_answer_bad_offer(int type, enum bad_region kind, enum answer_second second_kind)
{
    struct raw r;
    raw_open(&r, type);
    assert_int_equal(shm_send(r.lib, "hi", 2, MSG_NOSIGNAL), 2);
    char buf[16];
    unsigned char record[SHMSOCK_EVENT_SIZE];
    int fds[2];
    /* The library's blind offer arrives with its payload. */
    union {
        struct cmsghdr align;
        char bytes[CMSG_SPACE(8 * sizeof(int))];
    } control;
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = control.bytes,
                         .msg_controllen = sizeof(control)};
    assert_int_equal(recvmsg(r.peer, &msg, MSG_CMSG_CLOEXEC), 2);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    assert_non_null(c);
    assert_int_equal(c->cmsg_len, CMSG_LEN(2 * sizeof(int)));
    memcpy(fds, CMSG_DATA(c), sizeof(fds));
    assert_int_equal(shmsock_region_attach(&r.lib_region, fds[0]), 0);
    close(fds[0]);
    r.lib_rel = fds[1];

    int extra;
    int bad = make_bad_region_fd(kind, &extra);
    int channel[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, channel), 0);
    int second = channel[1];
    int pipefd[2] = {-1, -1};
    if (second_kind == SECOND_NOT_SOCKET) {
        assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
        second = pipefd[0];
    }
    size_t count = second_kind == SECOND_NONE ? 1 : 2;
    struct shmsock_event offer = {.type = SHMSOCK_EVENT_OFFER};
    memcpy(record, &offer, sizeof(record));
    union {
        struct cmsghdr align;
        char bytes[CMSG_SPACE(2 * sizeof(int))];
    } offer_control;
    memset(&offer_control, 0, sizeof(offer_control));
    struct iovec offer_iov = {.iov_base = record, .iov_len = sizeof(record)};
    struct msghdr offer_msg = {.msg_iov = &offer_iov,
                               .msg_iovlen = 1,
                               .msg_control = offer_control.bytes,
                               .msg_controllen = sizeof(offer_control)};
    struct cmsghdr *oc = CMSG_FIRSTHDR(&offer_msg);
    oc->cmsg_level = SOL_SOCKET;
    oc->cmsg_type = SCM_RIGHTS;
    oc->cmsg_len = CMSG_LEN(count * sizeof(int));
    offer_msg.msg_controllen = CMSG_SPACE(count * sizeof(int));
    int offered[2] = {bad, second};
    memcpy(CMSG_DATA(oc), offered, count * sizeof(int));
    assert_int_equal(sendmsg(r.lib_rel, &offer_msg, MSG_NOSIGNAL), (ssize_t)sizeof(record));
    close(bad);
    close_if_open(&extra);
    close_if_open(&pipefd[0]);
    close_if_open(&pipefd[1]);
    close(channel[1]);
    if (kind == BR_VALID && second_kind != SECOND_NOT_SOCKET) {
        /* Control: a good answer; the library's next send proceeds. */
        assert_int_equal(shm_send(r.lib, "ok", 2, MSG_NOSIGNAL), 2);
        assert_int_equal(recv(r.peer, buf, sizeof(buf), 0), 2);
    } else {
        expect_send_fails(&r);
    }
    close(channel[0]);
    raw_close(&r);
}

#define OFFER_CASES(name, kind)                                                                    \
    static void test_blind_offer_##name(void **state)                                              \
    {                                                                                              \
        run_blind_bad_offer(*(int *)*state, kind);                                                 \
    }                                                                                              \
    static void test_answer_offer_##name(void **state)                                             \
    {                                                                                              \
        run_answer_bad_offer(*(int *)*state, kind, SECOND_SOCKET);                                 \
    }                                                                                              \
    static void test_answer_region_alone_##name(void **state)                                      \
    {                                                                                              \
        run_answer_bad_offer(*(int *)*state, kind, SECOND_NONE);                                   \
    }

OFFER_CASES(valid_control, BR_VALID)
OFFER_CASES(pipe, BR_PIPE)
OFFER_CASES(regular_file, BR_REGULAR_FILE)
OFFER_CASES(dev_zero, BR_DEV_ZERO)
OFFER_CASES(unsealed_memfd, BR_UNSEALED_MEMFD)
OFFER_CASES(partly_sealed_memfd, BR_PARTLY_SEALED_MEMFD)
OFFER_CASES(wrong_magic, BR_WRONG_MAGIC)
OFFER_CASES(smaller_than_header_claims, BR_SMALLER_THAN_CLAIMED)
OFFER_CASES(smaller_than_a_header, BR_SMALLER_THAN_HEADER)
OFFER_CASES(wrong_version, BR_WRONG_VERSION)
OFFER_CASES(bad_block_size, BR_BAD_BLOCK_SIZE)
OFFER_CASES(zero_blocks, BR_ZERO_BLOCKS)
OFFER_CASES(bad_ring_offset, BR_BAD_RING_OFFSET)

static void test_answer_offer_second_fd_not_socket(void **state)
{
    run_answer_bad_offer(*(int *)*state, BR_VALID, SECOND_NOT_SOCKET);
}

/* Two blind offers with different regions on the kernel socket: the second is a violation. */
static void test_blind_offer_twice(void **state)
{
    struct raw r;
    raw_open(&r, *(int *)*state);
    raw_negotiate_as_offerer(&r, EV);
    struct shmsock_region other;
    assert_int_equal(shmsock_region_create(&other, RAW_BLOCK_SIZE, RAW_BLOCK_COUNT), 0);
    int channel[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, channel), 0);
    /* Undo the switch for a moment: the second offer comes as plain payload. */
    __atomic_store_n(&own_header(&r)->switch_point, 0, __ATOMIC_RELEASE);
    int fds[2] = {other.memfd, channel[1]};
    raw_send_with_fds(&r, "again", 5, fds, 2);
    shmsock_region_release(&other);
    close(channel[1]);
    expect_recv_fails(&r);
    close(channel[0]);
    raw_close(&r);
}

/* The same kind of second offer, on a connection whose switch point the library knows: it
 * arrives where only events may be. */
static void test_blind_offer_after_switch(void **state)
{
    struct raw r;
    raw_open(&r, *(int *)*state);
    raw_negotiate_as_offerer(&r, EV);
    raw_send_valid(&r, EV, 0, "switched");
    lib_expect_message(&r, "switched");
    struct shmsock_region other;
    assert_int_equal(shmsock_region_create(&other, RAW_BLOCK_SIZE, RAW_BLOCK_COUNT), 0);
    int channel[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, channel), 0);
    struct shmsock_event offer = {.type = SHMSOCK_EVENT_OFFER};
    int fds[2] = {other.memfd, channel[1]};
    raw_send_with_fds(&r, &offer, sizeof(offer), fds, 2);
    shmsock_region_release(&other);
    close(channel[1]);
    expect_recv_fails(&r);
    close(channel[0]);
    raw_close(&r);
}

/* A second OFFER event on the library's release channel, after a good one. */
static void test_answer_offer_twice(void **state)
{
    struct raw r;
    raw_open(&r, *(int *)*state);
    struct shmsock_event data = lib_switch_and_send(&r, 0);
    (void)data;
    struct shmsock_region other;
    assert_int_equal(shmsock_region_create(&other, RAW_BLOCK_SIZE, RAW_BLOCK_COUNT), 0);
    int channel[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, channel), 0);
    struct shmsock_event offer = {.type = SHMSOCK_EVENT_OFFER};
    union {
        struct cmsghdr align;
        char bytes[CMSG_SPACE(2 * sizeof(int))];
    } control;
    memset(&control, 0, sizeof(control));
    struct iovec iov = {.iov_base = &offer, .iov_len = sizeof(offer)};
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = control.bytes,
                         .msg_controllen = sizeof(control)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(2 * sizeof(int));
    int fds[2] = {other.memfd, channel[1]};
    memcpy(CMSG_DATA(c), fds, sizeof(fds));
    assert_int_equal(sendmsg(r.lib_rel, &msg, MSG_NOSIGNAL), (ssize_t)sizeof(offer));
    shmsock_region_release(&other);
    close(channel[1]);
    /* Found when the library next reads its release channel: when it runs out of blocks. */
    ssize_t n = 0;
    int err = 0;
    for (int i = 0; i < (int)LIB_BLOCKS + 2; i++) {
        errno = 0;
        n = shm_send(r.lib, "mx", 2, MSG_NOSIGNAL);
        err = errno;
        if (n < 0)
            break;
    }
    if (n != -1 || !is_reset(err))
        fprintf(stderr, "    library shm_send returned %zd, errno %d (%s); expected EPROTO\n", n,
                err, strerror(err));
    expect_dead(&r);
    assert_int_equal(n, -1);
    assert_true(is_reset(err));
    close(channel[0]);
    raw_close(&r);
}

/*
 * A peer that claims to be inside a send forever (producer_active stuck at 1): the hint only
 * delays arming by a bounded moment. Each read that drains the ring returns promptly, the
 * library arms, the fd is not readable with nothing waiting, and later messages arrive.
 */
static void test_ring_producer_active_stuck(void **state)
{
    int type = *(int *)*state;
    struct raw r;
    raw_open(&r, type);
    raw_negotiate_as_offerer(&r, CO);
    __atomic_store_n(&own_header(&r)->producer_active, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 20; i++) {
        uint64_t armed_before = lib_event_arm(&r);
        raw_send_valid(&r, CO, (uint32_t)(i % 4), "hinted");
        double t0 = test_now_seconds();
        lib_expect_message(&r, "hinted");
        double took = test_now_seconds() - t0;
        assert_true(took < 0.25); /* the wait is 2 us; a loaded machine gets a wide margin */
        assert_true(lib_event_arm(&r) > armed_before); /* armed after the bounded wait */
        struct pollfd p = {.fd = r.lib, .events = POLLIN};
        assert_int_equal(poll(&p, 1, 0), 0); /* the doorbell was taken out: not readable */
    }
    check_healthy(type);
    raw_close(&r);
}

/* A protocol violation is not a closed pipe: a STREAM send that meets one (here: a bad
 * answer on the release channel) must not raise SIGPIPE, even without MSG_NOSIGNAL. */
static volatile sig_atomic_t sigpipes;

static void count_sigpipe(int sig)
{
    (void)sig;
    sigpipes++;
}

static void test_violation_raises_no_sigpipe(void **state)
{
    (void)state;
    struct raw r;
    raw_open(&r, SOCK_STREAM);
    assert_int_equal(shm_send(r.lib, "hi", 2, MSG_NOSIGNAL), 2);
    char buf[16];
    union {
        struct cmsghdr align;
        char bytes[CMSG_SPACE(8 * sizeof(int))];
    } control;
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = control.bytes,
                         .msg_controllen = sizeof(control)};
    assert_int_equal(recvmsg(r.peer, &msg, MSG_CMSG_CLOEXEC), 2);
    int fds[2];
    memcpy(fds, CMSG_DATA(CMSG_FIRSTHDR(&msg)), sizeof(fds));
    close(fds[0]);
    r.lib_rel = fds[1];
    struct shmsock_event junk = {.type = 99};
    assert_int_equal(send(r.lib_rel, &junk, sizeof(junk), MSG_NOSIGNAL), (ssize_t)sizeof(junk));
    struct sigaction sa = {.sa_handler = count_sigpipe}, old;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGPIPE, &sa, &old), 0);
    sigpipes = 0;
    errno = 0;
    ssize_t n = shm_send(r.lib, "x", 1, 0);
    int err = errno;
    assert_int_equal(sigaction(SIGPIPE, &old, NULL), 0);
    if (sigpipes != 0 || n != -1 || !is_reset(err))
        fprintf(stderr, "    shm_send returned %zd, errno %d (%s), %d SIGPIPE raised\n", n, err,
                strerror(err), (int)sigpipes);
    expect_dead(&r);
    raw_close(&r);
    assert_int_equal(sigpipes, 0);
    assert_int_equal(n, -1);
    assert_true(is_reset(err));
}

/* ---------------------------------------------------------------------------------------- */

#define BOTH(name)                                                                                 \
    cmocka_unit_test_prestate(test_##name, &stream_type),                                          \
        cmocka_unit_test_prestate(test_##name, &seqpacket_type)

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        BOTH(events_valid_control),
        BOTH(events_token_out_of_range),
        BOTH(events_token_huge),
        BOTH(events_offset_outside_region),
        BOTH(events_offset_not_at_token),
        BOTH(events_offset_huge),
        BOTH(events_length_beyond_blocks),
        BOTH(events_length_huge),
        BOTH(events_length_inconsistent_with_count),
        BOTH(events_count_zero),
        BOTH(events_count_past_end),
        BOTH(events_count_huge),
        BOTH(events_type_unknown),
        BOTH(events_type_zero),
        BOTH(events_type_release_on_carrier),
        BOTH(events_type_offer_after_switch),
        BOTH(events_reserved_set),
        BOTH(events_data_for_held_run),
        BOTH(events_truncated_record),
        BOTH(events_one_byte_record),
        BOTH(events_oversized_record),
        BOTH(events_garbage_block),
        BOTH(events_to_kernel_on_carrier),

        BOTH(ring_valid_control),
        BOTH(ring_token_out_of_range),
        BOTH(ring_token_huge),
        BOTH(ring_offset_outside_region),
        BOTH(ring_offset_not_at_token),
        BOTH(ring_offset_huge),
        BOTH(ring_length_beyond_blocks),
        BOTH(ring_length_huge),
        BOTH(ring_length_inconsistent_with_count),
        BOTH(ring_count_zero),
        BOTH(ring_count_past_end),
        BOTH(ring_count_huge),
        BOTH(ring_type_unknown),
        BOTH(ring_type_zero),
        BOTH(ring_type_release_in_event_ring),
        BOTH(ring_type_offer_in_event_ring),
        BOTH(ring_reserved_set),
        BOTH(ring_data_for_held_run),
        BOTH(ring_head_behind_tail),
        BOTH(ring_head_more_than_a_ring_ahead),
        BOTH(ring_head_huge),
        BOTH(ring_doorbell_for_unarmed_generation),
        BOTH(ring_kernel_data_without_to_kernel),
        BOTH(ring_garbage_on_carrier),

        BOTH(events_rewrite_geometry_then_use_it),
        BOTH(ring_rewrite_geometry_then_use_it),
        BOTH(events_rewrite_geometry_ignored),
        BOTH(ring_rewrite_geometry_ignored),
        BOTH(events_switch_point_behind_plain_read),
        BOTH(ring_switch_point_behind_plain_read),
        BOTH(events_switch_point_rewritten_later_ignored),
        BOTH(ring_switch_point_rewritten_later_ignored),
        BOTH(send_mode_unknown),
        BOTH(events_send_mode_flipped_later_ignored),
        BOTH(ring_send_mode_flipped_later_ignored),
        BOTH(events_magic_version_rewritten_later_ignored),
        BOTH(ring_magic_version_rewritten_later_ignored),

        BOTH(events_release_valid_control),
        BOTH(events_release_out_of_range),
        BOTH(events_release_huge_token),
        BOTH(events_release_not_outstanding),
        BOTH(events_release_double),
        BOTH(events_release_wrong_block_count),
        BOTH(events_release_block_count_zero),
        BOTH(events_release_wrong_offset),
        BOTH(events_release_length_set),
        BOTH(events_release_type_data),
        BOTH(events_release_type_unknown),
        BOTH(events_release_reserved_set),
        BOTH(events_release_channel_misaligned),
        BOTH(ring_release_valid_control),
        BOTH(ring_release_out_of_range),
        BOTH(ring_release_huge_token),
        BOTH(ring_release_not_outstanding),
        BOTH(ring_release_double),
        BOTH(ring_release_wrong_block_count),
        BOTH(ring_release_block_count_zero),
        BOTH(ring_release_wrong_offset),
        BOTH(ring_release_length_set),
        BOTH(ring_release_type_data),
        BOTH(ring_release_type_unknown),
        BOTH(ring_release_reserved_set),
        BOTH(ring_release_head_behind_tail),
        BOTH(ring_release_head_more_than_a_ring_ahead),

        BOTH(blind_offer_valid_control),
        BOTH(blind_offer_pipe),
        BOTH(blind_offer_regular_file),
        BOTH(blind_offer_dev_zero),
        BOTH(blind_offer_unsealed_memfd),
        BOTH(blind_offer_partly_sealed_memfd),
        BOTH(blind_offer_wrong_magic),
        BOTH(blind_offer_smaller_than_header_claims),
        BOTH(blind_offer_smaller_than_a_header),
        BOTH(blind_offer_wrong_version),
        BOTH(blind_offer_bad_block_size),
        BOTH(blind_offer_zero_blocks),
        BOTH(blind_offer_bad_ring_offset),
        BOTH(blind_offer_twice),
        BOTH(blind_offer_after_switch),
        BOTH(answer_offer_valid_control),
        BOTH(answer_offer_pipe),
        BOTH(answer_offer_regular_file),
        BOTH(answer_offer_dev_zero),
        BOTH(answer_offer_unsealed_memfd),
        BOTH(answer_offer_partly_sealed_memfd),
        BOTH(answer_offer_wrong_magic),
        BOTH(answer_offer_smaller_than_header_claims),
        BOTH(answer_offer_smaller_than_a_header),
        BOTH(answer_offer_wrong_version),
        BOTH(answer_offer_bad_block_size),
        BOTH(answer_offer_zero_blocks),
        BOTH(answer_offer_bad_ring_offset),
        BOTH(answer_region_alone_valid_control),
        BOTH(answer_region_alone_pipe),
        BOTH(answer_region_alone_regular_file),
        BOTH(answer_region_alone_dev_zero),
        BOTH(answer_region_alone_unsealed_memfd),
        BOTH(answer_region_alone_partly_sealed_memfd),
        BOTH(answer_region_alone_wrong_magic),
        BOTH(answer_region_alone_smaller_than_header_claims),
        BOTH(answer_region_alone_smaller_than_a_header),
        BOTH(answer_region_alone_wrong_version),
        BOTH(answer_region_alone_bad_block_size),
        BOTH(answer_region_alone_zero_blocks),
        BOTH(answer_region_alone_bad_ring_offset),
        BOTH(answer_offer_second_fd_not_socket),
        BOTH(answer_offer_twice),
        cmocka_unit_test(test_violation_raises_no_sigpipe),
        BOTH(ring_producer_active_stuck),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
