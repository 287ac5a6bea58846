/* token_list.c - producer and consumer token lists. See token_list.h. */
#include "token_list.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int shmsock_producer_list_init(struct shmsock_producer_list *list, uint32_t block_count)
{
    memset(list, 0, sizeof(*list));
    list->owner = calloc(block_count, sizeof(*list->owner));
    list->run_length = calloc(block_count, sizeof(*list->run_length));
    if (list->owner == NULL || list->run_length == NULL) {
        shmsock_producer_list_destroy(list);
        return -ENOMEM;
    }
    list->block_count = block_count;
    list->free_blocks = block_count;
    return 0;
}

void shmsock_producer_list_destroy(struct shmsock_producer_list *list)
{
    free(list->owner);
    free(list->run_length);
    memset(list, 0, sizeof(*list));
}

/* First block of a free run of `blocks` blocks, searching from the cursor; -1 if none. */
static int64_t find_free_run(const struct shmsock_producer_list *list, uint32_t blocks)
{
    if (blocks == 0 || blocks > list->free_blocks)
        return -1;
    uint32_t n = list->block_count;
    uint32_t start = list->cursor < n ? list->cursor : 0;
    /* Two passes: from the cursor to the end, then from 0 to the cursor. */
    for (int pass = 0; pass < 2; pass++) {
        uint32_t i = pass == 0 ? start : 0;
        uint32_t end = pass == 0 ? n : start + blocks - 1;
        if (end > n)
            end = n;
        uint32_t run = 0;
        while (i < end) {
            if (list->owner[i] != 0) {
                uint32_t token = list->owner[i] - 1;
                i = token + list->run_length[token];
                run = 0;
                continue;
            }
            run++;
            i++;
            if (run == blocks)
                return (int64_t)(i - blocks);
        }
    }
    return -1;
}

bool shmsock_producer_can_reserve(const struct shmsock_producer_list *list, uint32_t blocks)
{
    return find_free_run(list, blocks) >= 0;
}

int64_t shmsock_producer_reserve(struct shmsock_producer_list *list, uint32_t blocks)
{
    int64_t first = find_free_run(list, blocks);
    if (first < 0)
        return -1;
    uint32_t token = (uint32_t)first;
    for (uint32_t i = 0; i < blocks; i++)
        list->owner[token + i] = token + 1;
    list->run_length[token] = blocks;
    list->free_blocks -= blocks;
    list->sent_tokens++;
    list->cursor = token + blocks;
    return token;
}

int shmsock_producer_release(struct shmsock_producer_list *list, uint32_t token, uint32_t blocks)
{
    if (token >= list->block_count || list->owner[token] != token + 1 ||
        list->run_length[token] != blocks)
        return -EPROTO;
    for (uint32_t i = 0; i < blocks; i++)
        list->owner[token + i] = 0;
    list->run_length[token] = 0;
    list->free_blocks += blocks;
    list->sent_tokens--;
    return 0;
}

int shmsock_producer_shrink(struct shmsock_producer_list *list, uint32_t token, uint32_t blocks)
{
    if (token >= list->block_count || list->owner[token] != token + 1 || blocks == 0 ||
        blocks > list->run_length[token])
        return -EINVAL;
    for (uint32_t i = blocks; i < list->run_length[token]; i++)
        list->owner[token + i] = 0;
    list->free_blocks += list->run_length[token] - blocks;
    list->run_length[token] = blocks;
    return 0;
}

int shmsock_consumer_list_init(struct shmsock_consumer_list *list, uint32_t block_count)
{
    memset(list, 0, sizeof(*list));
    list->held = calloc(block_count, 1);
    if (list->held == NULL)
        return -ENOMEM;
    list->block_count = block_count;
    return 0;
}

void shmsock_consumer_list_destroy(struct shmsock_consumer_list *list)
{
    free(list->held);
    memset(list, 0, sizeof(*list));
}

int shmsock_consumer_receive(struct shmsock_consumer_list *list, uint32_t token, uint32_t blocks)
{
    if (token >= list->block_count || blocks == 0 || blocks > list->block_count - token)
        return -EPROTO;
    for (uint32_t i = 0; i < blocks; i++)
        if (list->held[token + i])
            return -EPROTO;
    for (uint32_t i = 0; i < blocks; i++) /* a loop: most runs are one block */
        list->held[token + i] = 1;
    list->held_tokens++;
    list->held_blocks += blocks;
    return 0;
}

void shmsock_consumer_release(struct shmsock_consumer_list *list, uint32_t token, uint32_t blocks)
{
    for (uint32_t i = 0; i < blocks; i++)
        list->held[token + i] = 0;
    list->held_tokens--;
    list->held_blocks -= blocks;
}
