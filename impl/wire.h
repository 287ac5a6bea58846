/*
 * wire.h - the wire format: everything that lies in shared memory or travels on the kernel
 * socket, and nothing else.
 *
 * Two processes, possibly built from different versions of this library, agree on these
 * bytes and on nothing else: the region header, the ring slots, the event record. Keeping them
 * in one header with no functions (only static inline layout arithmetic) lets the tools that
 * read a peer's memory (fuzzers, shmsock-ss) depend on the format without the engine, and
 * makes a change of the format visible as a change of this file (docs/PROTOCOL.md describes
 * the same layout; bump SHMSOCK_PROTOCOL_VERSION with it). Both ends run on one host, so
 * fields are in native byte order.
 */
#ifndef SHMSOCK_IMPL_WIRE_H
#define SHMSOCK_IMPL_WIRE_H

#include <stdint.h>

/* "SHMSOCK\0" read as a little-endian 64-bit number: the first 8 bytes of every region. */
#define SHMSOCK_REGION_MAGIC 0x004b434f534d4853ull
#define SHMSOCK_PROTOCOL_VERSION 2u

#define SHMSOCK_MIN_BLOCK_SIZE 1024u
#define SHMSOCK_MAX_BLOCK_SIZE (1024u * 1024u)
#define SHMSOCK_MAX_BLOCK_COUNT 4096u
/* The header: one control page, then the two rings of coalesced mode; block 0 follows. */
#define SHMSOCK_CONTROL_PAGE 4096u
#define SHMSOCK_RING_SLOTS 256u
#define SHMSOCK_RING_SLOT_SIZE 32u
#define SHMSOCK_EVENT_RING_OFFSET SHMSOCK_CONTROL_PAGE
#define SHMSOCK_RELEASE_RING_OFFSET                                                                \
    (SHMSOCK_EVENT_RING_OFFSET + SHMSOCK_RING_SLOTS * SHMSOCK_RING_SLOT_SIZE)
#define SHMSOCK_REGION_HEADER_SIZE                                                                 \
    (SHMSOCK_RELEASE_RING_OFFSET + SHMSOCK_RING_SLOTS * SHMSOCK_RING_SLOT_SIZE)

/* How the owner publishes its events (send_mode). */
#define SHMSOCK_SEND_MODE_EVENTS 0u    /* every event is a kernel message */
#define SHMSOCK_SEND_MODE_COALESCED 1u /* events in the ring, doorbells when the peer sleeps */

/* Counters the owner keeps about its connection (read by tools through /proc, see
 * SHM_INFO); never used for decisions by the peer. */
struct shmsock_counters {
    uint64_t messages_sent;
    uint64_t bytes_sent;
    uint64_t messages_received;
    uint64_t bytes_received;
    uint64_t events_sent;    /* DATA events published (ring or kernel) */
    uint64_t doorbells_sent; /* doorbells rung for the peer (events and releases) */
    uint64_t doorbells_received;
    uint64_t blocks_in_use;    /* of our region, sent and not yet taken back (released
                                  blocks are taken back when room is needed) */
    uint64_t peer_blocks_held; /* of the peer's region, received and not yet released */
};

/* The header as it lies in shared memory. Written only by the region's owner. */
struct shmsock_region_header {
    uint64_t magic;
    uint32_t version;
    uint32_t header_size; /* offset of block 0 */
    uint32_t block_size;
    uint32_t block_count;
    uint64_t region_size; /* bytes of the whole memfd */
    /*
     * 0 while the owner still sends payload through the kernel socket; once it switches to
     * blocks: 1 + the number of plain units (bytes on STREAM, messages on SEQPACKET) it sent
     * through the kernel before the first event. Set once, before the first event is sent.
     */
    uint64_t switch_point;
    /*
     * Set (to 1) by the owner once every read it makes looks for the peer's switch point:
     * from then on the peer may switch. Until then a read may be in progress that takes
     * everything as payload, so the peer must keep sending plain.
     */
    uint32_t reader_careful;
    uint32_t send_mode; /* SHMSOCK_SEND_MODE_*, set before switch_point */
    uint32_t ring_slots;
    uint32_t event_ring_offset;
    uint32_t release_ring_offset;
    uint32_t wants_kernel_events; /* the owner reads with SO_PASSCRED: send it event mode */
    uint64_t socket_ino;          /* inode of the owner's kernel socket (as `ss -x` shows it) */
    uint32_t socket_type;         /* SOCK_STREAM or SOCK_SEQPACKET */
    uint32_t owner_pid;           /* process that created the region (for inspection tools) */
    /* Set (to 1) by the owner once it has shut down reading (shutdown SHUT_RD): the peer's
     * sends fail with EPIPE, as the kernel's would, without asking the kernel. */
    uint32_t reader_shut;
    /* Bumped by the owner after each close of its socket (by any process holding it): the
     * peer asks the kernel at its next send whether the connection still stands. */
    uint32_t socket_closes;
    /* Hot fields, one cache line each (coalesced mode). */
    uint64_t event_head __attribute__((aligned(64))); /* our DATA events in our event ring */
    /* Hint: 1 while we are inside a coalesced send (not while it waits for blocks). A reader
     * that drains our ring meanwhile waits a moment for that event instead of arming. On the
     * line of event_head: a reader that waits polls one line, and a send writes one. */
    uint64_t producer_active;
    uint64_t event_arm __attribute__((aligned(64)));    /* we sleep for the peer's events */
    uint64_t event_rung __attribute__((aligned(64)));   /* 1 + the peer's event_arm we last
                                                           rang for (written before ringing) */
    uint64_t event_spinning;                            /* 1 while we busy-poll our ring */
    uint64_t release_head __attribute__((aligned(64))); /* our releases in our release ring */
    uint64_t release_arm __attribute__((aligned(64)));  /* we sleep for the peer's releases */
    struct shmsock_counters counters __attribute__((aligned(64)));
};

_Static_assert(sizeof(struct shmsock_region_header) <= SHMSOCK_CONTROL_PAGE,
               "the header fits its control page");

/*
 * The event record: a fixed 32-byte record, on the kernel socket or in a ring slot. DATA says
 * "a message lies in blocks token..token+count-1 of my region, this long"; RELEASE returns a
 * token to its producer; OFFER announces the sender's region (its descriptors ride with the
 * record as SCM_RIGHTS).
 */
#define SHMSOCK_EVENT_SIZE 32u

enum shmsock_event_type {
    SHMSOCK_EVENT_DATA = 1,
    SHMSOCK_EVENT_RELEASE = 2,
    SHMSOCK_EVENT_OFFER = 3,
    /* Coalesced mode: "there is something in the ring", sent only to a sleeping peer.
     * `offset` carries the peer's arm generation it answers. */
    SHMSOCK_EVENT_DOORBELL = 4,
    /* Coalesced mode, in the event ring: "my next events come as kernel messages" (a message
     * with ancillary data, or a reader that wants credentials, needs the kernel socket). */
    SHMSOCK_EVENT_TO_KERNEL = 5,
};

struct shmsock_event {
    uint32_t type;
    uint32_t token;       /* number of the first block of the run */
    uint64_t offset;      /* byte offset of that block from the start of the region */
    uint64_t length;      /* payload bytes (DATA); 0 otherwise */
    uint32_t block_count; /* blocks in the run */
    uint32_t reserved;    /* 0 */
};

_Static_assert(sizeof(struct shmsock_event) == SHMSOCK_EVENT_SIZE, "event record size");
_Static_assert(SHMSOCK_EVENT_SIZE <= SHMSOCK_RING_SLOT_SIZE, "an event fits a ring slot");

/*
 * The rings: SHMSOCK_RING_SLOTS slots of SHMSOCK_RING_SLOT_SIZE bytes each, one encoded event
 * per slot, at ring_offset (SHMSOCK_EVENT_RING_OFFSET or SHMSOCK_RELEASE_RING_OFFSET) from the
 * region's start. Entry `index` (a counter that never wraps: the head, or a reader's tail)
 * lies in slot index % SHMSOCK_RING_SLOTS.
 */
static inline uint64_t shmsock_ring_slot_offset(uint32_t ring_offset, uint64_t index)
{
    return ring_offset + (index % SHMSOCK_RING_SLOTS) * SHMSOCK_RING_SLOT_SIZE;
}

#endif
