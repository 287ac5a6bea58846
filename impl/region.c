/* region.c - create, check and map regions. See region.h. */
#define _GNU_SOURCE
#include "region.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define REQUIRED_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

static bool is_power_of_two(uint32_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

int shmsock_region_create(struct shmsock_region *region, uint32_t block_size, uint32_t block_count)
{
    memset(region, 0, sizeof(*region));
    region->memfd = -1;
    if (!is_power_of_two(block_size) || block_size < SHMSOCK_MIN_BLOCK_SIZE ||
        block_size > SHMSOCK_MAX_BLOCK_SIZE || block_count == 0 ||
        block_count > SHMSOCK_MAX_BLOCK_COUNT)
        return -EINVAL;

    uint64_t size = SHMSOCK_REGION_HEADER_SIZE + (uint64_t)block_size * block_count;
    int fd = memfd_create("shmsock", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, (off_t)size) < 0 || fcntl(fd, F_ADD_SEALS, REQUIRED_SEALS) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        int err = -errno;
        close(fd);
        return err;
    }
    struct shmsock_region_header *header = base;
    header->magic = SHMSOCK_REGION_MAGIC;
    header->version = SHMSOCK_PROTOCOL_VERSION;
    header->header_size = SHMSOCK_REGION_HEADER_SIZE;
    header->block_size = block_size;
    header->block_count = block_count;
    header->region_size = size;
    header->ring_slots = SHMSOCK_RING_SLOTS;
    header->event_ring_offset = SHMSOCK_EVENT_RING_OFFSET;
    header->release_ring_offset = SHMSOCK_RELEASE_RING_OFFSET;
    __atomic_store_n(&header->switch_point, 0, __ATOMIC_RELEASE);

    region->base = base;
    region->memfd = fd;
    region->writable = true;
    region->geometry = (struct shmsock_geometry){
        .header_size = SHMSOCK_REGION_HEADER_SIZE,
        .block_size = block_size,
        .block_count = block_count,
        .region_size = size,
    };
    return 0;
}

/* A shmem file sealed against shrinking, growing and further sealing. */
static bool is_sealed_shmem(int fd, struct stat *st)
{
    if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode))
        return false;
    int seals = fcntl(fd, F_GET_SEALS);
    return seals >= 0 && (seals & REQUIRED_SEALS) == REQUIRED_SEALS;
}

bool shmsock_region_recognize(int fd, struct shmsock_region_candidate *candidate)
{
    memset(candidate, 0, sizeof(*candidate));
    if (!is_sealed_shmem(fd, &candidate->st))
        return false;
    /* The whole header in one read when the file is long enough, so attaching needs no more. */
    size_t want = candidate->st.st_size >= (off_t)sizeof(candidate->header)
                      ? sizeof(candidate->header)
                      : sizeof(candidate->header.magic);
    if (candidate->st.st_size < (off_t)want ||
        pread(fd, &candidate->header, want, 0) != (ssize_t)want)
        return false;
    candidate->whole_header = want == sizeof(candidate->header);
    return candidate->header.magic == SHMSOCK_REGION_MAGIC;
}

bool shmsock_region_fd_has_magic(int fd)
{
    struct shmsock_region_candidate candidate;
    return shmsock_region_recognize(fd, &candidate);
}

int shmsock_region_attach_candidate(struct shmsock_region *region, int fd,
                                    const struct shmsock_region_candidate *candidate)
{
    memset(region, 0, sizeof(*region));
    region->memfd = -1;
    if (!candidate->whole_header || candidate->st.st_size < (off_t)SHMSOCK_REGION_HEADER_SIZE)
        return -EPROTO;
    /* The header was copied once, with pread, by recognize; it is checked here, and the
     * mapping comes after. */
    struct shmsock_geometry geometry;
    if (shmsock_region_check_header(&candidate->header, (uint64_t)candidate->st.st_size,
                                    &geometry) < 0)
        return -EPROTO;
    void *base = mmap(NULL, geometry.region_size, PROT_READ, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED)
        return -errno;
    region->base = base;
    region->writable = false;
    region->geometry = geometry;
    return 0;
}

int shmsock_region_attach(struct shmsock_region *region, int fd)
{
    struct shmsock_region_candidate candidate;
    if (!shmsock_region_recognize(fd, &candidate)) {
        memset(region, 0, sizeof(*region));
        region->memfd = -1;
        return -EPROTO;
    }
    return shmsock_region_attach_candidate(region, fd, &candidate);
}

void shmsock_region_release(struct shmsock_region *region)
{
    if (region->base != NULL)
        munmap(region->base, region->geometry.region_size);
    if (region->memfd >= 0)
        close(region->memfd);
    region->base = NULL;
    region->memfd = -1;
}

void shmsock_region_publish_switch(struct shmsock_region *region, uint64_t plain_units)
{
    struct shmsock_region_header *header = region->base;
    __atomic_store_n(&header->switch_point, plain_units + 1, __ATOMIC_RELEASE);
}

bool shmsock_region_read_switch(const struct shmsock_region *region, uint64_t *plain_units)
{
    const struct shmsock_region_header *header = region->base;
    uint64_t value = __atomic_load_n(&header->switch_point, __ATOMIC_ACQUIRE);
    if (value == 0)
        return false;
    *plain_units = value - 1;
    return true;
}

void shmsock_region_mark_reader_careful(struct shmsock_region *region)
{
    struct shmsock_region_header *header = region->base;
    __atomic_store_n(&header->reader_careful, 1u, __ATOMIC_RELEASE);
}

void shmsock_region_unmark_reader_careful(struct shmsock_region *region)
{
    struct shmsock_region_header *header = region->base;
    __atomic_store_n(&header->reader_careful, 0u, __ATOMIC_RELEASE);
}

bool shmsock_region_reader_careful(const struct shmsock_region *region)
{
    const struct shmsock_region_header *header = region->base;
    return __atomic_load_n(&header->reader_careful, __ATOMIC_ACQUIRE) != 0;
}
