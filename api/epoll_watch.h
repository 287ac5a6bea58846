/*
 * epoll_watch.h - what the rest of the facade needs from epoll.c.
 */
#ifndef SHMSOCK_API_EPOLL_WATCH_H
#define SHMSOCK_API_EPOLL_WATCH_H

/* fd has been closed: if it was an epoll set with watches, forget them. */
void shmsock_epoll_forget(int fd);

#endif
