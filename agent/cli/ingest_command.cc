// gapsync ingest DIR: through the local agent, or with --store straight into a store.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "agent/base/util.h"
#include "agent/catalog/release_record.h"
#include "agent/cli/commands.h"
#include "agent/cli/local_api_client.h"
#include "agent/cli/render.h"
#include "agent/ingest/ingest.h"

namespace gapsync::agent {
namespace {

struct IngestArgs {
  std::string dir, store;
  std::vector<std::string> trust;
  std::string agent_socket;
  bool allow_older = false;
  bool json = false;
  std::string sync_every = "1G";
  bool sync_every_given = false;
};

// Every problem but the first (which the error line names) on a line of its own.
void PrintMoreProblems(const v1::IngestReport& r) {
  for (int i = 1; i < r.problems_size(); ++i) std::fprintf(stderr, "gapsync: error: %s\n", r.problems(i).c_str());
}

int ThroughAgent(const IngestArgs& a) {
  if (!a.trust.empty() || a.sync_every_given) {
    return UsageError("--trust and --sync-every go with --store; the agent uses its own trusted keys (its config's trust list)");
  }
  v1::ApiRequest req;
  std::error_code ec;
  req.mutable_ingest()->set_bundle_dir(std::filesystem::absolute(a.dir, ec).lexically_normal().string());
  req.mutable_ingest()->set_allow_older(a.allow_older);
  auto resp = CallAgent(a.agent_socket, req);
  if (!resp.ok()) return Fail(resp.error());
  const bool has_report = resp->has_ingest();
  if (resp->exit_code() == 0 && !has_report) return Fail(OlderAgent(a.agent_socket));
  if (a.json && has_report) PrintJson(IngestReportJson(resp->ingest()));
  if (resp->exit_code() != 0) {
    if (has_report) PrintMoreProblems(resp->ingest());
    Fail(MakeError(Errc::kIo, resp->error()));
    return resp->exit_code();
  }
  if (!a.json) std::printf("%s (by the agent at %s)\n", SummaryOf(resp->ingest()).c_str(), a.agent_socket.c_str());
  return 0;
}

int IntoStore(const IngestArgs& a, bool quiet, const IngestHooks& hooks) {
  if (a.trust.empty()) return UsageError("--trust KEY.pub is required with --store");
  auto every = ParseSize(a.sync_every);
  if (!every.ok()) return UsageError("--sync-every: " + every.error().message);
  IngestOptions o;
  o.allow_older = a.allow_older;
  o.source = ReleaseSource::kMedia;
  o.sync_every_bytes = every.value();
  o.quiet = quiet || a.json;
  o.hooks = hooks;
  auto trusted = LoadTrustedKeys(a.trust);
  if (!trusted.ok()) return Fail(trusted.error());
  auto b = LoadBundle(a.dir, trusted.value());  // signature first, before the store is touched
  if (!b.ok()) return Fail(b.error());
  auto st = OpenNodeStore(a.store);
  if (!st.ok()) return Fail(st.error());
  IngestResult r;
  auto status = Ingest(b.value(), *st.value(), o, r);
  const v1::IngestReport report = ReportOf(r, status);
  if (a.json) PrintJson(IngestReportJson(report));
  if (!status.ok()) {
    PrintMoreProblems(report);
    return Fail(status.error());
  }
  if (!a.json) std::printf("%s\n", SummaryOf(report).c_str());
  return 0;
}

}  // namespace

void AddIngestCommand(Cli& cli) {
  auto a = std::make_shared<IngestArgs>();
  a->agent_socket = cli.env.agent_socket;
  auto* ingest = cli.app.add_subcommand("ingest", "Verify a bundle and store its release");
  ingest->add_option("dir", a->dir, "Bundle folder")->required();
  ingest->add_option("--store", a->store, "Store folder (RocksDB); without it the bundle goes to the local agent");
  ingest->add_option("--trust", a->trust, "Trusted vendor public key (repeatable; with --store)");
  ingest->add_option("--agent", a->agent_socket, "The local agent's socket (default $GAPSYNC_AGENT_SOCKET or /run/gapsync/agent.sock)");
  ingest->add_flag("--allow-older", a->allow_older, "Accept a version older than the newest the store holds");
  ingest->add_flag("--json", a->json, "Print the result as JSON");
  auto* every = ingest->add_option("--sync-every", a->sync_every, "Make progress durable after this many bytes (default 1G)");
  ingest->callback([&cli, a, every] {
    a->sync_every_given = every->count() > 0;
    cli.exit_code = a->store.empty() ? ThroughAgent(*a) : IntoStore(*a, cli.quiet, cli.env.ingest_hooks);
  });
}

}  // namespace gapsync::agent
