// IPv4:PORT endpoints as agents write them in configs and announce them in Hellos. Text from a
// peer is parsed here before anything dials it.
#pragma once

#include <arpa/inet.h>

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gapsync::transport {

struct Ipv4Endpoint {
  std::string host;  // dotted quad
  uint16_t port = 0;
};

// "a.b.c.d:PORT" with PORT 1..65535; nullopt for anything else. `allow_any`: whether 0.0.0.0
// (listen on every interface) is acceptable; it is not for an address others must reach.
inline std::optional<Ipv4Endpoint> ParseIpv4Endpoint(std::string_view text, bool allow_any = false) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon > 15) return std::nullopt;
  Ipv4Endpoint e;
  e.host = std::string(text.substr(0, colon));
  in_addr addr{};
  if (::inet_pton(AF_INET, e.host.c_str(), &addr) != 1) return std::nullopt;
  if (!allow_any && addr.s_addr == htonl(INADDR_ANY)) return std::nullopt;
  unsigned port = 0;
  const auto digits = text.substr(colon + 1);
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (ec != std::errc() || end != digits.data() + digits.size() || port == 0 || port > 65535) return std::nullopt;
  e.port = static_cast<uint16_t>(port);
  return e;
}

}  // namespace gapsync::transport
