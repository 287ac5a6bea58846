/*
 * active_producer_test.c - the producer_active hint of coalesced mode (docs/PROTOCOL.md,
 * "Active producer"), watched through the regions of an in-process pair:
 *   - a writer sets the hint while it is inside a send, and clears it when the send ends
 *     and while the send waits for blocks;
 *   - a reader that drains the ring while the writer's hint is set waits for the event being
 *     written instead of arming (so the writer rings no doorbell for it).
 * The safety side (a hint stuck at 1 only delays arming) is in hostile_peer_test.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/fd_table.h"
#include "impl/conn.h"
#include "impl/region.h"
#include "shmsock.h"
#include "test_support.h"

/* The header of the region fd sends from (this process owns both ends of the pair). */
static struct shmsock_region_header *own_header_of(int fd)
{
    struct shmsock_entry *entry = shmsock_fd_get(fd);
    assert_non_null(entry);
    struct shmsock_region_header *header = entry->conn->producer.own.base;
    shmsock_fd_put(entry); /* the pair stays open for the whole test */
    assert_non_null(header);
    return header;
}

static uint64_t load(const uint64_t *field)
{
    return __atomic_load_n(field, __ATOMIC_ACQUIRE);
}

/* A STREAM pair on shared memory both ways, a's region `region_size` bytes (0: default). */
static void make_pair(int sv[2], int region_size)
{
    assert_int_equal(shm_socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    if (region_size > 0)
        assert_int_equal(
            shm_setsockopt(sv[0], SOL_SHMSOCK, SHM_REGION_SIZE, &region_size, sizeof(region_size)),
            0);
    char byte = 'h';
    for (int step = 0; step < 3; step++) { /* offers cross; the first sender switches last */
        int from = step % 2 == 0 ? sv[0] : sv[1], to = step % 2 == 0 ? sv[1] : sv[0];
        assert_int_equal(shm_send(from, &byte, 1, 0), 1);
        assert_int_equal(shm_recv(to, &byte, 1, 0), 1);
    }
    for (int i = 0; i < 2; i++) {
        int status = -1;
        socklen_t len = sizeof(status);
        assert_int_equal(shm_getsockopt(sv[i], SOL_SHMSOCK, SHM_STATUS, &status, &len), 0);
        assert_int_equal(status, SHM_STATUS_SHM);
    }
}

/* ---- the writer's side ---- */

struct big_send {
    int fd;
    size_t len;
    ssize_t result; /* atomic: 0 while sending, then bytes sent or -1 */
};

static void *send_thread(void *arg)
{
    struct big_send *s = arg;
    char *buf = malloc(s->len);
    memset(buf, 'x', s->len);
    size_t done = 0;
    bool failed = false;
    while (done < s->len && !failed) {
        ssize_t n = shm_send(s->fd, buf + done, s->len - done, MSG_NOSIGNAL);
        if (n <= 0)
            failed = true;
        else
            done += (size_t)n;
    }
    free(buf);
    __atomic_store_n(&s->result, failed ? (ssize_t)-1 : (ssize_t)done, __ATOMIC_RELEASE);
    return NULL;
}

static void drain(int fd, size_t len)
{
    char *buf = malloc(65536);
    size_t got = 0;
    while (got < len) {
        ssize_t n = shm_recv(fd, buf, 65536, 0);
        assert_true(n > 0);
        got += (size_t)n;
    }
    free(buf);
}

#define BIG_REGION (16 << 20)
#define BIG_SEND (8u << 20)

/* Seen from the reader's side: 1 while the writer copies a large send in, 0 once it is done. */
static void test_writer_sets_hint_inside_send(void **state)
{
    (void)state;
    int sv[2];
    make_pair(sv, BIG_REGION);
    const struct shmsock_region_header *writer = own_header_of(sv[0]);
    assert_int_equal(load(&writer->producer_active), 0);
    bool seen = false;
    /* Each send copies 8 MiB (milliseconds): a watcher that is scheduled at all sees it. */
    for (int attempt = 0; attempt < 20 && !seen; attempt++) {
        struct big_send s = {.fd = sv[0], .len = BIG_SEND};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, send_thread, &s), 0);
        double until = test_now_seconds() + 5;
        while (!seen && test_now_seconds() < until &&
               __atomic_load_n(&s.result, __ATOMIC_ACQUIRE) == 0)
            seen = load(&writer->producer_active) == 1;
        drain(sv[1], BIG_SEND);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(__atomic_load_n(&s.result, __ATOMIC_ACQUIRE), (ssize_t)BIG_SEND);
        assert_int_equal(load(&writer->producer_active), 0); /* the send has ended */
    }
    assert_true(seen);
    shm_close(sv[0]);
    shm_close(sv[1]);
}

/* A send that waits for blocks (the reader is not reading) clears the hint while it waits,
 * so the reader never waits for a writer that is itself waiting. */
static void test_writer_clears_hint_while_waiting(void **state)
{
    (void)state;
    int sv[2];
    make_pair(sv, 0); /* the default region: 52 blocks */
    const struct shmsock_region_header *writer = own_header_of(sv[0]);
    /* Make the reader look busy (not armed since the writer last rang), so that no doorbell
     * clears the hint during the send: only the wait for blocks may. */
    struct shmsock_entry *w = shmsock_fd_get(sv[0]);
    assert_non_null(w);
    uint64_t last_rung = w->conn->wakeup.last_event_doorbell;
    shmsock_fd_put(w);
    assert_true(last_rung != UINT64_MAX); /* the handshake rang */
    __atomic_store_n(&own_header_of(sv[1])->event_arm, last_rung, __ATOMIC_RELEASE);
    struct big_send s = {.fd = sv[0], .len = 1u << 20}; /* far more than the region */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, send_thread, &s), 0);
    /* Wait until the writer has filled what it can of the region and sleeps for releases
     * (blocks in use stop changing while the send goes on). */
    double until = test_now_seconds() + 5;
    uint64_t before = 0, after = 0;
    do {
        before = load(&writer->counters.blocks_in_use);
        usleep(50000);
        after = load(&writer->counters.blocks_in_use);
    } while ((after == 0 || after != before) && test_now_seconds() < until);
    assert_true(after > 0 && after == before);
    assert_int_equal(__atomic_load_n(&s.result, __ATOMIC_ACQUIRE), 0); /* still sending */
    assert_int_equal(load(&writer->producer_active), 0);
    drain(sv[1], 1u << 20);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(__atomic_load_n(&s.result, __ATOMIC_ACQUIRE), 1 << 20);
    assert_int_equal(load(&writer->producer_active), 0);
    shm_close(sv[0]);
    shm_close(sv[1]);
}

/* ---- the reader's side ---- */

struct follower {
    int fd;                          /* the writer */
    const uint64_t *reader_releases; /* the reader's release_head */
    /* Per trial, set by the test before it bumps `round`: */
    void *prepared; /* the writer's next message, reserved and written (zero-copy) */
    uint64_t after; /* commit it once the reader's release_head passes this */
    int round;      /* atomic: trials started; the follower answers each */
    int finished;   /* atomic: trials the follower has committed */
};

/* For each trial: commit the prepared message as soon as the reader has released the
 * previous one, i.e. while the reader is between taking that message and deciding whether
 * to arm. Commit is the shortest path to a visible event (the payload is already written). */
static void *follower_thread(void *arg)
{
    struct follower *f = arg;
    for (int done = 0;; done++) {
        int round;
        while ((round = __atomic_load_n(&f->round, __ATOMIC_ACQUIRE)) == done)
            ;
        if (round < 0)
            return NULL;
        double until = test_now_seconds() + 2;
        while (load(f->reader_releases) <= f->after && test_now_seconds() < until)
            ;
        assert_int_equal(shm_send_commit(f->fd, f->prepared, 1, MSG_NOSIGNAL), 1);
        __atomic_store_n(&f->finished, done + 1, __ATOMIC_RELEASE);
    }
}

/*
 * The writer is inside its next send (hint set) when the reader takes a message and finds
 * the ring empty: the reader waits for that send's event instead of arming. Whether the
 * follower thread publishes within the reader's wait (at most 2 us) depends on scheduling
 * (and on how much a sanitizer slows it), so the test counts: out of TRIALS, at least one
 * read must end without arming. Without the wait the reader arms on every one: it decides
 * within nanoseconds of its release, before the follower can have published.
 */
#define TRIALS 20000

static void test_reader_waits_for_active_writer(void **state)
{
    (void)state;
    int sv[2];
    make_pair(sv, 0);
    struct shmsock_region_header *writer = own_header_of(sv[0]);
    const struct shmsock_region_header *reader = own_header_of(sv[1]);
    struct follower f = {.fd = sv[0], .reader_releases = &reader->release_head};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, follower_thread, &f), 0);
    int not_armed = 0;
    char byte;
    for (int i = 0; i < TRIALS; i++) {
        assert_int_equal(shm_send(sv[0], "m", 1, MSG_NOSIGNAL), 1);
        f.prepared = shm_send_alloc(sv[0], 1, 0);
        assert_non_null(f.prepared);
        *(char *)f.prepared = 'f';
        f.after = load(&reader->release_head);
        /* The follower's commit is about to run: say so now, as a send would itself. */
        __atomic_store_n(&writer->producer_active, 1, __ATOMIC_RELEASE);
        uint64_t armed = load(&reader->event_arm);
        __atomic_store_n(&f.round, i + 1, __ATOMIC_RELEASE);
        assert_int_equal(shm_recv(sv[1], &byte, 1, 0), 1);
        if (load(&reader->event_arm) == armed)
            not_armed++;
        while (__atomic_load_n(&f.finished, __ATOMIC_ACQUIRE) != i + 1)
            ;
        assert_int_equal(shm_recv(sv[1], &byte, 1, 0), 1); /* the follower's message */
        assert_int_equal(byte, 'f');
    }
    __atomic_store_n(&f.round, -1, __ATOMIC_RELEASE);
    assert_int_equal(pthread_join(t, NULL), 0);
    print_message("    %d of %d reads ended without arming\n", not_armed, TRIALS);
    assert_true(not_armed >= 1);
    shm_close(sv[0]);
    shm_close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writer_sets_hint_inside_send),
        cmocka_unit_test(test_writer_clears_hint_while_waiting),
        cmocka_unit_test(test_reader_waits_for_active_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
