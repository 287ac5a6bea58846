/*
 * config.c - the preload's settings from the environment: which addresses stay on the kernel
 * path (SHMSOCK_EXCLUDE) and the defaults of each adopted socket's options.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "../fd_table.h"
#include "../log.h"
#include "preload.h"
#include "shmsock.h"

/* A default option value from the environment: value, or -1 if unset or not a number >= 0
 * (logged: a typo must not pass silently). */
static int option_from_env(const char *name)
{
    const char *text = getenv(name);
    if (text == NULL || text[0] == '\0')
        return -1;
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || value < 0 || value > INT_MAX) {
        shmsock_log("%s=%s is not a number >= 0: ignored", name, text);
        return -1;
    }
    return (int)value;
}

static void set_default(int fd, const char *env, int optname)
{
    int value = option_from_env(env);
    if (value >= 0 && shm_setsockopt(fd, SOL_SHMSOCK, optname, &value, sizeof(value)) < 0)
        shmsock_log("fd %d: %s=%d refused (%s): the library's default stays", fd, env, value,
                    strerror(errno));
}

void shmsock_preload_adopted(int fd, const char *how)
{
    struct shmsock_entry *entry = shmsock_fd_get(fd);
    if (entry == NULL)
        return; /* not a shm socket (another family or type) */
    shmsock_fd_put(entry);
    set_default(fd, "SHMSOCK_COALESCE", SHM_COALESCE);
    set_default(fd, "SHMSOCK_BUSY_POLL", SHM_BUSY_POLL);
    set_default(fd, "SHMSOCK_BLOCK_SIZE", SHM_BLOCK_SIZE);
    if (shmsock_log_enabled())
        shmsock_log("fd %d: adopted (%s)", fd, how);
}

/* The address as SHMSOCK_EXCLUDE writes it: a path, or "@" and an abstract name. False if it
 * is not an AF_UNIX address with a name. */
static bool address_name(const struct sockaddr *addr, socklen_t addrlen, char *name, size_t size)
{
    if (addr == NULL || addrlen <= offsetof(struct sockaddr_un, sun_path) ||
        addr->sa_family != AF_UNIX)
        return false;
    struct sockaddr_un un;
    size_t len = (size_t)addrlen - offsetof(struct sockaddr_un, sun_path);
    if (len > sizeof(un.sun_path))
        len = sizeof(un.sun_path);
    memcpy(un.sun_path, ((const struct sockaddr_un *)(const void *)addr)->sun_path, len);
    if (un.sun_path[0] == '\0') { /* abstract: the name is every byte after the NUL */
        if (len - 1 + 2 > size)
            return false;
        name[0] = '@';
        memcpy(name + 1, un.sun_path + 1, len - 1);
        name[len] = '\0';
        return true;
    }
    size_t path_len = strnlen(un.sun_path, len);
    if (path_len + 1 > size)
        return false;
    memcpy(name, un.sun_path, path_len);
    name[path_len] = '\0';
    return true;
}

bool shmsock_preload_excluded(const struct sockaddr *addr, socklen_t addrlen)
{
    const char *list = getenv("SHMSOCK_EXCLUDE");
    char name[sizeof(((struct sockaddr_un *)0)->sun_path) + 2];
    if (list == NULL || list[0] == '\0' || !address_name(addr, addrlen, name, sizeof(name)))
        return false;
    size_t name_len = strlen(name);
    for (const char *item = list; *item != '\0';) {
        const char *end = strchr(item, ':');
        size_t len = end != NULL ? (size_t)(end - item) : strlen(item);
        if (len == name_len && memcmp(item, name, len) == 0)
            return true;
        item += len + (end != NULL ? 1 : 0);
    }
    return false;
}

void shmsock_preload_exclude(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
    int off = 0;
    if (shm_setsockopt(fd, SOL_SHMSOCK, SHM_NEGOTIATE, &off, sizeof(off)) == 0) {
        char name[sizeof(((struct sockaddr_un *)0)->sun_path) + 2] = "?";
        (void)address_name(addr, addrlen, name, sizeof(name));
        shmsock_log("fd %d: %s is in SHMSOCK_EXCLUDE: kernel path", fd, name);
    }
}
