/*
 * log.h - the log of what shmsock decided about a socket (SHMSOCK_LOG).
 *
 * SHMSOCK_LOG unset or empty: nothing is logged. "stderr": lines go to standard error.
 * Anything else: a file, opened for appending. Each line starts with "shmsock[pid]: ".
 * Meant for what a user of shmsock-run needs to see: a socket adopted, a connection that
 * stays on the kernel path and why, a call refused.
 */
#ifndef SHMSOCK_API_LOG_H
#define SHMSOCK_API_LOG_H

#include <stdbool.h>

/* Whether logging is on (to skip building a message nobody reads). */
bool shmsock_log_enabled(void);

/* Write one line (printf format, no newline needed). Safe from several threads; one write(2)
 * per line. */
void shmsock_log(const char *format, ...) __attribute__((format(printf, 1, 2)));

#endif
