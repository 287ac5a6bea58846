/*
 * ancillary.h - control messages: building shmsock's offer, telling it apart from the
 * application's own ancillary data, and handing the rest to the application as recvmsg(2)
 * would.
 *
 * The offer rule: an offer is a message whose ancillary data holds exactly one SCM_RIGHTS
 * control message, with exactly two descriptors, the first a sealed shmem file that starts
 * with the region magic, the second a socket. Credentials the kernel adds beside it
 * (SO_PASSCRED) stay for the application. Anything else is the application's.
 */
#ifndef SHMSOCK_IMPL_ANCILLARY_H
#define SHMSOCK_IMPL_ANCILLARY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "region.h"

/* Room for everything the kernel may attach to one message (253 fds, credentials, ...). */
#define SHMSOCK_CONTROL_SPACE 2048

/* A control buffer aligned for struct cmsghdr. */
union shmsock_control_buffer {
    struct cmsghdr align;
    char bytes[SHMSOCK_CONTROL_SPACE];
};

/* Fill `buffer` with the offer's control message; returns its length for msg_controllen.
 * release_fd < 0 leaves it out (an answer that shares the offerer's release channel). */
size_t shmsock_ancillary_build_offer(union shmsock_control_buffer *buffer, int region_fd,
                                     int release_fd);

/*
 * If the received control data carries an offer, move its two descriptors to fds[0]
 * (region), fds[1] (release socket), cut the offer's control message out of the buffer
 * (other control messages stay), and return true. Otherwise leave it as it is and return
 * false. If candidate is not NULL, it receives what recognising the region learned (for
 * shmsock_region_attach_candidate).
 */
bool shmsock_ancillary_take_offer(struct msghdr *received, int fds[2],
                                  struct shmsock_region_candidate *candidate);

/*
 * The same for an answer (an OFFER event on our release channel): its descriptors are the
 * region alone (fds[1] is then -1: the answer shares our channel) or the region and a
 * release socket of its own.
 */
bool shmsock_ancillary_take_answer(struct msghdr *received, int fds[2],
                                   struct shmsock_region_candidate *candidate);

/* Whether received control data holds descriptors (SCM_RIGHTS): the kernel ends a STREAM
 * read after the message that brought them. */
bool shmsock_ancillary_has_rights(const struct msghdr *received);

/* Whether control data holds credentials (SCM_CREDENTIALS). */
bool shmsock_ancillary_has_credentials(const struct msghdr *msg);

/* Remove the SCM_CREDENTIALS messages from received control data (the others move up): a
 * read that goes on past its first message hands out the first message's credentials only,
 * as the kernel's read does. */
void shmsock_ancillary_drop_credentials(struct msghdr *msg);

/* Whether a control message sent by the application (sendmsg) is present. */
bool shmsock_ancillary_present(const struct msghdr *msg);

/*
 * Copy received control messages into the application's msghdr as the kernel would: what does
 * not fit sets MSG_CTRUNC in user->msg_flags, and descriptors that do not fit are closed.
 * Sets user->msg_controllen to the bytes used.
 */
void shmsock_ancillary_deliver(const struct msghdr *received, struct msghdr *user);

/* As shmsock_ancillary_deliver, but descriptors are closed instead of delivered (for data
 * whose SCM_RIGHTS belong to a later part of a stream than the application read). */
void shmsock_ancillary_deliver_without_rights(const struct msghdr *received, struct msghdr *user);

/* Close every descriptor carried by received control data (e.g. copies made by MSG_PEEK). */
void shmsock_ancillary_close_fds(const struct msghdr *received);

#endif
