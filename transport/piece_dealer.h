// How a node holding a whole release (a seed) offers its pieces to the nodes fetching it.
//
// One seed and N receivers: the seed's uplink is the scarce link, and the release can spread in
// about S/B only if every piece leaves the seed once and the receivers forward it among
// themselves. Plain BitTorrent lets every receiver ask the seed for any piece; receivers that
// have nothing better to ask it for take pieces their neighbours are about to hold, and the seed's
// uplink carries them twice (measured: the seed uploaded 1.4-2x the release, the last node finished
// at ~2x the floor; docs/benchmarks.md). So a seed *deals* pieces: each receiver is shown only the
// pieces dealt to it, a few at a time, and gets every other piece from the receiver it was dealt
// to (or any that has it since).
//
// On the wire this is plain BitTorrent: libtorrent announces a seed with HAVE_ALL; every gapsync
// node ignores a HAVE_ALL, and a seed follows its HAVE_ALL with one HAVE per piece it deals.
//   - Fresh pieces (held by no connected receiver, never sent whole, dealt to no live
//     connection) are dealt in piece order (from a random piece on, so that two seeds seldom send
//     the same pieces) to each receiver until it lacks `window` of the pieces
//     dealt to it: about 1 s of what this node sends it (at least 4 pieces); when a receiver
//     announces a dealt piece, it is dealt the next at once.
//   - No receiver is dealt more than the average plus its window: each fresh piece must go from
//     its receiver to all the others, and one dealt more than its share (its flow from the seed
//     happened to be faster) runs out of uplink, and its downloads slow down behind its uploads.
//     The average is over the receivers getting their dealt pieces (one cut off must not hold the
//     others back); a receiver that connects later starts from it.
//   - A receiver with nothing left to fetch from this node, when nothing fresh is left, takes over
//     a piece dealt to another that has not asked for it yet, or asked for it more than 10 s ago
//     without getting it (cut off, frozen). Pieces dealt to a connection that closed, and pieces
//     only it held, are fresh again.
//   - Once every piece has left whole at least once or is held by a receiver, everything is shown
//     to everyone: this node's uplink is free then, and the last receivers' last pieces may come
//     from it.
// A node that completes while connected has already sent its bitfield and HAVEs; only new
// connections to a complete node go through this. Two seeds deal independently.
// Cost: O(1) per HAVE and per block sent, O(receivers x window) per deal, O(pieces) per closed
// connection and once a second per connection after everything is out.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include <libtorrent/extensions.hpp>
#include <libtorrent/torrent_handle.hpp>

namespace gapsync::transport {

// A libtorrent torrent plugin for one release torrent. `piece_lengths`: bytes a peer asks for of
// each piece (to know when one has been sent whole). `piece_sizes`: each piece's size with its
// padding. `on_everything_out`: called once, on libtorrent's network thread, when it starts
// showing every piece to every peer.
//
// Receiving side, a peer banned for corrupt pieces: libtorrent keeps the blocks it had delivered
// of pieces not yet complete, and the peer that sends the rest of such a piece is then banned for
// its failure (libtorrent 2.0.8 blames only the peers still known to have sent blocks). So the
// plugin overwrites those pieces with zeros (`add_piece`, no sender): they fail their check with
// nobody to blame and are fetched again whole.
std::shared_ptr<lt::torrent_plugin> MakePieceDealer(lt::torrent_handle handle, std::vector<int> piece_lengths,
                                                    std::vector<int> piece_sizes,
                                                    std::function<void()> on_everything_out = {});

}  // namespace gapsync::transport
