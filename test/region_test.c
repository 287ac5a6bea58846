/*
 * region_test.c - unit tests for impl/region.{h,c}: creating sealed memfd regions, checking
 * headers copied from a peer, attaching a peer's region read-only, and the switch point.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "impl/region.h"

#define REQUIRED_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

/* ---------------------------------------------------------------------------------------- */
/* helpers                                                                                  */

static bool fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

/* Field by field: the struct has padding. */
static void assert_geometry_equal(const struct shmsock_geometry *a,
                                  const struct shmsock_geometry *b)
{
    assert_int_equal(a->header_size, b->header_size);
    assert_int_equal(a->block_size, b->block_size);
    assert_int_equal(a->block_count, b->block_count);
    assert_int_equal(a->region_size, b->region_size);
}

/* A valid header for the given geometry (header_size = SHMSOCK_REGION_HEADER_SIZE). */
static struct shmsock_region_header valid_header(uint32_t block_size, uint32_t block_count)
{
    struct shmsock_region_header h;
    memset(&h, 0, sizeof(h));
    h.magic = SHMSOCK_REGION_MAGIC;
    h.version = SHMSOCK_PROTOCOL_VERSION;
    h.header_size = SHMSOCK_REGION_HEADER_SIZE;
    h.block_size = block_size;
    h.block_count = block_count;
    h.region_size = (uint64_t)SHMSOCK_REGION_HEADER_SIZE + (uint64_t)block_size * block_count;
    h.ring_slots = SHMSOCK_RING_SLOTS;
    h.event_ring_offset = SHMSOCK_EVENT_RING_OFFSET;
    h.release_ring_offset = SHMSOCK_RELEASE_RING_OFFSET;
    return h;
}

/*
 * A memfd of `file_size` bytes holding `header` at offset 0, with `seals` added (0: none).
 * Returns the fd (the caller closes it).
 */
static int make_memfd(const struct shmsock_region_header *header, uint64_t file_size, int seals)
{
    int fd = memfd_create("region_test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)file_size), 0);
    if (header != NULL) {
        size_t n = sizeof(*header) < file_size ? sizeof(*header) : (size_t)file_size;
        assert_int_equal(pwrite(fd, header, n, 0), (ssize_t)n);
    }
    if (seals != 0)
        assert_int_equal(fcntl(fd, F_ADD_SEALS, seals), 0);
    return fd;
}

/* Attach `fd`, expect `expected`; on failure the region must be left unmapped. */
static void expect_attach(int fd, int expected)
{
    struct shmsock_region region;
    memset(&region, 0x5a, sizeof(region));
    int rc = shmsock_region_attach(&region, fd);
    assert_int_equal(rc, expected);
    if (rc != 0) {
        assert_null(region.base);
        assert_int_equal(region.memfd, -1);
    }
    /* attach never takes ownership of fd. */
    assert_true(fd_is_open(fd));
    shmsock_region_release(&region);
    assert_true(fd_is_open(fd));
}

/* Attach a sealed memfd built from `header` and `file_size`; expect -EPROTO. */
static void expect_header_rejected(const struct shmsock_region_header *header, uint64_t file_size)
{
    int fd = make_memfd(header, file_size, REQUIRED_SEALS);
    expect_attach(fd, -EPROTO);
    close(fd);
}

/* The permission string ("r--s", ...) of the mapping that starts at `base`, from maps. */
static bool mapping_perms(const void *base, char perms[5])
{
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    char line[512];
    bool found = false;
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long start = 0, end = 0;
        char p[5] = {0};
        if (sscanf(line, "%lx-%lx %4s", &start, &end, p) == 3 &&
            start == (unsigned long)(uintptr_t)base) {
            memcpy(perms, p, 5);
            found = true;
            break;
        }
    }
    fclose(f);
    return found;
}

/* ---------------------------------------------------------------------------------------- */
/* create                                                                                   */

static void check_created(uint32_t block_size, uint32_t block_count)
{
    struct shmsock_region region;
    assert_int_equal(shmsock_region_create(&region, block_size, block_count), 0);
    uint64_t size = (uint64_t)SHMSOCK_REGION_HEADER_SIZE + (uint64_t)block_size * block_count;

    assert_non_null(region.base);
    assert_true(region.memfd >= 0);
    assert_true(region.writable);
    assert_int_equal(region.geometry.header_size, SHMSOCK_REGION_HEADER_SIZE);
    assert_int_equal(region.geometry.block_size, block_size);
    assert_int_equal(region.geometry.block_count, block_count);
    assert_int_equal(region.geometry.region_size, size);

    struct stat st;
    assert_int_equal(fstat(region.memfd, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal((uint64_t)st.st_size, size);

    /* Close-on-exec, as MFD_CLOEXEC. */
    assert_true(fcntl(region.memfd, F_GETFD) & FD_CLOEXEC);

    /* The header in memory. */
    const struct shmsock_region_header *h = region.base;
    assert_int_equal(h->magic, SHMSOCK_REGION_MAGIC);
    assert_int_equal(h->version, SHMSOCK_PROTOCOL_VERSION);
    assert_int_equal(h->header_size, SHMSOCK_REGION_HEADER_SIZE);
    assert_int_equal(h->block_size, block_size);
    assert_int_equal(h->block_count, block_count);
    assert_int_equal(h->region_size, size);
    assert_int_equal(h->switch_point, 0);

    /* Its own header passes the peer-side check. */
    struct shmsock_region_header copy;
    memcpy(&copy, region.base, sizeof(copy));
    struct shmsock_geometry g;
    assert_int_equal(shmsock_region_check_header(&copy, size, &g), 0);
    assert_geometry_equal(&g, &region.geometry);

    /* Block addresses. */
    assert_ptr_equal(shmsock_region_block(&region, 0),
                     (unsigned char *)region.base + SHMSOCK_REGION_HEADER_SIZE);
    assert_ptr_equal(shmsock_region_block(&region, block_count - 1),
                     (unsigned char *)region.base + size - block_size);

    assert_true(shmsock_region_fd_has_magic(region.memfd));

    int memfd = region.memfd;
    shmsock_region_release(&region);
    assert_null(region.base);
    assert_int_equal(region.memfd, -1);
    assert_false(fd_is_open(memfd));
    /* Releasing twice is safe. */
    shmsock_region_release(&region);
}

static void test_create_sizes(void **state)
{
    (void)state;
    check_created(SHMSOCK_MIN_BLOCK_SIZE, 1);
    check_created(1024, 16);
    check_created(4096, 3);
    check_created(65536, 7);
    check_created(SHMSOCK_MAX_BLOCK_SIZE, 2);
    check_created(SHMSOCK_MIN_BLOCK_SIZE, SHMSOCK_MAX_BLOCK_COUNT);
    /* The largest geometry (4 GiB of blocks): the memfd is sparse, nothing is touched. */
    check_created(SHMSOCK_MAX_BLOCK_SIZE, SHMSOCK_MAX_BLOCK_COUNT);
}

static void expect_create_einval(uint32_t block_size, uint32_t block_count)
{
    struct shmsock_region region;
    memset(&region, 0x5a, sizeof(region));
    assert_int_equal(shmsock_region_create(&region, block_size, block_count), -EINVAL);
    assert_null(region.base);
    assert_int_equal(region.memfd, -1);
    shmsock_region_release(&region);
}

static void test_create_rejects_bad_geometry(void **state)
{
    (void)state;
    expect_create_einval(0, 4);
    expect_create_einval(512, 4);
    expect_create_einval(1023, 4);
    expect_create_einval(1536, 4);
    expect_create_einval(3072, 4);
    expect_create_einval(SHMSOCK_MAX_BLOCK_SIZE * 2, 4);
    expect_create_einval(0x80000000u, 4);
    expect_create_einval(UINT32_MAX, 4);
    expect_create_einval(1024, 0);
    expect_create_einval(1024, SHMSOCK_MAX_BLOCK_COUNT + 1);
    expect_create_einval(1024, UINT32_MAX);
}

static void test_create_seals_applied(void **state)
{
    (void)state;
    struct shmsock_region region;
    assert_int_equal(shmsock_region_create(&region, 1024, 8), 0);
    uint64_t size = region.geometry.region_size;

    int seals = fcntl(region.memfd, F_GET_SEALS);
    assert_true(seals >= 0);
    assert_int_equal(seals & REQUIRED_SEALS, REQUIRED_SEALS);
    /* The owner still writes into it: no write seal. */
    assert_int_equal(seals & F_SEAL_WRITE, 0);

    /* Neither shrinking nor growing is possible. */
    errno = 0;
    assert_int_equal(ftruncate(region.memfd, 0), -1);
    assert_int_equal(errno, EPERM);
    errno = 0;
    assert_int_equal(ftruncate(region.memfd, (off_t)size - 1), -1);
    assert_int_equal(errno, EPERM);
    errno = 0;
    assert_int_equal(ftruncate(region.memfd, (off_t)size + 4096), -1);
    assert_int_equal(errno, EPERM);
    /* Growing by writing past the end is refused too. */
    char byte = 1;
    errno = 0;
    assert_int_equal(pwrite(region.memfd, &byte, 1, (off_t)size), -1);
    assert_int_equal(errno, EPERM);

    /* No further seals may be added (F_SEAL_SEAL). */
    errno = 0;
    assert_int_equal(fcntl(region.memfd, F_ADD_SEALS, F_SEAL_WRITE), -1);
    assert_int_equal(errno, EPERM);

    struct stat st;
    assert_int_equal(fstat(region.memfd, &st), 0);
    assert_int_equal((uint64_t)st.st_size, size);

    /* The owner's mapping is writable: the last byte of the last block. */
    unsigned char *last = shmsock_region_block(&region, 7) + 1023;
    *last = 0xab;
    unsigned char readback = 0;
    assert_int_equal(pread(region.memfd, &readback, 1, (off_t)size - 1), 1);
    assert_int_equal(readback, 0xab);

    shmsock_region_release(&region);
}

/* ---------------------------------------------------------------------------------------- */
/* attach                                                                                   */

static void test_attach_valid_region(void **state)
{
    (void)state;
    struct shmsock_region own;
    assert_int_equal(shmsock_region_create(&own, 2048, 5), 0);
    memcpy(shmsock_region_block(&own, 4), "hello", 5);

    struct shmsock_region peer;
    assert_int_equal(shmsock_region_attach(&peer, own.memfd), 0);
    assert_non_null(peer.base);
    assert_ptr_not_equal(peer.base, own.base);
    assert_false(peer.writable);
    assert_int_equal(peer.memfd, -1);
    assert_geometry_equal(&peer.geometry, &own.geometry);
    /* The same memory, seen through the second mapping. */
    assert_memory_equal(shmsock_region_block(&peer, 4), "hello", 5);
    memcpy(shmsock_region_block(&own, 0), "again", 5);
    assert_memory_equal(shmsock_region_block(&peer, 0), "again", 5);

    shmsock_region_release(&peer);
    assert_null(peer.base);
    /* Releasing the peer mapping does not close the fd it was attached from. */
    assert_true(fd_is_open(own.memfd));
    shmsock_region_release(&own);
}

static void test_attach_maps_read_only(void **state)
{
    (void)state;
    struct shmsock_region own;
    assert_int_equal(shmsock_region_create(&own, 1024, 4), 0);
    struct shmsock_region peer;
    assert_int_equal(shmsock_region_attach(&peer, own.memfd), 0);

    char perms[5] = {0};
    assert_true(mapping_perms(peer.base, perms));
    /* readable, not writable, not executable, shared */
    assert_string_equal(perms, "r--s");

    /* Our own mapping, for contrast, is writable. */
    assert_true(mapping_perms(own.base, perms));
    assert_string_equal(perms, "rw-s");

    /* A write through the peer mapping faults: tried in a child, so this process lives. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        *(volatile unsigned char *)shmsock_region_block(&peer, 0) = 1;
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGSEGV);
    assert_int_equal(*shmsock_region_block(&own, 0), 0);

    shmsock_region_release(&peer);
    shmsock_region_release(&own);
}

static void test_attach_rejects_pipe(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    expect_attach(p[0], -EPROTO);
    expect_attach(p[1], -EPROTO);
    assert_false(shmsock_region_fd_has_magic(p[0]));
    close(p[0]);
    close(p[1]);
}

static void test_attach_rejects_socket(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    expect_attach(sv[0], -EPROTO);
    close(sv[0]);
    close(sv[1]);
}

static void test_attach_rejects_regular_file(void **state)
{
    (void)state;
    char path[] = "/tmp/region_test_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    /* A file that holds a perfectly valid header: still not a sealed shmem file. */
    struct shmsock_region_header h = valid_header(1024, 4);
    assert_int_equal(ftruncate(fd, (off_t)h.region_size), 0);
    assert_int_equal(pwrite(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
    expect_attach(fd, -EPROTO);
    assert_false(shmsock_region_fd_has_magic(fd));
    close(fd);
}

static void test_attach_rejects_dev_zero(void **state)
{
    (void)state;
    int fd = open("/dev/zero", O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    expect_attach(fd, -EPROTO);
    close(fd);
}

static void test_attach_rejects_unsealed_memfd(void **state)
{
    (void)state;
    struct shmsock_region_header h = valid_header(1024, 4);
    /* Not sealed at all. */
    int fd = make_memfd(&h, h.region_size, 0);
    expect_attach(fd, -EPROTO);
    assert_false(shmsock_region_fd_has_magic(fd));
    close(fd);
    /* A memfd created without MFD_ALLOW_SEALING. */
    fd = memfd_create("region_test_nosealing", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)h.region_size), 0);
    assert_int_equal(pwrite(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
    expect_attach(fd, -EPROTO);
    close(fd);
    /* Each required seal missing in turn. */
    const int partial[] = {
        F_SEAL_GROW | F_SEAL_SEAL,
        F_SEAL_SHRINK | F_SEAL_SEAL,
        F_SEAL_SHRINK | F_SEAL_GROW,
    };
    for (size_t i = 0; i < sizeof(partial) / sizeof(partial[0]); i++) {
        fd = make_memfd(&h, h.region_size, partial[i]);
        expect_attach(fd, -EPROTO);
        close(fd);
    }
    /* Control: with all three seals the same memfd is accepted. */
    fd = make_memfd(&h, h.region_size, REQUIRED_SEALS);
    expect_attach(fd, 0);
    assert_true(shmsock_region_fd_has_magic(fd));
    close(fd);
}

static void test_attach_rejects_too_small(void **state)
{
    (void)state;
    /* Header claims 8 blocks of 1024 (region_size 12288), file holds only 2 blocks. */
    struct shmsock_region_header h = valid_header(1024, 8);
    expect_header_rejected(&h, SHMSOCK_REGION_HEADER_SIZE + 2 * 1024);
    /* Header claims 8 blocks but region_size matches the (smaller) file. */
    h.region_size = SHMSOCK_REGION_HEADER_SIZE + 2 * 1024;
    expect_header_rejected(&h, h.region_size);
    /* One byte short of the last block. */
    h = valid_header(1024, 8);
    h.region_size -= 1;
    expect_header_rejected(&h, h.region_size);
    /* Smaller than the header page itself. */
    h = valid_header(1024, 1);
    expect_header_rejected(&h, sizeof(h));
    expect_header_rejected(&h, SHMSOCK_REGION_HEADER_SIZE - 1);
    /* Empty sealed memfd. */
    expect_header_rejected(NULL, 0);
    /* Correct size but all zeroes. */
    expect_header_rejected(NULL, SHMSOCK_REGION_HEADER_SIZE + 1024);
}

static void test_attach_rejects_bad_header_fields(void **state)
{
    (void)state;
    struct shmsock_region_header h;

    h = valid_header(1024, 4);
    h.magic ^= 1;
    expect_header_rejected(&h, h.region_size);
    h = valid_header(1024, 4);
    h.magic = 0;
    expect_header_rejected(&h, h.region_size);
    h = valid_header(1024, 4);
    h.magic = __builtin_bswap64(SHMSOCK_REGION_MAGIC);
    expect_header_rejected(&h, h.region_size);

    h = valid_header(1024, 4);
    h.version = 0;
    expect_header_rejected(&h, h.region_size);
    h = valid_header(1024, 4);
    h.version = SHMSOCK_PROTOCOL_VERSION + 1;
    expect_header_rejected(&h, h.region_size);

    /* Block size not a power of two, too small, too big; file sized to match the claim. */
    const uint32_t bad_sizes[] = {0, 1, 512, 1000, 1023, 1025, 1536, 3072, 2 * 1024 * 1024};
    for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
        h = valid_header(bad_sizes[i], 2);
        if (h.region_size < SHMSOCK_REGION_HEADER_SIZE + 1024)
            h.region_size = SHMSOCK_REGION_HEADER_SIZE + 1024;
        expect_header_rejected(&h, h.region_size);
    }

    /* block_count 0 and too big. */
    h = valid_header(1024, 0);
    expect_header_rejected(&h, SHMSOCK_REGION_HEADER_SIZE + 1024);
    h = valid_header(1024, 1);
    h.region_size = SHMSOCK_REGION_HEADER_SIZE + 1024;
    h.block_count = 0;
    expect_header_rejected(&h, h.region_size);
    h = valid_header(1024, SHMSOCK_MAX_BLOCK_COUNT + 1);
    expect_header_rejected(&h, h.region_size);

    /* region_size different from the file's size, either way. */
    h = valid_header(1024, 4);
    uint64_t file_size = h.region_size;
    h.region_size = file_size + 1024;
    expect_header_rejected(&h, file_size);
    h.region_size = file_size - 1024;
    expect_header_rejected(&h, file_size);
    h.region_size = 0;
    expect_header_rejected(&h, file_size);
    /* File bigger than the header claims. */
    h = valid_header(1024, 4);
    expect_header_rejected(&h, h.region_size + 4096);

    /* header_size smaller than the header struct / misaligned. */
    h = valid_header(1024, 4);
    h.header_size = 0;
    expect_header_rejected(&h, h.region_size);
    h = valid_header(1024, 4);
    h.header_size = 4095;
    expect_header_rejected(&h, h.region_size);

    /* Control: the unmodified header is accepted. */
    h = valid_header(1024, 4);
    int fd = make_memfd(&h, h.region_size, REQUIRED_SEALS);
    expect_attach(fd, 0);
    close(fd);
}

/* ---------------------------------------------------------------------------------------- */
/* check_header                                                                             */

static int check(const struct shmsock_region_header *h, uint64_t file_size)
{
    struct shmsock_geometry g;
    memset(&g, 0, sizeof(g));
    int rc = shmsock_region_check_header(h, file_size, &g);
    if (rc == 0) {
        assert_int_equal(g.header_size, h->header_size);
        assert_int_equal(g.block_size, h->block_size);
        assert_int_equal(g.block_count, h->block_count);
        assert_int_equal(g.region_size, file_size);
    } else {
        assert_int_equal(rc, -EPROTO);
    }
    return rc;
}

static bool power_of_two(uint64_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

static void test_check_header_magic_version(void **state)
{
    (void)state;
    struct shmsock_region_header h = valid_header(1024, 4);
    assert_int_equal(check(&h, h.region_size), 0);
    for (int bit = 0; bit < 64; bit++) {
        h = valid_header(1024, 4);
        h.magic ^= (uint64_t)1 << bit;
        assert_int_equal(check(&h, h.region_size), -EPROTO);
    }
    /* Versions other than ours, the one before it included. */
    const uint32_t versions[] = {
        0,         SHMSOCK_PROTOCOL_VERSION - 1, SHMSOCK_PROTOCOL_VERSION + 1, 0x100, 0x01000000u,
        UINT32_MAX};
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        h = valid_header(1024, 4);
        h.version = versions[i];
        assert_int_equal(check(&h, h.region_size), -EPROTO);
    }
}

static void test_check_header_block_size_edges(void **state)
{
    (void)state;
    const uint32_t sizes[] = {0,
                              1,
                              2,
                              512,
                              1000,
                              1023,
                              1024,
                              1025,
                              1536,
                              2047,
                              2048,
                              4096,
                              65535,
                              65536,
                              SHMSOCK_MAX_BLOCK_SIZE - 1,
                              SHMSOCK_MAX_BLOCK_SIZE,
                              SHMSOCK_MAX_BLOCK_SIZE + 1,
                              SHMSOCK_MAX_BLOCK_SIZE * 2,
                              0x40000000u,
                              0x80000000u,
                              0xfffffc00u,
                              UINT32_MAX};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint32_t bs = sizes[i];
        bool ok = power_of_two(bs) && bs >= SHMSOCK_MIN_BLOCK_SIZE && bs <= SHMSOCK_MAX_BLOCK_SIZE;
        struct shmsock_region_header h = valid_header(bs, 3);
        assert_int_equal(check(&h, h.region_size), ok ? 0 : -EPROTO);
    }
    /* Every power of two from 2^0 to 2^31: exactly 2^10..2^20 accepted. */
    for (int shift = 0; shift < 32; shift++) {
        struct shmsock_region_header h = valid_header(1u << shift, 2);
        int expected = (shift >= 10 && shift <= 20) ? 0 : -EPROTO;
        assert_int_equal(check(&h, h.region_size), expected);
    }
}

static void test_check_header_block_count_edges(void **state)
{
    (void)state;
    const uint32_t counts[] = {0,
                               1,
                               2,
                               SHMSOCK_MAX_BLOCK_COUNT - 1,
                               SHMSOCK_MAX_BLOCK_COUNT,
                               SHMSOCK_MAX_BLOCK_COUNT + 1,
                               0x10000u,
                               0x80000000u,
                               UINT32_MAX};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        uint32_t bc = counts[i];
        bool ok = bc >= 1 && bc <= SHMSOCK_MAX_BLOCK_COUNT;
        struct shmsock_region_header h = valid_header(1024, bc);
        assert_int_equal(check(&h, h.region_size), ok ? 0 : -EPROTO);
    }
    /* The largest geometry: 4 GiB of blocks, sizes computed in 64 bits. */
    struct shmsock_region_header h = valid_header(SHMSOCK_MAX_BLOCK_SIZE, SHMSOCK_MAX_BLOCK_COUNT);
    assert_int_equal(h.region_size, (uint64_t)SHMSOCK_REGION_HEADER_SIZE + (1ull << 32));
    assert_int_equal(check(&h, h.region_size), 0);
    /* ... and the same with a file/region size truncated to 32 bits. */
    h.region_size = (uint32_t)h.region_size;
    assert_int_equal(check(&h, h.region_size), -EPROTO);
}

static void test_check_header_size_edges(void **state)
{
    (void)state;
    struct shmsock_region_header h = valid_header(1024, 4);
    uint64_t size = h.region_size;
    const int64_t deltas[] = {-4096, -1024, -1, 1, 1024, 4096};
    /* region_size must equal the file size. */
    for (size_t i = 0; i < sizeof(deltas) / sizeof(deltas[0]); i++) {
        h = valid_header(1024, 4);
        assert_int_equal(check(&h, size + (uint64_t)deltas[i]), -EPROTO);
        h.region_size = size + (uint64_t)deltas[i];
        assert_int_equal(check(&h, size), -EPROTO);
    }
    /* Agreeing region_size and file size, but too small for the blocks claimed. */
    for (size_t i = 0; i < 3; i++) {
        h = valid_header(1024, 4);
        h.region_size = size + (uint64_t)deltas[i];
        assert_int_equal(check(&h, h.region_size), -EPROTO);
    }
    h = valid_header(1024, 4);
    h.region_size = 0;
    assert_int_equal(check(&h, 0), -EPROTO);
    /* Exactly the size needed: accepted. */
    h = valid_header(1024, 4);
    assert_int_equal(check(&h, size), 0);
}

static void test_check_header_header_size_edges(void **state)
{
    (void)state;
    const uint32_t values[] = {0,    1,     32,    40,    48,          63,
                               64,   65,    128,   4095,  4096,        4097,
                               4160, 65535, 65536, 65600, 0x80000000u, UINT32_MAX};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        uint32_t hs = values[i];
        struct shmsock_region_header h = valid_header(1024, 2);
        h.header_size = hs;
        h.region_size = (uint64_t)hs + 2 * 1024;
        int rc = check(&h, h.region_size);
        /* Too small to hold the header page and both rings, or absurdly large: rejected. */
        if (hs < SHMSOCK_REGION_HEADER_SIZE || hs > 65536)
            assert_int_equal(rc, -EPROTO);
        /* The standard one is accepted. */
        if (hs == SHMSOCK_REGION_HEADER_SIZE)
            assert_int_equal(rc, 0);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* switch point                                                                             */

static void test_switch_point(void **state)
{
    (void)state;
    struct shmsock_region own;
    assert_int_equal(shmsock_region_create(&own, 1024, 2), 0);
    struct shmsock_region peer;
    assert_int_equal(shmsock_region_attach(&peer, own.memfd), 0);

    uint64_t units = 777;
    assert_false(shmsock_region_read_switch(&own, &units));
    assert_false(shmsock_region_read_switch(&peer, &units));
    assert_int_equal(units, 777); /* untouched while not switched */

    /* Switching after zero plain units is distinguishable from "not switched". */
    shmsock_region_publish_switch(&own, 0);
    assert_true(shmsock_region_read_switch(&own, &units));
    assert_int_equal(units, 0);
    units = 777;
    assert_true(shmsock_region_read_switch(&peer, &units));
    assert_int_equal(units, 0);

    shmsock_region_publish_switch(&own, 123456789);
    assert_true(shmsock_region_read_switch(&peer, &units));
    assert_int_equal(units, 123456789);

    shmsock_region_publish_switch(&own, UINT64_MAX - 1);
    assert_true(shmsock_region_read_switch(&peer, &units));
    assert_int_equal(units, UINT64_MAX - 1);

    /* Publishing does not disturb the geometry fields a later attach checks. */
    struct shmsock_region again;
    assert_int_equal(shmsock_region_attach(&again, own.memfd), 0);
    assert_true(shmsock_region_read_switch(&again, &units));
    assert_int_equal(units, UINT64_MAX - 1);
    shmsock_region_release(&again);

    shmsock_region_release(&peer);
    shmsock_region_release(&own);
}

static void test_reader_careful(void **state)
{
    (void)state;
    struct shmsock_region own;
    assert_int_equal(shmsock_region_create(&own, 1024, 2), 0);
    struct shmsock_region peer;
    assert_int_equal(shmsock_region_attach(&peer, own.memfd), 0);
    assert_false(shmsock_region_reader_careful(&own));
    assert_false(shmsock_region_reader_careful(&peer));
    shmsock_region_mark_reader_careful(&own);
    assert_true(shmsock_region_reader_careful(&own));
    assert_true(shmsock_region_reader_careful(&peer));
    /* Independent of the switch point. */
    uint64_t units;
    assert_false(shmsock_region_read_switch(&peer, &units));
    shmsock_region_release(&peer);
    shmsock_region_release(&own);
}

static void test_fd_has_magic(void **state)
{
    (void)state;
    struct shmsock_region_header h = valid_header(1024, 1);
    int fd = make_memfd(&h, h.region_size, REQUIRED_SEALS);
    assert_true(shmsock_region_fd_has_magic(fd));
    close(fd);
    h.magic = 0;
    fd = make_memfd(&h, h.region_size, REQUIRED_SEALS);
    assert_false(shmsock_region_fd_has_magic(fd));
    close(fd);
    /* Sealed but shorter than the magic. */
    fd = make_memfd(NULL, 4, REQUIRED_SEALS);
    assert_false(shmsock_region_fd_has_magic(fd));
    close(fd);
    /* A closed descriptor. */
    fd = make_memfd(NULL, 4, 0);
    close(fd);
    assert_false(shmsock_region_fd_has_magic(fd));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_sizes),
        cmocka_unit_test(test_create_rejects_bad_geometry),
        cmocka_unit_test(test_create_seals_applied),
        cmocka_unit_test(test_attach_valid_region),
        cmocka_unit_test(test_attach_maps_read_only),
        cmocka_unit_test(test_attach_rejects_pipe),
        cmocka_unit_test(test_attach_rejects_socket),
        cmocka_unit_test(test_attach_rejects_regular_file),
        cmocka_unit_test(test_attach_rejects_dev_zero),
        cmocka_unit_test(test_attach_rejects_unsealed_memfd),
        cmocka_unit_test(test_attach_rejects_too_small),
        cmocka_unit_test(test_attach_rejects_bad_header_fields),
        cmocka_unit_test(test_check_header_magic_version),
        cmocka_unit_test(test_check_header_block_size_edges),
        cmocka_unit_test(test_check_header_block_count_edges),
        cmocka_unit_test(test_check_header_size_edges),
        cmocka_unit_test(test_check_header_header_size_edges),
        cmocka_unit_test(test_switch_point),
        cmocka_unit_test(test_reader_careful),
        cmocka_unit_test(test_fd_has_magic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
