/*
 * fuzz_ring_head.c - libFuzzer target for shmsock_ring_check_head (a ring head loaded from a
 * peer's region against our tail), then the slots it exposes, found with the wire layout's
 * shmsock_ring_slot_offset and decoded (as shmsock_ring_read does, which adds only the copy
 * out of the mapping). Invariant: an accepted head is never behind the tail nor more than a
 * ring ahead, and reading every available slot stays inside the ring.
 *
 * Input: head (8 bytes), tail (8 bytes), then bytes that fill the ring slots.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "impl/event.h"
#include "impl/wire.h"
#include "impl/wire_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A fake peer region: the header and both rings, no blocks (heap, so ASan sees overruns). */
static unsigned char *region_memory;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 16)
        return 0;
    uint64_t head, tail;
    memcpy(&head, data, 8);
    memcpy(&tail, data + 8, 8);
    int64_t available = shmsock_ring_check_head(head, tail, SHMSOCK_RING_SLOTS);
    if (available >= 0 &&
        (head < tail || head - tail > SHMSOCK_RING_SLOTS || (uint64_t)available != head - tail))
        abort();
    if (available < 0 && head >= tail && head - tail <= SHMSOCK_RING_SLOTS)
        abort(); /* rejected a valid head */

    if (region_memory == NULL)
        region_memory = calloc(1, SHMSOCK_REGION_HEADER_SIZE);
    if (region_memory == NULL)
        return 0;
    size_t fill = size - 16;
    if (fill > SHMSOCK_REGION_HEADER_SIZE - SHMSOCK_EVENT_RING_OFFSET)
        fill = SHMSOCK_REGION_HEADER_SIZE - SHMSOCK_EVENT_RING_OFFSET;
    memset(region_memory + SHMSOCK_EVENT_RING_OFFSET, 0,
           SHMSOCK_REGION_HEADER_SIZE - SHMSOCK_EVENT_RING_OFFSET);
    memcpy(region_memory + SHMSOCK_EVENT_RING_OFFSET, data + 16, fill);
    struct shmsock_region_header *h = (struct shmsock_region_header *)region_memory;
    h->event_head = head;
    h->release_head = head;
    const uint64_t heads[2] = {h->event_head, h->release_head};
    const uint32_t rings[2] = {SHMSOCK_EVENT_RING_OFFSET, SHMSOCK_RELEASE_RING_OFFSET};
    for (int kind = 0; kind < 2; kind++) {
        int64_t n = shmsock_ring_check_head(heads[kind], tail, SHMSOCK_RING_SLOTS);
        if (n != available)
            abort();
        for (int64_t i = 0; i < n && i < 2 * (int64_t)SHMSOCK_RING_SLOTS; i++) {
            uint64_t offset = shmsock_ring_slot_offset(rings[kind], tail + (uint64_t)i);
            if (offset < SHMSOCK_EVENT_RING_OFFSET ||
                offset + SHMSOCK_RING_SLOT_SIZE > SHMSOCK_REGION_HEADER_SIZE)
                abort(); /* a slot outside the rings */
            unsigned char copy[SHMSOCK_EVENT_SIZE];
            memcpy(copy, region_memory + offset, sizeof(copy));
            struct shmsock_event event;
            (void)shmsock_event_decode(copy, &event);
        }
    }
    return 0;
}
