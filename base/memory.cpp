#include "base/memory.hpp"

#include <mutex>

#include <malloc.h>

#include <spdlog/spdlog.h>

// gperftools' tcmalloc, when the binary links it (weak: tests and tools
// that do not allocate with it see a null pointer).
extern "C" void MallocExtension_ReleaseFreeMemory(void) __attribute__((weak));

namespace heaven {

namespace {

/// Blocks of this size and more get a mapping of their own from glibc.
constexpr int own_mapping_from = 128 * 1024;

} // namespace

/// Keeps glibc from holding on to what large bodies leave behind. glibc
/// gives each block of 128 KiB and more its own mapping, returned to the
/// system when freed, but the first such block freed raises that threshold
/// to the block's size (up to 32 MB), and the trim threshold to twice it:
/// after one 25 MB body, every later body, its copies and its parse are cut
/// from the per-thread arenas (64 MB each), which keep what is freed. After
/// 20,000 hostile events that was 190 MB free inside malloc and never given
/// back (tools/README.md, heaven_hostile). Setting the threshold pins it.
void pin_mmap_threshold() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (mallopt(M_MMAP_THRESHOLD, own_mapping_from) != 1)
      spdlog::warn("ingress could not set malloc's mmap threshold");
  });
}

void give_back_free_memory() {
  if (MallocExtension_ReleaseFreeMemory != nullptr)
    MallocExtension_ReleaseFreeMemory();
  else
    malloc_trim(0);
}

} // namespace heaven
