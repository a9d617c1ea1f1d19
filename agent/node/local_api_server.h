// The agent's local API: a unix socket (mode 0600: root's CLI only) where each connection sends one
// length-prefixed ApiRequest and gets one ApiResponse (proto/agent.proto). This class owns the
// socket, the connections and their deadlines; what a request does is the handler's.
// Threads: everything on the loop thread.
#pragma once

#include <sys/types.h>

#include <utility>  // before asio: Boost 1.74 + g++ 12 need std::exchange declared
#include <boost/asio.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include "proto/agent.pb.h"
#include "proto/error.h"

namespace spdlog {
class logger;
}

namespace gapsync::agent {

// The answer to a request that failed: exit code 3 for kIncomplete, else 1, and the one line.
v1::ApiResponse ApiError(const Error& e);

struct LocalApiHandlers {
  // Must answer at once (the loop thread waits for nothing).
  std::function<v1::ApiResponse()> status;
  // Answers later, on the loop thread, through `reply`.
  std::function<void(const v1::IngestRequest&, std::function<void(v1::ApiResponse)> reply)> ingest;
};

class LocalApiServer {
 public:
  // A client must send its request within this long.
  static constexpr auto kRequestTimeout = std::chrono::seconds(30);

  LocalApiServer(boost::asio::io_context& loop, std::string socket_path, LocalApiHandlers handlers,
                 std::shared_ptr<spdlog::logger> log);
  ~LocalApiServer();

  // Binds the socket: a socket file left by a crashed agent is replaced; a live agent there, or
  // a file that is not a socket, is an error (kConflict). Then accepts.
  Status Start();
  // Stops accepting; closes every connection not waiting for an answer (those close once
  // answered).
  void Stop();
  // Removes the socket file if it is still this agent's (another may have taken the path).
  void RemoveSocketFile();

 private:
  struct Conn;
  void Accept();
  void ReadRequest(const std::shared_ptr<Conn>& conn);
  void Dispatch(const std::shared_ptr<Conn>& conn, const v1::ApiRequest& req);
  void Reply(const std::shared_ptr<Conn>& conn, const v1::ApiResponse& response);
  void Drop(const std::shared_ptr<Conn>& conn);

  boost::asio::io_context& loop_;
  const std::string path_;
  LocalApiHandlers handlers_;
  std::shared_ptr<spdlog::logger> log_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  std::set<std::shared_ptr<Conn>> conns_;
  std::pair<dev_t, ino_t> socket_inode_{0, 0};
  bool stopping_ = false;
};

}  // namespace gapsync::agent
