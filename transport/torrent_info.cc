#include "transport/torrent_info.h"

#include <openssl/sha.h>

#include <libtorrent/bdecode.hpp>
#include <libtorrent/bencode.hpp>
#include <libtorrent/entry.hpp>

#include <algorithm>
#include <cstring>
#include <iterator>

namespace gapsync::transport {
namespace {

// The info dictionary for `layout` with the given concatenated SHA-1 piece hashes (lt::bencode
// writes a dictionary's keys in order, as BitTorrent requires).
std::string EncodeInfo(const TorrentLayout& layout, std::string_view pieces, const std::string& ssl_ca_pem,
                       const ReleaseDigest& release) {
  lt::entry info(lt::entry::dictionary_t);
  lt::entry::list_type& files = info["files"].list();
  for (size_t i = 0; i < layout.blobs.size(); ++i) {
    const auto& b = layout.blobs[i];
    lt::entry file(lt::entry::dictionary_t);
    file["length"] = static_cast<std::int64_t>(b.size);
    file["path"].list().emplace_back(b.digest.hex());
    files.push_back(std::move(file));
    const uint64_t pad = uint64_t{layout.pieces_of(i)} * layout.piece_size - b.size;
    if (i + 1 < layout.blobs.size() && pad > 0) {
      lt::entry padding(lt::entry::dictionary_t);
      padding["attr"] = "p";
      padding["length"] = static_cast<std::int64_t>(pad);
      auto& path = padding["path"].list();
      path.emplace_back(".pad");
      path.emplace_back(std::to_string(pad));
      files.push_back(std::move(padding));
    }
  }
  info["gapsync-release"] = release.str();
  info["name"] = kDataPlaneName;
  info["piece length"] = static_cast<std::int64_t>(layout.piece_size);
  info["pieces"] = std::string(pieces);
  if (!ssl_ca_pem.empty()) info["ssl-cert"] = ssl_ca_pem;
  std::string out;
  lt::bencode(std::back_inserter(out), info);
  return out;
}

void AppendSha1(std::string& out, const char* data, size_t n) {
  unsigned char h[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(data), n, h);
  out.append(reinterpret_cast<const char*>(h), sizeof h);
}

}  // namespace

Result<std::string> BuildTorrentInfo(store::PieceStore& store, const TorrentLayout& layout,
                                     const std::string& ssl_ca_pem, const ReleaseDigest& release) {
  if (layout.chunk_size != store.chunk_size() || layout.piece_size == 0 || layout.chunk_size % layout.piece_size != 0) {
    return MakeError(Errc::kInvalidArgument, "torrent layout: chunks must be the store's and a whole number of pieces");
  }
  std::string pieces;
  pieces.reserve(size_t{layout.num_pieces} * SHA_DIGEST_LENGTH);
  std::vector<uint8_t> chunk;
  std::vector<char> piece(layout.piece_size);
  for (size_t b = 0; b < layout.blobs.size(); ++b) {
    const auto& blob = layout.blobs[b];
    for (uint32_t c = 0; c < layout.chunks_of(b); ++c) {
      GS_RETURN_IF_ERROR(store.ReadPiece(blob.digest, c, chunk));
      for (size_t off = 0; off < chunk.size(); off += layout.piece_size) {
        const size_t n = std::min<size_t>(layout.piece_size, chunk.size() - off);
        // Pieces are padded to full size, except the torrent's very last one.
        const bool last = b + 1 == layout.blobs.size() && off + n == chunk.size() && c + 1 == layout.chunks_of(b);
        std::fill(piece.begin(), piece.end(), 0);
        std::memcpy(piece.data(), chunk.data() + off, n);
        AppendSha1(pieces, piece.data(), last ? n : piece.size());
      }
    }
  }
  return EncodeInfo(layout, pieces, ssl_ca_pem, release);
}

Status CheckTorrentInfo(const std::string& info, const TorrentLayout& layout, const std::string& ssl_ca_pem,
                        const ReleaseDigest& release) {
  lt::error_code ec;
  lt::bdecode_node node = lt::bdecode(lt::span<char const>(info.data(), static_cast<std::ptrdiff_t>(info.size())), ec);
  if (ec || node.type() != lt::bdecode_node::dict_t) {
    return MakeError(Errc::kCorrupt, "torrent info is not a bencoded dictionary");
  }
  auto found = node.dict_find_string_value("pieces");
  const std::string_view pieces(found.data(), found.size());
  if (pieces.size() != size_t{layout.num_pieces} * SHA_DIGEST_LENGTH) {
    return MakeError(Errc::kCorrupt, "torrent info lists " + std::to_string(pieces.size() / SHA_DIGEST_LENGTH) +
                                         " piece hashes, the release's blobs make " + std::to_string(layout.num_pieces) +
                                         " pieces");
  }
  if (EncodeInfo(layout, pieces, ssl_ca_pem, release) != info) {
    return MakeError(Errc::kCorrupt,
                     "torrent info does not describe the release's blobs (files, sizes, piece size, TLS root or release differ)");
  }
  return OkStatus();
}

}  // namespace gapsync::transport
