// YAML files an operator or vendor writes (app.yaml, the agent's config): read, parsed, and
// every error naming file:line.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>

#include "agent/base/util.h"
#include "proto/error.h"

namespace gapsync::agent {

struct YamlCtx {
  std::string file;
  std::string At(const YAML::Node& n) const {
    return n.Mark().line >= 0 ? file + ":" + std::to_string(n.Mark().line + 1) : file;
  }
  Error Err(const YAML::Node& n, const std::string& what) const {
    return MakeError(Errc::kInvalidArgument, At(n) + ": " + what);
  }
};

// Reads (at most 1 MiB) and parses `path`; a syntax error names file:line.
inline Result<YAML::Node> LoadYamlFile(const std::string& path) {
  GS_ASSIGN_OR_RETURN(auto text, ReadSmallFile(path, 1 << 20));
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return MakeError(Errc::kInvalidArgument, path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
}

}  // namespace gapsync::agent
