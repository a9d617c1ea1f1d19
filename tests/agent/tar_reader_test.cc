// agent/tar_reader.h: member listing, data offsets, and refusal of names that leave the archive.
#include "agent/pack/tar_reader.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tests/agent/test_util.h"

namespace gapsync::agent {
namespace {

using gapsync::testing::Contains;
using gapsync::testing::RandomBytes;
using gapsync::testing::ReadFile;
using gapsync::testing::TempDir;
using gapsync::testing::WriteFile;

constexpr size_t kBlock = 512;

void PutOctal(std::string& h, size_t at, size_t width, uint64_t value) {
  // width-1 octal digits, then NUL
  char buf[32];
  std::snprintf(buf, sizeof buf, "%0*llo", static_cast<int>(width - 1), static_cast<unsigned long long>(value));
  std::memcpy(&h[at], buf, width - 1);
  h[at + width - 1] = '\0';
}

// A ustar header with a correct checksum.
std::string Header(const std::string& name, uint64_t size, char type = '0', const std::string& prefix = "") {
  std::string h(kBlock, '\0');
  std::memcpy(&h[0], name.data(), std::min<size_t>(name.size(), 100));
  PutOctal(h, 100, 8, 0644);
  PutOctal(h, 108, 8, 0);
  PutOctal(h, 116, 8, 0);
  PutOctal(h, 124, 12, size);
  PutOctal(h, 136, 12, 1700000000);
  h[156] = type;
  std::memcpy(&h[257], "ustar", 6);  // magic incl. NUL
  std::memcpy(&h[263], "00", 2);
  std::memcpy(&h[345], prefix.data(), std::min<size_t>(prefix.size(), 155));
  std::memset(&h[148], ' ', 8);
  uint64_t sum = 0;
  for (unsigned char c : h) sum += c;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%06llo", static_cast<unsigned long long>(sum));
  std::memcpy(&h[148], buf, 6);
  h[154] = '\0';
  h[155] = ' ';
  return h;
}

std::string Pad(const std::string& data) {
  std::string out = data;
  out.resize((data.size() + kBlock - 1) / kBlock * kBlock, '\0');
  return out;
}

std::string Member(const std::string& name, const std::string& data, char type = '0', const std::string& prefix = "") {
  return Header(name, data.size(), type, prefix) + Pad(data);
}

std::string End() { return std::string(2 * kBlock, '\0'); }

std::string PaxRecord(const std::string& key, const std::string& value) {
  // "<len> key=value\n" where len counts itself
  std::string body = " " + key + "=" + value + "\n";
  size_t len = body.size() + 1;
  while (std::to_string(len).size() + body.size() != len) ++len;
  return std::to_string(len) + body;
}

class TarReaderTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& bytes) {
    WriteFile(dir_ / name, bytes);
    return dir_ / name;
  }
  void ExpectEvil(const std::string& archive_bytes, const std::string& member) {
    auto path = Write("evil.tar", archive_bytes);
    auto r = ListTar(path);
    ASSERT_FALSE(r.ok()) << "member \"" << member << "\" accepted";
    EXPECT_EQ(r.error().code, Errc::kCorrupt);
    EXPECT_TRUE(Contains(r.error().message, "\"" + member + "\"")) << r.error().message;
    EXPECT_TRUE(Contains(r.error().message, path)) << r.error().message;
  }
  TempDir dir_;
};

TEST_F(TarReaderTest, HandBuiltMembersAndOffsets) {
  const std::string a = "hello";
  const std::string b = RandomBytes(1000, 1);
  const std::string archive =
      Member("a.txt", a) + Member("dir/", "", '5') + Member("./dir/b.bin", b) + Member("empty", "") + End();
  auto path = Write("x.tar", archive);
  auto r = ListTar(path);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 4u);
  const auto& m = *r;
  EXPECT_EQ(m[0].name, "a.txt");
  EXPECT_EQ(m[0].type, '0');
  EXPECT_EQ(m[0].data_offset, 512u);
  EXPECT_EQ(m[0].size, 5u);
  EXPECT_EQ(m[1].name, "dir");  // trailing '/' dropped
  EXPECT_EQ(m[1].type, '5');
  EXPECT_EQ(m[1].size, 0u);
  EXPECT_EQ(m[2].name, "dir/b.bin");  // leading "./" dropped
  EXPECT_EQ(m[2].data_offset, 512u * 4);
  EXPECT_EQ(m[2].size, 1000u);
  EXPECT_EQ(m[3].name, "empty");
  EXPECT_EQ(m[3].data_offset, 512u * 7);
  EXPECT_EQ(m[3].size, 0u);
  EXPECT_EQ(archive.substr(m[0].data_offset, m[0].size), a);
  EXPECT_TRUE(archive.substr(m[2].data_offset, m[2].size) == b);
}

TEST_F(TarReaderTest, UstarPrefixIsJoined) {
  auto r = ListTar(Write("p.tar", Member("file.txt", "x", '0', "some/deep/folder") + End()));
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].name, "some/deep/folder/file.txt");
}

TEST_F(TarReaderTest, GnuLongNameAndPaxPath) {
  const std::string long_name = std::string(150, 'n') + "/file";
  const std::string pax_name = std::string(120, 'p') + "/pax.bin";
  const std::string archive = Member("././@LongLink", long_name + '\0', 'L') + Member("truncated", "data1") +
                              Member("PaxHeaders/x", PaxRecord("path", pax_name) + PaxRecord("mtime", "1"), 'x') +
                              Member("short", "data22") + Member("after", "z") + End();
  auto path = Write("long.tar", archive);
  auto r = ListTar(path);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].name, long_name);
  EXPECT_EQ(archive.substr((*r)[0].data_offset, (*r)[0].size), "data1");
  EXPECT_EQ((*r)[1].name, pax_name);
  EXPECT_EQ(archive.substr((*r)[1].data_offset, (*r)[1].size), "data22");
  EXPECT_EQ((*r)[2].name, "after");  // the long name applied to one member only
}

TEST_F(TarReaderTest, ArchiveMadeByTar) {
  if (std::system("command -v tar >/dev/null 2>&1") != 0) GTEST_SKIP() << "no tar command";
  const std::string src = dir_ / "src";
  const std::string a = "hello tar\n";
  const std::string b = RandomBytes(70000, 2);
  WriteFile(src + "/a.txt", a);
  WriteFile(src + "/sub/b.bin", b);
  const std::string tar = dir_ / "made.tar";
  const std::string cmd = "tar --format=gnu -cf '" + tar + "' -C '" + src + "' a.txt sub";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  auto r = ListTar(tar);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const std::string bytes = ReadFile(tar);
  bool saw_a = false, saw_b = false, saw_sub = false;
  for (const auto& m : *r) {
    if (m.name == "a.txt") {
      saw_a = true;
      EXPECT_EQ(m.type, '0');
      EXPECT_EQ(m.size, a.size());
      EXPECT_EQ(bytes.substr(m.data_offset, m.size), a);
    } else if (m.name == "sub/b.bin") {
      saw_b = true;
      EXPECT_EQ(m.size, b.size());
      EXPECT_TRUE(bytes.substr(m.data_offset, m.size) == b);
    } else if (m.name == "sub") {
      saw_sub = true;
      EXPECT_EQ(m.type, '5');
    }
  }
  EXPECT_TRUE(saw_a && saw_b && saw_sub);
  EXPECT_EQ(r->size(), 3u);
}

TEST_F(TarReaderTest, DotDotMemberIsRefused) {
  ExpectEvil(Member("ok.txt", "fine") + Member("../evil", "pwned") + End(), "../evil");
}

TEST_F(TarReaderTest, DotDotInsideMemberIsRefused) {
  ExpectEvil(Member("a/../../evil", "pwned") + End(), "a/../../evil");
  ExpectEvil(Member("a/..", "") + End(), "a/..");
}

TEST_F(TarReaderTest, AbsoluteMemberIsRefused) { ExpectEvil(Member("/etc/cron.d/evil", "x") + End(), "/etc/cron.d/evil"); }

TEST_F(TarReaderTest, DotDotViaPrefixIsRefused) {
  ExpectEvil(Member("evil", "x", '0', "..") + End(), "../evil");
}

TEST_F(TarReaderTest, DotDotViaLongNameIsRefused) {
  ExpectEvil(Member("././@LongLink", std::string("../../long-evil") + '\0', 'L') + Member("innocent", "x") + End(),
             "../../long-evil");
}

TEST_F(TarReaderTest, DotDotViaPaxPathIsRefused) {
  ExpectEvil(Member("PaxHeaders/x", PaxRecord("path", "../pax-evil"), 'x') + Member("innocent", "x") + End(),
             "../pax-evil");
}

TEST_F(TarReaderTest, EvilNameFromRealTarIsRefused) {
  if (std::system("command -v tar >/dev/null 2>&1") != 0) GTEST_SKIP() << "no tar command";
  WriteFile(dir_ / "src/evil", "pwned");
  const std::string tar = dir_ / "t.tar";
  // --transform rewrites the stored name; -P keeps GNU tar from stripping the leading "../".
  const std::string cmd = "tar -P --transform 's,^evil,../evil,' -cf '" + tar + "' -C '" + (dir_ / "src") + "' evil";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  auto r = ListTar(tar);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kCorrupt);
  EXPECT_TRUE(Contains(r.error().message, "../evil")) << r.error().message;
}

TEST_F(TarReaderTest, GarbageIsAnError) {
  auto r = ListTar(Write("garbage.tar", RandomBytes(4096, 3)));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kCorrupt);
  EXPECT_TRUE(Contains(r.error().message, "checksum")) << r.error().message;
}

TEST_F(TarReaderTest, TextFileIsAnError) {
  std::string text;
  for (int i = 0; i < 100; ++i) text += "this is not a tar archive, just some text\n";
  auto r = ListTar(Write("text.tar", text));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kCorrupt);
}

// A file too short to hold even one header is not a tar archive either; ListTar returns an empty
// member list without complaint.
TEST_F(TarReaderTest, ShortGarbageIsAnError) {
  auto r = ListTar(Write("short.tar", "definitely not a tar archive"));
  EXPECT_FALSE(r.ok()) << "a 28-byte text file was listed as an empty archive";
}

// An archive cut in the middle of a header: the tail is silently ignored.
TEST_F(TarReaderTest, TruncatedHeaderIsAnError) {
  const std::string archive = Member("a.txt", "hello") + Header("b.txt", 5).substr(0, 300);
  auto r = ListTar(Write("cut.tar", archive));
  EXPECT_FALSE(r.ok()) << "a header cut short at the end of the file was ignored (member b.txt lost silently)";
}

TEST_F(TarReaderTest, BadChecksumIsAnError) {
  std::string archive = Member("a.txt", "hello") + End();
  archive[10] = 'X';  // inside the name: checksum no longer matches
  auto r = ListTar(Write("sum.tar", archive));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kCorrupt);
  EXPECT_TRUE(Contains(r.error().message, "offset 0")) << r.error().message;
}

TEST_F(TarReaderTest, DataPastEndIsAnError) {
  std::string archive = Header("big.bin", 100000) + std::string(1024, 'x');
  auto r = ListTar(Write("past.tar", archive));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kCorrupt);
  EXPECT_TRUE(Contains(r.error().message, "past the end")) << r.error().message;
}

TEST_F(TarReaderTest, EmptyArchiveHasNoMembers) {
  auto r = ListTar(Write("empty.tar", End()));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->empty());
}

TEST_F(TarReaderTest, MissingFileIsNotFound) {
  auto r = ListTar(dir_ / "nope.tar");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kNotFound);
}

}  // namespace
}  // namespace gapsync::agent

namespace gapsync::agent {
namespace {

// A pax record whose length wraps the parser's position back to 0 must be an error, not a hang.
TEST_F(TarReaderTest, MalformedPaxLengthIsAnErrorNotAHang) {
  for (const std::string& pax : {std::string("10 path=a\n-10 x=y\n"), std::string("18446744073709551606 x=y\n"),
                                 std::string("5 path=abc\n"), std::string("x path=a\n")}) {
    auto path = Write("pax.tar", Member("PaxHeaders/x", pax, 'x') + Member("a", "x") + End());
    auto r = ListTar(path);
    ASSERT_FALSE(r.ok()) << pax;
    EXPECT_EQ(r.error().code, Errc::kCorrupt);
    EXPECT_TRUE(Contains(r.error().message, "malformed pax extended header")) << r.error().message;
    EXPECT_TRUE(Contains(r.error().message, "offset 0")) << r.error().message;
  }
}

}  // namespace
}  // namespace gapsync::agent
