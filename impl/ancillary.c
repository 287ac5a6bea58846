/* ancillary.c - see ancillary.h. */
#define _GNU_SOURCE
#include "ancillary.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "region.h"

size_t shmsock_ancillary_build_offer(union shmsock_control_buffer *buffer, int region_fd,
                                     int release_fd)
{
    int fds[2] = {region_fd, release_fd};
    size_t size = (release_fd >= 0 ? 2 : 1) * sizeof(int);
    memset(buffer, 0, CMSG_SPACE(size));
    struct cmsghdr *cmsg = &buffer->align;
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(size);
    memcpy(CMSG_DATA(cmsg), fds, size);
    return CMSG_SPACE(size);
}

/* Whether a control message lies entirely inside the buffer (cmsg_len is not trusted). */
static bool fits(const struct msghdr *msg, const struct cmsghdr *cmsg)
{
    const unsigned char *end = (const unsigned char *)msg->msg_control + msg->msg_controllen;
    const unsigned char *at = (const unsigned char *)cmsg;
    return cmsg->cmsg_len >= CMSG_LEN(0) && cmsg->cmsg_len <= (size_t)(end - at);
}

static bool is_socket(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* The only SCM_RIGHTS control message in received data, or NULL (none, or several). */
static struct cmsghdr *only_rights(struct msghdr *received)
{
    struct cmsghdr *found = NULL;
    for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(received); cmsg != NULL;
         cmsg = CMSG_NXTHDR(received, cmsg)) {
        if (!fits(received, cmsg))
            return NULL;
        if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS) {
            if (found != NULL)
                return NULL;
            found = cmsg;
        }
    }
    return found;
}

/* Take an offer of `min_fds` to 2 descriptors: [region] or [region, release socket]. */
static bool take(struct msghdr *received, int fds[2], struct shmsock_region_candidate *candidate,
                 size_t min_fds)
{
    if (received->msg_controllen == 0 || received->msg_control == NULL)
        return false;
    /* Credentials (SO_PASSCRED) may come beside the offer; they stay for the application. */
    struct cmsghdr *cmsg = only_rights(received);
    if (cmsg == NULL)
        return false;
    size_t count = 0;
    for (size_t n = min_fds; n <= 2; n++)
        if (cmsg->cmsg_len == CMSG_LEN(n * sizeof(int)))
            count = n;
    if (count == 0)
        return false;
    int received_fds[2] = {-1, -1};
    memcpy(received_fds, CMSG_DATA(cmsg), count * sizeof(int));
    /* Recognised straight into the caller's candidate: it is large, and a read that finds
     * the peer's offer must not need much stack. */
    bool region = candidate != NULL ? shmsock_region_recognize(received_fds[0], candidate)
                                    : shmsock_region_fd_has_magic(received_fds[0]);
    if (!region || (count == 2 && !is_socket(received_fds[1])))
        return false;
    fds[0] = received_fds[0];
    fds[1] = received_fds[1];
    /* Cut the offer's control message out of the buffer. */
    unsigned char *start = (unsigned char *)cmsg;
    unsigned char *end = (unsigned char *)received->msg_control + received->msg_controllen;
    size_t space = CMSG_SPACE(count * sizeof(int));
    size_t after = (size_t)(end - start) > space ? (size_t)(end - start) - space : 0;
    memmove(start, start + space, after);
    received->msg_controllen -= (size_t)(end - start) - after;
    return true;
}

bool shmsock_ancillary_take_offer(struct msghdr *received, int fds[2],
                                  struct shmsock_region_candidate *candidate)
{
    return take(received, fds, candidate, 2);
}

bool shmsock_ancillary_take_answer(struct msghdr *received, int fds[2],
                                   struct shmsock_region_candidate *candidate)
{
    return take(received, fds, candidate, 1);
}

/* Whether control data holds a message of this SOL_SOCKET type. */
static bool holds(const struct msghdr *msg, int type)
{
    if (msg->msg_control == NULL || msg->msg_controllen == 0)
        return false;
    for (struct cmsghdr *cmsg = CMSG_FIRSTHDR((struct msghdr *)msg); cmsg != NULL;
         cmsg = CMSG_NXTHDR((struct msghdr *)msg, cmsg)) {
        if (!fits(msg, cmsg))
            return false;
        if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == type)
            return true;
    }
    return false;
}

bool shmsock_ancillary_has_rights(const struct msghdr *received)
{
    return holds(received, SCM_RIGHTS);
}

bool shmsock_ancillary_has_credentials(const struct msghdr *msg)
{
    return holds(msg, SCM_CREDENTIALS);
}

void shmsock_ancillary_drop_credentials(struct msghdr *msg)
{
    if (msg->msg_control == NULL)
        return;
    unsigned char *base = msg->msg_control;
    size_t kept = 0, at = 0;
    while (at + sizeof(struct cmsghdr) <= msg->msg_controllen) {
        struct cmsghdr header;
        memcpy(&header, base + at, sizeof(header));
        if (header.cmsg_len < CMSG_LEN(0) || header.cmsg_len > msg->msg_controllen - at)
            break;
        size_t step = CMSG_ALIGN(header.cmsg_len);
        if (step > msg->msg_controllen - at)
            step = msg->msg_controllen - at;
        if (header.cmsg_level != SOL_SOCKET || header.cmsg_type != SCM_CREDENTIALS) {
            memmove(base + kept, base + at, step);
            kept += step;
        }
        at += step;
    }
    msg->msg_controllen = kept;
}

bool shmsock_ancillary_present(const struct msghdr *msg)
{
    return msg->msg_control != NULL && msg->msg_controllen >= sizeof(struct cmsghdr);
}

static void close_fd_array(const unsigned char *data, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        int fd;
        memcpy(&fd, data + i * sizeof(int), sizeof(int));
        close(fd);
    }
}

void shmsock_ancillary_close_fds(const struct msghdr *received)
{
    if (received->msg_controllen == 0)
        return;
    for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(received); cmsg != NULL;
         cmsg = CMSG_NXTHDR((struct msghdr *)received, cmsg)) {
        if (!fits(received, cmsg))
            break;
        if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS)
            close_fd_array(CMSG_DATA(cmsg), (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    }
}

static void deliver(const struct msghdr *received, struct msghdr *user, bool with_rights);

void shmsock_ancillary_deliver(const struct msghdr *received, struct msghdr *user)
{
    deliver(received, user, true);
}

void shmsock_ancillary_deliver_without_rights(const struct msghdr *received, struct msghdr *user)
{
    deliver(received, user, false);
}

static void deliver(const struct msghdr *received, struct msghdr *user, bool with_rights)
{
    size_t room = user->msg_control != NULL ? user->msg_controllen : 0;
    size_t used = 0;
    unsigned char *out = user->msg_control;
    if (received->msg_controllen == 0) {
        user->msg_controllen = 0;
        return;
    }
    for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(received); cmsg != NULL;
         cmsg = CMSG_NXTHDR((struct msghdr *)received, cmsg)) {
        if (!fits(received, cmsg))
            break;
        size_t payload = cmsg->cmsg_len - CMSG_LEN(0);
        bool rights = cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS;
        if (rights && !with_rights) {
            close_fd_array(CMSG_DATA(cmsg), payload / sizeof(int));
            continue;
        }
        size_t fit = payload;
        size_t length = CMSG_LEN(payload);
        if (used + CMSG_LEN(payload) > room) {
            user->msg_flags |= MSG_CTRUNC;
            if (rights) {
                /* Like the kernel: as many descriptors as fit, the others closed. */
                fit = 0;
                if (room >= used + CMSG_LEN(sizeof(int)))
                    fit = ((room - used - CMSG_LEN(0)) / sizeof(int)) * sizeof(int);
                close_fd_array(CMSG_DATA(cmsg) + fit, (payload - fit) / sizeof(int));
                if (fit == 0)
                    continue;
                length = CMSG_LEN(fit);
            } else {
                /* Like the kernel's put_cmsg: cut short to the room left, if a header fits. */
                if (room - used < sizeof(struct cmsghdr))
                    continue;
                length = room - used;
                fit = length - CMSG_LEN(0);
            }
        }
        struct cmsghdr header = {
            .cmsg_len = length,
            .cmsg_level = cmsg->cmsg_level,
            .cmsg_type = cmsg->cmsg_type,
        };
        memcpy(out + used, &header, sizeof(header));
        memcpy(out + used + CMSG_LEN(0), CMSG_DATA(cmsg), fit);
        size_t step = CMSG_SPACE(fit);
        used += step <= room - used ? step : room - used;
    }
    user->msg_controllen = used;
}
