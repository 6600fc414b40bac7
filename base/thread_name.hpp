#pragma once

#include <pthread.h>

namespace heaven {

/// Names the calling thread as `top -H`, `ps -L` and perf show it (at most
/// 15 characters), so an operator sees which of heaven's threads is busy.
inline void name_this_thread(const char* name) {
  ::pthread_setname_np(::pthread_self(), name);
}

} // namespace heaven
