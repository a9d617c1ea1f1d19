// gapsync bundle create | verify | inspect.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "agent/base/progress.h"
#include "agent/base/util.h"
#include "agent/bundle/bundle.h"
#include "agent/cli/commands.h"
#include "agent/cli/render.h"
#include "agent/pack/bundle_writer.h"

using nlohmann::json;

namespace gapsync::agent {
namespace {

json ManifestSummary(const LoadedBundle& b) {
  const auto& m = b.manifest;
  json j;
  j["app"] = m.release().app();
  j["version"] = m.release().version();
  j["release_digest"] = b.release_digest.str();
  j["signer_key_id"] = m.signer_key_id();
  j["created_by"] = m.created_by();
  uint64_t total = 0;
  for (const auto& e : m.blobs()) total += e.size();
  j["blob_count"] = m.blobs_size();
  j["total_bytes"] = total;
  j["components"] = json::array();
  for (const auto& c : m.release().components()) {
    json cj{{"name", c.name()}};
    if (c.has_image()) {
      cj["kind"] = "image";
      cj["source"] = c.image().source();
      cj["source_ref"] = c.image().source_ref();
      cj["manifest_digest"] = c.image().root().digest();
      cj["config_digest"] = c.image().config_digest();
      cj["layers"] = c.image().layer_digests_size();
      cj["blobs"] = c.image().blob_digests_size();
    } else {
      cj["kind"] = "artifact";
      cj["directory"] = c.artifact().directory();
      cj["files"] = c.artifact().files_size();
      uint64_t bytes = 0;
      for (const auto& f : c.artifact().files()) bytes += f.size();
      cj["bytes"] = bytes;
    }
    j["components"].push_back(cj);
  }
  j["volumes"] = json::array();
  for (const auto& v : m.volumes()) j["volumes"].push_back({{"name", v.name()}, {"size", v.size()}});
  j["templates"] = json::array();
  for (const auto& t : m.release().deploy().templates()) j["templates"].push_back(t.path());
  j["hooks"] = {{"activate", m.release().deploy().hooks().activate()},
                {"health", m.release().deploy().hooks().health()},
                {"deactivate", m.release().deploy().hooks().deactivate()}};
  return j;
}

void PrintInspect(const json& j) {
  std::printf("app:        %s\nversion:    %s\nrelease:    %s\nsigner key: %s\nblobs:      %lu (%s)\n",
              j["app"].get<std::string>().c_str(), j["version"].get<std::string>().c_str(),
              j["release_digest"].get<std::string>().c_str(), j["signer_key_id"].get<std::string>().c_str(),
              j["blob_count"].get<unsigned long>(), HumanBytes(j["total_bytes"].get<uint64_t>()).c_str());
  std::printf("components:\n");
  for (const auto& c : j["components"]) {
    if (c["kind"] == "image") {
      std::printf("  %-16s image     %s (%s), %d layers\n", c["name"].get<std::string>().c_str(),
                  c["manifest_digest"].get<std::string>().c_str(), c["source"].get<std::string>().c_str(), c["layers"].get<int>());
    } else {
      std::printf("  %-16s artifact  %d file(s), %s\n", c["name"].get<std::string>().c_str(), c["files"].get<int>(),
                  HumanBytes(c["bytes"].get<uint64_t>()).c_str());
    }
  }
  std::printf("volumes:\n");
  for (const auto& v : j["volumes"]) {
    std::printf("  %-20s %s\n", v["name"].get<std::string>().c_str(), HumanBytes(v["size"].get<uint64_t>()).c_str());
  }
}

}  // namespace

void AddBundleCommands(Cli& cli) {
  auto* bundle = cli.app.add_subcommand("bundle", "Create, verify and inspect bundles");
  bundle->require_subcommand(1);

  struct CreateArgs {
    CreateOptions o;
    std::string volume_size = "4294967295";
    bool json = false;
  };
  auto c = std::make_shared<CreateArgs>();
  auto* create = bundle->add_subcommand("create", "Pack the release described by app.yaml into a signed bundle folder");
  create->add_option("--template", c->o.template_path, "app.yaml")->required();
  create->add_option("--key", c->o.key_path, "Vendor private key (NAME.key)")->required();
  create->add_option("--out", c->o.out_dir, "Bundle folder to write (new or empty)")->required();
  create->add_option("--volume-size", c->volume_size, "Largest volume file: bytes or 4G, 700M, 1M (default 4G-1, FAT32)");
  create->add_flag("--json", c->json, "Print the result as JSON");
  create->callback([&cli, c] {
    auto size = ParseSize(c->volume_size);
    if (!size.ok()) {
      cli.exit_code = UsageError("--volume-size: " + size.error().message);
      return;
    }
    c->o.volume_size = size.value();
    c->o.quiet = cli.quiet;
    auto r = CreateBundle(c->o);
    if (!r.ok()) {
      cli.exit_code = Fail(r.error());
      return;
    }
    if (c->json) {
      PrintJson({{"app", r->app}, {"version", r->version}, {"blobs", r->blobs}, {"bytes", r->bytes}, {"volumes", r->volumes},
                 {"shared_blobs_stored_once", r->duplicate_blobs}, {"out", c->o.out_dir}});
    } else {
      std::printf("bundle %s@%s written to %s: %lu blobs, %s in %u volume(s); %lu shared blob(s) stored once\n", r->app.c_str(),
                  r->version.c_str(), c->o.out_dir.c_str(), static_cast<unsigned long>(r->blobs), HumanBytes(r->bytes).c_str(),
                  r->volumes, static_cast<unsigned long>(r->duplicate_blobs));
    }
  });

  struct VerifyArgs {
    std::string dir;
    std::vector<std::string> trust;
    bool json = false;
  };
  auto v = std::make_shared<VerifyArgs>();
  auto* verify = bundle->add_subcommand("verify", "Check a bundle's signature and every byte of every volume (no store)");
  verify->add_option("dir", v->dir, "Bundle folder")->required();
  verify->add_option("--trust", v->trust, "Trusted vendor public key (repeatable)")->required();
  verify->add_flag("--json", v->json, "Print the result as JSON");
  verify->callback([&cli, v] {
    auto trusted = LoadTrustedKeys(v->trust);
    if (!trusted.ok()) {
      cli.exit_code = Fail(trusted.error());
      return;
    }
    auto b = LoadBundle(v->dir, trusted.value());
    if (!b.ok()) {
      cli.exit_code = Fail(b.error());
      return;
    }
    uint64_t total = 0;
    for (const auto& vol : b->manifest.volumes()) total += vol.size();
    Progress progress("verify", total, cli.quiet || v->json);
    auto report = VerifyVolumes(b.value(), [&](uint64_t n) { progress.Add(n); });
    progress.Finish();
    if (v->json) {
      PrintJson({{"ok", report.problems.empty()}, {"signer", b->signer}, {"blobs_ok", report.blobs_ok},
                 {"blobs", b->manifest.blobs_size()}, {"bytes_checked", report.bytes_checked}, {"problems", report.problems}});
    }
    if (!report.problems.empty()) {
      for (const auto& p : report.problems) std::fprintf(stderr, "gapsync: error: %s\n", p.c_str());
      cli.exit_code = kExitError;
      return;
    }
    if (!v->json) {
      std::printf("bundle %s (%s@%s) verified: signature by %s, %lu blobs, %s, every byte matches\n", v->dir.c_str(),
                  b->manifest.release().app().c_str(), b->manifest.release().version().c_str(), b->signer.c_str(),
                  static_cast<unsigned long>(report.blobs_ok), HumanBytes(report.bytes_checked).c_str());
    }
  });

  struct InspectArgs {
    std::string dir;
    bool json = false;
  };
  auto in = std::make_shared<InspectArgs>();
  auto* inspect = bundle->add_subcommand("inspect", "Show what a bundle holds (does not check the signature)");
  inspect->add_option("dir", in->dir, "Bundle folder")->required();
  inspect->add_flag("--json", in->json, "Print as JSON");
  inspect->callback([&cli, in] {
    auto b = LoadBundleUnverified(in->dir);
    if (!b.ok()) {
      cli.exit_code = Fail(b.error());
      return;
    }
    const json j = ManifestSummary(b.value());
    if (in->json) {
      PrintJson(j);
    } else {
      PrintInspect(j);
    }
  });
}

}  // namespace gapsync::agent
