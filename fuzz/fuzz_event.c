/*
 * fuzz_event.c - libFuzzer target for event records from a peer: shmsock_event_decode, then
 * shmsock_event_check_data and shmsock_event_check_release against a geometry taken from the
 * input (what a peer's region header could make us believe), and the consumer / producer token
 * lists fed the same record. Invariant checked: whatever check_data accepts lies entirely
 * inside the region (offset + length <= region_size, offset >= header_size).
 *
 * Input: 32 bytes of record, then optional geometry bytes (block size exponent, block count).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "impl/event.h"
#include "impl/token_list.h"
#include "impl/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < SHMSOCK_EVENT_SIZE)
        return 0;
    struct shmsock_event event;
    if (shmsock_event_decode(data, &event) < 0)
        return 0;

    /* Geometry as a (validated) region header would give it. */
    uint32_t shift = size > SHMSOCK_EVENT_SIZE ? data[SHMSOCK_EVENT_SIZE] % 11 : 2; /* 1K..1M */
    uint32_t count = 8;
    if (size >= SHMSOCK_EVENT_SIZE + 3)
        count = 1 + ((uint32_t)data[SHMSOCK_EVENT_SIZE + 1] | (uint32_t)data[SHMSOCK_EVENT_SIZE + 2]
                                                                  << 8) %
                        SHMSOCK_MAX_BLOCK_COUNT;
    struct shmsock_geometry g = {
        .header_size = SHMSOCK_REGION_HEADER_SIZE,
        .block_size = SHMSOCK_MIN_BLOCK_SIZE << shift,
        .block_count = count,
    };
    g.region_size = (uint64_t)g.header_size + (uint64_t)g.block_size * g.block_count;

    if (shmsock_event_check_data(&event, &g) == 0) {
        if (event.offset < g.header_size || event.length > g.region_size - event.offset ||
            event.token >= g.block_count || event.block_count == 0 ||
            (uint64_t)event.token + event.block_count > g.block_count)
            abort(); /* accepted an event that reaches outside the region */
        struct shmsock_consumer_list consumer;
        if (shmsock_consumer_list_init(&consumer, g.block_count) == 0) {
            if (shmsock_consumer_receive(&consumer, event.token, event.block_count) == 0) {
                if (shmsock_consumer_receive(&consumer, event.token, event.block_count) == 0)
                    abort(); /* the same run held twice */
                shmsock_consumer_release(&consumer, event.token, event.block_count);
            }
            shmsock_consumer_list_destroy(&consumer);
        }
    }
    if (shmsock_event_check_release(&event, &g) == 0) {
        if (event.token >= g.block_count ||
            (uint64_t)event.token + event.block_count > g.block_count)
            abort();
        /* A producer with one run out (token 0, 1 block): only its exact release is valid. */
        struct shmsock_producer_list producer;
        if (shmsock_producer_list_init(&producer, g.block_count) == 0) {
            int64_t token = shmsock_producer_reserve(&producer, 1);
            int r = shmsock_producer_release(&producer, event.token, event.block_count);
            if (r == 0 && (token != 0 || event.token != 0 || event.block_count != 1))
                abort();
            if (r == 0 && shmsock_producer_release(&producer, event.token, event.block_count) == 0)
                abort(); /* double release accepted */
            shmsock_producer_list_destroy(&producer);
        }
    }
    return 0;
}
