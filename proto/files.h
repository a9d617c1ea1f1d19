// Small durable-file helpers every module may use.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "proto/error.h"

namespace gapsync {

// Creates `path` holding `contents` with permission `mode`, durably and never half-written: a
// temp file is written and fsynced, then hard-linked into place. kConflict if `path` exists
// (nothing is overwritten).
Status WriteNewFile(const std::string& path, mode_t mode, std::string_view contents);

}  // namespace gapsync
