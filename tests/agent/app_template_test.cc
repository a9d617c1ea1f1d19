// agent/app_template.h: app.yaml parsing and validation, errors naming file and line.
#include "agent/pack/app_template.h"
#include "agent/bundle/bundle.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tests/agent/test_util.h"

namespace gapsync::agent {
namespace {

using gapsync::testing::Contains;
using gapsync::testing::TempDir;
using gapsync::testing::WriteFile;

class AppTemplateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    WriteFile(dir_ / "files/tool.bin", "tool bytes");
    WriteFile(dir_ / "docs/readme.txt", "readme");
    WriteFile(dir_ / "compose.yaml", "services: {}\n");
    WriteFile(dir_ / "image.tar", "not really a tar");
    std::filesystem::create_directories(dir_ / "layout");
  }

  Result<AppTemplate> Load(const std::string& yaml) {
    WriteFile(dir_ / "app.yaml", yaml);
    return LoadAppTemplate(dir_ / "app.yaml");
  }

  // Expects kInvalidArgument whose message holds every needle.
  void ExpectError(const std::string& yaml, std::initializer_list<std::string> needles) {
    auto t = Load(yaml);
    ASSERT_FALSE(t.ok()) << "accepted:\n" << yaml;
    EXPECT_EQ(t.error().code, Errc::kInvalidArgument) << t.error().message;
    for (const auto& n : needles) {
      EXPECT_TRUE(Contains(t.error().message, n)) << "message \"" << t.error().message << "\" lacks \"" << n << "\"";
    }
  }

  TempDir dir_;
};

TEST_F(AppTemplateTest, ValidTemplateParses) {
  auto t = Load(
      "app: demo-app\n"
      "version: 1.2.0-rc.1\n"
      "description: a demo\n"
      "components:\n"
      "  - name: tool\n"
      "    artifact: files/tool.bin\n"
      "  - name: docs\n"
      "    artifact: docs\n"
      "  - name: web\n"
      "    image: oci:layout:v1.2\n"
      "  - name: db\n"
      "    image: docker-archive:image.tar\n"
      "  - name: plain-oci\n"
      "    image: oci:layout\n"
      "deploy:\n"
      "  templates:\n"
      "    - compose.yaml\n"
      "  hooks:\n"
      "    activate: ./up.sh\n"
      "    health: ./health.sh\n"
      "    deactivate: ./down.sh\n");
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->app, "demo-app");
  EXPECT_EQ(t->version, "1.2.0-rc.1");
  EXPECT_EQ(t->file, dir_ / "app.yaml");
  ASSERT_EQ(t->components.size(), 5u);
  const auto& tool = t->components[0];
  EXPECT_EQ(tool.name, "tool");
  EXPECT_EQ(tool.kind, ComponentSpec::Kind::kArtifact);
  EXPECT_EQ(tool.source_ref, "files/tool.bin");
  EXPECT_EQ(std::filesystem::path(tool.path), std::filesystem::path(dir_ / "files/tool.bin"));
  EXPECT_EQ(t->components[1].kind, ComponentSpec::Kind::kArtifact);
  const auto& web = t->components[2];
  EXPECT_EQ(web.kind, ComponentSpec::Kind::kOciLayout);
  EXPECT_EQ(web.tag, "v1.2");
  EXPECT_EQ(web.source_ref, "oci:layout:v1.2");
  EXPECT_EQ(std::filesystem::path(web.path), std::filesystem::path(dir_ / "layout"));
  EXPECT_EQ(t->components[3].kind, ComponentSpec::Kind::kDockerArchive);
  EXPECT_EQ(std::filesystem::path(t->components[3].path), std::filesystem::path(dir_ / "image.tar"));
  EXPECT_EQ(t->components[4].kind, ComponentSpec::Kind::kOciLayout);
  EXPECT_EQ(t->components[4].tag, "");
  ASSERT_EQ(t->templates.size(), 1u);
  EXPECT_EQ(t->templates[0].relative_path, "compose.yaml");
  EXPECT_EQ(std::filesystem::path(t->templates[0].path), std::filesystem::path(dir_ / "compose.yaml"));
  EXPECT_EQ(t->hook_activate, "./up.sh");
  EXPECT_EQ(t->hook_health, "./health.sh");
  EXPECT_EQ(t->hook_deactivate, "./down.sh");
}

TEST_F(AppTemplateTest, MinimalTemplateParses) {
  auto t = Load("app: x\nversion: 0.0.1\ncomponents:\n  - name: a\n    artifact: files/tool.bin\n");
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_TRUE(t->templates.empty());
  EXPECT_TRUE(t->hook_activate.empty());
}

TEST_F(AppTemplateTest, UnknownTopLevelKey) {
  ExpectError(
      "app: demo\n"
      "version: 1.0.0\n"
      "colour: blue\n"
      "components:\n"
      "  - name: tool\n"
      "    artifact: files/tool.bin\n",
      {"colour", "app.yaml:3"});
}

TEST_F(AppTemplateTest, UnknownComponentKey) {
  ExpectError(
      "app: demo\n"
      "version: 1.0.0\n"
      "components:\n"
      "  - name: tool\n"
      "    artifact: files/tool.bin\n"
      "    tag: latest\n",
      {"\"tag\"", "app.yaml:6", "component"});
}

TEST_F(AppTemplateTest, UnknownDeployKey) {
  ExpectError(
      "app: demo\n"
      "version: 1.0.0\n"
      "components:\n"
      "  - name: tool\n"
      "    artifact: files/tool.bin\n"
      "deploy:\n"
      "  templates: []\n"
      "  scripts: [a]\n",
      {"scripts", "app.yaml:8", "deploy"});
}

TEST_F(AppTemplateTest, UnknownHooksKey) {
  ExpectError(
      "app: demo\n"
      "version: 1.0.0\n"
      "components:\n"
      "  - name: tool\n"
      "    artifact: files/tool.bin\n"
      "deploy:\n"
      "  hooks:\n"
      "    activate: ./up.sh\n"
      "    on_failure: ./oops.sh\n",
      {"on_failure", "app.yaml:9", "hooks"});
}

TEST_F(AppTemplateTest, MissingArtifactPath) {
  ExpectError("app: demo\nversion: 1.0.0\ncomponents:\n  - name: tool\n    artifact: files/missing.bin\n",
              {"files/missing.bin", "does not exist", "app.yaml:5"});
}

TEST_F(AppTemplateTest, MissingImagePaths) {
  ExpectError("app: demo\nversion: 1.0.0\ncomponents:\n  - name: web\n    image: oci:nolayout:v1\n",
              {"nolayout", "does not exist", "app.yaml:5"});
  ExpectError("app: demo\nversion: 1.0.0\ncomponents:\n  - name: web\n    image: docker-archive:missing.tar\n",
              {"missing.tar", "does not exist"});
}

TEST_F(AppTemplateTest, UnknownImageScheme) {
  ExpectError("app: demo\nversion: 1.0.0\ncomponents:\n  - name: web\n    image: docker://nginx:latest\n",
              {"docker://nginx:latest", "app.yaml:5"});
}

TEST_F(AppTemplateTest, BadVersion) {
  for (const char* v : {"1.0", "v1.0.0", "latest", "1.0.0-", "01.0.0"}) {
    ExpectError(std::string("app: demo\nversion: ") + v + "\ncomponents:\n  - name: tool\n    artifact: files/tool.bin\n",
                {"version", v, "app.yaml:2"});
  }
}

TEST_F(AppTemplateTest, MissingVersionOrApp) {
  ExpectError("app: demo\ncomponents:\n  - name: tool\n    artifact: files/tool.bin\n", {"version"});
  ExpectError("version: 1.0.0\ncomponents:\n  - name: tool\n    artifact: files/tool.bin\n", {"app"});
}

TEST_F(AppTemplateTest, BadAppName) {
  for (const char* a : {"Demo", "-demo", "my app", "a/b"}) {
    ExpectError(std::string("app: \"") + a + "\"\nversion: 1.0.0\ncomponents:\n  - name: tool\n    artifact: files/tool.bin\n",
                {"app name", "app.yaml:1"});
  }
}

TEST_F(AppTemplateTest, DuplicateComponentNames) {
  ExpectError(
      "app: demo\n"
      "version: 1.0.0\n"
      "components:\n"
      "  - name: tool\n"
      "    artifact: files/tool.bin\n"
      "  - name: tool\n"
      "    artifact: docs\n",
      {"\"tool\"", "twice", "app.yaml:6"});
}

TEST_F(AppTemplateTest, BothImageAndArtifact) {
  ExpectError(
      "app: demo\n"
      "version: 1.0.0\n"
      "components:\n"
      "  - name: tool\n"
      "    artifact: files/tool.bin\n"
      "    image: oci:layout\n",
      {"tool", "exactly one"});
}

TEST_F(AppTemplateTest, NeitherImageNorArtifact) {
  ExpectError("app: demo\nversion: 1.0.0\ncomponents:\n  - name: tool\n", {"tool", "exactly one"});
}

TEST_F(AppTemplateTest, BadComponentName) {
  ExpectError("app: demo\nversion: 1.0.0\ncomponents:\n  - name: ../x\n    artifact: files/tool.bin\n",
              {"../x", "app.yaml:4"});
  ExpectError("app: demo\nversion: 1.0.0\ncomponents:\n  - name: .hidden\n    artifact: files/tool.bin\n",
              {".hidden"});
}

TEST_F(AppTemplateTest, ComponentsMustBeNonEmptyList) {
  ExpectError("app: demo\nversion: 1.0.0\ncomponents: []\n", {"components"});
  ExpectError("app: demo\nversion: 1.0.0\ncomponents: tool\n", {"components"});
  ExpectError("app: demo\nversion: 1.0.0\n", {"components"});
}

TEST_F(AppTemplateTest, TemplateOutsideFolderRefused) {
  ExpectError(
      "app: demo\nversion: 1.0.0\ncomponents:\n  - name: tool\n    artifact: files/tool.bin\n"
      "deploy:\n  templates:\n    - ../etc/passwd\n",
      {"../etc/passwd", "app.yaml:8"});
  ExpectError(
      "app: demo\nversion: 1.0.0\ncomponents:\n  - name: tool\n    artifact: files/tool.bin\n"
      "deploy:\n  templates:\n    - /etc/passwd\n",
      {"/etc/passwd"});
}

TEST_F(AppTemplateTest, TemplateProblems) {
  ExpectError(
      "app: demo\nversion: 1.0.0\ncomponents:\n  - name: tool\n    artifact: files/tool.bin\n"
      "deploy:\n  templates:\n    - missing.yaml\n",
      {"missing.yaml", "does not exist"});
  ExpectError(
      "app: demo\nversion: 1.0.0\ncomponents:\n  - name: tool\n    artifact: files/tool.bin\n"
      "deploy:\n  templates:\n    - compose.yaml\n    - ./compose.yaml\n",
      {"compose.yaml", "twice"});
  ExpectError(
      "app: demo\nversion: 1.0.0\ncomponents:\n  - name: tool\n    artifact: files/tool.bin\n"
      "deploy:\n  templates:\n    - docs\n",
      {"docs", "not a regular file"});
}

TEST_F(AppTemplateTest, WrongShapes) {
  ExpectError("- a\n- b\n", {"mapping"});
  ExpectError("app: [demo]\nversion: 1.0.0\ncomponents:\n  - name: tool\n    artifact: files/tool.bin\n",
              {"app", "app.yaml:1"});
  ExpectError("app: demo\nversion: 1.0.0\ncomponents:\n  - tool\n", {"component"});
}

TEST_F(AppTemplateTest, YamlSyntaxErrorNamesLine) {
  ExpectError("app: demo\nversion: 1.0.0\ncomponents:\n  - name: [unclosed\n", {"app.yaml:"});
}

TEST_F(AppTemplateTest, MissingFileIsNotFound) {
  auto t = LoadAppTemplate(dir_ / "nope.yaml");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code, Errc::kNotFound);
  EXPECT_TRUE(Contains(t.error().message, "nope.yaml"));
}

TEST(IsValidAppName, Cases) {
  EXPECT_TRUE(IsValidAppName("a"));
  EXPECT_TRUE(IsValidAppName("0app"));
  EXPECT_TRUE(IsValidAppName("my-app_1.2"));
  EXPECT_TRUE(IsValidAppName(std::string(64, 'a')));
  EXPECT_FALSE(IsValidAppName(""));
  EXPECT_FALSE(IsValidAppName(std::string(65, 'a')));
  EXPECT_FALSE(IsValidAppName("App"));
  EXPECT_FALSE(IsValidAppName(".app"));
  EXPECT_FALSE(IsValidAppName("-app"));
  EXPECT_FALSE(IsValidAppName("a b"));
  EXPECT_FALSE(IsValidAppName("a@b"));
}

}  // namespace
}  // namespace gapsync::agent
