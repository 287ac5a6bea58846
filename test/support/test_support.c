/* test_support.c - see test_support.h. */
#define _GNU_SOURCE /* accept4 */
#include "test_support.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "shmsock.h"

static int kernel_fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    int arg = va_arg(ap, int);
    va_end(ap);
    return fcntl(fd, cmd, arg);
}

static int shm_fcntl_int(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    int arg = va_arg(ap, int);
    va_end(ap);
    return shm_fcntl(fd, cmd, arg);
}

const struct sock_api test_kernel_api = {
    .name = "kernel",
    .is_shm = false,
    .socket = socket,
    .socketpair = socketpair,
    .bind = bind,
    .listen = listen,
    .accept = accept,
    .accept4 = accept4,
    .connect = connect,
    .send = send,
    .recv = recv,
    .sendmsg = sendmsg,
    .recvmsg = recvmsg,
    .read = read,
    .write = write,
    .shutdown = shutdown,
    .close = close,
    .setsockopt = setsockopt,
    .getsockopt = getsockopt,
    .fcntl = kernel_fcntl,
    .poll = poll,
};

const struct sock_api test_shm_api = {
    .name = "shm",
    .is_shm = true,
    .socket = shm_socket,
    .socketpair = shm_socketpair,
    .bind = shm_bind,
    .listen = shm_listen,
    .accept = shm_accept,
    .accept4 = shm_accept4,
    .connect = shm_connect,
    .send = shm_send,
    .recv = shm_recv,
    .sendmsg = shm_sendmsg,
    .recvmsg = shm_recvmsg,
    .read = shm_read,
    .write = shm_write,
    .shutdown = shm_shutdown,
    .close = shm_close,
    .setsockopt = shm_setsockopt,
    .getsockopt = shm_getsockopt,
    .fcntl = shm_fcntl_int,
    .poll = shm_poll,
};

const struct sock_api *const test_apis[2] = {&test_kernel_api, &test_shm_api};

socklen_t test_abstract_addr(struct sockaddr_un *addr)
{
    /* Random, not only pid-based: tests run in parallel in sandboxes that each have their own
     * pid namespace (so the same pids) but may share the abstract socket namespace. */
    static atomic_uint counter;
    static uint64_t nonce;
    if (nonce == 0 && getrandom(&nonce, sizeof(nonce), 0) != (ssize_t)sizeof(nonce))
        nonce = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    int n = snprintf(addr->sun_path + 1, sizeof(addr->sun_path) - 1, "shmsock-test-%016llx-%d-%u",
                     (unsigned long long)nonce, (int)getpid(), atomic_fetch_add(&counter, 1));
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

void test_connect_pair(const struct sock_api *api, int type, int *client, int *server)
{
    struct sockaddr_un addr;
    socklen_t len = test_abstract_addr(&addr);
    int listener = api->socket(AF_UNIX, type, 0);
    assert_true(listener >= 0);
    assert_int_equal(api->bind(listener, (struct sockaddr *)&addr, len), 0);
    assert_int_equal(api->listen(listener, 8), 0);
    *client = api->socket(AF_UNIX, type, 0);
    assert_true(*client >= 0);
    assert_int_equal(api->connect(*client, (struct sockaddr *)&addr, len), 0);
    *server = api->accept(listener, NULL, NULL);
    assert_true(*server >= 0);
    assert_int_equal(api->close(listener), 0);
}

void test_handshake(const struct sock_api *api, int a, int b)
{
    char byte = 'h';
    assert_int_equal(api->send(a, &byte, 1, 0), 1);
    assert_int_equal(api->recv(b, &byte, 1, 0), 1);
    assert_int_equal(api->send(b, &byte, 1, 0), 1);
    assert_int_equal(api->recv(a, &byte, 1, 0), 1);
    if (api->is_shm) {
        /* One more round trip so that both directions have switched. */
        assert_int_equal(api->send(a, &byte, 1, 0), 1);
        assert_int_equal(api->recv(b, &byte, 1, 0), 1);
        assert_int_equal(api->send(b, &byte, 1, 0), 1);
        assert_int_equal(api->recv(a, &byte, 1, 0), 1);
        assert_int_equal(test_shm_status(a), SHM_STATUS_SHM);
        assert_int_equal(test_shm_status(b), SHM_STATUS_SHM);
    }
}

int test_shm_status(int fd)
{
    int status = -1;
    socklen_t len = sizeof(status);
    assert_int_equal(shm_getsockopt(fd, SOL_SHMSOCK, SHM_STATUS, &status, &len), 0);
    return status;
}

void test_send_all(const struct sock_api *api, int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = api->send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

void test_recv_all(const struct sock_api *api, int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = api->recv(fd, p, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

static uint8_t pattern_byte(size_t i, unsigned seed)
{
    uint32_t x = (uint32_t)i * 2654435761u + seed * 40503u;
    return (uint8_t)(x >> 13);
}

void test_attach_fds(struct msghdr *m, void *control, const int *fds, size_t n)
{
    memset(control, 0, CMSG_SPACE(n * sizeof(int)));
    m->msg_control = control;
    m->msg_controllen = CMSG_SPACE(n * sizeof(int));
    struct cmsghdr *h = CMSG_FIRSTHDR(m);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(n * sizeof(int));
    memcpy(CMSG_DATA(h), fds, n * sizeof(int));
}

void test_fill_pattern(void *buf, size_t len, unsigned seed)
{
    uint8_t *p = buf;
    for (size_t i = 0; i < len; i++)
        p[i] = pattern_byte(i, seed);
}

bool test_check_pattern(const void *buf, size_t len, unsigned seed)
{
    const uint8_t *p = buf;
    for (size_t i = 0; i < len; i++)
        if (p[i] != pattern_byte(i, seed))
            return false;
    return true;
}

#include <signal.h> /* for test_watchdog */

static const char *watchdog_what = "";
static unsigned watchdog_seconds;

static void watchdog_fire(int sig)
{
    (void)sig;
    char msg[256];
    int n = snprintf(msg, sizeof(msg), "watchdog: %s still blocked after %u s\n", watchdog_what,
                     watchdog_seconds);
    if (n > 0)
        (void)!write(STDERR_FILENO, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
    _exit(1);
}

void test_watchdog(unsigned seconds, const char *what)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = watchdog_fire;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGALRM, &sa, NULL), 0);
    watchdog_what = what != NULL ? what : "";
    watchdog_seconds = seconds;
    alarm(seconds);
}

double test_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
