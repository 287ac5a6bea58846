/* iov.h - small helpers to move bytes between iovec arrays and flat memory. */
#ifndef SHMSOCK_IMPL_IOV_H
#define SHMSOCK_IMPL_IOV_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Total length of an iovec array. */
size_t shmsock_iov_length(const struct iovec *iov, size_t count);

/* Whether the application's bytes [skip, skip + len) of the iovec array may be read (or, with
 * `write`, written) without a fault: 0, or -EFAULT where the kernel's copy would fail with
 * EFAULT (not mapped, not accessible, a file mapped past its end). Asks the kernel the first
 * time a thread meets a page range, then remembers it (iov.c). */
int shmsock_iov_check(const struct iovec *iov, size_t count, size_t skip, size_t len, bool write);

/* Gather `len` bytes starting at byte `skip` of the iovec array into dst. The caller has
 * checked them (shmsock_iov_check): the application's memory is read as it is. */
void shmsock_iov_gather(void *dst, const struct iovec *iov, size_t count, size_t skip, size_t len);

/* Scatter len bytes from src into the iovec array starting at byte `skip`; returns bytes
 * copied (less than len if the array ends first), or -EFAULT, with nothing copied, where the
 * application's memory cannot take them (shmsock_iov_check). */
ssize_t shmsock_iov_scatter(const struct iovec *iov, size_t count, size_t skip, const void *src,
                            size_t len);

/*
 * Describe bytes [skip, skip + limit) of an iovec array as a new array `out` (capacity
 * out_cap, at least `count`). Returns the number of entries used.
 */
size_t shmsock_iov_window(const struct iovec *iov, size_t count, size_t skip, size_t limit,
                          struct iovec *out);

#endif
