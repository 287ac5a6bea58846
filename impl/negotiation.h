/*
 * negotiation.h - the way of each direction to shared memory: PLAIN -> OFFERED -> SHM for
 * ours, IN_PLAIN -> IN_TRANSITION -> IN_EVENTS for the peer's (docs/PROTOCOL.md).
 *
 * The calls change that state and return what happened; none of them calls back into the
 * send or receive paths, which decide what to do with it.
 */
#ifndef SHMSOCK_IMPL_NEGOTIATION_H
#define SHMSOCK_IMPL_NEGOTIATION_H

#include <stdbool.h>

#include "conn.h"
#include "locks.h"

/* Whether negotiation has begun in either direction (options are fixed from then on). */
bool shmsock_negotiation_started(struct shmsock_conn *conn);

/* A region made ahead of need and not offered yet was made for the options of that moment:
 * drop it when they change; the first send makes it again. */
void shmsock_negotiation_drop_unoffered_region(struct shmsock_conn *conn);

/* A read is about to wait for the peer's first message: make our region now (unless a send
 * in progress does), while the peer works, rather than when its offer needs our answer. */
void shmsock_negotiation_prepare_while_waiting(struct shmsock_conn *conn);

/* Our region and a release channel for a blind offer, if not made yet (send_lock held). */
int shmsock_negotiation_prepare_blind_offer(struct shmsock_conn *conn);

/* Our blind offer went out with a payload: we are OFFERED (send_lock held). */
void shmsock_negotiation_blind_offer_sent(struct shmsock_conn *conn);

/* Mark our reads careful (recv_lock held, or no read can be in progress). */
void shmsock_negotiation_mark_reader_careful(struct shmsock_conn *conn);

/* A blind offer marked careful before it left did not leave (send_lock and recv_lock held):
 * take the mark back, as a plain read may be in progress when the next offer leaves. */
void shmsock_negotiation_unmark_reader_careful(struct shmsock_conn *conn);

/* Answer the peer's offer with an OFFER event on its release channel: we are OFFERED
 * (send_lock held). 0 or a negative errno. */
int shmsock_negotiation_send_answer(struct shmsock_conn *conn, int flags);

/* The peer's offer arrived with a payload (fds[0] region, fds[1] release socket, or -1 for an
 * answer that shares our release channel; candidate what recognising the region learned):
 * attach its region. Takes ownership of fds. 0, or the connection's error. If we have offered
 * nothing yet, an answer is owed (shmsock_negotiation_answer_owed). */
int shmsock_negotiation_accept_offer(struct shmsock_conn *conn, const int fds[2],
                                     const struct shmsock_region_candidate *candidate);

/* Send the answer owed to the peer's offer unless a send in progress will (send_lock not held
 * by the caller): called after a read that accepted an offer, and whenever send_lock goes. */
void shmsock_negotiation_send_owed_answer(struct shmsock_conn *conn);

static inline void shmsock_negotiation_answer_owed(struct shmsock_conn *conn)
{
    if (shmsock_flag(&conn->nego.answer_owed)) /* rarely: the cheap test stays inline */
        shmsock_negotiation_send_owed_answer(conn);
}

/* Let send_lock go, then send an answer that a read found owed while we held it (its try of
 * send_lock failed). Every holder of send_lock lets it go through here. */
static inline void shmsock_negotiation_unlock_send(struct shmsock_conn *conn)
{
    shmsock_unlock(conn, SHMSOCK_SEND_LOCK);
    shmsock_negotiation_answer_owed(conn);
}

/* While our offer waits for an answer: take one the release channel brought. */
void shmsock_negotiation_take_answer(struct shmsock_conn *conn);

/* Move our direction to shared memory if it may now: both offers are out and the peer reads
 * carefully. Returns the direction's state after (enum shmsock_out_state; send_lock held). */
int shmsock_negotiation_try_switch(struct shmsock_conn *conn);

/* Learn the peer's switch point if it has published it (recv_lock held). */
void shmsock_negotiation_refresh_switch(struct shmsock_conn *conn);

/* Whether the peer can never switch: it dropped our offer (a plain program). */
bool shmsock_negotiation_peer_is_plain(struct shmsock_conn *conn);

/* Whether reads must watch for the peer's switch point: negotiation has begun and the peer
 * may still switch. */
bool shmsock_negotiation_reads_careful(struct shmsock_conn *conn);

#endif
