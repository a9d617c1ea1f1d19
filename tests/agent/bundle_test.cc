// agent/bundle.h, agent/keys.h, agent/bundle_writer.h, agent/ingest.h: manifest validation,
// signing keys, and a full create -> load -> verify -> ingest round trip in one process.
#include "agent/bundle/bundle.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "agent/pack/bundle_writer.h"
#include "agent/ingest/ingest.h"
#include "agent/bundle/keys.h"
#include "proto/sha256.h"
#include "store/blob_store.h"
#include "tests/agent/test_util.h"

namespace gapsync::agent {
namespace {

namespace fs = std::filesystem;
using gapsync::testing::Contains;
using gapsync::testing::RandomBytes;
using gapsync::testing::ReadFile;
using gapsync::testing::TempDir;
using gapsync::testing::WriteFile;

// ---------------------------------------------------------------------------------------------
// ValidateManifest
// ---------------------------------------------------------------------------------------------

const std::string kToolBytes = "hello world";  // 11 bytes
const std::string kComposeBytes = "x: 1\n";    // 5 bytes

// A well-formed manifest: one volume of 16 bytes holding a single-file artifact and a template.
v1::BundleManifest GoodManifest() {
  const std::string d1 = Sha256::Of(kToolBytes).str();
  const std::string d2 = Sha256::Of(kComposeBytes).str();
  v1::BundleManifest m;
  m.set_format_version(kFormatVersion);
  auto* v = m.add_volumes();
  v->set_name("volume-0001.gsv");
  v->set_size(16);
  auto* b1 = m.add_blobs();
  b1->set_digest(d1);
  b1->set_size(11);
  b1->set_media_type("application/octet-stream");
  auto* s1 = b1->add_segments();
  s1->set_volume(0);
  s1->set_offset(0);
  s1->set_length(11);
  auto* b2 = m.add_blobs();
  b2->set_digest(d2);
  b2->set_size(5);
  b2->set_media_type("application/octet-stream");
  auto* s2 = b2->add_segments();
  s2->set_volume(0);
  s2->set_offset(11);
  s2->set_length(5);
  auto* r = m.mutable_release();
  r->set_app("demo");
  r->set_version("1.0.0");
  for (const auto& [d, n] : {std::pair{d1, 11}, std::pair{d2, 5}}) {
    auto* desc = r->add_blobs();
    desc->set_digest(d);
    desc->set_size(static_cast<uint64_t>(n));
    desc->set_media_type("application/octet-stream");
  }
  auto* c = r->add_components();
  c->set_name("tool");
  auto* a = c->mutable_artifact();
  a->set_directory(false);
  a->set_file_name("tool.bin");
  auto* f = a->add_files();
  f->set_path("");
  f->set_digest(d1);
  f->set_size(11);
  f->set_mode(0755);
  auto* t = r->mutable_deploy()->add_templates();
  t->set_path("compose.yaml");
  t->set_digest(d2);
  t->set_size(5);
  return m;
}

void ExpectInvalid(const v1::BundleManifest& m, const std::string& needle) {
  auto st = ValidateManifest(m, "test-manifest");
  ASSERT_FALSE(st.ok()) << "accepted; expected an error about \"" << needle << "\"";
  EXPECT_EQ(st.error().code, Errc::kCorrupt);
  EXPECT_TRUE(Contains(st.error().message, "test-manifest")) << st.error().message;
  EXPECT_TRUE(Contains(st.error().message, needle)) << st.error().message;
}

TEST(ValidateManifest, AcceptsWellFormed) {
  auto st = ValidateManifest(GoodManifest(), "test-manifest");
  EXPECT_TRUE(st.ok()) << st.error().message;
}

TEST(ValidateManifest, AcceptsBlobSplitAcrossVolumes) {
  auto m = GoodManifest();
  m.mutable_volumes(0)->set_size(6);
  auto* v2 = m.add_volumes();
  v2->set_name("volume-0002.gsv");
  v2->set_size(10);
  auto* b1 = m.mutable_blobs(0);
  b1->mutable_segments(0)->set_length(6);
  auto* s = b1->add_segments();
  s->set_volume(1);
  s->set_offset(0);
  s->set_length(5);
  m.mutable_blobs(1)->mutable_segments(0)->set_volume(1);
  m.mutable_blobs(1)->mutable_segments(0)->set_offset(5);
  auto st = ValidateManifest(m, "test-manifest");
  EXPECT_TRUE(st.ok()) << st.error().message;
}

TEST(ValidateManifest, BadFormatVersion) {
  for (uint32_t fv : {0u, 2u, 99u}) {
    auto m = GoodManifest();
    m.set_format_version(fv);
    ExpectInvalid(m, "format version " + std::to_string(fv));
  }
}

TEST(ValidateManifest, MalformedDigest) {
  for (const std::string& bad : {std::string("sha256:XYZ"), "sha256:" + std::string(64, 'A'),
                                "sha256:../" + std::string(61, 'a'), std::string(""), "md5:" + std::string(32, 'a')}) {
    auto m = GoodManifest();
    m.mutable_blobs(0)->set_digest(bad);
    ExpectInvalid(m, "malformed digest");
  }
  auto m = GoodManifest();
  m.mutable_release()->mutable_blobs(0)->set_digest("sha256:nothex");
  ExpectInvalid(m, "malformed digest");
}

TEST(ValidateManifest, DuplicateBlob) {
  auto m = GoodManifest();
  *m.add_blobs() = m.blobs(0);
  ExpectInvalid(m, "listed twice");
}

TEST(ValidateManifest, SegmentInMissingVolume) {
  auto m = GoodManifest();
  m.mutable_blobs(0)->mutable_segments(0)->set_volume(1);
  ExpectInvalid(m, "does not exist");
  m.mutable_blobs(0)->mutable_segments(0)->set_volume(UINT32_MAX);
  ExpectInvalid(m, "does not exist");
}

TEST(ValidateManifest, SegmentPastVolumeEnd) {
  auto m = GoodManifest();
  m.mutable_blobs(1)->mutable_segments(0)->set_offset(12);  // 12 + 5 > 16
  ExpectInvalid(m, "runs past the end of volume-0001.gsv");
  m.mutable_blobs(1)->mutable_segments(0)->set_offset(17);  // starts past the end
  ExpectInvalid(m, "runs past the end");
  m.mutable_blobs(1)->mutable_segments(0)->set_offset(UINT64_MAX - 2);  // offset + length overflows
  ExpectInvalid(m, "runs past the end");
}

TEST(ValidateManifest, SegmentsNotAddingUpToSize) {
  auto m = GoodManifest();
  m.mutable_blobs(0)->mutable_segments(0)->set_length(10);
  ExpectInvalid(m, "add up to 10 bytes");
  auto more = GoodManifest();
  more.mutable_blobs(0)->set_size(10);
  more.mutable_release()->mutable_blobs(0)->set_size(10);
  ExpectInvalid(more, "add up to more than its size");
  auto none = GoodManifest();
  none.mutable_blobs(0)->clear_segments();
  ExpectInvalid(none, "add up to 0 bytes");
  // Two segments that overflow when added must not wrap around to the size.
  auto wrap = GoodManifest();
  wrap.mutable_volumes(0)->set_size(kMaxVolumeSize);
  auto* s = wrap.mutable_blobs(0)->add_segments();
  s->set_volume(0);
  s->set_offset(0);
  s->set_length(kMaxVolumeSize);
  ExpectInvalid(wrap, "more than its size");
}

TEST(ValidateManifest, AbsurdBlobSize) {
  auto m = GoodManifest();
  m.mutable_blobs(0)->set_size(kMaxBlobSize + 1);
  ExpectInvalid(m, "more than the limit");
  m.mutable_blobs(0)->set_size(UINT64_MAX);
  ExpectInvalid(m, "more than the limit");
}

TEST(ValidateManifest, AbsurdVolumeSize) {
  auto m = GoodManifest();
  m.mutable_volumes(0)->set_size(kMaxVolumeSize + 1);
  ExpectInvalid(m, "more than the limit");
}

TEST(ValidateManifest, BadVolumeNames) {
  for (const char* name_text : {"../x", "a/b", ".hidden", "manifest.pb", "manifest.sig", "", "..", "/abs", "a b"}) {
    const std::string name = name_text;
    auto m = GoodManifest();
    m.mutable_volumes(0)->set_name(name);
    ExpectInvalid(m, "\"" + name + "\"");
  }
}

TEST(ValidateManifest, DuplicateVolumeName) {
  auto m = GoodManifest();
  *m.add_volumes() = m.volumes(0);
  ExpectInvalid(m, "used twice");
}

TEST(ValidateManifest, ReleaseBlobNotCarried) {
  auto m = GoodManifest();
  auto* d = m.mutable_release()->add_blobs();
  d->set_digest(Sha256::Of("elsewhere").str());
  d->set_size(9);
  ExpectInvalid(m, "does not carry");
  EXPECT_TRUE(Contains(ValidateManifest(m, "w").error().message, Sha256::Of("elsewhere").str()));
}

TEST(ValidateManifest, ReleaseAndBundleDisagreeOnSize) {
  auto m = GoodManifest();
  m.mutable_release()->mutable_blobs(0)->set_size(12);
  ExpectInvalid(m, "disagree on the size");
}

TEST(ValidateManifest, ComponentBlobNotInRelease) {
  auto m = GoodManifest();
  m.mutable_release()->mutable_components(0)->mutable_artifact()->mutable_files(0)->set_digest(
      Sha256::Of("other").str());
  ExpectInvalid(m, "does not list");
  auto t = GoodManifest();
  t.mutable_release()->mutable_deploy()->mutable_templates(0)->set_digest(Sha256::Of("other").str());
  ExpectInvalid(t, "does not list");
}

TEST(ValidateManifest, BadReleaseFields) {
  auto app = GoodManifest();
  app.mutable_release()->set_app("Bad App");
  ExpectInvalid(app, "app name");
  auto ver = GoodManifest();
  ver.mutable_release()->set_version("1.0");
  ExpectInvalid(ver, "semantic version");
  auto comp = GoodManifest();
  comp.mutable_release()->mutable_components(0)->set_name("../tool");
  ExpectInvalid(comp, "component name");
  auto dup = GoodManifest();
  *dup.mutable_release()->add_components() = dup.release().components(0);
  ExpectInvalid(dup, "listed twice");
  auto neither = GoodManifest();
  neither.mutable_release()->mutable_components(0)->clear_artifact();
  ExpectInvalid(neither, "neither an image nor an artifact");
}

TEST(ValidateManifest, ArtifactAndTemplatePathsStayInside) {
  auto file = GoodManifest();
  file.mutable_release()->mutable_components(0)->mutable_artifact()->set_file_name("../tool");
  ExpectInvalid(file, "single-file artifact");
  auto dir = GoodManifest();
  auto* a = dir.mutable_release()->mutable_components(0)->mutable_artifact();
  a->set_directory(true);
  a->mutable_files(0)->set_path("../../etc/passwd");
  ExpectInvalid(dir, "leaves its folder");
  auto sub = GoodManifest();
  auto* sa = sub.mutable_release()->mutable_components(0)->mutable_artifact();
  sa->set_directory(true);
  sa->mutable_files(0)->set_path("bin/tool");
  sa->add_directories("/abs");
  ExpectInvalid(sub, "leaves its folder");
  auto tmpl = GoodManifest();
  tmpl.mutable_release()->mutable_deploy()->mutable_templates(0)->set_path("../compose.yaml");
  ExpectInvalid(tmpl, "leaves the release");
}

TEST(VolumeFileName, Format) {
  EXPECT_EQ(VolumeFileName(0), "volume-0001.gsv");
  EXPECT_EQ(VolumeFileName(41), "volume-0042.gsv");
  EXPECT_EQ(VolumeFileName(9999), "volume-10000.gsv");
}

TEST(ReleaseDigest, IndependentOfVolumeLayout) {
  auto a = GoodManifest();
  auto b = GoodManifest();
  b.mutable_volumes(0)->set_name("volume-0009.gsv");
  EXPECT_EQ(DigestOfRelease(a.release()), DigestOfRelease(b.release()));
  b.mutable_release()->set_version("1.0.1");
  EXPECT_NE(DigestOfRelease(a.release()), DigestOfRelease(b.release()));
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

TEST(Keys, GenerateWritesPrivateKeyMode0600AndRefusesOverwrite) {
  TempDir dir;
  auto paths = GenerateKeyPair(dir.path(), "vendor");
  ASSERT_TRUE(paths.ok()) << paths.error().message;
  EXPECT_EQ(paths->private_key, dir / "vendor.key");
  EXPECT_EQ(paths->public_key, dir / "vendor.pub");
  struct stat st {};
  ASSERT_EQ(::stat(paths->private_key.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(paths->public_key.c_str(), &st), 0);
  EXPECT_TRUE(Contains(ReadFile(paths->public_key), "BEGIN PUBLIC KEY"));
  EXPECT_TRUE(Contains(ReadFile(paths->private_key), "PRIVATE KEY"));

  const std::string before_key = ReadFile(paths->private_key);
  const std::string before_pub = ReadFile(paths->public_key);
  auto again = GenerateKeyPair(dir.path(), "vendor");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, Errc::kConflict);
  EXPECT_TRUE(Contains(again.error().message, "vendor.key")) << again.error().message;
  EXPECT_EQ(ReadFile(paths->private_key), before_key);
  EXPECT_EQ(ReadFile(paths->public_key), before_pub);

  // Only the .pub exists: still refused, and no .key appears.
  fs::remove(paths->private_key);
  auto half = GenerateKeyPair(dir.path(), "vendor");
  ASSERT_FALSE(half.ok());
  EXPECT_EQ(half.error().code, Errc::kConflict);
  EXPECT_FALSE(fs::exists(paths->private_key));
  EXPECT_EQ(ReadFile(paths->public_key), before_pub);
}

TEST(Keys, GenerateRefusesBadNames) {
  TempDir dir;
  for (const char* name : {"", "../x", "a/b", ".hidden"}) {
    auto r = GenerateKeyPair(dir.path(), name);
    ASSERT_FALSE(r.ok()) << name;
    EXPECT_EQ(r.error().code, Errc::kInvalidArgument);
  }
}

TEST(Keys, SignVerifyRoundTrip) {
  TempDir dir;
  auto paths = GenerateKeyPair(dir.path(), "vendor");
  ASSERT_TRUE(paths.ok());
  auto other_paths = GenerateKeyPair(dir.path(), "other");
  ASSERT_TRUE(other_paths.ok());
  auto sk = SigningKey::Load(paths->private_key);
  ASSERT_TRUE(sk.ok()) << sk.error().message;
  auto tk = TrustedKey::Load(paths->public_key);
  ASSERT_TRUE(tk.ok()) << tk.error().message;
  auto other = TrustedKey::Load(other_paths->public_key);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(sk->key_id(), tk->key_id());
  EXPECT_EQ(tk->key_id().size(), 64u);
  EXPECT_NE(tk->key_id(), other->key_id());
  EXPECT_EQ(tk->path(), paths->public_key);

  const std::string message("the manifest bytes \0 with a NUL", 31);
  auto sig = sk->Sign(message);
  ASSERT_TRUE(sig.ok()) << sig.error().message;
  EXPECT_EQ(sig->size(), 64u);
  EXPECT_TRUE(tk->Verify(message, *sig));
  EXPECT_FALSE(other->Verify(message, *sig)) << "verified with another vendor's key";

  std::string changed = message;
  changed[3] ^= 1;
  EXPECT_FALSE(tk->Verify(changed, *sig));
  EXPECT_FALSE(tk->Verify(message + "x", *sig));
  std::string bad_sig = *sig;
  bad_sig[10] ^= 1;
  EXPECT_FALSE(tk->Verify(message, bad_sig));
  EXPECT_FALSE(tk->Verify(message, sig->substr(0, 63)));
  EXPECT_FALSE(tk->Verify(message, ""));

  auto empty_sig = sk->Sign("");
  ASSERT_TRUE(empty_sig.ok());
  EXPECT_TRUE(tk->Verify("", *empty_sig));
}

TEST(Keys, LoadErrors) {
  TempDir dir;
  auto paths = GenerateKeyPair(dir.path(), "vendor");
  ASSERT_TRUE(paths.ok());
  auto missing = TrustedKey::Load(dir / "nope.pub");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, Errc::kNotFound);
  auto priv_as_pub = TrustedKey::Load(paths->private_key);
  ASSERT_FALSE(priv_as_pub.ok());
  EXPECT_EQ(priv_as_pub.error().code, Errc::kInvalidArgument);
  WriteFile(dir / "junk.pem", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
  auto junk = TrustedKey::Load(dir / "junk.pem");
  ASSERT_FALSE(junk.ok());
  EXPECT_EQ(junk.error().code, Errc::kInvalidArgument);
  auto none = LoadTrustedKeys({});
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code, Errc::kInvalidArgument);
  auto some = LoadTrustedKeys({paths->public_key});
  ASSERT_TRUE(some.ok());
  EXPECT_EQ(some->size(), 1u);
}

// ---------------------------------------------------------------------------------------------
// create -> load -> verify -> ingest, in process
// ---------------------------------------------------------------------------------------------

class BundleRoundTrip : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    auto k = GenerateKeyPair(dir_ / "keys", "vendor");
    ASSERT_TRUE(k.ok()) << k.error().message;
    keys_ = *k;
    auto o = GenerateKeyPair(dir_ / "keys", "intruder");
    ASSERT_TRUE(o.ok());
    other_keys_ = *o;
    auto t = LoadTrustedKeys({keys_.public_key});
    ASSERT_TRUE(t.ok());
    trusted_ = *t;
  }

  // Writes an artifact-only app.yaml; returns its path.
  std::string WriteTemplate(const std::string& version, const std::string& tool_bytes, bool with_dir = true) {
    WriteFile(dir_ / "src/tool.bin", tool_bytes);
    std::string yaml = "app: demo\nversion: " + version + "\ncomponents:\n  - name: tool\n    artifact: tool.bin\n";
    if (with_dir) {
      WriteFile(dir_ / "src/conf/a.conf", "alpha=1\n");
      WriteFile(dir_ / "src/conf/sub/b.conf", RandomBytes(3000, 7));
      fs::create_directories(dir_ / "src/conf/empty");
      yaml += "  - name: conf\n    artifact: conf\n";
    }
    WriteFile(dir_ / "src/compose.yaml", "services: {}\n");
    yaml += "deploy:\n  templates:\n    - compose.yaml\n  hooks:\n    activate: ./up.sh\n";
    WriteFile(dir_ / "src/app.yaml", yaml);
    return dir_ / "src/app.yaml";
  }

  Result<CreateResult> Create(const std::string& tmpl, const std::string& out, uint64_t volume_size = 4ull << 30) {
    CreateOptions o;
    o.template_path = tmpl;
    o.key_path = keys_.private_key;
    o.out_dir = out;
    o.volume_size = volume_size;
    o.quiet = true;
    return CreateBundle(o);
  }

  Status DoIngest(const LoadedBundle& b, store::BlobStore& s, IngestResult& r) {
    IngestOptions o;
    o.quiet = true;
    return Ingest(b, s, o, r);
  }

  std::string StoredBytes(store::BlobStore& s, const BlobDigest& d) {
    std::string out;
    auto info = s.Stat(d);
    if (!info.ok() || !info->has_value()) return "<missing>";
    auto st = s.Read(d, 0, (*info)->size, [&](std::span<const uint8_t> b) {
      out.append(reinterpret_cast<const char*>(b.data()), b.size());
      return OkStatus();
    });
    return st.ok() ? out : "<" + st.error().message + ">";
  }

  TempDir dir_;
  KeyPairPaths keys_, other_keys_;
  std::vector<TrustedKey> trusted_;
};

TEST_F(BundleRoundTrip, CreateLoadVerifyIngest) {
  const std::string tool = RandomBytes(20000, 1);
  auto created = Create(WriteTemplate("1.0.0", tool), dir_ / "bundle");
  ASSERT_TRUE(created.ok()) << created.error().message;
  EXPECT_EQ(created->app, "demo");
  EXPECT_EQ(created->version, "1.0.0");
  EXPECT_EQ(created->blobs, 4u);  // tool.bin, a.conf, b.conf, compose.yaml
  EXPECT_EQ(created->volumes, 1u);
  EXPECT_TRUE(fs::exists(dir_ / "bundle/manifest.pb"));
  EXPECT_TRUE(fs::exists(dir_ / "bundle/manifest.sig"));
  EXPECT_TRUE(fs::exists(dir_ / "bundle/volume-0001.gsv"));
  EXPECT_FALSE(fs::exists(dir_ / "bundle/manifest.pb.tmp"));

  auto b = LoadBundle(dir_ / "bundle", trusted_);
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(b->signer, keys_.public_key);
  EXPECT_EQ(b->manifest.release().app(), "demo");
  EXPECT_EQ(b->manifest.signer_key_id(), trusted_[0].key_id());
  ASSERT_EQ(b->manifest.release().components_size(), 2);
  const auto& conf = b->manifest.release().components(1).artifact();
  EXPECT_TRUE(conf.directory());
  EXPECT_EQ(conf.files_size(), 2);
  bool saw_empty = false;
  for (const auto& d : conf.directories()) saw_empty = saw_empty || d == "empty";
  EXPECT_TRUE(saw_empty) << "empty folder not recorded";

  uint64_t progressed = 0;
  auto report = VerifyVolumes(*b, [&](uint64_t n) { progressed += n; });
  EXPECT_TRUE(report.problems.empty()) << report.problems.front();
  EXPECT_EQ(report.blobs_ok, 4u);
  EXPECT_EQ(report.bytes_checked, created->bytes);
  EXPECT_EQ(progressed, created->bytes);

  auto store = store::NewMemoryStore(4096);
  IngestResult r;
  auto st = DoIngest(*b, *store, r);
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_TRUE(r.complete);
  EXPECT_FALSE(r.already_present);
  EXPECT_EQ(r.release, "demo@1.0.0");
  EXPECT_EQ(r.blobs_total, 4u);
  EXPECT_EQ(r.blobs_new, 4u);
  EXPECT_EQ(r.bytes_new, created->bytes);

  auto rel = store->GetRelease({"demo", "1.0.0"});
  ASSERT_TRUE(rel.ok());
  ASSERT_TRUE(rel->has_value());
  EXPECT_EQ((*rel)->manifest, b->manifest_bytes);
  EXPECT_EQ((*rel)->signature, b->signature);
  EXPECT_EQ((*rel)->release_digest, b->release_digest);
  EXPECT_TRUE((*rel)->pinned);
  EXPECT_EQ(StoredBytes(*store, Sha256::Of(tool)), tool);
  auto fsck = store->Fsck(nullptr);
  ASSERT_TRUE(fsck.ok());
  EXPECT_TRUE(fsck->problems.empty());
  EXPECT_EQ(fsck->blobs_checked, 4u);

  // Ingesting again is a no-op.
  IngestResult again;
  st = DoIngest(*b, *store, again);
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_TRUE(again.already_present);
  EXPECT_TRUE(again.complete);
  EXPECT_EQ(again.blobs_new, 0u);
}

TEST_F(BundleRoundTrip, FlippedByteIsNamedByVerify) {
  const std::string tool = RandomBytes(5000, 2);
  auto created = Create(WriteTemplate("1.0.0", tool, false), dir_ / "bundle");
  ASSERT_TRUE(created.ok()) << created.error().message;
  auto b = LoadBundle(dir_ / "bundle", trusted_);
  ASSERT_TRUE(b.ok()) << b.error().message;
  // tool.bin is the first blob: flip a byte in the middle of it.
  const std::string vol = dir_ / "bundle/volume-0001.gsv";
  std::string bytes = ReadFile(vol);
  ASSERT_GE(bytes.size(), 5000u);
  bytes[2500] ^= 0x20;
  WriteFile(vol, bytes);

  auto report = VerifyVolumes(*b, nullptr);
  ASSERT_EQ(report.problems.size(), 1u);
  EXPECT_TRUE(Contains(report.problems[0], "volume-0001.gsv")) << report.problems[0];
  EXPECT_TRUE(Contains(report.problems[0], Sha256::Of(tool).str())) << report.problems[0];
  EXPECT_EQ(report.blobs_ok, 1u);  // compose.yaml still fine

  // Ingest refuses the damaged blob and does not publish the release.
  auto store = store::NewMemoryStore(4096);
  IngestResult r;
  auto st = DoIngest(*b, *store, r);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::kCorrupt);
  EXPECT_TRUE(Contains(st.error().message, Sha256::Of(tool).str())) << st.error().message;
  EXPECT_FALSE(r.complete);
  auto rel = store->GetRelease({"demo", "1.0.0"});
  ASSERT_TRUE(rel.ok());
  EXPECT_FALSE(rel->has_value());
  auto info = store->Stat(Sha256::Of(tool));
  ASSERT_TRUE(info.ok());
  EXPECT_FALSE(info->has_value());
}

TEST_F(BundleRoundTrip, UntrustedKeyIsBadSignature) {
  auto created = Create(WriteTemplate("1.0.0", "tool"), dir_ / "bundle");
  ASSERT_TRUE(created.ok()) << created.error().message;
  auto other = LoadTrustedKeys({other_keys_.public_key});
  ASSERT_TRUE(other.ok());
  auto b = LoadBundle(dir_ / "bundle", *other);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code, Errc::kBadSignature);
  EXPECT_TRUE(Contains(b.error().message, other_keys_.public_key)) << b.error().message;
  // Both keys trusted: accepted, the vendor key named as signer.
  auto both = LoadTrustedKeys({other_keys_.public_key, keys_.public_key});
  ASSERT_TRUE(both.ok());
  auto ok = LoadBundle(dir_ / "bundle", *both);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->signer, keys_.public_key);
}

TEST_F(BundleRoundTrip, TamperedManifestOrSignatureIsBadSignature) {
  auto created = Create(WriteTemplate("1.0.0", "tool"), dir_ / "bundle");
  ASSERT_TRUE(created.ok()) << created.error().message;
  const std::string manifest = ReadFile(dir_ / "bundle/manifest.pb");
  const std::string sig = ReadFile(dir_ / "bundle/manifest.sig");
  ASSERT_EQ(sig.size(), 64u);

  std::string changed = manifest;
  changed[changed.size() / 2] ^= 1;
  WriteFile(dir_ / "bundle/manifest.pb", changed);
  auto b = LoadBundle(dir_ / "bundle", trusted_);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code, Errc::kBadSignature);
  WriteFile(dir_ / "bundle/manifest.pb", manifest);

  WriteFile(dir_ / "bundle/manifest.sig", sig.substr(0, 63));
  b = LoadBundle(dir_ / "bundle", trusted_);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code, Errc::kBadSignature);

  fs::remove(dir_ / "bundle/manifest.sig");
  b = LoadBundle(dir_ / "bundle", trusted_);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code, Errc::kBadSignature);
  EXPECT_TRUE(Contains(b.error().message, "manifest.sig")) << b.error().message;

  WriteFile(dir_ / "bundle/manifest.sig", sig);
  b = LoadBundle(dir_ / "bundle", trusted_);
  EXPECT_TRUE(b.ok()) << b.error().message;

  auto nothing = LoadBundle(dir_ / "no-such-bundle", trusted_);
  ASSERT_FALSE(nothing.ok());
  EXPECT_EQ(nothing.error().code, Errc::kNotFound);
}

TEST_F(BundleRoundTrip, VolumeSizeSplit) {
  const std::string tool = RandomBytes(5000, 3);
  auto created = Create(WriteTemplate("1.0.0", tool, false), dir_ / "bundle", 1000);
  ASSERT_TRUE(created.ok()) << created.error().message;
  EXPECT_GE(created->volumes, 5u);
  auto b = LoadBundle(dir_ / "bundle", trusted_);
  ASSERT_TRUE(b.ok()) << b.error().message;
  ASSERT_EQ(b->manifest.volumes_size(), static_cast<int>(created->volumes));
  uint64_t total = 0;
  for (const auto& v : b->manifest.volumes()) {
    const std::string path = dir_ / ("bundle/" + v.name());
    ASSERT_TRUE(fs::exists(path)) << path;
    EXPECT_LE(fs::file_size(path), 1000u) << v.name();
    EXPECT_EQ(fs::file_size(path), v.size()) << v.name();
    EXPECT_GT(v.size(), 0u) << v.name() << " is empty";
    total += v.size();
  }
  EXPECT_EQ(total, 5000u + 13u);  // tool.bin + compose.yaml ("services: {}\n")
  // tool.bin spans at least 5 volumes, in order.
  const auto& entry = b->manifest.blobs(0);
  EXPECT_EQ(entry.digest(), Sha256::Of(tool).str());
  EXPECT_GE(entry.segments_size(), 5);
  for (int i = 1; i < entry.segments_size(); ++i) {
    EXPECT_EQ(entry.segments(i).volume(), entry.segments(i - 1).volume() + 1);
    EXPECT_EQ(entry.segments(i).offset(), 0u);
  }
  EXPECT_FALSE(fs::exists(dir_ / ("bundle/" + VolumeFileName(created->volumes))));
  auto report = VerifyVolumes(*b, nullptr);
  EXPECT_TRUE(report.problems.empty()) << report.problems.front();
  EXPECT_EQ(report.blobs_ok, 2u);

  auto store = store::NewMemoryStore(4096);
  IngestResult r;
  auto st = DoIngest(*b, *store, r);
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(StoredBytes(*store, Sha256::Of(tool)), tool);
}

TEST_F(BundleRoundTrip, ExactlyFullVolumes) {
  // 2000 + 13 bytes in volumes of 1000: no empty trailing volume.
  const std::string tool = RandomBytes(2000, 4);
  auto created = Create(WriteTemplate("1.0.0", tool, false), dir_ / "bundle", 1000);
  ASSERT_TRUE(created.ok()) << created.error().message;
  auto b = LoadBundle(dir_ / "bundle", trusted_);
  ASSERT_TRUE(b.ok()) << b.error().message;
  for (const auto& v : b->manifest.volumes()) EXPECT_GT(v.size(), 0u) << v.name();
  EXPECT_EQ(created->volumes, 3u);
  EXPECT_TRUE(VerifyVolumes(*b, nullptr).problems.empty());
}

// Identical files are stored once; the copy written before the duplicate was noticed is rewound,
// also when it had already spilled into new volumes.
TEST_F(BundleRoundTrip, DuplicateFilesStoredOnceAcrossVolumes) {
  const std::string same = RandomBytes(1500, 8);
  WriteFile(dir_ / "src/tree/a.bin", same);
  WriteFile(dir_ / "src/tree/b.bin", same);
  WriteFile(dir_ / "src/tree/c.bin", RandomBytes(300, 9));
  WriteFile(dir_ / "src/edge/x.bin", RandomBytes(1000, 10));
  WriteFile(dir_ / "src/edge/y.bin", ReadFile(dir_ / "src/edge/x.bin"));
  WriteFile(dir_ / "src/app.yaml",
            "app: demo\nversion: 1.0.0\ncomponents:\n  - name: tree\n    artifact: tree\n"
            "  - name: edge\n    artifact: edge\n");
  auto created = Create(dir_ / "src/app.yaml", dir_ / "bundle", 1000);
  ASSERT_TRUE(created.ok()) << created.error().message;
  EXPECT_EQ(created->blobs, 3u);
  EXPECT_EQ(created->duplicate_blobs, 2u);
  EXPECT_EQ(created->bytes, 1500u + 300u + 1000u);
  auto b = LoadBundle(dir_ / "bundle", trusted_);
  ASSERT_TRUE(b.ok()) << b.error().message;
  uint64_t total = 0;
  for (const auto& v : b->manifest.volumes()) {
    EXPECT_EQ(fs::file_size(dir_ / ("bundle/" + v.name())), v.size()) << v.name();
    total += v.size();
  }
  EXPECT_EQ(total, 2800u) << "rewound bytes left in the volumes";
  EXPECT_FALSE(fs::exists(dir_ / ("bundle/" + VolumeFileName(static_cast<uint32_t>(b->manifest.volumes_size())))));
  auto report = VerifyVolumes(*b, nullptr);
  EXPECT_TRUE(report.problems.empty()) << report.problems.front();
  EXPECT_EQ(report.blobs_ok, 3u);
  const auto& tree = b->manifest.release().components(0).artifact();
  ASSERT_EQ(tree.files_size(), 3);
  EXPECT_EQ(tree.files(0).digest(), tree.files(1).digest());
  auto store = store::NewMemoryStore(4096);
  IngestResult r;
  auto st = DoIngest(*b, *store, r);
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(StoredBytes(*store, Sha256::Of(same)), same);
}

TEST_F(BundleRoundTrip, MissingVolumeIsIncompleteThenResumes) {
  const std::string tool = RandomBytes(5000, 5);
  auto created = Create(WriteTemplate("1.0.0", tool, false), dir_ / "bundle", 1000);
  ASSERT_TRUE(created.ok()) << created.error().message;
  auto b = LoadBundle(dir_ / "bundle", trusted_);
  ASSERT_TRUE(b.ok()) << b.error().message;
  const std::string vol = dir_ / "bundle/volume-0003.gsv";
  const std::string saved = ReadFile(vol);
  ASSERT_EQ(saved.size(), 1000u);
  fs::remove(vol);

  auto verify = VerifyVolumes(*b, nullptr);
  ASSERT_FALSE(verify.problems.empty());
  EXPECT_TRUE(Contains(verify.problems[0], "volume-0003.gsv")) << verify.problems[0];

  auto store = store::NewMemoryStore(4096);
  IngestResult r;
  auto st = DoIngest(*b, *store, r);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::kIncomplete) << st.error().message;
  EXPECT_TRUE(Contains(st.error().message, "volume-0003.gsv")) << st.error().message;
  EXPECT_FALSE(r.complete);
  ASSERT_EQ(r.missing_volumes.size(), 1u);
  EXPECT_TRUE(Contains(r.missing_volumes[0], "volume-0003.gsv"));
  auto rel = store->GetRelease({"demo", "1.0.0"});
  ASSERT_TRUE(rel.ok());
  EXPECT_FALSE(rel->has_value()) << "release visible though a volume was missing";
  auto partial = store->PartialBytes(Sha256::Of(tool));
  ASSERT_TRUE(partial.ok());
  EXPECT_EQ(*partial, 2000u) << "the bytes before the missing volume were not kept";

  WriteFile(vol, saved);
  IngestResult r2;
  st = DoIngest(*b, *store, r2);
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_TRUE(r2.complete);
  EXPECT_EQ(r2.bytes_new, 3000u) << "resumed ingest re-read bytes it already had";
  rel = store->GetRelease({"demo", "1.0.0"});
  ASSERT_TRUE(rel.ok());
  EXPECT_TRUE(rel->has_value());
  EXPECT_EQ(StoredBytes(*store, Sha256::Of(tool)), tool);
  auto fsck = store->Fsck(nullptr);
  ASSERT_TRUE(fsck.ok());
  EXPECT_TRUE(fsck->problems.empty());
  EXPECT_EQ(fsck->partial_blobs, 0u);
  EXPECT_EQ(fsck->orphan_chunks, 0u);
}

TEST_F(BundleRoundTrip, MissingVolumeResumesInRocksDbStoreAcrossReopen) {
  const std::string tool = RandomBytes(9000, 6);
  auto created = Create(WriteTemplate("1.0.0", tool, false), dir_ / "bundle", 1000);
  ASSERT_TRUE(created.ok()) << created.error().message;
  auto b = LoadBundle(dir_ / "bundle", trusted_);
  ASSERT_TRUE(b.ok()) << b.error().message;
  const std::string vol = dir_ / "bundle/volume-0006.gsv";
  const std::string saved = ReadFile(vol);
  fs::remove(vol);
  store::RocksDbOptions so;
  so.chunk_size = 4096;
  {
    auto s = store::OpenRocksDbStore(dir_ / "store", so);
    ASSERT_TRUE(s.ok()) << s.error().message;
    IngestResult r;
    auto st = DoIngest(*b, **s, r);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, Errc::kIncomplete);
  }
  WriteFile(vol, saved);
  auto s = store::OpenRocksDbStore(dir_ / "store", so);
  ASSERT_TRUE(s.ok()) << s.error().message;
  IngestResult r;
  auto st = DoIngest(*b, **s, r);
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(r.bytes_new, 4000u) << "resumed ingest re-read bytes it already had";
  EXPECT_EQ(StoredBytes(**s, Sha256::Of(tool)), tool);
}

TEST_F(BundleRoundTrip, SameVersionOtherContentIsConflict) {
  auto first = Create(WriteTemplate("1.0.0", "first"), dir_ / "b1");
  ASSERT_TRUE(first.ok()) << first.error().message;
  auto second = Create(WriteTemplate("1.0.0", "second"), dir_ / "b2");
  ASSERT_TRUE(second.ok()) << second.error().message;
  auto older = Create(WriteTemplate("0.9.0", "older"), dir_ / "b3");
  ASSERT_TRUE(older.ok()) << older.error().message;
  auto store = store::NewMemoryStore(4096);
  IngestResult r1, r2, r3;
  ASSERT_TRUE(DoIngest(LoadBundle(dir_ / "b1", trusted_).value(), *store, r1).ok());
  auto st = DoIngest(LoadBundle(dir_ / "b2", trusted_).value(), *store, r2);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::kConflict);
  st = DoIngest(LoadBundle(dir_ / "b3", trusted_).value(), *store, r3);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::kConflict);
  EXPECT_TRUE(Contains(st.error().message, "demo@1.0.0")) << st.error().message;
}

TEST_F(BundleRoundTrip, CreateRefusesNonEmptyOutDirAndBadKey) {
  const std::string tmpl = WriteTemplate("1.0.0", "tool");
  WriteFile(dir_ / "full/keep.txt", "mine");
  auto r = Create(tmpl, dir_ / "full");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kConflict);
  EXPECT_EQ(ReadFile(dir_ / "full/keep.txt"), "mine");

  CreateOptions o;
  o.template_path = tmpl;
  o.key_path = keys_.public_key;  // a public key cannot sign
  o.out_dir = dir_ / "out";
  o.quiet = true;
  auto bad = CreateBundle(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_FALSE(fs::exists(dir_ / "out/manifest.pb"));

  o.key_path = keys_.private_key;
  o.volume_size = 0;
  auto zero = CreateBundle(o);
  ASSERT_FALSE(zero.ok());
  EXPECT_EQ(zero.error().code, Errc::kInvalidArgument);
}

}  // namespace
}  // namespace gapsync::agent
