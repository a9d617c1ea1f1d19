// Internal: the libtorrent session settings of the data plane. Every value that is not
// libtorrent's default says what was measured (docs/benchmarks.md); DataPlaneOptions'
// libtorrent_settings are applied over them.
#pragma once

#include <libtorrent/settings_pack.hpp>

#include "proto/error.h"
#include "transport/data_plane.h"

namespace gapsync::transport {

// kInvalidArgument naming the setting when an override names no libtorrent setting or gives a
// number that is not one. `applied` gets one "name = value" line per override.
Result<lt::settings_pack> SessionSettings(const DataPlaneOptions& o, std::vector<std::string>& applied);

}  // namespace gapsync::transport
