/*
 * access_test.c - robustness: who can reach a connection, and who the peer is.
 *   - A filesystem socket path with mode 0600 keeps another user out: a child that dropped
 *     to uid/gid 65534 gets EACCES from shm_connect, exactly as from connect(2) on a kernel
 *     socket; with mode 0666 the same child gets in (so the EACCES was the mode's doing).
 *     Needs root (skipped otherwise).
 *   - No region is reachable by name: a negotiated connection (1 MiB each way) adds nothing
 *     to /dev/shm; its regions appear in /proc/self/maps only as anonymous memfds
 *     ("/memfd:shmsock (deleted)"), no descriptor or mapping of the process points into
 *     /dev/shm or any other named file.
 *   - SO_PEERCRED reports the real peer, kernel and shm alike, before and after negotiation:
 *     the pid/uid/gid of a forked peer (both directions), of a peer that dropped to uid
 *     65534, and of the own process on a socketpair.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "shmsock.h"
#include "test_support.h"

#define NOBODY 65534

static const char *type_name(int type)
{
    return type == SOCK_STREAM ? "STREAM" : "SEQPACKET";
}

/* ---- a two-round-trip handshake across processes (so shm sockets switch) ---- */

/* Returns 0, or the step that failed. */
static int child_handshake(const struct sock_api *api, int fd)
{
    char c = 'c';
    for (int round = 0; round < 2; round++) {
        if (api->send(fd, &c, 1, MSG_NOSIGNAL) != 1)
            return 1;
        if (api->recv(fd, &c, 1, 0) != 1)
            return 2;
    }
    if (api->is_shm) {
        int status = -1;
        socklen_t len = sizeof(status);
        if (shm_getsockopt(fd, SOL_SHMSOCK, SHM_STATUS, &status, &len) != 0 ||
            status != SHM_STATUS_SHM)
            return 3;
    }
    return 0;
}

static void parent_handshake(const struct sock_api *api, int fd)
{
    char c;
    for (int round = 0; round < 2; round++) {
        assert_int_equal(api->recv(fd, &c, 1, 0), 1);
        assert_int_equal(api->send(fd, &c, 1, MSG_NOSIGNAL), 1);
    }
}

static int drop_to_nobody(void)
{
    if (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0)
        return -1;
    return getuid() == NOBODY && geteuid() == NOBODY && getgid() == NOBODY ? 0 : -1;
}

/* ---- 1: mode 0600 keeps another user out ---- */

static char tmpdir[PATH_MAX];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/shmsock-access-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    /* Searchable by everyone: only the socket's own mode may keep the other user out. */
    assert_int_equal(chmod(tmpdir, 0755), 0);
}

/* Child: drop to nobody, connect; exit 0 connected (+handshake ok), errno otherwise. */
static void nobody_connect_child(const struct sock_api *api, int type, const char *path,
                                 bool handshake)
{
    alarm(20);
    if (drop_to_nobody() != 0)
        _exit(200);
    int fd = api->socket(AF_UNIX, type, 0);
    if (fd < 0)
        _exit(201);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
    if (api->connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0)
        _exit(errno > 0 && errno < 200 ? errno : 202);
    if (handshake) {
        int r = child_handshake(api, fd);
        if (r != 0)
            _exit(210 + r);
        /* The server's identity as the dropped peer sees it: the parent is root. */
        struct ucred cred;
        socklen_t len = sizeof(cred);
        if (api->getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
            cred.pid != getppid() || cred.uid != 0 || cred.gid != 0)
            _exit(220);
        char c;
        (void)api->recv(fd, &c, 1, 0); /* wait for the parent's last check */
    }
    api->close(fd);
    _exit(0);
}

static int run_nobody_child(const struct sock_api *api, int type, const char *path, bool handshake,
                            pid_t *pid_out)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        nobody_connect_child(api, type, path, handshake);
    *pid_out = pid;
    return 0;
}

static int wait_code(pid_t pid)
{
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void mode_body(const struct sock_api *api, int type)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/%s-%s.sock", tmpdir, api->name, type_name(type));
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    assert_true(strlen(path) < sizeof(addr.sun_path));
    strcpy(addr.sun_path, path);
    int listener = api->socket(AF_UNIX, type, 0);
    assert_true(listener >= 0);
    assert_int_equal(api->bind(listener, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(api->listen(listener, 4), 0);

    /* 0600: the other user is kept out. */
    assert_int_equal(chmod(path, 0600), 0);
    pid_t pid;
    run_nobody_child(api, type, path, false, &pid);
    int code = wait_code(pid);
    if (code != EACCES)
        fail_msg("%s %s: uid %d connecting to a 0600 socket of root: expected EACCES (%d), "
                 "child reported %d (%s)",
                 api->name, type_name(type), NOBODY, EACCES, code,
                 code == 0    ? "connected"
                 : code < 200 ? strerror(code)
                              : "setup failure");
    print_message("    %-6s %-9s mode 0600: uid %d gets EACCES\n", api->name, type_name(type),
                  NOBODY);

    /* 0666: the same child gets in, and the server sees who it is. */
    assert_int_equal(chmod(path, 0666), 0);
    run_nobody_child(api, type, path, true, &pid);
    int conn = api->accept(listener, NULL, NULL);
    assert_true(conn >= 0);
    parent_handshake(api, conn);
    if (api->is_shm)
        assert_int_equal(test_shm_status(conn), SHM_STATUS_SHM);
    struct ucred cred;
    socklen_t len = sizeof(cred);
    assert_int_equal(api->getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len), 0);
    assert_int_equal(len, sizeof(cred));
    assert_int_equal(cred.pid, pid);
    assert_int_equal(cred.uid, NOBODY);
    assert_int_equal(cred.gid, NOBODY);
    char c = 'e';
    assert_int_equal(api->send(conn, &c, 1, MSG_NOSIGNAL), 1);
    code = wait_code(pid);
    if (code != 0)
        fail_msg("%s %s: uid %d connecting to a 0666 socket: child reported %d", api->name,
                 type_name(type), NOBODY, code);
    print_message("    %-6s %-9s mode 0666: uid %d connects; SO_PEERCRED pid %d uid %d gid %d "
                  "(negotiated: %s)\n",
                  api->name, type_name(type), NOBODY, (int)cred.pid, (int)cred.uid, (int)cred.gid,
                  api->is_shm ? "yes" : "n/a");
    api->close(conn);
    api->close(listener);
    unlink(path);
}

static void test_mode_0600_keeps_other_user_out(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        print_message("    not root: cannot switch to another user\n");
        skip();
    }
    /* Can this process become another user at all (a user namespace may map only root)? */
    pid_t probe = fork();
    assert_true(probe >= 0);
    if (probe == 0)
        _exit(drop_to_nobody() == 0 ? 0 : 1);
    if (wait_code(probe) != 0) {
        print_message("    cannot switch to uid %d here (sandbox or user namespace)\n", NOBODY);
        skip();
    }
    test_watchdog(60, __func__);
    make_tmpdir();
    for (int i = 0; i < 2; i++) {
        mode_body(test_apis[i], SOCK_STREAM);
        mode_body(test_apis[i], SOCK_SEQPACKET);
    }
    rmdir(tmpdir);
    test_watchdog(0, NULL);
}

/* ---- 2: no region by name ---- */

#define MAX_NAMES 1024

static int list_dev_shm(char names[][256], int max)
{
    DIR *d = opendir("/dev/shm");
    if (d == NULL)
        return -1; /* no /dev/shm at all: nothing can appear there either */
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            snprintf(names[n++], 256, "%s", e->d_name);
    closedir(d);
    return n;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(a, b);
}

struct name_check {
    int memfd_maps; /* "/memfd:shmsock (deleted)" mappings */
    int other_shm;  /* mappings or fds of shmsock regions under another name */
    int dev_shm;    /* mappings or fds pointing into /dev/shm */
    int memfd_fds;  /* descriptors that are shmsock memfds */
};

static struct name_check check_names(void)
{
    struct name_check nc = {0};
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    char line[768];
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strstr(line, "/dev/shm") != NULL)
            nc.dev_shm++;
        char *name = strstr(line, "memfd:shmsock");
        if (name != NULL) {
            if (strstr(line, "/memfd:shmsock (deleted)") != NULL)
                nc.memfd_maps++;
            else
                nc.other_shm++;
        }
    }
    fclose(f);
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char link[PATH_MAX + 32], target[PATH_MAX];
        snprintf(link, sizeof(link), "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n < 0)
            continue;
        target[n] = '\0';
        if (strncmp(target, "/dev/shm", 8) == 0)
            nc.dev_shm++;
        if (strstr(target, "memfd:shmsock") != NULL)
            nc.memfd_fds++;
    }
    closedir(d);
    return nc;
}

static void no_name_body(int type)
{
    static char before[MAX_NAMES][256], after[MAX_NAMES][256];
    int nb = list_dev_shm(before, MAX_NAMES);
    struct name_check c0 = check_names();

    int a, b;
    test_connect_pair(&test_shm_api, type, &a, &b);
    test_handshake(&test_shm_api, a, b);
    assert_int_equal(test_shm_status(a), SHM_STATUS_SHM);
    assert_int_equal(test_shm_status(b), SHM_STATUS_SHM);
    /* Real traffic through the regions, both ways. */
    size_t len = type == SOCK_STREAM ? 1024 * 1024 : 100000;
    char *out = malloc(len), *in = malloc(len + 1);
    assert_non_null(out);
    assert_non_null(in);
    test_fill_pattern(out, len, 3);
    for (int dir = 0; dir < 2; dir++) {
        int s = dir == 0 ? a : b, r = dir == 0 ? b : a;
        if (type == SOCK_STREAM) {
            for (size_t off = 0; off < len; off += 65536) {
                test_send_all(&test_shm_api, s, out + off, 65536);
                test_recv_all(&test_shm_api, r, in + off, 65536);
            }
        } else {
            assert_int_equal(shm_send(s, out, len, 0), (ssize_t)len);
            assert_int_equal(shm_recv(r, in, len + 1, 0), (ssize_t)len);
        }
        assert_memory_equal(in, out, len);
    }

    int na = list_dev_shm(after, MAX_NAMES);
    struct name_check c1 = check_names();
    assert_int_equal(na, nb);
    if (nb > 0) {
        qsort(before, (size_t)nb, sizeof(before[0]), cmp_names);
        qsort(after, (size_t)na, sizeof(after[0]), cmp_names);
        for (int i = 0; i < nb; i++)
            if (strcmp(before[i], after[i]) != 0)
                fail_msg("/dev/shm changed: %s appeared", after[i]);
    }
    print_message("    %-9s negotiated connection: /dev/shm %s (%d entries before and after); "
                  "%d \"/memfd:shmsock (deleted)\" mappings, %d region mappings under other "
                  "names, %d maps/fds into /dev/shm, %d memfd descriptors held open\n",
                  type_name(type), nb < 0 ? "absent" : "unchanged", nb < 0 ? 0 : nb,
                  c1.memfd_maps - c0.memfd_maps, c1.other_shm - c0.other_shm,
                  c1.dev_shm - c0.dev_shm, c1.memfd_fds - c0.memfd_fds);
    assert_true(c1.memfd_maps - c0.memfd_maps >= 2); /* the two regions, as anonymous memfds */
    assert_int_equal(c1.other_shm, c0.other_shm);
    assert_int_equal(c1.dev_shm, c0.dev_shm);
    free(out);
    free(in);
    assert_int_equal(shm_close(a), 0);
    assert_int_equal(shm_close(b), 0);
    struct name_check c2 = check_names();
    assert_int_equal(c2.memfd_maps, c0.memfd_maps);
    assert_int_equal(c2.memfd_fds, c0.memfd_fds);
}

static void test_no_region_reachable_by_name(void **state)
{
    (void)state;
    test_watchdog(60, __func__);
    no_name_body(SOCK_STREAM);
    no_name_body(SOCK_SEQPACKET);
    test_watchdog(0, NULL);
}

/* ---- 3: SO_PEERCRED of a forked peer ---- */

static void peercred_body(const struct sock_api *api, int type)
{
    struct sockaddr_un addr;
    socklen_t alen = test_abstract_addr(&addr);
    int listener = api->socket(AF_UNIX, type, 0);
    assert_true(listener >= 0);
    assert_int_equal(api->bind(listener, (struct sockaddr *)&addr, alen), 0);
    assert_int_equal(api->listen(listener, 4), 0);
    pid_t parent = getpid();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(20);
        api->close(listener);
        int fd = api->socket(AF_UNIX, type, 0);
        if (fd < 0 || api->connect(fd, (struct sockaddr *)&addr, alen) != 0)
            _exit(1);
        struct ucred cred;
        socklen_t len = sizeof(cred);
        /* Before negotiation. */
        if (api->getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.pid != parent ||
            cred.uid != getuid() || cred.gid != getgid())
            _exit(2);
        int r = child_handshake(api, fd);
        if (r != 0)
            _exit(10 + r);
        len = sizeof(cred);
        if (api->getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.pid != parent ||
            cred.uid != getuid() || cred.gid != getgid())
            _exit(3);
        char c;
        (void)api->recv(fd, &c, 1, 0);
        _exit(0);
    }
    int conn = api->accept(listener, NULL, NULL);
    assert_true(conn >= 0);
    struct ucred cred;
    socklen_t len = sizeof(cred);
    assert_int_equal(api->getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len), 0);
    assert_int_equal(cred.pid, pid);
    assert_int_equal(cred.uid, getuid());
    assert_int_equal(cred.gid, getgid());
    parent_handshake(api, conn);
    if (api->is_shm)
        assert_int_equal(test_shm_status(conn), SHM_STATUS_SHM);
    len = sizeof(cred);
    assert_int_equal(api->getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len), 0);
    assert_int_equal(cred.pid, pid);
    assert_int_equal(cred.uid, getuid());
    assert_int_equal(cred.gid, getgid());
    char c = 'e';
    assert_int_equal(api->send(conn, &c, 1, MSG_NOSIGNAL), 1);
    int code = wait_code(pid);
    if (code != 0)
        fail_msg("%s %s: the forked peer saw wrong SO_PEERCRED or failed (code %d)", api->name,
                 type_name(type), code);
    api->close(conn);
    api->close(listener);

    /* A socketpair: the peer is this process. */
    int sv[2];
    assert_int_equal(api->socketpair(AF_UNIX, type, 0, sv), 0);
    test_handshake(api, sv[0], sv[1]);
    len = sizeof(cred);
    assert_int_equal(api->getsockopt(sv[0], SOL_SOCKET, SO_PEERCRED, &cred, &len), 0);
    assert_int_equal(cred.pid, getpid());
    assert_int_equal(cred.uid, getuid());
    api->close(sv[0]);
    api->close(sv[1]);
    print_message("    %-6s %-9s SO_PEERCRED: forked peer pid %d seen by both ends, before and "
                  "after negotiation; socketpair: own pid\n",
                  api->name, type_name(type), (int)pid);
}

static void test_peercred_reports_real_peer(void **state)
{
    (void)state;
    test_watchdog(60, __func__);
    for (int i = 0; i < 2; i++) {
        peercred_body(test_apis[i], SOCK_STREAM);
        peercred_body(test_apis[i], SOCK_SEQPACKET);
    }
    test_watchdog(0, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mode_0600_keeps_other_user_out),
        cmocka_unit_test(test_no_region_reachable_by_name),
        cmocka_unit_test(test_peercred_reports_real_peer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
