#include "agent/pack/bundle_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <map>

#include "agent/pack/app_template.h"
#include "agent/bundle/bundle.h"
#include "agent/pack/image_source.h"
#include "agent/bundle/keys.h"
#include "agent/base/parallel_hash.h"
#include "agent/base/progress.h"
#include "agent/base/read_ahead.h"
#include "agent/base/util.h"
#include "proto/sha256.h"

namespace fs = std::filesystem;

namespace gapsync::agent {
namespace {

constexpr uint64_t kWritebackEvery = 64 << 20;

// Appends bytes to volume files of at most max_size bytes each, cutting a blob across volumes
// when it does not fit in the room left.
class VolumeWriter {
 public:
  VolumeWriter(std::string dir, uint64_t max_size) : dir_(std::move(dir)), max_(max_size) {}
  ~VolumeWriter() {
    if (fd_ >= 0) ::close(fd_);
  }

  struct Mark {
    uint32_t volume;
    uint64_t offset;
  };
  Mark Position() const { return {static_cast<uint32_t>(sizes_.empty() ? 0 : sizes_.size() - 1), sizes_.empty() ? 0 : sizes_.back()}; }

  Status Write(const uint8_t* p, size_t n, v1::BlobEntry& entry) {
    while (n > 0) {
      if (fd_ < 0 || sizes_.back() == max_) GS_RETURN_IF_ERROR(NextVolume());
      uint64_t room = max_ - sizes_.back();
      size_t take = static_cast<size_t>(std::min<uint64_t>(room, n));
      const auto vol = static_cast<uint32_t>(sizes_.size() - 1);
      if (entry.segments_size() > 0 && entry.segments(entry.segments_size() - 1).volume() == vol) {
        auto* s = entry.mutable_segments(entry.segments_size() - 1);
        s->set_length(s->length() + take);
      } else {
        auto* s = entry.add_segments();
        s->set_volume(vol);
        s->set_offset(sizes_.back());
        s->set_length(take);
      }
      size_t done = 0;
      while (done < take) {
        ssize_t w = ::write(fd_, p + done, take - done);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
          return MakeError(errno == ENOSPC ? Errc::kNoSpace : Errc::kIo, CurrentPath() + ": write failed: " + ErrnoText(errno));
        }
        done += static_cast<size_t>(w);
      }
      sizes_.back() += take;
      unsynced_ += take;
      if (unsynced_ >= kWritebackEvery) {
        // Start writeback early so the final fsync does not wait for everything at once.
        ::sync_file_range(fd_, static_cast<off_t>(sizes_.back() - unsynced_), static_cast<off_t>(unsynced_), SYNC_FILE_RANGE_WRITE);
        unsynced_ = 0;
      }
      p += take;
      n -= take;
    }
    return OkStatus();
  }

  // Forgets everything written after `mark` (a duplicate blob found only after copying it).
  Status Rewind(const Mark& mark) {
    while (sizes_.size() > static_cast<size_t>(mark.volume) + 1) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = -1;
      ::unlink(PathOf(static_cast<uint32_t>(sizes_.size() - 1)).c_str());
      sizes_.pop_back();
    }
    if (sizes_.empty()) return OkStatus();
    if (fd_ < 0) {
      fd_ = ::open(CurrentPath().c_str(), O_WRONLY | O_CLOEXEC);
      if (fd_ < 0) return MakeError(Errc::kIo, CurrentPath() + ": " + ErrnoText(errno));
    }
    if (::ftruncate(fd_, static_cast<off_t>(mark.offset)) != 0 || ::lseek(fd_, static_cast<off_t>(mark.offset), SEEK_SET) < 0) {
      return MakeError(Errc::kIo, CurrentPath() + ": " + ErrnoText(errno));
    }
    sizes_.back() = mark.offset;
    unsynced_ = 0;
    return OkStatus();
  }

  Status Finish() {
    if (fd_ >= 0) {
      if (::fsync(fd_) != 0) return MakeError(Errc::kIo, CurrentPath() + ": fsync: " + ErrnoText(errno));
      ::close(fd_);
      fd_ = -1;
    }
    return OkStatus();
  }

  const std::vector<uint64_t>& sizes() const { return sizes_; }
  std::string PathOf(uint32_t i) const { return dir_ + "/" + VolumeFileName(i); }

 private:
  std::string CurrentPath() const { return PathOf(static_cast<uint32_t>(sizes_.size() - 1)); }
  Status NextVolume() {
    if (fd_ >= 0) {
      if (::fsync(fd_) != 0) return MakeError(Errc::kIo, CurrentPath() + ": fsync: " + ErrnoText(errno));
      ::close(fd_);
    }
    sizes_.push_back(0);
    unsynced_ = 0;
    fd_ = ::open(CurrentPath().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) return MakeError(Errc::kIo, CurrentPath() + ": " + ErrnoText(errno));
    return OkStatus();
  }

  std::string dir_;
  uint64_t max_;
  int fd_ = -1;
  std::vector<uint64_t> sizes_;
  uint64_t unsynced_ = 0;
};

class Creator {
 public:
  explicit Creator(const CreateOptions& o) : o_(o), volumes_(o.out_dir, o.volume_size) {}

  Result<CreateResult> Run() {
    GS_ASSIGN_OR_RETURN(auto tmpl, LoadAppTemplate(o_.template_path));
    GS_ASSIGN_OR_RETURN(auto key, SigningKey::Load(o_.key_path));
    std::vector<ComponentInput> inputs;
    for (const auto& c : tmpl.components) {
      switch (c.kind) {
        case ComponentSpec::Kind::kOciLayout: {
          GS_ASSIGN_OR_RETURN(auto in, ReadOciLayout(c.name, c.path, c.tag, c.source_ref));
          inputs.push_back(std::move(in));
          break;
        }
        case ComponentSpec::Kind::kDockerArchive: {
          GS_ASSIGN_OR_RETURN(auto in, ReadDockerArchive(c.name, c.path, c.source_ref));
          inputs.push_back(std::move(in));
          break;
        }
        case ComponentSpec::Kind::kArtifact: {
          GS_ASSIGN_OR_RETURN(auto in, ReadArtifact(c.name, c.path));
          inputs.push_back(std::move(in));
          break;
        }
      }
    }
    uint64_t total = 0;
    for (auto& in : inputs) {
      for (auto& b : in.blobs) total += b.size;
    }
    for (auto& t : tmpl.templates) {
      struct stat st {};
      if (::stat(t.path.c_str(), &st) == 0) total += static_cast<uint64_t>(st.st_size);
    }
    GS_RETURN_IF_ERROR(PrepareOutDir());
    Progress progress("bundle create", total, o_.quiet);
    progress_ = &progress;

    auto* release = manifest_.mutable_release();
    release->set_app(tmpl.app);
    release->set_version(tmpl.version);
    for (auto& in : inputs) {
      size_t file_index = 0;
      for (auto& src : in.blobs) {
        GS_ASSIGN_OR_RETURN(auto digest, Copy(src));
        if (in.component.has_artifact()) in.component.mutable_artifact()->mutable_files(static_cast<int>(file_index++))->set_digest(digest.str());
      }
      *release->add_components() = in.component;
    }
    auto* deploy = release->mutable_deploy();
    for (auto& t : tmpl.templates) {
      struct stat st {};
      if (::stat(t.path.c_str(), &st) != 0) return MakeError(Errc::kNotFound, t.path + ": " + ErrnoText(errno));
      BlobSource src;
      src.size = static_cast<uint64_t>(st.st_size);
      src.media_type = kOctetStream;
      src.file = t.path;
      src.origin = t.path;
      GS_ASSIGN_OR_RETURN(auto digest, Copy(src));
      auto* f = deploy->add_templates();
      f->set_path(t.relative_path);
      f->set_digest(digest.str());
      f->set_size(src.size);
      f->set_mode(st.st_mode & 07777);
    }
    deploy->mutable_hooks()->set_activate(tmpl.hook_activate);
    deploy->mutable_hooks()->set_health(tmpl.hook_health);
    deploy->mutable_hooks()->set_deactivate(tmpl.hook_deactivate);
    GS_RETURN_IF_ERROR(volumes_.Finish());
    progress.Finish();

    for (size_t i = 0; i < volumes_.sizes().size(); ++i) {
      auto* v = manifest_.add_volumes();
      v->set_name(VolumeFileName(static_cast<uint32_t>(i)));
      v->set_size(volumes_.sizes()[i]);
    }
    manifest_.set_format_version(kFormatVersion);
    manifest_.set_created_by("gapsync 0.1.0");
    manifest_.set_signer_key_id(key.key_id());
    GS_RETURN_IF_ERROR(ValidateManifest(manifest_, "bundle being written"));
    std::string bytes;
    {
      google::protobuf::io::StringOutputStream out(&bytes);
      google::protobuf::io::CodedOutputStream coded(&out);
      coded.SetSerializationDeterministic(true);
      manifest_.SerializeToCodedStream(&coded);
    }
    GS_ASSIGN_OR_RETURN(auto sig, key.Sign(bytes));
    GS_RETURN_IF_ERROR(WriteFileAtomic(o_.out_dir + "/" + kManifestFile, bytes));
    GS_RETURN_IF_ERROR(WriteFileAtomic(o_.out_dir + "/" + kSignatureFile, sig));

    CreateResult r;
    r.app = tmpl.app;
    r.version = tmpl.version;
    r.blobs = static_cast<uint64_t>(manifest_.blobs_size());
    for (auto& b : manifest_.blobs()) r.bytes += b.size();
    r.volumes = static_cast<uint32_t>(manifest_.volumes_size());
    r.duplicate_blobs = duplicates_;
    return r;
  }

  // Removes what a failed create wrote (only files this run made).
  void Cleanup() {
    if (!prepared_) return;
    (void)volumes_.Rewind({0, 0});
    for (const std::string& name : {VolumeFileName(0), std::string(kManifestFile), std::string(kSignatureFile),
                                   std::string(kManifestFile) + ".tmp", std::string(kSignatureFile) + ".tmp"}) {
      ::unlink((o_.out_dir + "/" + name).c_str());
    }
    if (created_dir_) ::rmdir(o_.out_dir.c_str());
  }

 private:
  Status PrepareOutDir() {
    std::error_code ec;
    if (fs::exists(o_.out_dir, ec)) {
      if (!fs::is_directory(o_.out_dir, ec)) return MakeError(Errc::kInvalidArgument, o_.out_dir + ": exists and is not a folder");
      if (!fs::is_empty(o_.out_dir, ec)) return MakeError(Errc::kConflict, o_.out_dir + ": folder is not empty; give a new or empty folder");
    } else {
      fs::create_directories(o_.out_dir, ec);
      if (ec) return MakeError(Errc::kIo, o_.out_dir + ": " + ec.message());
      created_dir_ = true;
    }
    prepared_ = true;
    return OkStatus();
  }

  // Copies one blob into the volumes (once per digest), checking or computing its digest.
  Result<BlobDigest> Copy(const BlobSource& src) {
    if (src.digest && index_.count(*src.digest)) {
      duplicates_++;
      progress_->Add(src.size);
      return *src.digest;
    }
    auto mark = volumes_.Position();
    v1::BlobEntry entry;
    entry.set_size(src.size);
    entry.set_media_type(src.media_type);
    Sha256 hash;
    bool hash_from_hasher = false;
    if (src.in_memory) {
      hash.Update(src.data.data(), src.data.size());
      GS_RETURN_IF_ERROR(volumes_.Write(reinterpret_cast<const uint8_t*>(src.data.data()), src.data.size(), entry));
      progress_->Add(src.size);
    } else {
      int fd = ::open(src.file.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) return MakeError(Errc::kNotFound, src.file + ": " + ErrnoText(errno));
      ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
      // The bytes are hashed on a second core while this one copies them into the volume.
      auto st = StreamFileRange(fd, src.origin, src.offset, src.size, [&](const uint8_t* p, size_t n) -> Status {
        hasher_.Update(p, n);
        Status written = volumes_.Write(p, n, entry);
        hasher_.Wait();
        GS_RETURN_IF_ERROR(written);
        progress_->Add(n);
        return OkStatus();
      });
      hash_from_hasher = true;
      struct stat after {};
      if (st.ok() && src.offset == 0 && ::fstat(fd, &after) == 0 && static_cast<uint64_t>(after.st_size) != src.size) {
        st = MakeError(Errc::kConflict, src.origin + ": changed while it was being bundled (" + std::to_string(src.size) +
                                            " bytes when listed, " + std::to_string(after.st_size) + " now); bundle from a stable copy");
      }
      ::close(fd);
      if (!st.ok()) {
        (void)hasher_.Finish();  // leave the hasher clean
        return st.error();
      }
    }
    auto got = hash_from_hasher ? hasher_.Finish() : hash.Finish();
    if (src.digest && got != *src.digest) {
      return MakeError(Errc::kCorrupt, src.origin + ": blob " + src.digest->str() + " does not match its digest (content hashes to " + got.str() + ")");
    }
    if (index_.count(got)) {  // an artifact identical to a blob already written
      GS_RETURN_IF_ERROR(volumes_.Rewind(mark));
      duplicates_++;
      return got;
    }
    entry.set_digest(got.str());
    index_[got] = manifest_.blobs_size();
    *manifest_.add_blobs() = entry;
    auto* d = manifest_.mutable_release()->add_blobs();
    d->set_digest(got.str());
    d->set_size(src.size);
    d->set_media_type(src.media_type);
    return got;
  }

  const CreateOptions& o_;
  VolumeWriter volumes_;
  v1::BundleManifest manifest_;
  std::map<BlobDigest, int> index_;
  Progress* progress_ = nullptr;
  ParallelSha256 hasher_;
  uint64_t duplicates_ = 0;
  bool created_dir_ = false;
  bool prepared_ = false;
};

}  // namespace

Result<CreateResult> CreateBundle(const CreateOptions& options) {
  if (options.volume_size == 0) return MakeError(Errc::kInvalidArgument, "--volume-size must be more than 0");
  Creator creator(options);
  auto r = creator.Run();
  if (!r.ok()) creator.Cleanup();
  return r;
}

}  // namespace gapsync::agent
