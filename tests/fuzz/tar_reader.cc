// Fuzz target: the tar reader (agent/pack/tar_reader.h) over any file a vendor might be handed as
// a docker-archive image. Properties: every member it lists lies inside the file, and its name is
// a safe relative path.
#include "agent/base/util.h"
#include "agent/pack/tar_reader.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gapsync;
  const std::string path = fuzz::WriteScratch("in.tar", fuzz::AsView(data, size));
  auto members = agent::ListTar(path);
  if (!members.ok()) {
    FUZZ_CHECK(members.error().message.rfind(path + ":", 0) == 0);  // errors name the file
    return 0;
  }
  for (const auto& m : *members) {
    FUZZ_CHECK(m.data_offset <= size && m.size <= size - m.data_offset);
    FUZZ_CHECK(m.name.empty() || agent::IsSafeRelativePath(m.name));
  }
  return 0;
}
