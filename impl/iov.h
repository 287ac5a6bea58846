/* iov.h - small helpers to move bytes between iovec arrays and flat memory. */
#ifndef SHMSOCK_IMPL_IOV_H
#define SHMSOCK_IMPL_IOV_H

#include <stddef.h>
#include <sys/uio.h>

/* Total length of an iovec array. */
size_t shmsock_iov_length(const struct iovec *iov, size_t count);

/* Gather `len` bytes starting at byte `skip` of the iovec array into dst. */
void shmsock_iov_gather(void *dst, const struct iovec *iov, size_t count, size_t skip, size_t len);

/* Scatter len bytes from src into the iovec array starting at byte `skip`; returns bytes
 * copied (less than len if the array ends first). */
size_t shmsock_iov_scatter(const struct iovec *iov, size_t count, size_t skip, const void *src,
                           size_t len);

/*
 * Describe bytes [skip, skip + limit) of an iovec array as a new array `out` (capacity
 * out_cap, at least `count`). Returns the number of entries used.
 */
size_t shmsock_iov_window(const struct iovec *iov, size_t count, size_t skip, size_t limit,
                          struct iovec *out);

#endif
