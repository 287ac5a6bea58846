/*
 * status_test.c - shm_status: the same answer as getsockopt(SHM_STATUS) for every kind of
 * descriptor, and no system call (checked in a child under seccomp's strict mode, which kills
 * a process on any call but read, write, _exit and sigreturn).
 */
#define _GNU_SOURCE
#include <linux/seccomp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "shmsock.h"
#include "test_support.h"

static int getsockopt_status(int fd)
{
    int status = -1;
    socklen_t len = sizeof(status);
    if (shm_getsockopt(fd, SOL_SHMSOCK, SHM_STATUS, &status, &len) < 0)
        return -1;
    return status;
}

static void test_same_as_getsockopt(void **state)
{
    (void)state;
    int sv[2], pipefd[2], dgram[2], client, server;
    assert_int_equal(shm_socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(shm_status(sv[0]), SHM_STATUS_PLAIN);
    assert_int_equal(shm_status(sv[0]), getsockopt_status(sv[0]));
    test_handshake(&test_shm_api, sv[0], sv[1]);
    assert_int_equal(shm_status(sv[0]), SHM_STATUS_SHM);
    assert_int_equal(shm_status(sv[1]), getsockopt_status(sv[1]));
    /* A listener, a datagram socket, a pipe, a closed number, a negative one. */
    test_connect_pair(&test_shm_api, SOCK_SEQPACKET, &client, &server);
    int listener = shm_socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr;
    socklen_t len = test_abstract_addr(&addr);
    assert_int_equal(shm_bind(listener, (struct sockaddr *)&addr, len), 0);
    assert_int_equal(shm_listen(listener, 1), 0);
    assert_int_equal(shm_status(listener), SHM_STATUS_PASSTHROUGH);
    assert_int_equal(shm_status(listener), getsockopt_status(listener));
    assert_int_equal(shm_socketpair(AF_UNIX, SOCK_DGRAM, 0, dgram), 0);
    assert_int_equal(shm_status(dgram[0]), SHM_STATUS_PASSTHROUGH);
    assert_int_equal(pipe(pipefd), 0);
    assert_int_equal(shm_status(pipefd[0]), SHM_STATUS_PASSTHROUGH);
    int closed = sv[0];
    assert_int_equal(shm_close(sv[0]), 0);
    assert_int_equal(shm_status(closed), SHM_STATUS_PASSTHROUGH);
    assert_int_equal(shm_status(-1), SHM_STATUS_PASSTHROUGH);
    assert_int_equal(shm_status(client), getsockopt_status(client));
    shm_close(sv[1]);
    shm_close(client);
    shm_close(server);
    shm_close(listener);
    shm_close(dgram[0]);
    shm_close(dgram[1]);
    close(pipefd[0]);
    close(pipefd[1]);
}

static void test_no_system_call(void **state)
{
    (void)state;
    int sv[2], report[2];
    assert_int_equal(shm_socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    test_handshake(&test_shm_api, sv[0], sv[1]);
    assert_int_equal(pipe(report), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* First calls may set things up (the fork watch registers at the first socket, so
         * nothing is left to do here); under strict mode any other call kills us. */
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT) != 0)
            syscall(SYS_exit, 3);
        int got[3] = {shm_status(sv[0]), shm_status(report[0]), shm_status(12345)};
        ssize_t n = write(report[1], got, sizeof(got));
        syscall(SYS_exit, n == (ssize_t)sizeof(got) ? 0 : 2);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st)); /* not killed: no system call */
    assert_int_equal(WEXITSTATUS(st), 0);
    int got[3];
    assert_int_equal(read(report[0], got, sizeof(got)), (ssize_t)sizeof(got));
    assert_int_equal(got[0], SHM_STATUS_SHM);
    assert_int_equal(got[1], SHM_STATUS_PASSTHROUGH);
    assert_int_equal(got[2], SHM_STATUS_PASSTHROUGH);
    shm_close(sv[0]);
    shm_close(sv[1]);
    close(report[0]);
    close(report[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_as_getsockopt),
        cmocka_unit_test(test_no_system_call),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
