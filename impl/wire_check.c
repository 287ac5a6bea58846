/* wire_check.c - checks of a peer's region header and ring heads. See wire_check.h. */
#include "wire_check.h"

#include <errno.h>
#include <stdbool.h>

static bool is_power_of_two(uint32_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

int shmsock_region_check_header(const struct shmsock_region_header *copy, uint64_t file_size,
                                struct shmsock_geometry *out)
{
    if (copy->magic != SHMSOCK_REGION_MAGIC || copy->version != SHMSOCK_PROTOCOL_VERSION)
        return -EPROTO;
    if (copy->header_size < SHMSOCK_REGION_HEADER_SIZE || copy->header_size % 64 != 0 ||
        copy->header_size > 65536)
        return -EPROTO;
    /* The rings must be exactly where and as large as this version puts them. */
    if (copy->ring_slots != SHMSOCK_RING_SLOTS ||
        copy->event_ring_offset != SHMSOCK_EVENT_RING_OFFSET ||
        copy->release_ring_offset != SHMSOCK_RELEASE_RING_OFFSET)
        return -EPROTO;
    if (!is_power_of_two(copy->block_size) || copy->block_size < SHMSOCK_MIN_BLOCK_SIZE ||
        copy->block_size > SHMSOCK_MAX_BLOCK_SIZE)
        return -EPROTO;
    if (copy->block_count == 0 || copy->block_count > SHMSOCK_MAX_BLOCK_COUNT)
        return -EPROTO;
    uint64_t needed = (uint64_t)copy->header_size + (uint64_t)copy->block_size * copy->block_count;
    if (copy->region_size != file_size || needed > file_size)
        return -EPROTO;
    *out = (struct shmsock_geometry){
        .header_size = copy->header_size,
        .block_size = copy->block_size,
        .block_count = copy->block_count,
        .region_size = file_size,
    };
    return 0;
}

int64_t shmsock_ring_check_head(uint64_t head, uint64_t tail, uint32_t slots)
{
    if (head < tail || head - tail > slots)
        return -EPROTO;
    return (int64_t)(head - tail);
}
