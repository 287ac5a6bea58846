/*
 * fd_table_test.c - unit tests for api/fd_table.{h,c}: which descriptors are shm sockets.
 * Lookups take a reference without a lock; a connection is freed only when the last
 * reference goes, and a lookup racing with removal and reuse never returns a freed
 * connection.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "api/fd_table.h"
#include "impl/conn.h"

/* Descriptor numbers the table is asked about; the connections never touch them. */
#define FD_A 1500
#define FD_B 2600 /* on another page of the table */

static struct shmsock_conn *new_conn(int fd)
{
    struct shmsock_conn *conn = NULL;
    assert_int_equal(shmsock_conn_create(fd, SOCK_STREAM, &conn), 0);
    return conn;
}

static void test_install_get_remove(void **state)
{
    (void)state;
    assert_null(shmsock_fd_get(FD_A));
    assert_null(shmsock_fd_get(-1));
    assert_null(shmsock_fd_get(1 << 30)); /* beyond the table: not a shm socket */
    struct shmsock_conn *conn = new_conn(FD_A);
    assert_int_equal(shmsock_fd_install(FD_A, conn), 0);
    struct shmsock_entry *entry = shmsock_fd_get(FD_A);
    assert_non_null(entry);
    assert_ptr_equal(entry->conn, conn);
    assert_int_equal(entry->refs, 2); /* the table's and ours */
    assert_null(shmsock_fd_get(FD_B));
    shmsock_fd_put(entry);
    assert_int_equal(entry->refs, 1);
    shmsock_fd_remove(FD_A);
    assert_null(shmsock_fd_get(FD_A));
    assert_int_equal(entry->refs, 0);
    assert_null(entry->conn); /* freed with the last reference */
}

/* A reference held across shm_close() keeps the connection; the last put frees it. */
static void test_reference_outlives_remove(void **state)
{
    (void)state;
    struct shmsock_conn *conn = new_conn(FD_B);
    assert_int_equal(shmsock_fd_install(FD_B, conn), 0);
    struct shmsock_entry *held = shmsock_fd_get(FD_B);
    assert_non_null(held);
    shmsock_fd_remove(FD_B);
    assert_null(shmsock_fd_get(FD_B));
    assert_ptr_equal(held->conn, conn); /* still there for the call in progress */
    assert_int_equal(held->conn->fd, FD_B);
    /* The number is reused by a new shm socket: a new entry, the old one untouched. */
    struct shmsock_conn *second = new_conn(FD_B);
    assert_int_equal(shmsock_fd_install(FD_B, second), 0);
    struct shmsock_entry *now = shmsock_fd_get(FD_B);
    assert_non_null(now);
    assert_ptr_equal(now->conn, second);
    assert_ptr_not_equal(now, held);
    assert_ptr_equal(held->conn, conn);
    shmsock_fd_put(held); /* the last reference to the first connection */
    assert_null(held->conn);
    shmsock_fd_put(now);
    /* A stale entry (close() without shm_close()) is replaced by the next install. */
    struct shmsock_conn *third = new_conn(FD_B);
    assert_int_equal(shmsock_fd_install(FD_B, third), 0);
    assert_null(now->conn); /* the replaced entry's connection was freed */
    struct shmsock_entry *last = shmsock_fd_get(FD_B);
    assert_ptr_equal(last->conn, third);
    shmsock_fd_put(last);
    shmsock_fd_remove(FD_B);
}

/* ---- lookups racing with removal and reuse ---- */

#define LOOKUP_THREADS 3
#define REUSES 200000

static int stop_lookups;
static long bad_lookups;

static void *lookup_loop(void *arg)
{
    (void)arg;
    long bad = 0;
    while (!__atomic_load_n(&stop_lookups, __ATOMIC_ACQUIRE)) {
        struct shmsock_entry *entry = shmsock_fd_get(FD_A);
        if (entry == NULL)
            continue;
        /* A connection handed out must be a live one for this descriptor. */
        if (entry->conn == NULL || entry->conn->fd != FD_A ||
            __atomic_load_n(&entry->refs, __ATOMIC_ACQUIRE) < 1)
            bad++;
        shmsock_fd_put(entry);
    }
    __atomic_add_fetch(&bad_lookups, bad, __ATOMIC_RELAXED);
    return NULL;
}

static void test_lookups_race_with_reuse(void **state)
{
    (void)state;
    pthread_t threads[LOOKUP_THREADS];
    for (int i = 0; i < LOOKUP_THREADS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, lookup_loop, NULL), 0);
    for (int i = 0; i < REUSES; i++) {
        assert_int_equal(shmsock_fd_install(FD_A, new_conn(FD_A)), 0);
        shmsock_fd_remove(FD_A);
        /* Entries are reused: this install takes the one just freed (unless a lookup still
         * holds it), so a lookup that loaded FD_A's slot before the removal finds it
         * serving FD_B. */
        assert_int_equal(shmsock_fd_install(FD_B, new_conn(FD_B)), 0);
        shmsock_fd_remove(FD_B);
    }
    __atomic_store_n(&stop_lookups, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < LOOKUP_THREADS; i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    assert_int_equal(bad_lookups, 0);
    assert_null(shmsock_fd_get(FD_A));
    assert_null(shmsock_fd_get(FD_B));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_install_get_remove),
        cmocka_unit_test(test_reference_outlives_remove),
        cmocka_unit_test(test_lookups_race_with_reuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
