#include "agent/node/agent_config.h"

#include <arpa/inet.h>
#include <yaml-cpp/yaml.h>

#include <charconv>
#include <filesystem>
#include <set>

#include "agent/base/util.h"
#include "agent/base/yaml_file.h"
#include "transport/address.h"
#include "proto/ids.h"

namespace fs = std::filesystem;

namespace gapsync::agent {
namespace {

using Ctx = YamlCtx;

Result<std::string> Scalar(const Ctx& ctx, const YAML::Node& n, const std::string& key) {
  if (!n.IsScalar()) return ctx.Err(n, "\"" + key + "\" must be a string");
  return n.as<std::string>();
}

Result<std::string> ExistingFile(const Ctx& ctx, const YAML::Node& n, const std::string& key, const fs::path& base) {
  GS_ASSIGN_OR_RETURN(auto v, Scalar(ctx, n, key));
  fs::path p = fs::path(v).is_absolute() ? fs::path(v) : base / v;
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) return ctx.Err(n, key + " file \"" + v + "\" does not exist (" + p.string() + ")");
  return p.string();
}

}  // namespace

Result<Endpoint> ParseEndpoint(const std::string& text) {
  // Every address in the config is one other nodes reach (it is announced): not 0.0.0.0.
  auto parsed = transport::ParseIpv4Endpoint(text);
  if (!parsed) {
    return MakeError(Errc::kInvalidArgument, "address \"" + text + "\": expected IPv4:PORT of this host (not 0.0.0.0), e.g. 198.18.0.1:7400");
  }
  return Endpoint{parsed->host, parsed->port};
}

Result<AgentConfig> LoadAgentConfig(const std::string& path) {
  Ctx ctx{path};
  GS_ASSIGN_OR_RETURN(YAML::Node root, LoadYamlFile(path));
  if (!root.IsMap()) return MakeError(Errc::kInvalidArgument, path + ": must be a mapping of settings");
  const fs::path base = fs::absolute(path).parent_path();
  const std::set<std::string> allowed = {"node", "data_dir", "api_socket", "trust", "log_level",
                                         "listen", "bittorrent_listen", "peers", "tls", "data_plane_tls",
                                         "data_plane_receive_buffer"};
  AgentConfig c;
  c.file = path;
  try {
    for (const auto& kv : root) {
      auto key = kv.first.as<std::string>();
      if (!allowed.count(key)) {
        return ctx.Err(kv.first, "unknown key \"" + key + "\" (allowed: api_socket, bittorrent_listen, data_dir, "
                                 "data_plane_receive_buffer, data_plane_tls, listen, log_level, node, peers, tls, trust)");
      }
    }
    for (const char* required : {"node", "data_dir", "trust"}) {
      if (!root[required]) return MakeError(Errc::kInvalidArgument, path + ": missing required key \"" + required + "\"");
    }
    GS_ASSIGN_OR_RETURN(c.node, Scalar(ctx, root["node"], "node"));
    if (!NodeName::IsValid(c.node)) return ctx.Err(root["node"], "node name \"" + c.node + "\": use 1-63 of a-z 0-9 - .");
    GS_ASSIGN_OR_RETURN(c.data_dir, Scalar(ctx, root["data_dir"], "data_dir"));
    if (!fs::path(c.data_dir).is_absolute()) c.data_dir = (base / c.data_dir).string();
    if (root["api_socket"]) {
      GS_ASSIGN_OR_RETURN(c.api_socket, Scalar(ctx, root["api_socket"], "api_socket"));
      if (!fs::path(c.api_socket).is_absolute()) c.api_socket = (base / c.api_socket).string();
      if (c.api_socket.size() > 100) return ctx.Err(root["api_socket"], "api_socket path is longer than a unix socket allows (100)");
    }
    if (root["log_level"]) {
      GS_ASSIGN_OR_RETURN(c.log_level, Scalar(ctx, root["log_level"], "log_level"));
      static const std::set<std::string> levels = {"trace", "debug", "info", "warn", "error"};
      if (!levels.count(c.log_level)) return ctx.Err(root["log_level"], "log_level must be trace, debug, info, warn or error");
    }
    auto trust = root["trust"];
    if (!trust.IsSequence() || trust.size() == 0) return ctx.Err(trust, "\"trust\" must be a non-empty list of vendor public key files");
    for (const auto& t : trust) {
      GS_ASSIGN_OR_RETURN(auto p, ExistingFile(ctx, t, "trust", base));
      c.trust.push_back(p);
    }
    for (const char* key : {"listen", "bittorrent_listen"}) {
      if (!root[key]) continue;
      GS_ASSIGN_OR_RETURN(auto v, Scalar(ctx, root[key], key));
      auto e = ParseEndpoint(v);
      if (!e.ok()) return ctx.Err(root[key], e.error().message);
      (std::string(key) == "listen" ? c.listen : c.bittorrent_listen) = e.value();
    }
    if (auto peers = root["peers"]) {
      if (!peers.IsSequence()) return ctx.Err(peers, "\"peers\" must be a list of IPv4:PORT addresses");
      for (const auto& p : peers) {
        GS_ASSIGN_OR_RETURN(auto v, Scalar(ctx, p, "peers"));
        auto e = ParseEndpoint(v);
        if (!e.ok()) return ctx.Err(p, e.error().message);
        c.peers.push_back(e.value());
      }
    }
    if (auto tls = root["tls"]) {
      if (!tls.IsMap()) return ctx.Err(tls, "\"tls\" must be a mapping with ca, cert, key");
      for (const auto& kv : tls) {
        auto key = kv.first.as<std::string>();
        if (key != "ca" && key != "cert" && key != "key") return ctx.Err(kv.first, "unknown key \"" + key + "\" in tls (allowed: ca, cert, key)");
      }
      for (const char* key : {"ca", "cert", "key"}) {
        if (!tls[key]) return ctx.Err(tls, "tls needs \"" + std::string(key) + "\"");
      }
      GS_ASSIGN_OR_RETURN(c.tls_ca, ExistingFile(ctx, tls["ca"], "tls ca", base));
      GS_ASSIGN_OR_RETURN(c.tls_cert, ExistingFile(ctx, tls["cert"], "tls cert", base));
      GS_ASSIGN_OR_RETURN(c.tls_key, ExistingFile(ctx, tls["key"], "tls key", base));
    }
    if (auto t = root["data_plane_tls"]) {
      GS_ASSIGN_OR_RETURN(auto v, Scalar(ctx, t, "data_plane_tls"));
      if (v != "true" && v != "false") return ctx.Err(t, "data_plane_tls must be true or false");
      c.data_plane_tls = v == "true";
    }
    if (auto t = root["data_plane_receive_buffer"]) {
      GS_ASSIGN_OR_RETURN(auto v, Scalar(ctx, t, "data_plane_receive_buffer"));
      constexpr int kMin = 4096, kMax = 64 << 20;
      int n = -1;
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec != std::errc() || end != v.data() + v.size() || (n != 0 && (n < kMin || n > kMax))) {
        return ctx.Err(t, "data_plane_receive_buffer \"" + v + "\": bytes, 0 (the kernel's autotuning) or 4096 to 67108864");
      }
      c.data_plane_receive_buffer = n;
    }
    if (c.bittorrent_listen && !c.listen) {
      return ctx.Err(root["bittorrent_listen"], "\"bittorrent_listen\" needs \"listen\": peers and releases come from the control plane");
    }
    if (c.listen && c.tls_cert.empty()) {
      return ctx.Err(root["listen"], "\"listen\" needs \"tls\" (ca, cert, key): agents only talk over mutual TLS");
    }
  } catch (const YAML::Exception& e) {
    return MakeError(Errc::kInvalidArgument, path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  return c;
}

}  // namespace gapsync::agent
