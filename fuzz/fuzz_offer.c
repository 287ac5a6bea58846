/*
 * fuzz_offer.c - libFuzzer target for shmsock_ancillary_take_offer and _take_answer (one or
 * two descriptors) on a crafted msghdr control buffer: any cmsg layout (lengths, levels,
 * types, descriptor counts), with descriptor numbers that are not open in this process (or
 * are -1), so the fstat/pread/fcntl checks on them fail cleanly. Also runs
 * shmsock_ancillary_present and _has_rights. Invariants: no crash or read outside the buffer
 * (ASan), msg_controllen never changes, and no descriptor number is ever reported as an offer
 * or an answer (none of them is a real region).
 *
 * Descriptors the input names (in SCM_RIGHTS data) are mapped into [1000000, 1000000 + 2^16)
 * or -1: far above any descriptor the fuzzer opens, so fstat/pread on them fail (EBADF).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "impl/ancillary.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAKE_FD_BASE 1000000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > SHMSOCK_CONTROL_SPACE)
        size = SHMSOCK_CONTROL_SPACE;
    /* An exactly sized heap copy, aligned for cmsghdr: reads past it are caught. */
    size_t alloc = size == 0 ? 1 : size;
    unsigned char *control = aligned_alloc(_Alignof(struct cmsghdr),
                                           (alloc + _Alignof(struct cmsghdr) - 1) /
                                               _Alignof(struct cmsghdr) * _Alignof(struct cmsghdr));
    if (control == NULL)
        return 0;
    memcpy(control, data, size);
    /* The kernel never writes a control message longer than the buffer (put_cmsg cuts it to
     * what is left and sets MSG_CTRUNC): clamp cmsg_len the same way, unless
     * SHMSOCK_FUZZ_OFFER_RAW is set to fuzz buffers no kernel produces (see the report in
     * fuzz/known_bugs/README). */
    static int raw = -1;
    if (raw < 0)
        raw = getenv("SHMSOCK_FUZZ_OFFER_RAW") != NULL;
    struct msghdr clamp = {.msg_control = size ? control : NULL, .msg_controllen = size};
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&clamp); c != NULL && !raw; c = CMSG_NXTHDR(&clamp, c)) {
        size_t left = size - (size_t)((unsigned char *)c - control);
        if (c->cmsg_len > left)
            c->cmsg_len = left;
    }
    /* Every descriptor slot of every SCM_RIGHTS message (walked with glibc's own macros)
     * gets a fake number; headers and all other bytes stay as the input says. */
    struct msghdr walk = {.msg_control = size ? control : NULL, .msg_controllen = size};
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&walk); c != NULL; c = CMSG_NXTHDR(&walk, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t start = (size_t)((unsigned char *)c - control);
        size_t stop = size; /* the end of this message's data, clamped to the buffer */
        if (c->cmsg_len >= CMSG_LEN(0) && c->cmsg_len <= size - start)
            stop = start + c->cmsg_len;
        for (size_t at = start + CMSG_LEN(0); at + sizeof(int) <= stop; at += sizeof(int)) {
            int fd;
            memcpy(&fd, control + at, sizeof(fd));
            fd = fd < 0 ? -1 : FAKE_FD_BASE + (fd & 0xFFFF);
            memcpy(control + at, &fd, sizeof(fd));
        }
    }
    struct msghdr msg = {.msg_control = size ? control : NULL, .msg_controllen = size};
    (void)shmsock_ancillary_present(&msg);
    (void)shmsock_ancillary_has_rights(&msg);
    int fds[2] = {-7, -7};
    if (shmsock_ancillary_take_offer(&msg, fds, NULL) ||
        shmsock_ancillary_take_answer(&msg, fds, NULL))
        abort(); /* no fake descriptor can be a sealed region */
    if (msg.msg_controllen != size || fds[0] != -7 || fds[1] != -7)
        abort();
    free(control);
    return 0;
}
