#include "agent/node/spread.h"

#include <spdlog/spdlog.h>

#include <ctime>

#include "agent/catalog/release_record.h"
#include "agent/catalog/store_summary.h"
#include "agent/node/offer_check.h"

namespace asio = boost::asio;

namespace gapsync::agent {

Spread::Spread(asio::io_context& loop, BlockingWork& work, store::BlobStore& store, const std::vector<TrustedKey>& trusted,
               OfferFiles& offers, transport::DataPlane& data,
               std::function<void(std::optional<v1::StoreSummary>)> store_changed, std::shared_ptr<spdlog::logger> log)
    : loop_(loop),
      work_(work),
      store_(store),
      trusted_(trusted),
      offers_(offers),
      data_(data),
      store_changed_(std::move(store_changed)),
      log_(std::move(log)),
      peer_timer_(loop) {}

void Spread::SetControl(transport::ControlServer* control) {
  control_ = control;
  if (control_) PeerRound();
}

void Spread::Start() {
  // The worker reads what the store holds and what Offers are kept; the loop then serves every
  // complete release and resumes every fetch.
  struct Found {
    std::vector<std::pair<store::StoredRelease, std::optional<v1::Offer>>> complete;
    std::vector<KeptOffer> fetching;
    std::vector<std::string> problems;
  };
  work_.Run(
      [this]() -> Result<Found> {
        GS_ASSIGN_OR_RETURN(auto releases, store_.ListReleases());
        Found f;
        std::set<ReleaseDigest> complete;
        for (auto& rel : releases) {
          complete.insert(rel.release_digest);
          auto kept = offers_.Load(rel.release_digest);
          if (!kept.ok()) f.problems.push_back(kept.error().message + "; ignored");
          std::optional<v1::Offer> offer;
          if (kept.ok() && kept.value()) offer = kept.value()->offer;
          f.complete.emplace_back(std::move(rel), std::move(offer));
        }
        for (const auto& digest : offers_.List()) {
          if (complete.count(digest)) continue;
          auto kept = offers_.Load(digest);
          if (!kept.ok()) {
            f.problems.push_back(kept.error().message + "; ignored");
          } else if (kept.value()) {
            f.fetching.push_back(std::move(*kept.value()));
          }
        }
        return f;
      },
      [this](Result<Found> found) {
        // Until now members were not asked for anything: what they announce may be held here.
        started_ = true;
        if (!found.ok()) {
          log_->error("cannot serve this node's releases: {}", found.error().message);
          return;
        }
        for (const auto& p : found->problems) log_->warn("{}", p);
        for (auto& [rel, offer] : found->complete) ServeLocal(std::move(rel), std::move(offer));
        for (auto& kept : found->fetching) {
          auto digest = ReleaseDigest::Parse("sha256:" + kept.digest_hex);
          if (digest.ok()) SettingUp(digest.value());
          Accept(std::move(kept.offer), kept.source, [this, digest](const Status&) {
            if (digest.ok()) SetUp(digest.value());
          });
        }
      });
}

void Spread::SettingUp(const ReleaseDigest& release) { setting_up_[release]++; }

void Spread::SetUp(const ReleaseDigest& release) {
  auto it = setting_up_.find(release);
  if (it != setting_up_.end() && --it->second == 0) setting_up_.erase(it);
}

void Spread::Stop() {
  stopping_ = true;
  peer_timer_.cancel();
}

// ---- Offers ----

Result<v1::Offer> Spread::MakeOffer(const store::StoredRelease& rel) {
  v1::BundleManifest m;
  if (!m.ParseFromString(rel.manifest)) return MakeError(Errc::kCorrupt, "stored manifest does not parse");
  auto layout = LayoutOfManifest(m, store_.chunk_size());
  v1::Offer offer;
  offer.set_manifest(rel.manifest);
  offer.set_signature(rel.signature);
  if (layout.num_pieces > 0) {
    GS_ASSIGN_OR_RETURN(auto info, transport::BuildTorrentInfo(store_, layout, data_.tls_root_pem(), rel.release_digest));
    offer.set_torrent_info(info);
  }
  GS_RETURN_IF_ERROR(offers_.Keep(rel.release_digest, offer, OfferSource::ThisStore()));
  return offer;
}

void Spread::ServeLocal(store::StoredRelease rel, std::optional<v1::Offer> offer) {
  if (stopping_) return;
  SettingUp(rel.release_digest);
  auto build = [this, rel]() {
    work_.Run(
        [this, rel]() {
          offers_.Remove(rel.release_digest);  // a kept one that does not fit, if any
          return MakeOffer(rel);
        },
        [this, rel](Result<v1::Offer> built) {
          if (!built.ok()) {
            log_->error("release {}: cannot serve it: {}", rel.id.str(), built.error().message);
            SetUp(rel.release_digest);
            return;
          }
          Accept(std::move(built).value(), OfferSource::ThisStore(), [this, rel](const Status& st) {
            if (!st.ok()) log_->error("release {}: cannot serve it: {}", rel.id.str(), st.error().message);
            SetUp(rel.release_digest);
          });
        });
  };
  if (!offer) return build();
  Accept(std::move(*offer), OfferSource::ThisStore(), [this, build, digest = rel.release_digest](const Status& st) {
    if (st.ok()) return SetUp(digest);
    build();
  });
}

void Spread::Accept(v1::Offer offer, OfferSource source, std::function<void(const Status&)> done) {
  if (stopping_) return;
  // (Made before the continuation, which takes `offer` over: the two are arguments of one call.)
  auto check = [this, offer, local = source.local]() {
        Checked c;
        auto checked = CheckOffer(offer, trusted_, store_.chunk_size(), data_.tls_root_pem());
        c.status = checked.status;
        c.layout = std::move(checked.layout);
        if (!checked.verified) return c;
        if (!local) {
          auto held = HeldReleases(store_);
          if (held.ok()) {
            c.held = std::move(held).value();
          } else {
            c.store_status = held.error();
          }
        }
        c.verified = std::move(checked.verified);
        return c;
      };
  work_.Run(std::move(check), [this, offer = std::move(offer), source = std::move(source), done = std::move(done)](Checked c) mutable {
    Admitted(std::move(c), std::move(offer), std::move(source), std::move(done));
  });
}

void Spread::Admitted(Checked c, v1::Offer offer, OfferSource source, std::function<void(const Status&)> done) {
  auto finish = [&done](const Status& st) {
    if (done) done(st);
  };
  v1::BundleManifest parsed;
  const std::string what = c.verified ? c.verified->manifest.release().app() + "@" + c.verified->manifest.release().version()
                           : parsed.ParseFromString(offer.manifest()) ? parsed.release().app() + "@" + parsed.release().version()
                                                                      : "(unparseable)";
  auto refuse = [&](const Error& e) {
    log_->warn("release announcement {} from {} refused: {}", what, source.str(), e.message);
    finish(e);
  };
  if (stopping_) return;
  if (!c.verified) return refuse(c.status.error());
  const LoadedBundle& v = *c.verified;
  const ReleaseDigest digest = v.release_digest;
  if (known_.count(digest) || accepting_.count(digest)) return finish(OkStatus());
  if (!c.status.ok()) {
    if (source.local) return finish(c.status);  // another torrent than this node builds: made anew
    if (c.status.error().code == Errc::kCorrupt) return refuse(c.status.error());
    log_->error("release {} from {}: {}", what, source.str(), c.status.error().message);
    return finish(c.status);
  }
  if (!c.store_status.ok()) {  // this node's store, not the Offer: asked again later
    log_->error("release {} from {}: {}", what, source.str(), c.store_status.error().message);
    return finish(MakeError(Errc::kIo, c.store_status.error().message));
  }
  if (!source.local) {
    // Releases this node fetches count as held: two contents of one app@version never both come.
    for (const auto& [d, k] : known_) c.held.push_back({k.release.id, d});
    for (const auto& [d, id] : accepting_) c.held.push_back({id, d});
    const ReleaseId id{v.manifest.release().app(), v.manifest.release().version()};
    const Admission a = Admit({id, digest, ReleaseSource::kPeer, false}, c.held);
    if (a.verdict == Admission::Verdict::kConflict) {
      return refuse(MakeError(Errc::kConflict, "this node holds another release with that name and version (" +
                                                   a.against.digest.str() + ")"));
    }
    // Complete in this node's store already (the torrent was checked against it): served, not fetched.
    if (a.verdict == Admission::Verdict::kHeld) source = OfferSource::ThisStore();
  }
  Known k;
  k.offer = offer;
  k.source = source;
  k.release = StoredReleaseOf(v);
  k.layout = c.layout;
  std::vector<BlobDigest> empty;  // empty blobs never travel: complete as soon as they are named
  for (const auto& b : v.manifest.release().blobs()) {
    if (b.size() == 0) empty.push_back(BlobDigest::Parse(b.digest()).value());
  }
  accepting_.emplace(digest, k.release.id);
  // The worker keeps the Offer and the pending record, settles empty blobs and starts the torrent.
  work_.Run(
      [this, k, empty, signer = v.signer]() -> std::pair<Status, std::string> {
        const std::string key = k.release.id.str();
        if (!k.source.local) {
          auto st = offers_.Keep(k.release.release_digest, k.offer, k.source);
          if (st.ok()) st = store_.KeepPending(k.release);
          if (!st.ok()) return {st, ""};
          log_->info("release {} announced by {} (signed by {}): fetching {} blobs, {} bytes", key, k.source.str(), signer,
                     k.layout.blobs.size(), k.layout.total_bytes);
        }
        for (const auto& d : empty) (void)store_.CompletePieces(d);
        (void)store_.Sync();
        if (k.source.local) log_->info("serving release {} ({} blobs, {} bytes)", key, k.layout.blobs.size(), k.layout.total_bytes);
        if (k.layout.num_pieces == 0) return {OkStatus(), ""};
        auto added = data_.Add(k.release.release_digest, key, k.layout, k.offer.torrent_info());
        return {OkStatus(), added.ok() ? "" : added.error().message};
      },
      [this, k, done = std::move(done)](std::pair<Status, std::string> r) mutable {
        const ReleaseDigest release = k.release.release_digest;
        const std::string key = k.release.id.str();
        accepting_.erase(release);
        if (!r.first.ok()) {
          log_->error("release {} from {}: {}", key, k.source.str(), r.first.error().message);
          if (done) done(r.first);
          return;
        }
        if (k.source.local && control_) control_->DialAllNow();  // tell every member now, not at the next round
        if (!r.second.empty()) {
          k.error = r.second;
          log_->error("release {}: {}", key, r.second);
        }
        known_[release] = std::move(k);
        if (auto f = failed_while_accepting_.find(release); f != failed_while_accepting_.end()) {
          const Error why = f->second;
          failed_while_accepting_.erase(f);
          Failed(release, why);
        } else {
          CheckComplete(release);
        }
        if (done) done(OkStatus());
      });
}

// ---- what the data plane reports ----

// A blob may be shared by several releases: each one still fetching may be complete now.
void Spread::BlobDone(const ReleaseDigest&) {
  for (const auto& [digest, k] : known_) {
    if (!k.complete) CheckComplete(digest);
  }
  if (store_changed_) store_changed_(std::nullopt);
}

void Spread::Failed(const ReleaseDigest& release, const Error& why) {
  if (accepting_.count(release)) {
    failed_while_accepting_.emplace(release, why);
    return;
  }
  auto it = known_.find(release);
  if (it == known_.end()) return;
  it->second.error = why.message;
  if (why.code != Errc::kCorrupt || it->second.source.local) return;
  // The torrent the member offered does not match the signed blobs: it goes, that member's Offer
  // of this release is not taken again, and the next member that announces it is asked.
  log_->warn("release {}: the torrent {} offered does not match the signed blobs; asking another member",
             it->second.release.id.str(), it->second.source.str());
  if (it->second.source.member) refused_.insert({*it->second.source.member, release});
  data_.Remove(release);
  known_.erase(it);
  work_.Run([this, release] { offers_.Remove(release); });
}

void Spread::CheckComplete(const ReleaseDigest& release) {
  auto it = known_.find(release);
  if (it == known_.end() || it->second.complete) return;
  Known& k = it->second;
  if (k.checking) {
    k.check_again = true;
    return;
  }
  k.checking = true;
  struct Outcome {
    bool complete = false;
    bool written = false;  // this check wrote the release record
    Status status;
    std::optional<v1::StoreSummary> summary;  // taken right after the record was written
  };
  work_.Run(
      [this, rel = k.release]() {
        Outcome o;
        for (const auto& d : rel.blobs) {
          auto st = store_.Stat(d);
          if (!st.ok() || !st.value()) return o;
        }
        o.complete = true;
        auto existing = store_.GetRelease(rel.id);
        if (!(existing.ok() && existing.value())) {
          o.status = store_.PutRelease(rel);
          o.written = o.status.ok();
        }
        if (o.written) {
          if (auto summary = SummarizeStore(store_); summary.ok()) o.summary = std::move(summary).value();
        }
        return o;
      },
      [this, release](Outcome o) {
        auto it2 = known_.find(release);
        if (it2 == known_.end()) return;
        Known& k2 = it2->second;
        k2.checking = false;
        const std::string key = k2.release.id.str();
        if (o.complete && !o.status.ok()) {
          k2.error = o.status.error().message;
          log_->error("release {}: {}", key, k2.error);
        } else if (o.complete) {
          k2.complete = true;
          k2.error.clear();
          if (o.written) {
            log_->info("release {} complete: every blob verified ({} bytes)", key, k2.layout.total_bytes);
            if (store_changed_) store_changed_(std::move(o.summary));
          }
          return;
        }
        if (k2.check_again) {
          k2.check_again = false;
          CheckComplete(release);
        }
      });
}

// ---- the control plane ----

const std::vector<transport::TransferState>& Spread::Transfers() {
  auto now = std::chrono::steady_clock::now();
  if (now - transfers_at_ > std::chrono::milliseconds(500)) {
    transfers_ = data_.Transfers();
    transfers_at_ = now;
  }
  return transfers_;
}

std::vector<v1::ReleaseState> Spread::LocalReleases() {
  std::vector<v1::ReleaseState> out;
  const auto& transfers = Transfers();
  for (const auto& [digest, k] : known_) {
    v1::ReleaseState r;
    r.set_app(k.release.id.app);
    r.set_version(k.release.id.version);
    r.set_release_digest(digest.str());
    r.set_complete(k.complete);
    r.set_bytes_total(k.layout.total_bytes);
    r.set_bytes_have(k.complete ? k.layout.total_bytes : 0);
    r.set_offered(true);
    r.set_error(k.error);
    for (const auto& t : transfers) {
      if (t.release != digest) continue;
      if (!k.complete) r.set_bytes_have(t.bytes_have);
      r.set_download_rate(t.download_rate);
      r.set_upload_rate(t.upload_rate);
      r.set_uploaded(t.uploaded);
      r.set_info_hash(t.info_hash);
      if (r.error().empty()) r.set_error(t.error);
    }
    out.push_back(std::move(r));
  }
  return out;
}

// An OfferRequest under way (one that got no answer within a minute is forgotten: its dial
// ended without one).
bool Spread::Asking(const ReleaseDigest& release) const {
  auto it = asking_.find(release);
  return it != asking_.end() && std::chrono::steady_clock::now() - it->second < std::chrono::minutes(1);
}

bool Spread::Refused(const std::string& node, const ReleaseDigest& release) const {
  auto name = NodeName::Parse(node);
  return name.ok() && refused_.count({name.value(), release}) > 0;
}

transport::ControlHooks Spread::Hooks() {
  transport::ControlHooks h;
  h.releases = [this] { return LocalReleases(); };
  // What this node does not know yet, from a member it may ask.
  auto wanted = [this](const std::string& node, const v1::ReleaseState& r) -> std::optional<ReleaseDigest> {
    auto d = ReleaseDigest::Parse(r.release_digest());
    if (!started_ || !r.offered() || !d.ok() || known_.count(d.value()) || accepting_.count(d.value()) ||
        setting_up_.count(d.value()) || Asking(d.value()) || Refused(node, d.value())) {
      return std::nullopt;
    }
    return d.value();
  };
  h.wants = [this, wanted](const std::string& node, const v1::Hello& hello) {
    std::vector<v1::OfferRequest> out;
    for (const auto& r : hello.releases()) {
      if (out.size() >= kMaxOffersPerDial) break;
      auto d = wanted(node, r);
      if (!d) continue;
      v1::OfferRequest q;
      q.set_app(r.app());
      q.set_version(r.version());
      q.set_release_digest(r.release_digest());
      asking_[*d] = std::chrono::steady_clock::now();
      out.push_back(std::move(q));
    }
    return out;
  };
  h.news = [wanted](const v1::Hello& hello) {
    for (const auto& r : hello.releases()) {
      if (wanted(hello.self().node(), r)) return true;
    }
    return false;
  };
  h.offer = [this](const std::string&, const v1::OfferRequest& q) {
    auto d = ReleaseDigest::Parse(q.release_digest());
    if (d.ok()) {
      if (auto it = known_.find(d.value()); it != known_.end()) return it->second.offer;
    }
    v1::Offer none;
    none.set_error("this node does not hold release " + q.release_digest().substr(0, 80));
    return none;
  };
  h.offered = [this](const std::string& node, const v1::OfferRequest& q, const v1::Offer& offer) {
    // A refused announcement is not asked for again from the same member (the trust list only
    // changes with a restart); it is logged once.
    auto d = ReleaseDigest::Parse(q.release_digest());
    if (d.ok()) asking_.erase(d.value());
    auto name = NodeName::Parse(node);
    if (!offer.error().empty() || !d.ok() || !name.ok() || refused_.count({name.value(), d.value()})) return;
    Accept(offer, OfferSource::Member(name.value()), [this, member = name.value(), digest = d.value()](const Status& st) {
      if (!st.ok() && (st.error().code == Errc::kBadSignature || st.error().code == Errc::kCorrupt ||
                       st.error().code == Errc::kConflict || st.error().code == Errc::kInvalidArgument)) {
        refused_.insert({member, digest});  // refused for what it is; a failure of this node's own (disk) is retried
      }
    });
  };
  return h;
}

// Every 2 s: the data-plane addresses of the members become every release's peers.
void Spread::PeerRound() {
  if (stopping_ || !control_) return;
  std::vector<std::string> peers;
  for (const auto& m : control_->members()) {
    if (!m.self && !m.member.data_address().empty()) peers.push_back(m.member.data_address());
  }
  data_.SetPeers(peers);
  peer_timer_.expires_after(std::chrono::seconds(2));
  peer_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) PeerRound();
  });
}

}  // namespace gapsync::agent
