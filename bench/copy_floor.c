/*
 * copy_floor.c - the two-copy floor of streaming: what any transport that copies the payload
 * into shared memory and out again costs, with nothing else.
 *
 * Two processes and a bare single-producer, single-consumer ring of message-sized slots in
 * MAP_SHARED memory; no socket, no system call in the steady state. The producer writes every
 * byte of message seq (payload_fill) into its own buffer, waits for a free slot, memcpy's it
 * in and publishes the head (release store); the consumer waits for the head, memcpy's the
 * slot out, publishes the tail and checks every byte (payload_verify). So every byte is
 * written, copied twice and checked, as in the copy API's streaming case; the touch-only
 * bound (cases.c) is the same without the two copies and the second process. The ring holds
 * as many bytes as a connection's region would (case_sndbuf: at least the system default,
 * room for four messages), at most 256 slots.
 */
#include "bench.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define FLOOR_MAX_SLOTS 256

struct floor_ring {
    _Alignas(64) uint64_t head; /* messages published: written by the producer */
    _Alignas(64) uint64_t tail; /* messages copied out: written by the consumer */
    _Alignas(64) int stop;      /* the consumer has its window: the producer stops */
    _Alignas(64) unsigned char slots[];
};

static void pause_cpu(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Spinning only: both sides on one core of a busy machine would spin out their time slices,
 * so after a while a waiter yields. Returns the next spin count. */
static unsigned spin(unsigned spins)
{
    if (spins < 256) {
        pause_cpu();
        return spins + 1;
    }
    sched_yield();
    return 0;
}

static void produce(struct floor_ring *r, size_t size, uint64_t nslots)
{
    unsigned char *msg = case_buffer(size);
    if (!msg)
        _exit(1);
    for (uint64_t seq = 0;; seq++) {
        payload_fill(msg, size, seq); /* every byte written */
        unsigned spins = 0;
        while (seq - __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE) >= nslots) {
            if (__atomic_load_n(&r->stop, __ATOMIC_RELAXED))
                _exit(0);
            spins = spin(spins);
        }
        memcpy(r->slots + (seq % nslots) * size, msg, size); /* copy in */
        __atomic_store_n(&r->head, seq + 1, __ATOMIC_RELEASE);
    }
}

void case_copy_floor(const struct bench_config *cfg, enum bench_mode mode, size_t size,
                     struct run_result *out)
{
    (void)mode;
    size_t bytes = (size_t)case_sndbuf(cfg, size);
    if (bytes == 0)
        bytes = 212992; /* the usual wmem_default, as for a socket left at the default */
    uint64_t nslots = bytes / size;
    if (nslots < 2)
        nslots = 2;
    if (nslots > FLOOR_MAX_SLOTS)
        nslots = FLOOR_MAX_SLOTS;
    size_t map_len = sizeof(struct floor_ring) + nslots * size;
    struct floor_ring *r =
        mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    unsigned char *msg = case_buffer(size);
    if (r == MAP_FAILED || !msg) {
        result_error(out, "out of memory");
        return;
    }
    memset(r->slots, 0, nslots * size); /* faulted in before the window, as a region's blocks */
    pid_t pid = fork();
    if (pid < 0) {
        result_error(out, "fork: %s", errno_name(errno));
        return;
    }
    if (pid == 0) {
        alarm((unsigned)cfg->timeout_seconds);
        produce(r, size, nslots);
    }
    struct window w;
    window_init(&w, size);
    for (uint64_t seq = 0;; seq++) {
        unsigned spins = 0;
        while (__atomic_load_n(&r->head, __ATOMIC_ACQUIRE) <= seq)
            spins = spin(spins);
        memcpy(msg, r->slots + (seq % nslots) * size, size); /* copy out */
        __atomic_store_n(&r->tail, seq + 1, __ATOMIC_RELEASE);
        if (payload_verify(msg, 0, size, seq)) { /* every byte read */
            result_error(out, "copy floor: message %llu: wrong bytes", (unsigned long long)seq);
            break;
        }
        if (window_update(&w, cfg, seq + 1))
            break;
    }
    __atomic_store_n(&r->stop, 1, __ATOMIC_RELAXED);
    if (reap_helper(pid))
        result_note(out, "copy floor: the producer did not stop (killed)");
    if (out->ok)
        window_result(&w, size, out);
    free(msg);
    munmap(r, map_len);
}
