/*
 * event_test.c - unit tests for impl/event.{h,c}: the 32-byte event record codec, and the
 * validation of DATA / RELEASE events against a region geometry.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "impl/event.h"

/* header 4096, 16 blocks of 1024 */
static const struct shmsock_geometry G16 = {
    .header_size = 4096,
    .block_size = 1024,
    .block_count = 16,
    .region_size = 4096 + 16 * 1024,
};

/* The largest geometry: offsets beyond 4 GiB. */
static const struct shmsock_geometry GMAX = {
    .header_size = 4096,
    .block_size = SHMSOCK_MAX_BLOCK_SIZE,
    .block_count = SHMSOCK_MAX_BLOCK_COUNT,
    .region_size = 4096 + (uint64_t)SHMSOCK_MAX_BLOCK_SIZE * SHMSOCK_MAX_BLOCK_COUNT,
};

/* A peer may choose another header size; offsets follow it. */
static const struct shmsock_geometry G_SMALL_HEADER = {
    .header_size = 64,
    .block_size = 2048,
    .block_count = 5,
    .region_size = 64 + 5 * 2048,
};

static uint64_t offset_of(const struct shmsock_geometry *g, uint32_t token)
{
    return (uint64_t)g->header_size + (uint64_t)token * g->block_size;
}

/* A DATA event built by hand (not with shmsock_event_data). */
static struct shmsock_event data_event(const struct shmsock_geometry *g, uint32_t token,
                                       uint32_t count, uint64_t length)
{
    struct shmsock_event e;
    memset(&e, 0, sizeof(e));
    e.type = SHMSOCK_EVENT_DATA;
    e.token = token;
    e.offset = offset_of(g, token);
    e.length = length;
    e.block_count = count;
    return e;
}

static struct shmsock_event release_event(const struct shmsock_geometry *g, uint32_t token,
                                          uint32_t count)
{
    struct shmsock_event e = data_event(g, token, count, 0);
    e.type = SHMSOCK_EVENT_RELEASE;
    return e;
}

static void assert_event_equal(const struct shmsock_event *a, const struct shmsock_event *b)
{
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->token, b->token);
    assert_int_equal(a->offset, b->offset);
    assert_int_equal(a->length, b->length);
    assert_int_equal(a->block_count, b->block_count);
    assert_int_equal(a->reserved, b->reserved);
}

/* ---------------------------------------------------------------------------------------- */
/* codec                                                                                    */

static void roundtrip(const struct shmsock_event *in)
{
    unsigned char record[SHMSOCK_EVENT_SIZE];
    memset(record, 0xee, sizeof(record));
    shmsock_event_encode(in, record);

    /* Native byte order, fixed field offsets. */
    uint32_t u32;
    uint64_t u64;
    memcpy(&u32, record + 0, 4);
    assert_int_equal(u32, in->type);
    memcpy(&u32, record + 4, 4);
    assert_int_equal(u32, in->token);
    memcpy(&u64, record + 8, 8);
    assert_int_equal(u64, in->offset);
    memcpy(&u64, record + 16, 8);
    assert_int_equal(u64, in->length);
    memcpy(&u32, record + 24, 4);
    assert_int_equal(u32, in->block_count);
    memcpy(&u32, record + 28, 4);
    assert_int_equal(u32, 0);

    struct shmsock_event out;
    memset(&out, 0xcc, sizeof(out));
    assert_int_equal(shmsock_event_decode(record, &out), 0);
    assert_event_equal(&out, in);
}

static void test_roundtrip(void **state)
{
    (void)state;
    assert_int_equal(sizeof(struct shmsock_event), 32);
    struct shmsock_event e = data_event(&G16, 3, 2, 1500);
    roundtrip(&e);
    e = release_event(&G16, 15, 1);
    roundtrip(&e);
    e = data_event(&GMAX, SHMSOCK_MAX_BLOCK_COUNT - 1, 1, SHMSOCK_MAX_BLOCK_SIZE);
    roundtrip(&e);

    /* Extreme field values survive the codec (decode does not check ranges). */
    memset(&e, 0, sizeof(e));
    e.type = SHMSOCK_EVENT_OFFER;
    e.token = UINT32_MAX;
    e.offset = UINT64_MAX;
    e.length = UINT64_MAX - 1;
    e.block_count = UINT32_MAX;
    roundtrip(&e);

    memset(&e, 0, sizeof(e));
    e.type = SHMSOCK_EVENT_DATA;
    roundtrip(&e);
}

static void test_constructors(void **state)
{
    (void)state;
    struct shmsock_event e = shmsock_event_data(&G16, 5, 3, 2049);
    struct shmsock_event expected = data_event(&G16, 5, 3, 2049);
    assert_event_equal(&e, &expected);
    assert_int_equal(shmsock_event_check_data(&e, &G16), 0);

    e = shmsock_event_release(&G16, 5, 3);
    expected = release_event(&G16, 5, 3);
    assert_event_equal(&e, &expected);
    assert_int_equal(shmsock_event_check_release(&e, &G16), 0);

    /* Offsets computed in 64 bits. */
    e = shmsock_event_data(&GMAX, SHMSOCK_MAX_BLOCK_COUNT - 1, 1, 1);
    assert_int_equal(e.offset,
                     4096ull + (uint64_t)(SHMSOCK_MAX_BLOCK_COUNT - 1) * SHMSOCK_MAX_BLOCK_SIZE);
    assert_int_equal(shmsock_event_check_data(&e, &GMAX), 0);
}

static void test_decode_rejects_unknown_type(void **state)
{
    (void)state;
    const uint32_t bad[] = {0, 6, 7, 0x100, 0x01000000u, 0x80000001u, UINT32_MAX};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct shmsock_event in = data_event(&G16, 0, 1, 1);
        in.type = bad[i];
        unsigned char record[SHMSOCK_EVENT_SIZE];
        shmsock_event_encode(&in, record);
        struct shmsock_event out;
        assert_int_equal(shmsock_event_decode(record, &out), -EPROTO);
    }
    for (uint32_t t = SHMSOCK_EVENT_DATA; t <= SHMSOCK_EVENT_TO_KERNEL; t++) {
        struct shmsock_event in = data_event(&G16, 0, 1, 1);
        in.type = t;
        unsigned char record[SHMSOCK_EVENT_SIZE];
        shmsock_event_encode(&in, record);
        struct shmsock_event out;
        assert_int_equal(shmsock_event_decode(record, &out), 0);
    }
}

static void test_decode_rejects_nonzero_reserved(void **state)
{
    (void)state;
    for (int bit = 0; bit < 32; bit++) {
        struct shmsock_event in = data_event(&G16, 1, 1, 10);
        in.reserved = 1u << bit;
        unsigned char record[SHMSOCK_EVENT_SIZE];
        shmsock_event_encode(&in, record);
        struct shmsock_event out;
        assert_int_equal(shmsock_event_decode(record, &out), -EPROTO);
    }
    /* A record whose bytes 28..31 are nonzero, built without the struct. */
    unsigned char record[SHMSOCK_EVENT_SIZE];
    struct shmsock_event in = data_event(&G16, 1, 1, 10);
    shmsock_event_encode(&in, record);
    record[31] = 0x80;
    struct shmsock_event out;
    assert_int_equal(shmsock_event_decode(record, &out), -EPROTO);
}

/* ---------------------------------------------------------------------------------------- */
/* blocks_for_length                                                                        */

static void test_blocks_for_length(void **state)
{
    (void)state;
    assert_int_equal(shmsock_blocks_for_length(0, 1024), 1);
    assert_int_equal(shmsock_blocks_for_length(1, 1024), 1);
    assert_int_equal(shmsock_blocks_for_length(1023, 1024), 1);
    assert_int_equal(shmsock_blocks_for_length(1024, 1024), 1);
    assert_int_equal(shmsock_blocks_for_length(1025, 1024), 2);
    assert_int_equal(shmsock_blocks_for_length(2048, 1024), 2);
    assert_int_equal(shmsock_blocks_for_length(2049, 1024), 3);
    assert_int_equal(shmsock_blocks_for_length(16 * 1024, 1024), 16);
    assert_int_equal(shmsock_blocks_for_length(16 * 1024 + 1, 1024), 17);
    assert_int_equal(shmsock_blocks_for_length(4096ull * 1024, 1024), 4096);
    assert_int_equal(shmsock_blocks_for_length(0, SHMSOCK_MAX_BLOCK_SIZE), 1);
    assert_int_equal(shmsock_blocks_for_length(SHMSOCK_MAX_BLOCK_SIZE, SHMSOCK_MAX_BLOCK_SIZE), 1);
    assert_int_equal(
        shmsock_blocks_for_length(SHMSOCK_MAX_BLOCK_SIZE + 1ull, SHMSOCK_MAX_BLOCK_SIZE), 2);
    /* Whole largest region: 4 GiB, beyond 32 bits of bytes. */
    assert_int_equal(
        shmsock_blocks_for_length((uint64_t)SHMSOCK_MAX_BLOCK_SIZE * SHMSOCK_MAX_BLOCK_COUNT,
                                  SHMSOCK_MAX_BLOCK_SIZE),
        SHMSOCK_MAX_BLOCK_COUNT);
    assert_int_equal(
        shmsock_blocks_for_length((uint64_t)SHMSOCK_MAX_BLOCK_SIZE * SHMSOCK_MAX_BLOCK_COUNT + 1,
                                  SHMSOCK_MAX_BLOCK_SIZE),
        SHMSOCK_MAX_BLOCK_COUNT + 1);
    /* Exhaustive over one block size and small lengths. */
    for (uint64_t len = 1; len <= 8 * 4096; len++)
        assert_int_equal(shmsock_blocks_for_length(len, 4096), (len + 4095) / 4096);
}

/* ---------------------------------------------------------------------------------------- */
/* check_data                                                                               */

static void test_check_data_accepts_consistent(void **state)
{
    (void)state;
    const struct shmsock_geometry *gs[] = {&G16, &GMAX, &G_SMALL_HEADER};
    for (size_t gi = 0; gi < 3; gi++) {
        const struct shmsock_geometry *g = gs[gi];
        uint32_t n = g->block_count > 40 ? 40 : g->block_count;
        uint32_t bs = g->block_size;
        /* Every token, every count that fits (limited for GMAX), lengths at the edges. */
        for (uint32_t token = 0; token < n; token++) {
            for (uint32_t count = 1; count <= n - token; count++) {
                uint64_t lo = count == 1 ? 0 : (uint64_t)(count - 1) * bs + 1;
                uint64_t hi = (uint64_t)count * bs;
                struct shmsock_event e = data_event(g, token, count, lo);
                assert_int_equal(shmsock_event_check_data(&e, g), 0);
                e = data_event(g, token, count, hi);
                assert_int_equal(shmsock_event_check_data(&e, g), 0);
                e = data_event(g, token, count, (lo + hi) / 2);
                assert_int_equal(shmsock_event_check_data(&e, g), 0);
            }
        }
        /* The last block and the whole region. */
        struct shmsock_event e = data_event(g, g->block_count - 1, 1, 1);
        assert_int_equal(shmsock_event_check_data(&e, g), 0);
        e = data_event(g, 0, g->block_count, (uint64_t)g->block_count * bs);
        assert_int_equal(shmsock_event_check_data(&e, g), 0);
    }
    /* A zero-length message in one block. */
    struct shmsock_event e = data_event(&G16, 7, 1, 0);
    assert_int_equal(shmsock_event_check_data(&e, &G16), 0);
}

static void test_check_data_rejects_wrong_type(void **state)
{
    (void)state;
    struct shmsock_event e = data_event(&G16, 0, 1, 10);
    e.type = SHMSOCK_EVENT_RELEASE;
    assert_int_equal(shmsock_event_check_data(&e, &G16), -EPROTO);
    e.type = SHMSOCK_EVENT_OFFER;
    assert_int_equal(shmsock_event_check_data(&e, &G16), -EPROTO);
    e.type = 0;
    assert_int_equal(shmsock_event_check_data(&e, &G16), -EPROTO);
    e.type = 99;
    assert_int_equal(shmsock_event_check_data(&e, &G16), -EPROTO);
}

static void test_check_data_rejects_token_out_of_range(void **state)
{
    (void)state;
    const uint32_t tokens[] = {16, 17, 4096, 0x7fffffffu, 0x80000000u, UINT32_MAX - 1, UINT32_MAX};
    for (size_t i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++) {
        struct shmsock_event e = data_event(&G16, tokens[i], 1, 1);
        assert_int_equal(shmsock_event_check_data(&e, &G16), -EPROTO);
        /* Even with an offset that would lie inside the region. */
        e.offset = offset_of(&G16, 0);
        assert_int_equal(shmsock_event_check_data(&e, &G16), -EPROTO);
    }
}

static void test_check_data_rejects_run_past_end(void **state)
{
    (void)state;
    struct shmsock_event e;
    /* One block past the end. */
    e = data_event(&G16, 15, 2, 1025);
    assert_int_equal(shmsock_event_check_data(&e, &G16), -EPROTO);
    e = data_event(&G16, 0, 17, 16 * 1024 + 1);
    assert_int_equal(shmsock_event_check_data(&e, &G16), -EPROTO);
    e = data_event(&G16, 8, 9, 8 * 1024 + 1);
    assert_int_equal(shmsock_event_check_data(&e, &G16), -EPROTO);

    /* token + count wraps around 2^32 to a small number: a naive token+count <= n passes. */
    const uint32_t tokens[] = {1, 5, 15};
    for (size_t i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++) {
        uint32_t token = tokens[i];
        /* (token + count) mod 2^32 = 0, 1, 2 < token (lengths consistent with the count). */
        for (uint32_t wrapped = 0; wrapped < 3 && wrapped < token; wrapped++) {
            uint32_t count = (uint32_t)(0u - token + wrapped);
            e = data_event(&G16, token, count, (uint64_t)count * 1024);
            assert_int_equal(shmsock_event_check_data(&e, &G16), -EPROTO);
        }
    }
    e = data_event(&G16, 1, UINT32_MAX, (uint64_t)UINT32_MAX * 1024);
    assert_int_equal(shmsock_event_check_data(&e, &G16), -EPROTO);
    e = data_event(&G16, 0, UINT32_MAX, (uint64_t)UINT32_MAX * 1024);
    assert_int_equal(shmsock_event_check_data(&e, &G16), -EPROTO);

    /* Past the end of the largest region (count * block_size beyond 32 bits). */
    e = data_event(&GMAX, 1, SHMSOCK_MAX_BLOCK_COUNT,
                   (uint64_t)SHMSOCK_MAX_BLOCK_COUNT * SHMSOCK_MAX_BLOCK_SIZE);
    assert_int_equal(shmsock_event_check_data(&e, &GMAX), -EPROTO);
}

static void test_check_data_rejects_wrong_offset(void **state)
{
    (void)state;
    struct shmsock_event e = data_event(&G16, 4, 2, 2000);
    const int64_t deltas[] = {-1024, -1, 1, 512, 1024};
    for (size_t i = 0; i < sizeof(deltas) / sizeof(deltas[0]); i++) {
        e.offset = offset_of(&G16, 4) + (uint64_t)deltas[i];
        assert_int_equal(shmsock_event_check_data(&e, &G16), -EPROTO);
    }
    e.offset = 0; /* the header */
    assert_int_equal(shmsock_event_check_data(&e, &G16), -EPROTO);
    e.offset = UINT64_MAX;
    assert_int_equal(shmsock_event_check_data(&e, &G16), -EPROTO);
    /* Offset computed with a different header size. */
    e.offset = 64 + 4 * 1024;
    assert_int_equal(shmsock_event_check_data(&e, &G16), -EPROTO);
    /* Offset that equals the right one modulo 2^32. */
    e = data_event(&GMAX, 4095, 1, 1);
    e.offset += 1ull << 32;
    assert_int_equal(shmsock_event_check_data(&e, &GMAX), -EPROTO);
    /* Control. */
    e = data_event(&G16, 4, 2, 2000);
    assert_int_equal(shmsock_event_check_data(&e, &G16), 0);
}

static void test_check_data_rejects_length_larger_than_blocks(void **state)
{
    (void)state;
    struct shmsock_event e;
    for (uint32_t count = 1; count <= 16; count++) {
        e = data_event(&G16, 0, count, (uint64_t)count * 1024 + 1);
        assert_int_equal(shmsock_event_check_data(&e, &G16), -EPROTO);
    }
    e = data_event(&G16, 0, 1, UINT64_MAX);
    assert_int_equal(shmsock_event_check_data(&e, &G16), -EPROTO);
    e = data_event(&G16, 0, 16, UINT64_MAX);
    assert_int_equal(shmsock_event_check_data(&e, &G16), -EPROTO);
    /* Lengths whose block count truncates to a small uint32. */
    e = data_event(&G16, 0, 1, (1ull << 42) + 1);
    assert_int_equal(shmsock_event_check_data(&e, &G16), -EPROTO);
    e = data_event(&G16, 0, 1, (1ull << 42));
    assert_int_equal(shmsock_event_check_data(&e, &G16), -EPROTO);
    e = data_event(&G16, 0, 1, UINT64_MAX - 1022);
    assert_int_equal(shmsock_event_check_data(&e, &G16), -EPROTO);
}

static void test_check_data_rejects_too_many_blocks_for_length(void **state)
{
    (void)state;
    struct shmsock_event e;
    /* Length needs fewer blocks than block_count claims. */
    e = data_event(&G16, 0, 2, 1024);
    assert_int_equal(shmsock_event_check_data(&e, &G16), -EPROTO);
    e = data_event(&G16, 0, 2, 1);
    assert_int_equal(shmsock_event_check_data(&e, &G16), -EPROTO);
    e = data_event(&G16, 0, 2, 0);
    assert_int_equal(shmsock_event_check_data(&e, &G16), -EPROTO);
    e = data_event(&G16, 3, 5, 4 * 1024);
    assert_int_equal(shmsock_event_check_data(&e, &G16), -EPROTO);
    e = data_event(&G16, 0, 16, 0);
    assert_int_equal(shmsock_event_check_data(&e, &G16), -EPROTO);
    e = data_event(&G16, 0, 16, 15 * 1024);
    assert_int_equal(shmsock_event_check_data(&e, &G16), -EPROTO);
    /* Control: one more byte makes it consistent. */
    e = data_event(&G16, 0, 16, 15 * 1024 + 1);
    assert_int_equal(shmsock_event_check_data(&e, &G16), 0);
}

static void test_check_data_rejects_zero_block_count(void **state)
{
    (void)state;
    struct shmsock_event e = data_event(&G16, 0, 0, 0);
    assert_int_equal(shmsock_event_check_data(&e, &G16), -EPROTO);
    e = data_event(&G16, 5, 0, 0);
    assert_int_equal(shmsock_event_check_data(&e, &G16), -EPROTO);
    e = data_event(&G16, 15, 0, 0);
    assert_int_equal(shmsock_event_check_data(&e, &G16), -EPROTO);
    e = data_event(&G16, 5, 0, 1);
    assert_int_equal(shmsock_event_check_data(&e, &G16), -EPROTO);
}

/* ---------------------------------------------------------------------------------------- */
/* check_release                                                                            */

static void test_check_release(void **state)
{
    (void)state;
    struct shmsock_event e;
    /* Accepted: every run of the small region. */
    for (uint32_t token = 0; token < 16; token++)
        for (uint32_t count = 1; count <= 16 - token; count++) {
            e = release_event(&G16, token, count);
            assert_int_equal(shmsock_event_check_release(&e, &G16), 0);
        }
    e = release_event(&GMAX, SHMSOCK_MAX_BLOCK_COUNT - 1, 1);
    assert_int_equal(shmsock_event_check_release(&e, &GMAX), 0);

    /* Wrong type. */
    e = release_event(&G16, 0, 1);
    e.type = SHMSOCK_EVENT_DATA;
    assert_int_equal(shmsock_event_check_release(&e, &G16), -EPROTO);
    e.type = SHMSOCK_EVENT_OFFER;
    assert_int_equal(shmsock_event_check_release(&e, &G16), -EPROTO);
    /* Nonzero length. */
    e = release_event(&G16, 0, 1);
    e.length = 1;
    assert_int_equal(shmsock_event_check_release(&e, &G16), -EPROTO);
    e.length = UINT64_MAX;
    assert_int_equal(shmsock_event_check_release(&e, &G16), -EPROTO);
    /* Zero block count. */
    e = release_event(&G16, 0, 0);
    assert_int_equal(shmsock_event_check_release(&e, &G16), -EPROTO);
    /* Token out of range. */
    e = release_event(&G16, 16, 1);
    assert_int_equal(shmsock_event_check_release(&e, &G16), -EPROTO);
    e = release_event(&G16, UINT32_MAX, 1);
    assert_int_equal(shmsock_event_check_release(&e, &G16), -EPROTO);
    /* Run past the end, including token + count wrapping. */
    e = release_event(&G16, 15, 2);
    assert_int_equal(shmsock_event_check_release(&e, &G16), -EPROTO);
    e = release_event(&G16, 2, UINT32_MAX);
    assert_int_equal(shmsock_event_check_release(&e, &G16), -EPROTO);
    e = release_event(&G16, 2, 0u - 2u);
    assert_int_equal(shmsock_event_check_release(&e, &G16), -EPROTO);
    /* Wrong offset. */
    e = release_event(&G16, 3, 1);
    e.offset += 1;
    assert_int_equal(shmsock_event_check_release(&e, &G16), -EPROTO);
    e.offset = offset_of(&G16, 4);
    assert_int_equal(shmsock_event_check_release(&e, &G16), -EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_constructors),
        cmocka_unit_test(test_decode_rejects_unknown_type),
        cmocka_unit_test(test_decode_rejects_nonzero_reserved),
        cmocka_unit_test(test_blocks_for_length),
        cmocka_unit_test(test_check_data_accepts_consistent),
        cmocka_unit_test(test_check_data_rejects_wrong_type),
        cmocka_unit_test(test_check_data_rejects_token_out_of_range),
        cmocka_unit_test(test_check_data_rejects_run_past_end),
        cmocka_unit_test(test_check_data_rejects_wrong_offset),
        cmocka_unit_test(test_check_data_rejects_length_larger_than_blocks),
        cmocka_unit_test(test_check_data_rejects_too_many_blocks_for_length),
        cmocka_unit_test(test_check_data_rejects_zero_block_count),
        cmocka_unit_test(test_check_release),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
