// StreamFileRange: in-order, complete delivery on both the direct path and the read-ahead thread;
// truncation and sink errors are reported, never lost, and never hang.
#include "agent/base/read_ahead.h"

#include <fcntl.h>
#include <unistd.h>

#include "tests/agent/test_util.h"

namespace gapsync::agent {
namespace {

using gapsync::testing::RandomBytes;
using gapsync::testing::TempDir;
using gapsync::testing::WriteFile;

class StreamFileRangeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    contents_ = RandomBytes(21 * 1024 * 1024 + 123, 7);  // > 8 MiB: read-ahead thread; odd size
    path_ = dir_ / "data";
    WriteFile(path_, contents_);
    fd_ = ::open(path_.c_str(), O_RDONLY);
    ASSERT_GE(fd_, 0);
  }
  void TearDown() override { ::close(fd_); }

  Result<std::string> Collect(uint64_t offset, uint64_t len) {
    std::string got;
    auto st = StreamFileRange(fd_, path_, offset, len, [&](const uint8_t* p, size_t n) {
      got.append(reinterpret_cast<const char*>(p), n);
      return OkStatus();
    });
    if (!st.ok()) return st.error();
    return got;
  }

  TempDir dir_;
  std::string path_;
  std::string contents_;
  int fd_ = -1;
};

TEST_F(StreamFileRangeTest, DeliversEveryByteInOrderOnBothPaths) {
  for (auto [offset, len] : std::vector<std::pair<uint64_t, uint64_t>>{
           {0, 0}, {0, 1}, {5, 4096}, {1, 8 * 1024 * 1024 - 1}, {3, 8 * 1024 * 1024}, {0, 21 * 1024 * 1024 + 123},
           {777, 16 * 1024 * 1024 + 5}}) {
    auto got = Collect(offset, len);
    ASSERT_TRUE(got.ok()) << got.error().message;
    EXPECT_EQ(got.value(), contents_.substr(offset, len)) << "offset " << offset << " len " << len;
  }
}

TEST_F(StreamFileRangeTest, TruncatedFileNamesPathAndOffset) {
  for (uint64_t len : {uint64_t{4096}, uint64_t{12} << 20}) {
    const uint64_t offset = contents_.size() - 1000;
    auto got = Collect(offset, len);
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.error().code, Errc::kCorrupt);
    EXPECT_NE(got.error().message.find(path_ + ": ends at offset " + std::to_string(contents_.size())), std::string::npos)
        << got.error().message;
  }
}

TEST_F(StreamFileRangeTest, SinkErrorStopsTheReadAndIsReturned) {
  size_t calls = 0;
  auto st = StreamFileRange(fd_, path_, 0, contents_.size(), [&](const uint8_t*, size_t) -> Status {
    if (++calls == 2) return MakeError(Errc::kNoSpace, "disk full");
    return OkStatus();
  });
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::kNoSpace);
  EXPECT_EQ(calls, 2u);
}

}  // namespace
}  // namespace gapsync::agent
