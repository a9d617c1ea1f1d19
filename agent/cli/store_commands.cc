// gapsync store ls | fsck | gc | export: a node's store, opened directly (no agent may run on it).
#include <cstdio>
#include <memory>

#include "agent/base/progress.h"
#include "agent/base/util.h"
#include "agent/catalog/release_record.h"
#include "agent/catalog/store_summary.h"
#include "agent/cli/commands.h"
#include "agent/cli/render.h"
#include "agent/export/export.h"

namespace gapsync::agent {
namespace {

struct StoreArgs {
  std::string path;
  bool json = false;
  bool repair = false;
  bool drop_partial = false;
  std::string release, component, oci;
};

int List(store::BlobStore& s, const StoreArgs& a) {
  auto summary = SummarizeStore(s);
  if (!summary.ok()) return Fail(summary.error());
  if (a.json) {
    PrintJson(StoreSummaryJson(summary.value()));
  } else {
    std::fputs(StoreSummaryText(summary.value()).c_str(), stdout);
  }
  return 0;
}

int Check(store::BlobStore& s, const StoreArgs& a, bool quiet) {
  uint64_t total = 0;
  (void)s.ForEachBlob([&](const store::BlobInfo& i) {
    total += i.size;
    return OkStatus();
  });
  Progress progress("fsck", total, quiet || a.json);
  auto r = s.Fsck([&](uint64_t n) { progress.Add(n); });
  progress.Finish();
  if (!r.ok()) return Fail(r.error());
  std::vector<std::string> dropped;
  if (a.repair) {
    for (const auto& d : r->corrupt_blobs) {
      auto st = s.DropBlob(d);
      if (!st.ok()) return Fail(st.error());
      dropped.push_back(d.str());
      std::fprintf(stderr, "gapsync: dropped corrupt blob %s: re-ingest a bundle carrying it to restore it\n", d.str().c_str());
    }
  }
  if (a.json) {
    PrintJson({{"clean", r->problems.empty()}, {"blobs_checked", r->blobs_checked}, {"bytes_checked", r->bytes_checked},
               {"releases_checked", r->releases_checked}, {"partial_blobs", r->partial_blobs},
               {"orphan_chunks", r->orphan_chunks}, {"problems", r->problems}, {"dropped", dropped}});
  }
  for (const auto& p : r->problems) std::fprintf(stderr, "gapsync: error: %s\n", p.c_str());
  if (!r->problems.empty()) return kExitError;
  if (!a.json) {
    std::printf("store clean: %lu blobs (%s) and %lu releases verified; %lu partial blobs, %lu orphaned chunk ranges\n",
                static_cast<unsigned long>(r->blobs_checked), HumanBytes(r->bytes_checked).c_str(),
                static_cast<unsigned long>(r->releases_checked), static_cast<unsigned long>(r->partial_blobs),
                static_cast<unsigned long>(r->orphan_chunks));
  }
  return 0;
}

int Collect(store::BlobStore& s, const StoreArgs& a) {
  auto r = s.CollectGarbage(a.drop_partial);
  if (!r.ok()) return Fail(r.error());
  if (a.json) {
    PrintJson({{"blobs_removed", r->blobs_removed}, {"bytes_removed", r->bytes_removed},
               {"partials_removed", r->partials_removed}, {"orphan_chunks_removed", r->orphan_chunks_removed}});
  } else {
    std::printf("gc: removed %lu blobs (%s), %lu partial blobs, %lu orphaned chunk ranges\n",
                static_cast<unsigned long>(r->blobs_removed), HumanBytes(r->bytes_removed).c_str(),
                static_cast<unsigned long>(r->partials_removed), static_cast<unsigned long>(r->orphan_chunks_removed));
  }
  return 0;
}

int Export(store::BlobStore& s, const StoreArgs& a) {
  auto id = ParseReleaseId(a.release);
  if (!id.ok()) return Fail(id.error());
  auto r = ExportOciLayout(s, id.value(), a.component, a.oci);
  if (!r.ok()) return Fail(r.error());
  if (a.json) {
    PrintJson({{"oci", a.oci}, {"tag", r->tag}, {"manifest_digest", r->root_digest}, {"blobs", r->blobs}, {"bytes_written", r->bytes}});
  } else {
    std::printf("exported %s component %s to oci:%s:%s (manifest %s, %lu blobs)\n", a.release.c_str(), a.component.c_str(),
                a.oci.c_str(), r->tag.c_str(), r->root_digest.c_str(), static_cast<unsigned long>(r->blobs));
  }
  return 0;
}

// Runs `command` on the store the arguments name.
template <class Command>
void OnStore(Cli& cli, CLI::App* sub, std::shared_ptr<StoreArgs> a, Command command) {
  sub->callback([&cli, a, command] {
    auto st = OpenNodeStore(a->path);
    cli.exit_code = st.ok() ? command(*st.value(), *a) : Fail(st.error());
  });
}

}  // namespace

void AddStoreCommands(Cli& cli) {
  auto* storec = cli.app.add_subcommand("store", "Inspect and maintain a node's store");
  storec->require_subcommand(1);
  auto a = std::make_shared<StoreArgs>();

  auto* ls = storec->add_subcommand("ls", "List releases and blob totals");
  ls->add_option("--store", a->path, "Store folder")->required();
  ls->add_flag("--json", a->json, "Print as JSON");
  OnStore(cli, ls, a, List);

  auto* fsck = storec->add_subcommand("fsck", "Recheck every stored byte and every release");
  fsck->add_option("--store", a->path, "Store folder")->required();
  fsck->add_flag("--repair", a->repair, "Drop blobs whose bytes do not verify, so re-ingesting their bundle restores them");
  fsck->add_flag("--json", a->json, "Print as JSON");
  OnStore(cli, fsck, a, [&cli](store::BlobStore& s, const StoreArgs& args) { return Check(s, args, cli.quiet); });

  auto* gc = storec->add_subcommand("gc", "Remove blobs no pinned release needs");
  gc->add_option("--store", a->path, "Store folder")->required();
  gc->add_flag("--drop-partial", a->drop_partial, "Also drop blobs a stopped ingest left half-stored");
  gc->add_flag("--json", a->json, "Print as JSON");
  OnStore(cli, gc, a, Collect);

  auto* exportc = storec->add_subcommand("export", "Write an image component of a release as an OCI image layout");
  exportc->add_option("--store", a->path, "Store folder")->required();
  exportc->add_option("--release", a->release, "APP@VERSION")->required();
  exportc->add_option("--component", a->component, "Component name")->required();
  exportc->add_option("--oci", a->oci, "OCI layout folder to write (read it as oci:DIR:VERSION)")->required();
  exportc->add_flag("--json", a->json, "Print as JSON");
  OnStore(cli, exportc, a, Export);
}

}  // namespace gapsync::agent
