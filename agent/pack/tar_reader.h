// A reader for uncompressed tar archives (ustar, GNU long names, pax paths) that reports where
// each member's bytes sit in the file, so members can be streamed without extracting them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "proto/error.h"

namespace gapsync::agent {

struct TarMember {
  std::string name;          // normalised: no leading "./"
  char type = '0';           // '0' file, '5' directory, '2' symlink, ...
  uint64_t data_offset = 0;  // byte offset of the member's data in the archive
  uint64_t size = 0;
};

// Lists members. Any member name that is absolute or contains ".." is an error naming the
// member and its header offset, as is a header that does not parse or data past the file's end.
Result<std::vector<TarMember>> ListTar(const std::string& path);

}  // namespace gapsync::agent
