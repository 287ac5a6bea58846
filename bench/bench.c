/*
 * bench.c - shmsock against the kernel AF_UNIX socket, in one run.
 *
 *   bazel run -c opt //bench:bench -- [--quick] [options]      (or tools/bench.sh [options])
 *
 * For message sizes 64 B, 1 KiB, 4 KiB, 64 KiB and 1 MiB it measures, between two processes
 * over a socketpair (SOCK_STREAM; streaming also on SOCK_SEQPACKET, see --types):
 *   - streaming throughput (messages/s, bytes/s): the producer writes every byte of every
 *     message (a pattern from a sequence number), the consumer receives each message
 *     (MSG_WAITALL) and checks every byte; timed by the consumer over a fixed window;
 *   - ping-pong round-trip time, p50 and p99;
 *   - connection set-up: socket + connect + accept + first 1-byte round trip (abstract name);
 *   - request/response (reqresp.c): an epoll server and clients with 1 and 32 connections, one
 *     64-byte request in flight on each, replies of 64 B, 4 KiB, 64 KiB and 1 MiB written and
 *     checked; requests/s, p50 and p99;
 * for the kernel socket and for shmsock in event mode (SHM_COALESCE=0), coalesced mode (the
 * default), zero-copy (shm_send_alloc/commit, shm_recv_view/release) and busy-poll
 * (SHM_BUSY_POLL), plus the touch-only bound (one process writes then reads the bytes, no
 * transfer), the two-copy floor (copy_floor.c: memcpy in and out of a bare shared ring between
 * two processes, no socket) and, with --mmsg, sendmmsg/recvmmsg batches. Repetitions are
 * interleaved (kernel, event, coalesced, ..., kernel, event, ...) and every ratio shm/kernel is
 * taken within one repetition; the table gives the median ratio and its spread (min..max).
 *
 * Every measurement runs in its own process group under alarm(), so a library error or hang
 * shows as "error: ..." in the table and the run goes on. Cases whose calls are not linked
 * (zero-copy, mmsg: see zerocopy.c) report "not linked"; --modes runs just some of them later.
 *
 * With --hog, one spinning process per core runs during the latency cases (ping-pong and
 * request/response). The load average is printed at the start and the end of the report. The
 * exit status is 3 when a repetition found a connection off shared memory that should have
 * been on it (the cases check SHM_STATUS before timing), 1 when an output could not be written.
 *
 * Output: the table on stdout (also in a .txt), a CSV (every repetition, then the medians), a
 * data file and a PNG drawn by gnuplot (bench/plot.gp). Under `bazel run` they go to
 * $BUILD_WORKSPACE_DIRECTORY/bench/results/, otherwise to the current directory.
 */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "shmsock.h"

static FILE *text_copy; /* the .txt copy of what is printed */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    if (text_copy) {
        va_start(ap, fmt);
        vfprintf(text_copy, fmt, ap);
        va_end(ap);
    }
}

static const enum bench_mode stream_modes[] = {MODE_KERNEL,     MODE_EVENT,       MODE_COALESCED,
                                               MODE_ZEROCOPY,   MODE_BUSYPOLL,    MODE_TOUCH,
                                               MODE_COPY_FLOOR, MODE_KERNEL_MMSG, MODE_MMSG};
static const enum bench_mode pingpong_modes[] = {MODE_KERNEL, MODE_EVENT, MODE_COALESCED,
                                                 MODE_ZEROCOPY, MODE_BUSYPOLL};
static const enum bench_mode setup_modes[] = {MODE_KERNEL, MODE_EVENT, MODE_COALESCED};
/* Request/response: the copy API behind epoll (busy-poll spins only in blocking calls). */
static const enum bench_mode reqresp_modes[] = {MODE_KERNEL, MODE_EVENT, MODE_COALESCED};

struct target {
    const char *text;
    enum bench_metric metric;
    enum bench_mode mode, versus;
    int size_index;
    int at_most; /* 1: ratio <= bound; 0: ratio >= bound */
    double bound;
};

static const struct target targets[] = {
    {"64 B streaming coalesced messages/s >= 5x kernel", METRIC_STREAM, MODE_COALESCED, MODE_KERNEL,
     0, 0, 5},
    {"4 KiB streaming coalesced bytes/s >= 3x kernel", METRIC_STREAM, MODE_COALESCED, MODE_KERNEL,
     2, 0, 3},
    {"64 KiB streaming copy API (coalesced) bytes/s >= 2x kernel", METRIC_STREAM, MODE_COALESCED,
     MODE_KERNEL, 3, 0, 2},
    {"1 MiB streaming copy API (coalesced) bytes/s >= 1.25x kernel", METRIC_STREAM, MODE_COALESCED,
     MODE_KERNEL, 4, 0, 1.25},
    {"1 MiB streaming zero-copy bytes/s >= 2.5x kernel", METRIC_STREAM, MODE_ZEROCOPY, MODE_KERNEL,
     4, 0, 2.5},
    {"1 MiB streaming zero-copy bytes/s >= 0.8x touch-only bound", METRIC_STREAM, MODE_ZEROCOPY,
     MODE_TOUCH, 4, 0, 0.8},
    {"64 B ping-pong p50 sleeping (coalesced, no busy-poll) <= 1.1x kernel", METRIC_PINGPONG,
     MODE_COALESCED, MODE_KERNEL, 0, 1, 1.1},
    {"64 B ping-pong p50 busy-poll on <= 0.2x kernel", METRIC_PINGPONG, MODE_BUSYPOLL, MODE_KERNEL,
     0, 1, 0.2},
    {"connection set-up p50 (coalesced) <= 3x kernel", METRIC_SETUP, MODE_COALESCED, MODE_KERNEL, 0,
     1, 3},
};

/* ---- options ---- */

struct options {
    struct bench_config cfg;
    int selected[MODE_COUNT];
    int metrics[METRIC_COUNT + 1]; /* [METRIC_COUNT]: "reqresp", both of its metrics */
    int sizes[BENCH_SIZES];
    int sizes2[BENCH_SIZES]; /* of METRIC_STREAM2: quick runs only 64 B unless --sizes */
    const char *csv, *plot, *plot_script;
    int no_plot;
    int hog;
};

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: bench [--quick] [options]\n"
        "  --quick            3 reps, short cases: the whole run in under a minute\n"
        "  --reps N           interleaved repetitions (default 5; quick 3)\n"
        "  --seconds S        timed window of a streaming case (default 1; quick 0.1)\n"
        "  --rounds N         ping-pong round trips (default 20000; quick 2000)\n"
        "  --setup-rounds N   connections per set-up case (default 1000; quick 200)\n"
        "  --types LIST       socket types of the streaming cases: stream,seqpacket\n"
        "                     (default both; --quick streams the second at 64 B only,\n"
        "                     unless --sizes); the other cases use the first\n"
        "  --seqpacket        --types seqpacket: SOCK_SEQPACKET only\n"
        "  --mmsg             also stream with sendmmsg/recvmmsg (kernel-mmsg, mmsg)\n"
        "  --modes LIST       only these modes (kernel always runs): kernel,event,\n"
        "                     coalesced,zero-copy,busy-poll,touch-bound,copy-floor,\n"
        "                     kernel-mmsg,mmsg\n"
        "  --metrics LIST     only these: stream,pingpong,setup,reqresp (= reqresp-1 and\n"
        "                     reqresp-32: request/response over 1 and 32 connections)\n"
        "  --sizes LIST       only these sizes: 64,1K,4K,64K,1M\n"
        "  --busy-poll US     SHM_BUSY_POLL of the busy-poll mode (default 50)\n"
        "  --sndbuf BYTES     SO_SNDBUF for every mode (default: max(system default,\n"
        "                     4 x message size); request/response on SOCK_STREAM:\n"
        "                     the system default)\n"
        "  --csv PATH         CSV output (default bench-results.csv)\n"
        "  --plot PATH        PNG output (default bench-results.png)\n"
        "  --plot-script PATH gnuplot script (default bench/plot.gp)\n"
        "  --no-plot          no data file, no PNG\n"
        "  --hog              one spinning process per core during ping-pong and\n"
        "                     request/response (latency with every core busy)\n"
        "Under `bazel run` the default outputs go to $BUILD_WORKSPACE_DIRECTORY/bench/results/.\n");
}

static int mode_by_name(const char *name)
{
    for (int m = 0; m < MODE_COUNT; m++)
        if (strcmp(mode_info((enum bench_mode)m)->name, name) == 0)
            return m;
    if (strcmp(name, "zerocopy") == 0)
        return MODE_ZEROCOPY;
    if (strcmp(name, "busypoll") == 0)
        return MODE_BUSYPOLL;
    if (strcmp(name, "touch") == 0)
        return MODE_TOUCH;
    if (strcmp(name, "copyfloor") == 0)
        return MODE_COPY_FLOOR;
    return -1;
}

static int size_by_name(const char *name)
{
    char *end;
    unsigned long v = strtoul(name, &end, 10);
    if (*end == 'K' || *end == 'k')
        v *= 1024, end++;
    else if (*end == 'M' || *end == 'm')
        v *= 1024 * 1024, end++;
    if (*end == 'i')
        end++;
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end != '\0')
        return -1;
    for (int i = 0; i < BENCH_SIZES; i++)
        if (bench_sizes[i] == v)
            return i;
    return -1;
}

/* Applies fn to each comma-separated item of list; -1 if one is unknown. */
static int parse_list(char *list, int (*lookup)(const char *), int *flags, const char *what)
{
    for (char *save = NULL, *item = strtok_r(list, ",", &save); item;
         item = strtok_r(NULL, ",", &save)) {
        int i = lookup(item);
        if (i < 0) {
            fprintf(stderr, "bench: unknown %s '%s'\n", what, item);
            return -1;
        }
        flags[i] = 1;
    }
    return 0;
}

static int type_by_name(const char *name)
{
    if (strcmp(name, "stream") == 0)
        return SOCK_STREAM;
    if (strcmp(name, "seqpacket") == 0)
        return SOCK_SEQPACKET;
    return -1;
}

static const char *type_text(int type)
{
    return type == SOCK_SEQPACKET ? "SOCK_SEQPACKET" : "SOCK_STREAM";
}

static int metric_by_name(const char *name)
{
    if (strcmp(name, "reqresp") == 0)
        return METRIC_COUNT; /* both connection counts (parse_options) */
    for (int m = 0; m < METRIC_COUNT; m++)
        if (strcmp(metric_name((enum bench_metric)m), name) == 0)
            return m;
    return -1;
}

static void parse_options(int argc, char **argv, struct options *o)
{
    int quick = 0, reps = 0, rounds = 0, setup_rounds = 0, mmsg = 0;
    int types[2] = {SOCK_STREAM, SOCK_SEQPACKET};
    int busy_poll = 50, sndbuf = 0, modes_given = 0, metrics_given = 0, sizes_given = 0;
    double seconds = 0;
    memset(o, 0, sizeof(*o));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDS_VALUE                                                                                \
    do {                                                                                           \
        if (!v) {                                                                                  \
            fprintf(stderr, "bench: %s needs a value\n", a);                                       \
            exit(2);                                                                               \
        }                                                                                          \
        i++;                                                                                       \
    } while (0)
        if (strcmp(a, "--quick") == 0) {
            quick = 1;
        } else if (strcmp(a, "--full") == 0) {
            quick = 0;
        } else if (strcmp(a, "--seqpacket") == 0) {
            types[0] = SOCK_SEQPACKET;
            types[1] = 0;
        } else if (strcmp(a, "--types") == 0) {
            NEEDS_VALUE;
            types[0] = types[1] = 0;
            int n = 0;
            for (char *save = NULL, *item = strtok_r(argv[i], ",", &save); item;
                 item = strtok_r(NULL, ",", &save)) {
                int t = type_by_name(item);
                if (t < 0 || n == 2 || (n == 1 && types[0] == t)) {
                    fprintf(stderr, "bench: --types: '%s' is not stream or seqpacket, or twice\n",
                            item);
                    exit(2);
                }
                types[n++] = t;
            }
            if (n == 0) {
                fprintf(stderr, "bench: --types needs stream, seqpacket or both\n");
                exit(2);
            }
        } else if (strcmp(a, "--mmsg") == 0) {
            mmsg = 1;
        } else if (strcmp(a, "--no-plot") == 0) {
            o->no_plot = 1;
        } else if (strcmp(a, "--hog") == 0) {
            o->hog = 1;
        } else if (strcmp(a, "--reps") == 0) {
            NEEDS_VALUE;
            reps = atoi(v);
        } else if (strcmp(a, "--seconds") == 0) {
            NEEDS_VALUE;
            seconds = atof(v);
        } else if (strcmp(a, "--rounds") == 0) {
            NEEDS_VALUE;
            rounds = atoi(v);
        } else if (strcmp(a, "--setup-rounds") == 0) {
            NEEDS_VALUE;
            setup_rounds = atoi(v);
        } else if (strcmp(a, "--busy-poll") == 0) {
            NEEDS_VALUE;
            busy_poll = atoi(v);
        } else if (strcmp(a, "--sndbuf") == 0) {
            NEEDS_VALUE;
            sndbuf = atoi(v);
        } else if (strcmp(a, "--csv") == 0) {
            NEEDS_VALUE;
            o->csv = v;
        } else if (strcmp(a, "--plot") == 0) {
            NEEDS_VALUE;
            o->plot = v;
        } else if (strcmp(a, "--plot-script") == 0) {
            NEEDS_VALUE;
            o->plot_script = v;
        } else if (strcmp(a, "--modes") == 0) {
            NEEDS_VALUE;
            if (parse_list(argv[i], mode_by_name, o->selected, "mode") < 0)
                exit(2);
            modes_given = 1;
        } else if (strcmp(a, "--metrics") == 0) {
            NEEDS_VALUE;
            if (parse_list(argv[i], metric_by_name, o->metrics, "metric") < 0)
                exit(2);
            metrics_given = 1;
        } else if (strcmp(a, "--sizes") == 0) {
            NEEDS_VALUE;
            if (parse_list(argv[i], size_by_name, o->sizes, "size") < 0)
                exit(2);
            sizes_given = 1;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else {
            fprintf(stderr, "bench: unknown option '%s'\n", a);
            usage(stderr);
            exit(2);
        }
#undef NEEDS_VALUE
    }
    struct bench_config *c = &o->cfg;
    c->quick = quick;
    c->sock_type = types[0];
    c->sock_type2 = types[1];
    c->reps = reps > 0 ? reps : quick ? 3 : 5;
    if (c->reps > BENCH_MAX_REPS)
        c->reps = BENCH_MAX_REPS;
    c->stream_seconds = seconds > 0 ? seconds : quick ? 0.1 : 1.0;
    c->warmup_seconds = quick ? 0.03 : 0.1;
    c->pingpong_rounds = rounds > 0 ? rounds : quick ? 2000 : 20000;
    c->pingpong_seconds = quick ? 0.1 : 1.0;
    c->setup_rounds = setup_rounds > 0 ? setup_rounds : quick ? 200 : 1000;
    c->busy_poll_us = busy_poll;
    c->sndbuf = sndbuf;
    c->mmsg_batch = 32;
    c->timeout_seconds = (int)(c->stream_seconds + c->pingpong_seconds) + (quick ? 10 : 20);
    if (!modes_given) {
        for (int m = 0; m < MODE_COUNT; m++)
            o->selected[m] = 1;
        if (!mmsg)
            o->selected[MODE_KERNEL_MMSG] = o->selected[MODE_MMSG] = 0;
    } else {
        if (mmsg)
            o->selected[MODE_KERNEL_MMSG] = o->selected[MODE_MMSG] = 1;
        if (o->selected[MODE_ZEROCOPY])
            o->selected[MODE_TOUCH] = 1; /* the zero-copy target compares with it */
    }
    o->selected[MODE_KERNEL] = 1; /* every ratio is against it */
    if (!metrics_given)
        for (int m = 0; m < METRIC_COUNT; m++)
            o->metrics[m] = 1;
    if (o->metrics[METRIC_COUNT])
        o->metrics[METRIC_REQRESP_ONE] = o->metrics[METRIC_REQRESP_MANY] = 1;
    o->metrics[METRIC_STREAM2] = o->metrics[METRIC_STREAM] && c->sock_type2;
    if (!sizes_given)
        for (int s = 0; s < BENCH_SIZES; s++)
            o->sizes[s] = 1;
    /* The second type costs as much again: --quick keeps it to 64 B (the time budget). */
    for (int s = 0; s < BENCH_SIZES; s++)
        o->sizes2[s] = o->sizes[s] && (!quick || sizes_given || s == 0);
}

/* ---- formatting ---- */

static const char *size_text(size_t size, char *buf, size_t len)
{
    if (size >= 1048576 && size % 1048576 == 0)
        snprintf(buf, len, "%zu MiB", size / 1048576);
    else if (size >= 1024 && size % 1024 == 0)
        snprintf(buf, len, "%zu KiB", size / 1024);
    else
        snprintf(buf, len, "%zu B", size);
    return buf;
}

static const char *rate_text(double v, const char *unit, char *buf, size_t len)
{
    if (v != v)
        snprintf(buf, len, "-");
    else if (v >= 1e9)
        snprintf(buf, len, "%.2f G%s", v / 1e9, unit);
    else if (v >= 1e6)
        snprintf(buf, len, "%.2f M%s", v / 1e6, unit);
    else if (v >= 1e3)
        snprintf(buf, len, "%.2f k%s", v / 1e3, unit);
    else
        snprintf(buf, len, "%.1f %s", v, unit);
    return buf;
}

static const char *ratio_text(const struct summary *s, enum bench_mode mode, char *buf, size_t len)
{
    if (mode == MODE_KERNEL)
        snprintf(buf, len, "1 (reference)");
    else if (s->ratio_n == 0)
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, "%.2fx (%.2f..%.2f)", s->ratio, s->ratio_min, s->ratio_max);
    return buf;
}

static void failed_note(const struct summary *s, int reps)
{
    if (s->failed_reps && s->ok_reps)
        say("  [%d/%d reps failed: %s]", s->failed_reps, reps, s->first_error);
    if (s->noted_reps)
        say("  [note, %d/%d reps: %s]", s->noted_reps, reps, s->first_note);
}

/* ---- machine ---- */

static void print_machine(const char *load)
{
    char model[256] = "unknown";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof(line), f)) {
            if (strncmp(line, "model name", 10) == 0) {
                char *colon = strchr(line, ':');
                if (colon) {
                    snprintf(model, sizeof(model), "%s", colon + 2);
                    model[strcspn(model, "\n")] = '\0';
                }
                break;
            }
        }
        fclose(f);
    }
    struct utsname u;
    uname(&u);
    say("machine: %ld CPUs (nproc), %s; kernel %s %s %s; load average at start %s\n",
        sysconf(_SC_NPROCESSORS_ONLN), model, u.sysname, u.release, u.machine, load);
}

/* ---- the run ---- */

static case_fn case_of(enum bench_metric metric, enum bench_mode mode)
{
    if (metric_is_streaming(metric))
        return mode == MODE_TOUCH        ? case_touch
               : mode == MODE_COPY_FLOOR ? case_copy_floor
                                         : case_stream;
    if (metric == METRIC_REQRESP_ONE)
        return case_reqresp_one;
    if (metric == METRIC_REQRESP_MANY)
        return case_reqresp_many;
    return metric == METRIC_PINGPONG ? case_pingpong : case_setup;
}

static void run_metric(struct bench_results *res, const struct options *o, enum bench_metric metric,
                       const enum bench_mode *modes, size_t nmodes)
{
    int sizes = metric == METRIC_SETUP ? 1 : BENCH_SIZES;
    const int *wanted = metric == METRIC_STREAM2 ? o->sizes2 : o->sizes;
    struct bench_config cfg = o->cfg;
    cfg.sock_type = metric_sock_type(&o->cfg, metric);
    for (size_t i = 0; i < nmodes; i++)
        if (o->selected[modes[i]])
            res->modes_run[metric][modes[i]] = 1;
    /* The bounds use no socket: the second type would measure them again. */
    if (metric == METRIC_STREAM2)
        res->modes_run[metric][MODE_TOUCH] = res->modes_run[metric][MODE_COPY_FLOOR] = 0;
    for (int si = 0; si < sizes; si++) {
        if (metric != METRIC_SETUP && (!wanted[si] || !metric_has_size(metric, si)))
            continue;
        res->sizes_run[metric][si] = 1;
        size_t size = metric == METRIC_SETUP ? 1 : bench_sizes[si];
        char sz[32];
        double t = now_seconds();
        fprintf(stderr, "  %-10s %-9s %-7s reps:", metric_name(metric),
                cfg.sock_type == SOCK_SEQPACKET ? "seqpacket" : "stream",
                metric == METRIC_SETUP ? "" : size_text(size, sz, sizeof(sz)));
        for (int rep = 0; rep < o->cfg.reps; rep++) {
            fprintf(stderr, " %d", rep + 1);
            /* Interleaved: every mode once per repetition, the kernel first. */
            for (size_t i = 0; i < nmodes; i++) {
                if (!res->modes_run[metric][modes[i]])
                    continue;
                struct run_result *r = &res->r[metric][modes[i]][si][rep];
                run_isolated(case_of(metric, modes[i]), &cfg, modes[i], size, r);
                if (!r->ok)
                    fprintf(stderr, " [%s: %s]", mode_info(modes[i])->name, r->error);
                else if (r->note[0])
                    fprintf(stderr, " [%s, note: %s]", mode_info(modes[i])->name, r->note);
            }
        }
        fprintf(stderr, " (%.1f s)\n", now_seconds() - t);
    }
}

static void print_stream(const struct bench_results *res, enum bench_metric metric)
{
    say("\nStreaming throughput (%s, consumer side, every byte written and checked; medians of "
        "%d reps; x kernel = ratio within each rep: median (min..max))\n",
        type_text(metric_sock_type(&res->cfg, metric)), res->cfg.reps);
    say("%-8s %-12s %14s %14s   %-24s %-10s %s\n", "size", "mode", "messages/s", "bytes/s",
        "x kernel", "SO_SNDBUF", "doorbells/1000 msgs");
    for (int si = 0; si < BENCH_SIZES; si++) {
        if (!res->sizes_run[metric][si])
            continue;
        char sz[32], a[32], b[32], c[64];
        for (size_t i = 0; i < sizeof(stream_modes) / sizeof(stream_modes[0]); i++) {
            enum bench_mode mode = stream_modes[i];
            if (!res->modes_run[metric][mode])
                continue;
            struct summary s;
            summarize(res, metric, mode, si, &s);
            say("%-8s %-12s ", i == 0 ? size_text(bench_sizes[si], sz, sizeof(sz)) : "",
                mode_info(mode)->name);
            if (s.ok_reps == 0) {
                say("error: %s\n", s.first_error ? s.first_error : "?");
                continue;
            }
            int sndbuf = 0;
            for (int rep = 0; rep < res->cfg.reps && !sndbuf; rep++)
                sndbuf = res->r[metric][mode][si][rep].sndbuf;
            say("%14s %14s   %-24s ", rate_text(s.msgs, "/s", a, sizeof(a)),
                rate_text(s.bytes, "B/s", b, sizeof(b)), ratio_text(&s, mode, c, sizeof(c)));
            if (mode == MODE_TOUCH || mode == MODE_COPY_FLOOR)
                say("%-10s", "-");
            else
                say("%-10d", sndbuf);
            if (s.doorbells_per_1k == s.doorbells_per_1k)
                say(" %.1f", s.doorbells_per_1k);
            failed_note(&s, res->cfg.reps);
            say("\n");
        }
    }
}

/* ", N CPU hogs running" under --hog. */
static const char *hog_text(const struct bench_config *cfg, char *buf, size_t len)
{
    if (cfg->hogs)
        snprintf(buf, len, ", %d CPU hog%s running", cfg->hogs, cfg->hogs > 1 ? "s" : "");
    else
        snprintf(buf, len, "%s", "");
    return buf;
}

static void print_pingpong(const struct bench_results *res, const struct options *o)
{
    char hogs[64];
    say("\nPing-pong round trip (%s, one message each way; microseconds; medians of %d reps of "
        "up to %d round trips%s)\n",
        type_text(res->cfg.sock_type), res->cfg.reps, res->cfg.pingpong_rounds,
        hog_text(&res->cfg, hogs, sizeof(hogs)));
    say("%-8s %-12s %10s %10s   %-24s %-12s %s\n", "size", "mode", "p50 us", "p99 us",
        "p50 x kernel", "p99 x kernel", "samples");
    for (int si = 0; si < BENCH_SIZES; si++) {
        if (!o->sizes[si])
            continue;
        char sz[32], c[64];
        for (size_t i = 0; i < sizeof(pingpong_modes) / sizeof(pingpong_modes[0]); i++) {
            enum bench_mode mode = pingpong_modes[i];
            if (!res->modes_run[METRIC_PINGPONG][mode])
                continue;
            struct summary s;
            summarize(res, METRIC_PINGPONG, mode, si, &s);
            say("%-8s %-12s ", i == 0 ? size_text(bench_sizes[si], sz, sizeof(sz)) : "",
                mode_info(mode)->name);
            if (s.ok_reps == 0) {
                say("error: %s\n", s.first_error ? s.first_error : "?");
                continue;
            }
            long samples = 0;
            for (int rep = 0; rep < res->cfg.reps && !samples; rep++)
                samples = res->r[METRIC_PINGPONG][mode][si][rep].samples;
            say("%10.2f %10.2f   %-24s ", s.p50, s.p99, ratio_text(&s, mode, c, sizeof(c)));
            if (mode == MODE_KERNEL || s.ratio_p99 != s.ratio_p99)
                say("%-12s ", "-");
            else
                say("%-12.2f ", s.ratio_p99);
            say("%ld", samples);
            failed_note(&s, res->cfg.reps);
            say("\n");
        }
    }
}

static void print_setup(const struct bench_results *res)
{
    say("\nConnection set-up (socket + connect + accept + first 1-byte round trip, abstract "
        "name; microseconds; medians of %d reps of %d connections)\n",
        res->cfg.reps, res->cfg.setup_rounds);
    say("%-21s %10s %10s   %-24s\n", "mode", "p50 us", "p99 us", "p50 x kernel");
    char c[64];
    for (size_t i = 0; i < sizeof(setup_modes) / sizeof(setup_modes[0]); i++) {
        enum bench_mode mode = setup_modes[i];
        if (!res->modes_run[METRIC_SETUP][mode])
            continue;
        struct summary s;
        summarize(res, METRIC_SETUP, mode, 0, &s);
        say("%-21s ", mode_info(mode)->name);
        if (s.ok_reps == 0) {
            say("error: %s\n", s.first_error ? s.first_error : "?");
            continue;
        }
        say("%10.2f %10.2f   %-24s", s.p50, s.p99, ratio_text(&s, mode, c, sizeof(c)));
        failed_note(&s, res->cfg.reps);
        say("\n");
    }
}

static void print_reqresp(const struct bench_results *res, const struct options *o,
                          enum bench_metric metric)
{
    int nconn = metric == METRIC_REQRESP_ONE ? 1 : REQRESP_MANY;
    char hogs[64];
    say("\nRequest/response (%s, epoll server, %d connection%s, one 64 B request in flight per "
        "connection; every reply byte written and checked; medians of %d reps; x kernel = "
        "ratio within each rep%s)\n",
        type_text(res->cfg.sock_type), nconn, nconn > 1 ? "s" : "", res->cfg.reps,
        hog_text(&res->cfg, hogs, sizeof(hogs)));
    say("%-8s %-12s %14s   %-24s %10s %10s %-8s %-8s %s\n", "reply", "mode", "requests/s",
        "x kernel", "p50 us", "p99 us", "p50 x", "p99 x", "samples");
    for (int si = 0; si < BENCH_SIZES; si++) {
        if (!o->sizes[si] || !metric_has_size(metric, si))
            continue;
        char sz[32], a[32], c[64];
        for (size_t i = 0; i < sizeof(reqresp_modes) / sizeof(reqresp_modes[0]); i++) {
            enum bench_mode mode = reqresp_modes[i];
            if (!res->modes_run[metric][mode])
                continue;
            struct summary s;
            summarize(res, metric, mode, si, &s);
            say("%-8s %-12s ", i == 0 ? size_text(bench_sizes[si], sz, sizeof(sz)) : "",
                mode_info(mode)->name);
            if (s.ok_reps == 0) {
                say("error: %s\n", s.first_error ? s.first_error : "?");
                continue;
            }
            long samples = 0;
            for (int rep = 0; rep < res->cfg.reps && !samples; rep++)
                samples = res->r[metric][mode][si][rep].samples;
            say("%14s   %-24s %10.2f %10.2f ", rate_text(s.msgs, "/s", a, sizeof(a)),
                ratio_text(&s, mode, c, sizeof(c)), s.p50, s.p99);
            if (mode == MODE_KERNEL || s.ratio_p99 != s.ratio_p99)
                say("%-8s %-8s ", "-", "-");
            else
                say("%-8.2f %-8.2f ", s.ratio_p50, s.ratio_p99);
            say("%ld", samples);
            failed_note(&s, res->cfg.reps);
            say("\n");
        }
    }
}

static void print_targets(const struct bench_results *res, const struct options *o)
{
    say("\nTargets (ratios within each repetition; verdict on the median)\n");
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        const struct target *t = &targets[i];
        if (!o->metrics[t->metric] || (t->metric != METRIC_SETUP && !o->sizes[t->size_index]) ||
            !res->modes_run[t->metric][t->mode] || !res->modes_run[t->metric][t->versus]) {
            say("target %s: not measured in this run\n", t->text);
            continue;
        }
        double median, min, max;
        int n =
            summarize_ratio(res, t->metric, t->mode, t->versus, t->size_index, &median, &min, &max);
        if (n == 0) {
            struct summary s;
            summarize(res, t->metric, t->mode, t->size_index, &s);
            if (s.ok_reps == 0 && s.first_error)
                say("target %s: measured error: %s NOT MET\n", t->text, s.first_error);
            else {
                summarize(res, t->metric, t->versus, t->size_index, &s);
                say("target %s: measured error: %s: %s NOT MET\n", t->text,
                    mode_info(t->versus)->name, s.first_error ? s.first_error : "no result");
            }
            continue;
        }
        int met = t->at_most ? median <= t->bound : median >= t->bound;
        say("target %s: measured %.2fx (spread %.2f..%.2f, %d reps) %s\n", t->text, median, min,
            max, n, met ? "MET" : "NOT MET");
    }
}

/* Repetitions that failed because a connection was not on shared memory: the run exits 3. */
static int count_off_shm(const struct bench_results *res)
{
    int n = 0;
    for (int metric = 0; metric < METRIC_COUNT; metric++)
        for (int mode = 0; mode < MODE_COUNT; mode++)
            for (int si = 0; si < BENCH_SIZES; si++)
                for (int rep = 0; rep < res->cfg.reps; rep++) {
                    const struct run_result *r = &res->r[metric][mode][si][rep];
                    n += res->modes_run[metric][mode] && res->sizes_run[metric][si] && !r->ok &&
                         strstr(r->error, "SHM_STATUS=") != NULL;
                }
    return n;
}

/* Where outputs go: $BUILD_WORKSPACE_DIRECTORY/bench/results/ under `bazel run`, else ".". */
static const char *output_path(char *buf, size_t len, const char *given, const char *name)
{
    if (given)
        return given;
    const char *ws = getenv("BUILD_WORKSPACE_DIRECTORY");
    if (ws && *ws) {
        char dir[3072];
        snprintf(dir, sizeof(dir), "%s/bench", ws);
        mkdir(dir, 0755);
        snprintf(dir, sizeof(dir), "%s/bench/results", ws);
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
            fprintf(stderr, "bench: cannot create %s: %s\n", dir, strerror(errno));
        snprintf(buf, len, "%s/%s", dir, name);
    } else {
        snprintf(buf, len, "%s", name);
    }
    return buf;
}

static const char *plot_script_path(const struct options *o, char *buf, size_t len)
{
    if (o->plot_script)
        return o->plot_script;
    const char *ws = getenv("BUILD_WORKSPACE_DIRECTORY");
    if (ws && *ws) {
        snprintf(buf, len, "%s/bench/plot.gp", ws);
        if (access(buf, R_OK) == 0)
            return buf;
    }
    return "bench/plot.gp"; /* the runfiles tree (data dependency), or the source tree */
}

/* "data.dat" next to the PNG: bench-results.png -> bench-results.dat */
static void sibling(char *buf, size_t len, const char *path, const char *ext)
{
    snprintf(buf, len, "%s", path);
    char *dot = strrchr(buf, '.');
    char *slash = strrchr(buf, '/');
    if (dot && (!slash || dot > slash))
        *dot = '\0';
    size_t used = strlen(buf);
    snprintf(buf + used, len - used, "%s", ext);
}

int main(int argc, char **argv)
{
    static struct options o;
    static struct bench_results res;
    parse_options(argc, argv, &o);
    res.cfg = o.cfg;
    setvbuf(stdout, NULL, _IOLBF, 0);

    char csv_buf[4096], png_buf[4096], dat_buf[4096], txt_buf[4096], script_buf[4096];
    const char *csv = output_path(csv_buf, sizeof(csv_buf), o.csv, "bench-results.csv");
    const char *png = output_path(png_buf, sizeof(png_buf), o.plot, "bench-results.png");
    sibling(dat_buf, sizeof(dat_buf), png, ".dat");
    sibling(txt_buf, sizeof(txt_buf), csv, ".txt");
    text_copy = fopen(txt_buf, "w");

    double start = now_seconds();
    say("shmsock benchmark, %s mode: %s%s%s%s, %d interleaved reps; streaming %.2f s per case "
        "(after %.2f s warm-up)\n",
        o.cfg.quick ? "quick" : "full", type_text(o.cfg.sock_type),
        o.cfg.sock_type2 ? " (and streaming on " : "",
        o.cfg.sock_type2 ? type_text(o.cfg.sock_type2) : "", o.cfg.sock_type2 ? ")" : "",
        o.cfg.reps, o.cfg.stream_seconds, o.cfg.warmup_seconds);
    print_machine(read_loadavg(res.load_start, sizeof(res.load_start)));
    const char *zc = zerocopy_missing(), *mm = mmsg_missing();
    say("shmsock %d.%d.%d; zero-copy calls %s%s; mmsg calls %s%s\n", SHMSOCK_VERSION_MAJOR,
        SHMSOCK_VERSION_MINOR, SHMSOCK_VERSION_PATCH, zc ? "NOT LINKED (missing " : "linked",
        zc ? zc : "", mm ? "NOT LINKED (missing " : "linked", mm ? mm : "");
    if (zc || mm)
        say("  (a call that is not linked makes its cases report \"not linked\")\n");
    say("busy-poll mode: SHM_BUSY_POLL=%d us on both sockets; SO_SNDBUF: ", o.cfg.busy_poll_us);
    if (o.cfg.sndbuf)
        say("%d for every mode\n", o.cfg.sndbuf);
    else
        say("system default, or 4 x message size when larger (64 KiB, 1 MiB), same for every "
            "mode\n");
    fflush(stdout);

    fprintf(stderr, "running (each case in its own process, bounded to %d s):\n",
            o.cfg.timeout_seconds);
    if (o.metrics[METRIC_STREAM])
        run_metric(&res, &o, METRIC_STREAM, stream_modes,
                   sizeof(stream_modes) / sizeof(stream_modes[0]));
    if (o.metrics[METRIC_STREAM2])
        run_metric(&res, &o, METRIC_STREAM2, stream_modes,
                   sizeof(stream_modes) / sizeof(stream_modes[0]));
    if (o.metrics[METRIC_SETUP])
        run_metric(&res, &o, METRIC_SETUP, setup_modes,
                   sizeof(setup_modes) / sizeof(setup_modes[0]));
    /* The latency cases last, so that --hog's hogs run during them only. */
    pid_t hog_pids[64];
    int hogs = 0;
    if (o.hog && (o.metrics[METRIC_PINGPONG] || o.metrics[METRIC_REQRESP_ONE] ||
                  o.metrics[METRIC_REQRESP_MANY])) {
        hogs = hogs_start(hog_pids, (int)(sizeof(hog_pids) / sizeof(hog_pids[0])));
        if (hogs < 0) {
            fprintf(stderr, "bench: --hog: fork: %s\n", strerror(errno));
            return 1;
        }
        o.cfg.hogs = res.cfg.hogs = hogs;
        fprintf(stderr, "  (%d CPU hogs running)\n", hogs);
    }
    if (o.metrics[METRIC_PINGPONG])
        run_metric(&res, &o, METRIC_PINGPONG, pingpong_modes,
                   sizeof(pingpong_modes) / sizeof(pingpong_modes[0]));
    for (int metric = METRIC_REQRESP_ONE; metric <= METRIC_REQRESP_MANY; metric++)
        if (o.metrics[metric])
            run_metric(&res, &o, (enum bench_metric)metric, reqresp_modes,
                       sizeof(reqresp_modes) / sizeof(reqresp_modes[0]));
    if (hogs > 0) {
        hogs_stop(hog_pids, hogs);
        fprintf(stderr, "  (CPU hogs stopped)\n");
    }

    if (o.metrics[METRIC_STREAM])
        print_stream(&res, METRIC_STREAM);
    if (o.metrics[METRIC_STREAM2])
        print_stream(&res, METRIC_STREAM2);
    if (o.metrics[METRIC_PINGPONG])
        print_pingpong(&res, &o);
    if (o.metrics[METRIC_SETUP])
        print_setup(&res);
    for (int metric = METRIC_REQRESP_ONE; metric <= METRIC_REQRESP_MANY; metric++)
        if (o.metrics[metric])
            print_reqresp(&res, &o, (enum bench_metric)metric);
    say("\n");
    print_targets(&res, &o);
    int off_shm = count_off_shm(&res);
    if (off_shm)
        say("\nFAILED: in %d repetition%s a connection that should have been on shared memory "
            "was not (SHM_STATUS, see the errors above)\n",
            off_shm, off_shm > 1 ? "s" : "");
    say("\nwall time %.1f s; load average at end %s\n", now_seconds() - start,
        read_loadavg(res.load_end, sizeof(res.load_end)));

    int status = 0;
    if (write_csv(&res, csv) < 0) {
        fprintf(stderr, "bench: cannot write %s: %s\n", csv, strerror(errno));
        status = 1;
    } else {
        printf("wrote %s\n", csv);
    }
    if (text_copy) {
        fclose(text_copy);
        text_copy = NULL;
        printf("wrote %s\n", txt_buf);
    }
    if (!o.no_plot) {
        if (write_plot_data(&res, dat_buf) < 0) {
            fprintf(stderr, "bench: cannot write %s: %s\n", dat_buf, strerror(errno));
            status = 1;
        } else {
            const char *script = plot_script_path(&o, script_buf, sizeof(script_buf));
            int r = run_gnuplot(script, dat_buf, png,
                                o.cfg.sock_type == SOCK_STREAM ? "stream" : "seqpacket");
            if (r == 0)
                printf("wrote %s (data %s)\n", png, dat_buf);
            else if (r == 127)
                fprintf(stderr, "bench: gnuplot not found: no PNG (apt-get install gnuplot-nox; "
                                "tools/bench.sh does it)\n");
            else
                fprintf(stderr, "bench: gnuplot failed on %s: no PNG\n", script);
        }
    }
    return status ? status : off_shm ? 3 : 0;
}
