// The piece assembler without a libtorrent session: pieces in any order become whole chunks,
// exactly once, with their data bytes and without padding.
#include "transport/piece_assembler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

namespace gapsync::transport {
namespace {

constexpr uint32_t kChunk = 1 << 20;

BlobSpec Spec(uint64_t size, uint8_t tag) {
  BlobDigest::Raw raw{};
  raw[0] = tag;
  return {BlobDigest::FromRaw(raw), size, "application/octet-stream"};
}

// Blob `b`'s byte at `offset`: distinct per blob and position.
char ByteOf(size_t b, uint64_t offset) { return static_cast<char>((offset * 7 + b * 13 + offset / 4093) & 0xff); }

// Piece `p` as libtorrent hands it over: piece_len bytes, the blob's data then zero padding.
std::vector<char> PieceBytes(const TorrentLayout& l, uint32_t p) {
  std::vector<char> out(l.piece_len(p), 0);
  const size_t b = l.blob_of_piece(p);
  const uint64_t begin = uint64_t{p - l.first_piece[b]} * l.piece_size;
  for (uint32_t i = 0; i < l.data_len(p); ++i) out[i] = ByteOf(b, begin + i);
  return out;
}

class PieceAssemblerTest : public ::testing::Test {
 protected:
  // 2.5 MiB + 7 (3 chunks, the last short), exactly one chunk, 300000 bytes (3 pieces, the last short).
  TorrentLayout layout_ = TorrentLayout::Make({Spec(2 * kChunk + kChunk / 2 + 7, 1), Spec(kChunk, 2), Spec(300'000, 3)}, kChunk);
};

TEST_F(PieceAssemblerTest, PiecesInAnyOrderMakeEveryChunkOnceWithItsDataBytes) {
  PieceAssembler a(layout_);
  std::vector<uint32_t> order(layout_.num_pieces);
  std::iota(order.begin(), order.end(), 0u);
  std::shuffle(order.begin(), order.end(), std::mt19937(7));
  std::map<std::pair<size_t, uint32_t>, std::vector<uint8_t>> chunks;
  for (uint32_t p : order) {
    auto added = a.Add(p, PieceBytes(layout_, p));
    EXPECT_FALSE(added.duplicate);
    if (!added.whole) continue;
    auto key = std::make_pair(added.whole->blob, added.whole->index);
    EXPECT_EQ(chunks.count(key), 0u) << "chunk handed back twice";
    chunks[key] = std::move(added.whole->bytes);
  }
  EXPECT_EQ(a.chunks_in_progress(), 0u);
  ASSERT_EQ(chunks.size(), layout_.num_chunks);
  for (const auto& [key, bytes] : chunks) {
    const auto [b, c] = key;
    ASSERT_EQ(bytes.size(), layout_.chunk_len(b, c)) << "blob " << b << " chunk " << c;
    for (size_t i = 0; i < bytes.size(); i += 997) {
      ASSERT_EQ(static_cast<char>(bytes[i]), ByteOf(b, uint64_t{c} * kChunk + i)) << "blob " << b << " chunk " << c << " byte " << i;
    }
  }
}

TEST_F(PieceAssemblerTest, HeldPiecesAreServedUntilTheirChunkIsWhole) {
  PieceAssembler a(layout_);
  // Blob 0, chunk 1: pieces 8..15.
  auto first = a.Add(9, PieceBytes(layout_, 9));
  EXPECT_TRUE(first.started_chunk);
  EXPECT_FALSE(first.whole);
  ASSERT_EQ(a.Held(9).size(), layout_.data_len(9));
  EXPECT_EQ(static_cast<char>(a.Held(9)[5]), ByteOf(0, 9ull * kPieceSize + 5));
  EXPECT_TRUE(a.Held(8).empty()) << "a piece not received is not held";
  EXPECT_TRUE(a.Add(9, PieceBytes(layout_, 9)).duplicate);
  for (uint32_t p = 8; p < 16; ++p) {
    if (p == 9) continue;
    auto added = a.Add(p, PieceBytes(layout_, p));
    EXPECT_FALSE(added.started_chunk);
    EXPECT_EQ(added.whole.has_value(), p == 15);
  }
  EXPECT_TRUE(a.Held(9).empty()) << "a whole chunk is handed over, not kept";
  EXPECT_EQ(a.chunks_in_progress(), 0u);
}

TEST_F(PieceAssemblerTest, AOnePieceChunkIsWholeAtOnce) {
  // A 64 KiB store chunk is one piece: nothing to gather.
  auto small = TorrentLayout::Make({Spec(200'000, 4)}, 64 << 10);
  ASSERT_EQ(small.pieces_per_chunk(), 1u);
  PieceAssembler a(small);
  auto added = a.Add(3, PieceBytes(small, 3));
  EXPECT_FALSE(added.started_chunk);
  ASSERT_TRUE(added.whole);
  EXPECT_EQ(added.whole->index, 3u);
  EXPECT_EQ(added.whole->bytes.size(), 200'000u - 3 * (64u << 10));
}

TEST(TorrentLayoutTest, PieceLengthsAndChunkBoundaries) {
  auto l = TorrentLayout::Make({Spec(kChunk + 100, 1), Spec(50'000, 2)}, kChunk);
  // Blob 0: pieces 0..8 (the 9th holds 100 bytes, padded to a whole piece); blob 1: piece 9 (the
  // torrent's last, not padded).
  ASSERT_EQ(l.num_pieces, 10u);
  EXPECT_EQ(l.piece_len(8), kPieceSize);
  EXPECT_EQ(l.data_len(8), 100u);
  EXPECT_EQ(l.blocks_asked(8), 1u);
  EXPECT_EQ(l.piece_len(9), 50'000u);
  EXPECT_EQ(l.blocks_asked(9), 4u);
  EXPECT_EQ(l.first_piece_of_chunk(5), 0u);
  EXPECT_EQ(l.pieces_in_chunk(5), 8u);
  EXPECT_EQ(l.first_piece_of_chunk(8), 8u);
  EXPECT_EQ(l.pieces_in_chunk(8), 1u);
  EXPECT_EQ(l.first_piece_of_chunk(9), 9u);
}

}  // namespace
}  // namespace gapsync::transport
