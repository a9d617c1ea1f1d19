// BlobReader: reading verified blobs out of the store, the view of it a reader needs (the node's
// registry, next); implemented by every BlobStore (store/blob_store.h).
//
// Every byte handed to a ReadSink has been checked against the per-chunk hash recorded when it was
// stored (and RocksDB's own checksum): corrupt bytes are reported, never passed on.
// Threading: every call is thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>

#include "proto/digest.h"
#include "proto/error.h"

namespace gapsync::store {

struct BlobInfo {
  BlobDigest digest;
  uint64_t size = 0;
  uint64_t stored_bytes = 0;  // on-store size after compression
  std::string media_type;
  uint64_t chunks = 0;        // stored chunks (their size was fixed when the blob was written)
};

// Receives the bytes of a read in order, a chunk at a time; an error stops the read.
using ReadSink = std::function<Status(std::span<const uint8_t>)>;

class BlobReader {
 public:
  virtual ~BlobReader() = default;

  // The blob, if it is visible (complete, verified and durable).
  virtual Result<std::optional<BlobInfo>> Stat(const BlobDigest& digest) = 0;

  // Streams bytes [offset, offset+length) of a visible blob to `sink`, one verified chunk at a
  // time (the whole blob is never in memory). kNotFound for a blob that is not visible,
  // kInvalidArgument for a range past its end, kCorrupt (naming blob, chunk and byte range) when a
  // chunk does not verify: no byte of that chunk reaches the sink.
  virtual Status Read(const BlobDigest& digest, uint64_t offset, uint64_t length, const ReadSink& sink) = 0;
};

}  // namespace gapsync::store
