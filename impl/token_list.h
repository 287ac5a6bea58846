/*
 * token_list.h - the specification's token lists.
 *
 * Producer list: which runs of our region's blocks are free and which are sent (their token
 * is out with the consumer). A token is the number of the first block of a run; a run is a
 * message's contiguous blocks. The producer records a token as sent before it publishes the
 * DATA event and frees it when the matching RELEASE comes back.
 *
 * Consumer list: which of the peer's blocks we have received and not yet released, so a
 * forged event that reuses blocks we still hold, or a double release, is caught.
 *
 * Neither is thread-safe: the connection guards each with its own lock.
 */
#ifndef SHMSOCK_IMPL_TOKEN_LIST_H
#define SHMSOCK_IMPL_TOKEN_LIST_H

#include <stdbool.h>
#include <stdint.h>

struct shmsock_producer_list {
    uint32_t block_count;
    uint32_t free_blocks;
    uint32_t sent_tokens;
    uint32_t cursor;      /* next-fit: where the next search starts */
    uint32_t *owner;      /* per block: 0 if free, else token + 1 of the run holding it */
    uint32_t *run_length; /* per token (first block of a sent run): its block count */
};

int shmsock_producer_list_init(struct shmsock_producer_list *list, uint32_t block_count);
void shmsock_producer_list_destroy(struct shmsock_producer_list *list);

/* Whether a run of `blocks` contiguous free blocks exists right now. */
bool shmsock_producer_can_reserve(const struct shmsock_producer_list *list, uint32_t blocks);

/* Reserve a run of `blocks` free blocks and record its token as sent. Returns the token, or
 * -1 if no such run is free. */
int64_t shmsock_producer_reserve(struct shmsock_producer_list *list, uint32_t blocks);

/*
 * The consumer returned `token` covering `blocks` blocks: free the run. Returns 0, or -EPROTO
 * if that token is not outstanding or the count does not match (forged or double release).
 */
int shmsock_producer_release(struct shmsock_producer_list *list, uint32_t token, uint32_t blocks);

/* Give back the tail of a sent run so that it keeps `blocks` blocks (1 <= blocks <= its
 * length). Returns 0, or -EINVAL if `token` is not a sent run that long. */
int shmsock_producer_shrink(struct shmsock_producer_list *list, uint32_t token, uint32_t blocks);

struct shmsock_consumer_list {
    uint32_t block_count;
    uint32_t held_tokens;
    uint32_t held_blocks;
    uint8_t *held; /* per block of the peer's region: 1 while received and not released */
};

int shmsock_consumer_list_init(struct shmsock_consumer_list *list, uint32_t block_count);
void shmsock_consumer_list_destroy(struct shmsock_consumer_list *list);

/* Record a received run. Returns 0, or -EPROTO if any of its blocks is already held. */
int shmsock_consumer_receive(struct shmsock_consumer_list *list, uint32_t token, uint32_t blocks);

/* Clear a run we are done with (the caller then sends the RELEASE event). */
void shmsock_consumer_release(struct shmsock_consumer_list *list, uint32_t token, uint32_t blocks);

#endif
