/*
 * process.c - the preload's calls that start another program: execve, execv, execvp, execvpe,
 * execl, execlp, execle, fexecve, posix_spawn, posix_spawnp, system, popen, and
 * posix_spawn_file_actions_adddup2 (a spawned child may receive a socket that way).
 *
 * A program started this way keeps no state of our sockets: every shm socket it inherits is
 * handed over first (it stays on the kernel path for good, see share.h). One that is already
 * on shared memory cannot be, so the call fails with EOPNOTSUPP rather than let the new program
 * read event records as payload. The C library's exec functions call its execve internally,
 * not through this one, so each is covered here. fork needs nothing: the library's fork
 * handlers count the holders.
 */
#define _GNU_SOURCE
#include <alloca.h>
#include <dlfcn.h>
#include <errno.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../fd_table.h"
#include "../share.h"
#include "preload.h"

/* The C library's function `name`: the next definition after the preload. */
static void *next(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

/* 0 if the program may be started, -1 with errno EOPNOTSUPP if not. */
static int hand_over_all(void)
{
    shmsock_preload_ready();
    int err = shmsock_share_before_exec();
    if (err < 0) {
        errno = -err;
        return -1;
    }
    return 0;
}

int execve(const char *path, char *const argv[], char *const envp[])
{
    static int (*real)(const char *, char *const[], char *const[]);
    if (hand_over_all() < 0)
        return -1;
    if (real == NULL)
        real = next("execve");
    return real(path, argv, envp);
}

int execv(const char *path, char *const argv[])
{
    return execve(path, argv, environ);
}

int execvpe(const char *file, char *const argv[], char *const envp[])
{
    static int (*real)(const char *, char *const[], char *const[]);
    if (hand_over_all() < 0)
        return -1;
    if (real == NULL)
        real = next("execvpe");
    return real(file, argv, envp);
}

int execvp(const char *file, char *const argv[])
{
    return execvpe(file, argv, environ);
}

int fexecve(int fd, char *const argv[], char *const envp[])
{
    static int (*real)(int, char *const[], char *const[]);
    if (hand_over_all() < 0)
        return -1;
    if (real == NULL)
        real = next("fexecve");
    return real(fd, argv, envp);
}

/* execl, execlp, execle: the argument list up to its NULL, as an argv on the stack (alloca, as
 * the C library does: exec may be called after vfork, where malloc is not safe). Declares
 * `argv` in the calling function and leaves `ap` after the list's NULL (execle's envp next). */
#define ARGV_FROM_LIST(arg, ap)                                                                    \
    size_t count_ = 1;                                                                             \
    va_list copy_;                                                                                 \
    va_copy(copy_, ap);                                                                            \
    while (va_arg(copy_, char *) != NULL)                                                          \
        count_++;                                                                                  \
    va_end(copy_);                                                                                 \
    char **argv = alloca((count_ + 1) * sizeof(char *));                                           \
    argv[0] = (char *)(arg);                                                                       \
    for (size_t i_ = 1; i_ <= count_; i_++)                                                        \
    argv[i_] = va_arg(ap, char *)

int execl(const char *path, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    ARGV_FROM_LIST(arg, ap);
    va_end(ap);
    return execve(path, argv, environ);
}

int execlp(const char *file, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    ARGV_FROM_LIST(arg, ap);
    va_end(ap);
    return execvpe(file, argv, environ);
}

int execle(const char *path, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    ARGV_FROM_LIST(arg, ap);
    char *const *envp = va_arg(ap, char *const *);
    va_end(ap);
    return execve(path, argv, envp);
}

int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
                const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    static int (*real)(pid_t *, const char *, const posix_spawn_file_actions_t *,
                       const posix_spawnattr_t *, char *const[], char *const[]);
    if (hand_over_all() < 0)
        return errno; /* posix_spawn returns the error number */
    if (real == NULL)
        real = next("posix_spawn");
    return real(pid, path, actions, attr, argv, envp);
}

int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
                 const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    static int (*real)(pid_t *, const char *, const posix_spawn_file_actions_t *,
                       const posix_spawnattr_t *, char *const[], char *const[]);
    if (hand_over_all() < 0)
        return errno;
    if (real == NULL)
        real = next("posix_spawnp");
    return real(pid, file, actions, attr, argv, envp);
}

/* The child will get fd as newfd, whatever its FD_CLOEXEC: hand the socket over now. */
int posix_spawn_file_actions_adddup2(posix_spawn_file_actions_t *actions, int fd, int newfd)
{
    static int (*real)(posix_spawn_file_actions_t *, int, int);
    shmsock_preload_ready();
    struct shmsock_entry *entry = shmsock_fd_get(fd);
    if (entry != NULL) {
        int err = shmsock_share_hand_over(entry->socket);
        shmsock_fd_put(entry);
        if (err < 0)
            return -err;
    }
    if (real == NULL)
        real = next("posix_spawn_file_actions_adddup2");
    return real(actions, fd, newfd);
}

int system(const char *command)
{
    static int (*real)(const char *);
    if (command != NULL && hand_over_all() < 0)
        return -1;
    if (real == NULL)
        real = next("system");
    return real(command);
}

FILE *popen(const char *command, const char *type)
{
    static FILE *(*real)(const char *, const char *);
    if (hand_over_all() < 0)
        return NULL;
    if (real == NULL)
        real = next("popen");
    return real(command, type);
}
