/*
 * bench.h - what the files of the shmsock benchmark share (see bench.c for the whole picture).
 *
 *   bench.c      options, the interleaved schedule, the table and the target lines
 *   transport.c  the modes: which calls (kernel or shm_*) and which options each one uses
 *   zerocopy.c   the zero-copy and mmsg calls, linked weakly (a missing one is reported)
 *   payload.c    the producer's pattern and the consumer's check of every byte
 *   cases.c      the measurements: streaming, ping-pong, set-up, touch-only bound
 *   copy_floor.c the two-copy floor: two processes, a bare shared ring, no socket
 *   reqresp.c    request/response: an epoll server, clients with one request in flight each
 *   hog.c        --hog: a busy process per core during the latency cases
 *   runner.c     runs one measurement in its own process group, bounded in time
 *   stats.c      medians and percentiles
 *   report.c     CSV, the plot's data file, gnuplot
 */
#ifndef SHMSOCK_BENCH_H
#define SHMSOCK_BENCH_H

#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

/* ---- modes ---- */

enum bench_mode {
    MODE_KERNEL,      /* plain socketpair/send/recv: the reference */
    MODE_EVENT,       /* shm, SHM_COALESCE=0: every event is a kernel message */
    MODE_COALESCED,   /* shm, default mode: rings in shared memory, doorbells when asleep */
    MODE_ZEROCOPY,    /* shm coalesced, shm_send_alloc/commit and shm_recv_view/release */
    MODE_BUSYPOLL,    /* shm coalesced, SHM_BUSY_POLL on both sockets */
    MODE_TOUCH,       /* no transfer: one process writes then reads the bytes (streaming only) */
    MODE_COPY_FLOOR,  /* no socket: memcpy in and out of a shared ring (streaming only) */
    MODE_KERNEL_MMSG, /* kernel sendmmsg/recvmmsg (streaming only, --mmsg) */
    MODE_MMSG,        /* shm coalesced, shm_sendmmsg/shm_recvmmsg (streaming only, --mmsg) */
    MODE_COUNT
};

enum bench_metric {
    METRIC_STREAM, /* streaming on the first socket type of --types */
    METRIC_PINGPONG,
    METRIC_SETUP,
    METRIC_REQRESP_ONE,  /* request/response, one connection */
    METRIC_REQRESP_MANY, /* request/response, REQRESP_MANY connections */
    METRIC_STREAM2,      /* streaming on the second socket type of --types (named "stream" too) */
    METRIC_COUNT
};

#define REQRESP_MANY 32

struct bench_config {
    int quick;
    int sock_type;  /* SOCK_STREAM (default) or SOCK_SEQPACKET: every case but METRIC_STREAM2 */
    int sock_type2; /* METRIC_STREAM2's type, 0 if none (--types) */
    int reps;       /* interleaved repetitions */
    double stream_seconds;   /* timed window of one streaming case */
    double warmup_seconds;   /* untimed start of each streaming case */
    int pingpong_rounds;     /* round trips per ping-pong case... */
    double pingpong_seconds; /* ...unless this much time has passed */
    int setup_rounds;        /* connections per set-up case */
    int busy_poll_us;        /* SHM_BUSY_POLL of the busy-poll mode */
    int sndbuf;              /* SO_SNDBUF for every mode; 0: max(system default, 4 x message) */
    int mmsg_batch;          /* messages per sendmmsg/recvmmsg call */
    int timeout_seconds;     /* bound of one measurement (alarm + kill) */
    int hogs;                /* --hog: CPU hogs running during ping-pong and reqresp */
};

/* One measurement, as a runner process hands it back. */
struct run_result {
    int ok;          /* 1: measured; 0: see error */
    char error[120]; /* "EMSGSIZE from shm_send_alloc", "timeout after 12 s", ... */
    double seconds;  /* timed window */
    double messages; /* messages in the window */
    double bytes;    /* bytes in the window */
    double p50_us, p99_us;
    long samples;            /* round trips or connections measured */
    int sndbuf;              /* SO_SNDBUF the sockets ended up with (getsockopt) */
    double doorbells_per_1k; /* streaming, shm modes: doorbells the reader took per 1000
                                messages (SHM_INFO); NAN otherwise */
    char note[120];          /* measured, but something looked wrong at teardown */
};

/* ---- transport.c ---- */

struct sockops {
    int (*socketpair)(int, int, int, int[2]);
    int (*socket)(int, int, int);
    int (*bind)(int, const struct sockaddr *, socklen_t);
    int (*listen)(int, int);
    int (*accept)(int, struct sockaddr *, socklen_t *);
    int (*connect)(int, const struct sockaddr *, socklen_t);
    ssize_t (*send)(int, const void *, size_t, int);
    ssize_t (*recv)(int, void *, size_t, int);
    int (*close)(int);
    int (*setsockopt)(int, int, int, const void *, socklen_t);
    int (*getsockopt)(int, int, int, void *, socklen_t *);
    int (*sendmmsg)(int, struct mmsghdr *, unsigned int, int);
    int (*recvmmsg)(int, struct mmsghdr *, unsigned int, int, struct timespec *);
};

struct mode_info {
    const char *name; /* as in the table, the CSV and the plot */
    int shm;          /* uses the shm_* calls */
    int coalesce;     /* SHM_COALESCE */
    int busy_poll;    /* set SHM_BUSY_POLL to config->busy_poll_us */
    int zerocopy;     /* send_alloc/commit, recv_view/release */
    int mmsg;         /* sendmmsg/recvmmsg */
    const struct sockops *ops;
};

const struct mode_info *mode_info(enum bench_mode mode);
const char *metric_name(enum bench_metric metric);
/* METRIC_STREAM or METRIC_STREAM2. */
int metric_is_streaming(enum bench_metric metric);
/* The socket type a metric's cases use. */
int metric_sock_type(const struct bench_config *cfg, enum bench_metric metric);
/* Throughput metrics (messages/s, bytes/s) and latency metrics (p50, p99); reqresp is both. */
int metric_has_rate(enum bench_metric metric);
int metric_has_latency(enum bench_metric metric);
/* 0 for a message size the metric leaves out (request/response: 1 KiB). */
int metric_has_size(enum bench_metric metric, int size_index);

/* Sets SO_SNDBUF (0: leave it) and the mode's shm options on fd. 0, or -1 with errno and
 * *what naming the call that failed. */
int mode_configure(const struct mode_info *m, int fd, int sndbuf, int busy_poll_us,
                   const char **what);

/* SHM_STATUS of a shm socket, -1 on error. */
int mode_shm_status(const struct mode_info *m, int fd);

/* SO_SNDBUF of fd (getsockopt), 0 on error. */
int mode_sndbuf(const struct mode_info *m, int fd);

/* Doorbells fd has taken out so far (SHM_INFO), or -1 (a kernel mode, or not available). */
long long mode_doorbells_received(const struct mode_info *m, int fd);

/* Sends all of buf (looping over partial sends). 0, or -1 with errno. */
int send_all(const struct mode_info *m, int fd, const void *buf, size_t len);

/* Receives one message of exactly len bytes (MSG_WAITALL on SOCK_STREAM). Returns len, 0 at
 * end of stream, -1 with errno, or -2 for a message of the wrong length (*got set). */
ssize_t recv_message(const struct mode_info *m, int type, int fd, void *buf, size_t len,
                     ssize_t *got);

/* ---- zerocopy.c ---- */

/* NULL if the zero-copy calls are linked, else the name of a missing one. */
const char *zerocopy_missing(void);
/* NULL if shm_sendmmsg/shm_recvmmsg are linked, else the name of a missing one. */
const char *mmsg_missing(void);
void *zc_send_alloc(int fd, size_t len, int flags);
ssize_t zc_send_commit(int fd, void *buf, size_t len, int flags);
ssize_t zc_recv_view(int fd, const void **buf, int flags);
int zc_recv_release(int fd, const void *buf);
int zc_sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags);
int zc_recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags,
                struct timespec *timeout);

/* ---- payload.c ---- */

/* Writes every byte of message number seq (a pattern of 64-bit words). */
void payload_fill(void *buf, size_t len, uint64_t seq);
/* Checks bytes [offset, offset + len) of message seq, every byte. 0 if all are right. */
int payload_verify(const void *buf, size_t offset, size_t len, uint64_t seq);

/* ---- cases.c (each runs inside a runner process) ---- */

typedef void (*case_fn)(const struct bench_config *cfg, enum bench_mode mode, size_t size,
                        struct run_result *out);
void case_stream(const struct bench_config *cfg, enum bench_mode mode, size_t size,
                 struct run_result *out);
void case_pingpong(const struct bench_config *cfg, enum bench_mode mode, size_t size,
                   struct run_result *out);
void case_setup(const struct bench_config *cfg, enum bench_mode mode, size_t size,
                struct run_result *out);
void case_touch(const struct bench_config *cfg, enum bench_mode mode, size_t size,
                struct run_result *out);
/* reqresp.c: request/response with 1 and REQRESP_MANY connections; size is the reply's. */
void case_reqresp_one(const struct bench_config *cfg, enum bench_mode mode, size_t size,
                      struct run_result *out);
void case_reqresp_many(const struct bench_config *cfg, enum bench_mode mode, size_t size,
                       struct run_result *out);
/* copy_floor.c: the two-copy floor, memcpy in and out of a bare shared ring, no socket. */
void case_copy_floor(const struct bench_config *cfg, enum bench_mode mode, size_t size,
                     struct run_result *out);
/* The SO_SNDBUF a case uses for a message size (config->sndbuf or the automatic choice). */
int case_sndbuf(const struct bench_config *cfg, size_t size);

/* What the case files share (cases.c): a case and its helper processes, the timed window. */
/* Shared by a case and its helpers (MAP_SHARED, inherited through fork). */
struct shared {
    int stop;          /* the case has what it needs: the helper stops */
    int helper_failed; /* the helper met an error: helper_error says which */
    char helper_error[120];
    char helper_note[120]; /* an error after the case was complete (teardown) */
};

struct shared *shared_create(void);
int stopping(const struct shared *sh);
void set_stop(struct shared *sh);
/* The first error of a helper (the case fails with it). */
void helper_fail(struct shared *sh, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An error after the case had its measurement (teardown): a note. */
void helper_note(struct shared *sh, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A page-aligned buffer, already faulted in. */
void *case_buffer(size_t size);
/* Waits up to two seconds for a helper, then kills it; non-zero if it had to. */
int reap_helper(pid_t pid);
/* Adds what the helpers met to the case's result (see cases.c). */
void merge_helper(struct run_result *out, struct shared *sh, int killed, const char *who);
/* "SHM", "OFFERED", ... for an SHM_STATUS value. */
const char *shm_status_name(int status);

/* The timed window of a streaming case (warm-up, then config->stream_seconds). */
struct window {
    int phase; /* 0: warming up, 1: timing, 2: done */
    double t_first, t0, t1;
    uint64_t n0, n1, last_check, check_every;
    uint64_t received; /* messages so far */
};

void window_init(struct window *w, size_t size);
/* Called with the number of messages received so far; 1 when the window has just ended. */
int window_update(struct window *w, const struct bench_config *cfg, uint64_t received);
void window_result(const struct window *w, size_t size, struct run_result *out);

/* ---- runner.c ---- */

/* Runs fn in a child process (its own process group), at most cfg->timeout_seconds. */
void run_isolated(case_fn fn, const struct bench_config *cfg, enum bench_mode mode, size_t size,
                  struct run_result *out);
double now_seconds(void);
/* Fills out->error (printf-style) and clears out->ok. */
void result_error(struct run_result *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends to out->note (the measurement stands). */
void result_note(struct run_result *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "EPIPE" etc. */
const char *errno_name(int err);

/* ---- hog.c ---- */

/* Starts one spinning process per core (at most max); their number, or -1 (none left). */
int hogs_start(pid_t *pids, int max);
void hogs_stop(pid_t *pids, int n);

/* ---- stats.c ---- */

/* Median of n values (sorts a copy); NAN if n == 0. */
double stats_median(const double *v, int n);
/* Percentile p (0..100) of n values, nearest rank; sorts v in place. */
double stats_percentile_sorted(double *v, long n, double p);
void stats_sort(double *v, long n);
double stats_min(const double *v, int n);
double stats_max(const double *v, int n);

/* ---- report.c ---- */

#define BENCH_SIZES 5
#define BENCH_MAX_REPS 16
extern const size_t bench_sizes[BENCH_SIZES];

struct bench_results {
    struct bench_config cfg;
    int modes_run[METRIC_COUNT][MODE_COUNT];  /* 1 if that metric ran that mode */
    int sizes_run[METRIC_COUNT][BENCH_SIZES]; /* 1 if that metric ran that size (--sizes) */
    struct run_result r[METRIC_COUNT][MODE_COUNT][BENCH_SIZES][BENCH_MAX_REPS];
    char load_start[128], load_end[128]; /* /proc/loadavg when the run began and ended */
};

/* Summary of one (metric, mode, size) over the repetitions. */
struct summary {
    int ok_reps, failed_reps;
    const char *first_error;
    const char *first_note; /* of a successful rep */
    int noted_reps;
    double msgs, bytes, p50, p99; /* medians of the successful reps */
    double primary; /* bytes/s (stream), requests/s (reqresp), p50 (ping-pong, set-up) */
    int ratio_n;
    double ratio, ratio_min, ratio_max; /* primary / kernel's primary, same rep */
    double ratio_p50, ratio_p99;        /* latency: p50, p99 / kernel's, median */
    double doorbells_per_1k;            /* streaming: median of the reps, NAN if none */
};

void summarize(const struct bench_results *res, enum bench_metric metric, enum bench_mode mode,
               int size_index, struct summary *s);
/* Ratio a/b per rep (both primary values of one metric/size), median/min/max. */
int summarize_ratio(const struct bench_results *res, enum bench_metric metric, enum bench_mode num,
                    enum bench_mode den, int size_index, double *median, double *min, double *max);

/* The line of /proc/loadavg (without its newline), or "?". */
const char *read_loadavg(char *buf, size_t len);
int write_csv(const struct bench_results *res, const char *path);
int write_plot_data(const struct bench_results *res, const char *path);
/* Runs gnuplot on script with data and out; 0 on success. */
int run_gnuplot(const char *script, const char *data, const char *out, const char *socktype);

#endif /* SHMSOCK_BENCH_H */
