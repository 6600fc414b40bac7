/// How heaven's process uses memory.
#pragma once

namespace heaven {

/// Pins glibc's mmap threshold at 128 KiB, so the memory of large bodies
/// goes back to the system once freed (see memory.cpp). Once per process;
/// the ingress calls it, where bodies of up to HEAVEN_MAX_BODY arrive.
void pin_mmap_threshold();

/// Gives the memory the allocator holds free back to the system: tcmalloc's
/// when the process allocates with it (the heaven binary), else glibc's
/// (`malloc_trim`). After a burst, when nothing is left running.
void give_back_free_memory();

} // namespace heaven
