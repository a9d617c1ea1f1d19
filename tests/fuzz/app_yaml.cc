// Fuzz target: app.yaml as a vendor writes it (agent/pack/app_template.h). Properties: a template
// that loads names a valid app and version and components with plain, distinct names; an error
// names the file.
#include <sys/stat.h>

#include <set>

#include "agent/bundle/bundle.h"
#include "agent/pack/app_template.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gapsync;
  const std::string path = fuzz::WriteScratch("app.yaml", fuzz::AsView(data, size));
  auto t = agent::LoadAppTemplate(path);
  if (!t.ok()) {
    FUZZ_CHECK(t.error().message.find(path) != std::string::npos);
    return 0;
  }
  FUZZ_CHECK(agent::IsValidAppName(t->app));
  FUZZ_CHECK(!t->components.empty());
  std::set<std::string> names;
  for (const auto& c : t->components) FUZZ_CHECK(names.insert(c.name).second);
  return 0;
}

// What the seeds' app.yaml names, relative to its folder: an artifact file and folder, a template,
// a docker-archive tar (empty: only its being there is checked here).
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  using namespace gapsync;
  const std::string& d = fuzz::ScratchDir();
  for (const char* sub : {"/config", "/deploy", "/images"}) ::mkdir((d + sub).c_str(), 0755);
  fuzz::WriteScratch("config/settings.ini", "a=1\n");
  fuzz::WriteScratch("deploy/compose.tmpl", "image: {{ images.web }}\n");
  fuzz::WriteScratch("db.tar", "");
  fuzz::WriteScratch("notes.txt", "hello\n");
  return 0;
}
