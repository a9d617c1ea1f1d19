// app.yaml: what a vendor writes to describe a release. Format: docs/app-template.md.
#pragma once

#include <string>
#include <vector>

#include "proto/error.h"

namespace gapsync::agent {

struct ComponentSpec {
  enum class Kind { kOciLayout, kDockerArchive, kArtifact };
  std::string name;
  Kind kind = Kind::kArtifact;
  std::string path;        // resolved against the template's folder
  std::string tag;         // oci only; empty = the layout's only manifest
  std::string source_ref;  // as written in app.yaml
};

struct TemplateFile {
  std::string relative_path;  // as written (relative to app.yaml's folder)
  std::string path;           // resolved
};

struct AppTemplate {
  std::string file;  // app.yaml path
  std::string app;
  std::string version;
  std::vector<ComponentSpec> components;
  std::vector<TemplateFile> templates;
  std::string hook_activate, hook_health, hook_deactivate;
};

// Parses and validates app.yaml: unknown keys, missing paths, bad names and versions are errors
// naming the file and line.
Result<AppTemplate> LoadAppTemplate(const std::string& path);


}  // namespace gapsync::agent
