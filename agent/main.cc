// gapsync command line. Wires the modules together; no logic of its own beyond presentation.
#include <CLI/CLI.hpp>
#include <google/protobuf/stubs/logging.h>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "agent/agent_config.h"
#include "agent/bundle.h"
#include "agent/daemon.h"
#include "agent/local_api.h"
#include "agent/bundle_writer.h"
#include "agent/export.h"
#include "agent/ingest.h"
#include "agent/keys.h"
#include "agent/progress.h"
#include "agent/reports.h"
#include "agent/util.h"
#include "store/blob_store.h"
#include "transport/cluster_ca.h"

using nlohmann::json;
using namespace gapsync;
using namespace gapsync::agent;

namespace {

constexpr int kExitError = 1;
constexpr int kExitUsage = 2;
constexpr int kExitIncomplete = 3;

int Fail(const Error& e) {
  std::string msg = e.message;
  for (auto& c : msg) {
    if (c == '\n') c = ' ';
  }
  std::fprintf(stderr, "gapsync: error: %s\n", msg.c_str());
  return e.code == Errc::kIncomplete ? kExitIncomplete : kExitError;
}

void PrintJson(const json& j) { std::cout << j.dump(2) << std::endl; }

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

Result<std::unique_ptr<store::BlobStore>> OpenStore(const std::string& path) {
  if (path.empty()) return MakeError(Errc::kInvalidArgument, "--store PATH is required (no local agent is running)");
  store::RocksDbOptions o;
  o.manifest_blobs = ReleaseBlobsOfManifest;  // release records of gapsync up to eae3f3c
  return store::OpenRocksDbStore(path, o);
}

}  // namespace

int main(int argc, char** argv) {
  // Every parse failure is reported by gapsync itself, in one line naming the file; libprotobuf's
  // own log lines (e.g. a string field that is not UTF-8) would be a second, unhelpful one.
  google::protobuf::SetLogHandler(nullptr);
  CLI::App app{"gapsync: deliver signed application releases into air-gapped clusters"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "gapsync 0.1.0");
  bool quiet = false;
  app.add_flag("-q,--quiet", quiet, "No progress output");

  // ---- keys ----
  auto* keys = app.add_subcommand("keys", "Vendor signing keys");
  keys->require_subcommand(1);
  auto* keygen = keys->add_subcommand("generate", "Write an Ed25519 key pair NAME.key (0600) and NAME.pub (PEM)");
  std::string key_out, key_name;
  keygen->add_option("--out", key_out, "Folder to write the keys into")->required();
  keygen->add_option("--name", key_name, "Key name (file names NAME.key, NAME.pub)")->required();

  // ---- cluster CA ----
  auto* ca = app.add_subcommand("ca", "The cluster's certificate authority (mutual TLS between agents)");
  ca->require_subcommand(1);
  auto* ca_init = ca->add_subcommand("init", "Create a cluster CA: DIR/ca.key (0600) and DIR/ca.crt");
  std::string ca_out, ca_name = "cluster", ca_dir, node_name, node_out;
  ca_init->add_option("--out", ca_out, "Folder for the CA (keep ca.key offline)")->required();
  ca_init->add_option("--name", ca_name, "A name for the cluster, put in the CA's subject");
  auto* ca_issue = ca->add_subcommand("issue", "Issue a node certificate: DIR/NAME.key (0600), DIR/NAME.crt, DIR/ca.crt");
  ca_issue->add_option("--ca", ca_dir, "CA folder (from ca init)")->required();
  ca_issue->add_option("--node", node_name, "Node name (a-z 0-9 - .)")->required();
  ca_issue->add_option("--out", node_out, "Folder for the node's files")->required();

  // ---- bundle ----
  auto* bundle = app.add_subcommand("bundle", "Create, verify and inspect bundles");
  bundle->require_subcommand(1);
  auto* create = bundle->add_subcommand("create", "Pack the release described by app.yaml into a signed bundle folder");
  CreateOptions copt;
  std::string volume_size = "4294967295";
  create->add_option("--template", copt.template_path, "app.yaml")->required();
  create->add_option("--key", copt.key_path, "Vendor private key (NAME.key)")->required();
  create->add_option("--out", copt.out_dir, "Bundle folder to write (new or empty)")->required();
  create->add_option("--volume-size", volume_size, "Largest volume file: bytes or 4G, 700M, 1M (default 4G-1, FAT32)");
  bool create_json = false;
  create->add_flag("--json", create_json, "Print the result as JSON");

  auto* verify = bundle->add_subcommand("verify", "Check a bundle's signature and every byte of every volume (no store)");
  std::string verify_dir;
  std::vector<std::string> verify_trust;
  bool verify_json = false;
  verify->add_option("dir", verify_dir, "Bundle folder")->required();
  verify->add_option("--trust", verify_trust, "Trusted vendor public key (repeatable)")->required();
  verify->add_flag("--json", verify_json, "Print the result as JSON");

  auto* inspect = bundle->add_subcommand("inspect", "Show what a bundle holds (does not check the signature)");
  std::string inspect_dir;
  bool inspect_json = false;
  inspect->add_option("dir", inspect_dir, "Bundle folder")->required();
  inspect->add_flag("--json", inspect_json, "Print as JSON");

  // ---- ingest ----
  auto* ingest = app.add_subcommand("ingest", "Verify a bundle and store its release");
  std::string ingest_dir, ingest_store;
  std::vector<std::string> ingest_trust;
  IngestOptions iopt;
  bool ingest_json = false;
  ingest->add_option("dir", ingest_dir, "Bundle folder")->required();
  std::string agent_socket = DefaultAgentSocket();
  ingest->add_option("--store", ingest_store, "Store folder (RocksDB); without it the bundle goes to the local agent");
  ingest->add_option("--trust", ingest_trust, "Trusted vendor public key (repeatable; with --store)");
  ingest->add_option("--agent", agent_socket, "The local agent's socket (default $GAPSYNC_AGENT_SOCKET or /run/gapsync/agent.sock)");
  ingest->add_flag("--allow-older", iopt.allow_older, "Accept a version older than the newest the store holds");
  ingest->add_flag("--json", ingest_json, "Print the result as JSON");
  std::string sync_every = "1G";
  ingest->add_option("--sync-every", sync_every, "Make progress durable after this many bytes (default 1G)");

  // ---- agent ----
  auto* agentc = app.add_subcommand("agent", "The node's agent (daemon)");
  agentc->require_subcommand(1);
  auto* agent_run = agentc->add_subcommand("run", "Run the agent in the foreground until SIGTERM");
  std::string agent_config;
  agent_run->add_option("--config", agent_config, "Agent configuration (YAML; docs/agent-config.md)")->required();
  auto* cluster = app.add_subcommand("cluster", "The cluster, as the local agent sees it");
  cluster->require_subcommand(1);
  auto* cluster_status = cluster->add_subcommand("status", "Per node: reachable, releases held, ingest in progress");
  bool status_json = false;
  cluster_status->add_flag("--json", status_json, "Print as JSON");
  cluster_status->add_option("--agent", agent_socket, "The local agent's socket");

  // ---- store ----
  auto* storec = app.add_subcommand("store", "Inspect and maintain a node's store");
  storec->require_subcommand(1);
  std::string store_path;
  auto* ls = storec->add_subcommand("ls", "List releases and blob totals");
  bool ls_json = false;
  ls->add_option("--store", store_path, "Store folder")->required();
  ls->add_flag("--json", ls_json, "Print as JSON");
  auto* fsck = storec->add_subcommand("fsck", "Recheck every stored byte and every release");
  bool fsck_json = false, fsck_repair = false;
  fsck->add_option("--store", store_path, "Store folder")->required();
  fsck->add_flag("--repair", fsck_repair, "Drop blobs whose bytes do not verify, so re-ingesting their bundle restores them");
  fsck->add_flag("--json", fsck_json, "Print as JSON");
  auto* gc = storec->add_subcommand("gc", "Remove blobs no pinned release needs");
  bool gc_json = false, gc_partials = false;
  gc->add_option("--store", store_path, "Store folder")->required();
  gc->add_flag("--drop-partial", gc_partials, "Also drop blobs a stopped ingest left half-stored");
  gc->add_flag("--json", gc_json, "Print as JSON");
  auto* exportc = storec->add_subcommand("export", "Write an image component of a release as an OCI image layout");
  std::string export_release, export_component, export_dir;
  bool export_json = false;
  exportc->add_option("--store", store_path, "Store folder")->required();
  exportc->add_option("--release", export_release, "APP@VERSION")->required();
  exportc->add_option("--component", export_component, "Component name")->required();
  exportc->add_option("--oci", export_dir, "OCI layout folder to write (read it as oci:DIR:VERSION)")->required();
  exportc->add_flag("--json", export_json, "Print as JSON");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);  // prints help, or the usage error
    return rc == 0 ? 0 : kExitUsage;
  }

  if (keygen->parsed()) {
    auto r = GenerateKeyPair(key_out, key_name);
    if (!r.ok()) return Fail(r.error());
    std::printf("wrote %s (private, mode 0600) and %s\n", r->private_key.c_str(), r->public_key.c_str());
    return 0;
  }

  if (ca_init->parsed()) {
    auto r = transport::InitCa(ca_out, ca_name);
    if (!r.ok()) return Fail(r.error());
    std::printf("cluster CA written: %s (private, mode 0600; keep it off the nodes) and %s\n", r->key.c_str(), r->cert.c_str());
    return 0;
  }
  if (ca_issue->parsed()) {
    auto r = transport::IssueNodeCertificate(ca_dir, node_name, node_out);
    if (!r.ok()) return Fail(r.error());
    std::printf("node %s: %s (private, mode 0600), %s, %s\n", node_name.c_str(), r->key.c_str(), r->cert.c_str(), r->ca_cert.c_str());
    return 0;
  }

  if (create->parsed()) {
    auto size = ParseSize(volume_size);
    if (!size.ok()) {
      std::fprintf(stderr, "gapsync: error: --volume-size: %s\n", size.error().message.c_str());
      return kExitUsage;
    }
    copt.volume_size = size.value();
    copt.quiet = quiet;
    auto r = CreateBundle(copt);
    if (!r.ok()) return Fail(r.error());
    if (create_json) {
      PrintJson({{"app", r->app}, {"version", r->version}, {"blobs", r->blobs}, {"bytes", r->bytes},
                 {"volumes", r->volumes}, {"shared_blobs_stored_once", r->duplicate_blobs}, {"out", copt.out_dir}});
    } else {
      std::printf("bundle %s@%s written to %s: %lu blobs, %s in %u volume(s); %lu shared blob(s) stored once\n", r->app.c_str(),
                  r->version.c_str(), copt.out_dir.c_str(), static_cast<unsigned long>(r->blobs), HumanBytes(r->bytes).c_str(),
                  r->volumes, static_cast<unsigned long>(r->duplicate_blobs));
    }
    return 0;
  }

  if (verify->parsed()) {
    auto trusted = LoadTrustedKeys(verify_trust);
    if (!trusted.ok()) return Fail(trusted.error());
    auto b = LoadBundle(verify_dir, trusted.value());
    if (!b.ok()) return Fail(b.error());
    uint64_t total = 0;
    for (const auto& v : b->manifest.volumes()) total += v.size();
    Progress progress("verify", total, quiet || verify_json);
    auto report = VerifyVolumes(b.value(), [&](uint64_t n) { progress.Add(n); });
    progress.Finish();
    if (verify_json) {
      PrintJson({{"ok", report.problems.empty()}, {"signer", b->signer}, {"blobs_ok", report.blobs_ok},
                 {"blobs", b->manifest.blobs_size()}, {"bytes_checked", report.bytes_checked}, {"problems", report.problems}});
    }
    if (!report.problems.empty()) {
      for (const auto& p : report.problems) std::fprintf(stderr, "gapsync: error: %s\n", p.c_str());
      return kExitError;
    }
    if (!verify_json) {
      std::printf("bundle %s (%s@%s) verified: signature by %s, %lu blobs, %s, every byte matches\n", verify_dir.c_str(),
                  b->manifest.release().app().c_str(), b->manifest.release().version().c_str(), b->signer.c_str(),
                  static_cast<unsigned long>(report.blobs_ok), HumanBytes(report.bytes_checked).c_str());
    }
    return 0;
  }

  if (inspect->parsed()) {
    auto b = LoadBundleUnverified(inspect_dir);
    if (!b.ok()) return Fail(b.error());
    json j = ManifestSummary(b.value());
    if (inspect_json) {
      PrintJson(j);
      return 0;
    }
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
    return 0;
  }

  if (agent_run->parsed()) {
    auto cfg = LoadAgentConfig(agent_config);
    if (!cfg.ok()) return Fail(cfg.error());
    auto st = RunAgent(cfg.value());
    if (!st.ok()) return Fail(st.error());
    return 0;
  }

  if (cluster_status->parsed()) {
    v1::ApiRequest req;
    req.mutable_status();
    auto resp = CallAgent(agent_socket, req);
    if (!resp.ok()) return Fail(resp.error());
    if (resp->exit_code() != 0) return Fail(MakeError(Errc::kIo, resp->error()));
    json j = json::parse(resp->json(), nullptr, false);
    if (status_json) {
      PrintJson(j);
      return 0;
    }
    for (const auto& n : j["nodes"]) {
      std::printf("node %s%s: %s\n", n["node"].get<std::string>().c_str(), n.value("self", false) ? " (this node)" : "",
                  n["reachable"].get<bool>() ? "reachable" : "UNREACHABLE");
      for (const auto& r : n.value("releases", json::array())) {
        std::string state = r["complete"].get<bool>() ? "complete" : "";
        if (state.empty()) {
          char pct[32];
          std::snprintf(pct, sizeof pct, "%.1f %%", r["percent"].get<double>());
          state = pct;
        }
        std::printf("  %s  %s  %s of %s  down %s/s  up %s/s%s%s\n", r["release"].get<std::string>().c_str(), state.c_str(),
                    HumanBytes(r["bytes_have"].get<uint64_t>()).c_str(), HumanBytes(r["bytes_total"].get<uint64_t>()).c_str(),
                    HumanBytes(static_cast<uint64_t>(r["download_rate"].get<int64_t>())).c_str(),
                    HumanBytes(static_cast<uint64_t>(r["upload_rate"].get<int64_t>())).c_str(),
                    r["error"].get<std::string>().empty() ? "" : "  ERROR: ", r["error"].get<std::string>().c_str());
      }
      if (!n.contains("store")) continue;
      for (const auto& r : n["store"]["releases"]) {
        bool listed = false;
        for (const auto& t : n.value("releases", json::array())) listed |= t["release"] == r["app"].get<std::string>() + "@" + r["version"].get<std::string>();
        if (listed) continue;
        std::printf("  %s@%s  complete  %s\n", r["app"].get<std::string>().c_str(), r["version"].get<std::string>().c_str(),
                    HumanBytes(r["bytes"].get<uint64_t>()).c_str());
      }
      for (const auto& m : n["members"]) {
        if (m["self"].get<bool>()) continue;
        std::printf("  member %s at %s: %s\n", m["node"].get<std::string>().c_str(), m["address"].get<std::string>().c_str(),
                    m["reachable"].get<bool>() ? "reachable" : "UNREACHABLE");
      }
      if (!n["ingest"].is_null()) {
        std::printf("  ingesting %s from %s: %s of %s\n", n["ingest"]["release"].get<std::string>().c_str(),
                    n["ingest"]["bundle"].get<std::string>().c_str(), HumanBytes(n["ingest"]["bytes_done"].get<uint64_t>()).c_str(),
                    HumanBytes(n["ingest"]["bytes_total"].get<uint64_t>()).c_str());
      }
    }
    return 0;
  }

  if (ingest->parsed() && ingest_store.empty()) {
    if (!ingest_trust.empty() || ingest->count("--sync-every") > 0) {
      std::fprintf(stderr, "gapsync: error: --trust and --sync-every go with --store; the agent uses its own trusted keys (its config's trust list)\n");
      return kExitUsage;
    }
    v1::ApiRequest req;
    std::error_code ec;
    req.mutable_ingest()->set_bundle_dir(std::filesystem::absolute(ingest_dir, ec).lexically_normal().string());
    req.mutable_ingest()->set_allow_older(iopt.allow_older);
    auto resp = CallAgent(agent_socket, req);
    if (!resp.ok()) return Fail(resp.error());
    json j = json::parse(resp->json().empty() ? "{}" : resp->json(), nullptr, false);
    if (ingest_json && !j.empty()) PrintJson(j);
    if (resp->exit_code() != 0) {
      if (j.contains("problems") && j["problems"].is_array()) {
        for (size_t i = 1; i < j["problems"].size(); ++i) std::fprintf(stderr, "gapsync: error: %s\n", j["problems"][i].get<std::string>().c_str());
      }
      Fail(MakeError(Errc::kIo, resp->error()));
      return resp->exit_code();
    }
    if (!ingest_json) {
      IngestResult r;
      r.release = j.value("release", "");
      r.already_present = j.value("already_present", false);
      r.blobs_total = j.value("blobs", uint64_t{0});
      r.blobs_new = j.value("blobs_new", uint64_t{0});
      r.blobs_skipped = j.value("blobs_skipped", uint64_t{0});
      r.bytes_new = j.value("bytes_new", uint64_t{0});
      std::printf("%s (by the agent at %s)\n", IngestSummary(r).c_str(), agent_socket.c_str());
    }
    return 0;
  }

  if (ingest->parsed()) {
    if (ingest_trust.empty()) {
      std::fprintf(stderr, "gapsync: error: --trust KEY.pub is required with --store\n");
      return kExitUsage;
    }
    auto every = ParseSize(sync_every);
    if (!every.ok()) {
      std::fprintf(stderr, "gapsync: error: --sync-every: %s\n", every.error().message.c_str());
      return kExitUsage;
    }
    iopt.sync_every_bytes = every.value();
    auto trusted = LoadTrustedKeys(ingest_trust);
    if (!trusted.ok()) return Fail(trusted.error());
    auto b = LoadBundle(ingest_dir, trusted.value());  // signature first, before the store is touched
    if (!b.ok()) return Fail(b.error());
    auto st = OpenStore(ingest_store);
    if (!st.ok()) return Fail(st.error());
    iopt.quiet = quiet || ingest_json;

    IngestResult r;
    auto status = Ingest(b.value(), *st.value(), iopt, r);
    if (ingest_json) PrintJson(IngestReport(r, status));
    if (!status.ok()) {
      for (size_t i = 1; i < r.problems.size(); ++i) std::fprintf(stderr, "gapsync: error: %s\n", r.problems[i].c_str());
      return Fail(status.error());
    }
    if (!ingest_json) std::printf("%s\n", IngestSummary(r).c_str());
    return 0;
  }

  if (storec->parsed()) {
    auto st = OpenStore(store_path);
    if (!st.ok()) return Fail(st.error());
    auto& s = *st.value();
    if (ls->parsed()) {
      auto listing = StoreListing(s);
      if (!listing.ok()) return Fail(listing.error());
      const json& j = listing.value();
      if (ls_json) {
        PrintJson(j);
      } else {
        std::printf("%-24s %-14s %8s %12s  %s\n", "APP", "VERSION", "BLOBS", "SIZE", "COMPONENTS");
        for (const auto& r : j["releases"]) {
          std::string comps;
          for (const auto& c : r["components"]) comps += (comps.empty() ? "" : ",") + c["name"].get<std::string>();
          std::printf("%-24s %-14s %8d %12s  %s\n", r["app"].get<std::string>().c_str(), r["version"].get<std::string>().c_str(),
                      r["blobs"].get<int>(), HumanBytes(r["bytes"].get<uint64_t>()).c_str(), comps.c_str());
        }
        std::printf("store: %lu blobs, %s (%s on disk after compression)\n", j["blobs"].get<unsigned long>(),
                    HumanBytes(j["bytes"].get<uint64_t>()).c_str(), HumanBytes(j["stored_bytes"].get<uint64_t>()).c_str());
      }
      return 0;
    }
    if (fsck->parsed()) {
      uint64_t total = 0;
      (void)s.ForEachBlob([&](const store::BlobInfo& i) {
        total += i.size;
        return OkStatus();
      });
      Progress progress("fsck", total, quiet || fsck_json);
      auto r = s.Fsck([&](uint64_t n) { progress.Add(n); });
      progress.Finish();
      if (!r.ok()) return Fail(r.error());
      std::vector<std::string> dropped;
      if (fsck_repair) {
        for (const auto& d : r->corrupt_blobs) {
          auto st2 = s.DropBlob(d);
          if (!st2.ok()) return Fail(st2.error());
          dropped.push_back(d.str());
          std::fprintf(stderr, "gapsync: dropped corrupt blob %s: re-ingest a bundle carrying it to restore it\n", d.str().c_str());
        }
      }
      if (fsck_json) {
        PrintJson({{"clean", r->problems.empty()}, {"blobs_checked", r->blobs_checked}, {"bytes_checked", r->bytes_checked},
                   {"releases_checked", r->releases_checked}, {"partial_blobs", r->partial_blobs},
                   {"orphan_chunks", r->orphan_chunks}, {"problems", r->problems}, {"dropped", dropped}});
      }
      for (const auto& p : r->problems) std::fprintf(stderr, "gapsync: error: %s\n", p.c_str());
      if (!r->problems.empty()) return kExitError;
      if (!fsck_json) {
        std::printf("store clean: %lu blobs (%s) and %lu releases verified; %lu partial blobs, %lu orphaned chunk ranges\n",
                    static_cast<unsigned long>(r->blobs_checked), HumanBytes(r->bytes_checked).c_str(),
                    static_cast<unsigned long>(r->releases_checked), static_cast<unsigned long>(r->partial_blobs),
                    static_cast<unsigned long>(r->orphan_chunks));
      }
      return 0;
    }
    if (gc->parsed()) {
      auto r = s.CollectGarbage(gc_partials);
      if (!r.ok()) return Fail(r.error());
      if (gc_json) {
        PrintJson({{"blobs_removed", r->blobs_removed}, {"bytes_removed", r->bytes_removed},
                   {"partials_removed", r->partials_removed}, {"orphan_chunks_removed", r->orphan_chunks_removed}});
      } else {
        std::printf("gc: removed %lu blobs (%s), %lu partial blobs, %lu orphaned chunk ranges\n",
                    static_cast<unsigned long>(r->blobs_removed), HumanBytes(r->bytes_removed).c_str(),
                    static_cast<unsigned long>(r->partials_removed), static_cast<unsigned long>(r->orphan_chunks_removed));
      }
      return 0;
    }
    if (exportc->parsed()) {
      auto id = ParseReleaseId(export_release);
      if (!id.ok()) return Fail(id.error());
      auto r = ExportOciLayout(s, id.value(), export_component, export_dir);
      if (!r.ok()) return Fail(r.error());
      if (export_json) {
        PrintJson({{"oci", export_dir}, {"tag", r->tag}, {"manifest_digest", r->root_digest}, {"blobs", r->blobs}, {"bytes_written", r->bytes}});
      } else {
        std::printf("exported %s component %s to oci:%s:%s (manifest %s, %lu blobs)\n", export_release.c_str(),
                    export_component.c_str(), export_dir.c_str(), r->tag.c_str(), r->root_digest.c_str(),
                    static_cast<unsigned long>(r->blobs));
      }
      return 0;
    }
  }
  return 0;
}
