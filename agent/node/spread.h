// Releases over the cluster: every release complete in this node's store is offered to the members
// and served over the data plane; every release a member offers is checked and fetched.
//
// An Offer (proto/control.proto) is the vendor-signed manifest and the release's torrent. A node
// that sees, in a member's Hello, a release it does not know asks that member for its Offer,
// checks the vendor signature with its own trusted keys and the torrent against the signed blob
// list, admits it (agent/catalog/admission.h: from peers, older releases too), keeps it in
// data_dir/offers with the member that offered it, records the release as pending (gc keeps its
// pieces) and fetches it; when every blob is there the release record is written and the node
// serves it too. A torrent whose pieces turn out not to hash to the signed blobs was wrong: the
// member that offered it is not asked for that release again, and another member is.
//
// Threads: every call on the loop thread unless it says otherwise. Store work, hashing and file
// I/O run on the BlockingWork worker and come back to the loop; the loop never waits for them.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "agent/bundle/bundle.h"
#include "agent/bundle/keys.h"
#include "agent/catalog/admission.h"
#include "agent/node/blocking_work.h"
#include "agent/node/offer_files.h"
#include "proto/agent.pb.h"
#include "proto/control.pb.h"
#include "store/blob_store.h"
#include "transport/control_server.h"
#include "transport/data_plane.h"

namespace spdlog {
class logger;
}

namespace gapsync::agent {

class Spread {
 public:
  // `store_changed`: on the loop, when the store changed: with its summary taken right after a
  // release record was written (so that a status showing the release complete lists it in the
  // store too), without one when blobs arrived (the owner takes one when it can).
  Spread(boost::asio::io_context& loop, BlockingWork& work, store::BlobStore& store, const std::vector<TrustedKey>& trusted,
         OfferFiles& offers, transport::DataPlane& data,
         std::function<void(std::optional<v1::StoreSummary>)> store_changed, std::shared_ptr<spdlog::logger> log);

  // The control plane, once it runs (it is made with Hooks()): dialled when a release becomes
  // available here, and the source of the data plane's peers.
  void SetControl(transport::ControlServer* control);
  // Serves every complete release of the store and resumes every fetch whose Offer is kept.
  // REQUIRES: the offers folder exists (OfferFiles::Prepare).
  void Start();
  void Stop();

  transport::ControlHooks Hooks();
  // What this node holds or fetches, for its Hellos and its status (no store access).
  std::vector<v1::ReleaseState> LocalReleases();
  // What the data plane reports (posted to the loop by the node).
  void BlobDone(const ReleaseDigest& release);  // a blob of `release` is complete and durable
  void Failed(const ReleaseDigest& release, const Error& why);

  // Any thread but the loop (the ingest thread after an ingest): the Offer for a complete release in
  // the store (reads and hashes every piece), kept on disk.
  Result<v1::Offer> MakeOffer(const store::StoredRelease& release);
  // Serves a complete release of the store, with `offer` if it still fits this node (another
  // cluster CA or data_plane_tls setting makes another torrent), else with a new one.
  void ServeLocal(store::StoredRelease release, std::optional<v1::Offer> offer);

 private:
  // A release this node serves or fetches.
  struct Known {
    v1::Offer offer;                // handed to members that ask
    store::StoredRelease release;
    transport::TorrentLayout layout;
    OfferSource source;
    bool complete = false;
    std::string error;
    bool checking = false;     // a completion check is under way
    bool check_again = false;  // a blob arrived meanwhile
  };
  // What the worker found out about an Offer before it is admitted.
  struct Checked {
    Status status;                           // refused for what it is when not ok
    std::optional<LoadedBundle> verified;
    transport::TorrentLayout layout;
    std::vector<HeldRelease> held;           // the store's complete releases
    Status store_status;                     // reading them failed (this node's fault, not the Offer's)
  };

  // Verifies and admits `offer` from `source`, then serves and fetches it. `done` (may be empty)
  // gets: OK (taken, or known already); kBadSignature/kCorrupt/kConflict/kInvalidArgument when the
  // Offer is refused for what it is (logged); others (kIo, kNoSpace) when this node could not take
  // it now.
  void Accept(v1::Offer offer, OfferSource source, std::function<void(const Status&)> done);
  // ServeLocal and resumed fetches: `release` is being set up from this node's own store or
  // files; members are not asked for it meanwhile.
  void SettingUp(const ReleaseDigest& release);
  void SetUp(const ReleaseDigest& release);
  void Admitted(Checked checked, v1::Offer offer, OfferSource source, std::function<void(const Status&)> done);
  // Has the worker check whether every blob of `release` is in the store; writes its release record.
  void CheckComplete(const ReleaseDigest& release);
  void PeerRound();
  bool Asking(const ReleaseDigest& release) const;
  bool Refused(const std::string& node, const ReleaseDigest& release) const;
  const std::vector<transport::TransferState>& Transfers();

  boost::asio::io_context& loop_;
  BlockingWork& work_;
  store::BlobStore& store_;
  const std::vector<TrustedKey>& trusted_;
  OfferFiles& offers_;
  transport::DataPlane& data_;
  std::function<void(std::optional<v1::StoreSummary>)> store_changed_;
  std::shared_ptr<spdlog::logger> log_;
  transport::ControlServer* control_ = nullptr;
  boost::asio::steady_timer peer_timer_;
  bool stopping_ = false;
  bool started_ = false;  // what the store holds and the kept Offers are being set up

  std::map<ReleaseDigest, Known> known_;
  std::map<ReleaseDigest, ReleaseId> accepting_;         // admitted, being set up on the worker
  std::map<ReleaseDigest, int> setting_up_;              // from this node's store or kept Offers
  std::map<ReleaseDigest, Error> failed_while_accepting_;
  std::map<ReleaseDigest, std::chrono::steady_clock::time_point> asking_;  // OfferRequests under way
  std::set<std::pair<NodeName, ReleaseDigest>> refused_;  // Offers refused (logged once; not asked again)
  std::vector<transport::TransferState> transfers_;
  std::chrono::steady_clock::time_point transfers_at_{};
  static constexpr size_t kMaxOffersPerDial = 16;
};

}  // namespace gapsync::agent
