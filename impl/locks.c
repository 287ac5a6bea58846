/* locks.c - the per-thread record of held locks behind the debug checks of locks.h. */
#include "locks.h"

#ifndef NDEBUG
_Thread_local unsigned shmsock_locks_held;
#else
/* An object file must not be empty (ISO C); nothing is needed in release builds. */
typedef int shmsock_locks_release_build;
#endif
