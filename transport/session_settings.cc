#include "transport/session_settings.h"

#include <libtorrent/alert.hpp>

#include <charconv>
#include <sstream>

namespace gapsync::transport {

Result<lt::settings_pack> SessionSettings(const DataPlaneOptions& o, std::vector<std::string>& applied) {
  lt::settings_pack s;
  const std::string iface = o.listen_host + ":" + std::to_string(o.listen_port) + (o.tls ? "s" : "");
  s.set_str(lt::settings_pack::listen_interfaces, iface);
  s.set_str(lt::settings_pack::outgoing_interfaces, "");
  s.set_int(lt::settings_pack::alert_mask,
            static_cast<int>(static_cast<std::uint32_t>(lt::alert_category::error | lt::alert_category::peer |
                                                        lt::alert_category::status | lt::alert_category::storage)));
  s.set_bool(lt::settings_pack::enable_dht, false);
  s.set_bool(lt::settings_pack::enable_lsd, false);
  s.set_bool(lt::settings_pack::enable_upnp, false);
  s.set_bool(lt::settings_pack::enable_natpmp, false);
  s.set_bool(lt::settings_pack::enable_outgoing_utp, false);
  s.set_bool(lt::settings_pack::enable_incoming_utp, false);
  s.set_bool(lt::settings_pack::enable_outgoing_tcp, true);
  s.set_bool(lt::settings_pack::enable_incoming_tcp, true);
  s.set_bool(lt::settings_pack::allow_multiple_connections_per_ip, true);
  s.set_int(lt::settings_pack::in_enc_policy, lt::settings_pack::pe_disabled);
  s.set_int(lt::settings_pack::out_enc_policy, lt::settings_pack::pe_disabled);
  // A cluster, not a public swarm: every peer unchoked, no tit-for-tat.
  s.set_int(lt::settings_pack::choking_algorithm, lt::settings_pack::fixed_slots_choker);
  s.set_int(lt::settings_pack::unchoke_slots_limit, -1);
  s.set_int(lt::settings_pack::active_downloads, -1);
  s.set_int(lt::settings_pack::active_seeds, -1);
  s.set_int(lt::settings_pack::active_limit, -1);
  s.set_bool(lt::settings_pack::smooth_connects, false);
  // Short request queues (about 1 s of each peer's rate, at most 64 blocks): a receiver that
  // queues many pieces at one peer claims pieces others could send sooner. Measured before the
  // piece dealer existed (16 receivers: libtorrent's defaults 2.05x the floor, these ~1.5x);
  // the dealer's windows are about 1 s too (piece_dealer.h). docs/benchmarks.md.
  s.set_int(lt::settings_pack::request_queue_time, 1);
  s.set_int(lt::settings_pack::max_out_request_queue, 64);
  // Whole pieces from one peer (libtorrent's default threshold): a piece that fails its hash
  // check then has a single sender, who is banned at once. Blocks of one piece from several
  // peers (threshold 0) let a corrupt peer get honest ones banned with it.
  // A peer neither side wants anything from right now may have pieces a moment later (a seed
  // deals more, a receiver gets more): keep the connection rather than reconnect (libtorrent
  // waits a minute to redial).
  s.set_bool(lt::settings_pack::close_redundant_connections, false);
  // Bounded receive windows: every peer sends to this node at once, and with the kernel's
  // autotuned windows (MiBs) their flows overran the queue of this node's link: 3-5 % of the
  // segments were retransmitted, up to 37 % at some nodes (BBR), and the last node finished
  // at 1.16-1.22x the floor. With 32 KiB (24-32 KiB measured alike): 0.2 %, 1.12-1.14x.
  s.set_int(lt::settings_pack::recv_socket_buffer_size, o.receive_buffer);
  // A LAN: a peer that has not answered a request in 10 s (cut off, frozen) is not waited for
  // (libtorrent's defaults, 60 s and 120 s, held a receiver up to a minute after a link cut).
  s.set_int(lt::settings_pack::request_timeout, 10);
  s.set_int(lt::settings_pack::peer_timeout, 30);
  s.set_str(lt::settings_pack::user_agent, "gapsync");
  std::stringstream ss(o.libtorrent_settings);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto eq = item.find('=');
    if (eq == std::string::npos) continue;
    const std::string name = item.substr(0, eq), value = item.substr(eq + 1);
    const int id = lt::setting_by_name(name);
    if (id < 0) return MakeError(Errc::kInvalidArgument, o.libtorrent_settings_from + ": no libtorrent setting \"" + name + "\"");
    if ((id & lt::settings_pack::type_mask) == lt::settings_pack::bool_type_base) {
      s.set_bool(id, value == "1" || value == "true");
    } else if ((id & lt::settings_pack::type_mask) == lt::settings_pack::int_type_base) {
      int v = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
      if (ec != std::errc() || end != value.data() + value.size()) {
        return MakeError(Errc::kInvalidArgument, o.libtorrent_settings_from + ": " + name + "=" + value + " is not a number");
      }
      s.set_int(id, v);
    } else {
      s.set_str(id, value);
    }
    applied.push_back(name + " = " + value);
  }
  s.set_str(lt::settings_pack::peer_fingerprint, "-GS0001-");
  return s;
}

}  // namespace gapsync::transport
