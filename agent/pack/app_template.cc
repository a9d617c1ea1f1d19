#include "agent/pack/app_template.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <set>

#include "agent/base/util.h"
#include "agent/base/yaml_file.h"
#include "agent/bundle/bundle.h"

namespace fs = std::filesystem;

namespace gapsync::agent {
namespace {

using Ctx = YamlCtx;

Status OnlyKeys(const Ctx& ctx, const YAML::Node& map, const std::string& where,
                const std::set<std::string>& allowed) {
  if (!map.IsMap()) return ctx.Err(map, where + " must be a mapping");
  for (const auto& kv : map) {
    auto key = kv.first.as<std::string>();
    if (!allowed.count(key)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      return ctx.Err(kv.first, "unknown key \"" + key + "\" in " + where + " (allowed: " + list + ")");
    }
  }
  return OkStatus();
}

Result<std::string> Scalar(const Ctx& ctx, const YAML::Node& map, const std::string& key, bool required) {
  auto n = map[key];
  if (!n) {
    if (required) return ctx.Err(map, "missing required key \"" + key + "\"");
    return std::string();
  }
  if (!n.IsScalar()) return ctx.Err(n, "\"" + key + "\" must be a string");
  return n.as<std::string>();
}

Result<std::string> ExistingPath(const Ctx& ctx, const YAML::Node& n, const fs::path& base,
                                 const std::string& rel, const std::string& what) {
  if (rel.empty()) return ctx.Err(n, what + ": empty path");
  fs::path p = fs::path(rel).is_absolute() ? fs::path(rel) : base / rel;
  std::error_code ec;
  if (!fs::exists(p, ec)) return ctx.Err(n, what + " \"" + rel + "\" does not exist (" + p.string() + ")");
  return p.lexically_normal().string();
}

}  // namespace

Result<AppTemplate> LoadAppTemplate(const std::string& path) {
  Ctx ctx{path};
  GS_ASSIGN_OR_RETURN(YAML::Node root, LoadYamlFile(path));
  try {
    AppTemplate t;
    t.file = path;
    fs::path base = fs::absolute(path).parent_path();
    GS_RETURN_IF_ERROR(OnlyKeys(ctx, root, "app.yaml", {"app", "version", "description", "components", "deploy"}));
    GS_ASSIGN_OR_RETURN(t.app, Scalar(ctx, root, "app", true));
    if (!IsValidAppName(t.app)) {
      return ctx.Err(root["app"], "app name \"" + t.app + "\" must be 1-64 of a-z 0-9 . _ - starting with a letter or digit");
    }
    GS_ASSIGN_OR_RETURN(t.version, Scalar(ctx, root, "version", true));
    if (!ParseSemVer(t.version)) {
      return ctx.Err(root["version"], "version \"" + t.version + "\" is not a semantic version (e.g. 1.2.0)");
    }
    auto comps = root["components"];
    if (!comps || !comps.IsSequence() || comps.size() == 0) {
      return ctx.Err(comps ? comps : root, "\"components\" must be a non-empty list");
    }
    std::set<std::string> names;
    for (const auto& c : comps) {
      GS_RETURN_IF_ERROR(OnlyKeys(ctx, c, "component", {"name", "image", "artifact"}));
      ComponentSpec spec;
      GS_ASSIGN_OR_RETURN(spec.name, Scalar(ctx, c, "name", true));
      if (!IsSafeFileName(spec.name)) {
        return ctx.Err(c["name"], "component name \"" + spec.name + "\" must be a plain name (A-Z a-z 0-9 . _ -)");
      }
      if (!names.insert(spec.name).second) return ctx.Err(c["name"], "component name \"" + spec.name + "\" used twice");
      bool has_image = static_cast<bool>(c["image"]), has_artifact = static_cast<bool>(c["artifact"]);
      if (has_image == has_artifact) {
        return ctx.Err(c, "component \"" + spec.name + "\" needs exactly one of \"image\" or \"artifact\"");
      }
      if (has_image) {
        GS_ASSIGN_OR_RETURN(spec.source_ref, Scalar(ctx, c, "image", true));
        std::string ref = spec.source_ref;
        std::string rel;
        if (ref.rfind("oci:", 0) == 0) {
          spec.kind = ComponentSpec::Kind::kOciLayout;
          rel = ref.substr(4);
          auto colon = rel.rfind(':');
          if (colon != std::string::npos && rel.find('/', colon) == std::string::npos) {
            spec.tag = rel.substr(colon + 1);
            rel = rel.substr(0, colon);
          }
        } else if (ref.rfind("docker-archive:", 0) == 0) {
          spec.kind = ComponentSpec::Kind::kDockerArchive;
          rel = ref.substr(15);
        } else {
          return ctx.Err(c["image"], "image \"" + ref + "\": expected oci:PATH:TAG or docker-archive:PATH");
        }
        GS_ASSIGN_OR_RETURN(spec.path, ExistingPath(ctx, c["image"], base, rel, "image path"));
      } else {
        spec.kind = ComponentSpec::Kind::kArtifact;
        GS_ASSIGN_OR_RETURN(spec.source_ref, Scalar(ctx, c, "artifact", true));
        GS_ASSIGN_OR_RETURN(spec.path, ExistingPath(ctx, c["artifact"], base, spec.source_ref, "artifact path"));
      }
      t.components.push_back(std::move(spec));
    }
    if (auto deploy = root["deploy"]) {
      GS_RETURN_IF_ERROR(OnlyKeys(ctx, deploy, "deploy", {"templates", "hooks"}));
      if (auto tmpls = deploy["templates"]) {
        if (!tmpls.IsSequence()) return ctx.Err(tmpls, "\"templates\" must be a list of file paths");
        std::set<std::string> seen;
        for (const auto& f : tmpls) {
          if (!f.IsScalar()) return ctx.Err(f, "template entry must be a file path");
          TemplateFile tf;
          tf.relative_path = fs::path(f.as<std::string>()).lexically_normal().string();
          if (!IsSafeRelativePath(tf.relative_path)) {
            return ctx.Err(f, "template \"" + f.as<std::string>() + "\" must be a path inside the template's folder");
          }
          if (!seen.insert(tf.relative_path).second) return ctx.Err(f, "template \"" + tf.relative_path + "\" listed twice");
          GS_ASSIGN_OR_RETURN(tf.path, ExistingPath(ctx, f, base, tf.relative_path, "template"));
          if (!fs::is_regular_file(tf.path)) return ctx.Err(f, "template \"" + tf.relative_path + "\" is not a regular file");
          t.templates.push_back(std::move(tf));
        }
      }
      if (auto hooks = deploy["hooks"]) {
        GS_RETURN_IF_ERROR(OnlyKeys(ctx, hooks, "hooks", {"activate", "health", "deactivate"}));
        GS_ASSIGN_OR_RETURN(t.hook_activate, Scalar(ctx, hooks, "activate", false));
        GS_ASSIGN_OR_RETURN(t.hook_health, Scalar(ctx, hooks, "health", false));
        GS_ASSIGN_OR_RETURN(t.hook_deactivate, Scalar(ctx, hooks, "deactivate", false));
      }
    }
    return t;
  } catch (const YAML::Exception& e) {
    return MakeError(Errc::kInvalidArgument, path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
}

}  // namespace gapsync::agent
