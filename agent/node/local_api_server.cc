#include "agent/node/local_api_server.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "agent/node/api_request.h"
#include "proto/frame.h"

namespace asio = boost::asio;
using local_stream = asio::local::stream_protocol;

namespace gapsync::agent {

struct LocalApiServer::Conn {
  explicit Conn(asio::io_context& io) : socket(io), deadline(io) {}
  local_stream::socket socket;
  asio::steady_timer deadline;  // a client must send its request within kRequestTimeout
  bool waiting = false;         // request read, answer pending: kept open when stopping
  unsigned char header[4] = {0, 0, 0, 0};
  std::string body;
  std::string reply;
};

v1::ApiResponse ApiError(const Error& e) {
  v1::ApiResponse r;
  r.set_exit_code(e.code == Errc::kIncomplete ? 3 : 1);
  r.set_error(e.message);
  return r;
}

LocalApiServer::LocalApiServer(asio::io_context& loop, std::string socket_path, LocalApiHandlers handlers,
                               std::shared_ptr<spdlog::logger> log)
    : loop_(loop), path_(std::move(socket_path)), handlers_(std::move(handlers)), log_(std::move(log)), acceptor_(loop) {}

LocalApiServer::~LocalApiServer() {
  Stop();
  RemoveSocketFile();
}

Status LocalApiServer::Start() {
  std::error_code fec;
  std::filesystem::create_directories(std::filesystem::path(path_).parent_path(), fec);
  if (fec) return MakeError(Errc::kIo, path_ + ": cannot create its folder: " + fec.message());
  // A socket file left by a crashed agent is removed; a live agent is not displaced.
  struct stat existing {};
  if (::lstat(path_.c_str(), &existing) == 0) {
    if (!S_ISSOCK(existing.st_mode)) {
      return MakeError(Errc::kConflict, path_ + ": exists and is not a socket; not removing it (check api_socket)");
    }
    local_stream::socket probe(loop_);
    boost::system::error_code ec;
    probe.connect(local_stream::endpoint(path_), ec);
    if (!ec) return MakeError(Errc::kConflict, path_ + ": another gapsync agent is already listening there");
    ::unlink(path_.c_str());
  }
  boost::system::error_code ec;
  acceptor_.open(local_stream(), ec);
  if (!ec) acceptor_.bind(local_stream::endpoint(path_), ec);
  if (!ec) ::chmod(path_.c_str(), 0600);  // root's CLI only
  struct stat mine {};
  if (!ec && ::lstat(path_.c_str(), &mine) == 0) socket_inode_ = {mine.st_dev, mine.st_ino};
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return MakeError(Errc::kIo, path_ + ": cannot listen: " + ec.message());
  Accept();
  return OkStatus();
}

void LocalApiServer::Stop() {
  if (stopping_) return;
  stopping_ = true;
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  // Connections waiting for an answer keep their socket until it comes; all others go.
  for (auto it = conns_.begin(); it != conns_.end();) {
    if (!(*it)->waiting) {
      (*it)->deadline.cancel();
      (*it)->socket.close(ignored);
      it = conns_.erase(it);
    } else {
      ++it;
    }
  }
}

void LocalApiServer::RemoveSocketFile() {
  struct stat now {};  // only if it is still ours
  if (socket_inode_.second != 0 && ::lstat(path_.c_str(), &now) == 0 &&
      std::make_pair(now.st_dev, now.st_ino) == socket_inode_) {
    ::unlink(path_.c_str());
  }
  socket_inode_ = {0, 0};
}

void LocalApiServer::Accept() {
  auto conn = std::make_shared<Conn>(loop_);
  acceptor_.async_accept(conn->socket, [this, conn](const boost::system::error_code& ec) {
    if (ec || stopping_) return;  // acceptor closed: stopping
    conns_.insert(conn);
    conn->deadline.expires_after(kRequestTimeout);
    conn->deadline.async_wait([this, conn](const boost::system::error_code& tec) {
      if (!tec && !conn->waiting && conns_.count(conn)) {
        log_->warn("local API: no complete request within {} s; dropped", kRequestTimeout.count());
        Drop(conn);
      }
    });
    ReadRequest(conn);
    Accept();
  });
}

void LocalApiServer::ReadRequest(const std::shared_ptr<Conn>& conn) {
  asio::async_read(conn->socket, asio::buffer(conn->header), [this, conn](const boost::system::error_code& ec, size_t) {
    if (ec) return Drop(conn);
    const uint32_t n = DecodeFrameLength(conn->header);
    if (n > kMaxFrame) {
      log_->warn("local API: request of {} bytes refused", n);
      return Drop(conn);
    }
    conn->body.assign(n, '\0');
    asio::async_read(conn->socket, asio::buffer(conn->body), [this, conn](const boost::system::error_code& ec2, size_t) {
      if (ec2) return Drop(conn);
      auto req = DecodeApiRequest(conn->body);
      if (!req.ok()) {
        log_->warn("local API: {}", req.error().message);
        return Reply(conn, ApiError(req.error()));
      }
      Dispatch(conn, req.value());
    });
  });
}

void LocalApiServer::Dispatch(const std::shared_ptr<Conn>& conn, const v1::ApiRequest& req) {
  if (req.has_status()) return Reply(conn, handlers_.status());
  conn->waiting = true;  // (DecodeApiRequest let only these two through)
  handlers_.ingest(req.ingest(), [this, conn](v1::ApiResponse response) { Reply(conn, response); });
}

void LocalApiServer::Reply(const std::shared_ptr<Conn>& conn, const v1::ApiResponse& response) {
  conn->reply = EncodeFrame(response);
  asio::async_write(conn->socket, asio::buffer(conn->reply), [this, conn](const boost::system::error_code&, size_t) { Drop(conn); });
}

void LocalApiServer::Drop(const std::shared_ptr<Conn>& conn) {
  boost::system::error_code ignored;
  conn->deadline.cancel();
  conn->socket.close(ignored);
  conns_.erase(conn);
}

}  // namespace gapsync::agent
