/* iov.c - see iov.h. */
#define _GNU_SOURCE
#include "iov.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14 */
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

size_t shmsock_iov_length(const struct iovec *iov, size_t count)
{
    size_t total = 0;
    for (size_t i = 0; i < count; i++)
        total += iov[i].iov_len;
    return total;
}

/*
 * Checking the application's memory.
 *
 * A kernel socket call copies the application's buffer with copy_from_user/copy_to_user and
 * fails with EFAULT where it is not mapped, not accessible, or a file mapped past its end;
 * our memcpy would raise SIGSEGV or SIGBUS instead. So the bytes a copy touches are first
 * shown to the kernel: madvise(MADV_POPULATE_READ or _WRITE) over their pages fails exactly
 * where an access would fault (ENOMEM: not mapped; EINVAL: PROT_NONE, or read-only for a
 * write; EFAULT: SIGBUS, past the end of a file) and faults nothing in that was not going to
 * be touched by the copy anyway.
 *
 * That costs a system call (2-3 us here, more than a whole small send on shared memory), so
 * each thread remembers what it has checked: pages, in a small direct-mapped cache (a server
 * that answers 32 clients from 32 reply buffers asks the kernel once per buffer, not once per
 * reply: measured with redis, 0.9 madvise per request with a table of 32 ranges), and long
 * ranges (more pages than a look-up should cost) in a table of ranges. The price: a buffer
 * that the application unmaps (or whose file it truncates) after a successful call and then
 * passes again still faults, where the kernel would say EFAULT (README, Behaviour and limits).
 */
#define TRUSTED_PAGES 512   /* cache entries; a power of two */
#define LONG_RANGE_PAGES 64 /* ranges of more pages go to the range table */
#define TRUSTED_RANGES 16

/* An entry: the page's address, | 1 once checked for reading, | 2 for writing (which implies
 * reading); 0: empty. */
static __thread uintptr_t trusted_page[TRUSTED_PAGES];

struct trusted_range {
    uintptr_t start, end; /* page aligned; end == 0: unused */
    bool writable;        /* checked for writing (which implies reading) */
};

static __thread struct trusted_range trusted_range[TRUSTED_RANGES];
static __thread unsigned trusted_next;

/* 1: MADV_POPULATE_* works; -1: this kernel has none (before 5.14), copies go unchecked. */
static int populate_supported;
static uintptr_t page_size;
static unsigned page_shift;

static uintptr_t *page_entry(uintptr_t page)
{
    return &trusted_page[(page >> page_shift) & (TRUSTED_PAGES - 1)];
}

static bool is_trusted(uintptr_t start, uintptr_t end, bool write)
{
    uintptr_t page = __atomic_load_n(&page_size, __ATOMIC_RELAXED);
    if ((end - start) / page <= LONG_RANGE_PAGES) {
        for (uintptr_t at = start; at < end; at += page) {
            uintptr_t entry = *page_entry(at);
            if ((entry & ~(uintptr_t)3) != at || (write && !(entry & 2)))
                return false;
        }
        return true;
    }
    for (unsigned i = 0; i < TRUSTED_RANGES; i++) {
        const struct trusted_range *t = &trusted_range[i];
        if (t->start <= start && end <= t->end && (t->writable || !write))
            return true;
    }
    return false;
}

static void trust(uintptr_t start, uintptr_t end, bool write)
{
    uintptr_t page = __atomic_load_n(&page_size, __ATOMIC_RELAXED);
    if ((end - start) / page <= LONG_RANGE_PAGES) {
        for (uintptr_t at = start; at < end; at += page) {
            uintptr_t *entry = page_entry(at);
            /* A page checked for writing stays so when it is read from. */
            uintptr_t writable = (*entry & ~(uintptr_t)3) == at ? (*entry & 2) : 0;
            *entry = at | 1 | (write ? 2 : writable);
        }
        return;
    }
    /* Grow a range that this one touches (a large buffer read in pieces stays one range). */
    for (unsigned i = 0; i < TRUSTED_RANGES; i++) {
        struct trusted_range *t = &trusted_range[i];
        if (t->end != 0 && t->writable == write && start <= t->end && t->start <= end) {
            t->start = start < t->start ? start : t->start;
            t->end = end > t->end ? end : t->end;
            return;
        }
    }
    trusted_range[trusted_next] =
        (struct trusted_range){.start = start, .end = end, .writable = write};
    trusted_next = (trusted_next + 1) % TRUSTED_RANGES;
}

static bool populate_works(void)
{
    int state = __atomic_load_n(&populate_supported, __ATOMIC_ACQUIRE);
    if (state == 0) {
        static const int probe_target = 1;
        uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
        __atomic_store_n(&page_shift, (unsigned)__builtin_ctzl(page), __ATOMIC_RELAXED);
        __atomic_store_n(&page_size, page, __ATOMIC_RELAXED);
        uintptr_t at = (uintptr_t)&probe_target & ~(page - 1);
        state = madvise((void *)at, page, MADV_POPULATE_READ) == 0 ? 1 : -1;
        __atomic_store_n(&populate_supported, state, __ATOMIC_RELEASE);
    }
    return state > 0;
}

/* Whether the application's bytes [p, p + n) can be read (or written): 0 or -EFAULT. */
static int check_range(const void *p, size_t n, bool write)
{
    if (n == 0)
        return 0;
    uintptr_t start = (uintptr_t)p;
    if (start + n < start)
        return -EFAULT;
    if (!populate_works())
        return 0;
    uintptr_t page = __atomic_load_n(&page_size, __ATOMIC_RELAXED);
    uintptr_t first = start & ~(page - 1);
    uintptr_t end = (start + n + page - 1) & ~(page - 1);
    if (end == 0) /* the last page of the address space: never the application's */
        return -EFAULT;
    if (is_trusted(first, end, write))
        return 0;
    int advice = write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ;
    for (int tries = 0; madvise((void *)first, end - first, advice) < 0; tries++) {
        /* EINTR, EAGAIN: try again (a few times; then the copy goes unchecked). Any other
         * answer means an access would fault. (A device mapping, VM_PFNMAP, also says EINVAL:
         * a buffer there is reported as EFAULT.) */
        if ((errno != EINTR && errno != EAGAIN))
            return -EFAULT;
        if (tries == 3)
            return 0;
    }
    trust(first, end, write);
    return 0;
}

/* The bytes [skip, skip + len) of an iovec array, walked one entry's piece at a time: every
 * copy and check below goes through it. */
struct iov_walk {
    const struct iovec *iov;
    size_t count;
    size_t i;    /* the entry to look at next */
    size_t skip; /* bytes still to pass over */
    size_t left; /* bytes still to hand out */
};

static inline bool iov_next(struct iov_walk *w, unsigned char **at, size_t *n)
{
    for (; w->i < w->count && w->left > 0; w->i++) {
        size_t len = w->iov[w->i].iov_len;
        if (w->skip >= len) {
            w->skip -= len;
            continue;
        }
        size_t piece = len - w->skip < w->left ? len - w->skip : w->left;
        *at = (unsigned char *)w->iov[w->i].iov_base + w->skip;
        *n = piece;
        w->left -= piece;
        w->skip = 0;
        w->i++;
        return true;
    }
    return false;
}

int shmsock_iov_check(const struct iovec *iov, size_t count, size_t skip, size_t len, bool write)
{
    struct iov_walk walk = {.iov = iov, .count = count, .skip = skip, .left = len};
    unsigned char *at;
    size_t n;
    while (iov_next(&walk, &at, &n)) {
        int err = check_range(at, n, write);
        if (err < 0)
            return err;
    }
    return 0;
}

void shmsock_iov_gather(void *dst, const struct iovec *iov, size_t count, size_t skip, size_t len)
{
    struct iov_walk walk = {.iov = iov, .count = count, .skip = skip, .left = len};
    unsigned char *out = dst, *at;
    size_t n;
    while (iov_next(&walk, &at, &n)) {
        memcpy(out, at, n);
        out += n;
    }
}

ssize_t shmsock_iov_scatter(const struct iovec *iov, size_t count, size_t skip, const void *src,
                            size_t len)
{
    int err = shmsock_iov_check(iov, count, skip, len, true);
    if (err < 0)
        return err;
    struct iov_walk walk = {.iov = iov, .count = count, .skip = skip, .left = len};
    const unsigned char *in = src;
    unsigned char *at;
    size_t n, done = 0;
    while (iov_next(&walk, &at, &n)) {
        memcpy(at, in + done, n);
        done += n;
    }
    return (ssize_t)done;
}

size_t shmsock_iov_window(const struct iovec *iov, size_t count, size_t skip, size_t limit,
                          struct iovec *out)
{
    struct iov_walk walk = {.iov = iov, .count = count, .skip = skip, .left = limit};
    unsigned char *at;
    size_t n, used = 0;
    while (iov_next(&walk, &at, &n))
        out[used++] = (struct iovec){.iov_base = at, .iov_len = n};
    return used;
}
