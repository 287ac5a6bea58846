/* iov.c - see iov.h. */
#include "iov.h"

#include <string.h>

size_t shmsock_iov_length(const struct iovec *iov, size_t count)
{
    size_t total = 0;
    for (size_t i = 0; i < count; i++)
        total += iov[i].iov_len;
    return total;
}

void shmsock_iov_gather(void *dst, const struct iovec *iov, size_t count, size_t skip, size_t len)
{
    unsigned char *out = dst;
    for (size_t i = 0; i < count && len > 0; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        size_t n = iov[i].iov_len - skip;
        if (n > len)
            n = len;
        memcpy(out, (const unsigned char *)iov[i].iov_base + skip, n);
        out += n;
        len -= n;
        skip = 0;
    }
}

size_t shmsock_iov_scatter(const struct iovec *iov, size_t count, size_t skip, const void *src,
                           size_t len)
{
    const unsigned char *in = src;
    size_t done = 0;
    for (size_t i = 0; i < count && done < len; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        size_t n = iov[i].iov_len - skip;
        if (n > len - done)
            n = len - done;
        memcpy((unsigned char *)iov[i].iov_base + skip, in + done, n);
        done += n;
        skip = 0;
    }
    return done;
}

size_t shmsock_iov_window(const struct iovec *iov, size_t count, size_t skip, size_t limit,
                          struct iovec *out)
{
    size_t used = 0;
    for (size_t i = 0; i < count && limit > 0; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        size_t n = iov[i].iov_len - skip;
        if (n > limit)
            n = limit;
        out[used].iov_base = (unsigned char *)iov[i].iov_base + skip;
        out[used].iov_len = n;
        used++;
        limit -= n;
        skip = 0;
    }
    return used;
}
