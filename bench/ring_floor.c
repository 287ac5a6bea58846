/*
 * ring_floor.c - the floor under small-message streaming: a bare single-producer,
 * single-consumer ring between two processes, 64-byte payloads carried in the ring slots.
 *
 * The producer writes every payload byte into a slot and publishes the head (release store,
 * then a full fence, as a coalesced send does before it looks for a sleeping reader); the
 * consumer copies each slot out, checks every byte and publishes its tail. No blocks, no
 * releases, no locks, no system calls: what is left is the cost of moving the cache lines
 * between the two cores. Compare its messages/s with the 64 B "coalesced" line of
 * //bench:bench run on the same machine to see how much the protocol adds per message.
 *
 *   bazel run -c opt //bench:ring_floor [-- messages]      (default 20,000,000)
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 256
#define PAYLOAD 64

struct ring {
    _Alignas(64) uint64_t head; /* written by the producer */
    _Alignas(64) uint64_t tail; /* written by the consumer */
    _Alignas(64) unsigned char slot[SLOTS][PAYLOAD];
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pause_cpu(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Consumer: copy each message out and check every byte; exit status 1 on a wrong byte. */
static void consume(struct ring *r, uint64_t messages)
{
    unsigned char message[PAYLOAD];
    for (uint64_t i = 0; i < messages; i++) {
        while (__atomic_load_n(&r->head, __ATOMIC_ACQUIRE) <= i)
            pause_cpu();
        memcpy(message, r->slot[i % SLOTS], PAYLOAD);
        for (int k = 0; k < PAYLOAD; k++)
            if (message[k] != (unsigned char)(i + (uint64_t)k))
                _exit(1);
        __atomic_store_n(&r->tail, i + 1, __ATOMIC_RELEASE);
    }
    _exit(0);
}

int main(int argc, char **argv)
{
    uint64_t messages = argc > 1 ? strtoull(argv[1], NULL, 10) : 20000000ull;
    struct ring *r =
        mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED) {
        perror("ring_floor: mmap");
        return 1;
    }
    pid_t child = fork();
    if (child < 0) {
        perror("ring_floor: fork");
        return 1;
    }
    if (child == 0)
        consume(r, messages);
    double start = now();
    unsigned char message[PAYLOAD];
    for (uint64_t i = 0; i < messages; i++) {
        for (int k = 0; k < PAYLOAD; k++)
            message[k] = (unsigned char)(i + (uint64_t)k);
        while (i - __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE) >= SLOTS)
            pause_cpu();
        memcpy(r->slot[i % SLOTS], message, PAYLOAD);
        __atomic_store_n(&r->head, i + 1, __ATOMIC_RELEASE);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
    }
    int status = 0;
    waitpid(child, &status, 0);
    double seconds = now() - start;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "ring_floor: the consumer found a wrong byte\n");
        return 1;
    }
    printf("ring floor, %d-byte messages: %.2f M messages/s (%.0f ns per message)\n", PAYLOAD,
           (double)messages / seconds / 1e6, seconds / (double)messages * 1e9);
    return 0;
}
