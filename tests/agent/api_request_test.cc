// The local API's request check (agent/node/api_request.h): what passes, and each refusal.
#include <gtest/gtest.h>

#include "agent/node/api_request.h"

namespace gapsync::agent {
namespace {

std::string Ingest(const std::string& dir) {
  v1::ApiRequest r;
  r.mutable_ingest()->set_bundle_dir(dir);
  return r.SerializeAsString();
}

TEST(DecodeApiRequest, StatusAndAbsoluteIngestPass) {
  v1::ApiRequest status;
  status.mutable_status();
  auto s = DecodeApiRequest(status.SerializeAsString());
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->has_status());
  auto i = DecodeApiRequest(Ingest("/media/usb/bundle"));
  ASSERT_TRUE(i.ok());
  EXPECT_EQ(i->ingest().bundle_dir(), "/media/usb/bundle");
}

TEST(DecodeApiRequest, RefusesWhatIsNoRequest) {
  struct Case {
    std::string bytes, message;
  };
  const std::vector<Case> cases = {
      {"\xff\xff\xff", "malformed request"},
      {"", "unknown request"},  // no kind set
      {Ingest(""), "bundle_dir must be an absolute path"},
      {Ingest("bundle"), "bundle_dir must be an absolute path (got \"bundle\")"},
      {Ingest(std::string("/media/a\0b", 10)), "bundle_dir must be an absolute path"},
      {Ingest("/" + std::string(5000, 'a')), "bundle_dir must be an absolute path"},
  };
  for (const auto& c : cases) {
    auto r = DecodeApiRequest(c.bytes);
    ASSERT_FALSE(r.ok()) << c.message;
    EXPECT_EQ(r.error().code, Errc::kInvalidArgument);
    EXPECT_NE(r.error().message.find(c.message), std::string::npos) << r.error().message;
  }
}

}  // namespace
}  // namespace gapsync::agent
