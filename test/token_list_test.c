/*
 * token_list_test.c - unit tests for impl/token_list.{h,c}: the producer list (reserve runs of
 * contiguous blocks next-fit, release with validation) and the consumer list (receive with
 * double-hold detection, release). Includes a randomized test against a reference model.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "impl/token_list.h"

/* ---------------------------------------------------------------------------------------- */
/* helpers                                                                                  */

/* A full copy of a producer list's state, to show that a refused call changed nothing. */
struct producer_snapshot {
    struct shmsock_producer_list head;
    uint32_t *owner;
    uint32_t *run_length;
};

static void snapshot_take(struct producer_snapshot *s, const struct shmsock_producer_list *l)
{
    s->head = *l;
    s->owner = malloc(l->block_count * sizeof(uint32_t));
    s->run_length = malloc(l->block_count * sizeof(uint32_t));
    assert_non_null(s->owner);
    assert_non_null(s->run_length);
    memcpy(s->owner, l->owner, l->block_count * sizeof(uint32_t));
    memcpy(s->run_length, l->run_length, l->block_count * sizeof(uint32_t));
}

static void snapshot_check_and_free(struct producer_snapshot *s,
                                    const struct shmsock_producer_list *l)
{
    assert_int_equal(l->block_count, s->head.block_count);
    assert_int_equal(l->free_blocks, s->head.free_blocks);
    assert_int_equal(l->sent_tokens, s->head.sent_tokens);
    assert_int_equal(l->cursor, s->head.cursor);
    assert_memory_equal(l->owner, s->owner, l->block_count * sizeof(uint32_t));
    assert_memory_equal(l->run_length, s->run_length, l->block_count * sizeof(uint32_t));
    free(s->owner);
    free(s->run_length);
}

/* Expect release(token, blocks) to be refused with -EPROTO and to change nothing. */
static void expect_release_refused(struct shmsock_producer_list *l, uint32_t token, uint32_t blocks)
{
    struct producer_snapshot s;
    snapshot_take(&s, l);
    assert_int_equal(shmsock_producer_release(l, token, blocks), -EPROTO);
    snapshot_check_and_free(&s, l);
}

/* ---------------------------------------------------------------------------------------- */
/* producer list                                                                            */

static void test_producer_init(void **state)
{
    (void)state;
    struct shmsock_producer_list l;
    assert_int_equal(shmsock_producer_list_init(&l, 16), 0);
    assert_int_equal(l.block_count, 16);
    assert_int_equal(l.free_blocks, 16);
    assert_int_equal(l.sent_tokens, 0);
    for (uint32_t b = 1; b <= 16; b++)
        assert_true(shmsock_producer_can_reserve(&l, b));
    assert_false(shmsock_producer_can_reserve(&l, 17));
    assert_int_equal(shmsock_producer_reserve(&l, 17), -1);
    shmsock_producer_list_destroy(&l);
    assert_null(l.owner);
    assert_null(l.run_length);
}

static void test_producer_zero_blocks_refused(void **state)
{
    (void)state;
    struct shmsock_producer_list l;
    assert_int_equal(shmsock_producer_list_init(&l, 8), 0);
    assert_false(shmsock_producer_can_reserve(&l, 0));
    struct producer_snapshot s;
    snapshot_take(&s, &l);
    assert_int_equal(shmsock_producer_reserve(&l, 0), -1);
    snapshot_check_and_free(&s, &l);
    shmsock_producer_list_destroy(&l);
}

static void test_producer_reserve_contiguous(void **state)
{
    (void)state;
    struct shmsock_producer_list l;
    assert_int_equal(shmsock_producer_list_init(&l, 16), 0);
    /* Runs are laid out one after the other; the token is the first block. */
    assert_int_equal(shmsock_producer_reserve(&l, 1), 0);
    assert_int_equal(shmsock_producer_reserve(&l, 3), 1);
    assert_int_equal(shmsock_producer_reserve(&l, 2), 4);
    assert_int_equal(shmsock_producer_reserve(&l, 4), 6);
    assert_int_equal(l.free_blocks, 6);
    assert_int_equal(l.sent_tokens, 4);
    /* Each block is owned by exactly its run. */
    const uint32_t expected_owner[10] = {1, 2, 2, 2, 5, 5, 7, 7, 7, 7};
    for (uint32_t i = 0; i < 10; i++)
        assert_int_equal(l.owner[i], expected_owner[i]);
    for (uint32_t i = 10; i < 16; i++)
        assert_int_equal(l.owner[i], 0);
    assert_int_equal(l.run_length[0], 1);
    assert_int_equal(l.run_length[1], 3);
    assert_int_equal(l.run_length[4], 2);
    assert_int_equal(l.run_length[6], 4);

    /* The rest: exactly 6 contiguous blocks. */
    assert_false(shmsock_producer_can_reserve(&l, 7));
    assert_int_equal(shmsock_producer_reserve(&l, 7), -1);
    assert_true(shmsock_producer_can_reserve(&l, 6));
    assert_int_equal(shmsock_producer_reserve(&l, 6), 10);
    assert_int_equal(l.free_blocks, 0);
    assert_false(shmsock_producer_can_reserve(&l, 1));
    assert_int_equal(shmsock_producer_reserve(&l, 1), -1);

    /* Release everything; all free again, whole region reservable as one run. */
    assert_int_equal(shmsock_producer_release(&l, 1, 3), 0);
    assert_int_equal(shmsock_producer_release(&l, 10, 6), 0);
    assert_int_equal(shmsock_producer_release(&l, 0, 1), 0);
    assert_int_equal(shmsock_producer_release(&l, 6, 4), 0);
    assert_int_equal(shmsock_producer_release(&l, 4, 2), 0);
    assert_int_equal(l.free_blocks, 16);
    assert_int_equal(l.sent_tokens, 0);
    for (uint32_t i = 0; i < 16; i++)
        assert_int_equal(l.owner[i], 0);
    assert_true(shmsock_producer_can_reserve(&l, 16));
    assert_int_equal(shmsock_producer_reserve(&l, 16), 0);
    assert_int_equal(shmsock_producer_release(&l, 0, 16), 0);
    shmsock_producer_list_destroy(&l);
}

static void test_producer_next_fit_wraps(void **state)
{
    (void)state;
    struct shmsock_producer_list l;
    assert_int_equal(shmsock_producer_list_init(&l, 8), 0);
    assert_int_equal(shmsock_producer_reserve(&l, 3), 0); /* 0..2 */
    assert_int_equal(shmsock_producer_reserve(&l, 3), 3); /* 3..5 */
    assert_int_equal(shmsock_producer_release(&l, 0, 3), 0);
    /* Next-fit: the search continues after the last run (6..7), not at the freed 0..2. */
    assert_int_equal(shmsock_producer_reserve(&l, 2), 6);
    /* Nothing after 7: wraps around to the start. */
    assert_int_equal(shmsock_producer_reserve(&l, 2), 0);
    /* Only block 2 is free now. */
    assert_int_equal(l.free_blocks, 1);
    assert_false(shmsock_producer_can_reserve(&l, 2));
    assert_int_equal(shmsock_producer_reserve(&l, 2), -1);
    assert_int_equal(shmsock_producer_reserve(&l, 1), 2);
    assert_int_equal(l.free_blocks, 0);

    /* Free 3..5 and 6..7: a run of 5 that starts before the cursor (3) is found. */
    assert_int_equal(shmsock_producer_release(&l, 3, 3), 0);
    assert_int_equal(shmsock_producer_release(&l, 6, 2), 0);
    assert_int_equal(shmsock_producer_reserve(&l, 5), 3);
    shmsock_producer_list_destroy(&l);
}

static void test_producer_next_fit_run_straddling_cursor(void **state)
{
    (void)state;
    struct shmsock_producer_list l;
    assert_int_equal(shmsock_producer_list_init(&l, 10), 0);
    /* Singles 0..9, then free 2..6: cursor is at the end (wraps to 0). */
    for (uint32_t i = 0; i < 10; i++)
        assert_int_equal(shmsock_producer_reserve(&l, 1), (int64_t)i);
    for (uint32_t i = 2; i <= 6; i++)
        assert_int_equal(shmsock_producer_release(&l, i, 1), 0);
    /* Take 2..3: cursor now at 4. */
    assert_int_equal(shmsock_producer_reserve(&l, 2), 2);
    assert_int_equal(shmsock_producer_release(&l, 2, 2), 0);
    /* Free run 2..6 straddles the cursor (4): a run of 5 must be found at 2. */
    assert_true(shmsock_producer_can_reserve(&l, 5));
    assert_int_equal(shmsock_producer_reserve(&l, 5), 2);
    shmsock_producer_list_destroy(&l);
}

static void test_producer_fragmentation(void **state)
{
    (void)state;
    struct shmsock_producer_list l;
    assert_int_equal(shmsock_producer_list_init(&l, 8), 0);
    for (uint32_t i = 0; i < 8; i++)
        assert_int_equal(shmsock_producer_reserve(&l, 1), (int64_t)i);
    /* Free every other block: 4 free blocks, no two adjacent. */
    for (uint32_t i = 1; i < 8; i += 2)
        assert_int_equal(shmsock_producer_release(&l, i, 1), 0);
    assert_int_equal(l.free_blocks, 4);
    for (uint32_t b = 2; b <= 4; b++) {
        assert_false(shmsock_producer_can_reserve(&l, b));
        struct producer_snapshot s;
        snapshot_take(&s, &l);
        assert_int_equal(shmsock_producer_reserve(&l, b), -1);
        snapshot_check_and_free(&s, &l);
    }
    assert_true(shmsock_producer_can_reserve(&l, 1));
    /* Freeing block 2 joins 1..3 into one run of three. */
    assert_int_equal(shmsock_producer_release(&l, 2, 1), 0);
    assert_true(shmsock_producer_can_reserve(&l, 3));
    assert_false(shmsock_producer_can_reserve(&l, 4));
    assert_int_equal(shmsock_producer_reserve(&l, 3), 1);
    shmsock_producer_list_destroy(&l);
}

static void test_producer_release_validation(void **state)
{
    (void)state;
    struct shmsock_producer_list l;
    assert_int_equal(shmsock_producer_list_init(&l, 16), 0);
    assert_int_equal(shmsock_producer_reserve(&l, 4), 0); /* 0..3 */
    assert_int_equal(shmsock_producer_reserve(&l, 1), 4); /* 4 */
    assert_int_equal(shmsock_producer_reserve(&l, 3), 5); /* 5..7 */

    /* A token never sent (free block). */
    expect_release_refused(&l, 8, 1);
    expect_release_refused(&l, 15, 1);
    /* Tokens out of range. */
    expect_release_refused(&l, 16, 1);
    expect_release_refused(&l, UINT32_MAX, 1);
    /* A block inside a run is not a token. */
    expect_release_refused(&l, 1, 3);
    expect_release_refused(&l, 2, 2);
    expect_release_refused(&l, 6, 2);
    /* Right token, wrong count. */
    expect_release_refused(&l, 0, 0);
    expect_release_refused(&l, 0, 1);
    expect_release_refused(&l, 0, 3);
    expect_release_refused(&l, 0, 5);
    expect_release_refused(&l, 0, UINT32_MAX);
    expect_release_refused(&l, 4, 2);
    expect_release_refused(&l, 5, 11);
    /* A release that would cover the neighbour run. */
    expect_release_refused(&l, 4, 4);

    /* Correct releases work; then the same again is a double release. */
    assert_int_equal(shmsock_producer_release(&l, 4, 1), 0);
    expect_release_refused(&l, 4, 1);
    assert_int_equal(shmsock_producer_release(&l, 0, 4), 0);
    expect_release_refused(&l, 0, 4);
    /* Still owned: 5..7. */
    assert_int_equal(l.sent_tokens, 1);
    assert_int_equal(l.free_blocks, 13);
    /* A token reused by a new run: the old count no longer matches. */
    assert_int_equal(shmsock_producer_reserve(&l, 2), 8);
    expect_release_refused(&l, 8, 3);
    assert_int_equal(shmsock_producer_release(&l, 8, 2), 0);
    assert_int_equal(shmsock_producer_release(&l, 5, 3), 0);
    expect_release_refused(&l, 5, 3);
    assert_int_equal(l.sent_tokens, 0);
    assert_int_equal(l.free_blocks, 16);
    shmsock_producer_list_destroy(&l);
}

static void test_producer_single_block_region(void **state)
{
    (void)state;
    struct shmsock_producer_list l;
    assert_int_equal(shmsock_producer_list_init(&l, 1), 0);
    for (int i = 0; i < 5; i++) {
        assert_true(shmsock_producer_can_reserve(&l, 1));
        assert_int_equal(shmsock_producer_reserve(&l, 1), 0);
        assert_false(shmsock_producer_can_reserve(&l, 1));
        assert_int_equal(shmsock_producer_reserve(&l, 1), -1);
        assert_int_equal(shmsock_producer_release(&l, 0, 1), 0);
        expect_release_refused(&l, 0, 1);
    }
    shmsock_producer_list_destroy(&l);
}

/* ---------------------------------------------------------------------------------------- */
/* randomized test against a reference model                                                */

/* The model: per block, the token of the run holding it or -1; per token, its count. */
struct model {
    uint32_t n;
    uint32_t cursor;
    int64_t *owner;  /* per block */
    uint32_t *count; /* per token; 0 if not outstanding */
    uint32_t free_blocks;
    uint32_t sent;
};

static bool model_run_free(const struct model *m, uint32_t start, uint32_t blocks)
{
    if ((uint64_t)start + blocks > m->n)
        return false;
    for (uint32_t i = start; i < start + blocks; i++)
        if (m->owner[i] >= 0)
            return false;
    return true;
}

/* Next-fit: the first free run starting at or after the cursor, else the first from 0. */
static int64_t model_find(const struct model *m, uint32_t blocks)
{
    if (blocks == 0)
        return -1;
    uint32_t cursor = m->cursor < m->n ? m->cursor : 0;
    for (uint32_t s = cursor; s < m->n; s++)
        if (model_run_free(m, s, blocks))
            return s;
    for (uint32_t s = 0; s < cursor; s++)
        if (model_run_free(m, s, blocks))
            return s;
    return -1;
}

/* Whether any free run of `blocks` exists, independent of the search order. */
static bool model_any_run(const struct model *m, uint32_t blocks)
{
    if (blocks == 0)
        return false;
    uint32_t run = 0;
    for (uint32_t i = 0; i < m->n; i++) {
        run = m->owner[i] < 0 ? run + 1 : 0;
        if (run >= blocks)
            return true;
    }
    return false;
}

static void model_check_against(const struct model *m, const struct shmsock_producer_list *l)
{
    assert_int_equal(l->free_blocks, m->free_blocks);
    assert_int_equal(l->sent_tokens, m->sent);
    for (uint32_t i = 0; i < m->n; i++)
        assert_int_equal(l->owner[i], m->owner[i] < 0 ? 0 : (uint32_t)m->owner[i] + 1);
}

static uint64_t rng_state;

static uint32_t rnd(uint32_t bound)
{
    /* xorshift64*, deterministic per seed */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)(((rng_state * 2685821657736338717ull) >> 32) % bound);
}

static void run_model(uint32_t n, uint64_t seed, int ops)
{
    rng_state = seed;
    struct shmsock_producer_list l;
    assert_int_equal(shmsock_producer_list_init(&l, n), 0);
    struct model m = {.n = n, .free_blocks = n};
    m.owner = malloc(n * sizeof(*m.owner));
    m.count = calloc(n, sizeof(*m.count));
    uint32_t *outstanding = malloc(n * sizeof(uint32_t));
    assert_non_null(m.owner);
    assert_non_null(m.count);
    assert_non_null(outstanding);
    for (uint32_t i = 0; i < n; i++)
        m.owner[i] = -1;
    uint32_t n_out = 0;
    uint32_t max_run = n < 12 ? n : 12;

    for (int op = 0; op < ops; op++) {
        uint32_t kind = rnd(100);
        if (kind < 50) {
            /* reserve: sizes biased small, sometimes large, sometimes too large */
            uint32_t blocks = rnd(10) == 0 ? rnd(n + 2) : 1 + rnd(max_run);
            bool can = shmsock_producer_can_reserve(&l, blocks);
            assert_int_equal(can, model_any_run(&m, blocks));
            int64_t expected = model_find(&m, blocks);
            assert_int_equal(can, expected >= 0);
            int64_t got = shmsock_producer_reserve(&l, blocks);
            assert_int_equal(got, expected);
            if (got >= 0) {
                uint32_t t = (uint32_t)got;
                assert_true(model_run_free(&m, t, blocks));
                for (uint32_t i = t; i < t + blocks; i++)
                    m.owner[i] = t;
                m.count[t] = blocks;
                m.free_blocks -= blocks;
                m.sent++;
                m.cursor = t + blocks;
                outstanding[n_out++] = t;
            }
        } else if (kind < 85) {
            /* a valid release of a random outstanding token */
            if (n_out == 0)
                continue;
            uint32_t k = rnd(n_out);
            uint32_t t = outstanding[k];
            assert_int_equal(shmsock_producer_release(&l, t, m.count[t]), 0);
            for (uint32_t i = t; i < t + m.count[t]; i++)
                m.owner[i] = -1;
            m.free_blocks += m.count[t];
            m.count[t] = 0;
            m.sent--;
            outstanding[k] = outstanding[--n_out];
        } else {
            /* a random (mostly forged) release: refused unless it names an outstanding run */
            uint32_t t = rnd(n + 2);
            uint32_t blocks = rnd(max_run + 2);
            if (rnd(2) == 0 && n_out > 0) {
                t = outstanding[rnd(n_out)];
                blocks = m.count[t] + (rnd(2) ? 1 : (uint32_t)-1);
            }
            bool valid = t < n && m.count[t] != 0 && m.count[t] == blocks;
            if (valid) {
                assert_int_equal(shmsock_producer_release(&l, t, blocks), 0);
                for (uint32_t i = t; i < t + blocks; i++)
                    m.owner[i] = -1;
                m.free_blocks += blocks;
                m.count[t] = 0;
                m.sent--;
                for (uint32_t k = 0; k < n_out; k++)
                    if (outstanding[k] == t) {
                        outstanding[k] = outstanding[--n_out];
                        break;
                    }
            } else {
                expect_release_refused(&l, t, blocks);
            }
        }
        model_check_against(&m, &l);
    }
    /* Drain: everything released, the whole region is one run again. */
    while (n_out > 0) {
        uint32_t t = outstanding[--n_out];
        assert_int_equal(shmsock_producer_release(&l, t, m.count[t]), 0);
        m.count[t] = 0;
    }
    assert_int_equal(l.free_blocks, n);
    assert_int_equal(l.sent_tokens, 0);
    assert_true(shmsock_producer_can_reserve(&l, n));

    free(outstanding);
    free(m.owner);
    free(m.count);
    shmsock_producer_list_destroy(&l);
}

static void test_producer_randomized_model(void **state)
{
    (void)state;
    const uint32_t sizes[] = {1, 2, 3, 7, 16, 33, 64, 257};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        for (uint64_t seed = 1; seed <= 4; seed++)
            run_model(sizes[i], seed * 0x9e3779b97f4a7c15ull + sizes[i], 5000);
    /* One long run on a full-size list. */
    run_model(4096, 42, 20000);
}

/* ---------------------------------------------------------------------------------------- */
/* consumer list                                                                            */

static void test_consumer_receive_and_release(void **state)
{
    (void)state;
    struct shmsock_consumer_list c;
    assert_int_equal(shmsock_consumer_list_init(&c, 16), 0);
    assert_int_equal(c.block_count, 16);
    assert_int_equal(c.held_tokens, 0);

    assert_int_equal(shmsock_consumer_receive(&c, 0, 2), 0);
    assert_int_equal(shmsock_consumer_receive(&c, 2, 3), 0); /* adjacent: fine */
    assert_int_equal(shmsock_consumer_receive(&c, 15, 1), 0);
    assert_int_equal(c.held_tokens, 3);
    for (uint32_t i = 0; i < 16; i++)
        assert_int_equal(c.held[i], (i < 5 || i == 15) ? 1 : 0);

    shmsock_consumer_release(&c, 0, 2);
    assert_int_equal(c.held_tokens, 2);
    assert_int_equal(c.held[0], 0);
    assert_int_equal(c.held[1], 0);
    assert_int_equal(c.held[2], 1);
    /* Released blocks may be received again (the producer reused them). */
    assert_int_equal(shmsock_consumer_receive(&c, 0, 1), 0);
    assert_int_equal(shmsock_consumer_receive(&c, 1, 1), 0);
    assert_int_equal(c.held_tokens, 4);

    shmsock_consumer_release(&c, 0, 1);
    shmsock_consumer_release(&c, 1, 1);
    shmsock_consumer_release(&c, 2, 3);
    shmsock_consumer_release(&c, 15, 1);
    assert_int_equal(c.held_tokens, 0);
    for (uint32_t i = 0; i < 16; i++)
        assert_int_equal(c.held[i], 0);
    /* The whole region as one run. */
    assert_int_equal(shmsock_consumer_receive(&c, 0, 16), 0);
    shmsock_consumer_list_destroy(&c);
    assert_null(c.held);
}

static void expect_receive_refused(struct shmsock_consumer_list *c, uint32_t token, uint32_t blocks)
{
    uint8_t before[64];
    assert_true(c->block_count <= sizeof(before));
    memcpy(before, c->held, c->block_count);
    uint32_t held_tokens = c->held_tokens;
    assert_int_equal(shmsock_consumer_receive(c, token, blocks), -EPROTO);
    assert_memory_equal(c->held, before, c->block_count);
    assert_int_equal(c->held_tokens, held_tokens);
}

static void test_consumer_overlap_detected(void **state)
{
    (void)state;
    struct shmsock_consumer_list c;
    assert_int_equal(shmsock_consumer_list_init(&c, 16), 0);
    assert_int_equal(shmsock_consumer_receive(&c, 4, 3), 0); /* 4..6 */

    /* The same run twice. */
    expect_receive_refused(&c, 4, 3);
    /* Overlap at the start, in the middle, at the end, and covering it. */
    expect_receive_refused(&c, 4, 1);
    expect_receive_refused(&c, 5, 1);
    expect_receive_refused(&c, 6, 4);
    expect_receive_refused(&c, 2, 3);
    expect_receive_refused(&c, 0, 16);
    expect_receive_refused(&c, 3, 5);
    /* Overlap only in the last block: earlier blocks must not be marked. */
    expect_receive_refused(&c, 0, 5);

    /* Out of range, zero-length, past the end, wrapping. */
    expect_receive_refused(&c, 16, 1);
    expect_receive_refused(&c, UINT32_MAX, 1);
    expect_receive_refused(&c, 0, 0);
    expect_receive_refused(&c, 10, 7);
    expect_receive_refused(&c, 10, UINT32_MAX);
    expect_receive_refused(&c, 10, 0u - 10u);
    expect_receive_refused(&c, 0, 17);

    /* Neighbours are fine. */
    assert_int_equal(shmsock_consumer_receive(&c, 0, 4), 0);
    assert_int_equal(shmsock_consumer_receive(&c, 7, 9), 0);
    assert_int_equal(c.held_tokens, 3);
    /* After a release the run can be received again, and not twice. */
    shmsock_consumer_release(&c, 4, 3);
    assert_int_equal(shmsock_consumer_receive(&c, 4, 3), 0);
    expect_receive_refused(&c, 4, 3);
    shmsock_consumer_list_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_producer_init),
        cmocka_unit_test(test_producer_zero_blocks_refused),
        cmocka_unit_test(test_producer_reserve_contiguous),
        cmocka_unit_test(test_producer_next_fit_wraps),
        cmocka_unit_test(test_producer_next_fit_run_straddling_cursor),
        cmocka_unit_test(test_producer_fragmentation),
        cmocka_unit_test(test_producer_release_validation),
        cmocka_unit_test(test_producer_single_block_region),
        cmocka_unit_test(test_producer_randomized_model),
        cmocka_unit_test(test_consumer_receive_and_release),
        cmocka_unit_test(test_consumer_overlap_detected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
