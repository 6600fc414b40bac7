/// How heaven's process uses memory.
#pragma once

namespace heaven {

/// Pins glibc's mmap threshold at 128 KiB, so the memory of large bodies
/// goes back to the system once freed (see memory.cpp). Once per process;
/// the ingress calls it, where bodies of up to HEAVEN_MAX_BODY arrive.
void pin_mmap_threshold();

} // namespace heaven
