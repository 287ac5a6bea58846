/* event.c - event record codec and validation. See event.h. */
#include "event.h"

#include <errno.h>
#include <string.h>

void shmsock_event_encode(const struct shmsock_event *event, unsigned char out[SHMSOCK_EVENT_SIZE])
{
    memcpy(out, event, SHMSOCK_EVENT_SIZE);
}

int shmsock_event_decode(const unsigned char in[SHMSOCK_EVENT_SIZE], struct shmsock_event *event)
{
    memcpy(event, in, SHMSOCK_EVENT_SIZE);
    if (event->reserved != 0)
        return -EPROTO;
    switch (event->type) {
    case SHMSOCK_EVENT_DATA:
    case SHMSOCK_EVENT_RELEASE:
    case SHMSOCK_EVENT_OFFER:
    case SHMSOCK_EVENT_DOORBELL:
    case SHMSOCK_EVENT_TO_KERNEL:
        return 0;
    default:
        return -EPROTO;
    }
}

uint32_t shmsock_blocks_for_length(uint64_t length, uint32_t block_size)
{
    if (length == 0)
        return 1;
    uint64_t blocks;
    if (block_size != 0 && (block_size & (block_size - 1)) == 0) /* always, for a region */
        blocks = (length >> __builtin_ctz(block_size)) + ((length & (block_size - 1)) != 0);
    else
        blocks = length / block_size + (length % block_size != 0);
    return blocks > UINT32_MAX ? UINT32_MAX : (uint32_t)blocks;
}

/* The run token..token+count-1 lies inside the region and offset names its first block. */
static int check_run(const struct shmsock_event *event, const struct shmsock_geometry *geometry)
{
    if (event->block_count == 0 || event->token >= geometry->block_count ||
        event->block_count > geometry->block_count - event->token)
        return -EPROTO;
    uint64_t expected_offset =
        (uint64_t)geometry->header_size + (uint64_t)event->token * geometry->block_size;
    if (event->offset != expected_offset)
        return -EPROTO;
    return 0;
}

int shmsock_event_check_data(const struct shmsock_event *event,
                             const struct shmsock_geometry *geometry)
{
    if (event->type != SHMSOCK_EVENT_DATA || check_run(event, geometry) < 0)
        return -EPROTO;
    if (event->length > (uint64_t)event->block_count * geometry->block_size ||
        shmsock_blocks_for_length(event->length, geometry->block_size) != event->block_count)
        return -EPROTO;
    return 0;
}

int shmsock_event_check_release(const struct shmsock_event *event,
                                const struct shmsock_geometry *geometry)
{
    if (event->type != SHMSOCK_EVENT_RELEASE || event->length != 0)
        return -EPROTO;
    return check_run(event, geometry);
}

struct shmsock_event shmsock_event_data(const struct shmsock_geometry *geometry, uint32_t token,
                                        uint32_t block_count, uint64_t length)
{
    return (struct shmsock_event){
        .type = SHMSOCK_EVENT_DATA,
        .token = token,
        .offset = (uint64_t)geometry->header_size + (uint64_t)token * geometry->block_size,
        .length = length,
        .block_count = block_count,
    };
}

struct shmsock_event shmsock_event_release(const struct shmsock_geometry *geometry, uint32_t token,
                                           uint32_t block_count)
{
    struct shmsock_event event = shmsock_event_data(geometry, token, block_count, 0);
    event.type = SHMSOCK_EVENT_RELEASE;
    return event;
}
