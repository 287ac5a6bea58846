/*
 * iov_test.c - unit tests for impl/iov.{h,c}: length, gather, scatter and window over iovec
 * arrays, with skips that cross entries and zero-length entries. Every case is also checked
 * against a byte-by-byte reference over all skip/length combinations. The check of the
 * application's memory: EFAULT exactly where a copy would fault (only the bytes the copy
 * touches count), and a scatter that would fault writes nothing.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cmocka.h>

#include "impl/iov.h"

/* Source bytes: 0, 1, 2, ... laid into entries of lengths {3, 0, 5, 0, 0, 1, 4, 0}. */
#define N_ENTRIES 8
static const size_t LENGTHS[N_ENTRIES] = {3, 0, 5, 0, 0, 1, 4, 0};
#define TOTAL 13

struct layout {
    unsigned char storage[N_ENTRIES][8];
    struct iovec iov[N_ENTRIES];
};

/* Fill entries so that flat byte i of the array has value base + i. */
static void layout_init(struct layout *l, unsigned char base)
{
    memset(l->storage, 0xee, sizeof(l->storage));
    size_t k = 0;
    for (size_t i = 0; i < N_ENTRIES; i++) {
        l->iov[i].iov_base = LENGTHS[i] ? l->storage[i] : NULL;
        l->iov[i].iov_len = LENGTHS[i];
        for (size_t j = 0; j < LENGTHS[i]; j++)
            l->storage[i][j] = (unsigned char)(base + k++);
    }
    assert_int_equal(k, TOTAL);
}

/* Flat byte `index` of the array (reference). */
static unsigned char *byte_at(struct layout *l, size_t index)
{
    for (size_t i = 0; i < N_ENTRIES; i++) {
        if (index < LENGTHS[i])
            return &l->storage[i][index];
        index -= LENGTHS[i];
    }
    return NULL;
}

static void test_length(void **state)
{
    (void)state;
    struct layout l;
    layout_init(&l, 0);
    assert_int_equal(shmsock_iov_length(l.iov, N_ENTRIES), TOTAL);
    assert_int_equal(shmsock_iov_length(l.iov, 0), 0);
    assert_int_equal(shmsock_iov_length(l.iov, 1), 3);
    assert_int_equal(shmsock_iov_length(l.iov, 2), 3);
    assert_int_equal(shmsock_iov_length(l.iov + 3, 2), 0);
}

static void test_gather_examples(void **state)
{
    (void)state;
    struct layout l;
    layout_init(&l, 100);
    unsigned char out[TOTAL + 4];

    /* Everything. */
    memset(out, 0, sizeof(out));
    shmsock_iov_gather(out, l.iov, N_ENTRIES, 0, TOTAL);
    for (int i = 0; i < TOTAL; i++)
        assert_int_equal(out[i], 100 + i);

    /* A skip that ends exactly at an entry boundary, then across two zero-length entries. */
    memset(out, 0, sizeof(out));
    shmsock_iov_gather(out, l.iov, N_ENTRIES, 3, 6);
    const unsigned char e1[6] = {103, 104, 105, 106, 107, 108};
    assert_memory_equal(out, e1, 6);
    assert_int_equal(out[6], 0); /* nothing written past len */

    /* A skip into the middle of an entry, spanning three entries. */
    memset(out, 0, sizeof(out));
    shmsock_iov_gather(out, l.iov, N_ENTRIES, 2, 8);
    const unsigned char e2[8] = {102, 103, 104, 105, 106, 107, 108, 109};
    assert_memory_equal(out, e2, 8);

    /* The single-byte entry alone. */
    memset(out, 0, sizeof(out));
    shmsock_iov_gather(out, l.iov, N_ENTRIES, 8, 1);
    assert_int_equal(out[0], 108);
    assert_int_equal(out[1], 0);

    /* Zero length writes nothing. */
    memset(out, 0x55, sizeof(out));
    shmsock_iov_gather(out, l.iov, N_ENTRIES, 5, 0);
    for (size_t i = 0; i < sizeof(out); i++)
        assert_int_equal(out[i], 0x55);
}

static void test_gather_exhaustive(void **state)
{
    (void)state;
    struct layout l;
    layout_init(&l, 1);
    for (size_t skip = 0; skip <= TOTAL; skip++) {
        for (size_t len = 0; skip + len <= TOTAL; len++) {
            unsigned char out[TOTAL + 2];
            memset(out, 0xaa, sizeof(out));
            shmsock_iov_gather(out, l.iov, N_ENTRIES, skip, len);
            for (size_t i = 0; i < len; i++)
                assert_int_equal(out[i], *byte_at(&l, skip + i));
            for (size_t i = len; i < sizeof(out); i++)
                assert_int_equal(out[i], 0xaa);
        }
    }
}

static void test_scatter_examples(void **state)
{
    (void)state;
    struct layout l;
    layout_init(&l, 0);
    const unsigned char src[TOTAL + 5] = {200, 201, 202, 203, 204, 205, 206, 207, 208,
                                          209, 210, 211, 212, 213, 214, 215, 216, 217};

    /* Into the middle: skip 2, 4 bytes cross from entry 0 into entry 2. */
    assert_int_equal(shmsock_iov_scatter(l.iov, N_ENTRIES, 2, src, 4), 4);
    assert_int_equal(*byte_at(&l, 1), 1); /* before: untouched */
    assert_int_equal(*byte_at(&l, 2), 200);
    assert_int_equal(*byte_at(&l, 3), 201);
    assert_int_equal(*byte_at(&l, 4), 202);
    assert_int_equal(*byte_at(&l, 5), 203);
    assert_int_equal(*byte_at(&l, 6), 6); /* after: untouched */

    /* More than fits: stops at the end and says how much it copied. */
    layout_init(&l, 0);
    assert_int_equal(shmsock_iov_scatter(l.iov, N_ENTRIES, 10, src, 10), 3);
    assert_int_equal(*byte_at(&l, 9), 9);
    assert_int_equal(*byte_at(&l, 10), 200);
    assert_int_equal(*byte_at(&l, 11), 201);
    assert_int_equal(*byte_at(&l, 12), 202);
    /* Nothing written beyond the entries' lengths. */
    assert_int_equal(l.storage[6][4], 0xee);
    assert_int_equal(l.storage[7][0], 0xee);

    /* Skip at or past the end: nothing. */
    layout_init(&l, 0);
    assert_int_equal(shmsock_iov_scatter(l.iov, N_ENTRIES, TOTAL, src, 5), 0);
    assert_int_equal(shmsock_iov_scatter(l.iov, N_ENTRIES, TOTAL + 7, src, 5), 0);
    /* Zero length: nothing. */
    assert_int_equal(shmsock_iov_scatter(l.iov, N_ENTRIES, 0, src, 0), 0);
    for (size_t i = 0; i < TOTAL; i++)
        assert_int_equal(*byte_at(&l, i), i);
    /* Empty array. */
    assert_int_equal(shmsock_iov_scatter(l.iov, 0, 0, src, 5), 0);
    /* An array of only zero-length entries. */
    assert_int_equal(shmsock_iov_scatter(l.iov + 3, 2, 0, src, 5), 0);
}

static void test_scatter_exhaustive(void **state)
{
    (void)state;
    unsigned char src[TOTAL + 3];
    for (size_t i = 0; i < sizeof(src); i++)
        src[i] = (unsigned char)(0x80 + i);
    for (size_t skip = 0; skip <= TOTAL + 1; skip++) {
        for (size_t len = 0; len <= sizeof(src); len++) {
            struct layout l;
            layout_init(&l, 0);
            size_t expected = skip >= TOTAL ? 0 : (len < TOTAL - skip ? len : TOTAL - skip);
            assert_int_equal(shmsock_iov_scatter(l.iov, N_ENTRIES, skip, src, len), expected);
            for (size_t i = 0; i < TOTAL; i++) {
                unsigned char want =
                    (i >= skip && i < skip + expected) ? src[i - skip] : (unsigned char)i;
                assert_int_equal(*byte_at(&l, i), want);
            }
            /* Padding beyond each entry untouched. */
            for (size_t e = 0; e < N_ENTRIES; e++)
                for (size_t j = LENGTHS[e]; j < 8; j++)
                    assert_int_equal(l.storage[e][j], 0xee);
        }
    }
}

static void test_window_examples(void **state)
{
    (void)state;
    struct layout l;
    layout_init(&l, 0);
    struct iovec out[N_ENTRIES];

    /* The whole array: zero-length entries are not carried over. */
    size_t n = shmsock_iov_window(l.iov, N_ENTRIES, 0, TOTAL, out);
    assert_int_equal(n, 4);
    assert_ptr_equal(out[0].iov_base, l.storage[0]);
    assert_int_equal(out[0].iov_len, 3);
    assert_ptr_equal(out[1].iov_base, l.storage[2]);
    assert_int_equal(out[1].iov_len, 5);
    assert_ptr_equal(out[2].iov_base, l.storage[5]);
    assert_int_equal(out[2].iov_len, 1);
    assert_ptr_equal(out[3].iov_base, l.storage[6]);
    assert_int_equal(out[3].iov_len, 4);

    /* Skip into the middle of entry 2, limit ending inside entry 6. */
    n = shmsock_iov_window(l.iov, N_ENTRIES, 4, 7, out);
    assert_int_equal(n, 3);
    assert_ptr_equal(out[0].iov_base, l.storage[2] + 1);
    assert_int_equal(out[0].iov_len, 4);
    assert_ptr_equal(out[1].iov_base, l.storage[5]);
    assert_int_equal(out[1].iov_len, 1);
    assert_ptr_equal(out[2].iov_base, l.storage[6]);
    assert_int_equal(out[2].iov_len, 2);

    /* Limit larger than what is left: up to the end. */
    n = shmsock_iov_window(l.iov, N_ENTRIES, 11, 100, out);
    assert_int_equal(n, 1);
    assert_ptr_equal(out[0].iov_base, l.storage[6] + 2);
    assert_int_equal(out[0].iov_len, 2);

    /* Zero limit, skip at the end, skip past the end, empty array: no entries. */
    assert_int_equal(shmsock_iov_window(l.iov, N_ENTRIES, 0, 0, out), 0);
    assert_int_equal(shmsock_iov_window(l.iov, N_ENTRIES, TOTAL, 5, out), 0);
    assert_int_equal(shmsock_iov_window(l.iov, N_ENTRIES, TOTAL + 3, 5, out), 0);
    assert_int_equal(shmsock_iov_window(l.iov, 0, 0, 5, out), 0);
}

static void test_window_exhaustive(void **state)
{
    (void)state;
    struct layout l;
    layout_init(&l, 0);
    for (size_t skip = 0; skip <= TOTAL + 1; skip++) {
        for (size_t limit = 0; limit <= TOTAL + 2; limit++) {
            struct iovec out[N_ENTRIES];
            memset(out, 0, sizeof(out));
            size_t n = shmsock_iov_window(l.iov, N_ENTRIES, skip, limit, out);
            assert_true(n <= N_ENTRIES);
            /* The window covers exactly bytes [skip, min(skip + limit, TOTAL)), in order. */
            size_t expected_len = skip >= TOTAL ? 0 : (limit < TOTAL - skip ? limit : TOTAL - skip);
            assert_int_equal(shmsock_iov_length(out, n), expected_len);
            size_t k = skip;
            for (size_t e = 0; e < n; e++) {
                assert_true(out[e].iov_len > 0);
                for (size_t j = 0; j < out[e].iov_len; j++, k++)
                    assert_ptr_equal((unsigned char *)out[e].iov_base + j, byte_at(&l, k));
            }
            /* Gathering the window equals gathering the original range. */
            unsigned char a[TOTAL], b[TOTAL];
            shmsock_iov_gather(a, out, n, 0, expected_len);
            shmsock_iov_gather(b, l.iov, N_ENTRIES, skip, expected_len);
            assert_memory_equal(a, b, expected_len);
        }
    }
}

static void test_check(void **state)
{
    (void)state;
    const size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    unsigned char *pages =
        mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(pages != MAP_FAILED);
    assert_int_equal(mprotect(pages + pg, pg, PROT_READ), 0); /* page 1: read-only */
    assert_int_equal(munmap(pages + 2 * pg, pg), 0);          /* page 2: not mapped */
    struct iovec iov[2] = {{.iov_base = pages + pg - 96, .iov_len = 96},
                           {.iov_base = pages + pg, .iov_len = 2 * pg}};
    /* Readable: page 0 and 1; writable: page 0 only; page 2: nothing. */
    assert_int_equal(shmsock_iov_check(iov, 2, 0, 96 + pg, false), 0);
    assert_int_equal(shmsock_iov_check(iov, 2, 0, 96 + pg + 1, false), -EFAULT);
    assert_int_equal(shmsock_iov_check(iov, 2, 0, 96, true), 0);
    assert_int_equal(shmsock_iov_check(iov, 2, 0, 97, true), -EFAULT);
    assert_int_equal(shmsock_iov_check(iov, 2, 96 + pg, 1, false), -EFAULT);
    /* Asked again (remembered ranges): the same answers. */
    assert_int_equal(shmsock_iov_check(iov, 2, 0, 96 + pg, false), 0);
    assert_int_equal(shmsock_iov_check(iov, 2, 0, 97, true), -EFAULT);
    /* A scatter that would fault writes nothing; one that stays in page 0 works. */
    unsigned char src[128];
    memset(src, 0x5a, sizeof(src));
    memset(pages, 0, pg);
    assert_int_equal(shmsock_iov_scatter(iov, 2, 0, src, 97), -EFAULT);
    assert_int_equal(pages[pg - 96], 0);
    assert_int_equal(shmsock_iov_scatter(iov, 2, 0, src, 96), 96);
    assert_int_equal(pages[pg - 1], 0x5a);
    munmap(pages, 2 * pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_length),
        cmocka_unit_test(test_gather_examples),
        cmocka_unit_test(test_gather_exhaustive),
        cmocka_unit_test(test_scatter_examples),
        cmocka_unit_test(test_scatter_exhaustive),
        cmocka_unit_test(test_window_examples),
        cmocka_unit_test(test_window_exhaustive),
        cmocka_unit_test(test_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
