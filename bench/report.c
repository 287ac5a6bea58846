/*
 * report.c - summaries over the repetitions, the CSV, the plot's data file, and gnuplot.
 */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

const size_t bench_sizes[BENCH_SIZES] = {64, 1024, 4096, 65536, 1048576};

/* The value a ratio is taken of: bytes/s for streaming, requests/s for request/response, p50
 * for the others. */
static double primary_of(enum bench_metric metric, const struct run_result *r)
{
    if (metric_has_rate(metric))
        return r->seconds > 0 ? r->bytes / r->seconds : NAN;
    return r->p50_us;
}

int summarize_ratio(const struct bench_results *res, enum bench_metric metric, enum bench_mode num,
                    enum bench_mode den, int size_index, double *median, double *min, double *max)
{
    double ratios[BENCH_MAX_REPS];
    int n = 0;
    if (!res->modes_run[metric][num] || !res->modes_run[metric][den])
        return 0;
    for (int rep = 0; rep < res->cfg.reps; rep++) {
        const struct run_result *a = &res->r[metric][num][size_index][rep];
        const struct run_result *b = &res->r[metric][den][size_index][rep];
        if (!a->ok || !b->ok)
            continue;
        double x = primary_of(metric, a), y = primary_of(metric, b);
        if (y > 0 && x == x)
            ratios[n++] = x / y;
    }
    *median = stats_median(ratios, n);
    *min = stats_min(ratios, n);
    *max = stats_max(ratios, n);
    return n;
}

void summarize(const struct bench_results *res, enum bench_metric metric, enum bench_mode mode,
               int size_index, struct summary *s)
{
    double msgs[BENCH_MAX_REPS], bytes[BENCH_MAX_REPS], p50[BENCH_MAX_REPS], p99[BENCH_MAX_REPS],
        p50_ratio[BENCH_MAX_REPS], p99_ratio[BENCH_MAX_REPS], doorbells[BENCH_MAX_REPS];
    int n = 0, nr = 0, nd = 0;
    memset(s, 0, sizeof(*s));
    for (int rep = 0; rep < res->cfg.reps; rep++) {
        const struct run_result *r = &res->r[metric][mode][size_index][rep];
        if (!r->ok) {
            s->failed_reps++;
            if (!s->first_error)
                s->first_error = r->error;
            continue;
        }
        if (r->note[0]) {
            s->noted_reps++;
            if (!s->first_note)
                s->first_note = r->note;
        }
        msgs[n] = r->seconds > 0 ? r->messages / r->seconds : NAN;
        bytes[n] = r->seconds > 0 ? r->bytes / r->seconds : NAN;
        p50[n] = r->p50_us;
        p99[n] = r->p99_us;
        n++;
        if (metric_is_streaming(metric) && r->doorbells_per_1k == r->doorbells_per_1k)
            doorbells[nd++] = r->doorbells_per_1k;
        const struct run_result *k = &res->r[metric][MODE_KERNEL][size_index][rep];
        if (k->ok && k->p99_us > 0 && k->p50_us > 0) {
            p50_ratio[nr] = r->p50_us / k->p50_us;
            p99_ratio[nr++] = r->p99_us / k->p99_us;
        }
    }
    s->ok_reps = n;
    s->msgs = stats_median(msgs, n);
    s->bytes = stats_median(bytes, n);
    s->p50 = stats_median(p50, n);
    s->p99 = stats_median(p99, n);
    s->primary = metric_has_rate(metric) ? s->bytes : s->p50;
    s->ratio_p50 = stats_median(p50_ratio, nr);
    s->ratio_p99 = stats_median(p99_ratio, nr);
    s->doorbells_per_1k = nd > 0 ? stats_median(doorbells, nd) : NAN;
    s->ratio_n = summarize_ratio(res, metric, mode, MODE_KERNEL, size_index, &s->ratio,
                                 &s->ratio_min, &s->ratio_max);
}

/* A CSV field: quoted when it holds a comma or a quote. */
static void csv_string(FILE *f, const char *text)
{
    if (!strpbrk(text, ",\"\n")) {
        fputs(text, f);
        return;
    }
    fputc('"', f);
    for (const char *p = text; *p; p++) {
        if (*p == '"')
            fputc('"', f);
        fputc(*p == '\n' ? ' ' : *p, f);
    }
    fputc('"', f);
}

static void csv_number(FILE *f, double v)
{
    if (v == v)
        fprintf(f, ",%.6g", v);
    else
        fputs(",", f);
}

static size_t size_of(enum bench_metric metric, int size_index)
{
    return metric == METRIC_SETUP ? 1 : bench_sizes[size_index];
}

const char *read_loadavg(char *buf, size_t len)
{
    snprintf(buf, len, "?");
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fgets(buf, (int)len, f))
            buf[strcspn(buf, "\n")] = '\0';
        fclose(f);
    }
    return buf;
}

int write_csv(const struct bench_results *res, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    /* The machine's load frames every figure below (other builds share these cores). */
    fprintf(f, "# load average at start: %s\n# load average at end: %s\n", res->load_start,
            res->load_end);
    fprintf(f, "# CPU hogs during ping-pong and request/response: %d\n", res->cfg.hogs);
    fprintf(f, "record,metric,mode,sock_type,size_bytes,rep,messages_per_s,bytes_per_s,p50_us,"
               "p99_us,samples,ratio_vs_kernel,ratio_min,ratio_max,p99_ratio_vs_kernel,sndbuf,"
               "error,doorbells_per_1000_messages,p50_ratio_vs_kernel\n");
    for (int metric = 0; metric < METRIC_COUNT; metric++) {
        int sizes = metric == METRIC_SETUP ? 1 : BENCH_SIZES;
        const char *type = metric_sock_type(&res->cfg, (enum bench_metric)metric) == SOCK_SEQPACKET
                               ? "seqpacket"
                               : "stream";
        for (int mode = 0; mode < MODE_COUNT; mode++) {
            if (!res->modes_run[metric][mode])
                continue;
            for (int si = 0; si < sizes; si++) {
                if (metric != METRIC_SETUP && !res->sizes_run[metric][si])
                    continue;
                size_t size = size_of((enum bench_metric)metric, si);
                for (int rep = 0; rep < res->cfg.reps; rep++) {
                    const struct run_result *r = &res->r[metric][mode][si][rep];
                    const struct run_result *k = &res->r[metric][MODE_KERNEL][si][rep];
                    fprintf(f, "rep,%s,%s,%s,%zu,%d", metric_name((enum bench_metric)metric),
                            mode_info((enum bench_mode)mode)->name, type, size, rep + 1);
                    if (r->ok) {
                        int stream = metric_is_streaming((enum bench_metric)metric);
                        int rate = metric_has_rate((enum bench_metric)metric);
                        int lat = metric_has_latency((enum bench_metric)metric);
                        double x = primary_of((enum bench_metric)metric, r);
                        double y = k->ok ? primary_of((enum bench_metric)metric, k) : NAN;
                        csv_number(f, rate ? r->messages / r->seconds : NAN);
                        csv_number(f, rate ? r->bytes / r->seconds : NAN);
                        csv_number(f, lat ? r->p50_us : NAN);
                        csv_number(f, lat ? r->p99_us : NAN);
                        csv_number(f, stream ? r->messages : (double)r->samples);
                        csv_number(f, y > 0 ? x / y : NAN);
                        csv_number(f, NAN);
                        csv_number(f, NAN);
                        csv_number(f, lat && k->ok && k->p99_us > 0 ? r->p99_us / k->p99_us : NAN);
                        fprintf(f, ",%d,", r->sndbuf);
                        if (r->note[0]) {
                            char text[200];
                            snprintf(text, sizeof(text), "note: %s", r->note);
                            csv_string(f, text);
                        }
                        csv_number(f, stream ? r->doorbells_per_1k : NAN);
                        csv_number(f, lat && k->ok && k->p50_us > 0 ? r->p50_us / k->p50_us : NAN);
                        fputc('\n', f);
                    } else {
                        fputs(",,,,,,,,,,,", f);
                        csv_string(f, r->error);
                        fputs(",,\n", f);
                    }
                }
                struct summary s;
                summarize(res, (enum bench_metric)metric, (enum bench_mode)mode, si, &s);
                fprintf(f, "median,%s,%s,%s,%zu,", metric_name((enum bench_metric)metric),
                        mode_info((enum bench_mode)mode)->name, type, size);
                int stream = metric_is_streaming((enum bench_metric)metric);
                int rate = metric_has_rate((enum bench_metric)metric);
                int lat = metric_has_latency((enum bench_metric)metric);
                csv_number(f, rate ? s.msgs : NAN);
                csv_number(f, rate ? s.bytes : NAN);
                csv_number(f, lat ? s.p50 : NAN);
                csv_number(f, lat ? s.p99 : NAN);
                csv_number(f, NAN);
                csv_number(f, s.ratio_n ? s.ratio : NAN);
                csv_number(f, s.ratio_n ? s.ratio_min : NAN);
                csv_number(f, s.ratio_n ? s.ratio_max : NAN);
                csv_number(f, lat ? s.ratio_p99 : NAN);
                fputs(",,", f);
                if (s.failed_reps || s.noted_reps) {
                    char text[400];
                    if (s.failed_reps)
                        snprintf(text, sizeof(text), "%d/%d reps failed: %s", s.failed_reps,
                                 res->cfg.reps, s.first_error);
                    else
                        snprintf(text, sizeof(text), "note in %d/%d reps: %s", s.noted_reps,
                                 res->cfg.reps, s.first_note);
                    csv_string(f, text);
                }
                csv_number(f, stream ? s.doorbells_per_1k : NAN);
                csv_number(f, lat ? s.ratio_p50 : NAN);
                fputc('\n', f);
            }
        }
    }
    return fclose(f) == 0 ? 0 : -1;
}

/* The modes of the plot, in the columns of the data file. */
static const enum bench_mode plot_stream_modes[] = {MODE_KERNEL,   MODE_EVENT,    MODE_COALESCED,
                                                    MODE_ZEROCOPY, MODE_BUSYPOLL, MODE_TOUCH};
static const enum bench_mode plot_latency_modes[] = {MODE_KERNEL, MODE_EVENT, MODE_COALESCED,
                                                     MODE_ZEROCOPY, MODE_BUSYPOLL};

int write_plot_data(const struct bench_results *res, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "# shmsock benchmark, medians over %d reps (NaN: not measured or failed)\n",
            res->cfg.reps);
    fprintf(f, "# col 1: message size (bytes); cols 2-7: streaming bytes/s of kernel, event, "
               "coalesced, zero-copy, busy-poll, touch-only bound; cols 8-12: ping-pong p50 "
               "(us) of kernel, event, coalesced, zero-copy, busy-poll\n");
    for (int si = 0; si < BENCH_SIZES; si++) {
        if (!res->sizes_run[METRIC_STREAM][si] && !res->sizes_run[METRIC_PINGPONG][si])
            continue;
        fprintf(f, "%zu", bench_sizes[si]);
        for (size_t i = 0; i < sizeof(plot_stream_modes) / sizeof(plot_stream_modes[0]); i++) {
            struct summary s;
            double v = NAN;
            if (res->modes_run[METRIC_STREAM][plot_stream_modes[i]]) {
                summarize(res, METRIC_STREAM, plot_stream_modes[i], si, &s);
                v = s.ok_reps ? s.bytes : NAN;
            }
            if (v == v)
                fprintf(f, " %.6g", v);
            else
                fputs(" NaN", f);
        }
        for (size_t i = 0; i < sizeof(plot_latency_modes) / sizeof(plot_latency_modes[0]); i++) {
            struct summary s;
            double v = NAN;
            if (res->modes_run[METRIC_PINGPONG][plot_latency_modes[i]]) {
                summarize(res, METRIC_PINGPONG, plot_latency_modes[i], si, &s);
                v = s.ok_reps ? s.p50 : NAN;
            }
            if (v == v)
                fprintf(f, " %.6g", v);
            else
                fputs(" NaN", f);
        }
        fputc('\n', f);
    }
    return fclose(f) == 0 ? 0 : -1;
}

int run_gnuplot(const char *script, const char *data, const char *out, const char *socktype)
{
    char expr[8192];
    snprintf(expr, sizeof(expr), "datafile='%s'; outfile='%s'; socktype='%s'", data, out, socktype);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execlp("gnuplot", "gnuplot", "-e", expr, script, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        return 127;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}
