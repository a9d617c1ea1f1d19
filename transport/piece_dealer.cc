#include "transport/piece_dealer.h"

#include <libtorrent/bitfield.hpp>
#include <libtorrent/error_code.hpp>
#include <libtorrent/peer_connection_handle.hpp>
#include <libtorrent/peer_info.hpp>
#include <libtorrent/peer_request.hpp>

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <random>
#include <set>
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
// what it showed the peer and what the peer holds.
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
  bool on_bitfield(lt::bitfield const& bits) override;
  bool on_have(lt::piece_index_t) override;
  bool on_request(lt::peer_request const& r) override;
  bool on_piece(lt::peer_request const& r, lt::span<char const>) override;
  void sent_have_all() override;
  void sent_piece(lt::peer_request const& r) override;
  void on_disconnect(lt::error_code const&) override;

  bool alive() const { return !gone_ && pc_.native_handle() != nullptr && !pc_.is_disconnecting(); }

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
  bool gone_ = false;                // the dealer has let go of it
  bool counted_ = false;             // dealt_total_ started from the others' average
  std::vector<bool> shown_;
  std::vector<bool> has_;            // from its bitfield and HAVEs
  std::deque<uint32_t> dealt_list_;  // pieces dealt to it that were not out yet when dealt
  std::map<int, int> bytes_sent_;    // per piece being sent to it
  std::set<int> delivered_;          // receiving: pieces it sent blocks of that had not passed then
  const uint64_t id_;
  size_t window_ = kMinWindow;
  size_t dealt_total_ = 0;           // fresh pieces dealt to it so far
  Clock::time_point progress_ = Clock::now();  // when it last announced a piece dealt to it
};

class Dealer final : public lt::torrent_plugin, public std::enable_shared_from_this<Dealer> {
 public:
  Dealer(lt::torrent_handle handle, std::vector<int> piece_lengths, std::vector<int> piece_sizes,
         std::function<void()> on_everything_out)
      : handle_(std::move(handle)),
        on_everything_out_(std::move(on_everything_out)),
        piece_lengths_(std::move(piece_lengths)),
        piece_sizes_(std::move(piece_sizes)),
        n_(piece_lengths_.size()),
        sent_whole_(n_, false),
        holders_(n_, 0),
        not_out_(n_),
        dealt_to_(n_, 0),
        requested_(n_),
        passed_(n_, false) {
    // Two seeds deal from different places, so that they seldom both send the same piece.
    std::random_device random;
    if (n_ > 0) offset_ = std::uniform_int_distribution<size_t>(0, n_ - 1)(random);
  }

  std::shared_ptr<lt::peer_plugin> new_connection(lt::peer_connection_handle const& pc) override {
    if (pc.type() != lt::connection_type::bittorrent) return nullptr;
    auto p = std::make_shared<DealtPeer>(pc, weak_from_this(), n_, ++next_id_);
    peers_.push_back(p);
    live_.insert(p->id_);
    return p;
  }

  // Once a second: connections that closed are let go; windows follow the rate this node sends
  // to each peer.
  void tick() override {
    const int piece = piece_lengths_.empty() ? 1 : std::max(1, piece_lengths_[0]);
    for (auto it = peers_.begin(); it != peers_.end();) {
      auto p = it->lock();
      if (!p) {
        it = peers_.erase(it);
        continue;
      }
      if (!p->alive()) {
        Gone(*p);
      } else if (p->dealt_) {
        lt::peer_info info;
        p->pc_.get_peer_info(info);
        p->window_ = std::max(kMinWindow, static_cast<size_t>(kWindowSeconds * info.up_speed / piece));
      }
      ++it;
    }
    Deal();
  }

  void StartDealing(DealtPeer& peer) {
    peer.dealt_ = true;
    dealing_ = true;
    Deal();
  }

  // `peer` holds piece `i` (its bitfield or a HAVE).
  void Holds(DealtPeer& peer, size_t i) {
    if (i >= n_ || peer.has_[i]) return;
    peer.has_[i] = true;
    const bool was_out = out(i);
    ++holders_[i];
    if (!was_out) --not_out_;
    if (dealt_to_[i] == peer.id_) {
      peer.progress_ = Clock::now();
      if (dealing_ && !everything_out_) Deal();  // its window has room again
    }
  }

  void on_piece_pass(lt::piece_index_t piece) override {
    const int i = static_cast<int>(piece);
    if (i >= 0 && static_cast<size_t>(i) < n_) passed_[static_cast<size_t>(i)] = true;
  }

  // Receiving side: `peer` sent a block of `piece`.
  void Delivered(DealtPeer& peer, lt::piece_index_t piece) {
    const int i = static_cast<int>(piece);
    if (i >= 0 && static_cast<size_t>(i) < n_ && !passed_[static_cast<size_t>(i)]) peer.delivered_.insert(i);
  }

  // Receiving side: `peer` was banned; the pieces it sent blocks of and that have not passed are
  // overwritten with zeros, so that no other peer completes them and gets blamed (piece_dealer.h).
  void DiscardDeliveredBy(DealtPeer& peer) {
    for (int i : peer.delivered_) {
      const auto p = static_cast<size_t>(i);
      if (p >= n_ || passed_[p] || p >= piece_sizes_.size()) continue;
      handle_.add_piece(lt::piece_index_t{i}, std::vector<char>(static_cast<size_t>(piece_sizes_[p]), 0),
                        lt::torrent_handle::overwrite_existing);
    }
    peer.delivered_.clear();
  }

  void Requested(DealtPeer& peer, lt::peer_request const& r) {
    const auto i = static_cast<size_t>(static_cast<int>(r.piece));
    if (i < n_ && dealt_to_[i] == peer.id_ && requested_[i].first != peer.id_) requested_[i] = {peer.id_, Clock::now()};
  }

  void SentPiece(DealtPeer& peer, lt::peer_request const& r) {
    const int piece = static_cast<int>(r.piece);
    if (piece < 0 || static_cast<size_t>(piece) >= n_) return;
    const auto i = static_cast<size_t>(piece);
    int& sent = peer.bytes_sent_[piece];
    sent += r.length;
    if (sent < piece_lengths_[i]) return;
    peer.bytes_sent_.erase(piece);
    if (sent_whole_[i]) return;
    const bool was_out = out(i);
    sent_whole_[i] = true;
    if (!was_out) --not_out_;
  }

  // The connection closed: what it held no longer counts, what was dealt to it is fresh again.
  void Gone(DealtPeer& peer) {
    if (peer.gone_) return;
    peer.gone_ = true;
    live_.erase(peer.id_);
    for (size_t i = 0; i < n_; ++i) {
      if (!peer.has_[i]) continue;
      --holders_[i];
      if (!out(i)) {
        ++not_out_;
        if (!is_live(dealt_to_[i])) requeue_.push_back(static_cast<uint32_t>(i));
      }
    }
    for (uint32_t i : peer.dealt_list_) {
      if (dealt_to_[i] == peer.id_ && !out(i)) requeue_.push_back(i);
    }
    peer.dealt_list_.clear();
  }

  void Deal();

 private:
  bool out(size_t i) const { return sent_whole_[i] || holders_[i] > 0; }
  bool is_live(uint64_t id) const { return id != 0 && live_.count(id) > 0; }

  // Pieces dealt to `p` that it does not hold yet (and that were not taken over).
  size_t Owed(DealtPeer& p) {
    std::erase_if(p.dealt_list_, [&](uint32_t i) { return out(i) || dealt_to_[i] != p.id_; });
    return p.dealt_list_.size();
  }

  // The next piece no one holds, never sent whole and dealt to no live connection; n_ if none.
  size_t NextFresh() {
    while (!requeue_.empty()) {
      const size_t i = requeue_.back();
      requeue_.pop_back();
      if (!out(i) && !is_live(dealt_to_[i])) return i;
    }
    while (scanned_ < n_) {
      const size_t i = (offset_ + scanned_++) % n_;
      if (!out(i) && !is_live(dealt_to_[i])) return i;
    }
    return n_;
  }

  lt::torrent_handle handle_;
  std::function<void()> on_everything_out_;
  std::vector<int> piece_lengths_;       // bytes a peer asks for of each piece (pad blocks are not)
  std::vector<int> piece_sizes_;         // bytes of each piece with its padding
  const size_t n_;
  std::vector<bool> sent_whole_;         // the piece has left this node whole at least once
  std::vector<uint32_t> holders_;        // connected peers that announced it (not by HAVE_ALL)
  size_t not_out_;                       // pieces neither sent whole nor held
  std::vector<uint64_t> dealt_to_;       // per piece: the connection (id) it was dealt to, 0: none
  std::vector<std::pair<uint64_t, Clock::time_point>> requested_;  // per piece: its dealee asked, when
  std::vector<uint32_t> requeue_;        // pieces that became fresh again
  std::vector<bool> passed_;             // receiving side: pieces that passed their check here
  size_t offset_ = 0, scanned_ = 0;      // fresh pieces are dealt from piece offset_ on, wrapping
  bool dealing_ = false;                 // this node sent HAVE_ALL to some peer
  bool everything_out_ = false;          // latched: every piece sent whole or held
  std::vector<std::weak_ptr<DealtPeer>> peers_;
  std::set<uint64_t> live_;
  uint64_t next_id_ = 0;
};

void Dealer::Deal() {
  if (!dealing_) return;
  std::vector<std::shared_ptr<DealtPeer>> dealt;
  for (auto& w : peers_) {
    auto p = w.lock();
    if (p && p->alive() && p->dealt_) dealt.push_back(std::move(p));
  }
  if (!everything_out_ && not_out_ == 0) {
    everything_out_ = true;
    if (on_everything_out_) on_everything_out_();
  }
  if (everything_out_) {
    std::vector<uint32_t> all(n_);
    for (size_t i = 0; i < n_; ++i) all[i] = static_cast<uint32_t>(i);
    for (auto& p : dealt) p->Show(all);
    return;
  }
  const auto now = Clock::now();
  // Every fresh piece must then go from its receiver to all the others: a receiver dealt more than
  // its share would need more uplink than it has (and its downloads slow down as its uplink fills).
  // So no receiver is dealt more than the average plus its window; the ones dealt least go first.
  // (The average of the receivers that are getting their pieces: one cut off or frozen, whose
  // dealt pieces do not arrive, must not hold the others back. A receiver that connects later
  // starts from that average, so that it is not dealt everything while it catches up.)
  std::vector<std::tuple<size_t, size_t, DealtPeer*>> order;  // dealt so far, owed, peer
  size_t dealt_sum = 0, counted = 0;
  std::vector<DealtPeer*> newcomers;
  for (auto& p : dealt) {
    if (p->complete_ || p->pc_.is_seed()) continue;
    const size_t owed = Owed(*p);
    if (!p->counted_) {
      newcomers.push_back(p.get());
    } else if (owed == 0 || now - p->progress_ < kStalled) {
      dealt_sum += p->dealt_total_;
      ++counted;
    }
    order.emplace_back(0, owed, p.get());
  }
  const size_t average = counted == 0 ? 0 : dealt_sum / counted;
  for (auto* p : newcomers) {
    p->dealt_total_ = average;
    p->counted_ = true;
  }
  for (auto& [total, owed, p] : order) total = p->dealt_total_;
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return std::get<0>(a) < std::get<0>(b); });
  size_t stale = 0;
  auto next_to_take_over = [&](uint64_t taker) -> size_t {
    for (; stale < n_; ++stale) {
      if (out(stale) || dealt_to_[stale] == taker || !is_live(dealt_to_[stale])) continue;
      const auto& [who, when] = requested_[stale];
      if (who != dealt_to_[stale] || now - when >= kStale) return stale++;
    }
    return n_;
  };
  for (auto& [total, owed, p] : order) {
    std::vector<uint32_t> show;
    while (owed < p->window_) {
      if (p->dealt_total_ >= average + p->window_) break;  // ahead of the others: they go first
      size_t i = NextFresh();
      if (i >= n_ && owed == 0) {
        // Nothing fresh is left: take over a piece its dealee has not asked for, or long ago.
        i = next_to_take_over(p->id_);
        if (i < n_) requested_[i] = {p->id_, now};  // counts as asked now: not taken again at once
      }
      if (i >= n_) break;
      dealt_to_[i] = p->id_;
      p->dealt_list_.push_back(static_cast<uint32_t>(i));
      show.push_back(static_cast<uint32_t>(i));
      ++owed;
      ++p->dealt_total_;
    }
    p->Show(show);
  }
}

bool DealtPeer::on_bitfield(lt::bitfield const& bits) {
  if (auto d = dealer_.lock()) {
    for (int i = 0; i < bits.size(); ++i) {
      if (bits.get_bit(i)) d->Holds(*this, static_cast<size_t>(i));
    }
  }
  return false;
}

bool DealtPeer::on_have(lt::piece_index_t piece) {
  if (auto d = dealer_.lock()) d->Holds(*this, static_cast<size_t>(static_cast<int>(piece)));
  return false;
}

bool DealtPeer::on_piece(lt::peer_request const& r, lt::span<char const>) {
  if (auto d = dealer_.lock()) d->Delivered(*this, r.piece);
  return false;
}

bool DealtPeer::on_request(lt::peer_request const& r) {
  if (auto d = dealer_.lock()) d->Requested(*this, r);
  return false;
}

void DealtPeer::sent_have_all() {
  if (auto d = dealer_.lock()) d->StartDealing(*this);
}

void DealtPeer::sent_piece(lt::peer_request const& r) {
  if (auto d = dealer_.lock()) d->SentPiece(*this, r);
}

void DealtPeer::on_disconnect(lt::error_code const& ec) {
  auto d = dealer_.lock();
  if (!d) return;
  if (ec == lt::errors::too_many_corrupt_pieces) d->DiscardDeliveredBy(*this);
  d->Gone(*this);
}

}  // namespace

std::shared_ptr<lt::torrent_plugin> MakePieceDealer(lt::torrent_handle handle, std::vector<int> piece_lengths,
                                                    std::vector<int> piece_sizes, std::function<void()> on_everything_out) {
  return std::make_shared<Dealer>(std::move(handle), std::move(piece_lengths), std::move(piece_sizes),
                                  std::move(on_everything_out));
}

}  // namespace gapsync::transport
