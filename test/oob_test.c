/*
 * oob_test.c - MSG_OOB on SOCK_STREAM, kernel socket and shm socket side by side: before a
 * connection has begun to negotiate, the urgent byte works as the kernel's (the connection
 * moves to the kernel path for good, both sides); on shared memory it is refused with
 * EOPNOTSUPP (a connection cannot yet move back to the kernel path).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "shmsock.h"
#include "test_support.h"

/* What one run of the steps saw, to compare kernel and shm. */
struct oob_steps {
    ssize_t oob_sent, oob_got, normal_got, second_oob, data_got, back_got;
    int second_oob_errno, at_mark;
    char oob_byte, normal[8];
};

static void run_steps(const struct sock_api *api, struct oob_steps *r)
{
    int sv[2];
    assert_int_equal(api->socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    memset(r, 0, sizeof(*r));
    /* The last byte of an urgent send is the urgent byte: "x" normal, "y" urgent. */
    r->oob_sent = api->send(sv[0], "xy", 2, MSG_OOB);
    r->oob_got = api->recv(sv[1], &r->oob_byte, 1, MSG_OOB);
    assert_int_equal(shm_ioctl(sv[1], SIOCATMARK, &r->at_mark), 0);
    r->normal_got = api->recv(sv[1], r->normal, sizeof(r->normal), MSG_DONTWAIT);
    errno = 0;
    char c;
    r->second_oob = api->recv(sv[1], &c, 1, MSG_OOB | MSG_DONTWAIT);
    r->second_oob_errno = errno;
    /* The connection goes on, both ways. */
    char buf[16];
    assert_int_equal(api->send(sv[0], "data", 4, 0), 4);
    r->data_got = api->recv(sv[1], buf, sizeof(buf), 0);
    assert_int_equal(api->send(sv[1], "back", 4, 0), 4);
    r->back_got = api->recv(sv[0], buf, sizeof(buf), 0);
    if (api->is_shm) /* neither side switched: the urgent byte put them on the kernel path */
        assert_true(shm_status(sv[0]) == SHM_STATUS_PLAIN && shm_status(sv[1]) == SHM_STATUS_PLAIN);
    api->close(sv[0]);
    api->close(sv[1]);
}

static void test_oob_before_negotiation_as_kernel(void **state)
{
    (void)state;
    struct oob_steps kernel, shm;
    run_steps(&test_kernel_api, &kernel);
    run_steps(&test_shm_api, &shm);
    assert_int_equal(kernel.oob_sent, 2);
    assert_int_equal(kernel.oob_got, 1);
    assert_int_equal(kernel.oob_byte, 'y');
    assert_int_equal(shm.oob_sent, kernel.oob_sent);
    assert_int_equal(shm.oob_got, kernel.oob_got);
    assert_int_equal(shm.oob_byte, kernel.oob_byte);
    assert_int_equal(shm.at_mark, kernel.at_mark);
    assert_int_equal(shm.normal_got, kernel.normal_got);
    assert_memory_equal(shm.normal, kernel.normal, sizeof(kernel.normal));
    assert_int_equal(shm.second_oob, kernel.second_oob);
    assert_int_equal(shm.second_oob_errno, kernel.second_oob_errno);
    assert_int_equal(shm.data_got, kernel.data_got);
    assert_int_equal(shm.back_got, kernel.back_got);
}

static void test_oob_on_shared_memory_refused(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(shm_socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    test_handshake(&test_shm_api, sv[0], sv[1]);
    errno = 0;
    assert_int_equal(shm_send(sv[0], "z", 1, MSG_OOB), -1);
    assert_int_equal(errno, EOPNOTSUPP);
    assert_int_equal(shm_send(sv[0], "ok", 2, 0), 2); /* the connection is unharmed */
    char buf[4];
    assert_int_equal(shm_recv(sv[1], buf, sizeof(buf), 0), 2);
    shm_close(sv[0]);
    shm_close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oob_before_negotiation_as_kernel),
        cmocka_unit_test(test_oob_on_shared_memory_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
