/*
 * clock.c - a cheap monotonic clock for the send path.
 *
 * Coalesced sends look at the time on every send to decide whether to ask the kernel about
 * the peer. clock_gettime() goes through the vDSO, but on some virtual machines the vDSO
 * falls back to a system call; the TSC costs a few cycles. It is calibrated once against
 * CLOCK_MONOTONIC and only used when the CPU says it is invariant.
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "conn.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <x86intrin.h>
#endif

static int64_t clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#if defined(__x86_64__)
static double ticks_per_us; /* 0: not calibrated; < 0: no usable TSC */

static bool invariant_tsc(void)
{
    unsigned int a, b, c, d;
    if (!__get_cpuid(0x80000000u, &a, &b, &c, &d) || a < 0x80000007u)
        return false;
    __get_cpuid(0x80000007u, &a, &b, &c, &d);
    return (d & (1u << 8)) != 0;
}

static void calibrate(void)
{
    if (!invariant_tsc()) {
        double none = -1;
        __atomic_store(&ticks_per_us, &none, __ATOMIC_RELAXED);
        return;
    }
    int64_t t0 = clock_us();
    uint64_t c0 = __rdtsc();
    while (clock_us() - t0 < 200) {
    }
    int64_t t1 = clock_us();
    uint64_t c1 = __rdtsc();
    double ratio = (double)(c1 - c0) / (double)(t1 - t0);
    double value = ratio > 1.0 ? ratio : -1;
    __atomic_store(&ticks_per_us, &value, __ATOMIC_RELAXED);
}
#endif

int64_t shmsock_now_us(void)
{
#if defined(__x86_64__)
    double ratio;
    __atomic_load(&ticks_per_us, &ratio, __ATOMIC_RELAXED);
    if (ratio == 0) {
        calibrate(); /* a benign race: every thread computes about the same ratio */
        __atomic_load(&ticks_per_us, &ratio, __ATOMIC_RELAXED);
    }
    if (ratio > 0)
        return (int64_t)((double)__rdtsc() / ratio);
#endif
    return clock_us();
}
