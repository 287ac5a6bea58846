/*
 * shmsock-ss - list the shm sockets of running processes, like `ss -x` does for kernel
 * sockets.
 *
 *   shmsock-ss PID...
 *
 * Each shm connection keeps its region's memfd open; this tool finds them in /proc/PID/fd,
 * maps each read-only (so it needs the same rights as reading /proc/PID/fd: the same user, or
 * root), checks the header and prints the counters the library keeps there. It never stops
 * or slows the process: it only reads memory the process already shares.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "impl/wire.h"
#include "impl/wire_check.h"

static const char *type_name(uint32_t type)
{
    return type == SOCK_STREAM ? "STREAM" : type == SOCK_SEQPACKET ? "SEQPACKET" : "?";
}

/* Print one region if fd_path is a shmsock memfd; returns 1 if printed. */
static int show_region(const char *fd_name, const char *fd_path)
{
    char link[256];
    ssize_t n = readlink(fd_path, link, sizeof(link) - 1);
    if (n < 0)
        return 0;
    link[n] = '\0';
    if (strncmp(link, "/memfd:shmsock", 14) != 0)
        return 0;
    int fd = open(fd_path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || st.st_size < (off_t)SHMSOCK_REGION_HEADER_SIZE) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    const struct shmsock_region_header *h =
        mmap(NULL, SHMSOCK_CONTROL_PAGE, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (h == MAP_FAILED)
        return 0;
    struct shmsock_region_header copy = *h; /* one copy, then only the copy is used */
    struct shmsock_geometry geometry;
    if (shmsock_region_check_header(&copy, (uint64_t)st.st_size, &geometry) < 0) {
        printf("  %-4s (not a valid shmsock region)\n", fd_name);
        munmap((void *)h, SHMSOCK_CONTROL_PAGE);
        return 1;
    }
    const char *mode = copy.switch_point == 0                          ? "plain"
                       : copy.send_mode == SHMSOCK_SEND_MODE_COALESCED ? "coalesced"
                                                                       : "events";
    printf("  %-4s %-10llu %-9s %-9s %4llu/%-4u x %-7u %10llu %14llu %10llu %14llu %8llu/%llu\n",
           fd_name, (unsigned long long)copy.socket_ino, type_name(copy.socket_type), mode,
           (unsigned long long)copy.counters.blocks_in_use, geometry.block_count,
           geometry.block_size, (unsigned long long)copy.counters.events_sent,
           (unsigned long long)copy.counters.bytes_sent,
           (unsigned long long)copy.counters.messages_received,
           (unsigned long long)copy.counters.bytes_received,
           (unsigned long long)copy.counters.doorbells_sent,
           (unsigned long long)copy.counters.doorbells_received);
    munmap((void *)h, SHMSOCK_CONTROL_PAGE);
    return 1;
}

static int show_process(const char *pid)
{
    char dir_path[64];
    snprintf(dir_path, sizeof(dir_path), "/proc/%s/fd", pid);
    DIR *dir = opendir(dir_path);
    if (dir == NULL) {
        fprintf(stderr, "shmsock-ss: %s: %s\n", dir_path, strerror(errno));
        return 1;
    }
    printf("pid %s\n", pid);
    printf("  %-4s %-10s %-9s %-9s %-16s %10s %14s %10s %14s %s\n", "fd", "socket-ino", "type",
           "sends", "blocks out", "msgs sent", "bytes sent", "msgs recv", "bytes recv",
           "doorbells tx/rx");
    int found = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] == '.')
            continue;
        char fd_path[320];
        snprintf(fd_path, sizeof(fd_path), "%s/%s", dir_path, entry->d_name);
        found += show_region(entry->d_name, fd_path);
    }
    closedir(dir);
    if (found == 0)
        printf("  (no shm sockets)\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fprintf(stderr, "usage: shmsock-ss PID...\n"
                        "Lists the shm sockets of each process: one line per connection, from "
                        "the counters its region holds.\n");
        return argc < 2 ? 2 : 0;
    }
    int status = 0;
    for (int i = 1; i < argc; i++) {
        char *end;
        strtol(argv[i], &end, 10);
        if (*argv[i] == '\0' || *end != '\0') {
            fprintf(stderr, "shmsock-ss: not a process id: %s\n", argv[i]);
            status = 2;
            continue;
        }
        status |= show_process(argv[i]);
    }
    return status;
}
