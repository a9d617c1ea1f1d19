// Streaming reads of file byte ranges, with a read-ahead thread for long ones so that the
// kernel's copy (and the disk) overlap the caller's hashing and writing.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "proto/error.h"

namespace gapsync::agent {

using ByteSink = std::function<Status(const uint8_t*, size_t)>;

// Streams bytes [offset, offset+len) of the open file `fd` to `sink` in blocks of up to 256 KiB,
// in order. Ranges of 8 MiB or more are read ahead by a second thread (16 buffers, 4 MiB). A file that ends
// early is kCorrupt naming `path` and the offset; a sink error stops the read and is returned.
Status StreamFileRange(int fd, const std::string& path, uint64_t offset, uint64_t len, const ByteSink& sink);

}  // namespace gapsync::agent
