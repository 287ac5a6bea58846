/*
 * payload.c - the producer's pattern and the consumer's check, both touching every byte.
 *
 * Message number seq is the 64-bit little-endian words base(seq) + 0, base(seq) + 1, ...
 * (a last partial word holds the low bytes of the next one). The consumer compares every word
 * with the value it must have and accumulates the differences: a lost, repeated, reordered or
 * corrupted message, or a misplaced word, is caught, at the cost of a checksum loop.
 */
#include "bench.h"

typedef uint64_t unaligned_u64 __attribute__((aligned(1), may_alias));

static uint64_t base_of(uint64_t seq)
{
    return (seq + 1) * 0x9E3779B97F4A7C15ull;
}

/* Byte number i (from 0) of the message as the pattern has it. */
static unsigned char pattern_byte(uint64_t base, size_t i)
{
    uint64_t word = base + i / 8;
    return (unsigned char)(word >> (8 * (i % 8)));
}

void payload_fill(void *buf, size_t len, uint64_t seq)
{
    uint64_t base = base_of(seq);
    unaligned_u64 *w = buf;
    size_t words = len / 8;
    for (size_t i = 0; i < words; i++)
        w[i] = base + i;
    unsigned char *tail = (unsigned char *)buf + words * 8;
    for (size_t i = words * 8; i < len; i++)
        *tail++ = pattern_byte(base, i);
}

int payload_verify(const void *buf, size_t offset, size_t len, uint64_t seq)
{
    uint64_t base = base_of(seq);
    const unsigned char *p = buf;
    size_t i = offset, end = offset + len;
    unsigned diff = 0;
    /* A view may start in the middle of a word: bytes until the next word boundary. */
    while (i < end && i % 8 != 0) {
        diff |= (unsigned)(*p++ ^ pattern_byte(base, i));
        i++;
    }
    const unaligned_u64 *w = (const unaligned_u64 *)p;
    size_t words = (end - i) / 8;
    uint64_t acc = 0;
    uint64_t first = base + i / 8;
    for (size_t k = 0; k < words; k++)
        acc |= w[k] ^ (first + k);
    p += words * 8;
    i += words * 8;
    while (i < end) {
        diff |= (unsigned)(*p++ ^ pattern_byte(base, i));
        i++;
    }
    return (acc | diff) != 0;
}
