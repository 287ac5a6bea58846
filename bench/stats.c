/*
 * stats.c - medians and percentiles of the repetitions and round trips.
 */
#include "bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void stats_sort(double *v, long n)
{
    qsort(v, (size_t)n, sizeof(*v), compare_double);
}

double stats_percentile_sorted(double *v, long n, double p)
{
    if (n <= 0)
        return NAN;
    /* Nearest rank: the smallest value with at least p% of the values at or below it. */
    double exact = p / 100.0 * (double)n;
    long rank = (long)exact;
    if ((double)rank < exact)
        rank++; /* ceil without libm */
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return v[rank - 1];
}

double stats_median(const double *v, int n)
{
    if (n <= 0)
        return NAN;
    double copy[BENCH_MAX_REPS * 2];
    if (n > (int)(sizeof(copy) / sizeof(copy[0])))
        n = (int)(sizeof(copy) / sizeof(copy[0]));
    memcpy(copy, v, (size_t)n * sizeof(*v));
    stats_sort(copy, n);
    return n % 2 ? copy[n / 2] : (copy[n / 2 - 1] + copy[n / 2]) / 2;
}

double stats_min(const double *v, int n)
{
    double m = NAN;
    for (int i = 0; i < n; i++)
        if (i == 0 || v[i] < m)
            m = v[i];
    return m;
}

double stats_max(const double *v, int n)
{
    double m = NAN;
    for (int i = 0; i < n; i++)
        if (i == 0 || v[i] > m)
            m = v[i];
    return m;
}
