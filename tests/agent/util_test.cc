// agent/util.h: sizes, semantic versions, safe names, small-file I/O.
#include "agent/base/util.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/agent/test_util.h"

namespace gapsync::agent {
namespace {

using gapsync::testing::Contains;
using gapsync::testing::TempDir;

// ---- ParseSize ----

uint64_t SizeOk(const std::string& text) {
  auto r = ParseSize(text);
  EXPECT_TRUE(r.ok()) << "\"" << text << "\": " << (r.ok() ? "" : r.error().message);
  return r.ok() ? r.value() : 0;
}

void SizeBad(const std::string& text) {
  auto r = ParseSize(text);
  ASSERT_FALSE(r.ok()) << "\"" << text << "\" accepted as " << r.value();
  EXPECT_EQ(r.error().code, Errc::kInvalidArgument);
  EXPECT_TRUE(Contains(r.error().message, text)) << r.error().message;
}

TEST(ParseSize, PlainBytes) {
  EXPECT_EQ(SizeOk("123"), 123u);
  EXPECT_EQ(SizeOk("1"), 1u);
  EXPECT_EQ(SizeOk("4294967295"), 4294967295u);
  EXPECT_EQ(SizeOk("18446744073709551615"), UINT64_MAX);
}

TEST(ParseSize, BinaryUnits) {
  EXPECT_EQ(SizeOk("64K"), 64u << 10);
  EXPECT_EQ(SizeOk("1M"), 1u << 20);
  EXPECT_EQ(SizeOk("700M"), 700ull << 20);
  EXPECT_EQ(SizeOk("4G"), 4ull << 30);
  EXPECT_EQ(SizeOk("2T"), 2ull << 40);
  EXPECT_EQ(SizeOk("1g"), 1ull << 30);  // lower case too
  EXPECT_EQ(SizeOk("16777215T"), 16777215ull << 40);  // largest T that fits
}

TEST(ParseSize, ZeroIsRefused) {
  SizeBad("0");
  SizeBad("0K");
  SizeBad("0G");
}

TEST(ParseSize, Garbage) {
  SizeBad("");
  SizeBad("abc");
  SizeBad("1X");
  SizeBad("G");
  SizeBad("-1");
  SizeBad("1.5G");
  SizeBad(" 1");
  SizeBad("1 ");
  SizeBad("1GG");
  SizeBad("4GB!");
}

TEST(ParseSize, Overflow) {
  SizeBad("18446744073709551616");  // UINT64_MAX + 1
  SizeBad("99999999999999999999999");
  SizeBad("16777216T");  // 2^24 << 40 == 2^64
  SizeBad("17179869184G");  // 2^34 << 30 == 2^64
}

// HumanBytes prints "KiB", "GiB": the same spelling should parse back. ParseSize strips a
// 2-letter "KB"/"Ki" suffix but refuses the 3-letter "KiB" (its `unit == "iB"` branch is dead).
TEST(ParseSize, AcceptsIecSpelling) {
  EXPECT_EQ(SizeOk("1KB"), 1u << 10);
  EXPECT_EQ(SizeOk("1Ki"), 1u << 10);
  EXPECT_EQ(SizeOk("4GiB"), 4ull << 30) << "\"4GiB\" (as HumanBytes prints it) is refused";
  EXPECT_EQ(SizeOk("700MiB"), 700ull << 20);
}

TEST(HumanBytes, Formats) {
  EXPECT_EQ(HumanBytes(0), "0 B");
  EXPECT_EQ(HumanBytes(1023), "1023 B");
  EXPECT_EQ(HumanBytes(1024), "1.0 KiB");
  EXPECT_EQ(HumanBytes(1536), "1.5 KiB");
  EXPECT_EQ(HumanBytes(4ull << 30), "4.0 GiB");
}

// ---- SemVer ----

SemVer V(const std::string& text) {
  auto v = ParseSemVer(text);
  EXPECT_TRUE(v.has_value()) << "\"" << text << "\" did not parse";
  return v.value_or(SemVer{});
}

TEST(SemVer, ParsesFields) {
  auto v = V("1.22.333-rc.1.x-y+build.7");
  EXPECT_EQ(v.major, 1u);
  EXPECT_EQ(v.minor, 22u);
  EXPECT_EQ(v.patch, 333u);
  EXPECT_EQ(v.prerelease, (std::vector<std::string>{"rc", "1", "x-y"}));
  EXPECT_EQ(v.build, "build.7");
  auto plain = V("0.0.0");
  EXPECT_TRUE(plain.prerelease.empty());
  EXPECT_TRUE(plain.build.empty());
}

TEST(SemVer, AcceptsSpecExamples) {
  for (const char* s : {"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-0.3.7", "1.0.0-x.7.z.92", "1.0.0-x-y-z.--",
                        "1.0.0-alpha+001", "1.0.0+20130313144700", "1.0.0-beta+exp.sha.5114f85",
                        "1.0.0+21AF26D3----117B344092BD", "1.0.0-0a", "1.0.0-0", "10.20.30", "1.0.0-alpha-a.b-c"}) {
    EXPECT_TRUE(ParseSemVer(s).has_value()) << s;
  }
}

TEST(SemVer, RejectsMalformed) {
  for (const char* s : {"", "1", "1.0", "1.0.0.0", "v1.0.0", "1.0.0-", "1.0.0+", "1.0.0-a..b", "1.0.0+a..b",
                        "1.0.0-a_b", "1.0.0+a_b", " 1.0.0", "1.0.0 ", "-1.0.0", "1.-1.0", "1..0", "a.b.c",
                        "1.0.0-+", "1.0.0+a+b", "1.0.0-alpha_beta", "1.0.0-é"}) {
    EXPECT_FALSE(ParseSemVer(s).has_value()) << "accepted \"" << s << "\"";
  }
}

TEST(SemVer, RejectsLeadingZeros) {
  for (const char* s : {"01.0.0", "1.02.0", "1.0.00", "00.0.0", "1.0.0-01", "1.0.0-alpha.01", "1.0.0-00"}) {
    EXPECT_FALSE(ParseSemVer(s).has_value()) << "accepted \"" << s << "\"";
  }
}

int Cmp(const std::string& a, const std::string& b) { return CompareSemVer(V(a), V(b)); }

TEST(SemVer, SpecPrecedenceChainAllPairs) {
  // semver.org 2.0.0, item 11.
  const std::vector<std::string> chain = {"1.0.0-alpha",  "1.0.0-alpha.1",  "1.0.0-alpha.beta", "1.0.0-beta",
                                          "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1",       "1.0.0",
                                          "2.0.0",        "2.1.0",         "2.1.1"};
  for (size_t i = 0; i < chain.size(); ++i) {
    for (size_t j = 0; j < chain.size(); ++j) {
      int c = Cmp(chain[i], chain[j]);
      const int want = i < j ? -1 : (i > j ? 1 : 0);
      EXPECT_EQ((c > 0) - (c < 0), want) << chain[i] << " vs " << chain[j] << ": CompareSemVer gave " << c;
    }
  }
}

TEST(SemVer, NumericFieldsCompareNumerically) {
  EXPECT_LT(Cmp("1.9.0", "1.10.0"), 0);
  EXPECT_LT(Cmp("1.0.9", "1.0.10"), 0);
  EXPECT_LT(Cmp("9.0.0", "10.0.0"), 0);
  EXPECT_LT(Cmp("1.0.0-2", "1.0.0-10"), 0);
  EXPECT_LT(Cmp("1.0.0-rc.9", "1.0.0-rc.10"), 0);
  EXPECT_GT(Cmp("1.0.0-rc.100", "1.0.0-rc.99"), 0);
}

TEST(SemVer, NumericIdentifiersSortBeforeAlphanumeric) {
  EXPECT_LT(Cmp("1.0.0-1", "1.0.0-a"), 0);
  EXPECT_LT(Cmp("1.0.0-999", "1.0.0-0a"), 0);
  EXPECT_LT(Cmp("1.0.0-alpha.1", "1.0.0-alpha.a"), 0);
}

TEST(SemVer, AlphanumericComparesInAsciiOrder) {
  EXPECT_LT(Cmp("1.0.0-B", "1.0.0-a"), 0);
  EXPECT_LT(Cmp("1.0.0-alpha", "1.0.0-alphb"), 0);
  EXPECT_LT(Cmp("1.0.0-a-b", "1.0.0-ab"), 0);  // '-' < 'b'
}

TEST(SemVer, LongerPrereleaseWinsWhenPrefixEqual) {
  EXPECT_LT(Cmp("1.0.0-alpha", "1.0.0-alpha.0"), 0);
  EXPECT_LT(Cmp("1.0.0-a.b", "1.0.0-a.b.c"), 0);
}

TEST(SemVer, BuildMetadataIsIgnored) {
  EXPECT_EQ(Cmp("1.0.0+build.1", "1.0.0"), 0);
  EXPECT_EQ(Cmp("1.0.0+build.1", "1.0.0+build.2"), 0);
  EXPECT_EQ(Cmp("1.0.0-alpha+001", "1.0.0-alpha"), 0);
  EXPECT_LT(Cmp("1.0.0-alpha+999", "1.0.0-alpha.1+000"), 0);
  EXPECT_LT(Cmp("1.0.0-rc.1+zzz", "1.0.0+aaa"), 0);
}

// ---- Safe names ----

TEST(IsSafeFileName, Accepts) {
  for (const char* s : {"a", "volume-0001.gsv", "A.b_c-D", "x..y", "file.", "0"}) {
    EXPECT_TRUE(IsSafeFileName(s)) << s;
  }
  EXPECT_TRUE(IsSafeFileName(std::string(255, 'a')));
}

TEST(IsSafeFileName, Rejects) {
  for (const char* s : {"", ".", "..", ".hidden", "../x", "a/b", "/abs", "a b", "a\\b", "a:b", "a*", "~x"}) {
    EXPECT_FALSE(IsSafeFileName(s)) << "accepted \"" << s << "\"";
  }
  EXPECT_FALSE(IsSafeFileName(std::string("a\0b", 3)));
  EXPECT_FALSE(IsSafeFileName(std::string(256, 'a')));
}

TEST(IsSafeRelativePath, Accepts) {
  for (const char* s : {"a", "a/b/c", "a/.hidden", "a..b/c", "dir/file.txt", "x/y z"}) {
    EXPECT_TRUE(IsSafeRelativePath(s)) << s;
  }
}

TEST(IsSafeRelativePath, Rejects) {
  for (const char* s : {"", "..", ".", "a/../b", "../a", "a/..", "/abs", "/", "a//b", "a/", "./a", "a/./b", "a/."}) {
    EXPECT_FALSE(IsSafeRelativePath(s)) << "accepted \"" << s << "\"";
  }
  EXPECT_FALSE(IsSafeRelativePath(std::string("a/\0/b", 5)));
  EXPECT_FALSE(IsSafeRelativePath(std::string("a\0b", 3)));
  EXPECT_FALSE(IsSafeRelativePath(std::string(5000, 'a')));
}

// ---- Files ----

TEST(Files, WriteAtomicThenReadSmall) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string path = dir / "f.bin";
  std::string contents("a\0b\xff", 4);
  GS_ASSERT_OK(WriteFileAtomic(path, contents));
  auto back = ReadSmallFile(path, 100);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, contents);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  GS_ASSERT_OK(WriteFileAtomic(path, "new"));  // replaces
  EXPECT_EQ(ReadSmallFile(path, 100).value(), "new");
}

TEST(Files, ReadSmallFileErrors) {
  TempDir dir;
  auto missing = ReadSmallFile(dir / "nope", 100);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, Errc::kNotFound);
  EXPECT_TRUE(Contains(missing.error().message, "nope"));

  GS_ASSERT_OK(WriteFileAtomic(dir / "big", std::string(101, 'x')));
  auto big = ReadSmallFile(dir / "big", 100);
  ASSERT_FALSE(big.ok());
  EXPECT_TRUE(Contains(big.error().message, "101"));

  auto folder = ReadSmallFile(dir.path(), 100);
  ASSERT_FALSE(folder.ok());
  EXPECT_EQ(folder.error().code, Errc::kInvalidArgument);
}

}  // namespace
}  // namespace gapsync::agent
