/*
 * resource_test.c - robustness: what a connection costs and that nothing grows without bound.
 *   - A peer that never reads (so never releases a block): after negotiation a non-blocking
 *     sender gets EAGAIN after a bounded amount (at most the region plus the kernel send
 *     buffer), a blocking sender blocks (SO_SNDTIMEO 200 ms -> EAGAIN), and 10,000 further
 *     attempts grow neither the heap (mallinfo2) nor the RSS nor the descriptor count nor the
 *     kernel socket's queue. The peer then reads every byte that was accepted, intact.
 *     STREAM and SEQPACKET, messages of 1 byte, 1000 bytes and 64 KiB.
 *   - A flood of idle connections: 500 connected pairs, first not negotiated, then negotiated.
 *     Measured from /proc/self: descriptors per side, memfd mappings and bytes per
 *     connection. Asserted against the README ("two regions (about 2 x 228 KiB of shared
 *     memory), and two descriptors per side besides the socket (its end of the release
 *     channel, and the region's memfd)"): at most 2 extra descriptors per side, at most 2
 *     regions (header + ceil(SO_SNDBUF/block) blocks each) of distinct shared memory per
 *     connection.
 *   - shm state never outlives the fd: closing one side removes exactly that side's
 *     mappings and descriptors; closing both returns /proc/self to the baseline.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/sockios.h>

#include <cmocka.h>

#include "shmsock.h"
#include "test_support.h"

#define PAIRS 500
#define ATTEMPTS 10000
#define HEAP_SLACK 4096L
#define RSS_SLACK (128L * 1024)
/* The documented region: docs/PROTOCOL.md "a 4096-byte header ... then block_count blocks",
 * block_count = ceil(SO_SNDBUF / block_size); README: "about 2 x 212 KiB" per connection.
 * If the layout changes on purpose, change the documents and this figure together. */
#define DOC_REGION_HEADER 20480u /* README: control page + two rings of 256 x 32 bytes */

/* ---- /proc/self ---- */

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

struct maps_info {
    int lines;           /* mappings of memfd:shmsock */
    uint64_t bytes;      /* their total size */
    int files;           /* distinct memfds (by inode) */
    uint64_t file_bytes; /* distinct memfds' sizes (largest mapping of each) */
    int writable;        /* mappings with write permission */
};

#define MAX_INODES 8192

static struct maps_info read_maps(void)
{
    static unsigned long inodes[MAX_INODES];
    static uint64_t sizes[MAX_INODES];
    struct maps_info mi = {0};
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    char line[512];
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strstr(line, "memfd:shmsock") == NULL)
            continue;
        unsigned long lo, hi, inode;
        char perms[8];
        assert_int_equal(sscanf(line, "%lx-%lx %7s %*s %*s %lu", &lo, &hi, perms, &inode), 4);
        uint64_t size = hi - lo;
        mi.lines++;
        mi.bytes += size;
        if (perms[1] == 'w')
            mi.writable++;
        int i;
        for (i = 0; i < mi.files; i++)
            if (inodes[i] == inode)
                break;
        if (i == mi.files) {
            assert_true(mi.files < MAX_INODES);
            inodes[mi.files] = inode;
            sizes[mi.files] = 0;
            mi.files++;
        }
        if (size > sizes[i])
            sizes[i] = size;
    }
    fclose(f);
    for (int i = 0; i < mi.files; i++)
        mi.file_bytes += sizes[i];
    return mi;
}

static long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    assert_non_null(f);
    long size, resident;
    assert_int_equal(fscanf(f, "%ld %ld", &size, &resident), 2);
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *type_name(int type)
{
    return type == SOCK_STREAM ? "STREAM" : "SEQPACKET";
}

/* ---- a peer that never reads ---- */

static void never_reading_peer(int type, size_t msg)
{
    int a, b;
    test_connect_pair(&test_shm_api, type, &a, &b);
    test_handshake(&test_shm_api, a, b);
    assert_int_equal(test_shm_status(a), SHM_STATUS_SHM);
    assert_int_equal(test_shm_status(b), SHM_STATUS_SHM);

    int sndbuf = 0;
    socklen_t sl = sizeof(sndbuf);
    assert_int_equal(shm_getsockopt(a, SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl), 0);
    uint64_t region = ((uint64_t)sndbuf + SHM_DEFAULT_BLOCK_SIZE - 1) / SHM_DEFAULT_BLOCK_SIZE *
                      SHM_DEFAULT_BLOCK_SIZE;
    uint64_t bound = region + (uint64_t)sndbuf;

    char *buf = malloc(msg);
    assert_non_null(buf);
    test_fill_pattern(buf, msg, 7);

    /* Fill: non-blocking sends until EAGAIN. */
    uint64_t accepted = 0, sends = 0;
    for (;;) {
        ssize_t n = shm_send(a, buf, msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            fail_msg("%s %zu: send failed: %s", type_name(type), msg, strerror(errno));
        }
        accepted += (uint64_t)n;
        sends++;
        if (accepted > bound)
            fail_msg("%s %zu-byte sends: %llu bytes accepted without a reader (bound %llu = "
                     "region %llu + SO_SNDBUF %d)",
                     type_name(type), msg, (unsigned long long)accepted, (unsigned long long)bound,
                     (unsigned long long)region, sndbuf);
    }

    /* Blocking: SO_SNDTIMEO 200 ms. */
    struct timeval tv = {0, 200000};
    assert_int_equal(shm_setsockopt(a, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
    test_watchdog(30, "blocking send with SO_SNDTIMEO to a peer that never reads");
    int64_t t0 = now_ms();
    errno = 0;
    ssize_t n = shm_send(a, buf, msg, MSG_NOSIGNAL);
    int64_t waited = now_ms() - t0;
    int err = errno;
    if (n != -1 || (err != EAGAIN && err != EWOULDBLOCK))
        fail_msg("%s %zu: blocking send with no free block: expected -1 EAGAIN after 200 ms, "
                 "got %zd errno %d (%s) after %lld ms",
                 type_name(type), msg, n, err, strerror(err), (long long)waited);
    if (waited < 150 || waited > 2000)
        fail_msg("%s %zu: SO_SNDTIMEO 200 ms, but the send returned after %lld ms", type_name(type),
                 msg, (long long)waited);

    /* 10,000 further attempts: nothing may grow. */
    int outq_before = -1, outq_after = -1;
    assert_int_equal(ioctl(a, SIOCOUTQ, &outq_before), 0);
    int fds_before = count_fds();
    struct mallinfo2 m0 = mallinfo2();
    long rss0 = rss_bytes();
    for (int i = 0; i < ATTEMPTS; i++) {
        ssize_t r = shm_send(a, buf, msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (r != -1 || (errno != EAGAIN && errno != EWOULDBLOCK))
            fail_msg("%s %zu: attempt %d: expected EAGAIN, got %zd (%s)", type_name(type), msg, i,
                     r, strerror(errno));
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(shm_send(a, buf, msg, MSG_NOSIGNAL), -1);
    struct mallinfo2 m1 = mallinfo2();
    long rss1 = rss_bytes();
    assert_int_equal(ioctl(a, SIOCOUTQ, &outq_after), 0);
    long heap_growth = (long)m1.uordblks - (long)m0.uordblks;
    print_message("    %-9s %5zu-byte messages: %llu sends (%llu bytes) accepted before EAGAIN "
                  "(bound %llu); blocking send EAGAIN after %lld ms; after %d more attempts: "
                  "heap %+ld B, RSS %+ld B, kernel queue %d -> %d B\n",
                  type_name(type), msg, (unsigned long long)sends, (unsigned long long)accepted,
                  (unsigned long long)bound, (long long)waited, ATTEMPTS, heap_growth, rss1 - rss0,
                  outq_before, outq_after);
    if (heap_growth > HEAP_SLACK)
        fail_msg("heap grew by %ld bytes over %d refused sends", heap_growth, ATTEMPTS);
    if (rss1 - rss0 > RSS_SLACK)
        fail_msg("RSS grew by %ld bytes over %d refused sends", rss1 - rss0, ATTEMPTS);
    assert_int_equal(count_fds(), fds_before);
    assert_int_equal(outq_after, outq_before);

    /* The peer finally reads: exactly what was accepted, intact. */
    char *in = malloc(msg + 1);
    assert_non_null(in);
    uint64_t got = 0;
    for (;;) {
        ssize_t r = shm_recv(b, in, type == SOCK_STREAM ? msg : msg + 1, MSG_DONTWAIT);
        if (r < 0) {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
            break;
        }
        if (type == SOCK_SEQPACKET) {
            assert_int_equal(r, msg);
            assert_memory_equal(in, buf, msg);
        } else {
            size_t at = (size_t)(got % msg);
            for (ssize_t i = 0; i < r; i++)
                if (in[i] != buf[(at + (size_t)i) % msg])
                    fail_msg("STREAM byte %llu corrupted", (unsigned long long)(got + i));
        }
        got += (uint64_t)r;
    }
    assert_int_equal(got, accepted);
    test_watchdog(0, NULL);
    free(in);
    free(buf);
    assert_int_equal(shm_close(a), 0);
    assert_int_equal(shm_close(b), 0);
}

static void test_never_reading_peer_stream(void **state)
{
    (void)state;
    never_reading_peer(SOCK_STREAM, 1);
    never_reading_peer(SOCK_STREAM, 1000);
    never_reading_peer(SOCK_STREAM, 65536);
}

static void test_never_reading_peer_seqpacket(void **state)
{
    (void)state;
    never_reading_peer(SOCK_SEQPACKET, 1);
    never_reading_peer(SOCK_SEQPACKET, 1000);
    never_reading_peer(SOCK_SEQPACKET, 65536);
}

/* ---- a flood of idle connections ---- */

static void raise_fd_limit(void)
{
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < 8 * PAIRS + 64) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    if (rl.rlim_cur < 8 * PAIRS + 64)
        skip(); /* cannot hold the connections at all */
}

static void idle_flood(int type)
{
    static int a[PAIRS], b[PAIRS];
    raise_fd_limit();
    test_watchdog(120, "idle connection flood");
    int fds0 = count_fds();
    struct maps_info m0 = read_maps();
    long rss0 = rss_bytes();

    /* Not negotiated: a kernel connection and nothing else. */
    for (int i = 0; i < PAIRS; i++)
        test_connect_pair(&test_shm_api, type, &a[i], &b[i]);
    int fds_plain = count_fds() - fds0;
    struct maps_info mp = read_maps();
    for (int i = 0; i < PAIRS; i++) {
        assert_int_equal(shm_close(a[i]), 0);
        assert_int_equal(shm_close(b[i]), 0);
    }
    assert_int_equal(count_fds(), fds0);
    assert_int_equal(mp.lines, m0.lines);
    assert_int_equal(fds_plain, 2 * PAIRS);

    /* Negotiated. */
    for (int i = 0; i < PAIRS; i++) {
        test_connect_pair(&test_shm_api, type, &a[i], &b[i]);
        test_handshake(&test_shm_api, a[i], b[i]);
    }
    int fds_shm = count_fds() - fds0;
    struct maps_info m1 = read_maps();
    long rss1 = rss_bytes();
    int sndbuf = 0;
    socklen_t sl = sizeof(sndbuf);
    assert_int_equal(shm_getsockopt(a[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl), 0);
    uint64_t region_bound = DOC_REGION_HEADER + ((uint64_t)sndbuf + SHM_DEFAULT_BLOCK_SIZE - 1) /
                                                    SHM_DEFAULT_BLOCK_SIZE * SHM_DEFAULT_BLOCK_SIZE;

    double fds_per_side = (double)fds_shm / (2.0 * PAIRS);
    double maps_per_conn = (double)(m1.lines - m0.lines) / PAIRS;
    double mapped_per_conn = (double)(m1.bytes - m0.bytes) / PAIRS;
    double regions_per_conn = (double)(m1.files - m0.files) / PAIRS;
    double shared_per_conn = (double)(m1.file_bytes - m0.file_bytes) / PAIRS;
    double rss_per_conn = (double)(rss1 - rss0) / PAIRS;
    print_message("    %-9s %d idle pairs: not negotiated %.2f fds/side, 0 mappings; negotiated: "
                  "%.2f fds/side (%.2f extra), %.1f regions/conn of %.1f KiB distinct shared "
                  "memory per connection (bound %.1f KiB), %.1f mappings/conn (%d writable in "
                  "all) = %.1f KiB mapped per connection (both ends in this process), RSS "
                  "%+.1f KiB per connection\n",
                  type_name(type), PAIRS, (double)fds_plain / (2.0 * PAIRS), fds_per_side,
                  fds_per_side - 1.0, regions_per_conn, shared_per_conn / 1024.0,
                  2.0 * (double)region_bound / 1024.0, maps_per_conn, m1.writable - m0.writable,
                  mapped_per_conn / 1024.0, rss_per_conn / 1024.0);
    /* Checked at the end, so the close checks below run whatever the figures are. */
    char bound_error[512] = "";
    if (fds_shm > 3 * 2 * PAIRS)
        snprintf(bound_error, sizeof(bound_error),
                 "%s: %.2f descriptors per side, documented: the socket plus two (its end of "
                 "the one release channel, and the region memfd kept for shmsock-ss)",
                 type_name(type), fds_per_side);
    if (m1.files - m0.files > 2 * PAIRS)
        snprintf(bound_error, sizeof(bound_error),
                 "%s: %.2f regions per connection, documented: two", type_name(type),
                 regions_per_conn);
    if (m1.file_bytes - m0.file_bytes > 2 * region_bound * PAIRS)
        snprintf(bound_error, sizeof(bound_error),
                 "%s: %.1f KiB shared memory per connection, documented: two regions of about "
                 "212 KiB, each a 4096-byte header + ceil(SO_SNDBUF/4096) blocks (bound %.1f KiB)",
                 type_name(type), shared_per_conn / 1024.0, 2.0 * (double)region_bound / 1024.0);

    /* shm state never outlives the fd: close one side of every pair. */
    for (int i = 0; i < PAIRS; i++)
        assert_int_equal(shm_close(a[i]), 0);
    int fds_half = count_fds() - fds0;
    struct maps_info mh = read_maps();
    print_message("    %-9s after closing one side of each pair: %.2f fds and %.2f mappings "
                  "left per remaining side\n",
                  type_name(type), (double)fds_half / PAIRS, (double)(mh.lines - m0.lines) / PAIRS);
    assert_int_equal(fds_half, fds_shm / 2);
    assert_int_equal(mh.lines - m0.lines, (m1.lines - m0.lines) / 2);
    for (int i = 0; i < PAIRS; i++)
        assert_int_equal(shm_close(b[i]), 0);
    struct maps_info m2 = read_maps();
    assert_int_equal(count_fds(), fds0);
    assert_int_equal(m2.lines, m0.lines);
    assert_int_equal(m2.bytes, m0.bytes);
    test_watchdog(0, NULL);
    if (bound_error[0] != '\0')
        fail_msg("%s", bound_error);
}

static void test_idle_flood_stream(void **state)
{
    (void)state;
    idle_flood(SOCK_STREAM);
}

static void test_idle_flood_seqpacket(void **state)
{
    (void)state;
    idle_flood(SOCK_SEQPACKET);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_never_reading_peer_stream),
        cmocka_unit_test(test_never_reading_peer_seqpacket),
        cmocka_unit_test(test_idle_flood_stream),
        cmocka_unit_test(test_idle_flood_seqpacket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
