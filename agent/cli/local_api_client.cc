#include "agent/cli/local_api_client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace gapsync::agent {

namespace {

bool WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

bool ReadAll(int fd, void* buf, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::recv(fd, static_cast<char*>(buf) + done, len - done, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

Error OlderAgent(const std::string& socket_path) {
  return MakeError(Errc::kIo, "the agent at " + socket_path +
                                  " answered in an older format: it runs an older gapsync than this command; restart it");
}

Result<v1::ApiResponse> CallAgent(const std::string& socket_path, const v1::ApiRequest& request) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) {
    return MakeError(Errc::kInvalidArgument, "agent socket path too long: " + socket_path);
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return MakeError(Errc::kIo, std::string("socket: ") + std::strerror(errno));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    ::close(fd);
    return MakeError(Errc::kNotFound, "no gapsync agent at " + socket_path + " (" + std::strerror(err) +
                                          "): start one with `gapsync agent run --config FILE`, or pass --store PATH");
  }
  unsigned char header[4];
  v1::ApiResponse response;
  bool ok = WriteAll(fd, EncodeFrame(request)) && ReadAll(fd, header, 4);
  if (ok) {
    uint32_t n = DecodeFrameLength(header);
    if (n > kMaxFrame) {
      ::close(fd);
      return MakeError(Errc::kIo, socket_path + ": answer of " + std::to_string(n) + " bytes is over the " +
                                      std::to_string(kMaxFrame) + " limit (is that a gapsync agent?)");
    }
    std::string body(n, '\0');
    ok = ReadAll(fd, body.data(), n) && response.ParseFromString(body);
  }
  ::close(fd);
  if (!ok) return MakeError(Errc::kIo, "the agent at " + socket_path + " closed the connection without an answer");
  return response;
}

}  // namespace gapsync::agent
