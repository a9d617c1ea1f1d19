// RocksDB Kv. Column families: chunks (integrated BlobDB: large values live in blob files, so
// compaction moves only small index entries), blobs, partials, releases.
//
// Chunk writes skip the WAL (every byte would otherwise be written twice); FlushChunks() flushes
// the chunks memtable to blob/SST files and syncs them. Records that make chunks visible are
// written afterwards with the WAL and sync=true, so a record never points at bytes a crash lost.
#include <rocksdb/advanced_options.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/options_util.h>
#include <rocksdb/write_batch.h>

#include <array>
#include <filesystem>

#include "store/kv.h"

namespace gapsync::store {
namespace {

constexpr std::array<const char*, 5> kFamilies = {"chunks", "blobs", "partials", "releases", "pending"};

Status FromRocks(const rocksdb::Status& s, const std::string& path, const std::string& doing) {
  if (s.ok()) return OkStatus();
  std::string msg = "store " + path + ": " + doing + ": " + s.ToString();
  if (s.IsNoSpace() || s.ToString().find("No space left") != std::string::npos) {
    return MakeError(Errc::kNoSpace, "store " + path + ": no space left on device while " + doing);
  }
  if (s.IsCorruption()) return MakeError(Errc::kCorrupt, msg);
  if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
    return MakeError(Errc::kIo, "store " + path + " is in use by another gapsync process (" + s.ToString() + ")");
  }
  return MakeError(Errc::kIo, msg);
}

class RocksDbKv final : public Kv {
 public:
  static Result<std::unique_ptr<Kv>> Open(const std::string& path) {
    rocksdb::DBOptions db_options;
    db_options.create_if_missing = true;
    db_options.create_missing_column_families = true;
    db_options.max_background_jobs = 2;
    db_options.bytes_per_sync = 4 << 20;
    db_options.max_open_files = 256;
    db_options.keep_log_file_num = 3;
    db_options.max_total_wal_size = 64 << 20;

    rocksdb::ColumnFamilyOptions small;
    small.write_buffer_size = 4 << 20;
    small.compression = rocksdb::kNoCompression;  // records are small and mostly digests
    rocksdb::BlockBasedTableOptions table;
    table.block_cache = rocksdb::NewLRUCache(8 << 20);
    small.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));

    rocksdb::ColumnFamilyOptions chunks = small;
    chunks.write_buffer_size = 32 << 20;
    chunks.max_write_buffer_number = 3;
    chunks.enable_blob_files = true;
    chunks.min_blob_size = 4096;
    chunks.blob_file_size = 256 << 20;
    chunks.blob_compression_type = rocksdb::kNoCompression;  // chunks arrive compressed where it pays
    // No blob GC during normal compactions: it would rewrite every blob byte a compaction
    // touches (measured: 1.5x the ingested bytes again). gc forces it explicitly (Compact()).
    chunks.enable_blob_garbage_collection = false;

    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    cfs.emplace_back(rocksdb::kDefaultColumnFamilyName, small);
    cfs.emplace_back(kFamilies[0], chunks);
    for (size_t i = 1; i < kFamilies.size(); ++i) cfs.emplace_back(kFamilies[i], small);

    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    if (ec) return MakeError(Errc::kIo, "store " + path + ": cannot create the folder: " + ec.message());
    auto kv = std::unique_ptr<RocksDbKv>(new RocksDbKv(path));
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    GS_RETURN_IF_ERROR(FromRocks(rocksdb::DB::Open(db_options, path, cfs, &handles, &db), path, "opening"));
    kv->db_.reset(db);
    kv->default_ = handles[0];
    for (size_t i = 0; i < kFamilies.size(); ++i) kv->cf_[i] = handles[i + 1];
    return std::unique_ptr<Kv>(std::move(kv));
  }

  ~RocksDbKv() override {
    if (!db_) return;
    for (auto* h : cf_) db_->DestroyColumnFamilyHandle(h);
    db_->DestroyColumnFamilyHandle(default_);
    db_->Close().PermitUncheckedError();
  }

  Result<std::optional<std::string>> Get(Space space, std::string_view key) override {
    std::string value;
    rocksdb::ReadOptions ro;
    // Chunks carry their own XXH3-128, checked by the store on every read: RocksDB's CRC32c of
    // the same bytes (computed in software by Debian's build) would only double the cost.
    ro.verify_checksums = space != Space::kChunks;
    auto s = db_->Get(ro, Cf(space), rocksdb::Slice(key.data(), key.size()), &value);
    if (s.IsNotFound()) return std::optional<std::string>();
    GS_RETURN_IF_ERROR(FromRocks(s, path_, "reading"));
    return std::optional<std::string>(std::move(value));
  }

  Status PutChunk(std::string_view key, std::string_view head, std::string_view body) override {
    rocksdb::WriteOptions wo;
    wo.disableWAL = true;
    rocksdb::Slice k(key.data(), key.size());
    rocksdb::Slice parts[2] = {rocksdb::Slice(head.data(), head.size()), rocksdb::Slice(body.data(), body.size())};
    rocksdb::WriteBatch batch(key.size() + head.size() + body.size() + 64);
    auto s = batch.Put(Cf(Space::kChunks), rocksdb::SliceParts(&k, 1), rocksdb::SliceParts(parts, 2));
    if (s.ok()) s = db_->Write(wo, &batch);
    return FromRocks(s, path_, "writing blob bytes");
  }

  Status FlushChunks() override {
    rocksdb::FlushOptions fo;
    fo.wait = true;
    return FromRocks(db_->Flush(fo, Cf(Space::kChunks)), path_, "flushing blob bytes to disk");
  }

  Status Commit(const std::vector<KvOp>& ops) override {
    rocksdb::WriteBatch batch;
    for (const auto& op : ops) {
      if (op.value) {
        batch.Put(Cf(op.space), op.key, *op.value);
      } else {
        batch.Delete(Cf(op.space), op.key);
      }
    }
    rocksdb::WriteOptions wo;
    wo.sync = true;
    return FromRocks(db_->Write(wo, &batch), path_, "committing records");
  }

  Status Scan(Space space, std::string_view prefix,
              const std::function<bool(std::string_view, std::string_view)>& fn) override {
    rocksdb::ReadOptions ro;
    ro.verify_checksums = true;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, Cf(space)));
    for (it->Seek(rocksdb::Slice(prefix.data(), prefix.size())); it->Valid(); it->Next()) {
      auto k = it->key();
      std::string_view key(k.data(), k.size());
      if (!key.starts_with(prefix)) break;
      auto v = it->value();
      if (!fn(key, std::string_view(v.data(), v.size()))) break;
    }
    return FromRocks(it->status(), path_, "scanning");
  }

  Result<std::optional<std::string>> FirstKeyAtOrAfter(Space space, std::string_view from) override {
    // Only the key is wanted: do not let a damaged value (checked on real reads) stop the walk.
    rocksdb::ReadOptions ro;
    ro.verify_checksums = false;
    ro.fill_cache = false;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, Cf(space)));
    it->Seek(rocksdb::Slice(from.data(), from.size()));
    if (!it->Valid()) {
      GS_RETURN_IF_ERROR(FromRocks(it->status(), path_, "scanning"));
      return std::optional<std::string>();
    }
    return std::optional<std::string>(it->key().ToString());
  }

  Status DeleteChunkRange(std::string_view begin, std::string_view end) override {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    return FromRocks(db_->DeleteRange(wo, Cf(Space::kChunks), rocksdb::Slice(begin.data(), begin.size()),
                                      rocksdb::Slice(end.data(), end.size())),
                     path_, "deleting blob bytes");
  }

  Status Compact() override {
    rocksdb::CompactRangeOptions co;
    co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
    co.blob_garbage_collection_policy = rocksdb::BlobGarbageCollectionPolicy::kForce;
    co.blob_garbage_collection_age_cutoff = 1.0;  // relocate live blobs out of every file with garbage
    for (auto* h : cf_) {
      GS_RETURN_IF_ERROR(FromRocks(db_->CompactRange(co, h, nullptr, nullptr), path_, "compacting"));
    }
    return OkStatus();
  }

 private:
  explicit RocksDbKv(std::string path) : path_(std::move(path)) {}
  rocksdb::ColumnFamilyHandle* Cf(Space s) { return cf_[static_cast<size_t>(s)]; }

  std::string path_;
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::ColumnFamilyHandle* default_ = nullptr;
  std::array<rocksdb::ColumnFamilyHandle*, 5> cf_{};
};

}  // namespace

Result<std::unique_ptr<Kv>> OpenRocksDbKv(const std::string& path) { return RocksDbKv::Open(path); }

}  // namespace gapsync::store
