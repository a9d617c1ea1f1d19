#include "transport/piece_dealer.h"

#include <libtorrent/peer_connection_handle.hpp>
#include <libtorrent/peer_info.hpp>
#include <libtorrent/peer_request.hpp>

#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <tuple>

namespace gapsync::transport {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kMsgHave = 4;
// A receiver is dealt about this long of what this node sends it, and never fewer than kMinWindow
// pieces (measured at 16 receivers: 1.5 s left the seed idle longer at the end, docs/benchmarks.md).
constexpr double kWindowSeconds = 1.0;
constexpr size_t kMinWindow = 4;
// A dealt piece asked for this long ago and still not held may be dealt to another receiver.
constexpr auto kStale = std::chrono::seconds(10);
// A receiver that has not announced any piece dealt to it for this long does not count in the
// average share.
constexpr auto kStalled = std::chrono::seconds(3);

class Dealer;

// One connection, as the dealer sees it. Receiving side: ignores HAVE_ALL. Seeding side: knows
// what it showed the peer and what the peer announced.
class DealtPeer final : public lt::peer_plugin {
 public:
  DealtPeer(lt::peer_connection_handle pc, std::weak_ptr<Dealer> dealer, size_t pieces, uint64_t id)
      : pc_(std::move(pc)), dealer_(std::move(dealer)), shown_(pieces, false), has_(pieces, false), id_(id) {}

  lt::string_view type() const override { return "gapsync-piece-dealer"; }

  // A gapsync seed's HAVE_ALL means nothing: it announces what it deals this node with HAVEs.
  // (Remembered: a complete peer is not dealt to.)
  bool on_have_all() override {
    complete_ = true;
    return true;
  }

  void sent_have_all() override;
  void sent_piece(lt::peer_request const& r) override;
  bool on_have(lt::piece_index_t) override;
  bool on_request(lt::peer_request const& r) override;

  bool alive() const { return pc_.native_handle() != nullptr && !pc_.is_disconnecting(); }
  bool has(size_t i) const { return has_[i] || pc_.has_piece(lt::piece_index_t{static_cast<int>(i)}); }

  // Announces `pieces` (those not shown yet) with one HAVE each, in one write.
  void Show(const std::vector<uint32_t>& pieces) {
    std::string msg;
    for (uint32_t p : pieces) {
      if (p >= shown_.size() || shown_[p]) continue;
      shown_[p] = true;
      const char m[9] = {0, 0, 0, 5, kMsgHave, static_cast<char>(p >> 24), static_cast<char>(p >> 16),
                         static_cast<char>(p >> 8), static_cast<char>(p)};
      msg.append(m, sizeof m);
    }
    if (!msg.empty()) pc_.send_buffer(msg.data(), static_cast<int>(msg.size()));
  }

  lt::peer_connection_handle pc_;
  std::weak_ptr<Dealer> dealer_;
  bool dealt_ = false;               // this node sent it HAVE_ALL: it sees only what is shown
  bool complete_ = false;            // it sent HAVE_ALL: it holds everything
  std::vector<bool> shown_;
  std::vector<bool> has_;            // HAVEs it sent (libtorrent records them after on_have)
  std::map<int, int> bytes_sent_;    // per piece being sent to it
  const uint64_t id_;
  size_t window_ = kMinWindow;
  size_t dealt_total_ = 0;           // fresh pieces dealt to it so far
  Clock::time_point progress_ = Clock::now();  // when it last announced a piece dealt to it
};

class Dealer final : public lt::torrent_plugin, public std::enable_shared_from_this<Dealer> {
 public:
  Dealer(std::vector<int> piece_lengths, std::function<void()> on_everything_out)
      : on_everything_out_(std::move(on_everything_out)),
        piece_lengths_(std::move(piece_lengths)),
        sent_whole_(piece_lengths_.size(), false),
        dealt_to_(piece_lengths_.size(), 0),
        requested_(piece_lengths_.size()) {}

  std::shared_ptr<lt::peer_plugin> new_connection(lt::peer_connection_handle const& pc) override {
    if (pc.type() != lt::connection_type::bittorrent) return nullptr;
    auto p = std::make_shared<DealtPeer>(pc, weak_from_this(), piece_lengths_.size(), ++next_id_);
    peers_.push_back(p);
    return p;
  }

  // Once a second: windows follow the rate this node sends to each peer.
  void tick() override {
    const int piece = piece_lengths_.empty() ? 1 : std::max(1, piece_lengths_[0]);
    for (auto& w : peers_) {
      auto p = w.lock();
      if (!p || !p->alive()) continue;
      lt::peer_info info;
      p->pc_.get_peer_info(info);
      p->window_ = std::max(kMinWindow, static_cast<size_t>(kWindowSeconds * info.up_speed / piece));
    }
    Deal();
  }

  void Requested(DealtPeer& peer, lt::peer_request const& r) {
    const auto i = static_cast<size_t>(static_cast<int>(r.piece));
    if (i < requested_.size() && dealt_to_[i] == peer.id_ && requested_[i].first != peer.id_) {
      requested_[i] = {peer.id_, Clock::now()};
    }
  }

  // `peer` announced piece `i`: when it was dealt to it, its window has room again.
  void Held(DealtPeer& peer, size_t i) {
    if (everything_out_ || i >= dealt_to_.size() || dealt_to_[i] != peer.id_) return;
    peer.progress_ = Clock::now();
    Deal();
  }

  void SentPiece(DealtPeer& peer, lt::peer_request const& r) {
    const int piece = static_cast<int>(r.piece);
    if (piece < 0 || static_cast<size_t>(piece) >= piece_lengths_.size()) return;
    int& sent = peer.bytes_sent_[piece];
    sent += r.length;
    if (sent >= piece_lengths_[static_cast<size_t>(piece)]) {
      sent_whole_[static_cast<size_t>(piece)] = true;
      peer.bytes_sent_.erase(piece);
    }
  }

  void Deal();

 private:
  std::function<void()> on_everything_out_;
  std::vector<int> piece_lengths_;
  std::vector<bool> sent_whole_;       // the piece has left this node whole at least once
  std::vector<uint64_t> dealt_to_;     // per piece: the connection (id) it was dealt to, 0: none
  std::vector<std::pair<uint64_t, Clock::time_point>> requested_;  // per piece: its dealee asked, when
  bool everything_out_ = false;        // latched: every piece sent whole or held by a receiver
  std::vector<std::weak_ptr<DealtPeer>> peers_;
  uint64_t next_id_ = 0;
};

void Dealer::Deal() {
  std::vector<std::shared_ptr<DealtPeer>> live;
  for (auto it = peers_.begin(); it != peers_.end();) {
    auto p = it->lock();
    if (!p || !p->alive()) {
      it = peers_.erase(it);
      continue;
    }
    live.push_back(std::move(p));
    ++it;
  }
  const size_t n = piece_lengths_.size();
  if (everything_out_) {
    std::vector<uint32_t> all(n);
    for (size_t i = 0; i < n; ++i) all[i] = static_cast<uint32_t>(i);
    for (auto& p : live) {
      if (p->dealt_) p->Show(all);
    }
    return;
  }
  std::vector<std::shared_ptr<DealtPeer>> receivers;
  for (auto& p : live) {
    if (!p->complete_ && !p->pc_.is_seed()) receivers.push_back(p);
  }
  std::vector<bool> out(sent_whole_);
  for (size_t i = 0; i < n; ++i) {
    if (!out[i]) out[i] = std::any_of(receivers.begin(), receivers.end(), [&](const auto& p) { return p->has(i); });
  }
  if (std::all_of(out.begin(), out.end(), [](bool b) { return b; })) {
    everything_out_ = true;
    if (on_everything_out_) on_everything_out_();
    Deal();
    return;
  }
  std::vector<uint64_t> alive;
  for (auto& p : receivers) alive.push_back(p->id_);
  std::sort(alive.begin(), alive.end());
  auto is_alive = [&](uint64_t id) { return id != 0 && std::binary_search(alive.begin(), alive.end(), id); };
  size_t fresh = 0;
  auto next_fresh = [&]() -> size_t {
    for (; fresh < n; ++fresh) {
      if (!out[fresh] && !is_alive(dealt_to_[fresh])) return fresh++;
    }
    return n;
  };
  const auto now = Clock::now();
  size_t stale = 0;
  auto next_to_take_over = [&](uint64_t taker) -> size_t {
    for (; stale < n; ++stale) {
      if (out[stale] || dealt_to_[stale] == taker) continue;
      const auto& [who, when] = requested_[stale];
      if (who != dealt_to_[stale] || now - when >= kStale) return stale++;
    }
    return n;
  };
  // Every fresh piece must then go from its receiver to all the others: a receiver dealt more than
  // its share would need more uplink than it has (and its downloads slow down as its uplink fills).
  // So no receiver is dealt more than the average plus its window; the ones dealt least go first.
  // (The average of the receivers that are getting their pieces: one cut off or frozen, whose
  // dealt pieces do not arrive, must not hold the others back.)
  std::vector<std::tuple<size_t, size_t, DealtPeer*>> order;  // dealt so far, owed, peer
  size_t dealt_sum = 0, counted = 0;
  for (auto& p : receivers) {
    if (!p->dealt_) continue;
    size_t owed = 0;
    for (size_t i = 0; i < n; ++i) owed += dealt_to_[i] == p->id_ && !out[i];
    order.emplace_back(p->dealt_total_, owed, p.get());
    if (owed == 0 || now - p->progress_ < kStalled) {
      dealt_sum += p->dealt_total_;
      ++counted;
    }
  }
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return std::get<0>(a) < std::get<0>(b); });
  const size_t average = counted == 0 ? 0 : dealt_sum / counted;
  for (auto& [total, owed, p] : order) {
    std::vector<uint32_t> show;
    while (owed < p->window_) {
      if (p->dealt_total_ >= average + p->window_) break;  // ahead of the others: they go first
      size_t i = next_fresh();
      if (i >= n && owed == 0) i = next_to_take_over(p->id_);  // nothing fresh is left
      if (i >= n) break;
      dealt_to_[i] = p->id_;
      show.push_back(static_cast<uint32_t>(i));
      ++owed;
      ++p->dealt_total_;
    }
    p->Show(show);
  }
}

void DealtPeer::sent_have_all() {
  dealt_ = true;
  if (auto d = dealer_.lock()) d->Deal();
}

void DealtPeer::sent_piece(lt::peer_request const& r) {
  if (auto d = dealer_.lock()) d->SentPiece(*this, r);
}

bool DealtPeer::on_request(lt::peer_request const& r) {
  if (auto d = dealer_.lock()) d->Requested(*this, r);
  return false;
}

bool DealtPeer::on_have(lt::piece_index_t piece) {
  const auto i = static_cast<size_t>(static_cast<int>(piece));
  if (i < has_.size()) has_[i] = true;
  if (auto d = dealer_.lock()) d->Held(*this, i);
  return false;
}

}  // namespace

std::shared_ptr<lt::torrent_plugin> MakePieceDealer(std::vector<int> piece_lengths, std::function<void()> on_everything_out) {
  return std::make_shared<Dealer>(std::move(piece_lengths), std::move(on_everything_out));
}

}  // namespace gapsync::transport
