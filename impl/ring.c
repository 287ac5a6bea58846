/* ring.c - see ring.h. */
#include "ring.h"

#include <errno.h>
#include <string.h>

static uint64_t *head_of(const struct shmsock_region *region, enum shmsock_ring_kind kind)
{
    struct shmsock_region_header *header = region->base;
    return kind == SHMSOCK_RING_EVENTS ? &header->event_head : &header->release_head;
}

static unsigned char *slot_of(const struct shmsock_region *region, enum shmsock_ring_kind kind,
                              uint64_t index)
{
    uint32_t offset =
        kind == SHMSOCK_RING_EVENTS ? SHMSOCK_EVENT_RING_OFFSET : SHMSOCK_RELEASE_RING_OFFSET;
    return (unsigned char *)region->base + shmsock_ring_slot_offset(offset, index);
}

void shmsock_ring_push(struct shmsock_region *own, enum shmsock_ring_kind kind,
                       const struct shmsock_event *event)
{
    uint64_t *head = head_of(own, kind);
    uint64_t index = __atomic_load_n(head, __ATOMIC_RELAXED);
    shmsock_event_encode(event, slot_of(own, kind, index));
    __atomic_store_n(head, index + 1, __ATOMIC_RELEASE);
}

int64_t shmsock_ring_available(const struct shmsock_region *peer, enum shmsock_ring_kind kind,
                               uint64_t tail)
{
    uint64_t head = __atomic_load_n(head_of(peer, kind), __ATOMIC_ACQUIRE);
    return shmsock_ring_check_head(head, tail, SHMSOCK_RING_SLOTS);
}

int shmsock_ring_read(const struct shmsock_region *peer, enum shmsock_ring_kind kind, uint64_t tail,
                      struct shmsock_event *out)
{
    unsigned char copy[SHMSOCK_EVENT_SIZE];
    memcpy(copy, slot_of(peer, kind, tail), sizeof(copy));
    return shmsock_event_decode(copy, out);
}
