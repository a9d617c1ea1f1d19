#include "agent/pack/image_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "agent/pack/tar_reader.h"
#include "agent/base/util.h"
#include "proto/sha256.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace gapsync::agent {
namespace {

constexpr uint64_t kMaxJson = 16 << 20;
constexpr int kMaxIndexDepth = 4;

bool IsIndexType(const std::string& mt) {
  return mt == kOciIndex || mt == "application/vnd.docker.distribution.manifest.list.v2+json";
}

struct OciWalker {
  std::string layout;
  std::string ref;  // for messages
  ComponentInput* out;
  std::set<BlobDigest> seen;

  std::string BlobPath(const BlobDigest& d) const { return layout + "/blobs/sha256/" + d.hex(); }

  Result<BlobDigest> AddBlob(const json& desc, const std::string& context, std::string* contents) {
    if (!desc.is_object() || !desc.contains("digest") || !desc["digest"].is_string() || !desc.contains("size") ||
        !desc["size"].is_number_unsigned()) {
      return MakeError(Errc::kCorrupt, ref + ": " + context + ": descriptor without a digest and size");
    }
    auto parsed = BlobDigest::Parse(desc["digest"].get<std::string>());
    if (!parsed.ok()) return MakeError(Errc::kCorrupt, ref + ": " + context + ": " + parsed.error().message);
    BlobDigest d = parsed.value();
    uint64_t size = desc["size"].get<uint64_t>();
    std::string mt = desc.value("mediaType", std::string(kOctetStream));
    std::string path = BlobPath(d);
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return MakeError(Errc::kNotFound, ref + ": " + context + " points at missing blob " + d.str() + " (" + path + ")");
    }
    if (static_cast<uint64_t>(st.st_size) != size) {
      return MakeError(Errc::kCorrupt, ref + ": blob " + d.str() + " (" + path + ") has " + std::to_string(st.st_size) +
                                           " bytes, its descriptor says " + std::to_string(size));
    }
    if (contents != nullptr) {
      GS_ASSIGN_OR_RETURN(*contents, ReadSmallFile(path, kMaxJson));
      if (Sha256::Of(*contents) != d) {
        return MakeError(Errc::kCorrupt, ref + ": blob " + d.str() + " (" + path + ") does not match its digest");
      }
    }
    if (seen.insert(d).second) {
      BlobSource src;
      src.digest = d;
      src.size = size;
      src.media_type = mt;
      src.file = path;
      src.origin = path;
      out->blobs.push_back(std::move(src));
      out->component.mutable_image()->add_blob_digests(d.str());
    }
    return d;
  }

  Status Walk(const json& desc, const std::string& context, int depth, bool top) {
    if (depth > kMaxIndexDepth) return MakeError(Errc::kCorrupt, ref + ": image indexes nested too deeply");
    std::string body;
    GS_ASSIGN_OR_RETURN(auto d, AddBlob(desc, context, &body));
    json doc = json::parse(body, nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) {
      return MakeError(Errc::kCorrupt, ref + ": " + d.str() + " is not a JSON manifest");
    }
    std::string mt = desc.value("mediaType", doc.value("mediaType", std::string()));
    auto* image = out->component.mutable_image();
    if (IsIndexType(mt) || doc.contains("manifests")) {
      if (!doc.contains("manifests") || !doc["manifests"].is_array()) {
        return MakeError(Errc::kCorrupt, ref + ": index " + d.str() + " has no manifests list");
      }
      for (const auto& m : doc["manifests"]) {
        GS_RETURN_IF_ERROR(Walk(m, "index " + d.Short(), depth + 1, false));
      }
      return OkStatus();
    }
    if (!doc.contains("config") || !doc.contains("layers") || !doc["layers"].is_array()) {
      return MakeError(Errc::kCorrupt, ref + ": manifest " + d.str() + " lacks config or layers");
    }
    GS_ASSIGN_OR_RETURN(auto cfg, AddBlob(doc["config"], "manifest " + d.Short() + " config", nullptr));
    std::vector<std::string> layers;
    for (const auto& l : doc["layers"]) {
      GS_ASSIGN_OR_RETURN(auto ld, AddBlob(l, "manifest " + d.Short() + " layer", nullptr));
      layers.push_back(ld.str());
    }
    if (top || image->config_digest().empty()) {
      image->set_config_digest(cfg.str());
      image->clear_layer_digests();
      for (auto& l : layers) image->add_layer_digests(l);
    }
    return OkStatus();
  }
};

Status ReadMember(const std::string& tar, const TarMember& m, std::string& out) {
  if (m.size > kMaxJson) return MakeError(Errc::kCorrupt, tar + ": member " + m.name + " too large for JSON");
  int fd = ::open(tar.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return MakeError(Errc::kIo, tar + ": " + ErrnoText(errno));
  out.assign(m.size, '\0');
  ssize_t n = ::pread(fd, out.data(), out.size(), static_cast<off_t>(m.data_offset));
  ::close(fd);
  if (n != static_cast<ssize_t>(m.size)) return MakeError(Errc::kIo, tar + ": short read of member " + m.name);
  return OkStatus();
}

Result<BlobDigest> HashRange(const std::string& file, uint64_t offset, uint64_t size) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return MakeError(Errc::kIo, file + ": " + ErrnoText(errno));
  Sha256 h;
  std::vector<char> buf(1 << 20);
  uint64_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(fd, buf.data(), std::min<uint64_t>(buf.size(), size - done), static_cast<off_t>(offset + done));
    if (n <= 0) {
      ::close(fd);
      return MakeError(Errc::kIo, file + ": read failed at offset " + std::to_string(offset + done));
    }
    h.Update(buf.data(), static_cast<size_t>(n));
    done += static_cast<uint64_t>(n);
  }
  ::close(fd);
  return h.Finish();
}

}  // namespace

Result<ComponentInput> ReadOciLayout(const std::string& name, const std::string& layout_dir,
                                     const std::string& tag, const std::string& source_ref) {
  ComponentInput in;
  in.component.set_name(name);
  auto* image = in.component.mutable_image();
  image->set_source("oci");
  image->set_source_ref(source_ref);
  const std::string index_path = layout_dir + "/index.json";
  GS_ASSIGN_OR_RETURN(auto text, ReadSmallFile(index_path, kMaxJson));
  json index = json::parse(text, nullptr, false);
  if (index.is_discarded() || !index.is_object() || !index.contains("manifests") || !index["manifests"].is_array()) {
    return MakeError(Errc::kCorrupt, index_path + ": not an OCI image index");
  }
  const json* chosen = nullptr;
  std::vector<std::string> tags;
  for (const auto& m : index["manifests"]) {
    std::string t;
    if (m.contains("annotations") && m["annotations"].is_object()) {
      t = m["annotations"].value("org.opencontainers.image.ref.name", std::string());
    }
    tags.push_back(t);
    if (!tag.empty() && t == tag) chosen = &m;
  }
  if (tag.empty() && index["manifests"].size() == 1) chosen = &index["manifests"][0];
  if (chosen == nullptr) {
    std::string list;
    for (auto& t : tags) list += (list.empty() ? "" : ", ") + (t.empty() ? std::string("(untagged)") : t);
    return MakeError(Errc::kNotFound, index_path + ": no manifest tagged \"" + tag + "\" (tags: " + list + ")");
  }
  OciWalker walker{layout_dir, source_ref, &in, {}};
  GS_RETURN_IF_ERROR(walker.Walk(*chosen, "index.json", 0, true));
  auto d = BlobDigest::Parse((*chosen)["digest"].get<std::string>());
  auto* root = image->mutable_root();
  root->set_digest(d->str());
  root->set_size((*chosen)["size"].get<uint64_t>());
  root->set_media_type(chosen->value("mediaType", std::string(kOciManifest)));
  return in;
}

Result<ComponentInput> ReadDockerArchive(const std::string& name, const std::string& tar_path,
                                         const std::string& source_ref) {
  ComponentInput in;
  in.component.set_name(name);
  auto* image = in.component.mutable_image();
  image->set_source("docker-archive");
  image->set_source_ref(source_ref);
  GS_ASSIGN_OR_RETURN(auto members, ListTar(tar_path));
  std::map<std::string, TarMember> by_name;
  for (auto& m : members) by_name[m.name] = m;
  auto member = [&](const std::string& n) -> Result<TarMember> {
    std::string norm = n;
    while (norm.rfind("./", 0) == 0) norm = norm.substr(2);
    if (!IsSafeRelativePath(norm)) {
      return MakeError(Errc::kCorrupt, tar_path + ": manifest.json names \"" + n + "\", a path that leaves the archive");
    }
    auto it = by_name.find(norm);
    if (it == by_name.end()) return MakeError(Errc::kNotFound, tar_path + ": manifest.json names \"" + n + "\", which is not in the archive");
    return it->second;
  };
  GS_ASSIGN_OR_RETURN(auto mf, member("manifest.json"));
  std::string text;
  GS_RETURN_IF_ERROR(ReadMember(tar_path, mf, text));
  json manifest = json::parse(text, nullptr, false);
  if (manifest.is_discarded() || !manifest.is_array() || manifest.empty()) {
    return MakeError(Errc::kCorrupt, tar_path + ": manifest.json is not a list of images");
  }
  if (manifest.size() != 1) {
    return MakeError(Errc::kInvalidArgument, tar_path + ": holds " + std::to_string(manifest.size()) +
                                                 " images; put each in its own component");
  }
  const json& img = manifest[0];
  if (!img.is_object() || !img.contains("Config") || !img["Config"].is_string() || !img.contains("Layers") ||
      !img["Layers"].is_array()) {
    return MakeError(Errc::kCorrupt, tar_path + ": manifest.json entry lacks Config or Layers");
  }
  GS_ASSIGN_OR_RETURN(auto cfg_member, member(img["Config"].get<std::string>()));
  std::string config;
  GS_RETURN_IF_ERROR(ReadMember(tar_path, cfg_member, config));
  auto config_digest = Sha256::Of(config);
  json cfg = json::parse(config, nullptr, false);
  if (cfg.is_discarded() || !cfg.is_object()) return MakeError(Errc::kCorrupt, tar_path + ": config " + cfg_member.name + " is not JSON");
  std::vector<std::string> diff_ids;
  if (cfg.contains("rootfs") && cfg["rootfs"].contains("diff_ids") && cfg["rootfs"]["diff_ids"].is_array()) {
    for (auto& d : cfg["rootfs"]["diff_ids"]) diff_ids.push_back(d.is_string() ? d.get<std::string>() : "");
  }
  if (diff_ids.size() != img["Layers"].size()) {
    return MakeError(Errc::kCorrupt, tar_path + ": config lists " + std::to_string(diff_ids.size()) + " diff_ids for " +
                                         std::to_string(img["Layers"].size()) + " layers");
  }
  BlobSource cfg_src;
  cfg_src.digest = config_digest;
  cfg_src.size = config.size();
  cfg_src.media_type = kOciConfig;
  cfg_src.in_memory = true;
  cfg_src.data = config;
  cfg_src.origin = tar_path + ":" + cfg_member.name;
  json out_manifest = {{"schemaVersion", 2},
                       {"mediaType", kOciManifest},
                       {"config", {{"mediaType", kOciConfig}, {"digest", config_digest.str()}, {"size", config.size()}}},
                       {"layers", json::array()}};
  std::set<BlobDigest> seen{config_digest};
  std::vector<BlobSource> layer_sources;
  for (size_t i = 0; i < diff_ids.size(); ++i) {
    if (!img["Layers"][i].is_string()) return MakeError(Errc::kCorrupt, tar_path + ": layer entry is not a string");
    GS_ASSIGN_OR_RETURN(auto lm, member(img["Layers"][i].get<std::string>()));
    unsigned char magic[2] = {0, 0};
    {
      int fd = ::open(tar_path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd >= 0) {
        if (::pread(fd, magic, 2, static_cast<off_t>(lm.data_offset)) != 2) magic[0] = 0;
        ::close(fd);
      }
    }
    bool gzip = magic[0] == 0x1f && magic[1] == 0x8b;
    BlobDigest ld = config_digest;
    if (gzip) {
      GS_ASSIGN_OR_RETURN(ld, HashRange(tar_path, lm.data_offset, lm.size));
    } else {
      auto parsed = BlobDigest::Parse(diff_ids[i]);
      if (!parsed.ok()) return MakeError(Errc::kCorrupt, tar_path + ": config diff_id " + std::to_string(i) + ": " + parsed.error().message);
      ld = parsed.value();  // an uncompressed layer's digest is its diff_id: checked when copied
    }
    const char* mt = gzip ? kOciLayerTarGzip : kOciLayerTar;
    out_manifest["layers"].push_back({{"mediaType", mt}, {"digest", ld.str()}, {"size", lm.size}});
    image->add_layer_digests(ld.str());
    if (seen.insert(ld).second) {
      BlobSource s;
      s.digest = ld;
      s.size = lm.size;
      s.media_type = mt;
      s.file = tar_path;
      s.offset = lm.data_offset;
      s.origin = tar_path + ":" + lm.name;
      layer_sources.push_back(std::move(s));
    }
  }
  std::string manifest_bytes = out_manifest.dump();
  auto manifest_digest = Sha256::Of(manifest_bytes);
  BlobSource man;
  man.digest = manifest_digest;
  man.size = manifest_bytes.size();
  man.media_type = kOciManifest;
  man.in_memory = true;
  man.data = manifest_bytes;
  man.origin = tar_path + " (manifest written by gapsync)";
  in.blobs.push_back(std::move(man));
  in.blobs.push_back(std::move(cfg_src));
  for (auto& s : layer_sources) in.blobs.push_back(std::move(s));
  for (auto& b : in.blobs) image->add_blob_digests(b.digest->str());
  image->set_config_digest(config_digest.str());
  auto* root = image->mutable_root();
  root->set_digest(manifest_digest.str());
  root->set_size(manifest_bytes.size());
  root->set_media_type(kOciManifest);
  return in;
}

Result<ComponentInput> ReadArtifact(const std::string& name, const std::string& path) {
  ComponentInput in;
  in.component.set_name(name);
  auto* art = in.component.mutable_artifact();
  auto add_file = [&](const fs::path& file, const std::string& rel) -> Status {
    struct stat st {};
    if (::lstat(file.c_str(), &st) != 0) return MakeError(Errc::kIo, file.string() + ": " + ErrnoText(errno));
    if (!S_ISREG(st.st_mode)) {
      return MakeError(Errc::kInvalidArgument, file.string() + ": artifacts may hold only regular files and folders");
    }
    auto* f = art->add_files();
    f->set_path(rel);
    f->set_size(static_cast<uint64_t>(st.st_size));
    f->set_mode(st.st_mode & 07777);
    BlobSource s;
    s.size = static_cast<uint64_t>(st.st_size);
    s.media_type = kOctetStream;
    s.file = file.string();
    s.origin = file.string();
    in.blobs.push_back(std::move(s));
    return OkStatus();
  };
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return MakeError(Errc::kNotFound, path + ": " + ErrnoText(errno));
  if (S_ISDIR(st.st_mode)) {
    art->set_directory(true);
    std::vector<fs::path> entries;
    std::error_code ec;
    for (fs::recursive_directory_iterator it(path, ec), end; it != end; it.increment(ec)) {
      if (ec) break;
      entries.push_back(it->path());
    }
    if (ec) return MakeError(Errc::kIo, path + ": " + ec.message());
    std::sort(entries.begin(), entries.end());
    for (const auto& e : entries) {
      std::string rel = fs::relative(e, path).generic_string();
      struct stat es {};
      if (::lstat(e.c_str(), &es) != 0) return MakeError(Errc::kIo, e.string() + ": " + ErrnoText(errno));
      if (S_ISDIR(es.st_mode)) {
        art->add_directories(rel);
      } else {
        GS_RETURN_IF_ERROR(add_file(e, rel));
      }
    }
  } else {
    art->set_directory(false);
    art->set_file_name(fs::path(path).filename().string());
    GS_RETURN_IF_ERROR(add_file(path, ""));
  }
  return in;
}

}  // namespace gapsync::agent
