#include "proto/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace gapsync {

Status WriteNewFile(const std::string& path, mode_t mode, std::string_view contents) {
  const std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());  // left by a run that was killed
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return MakeError(Errc::kIo, tmp + ": " + std::strerror(errno));
  ::fchmod(fd, mode);  // whatever the umask
  size_t done = 0;
  int err = 0;
  while (done < contents.size() && err == 0) {
    ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno != EINTR) err = errno;
    if (n > 0) done += static_cast<size_t>(n);
  }
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  ::close(fd);
  if (err != 0) {
    ::unlink(tmp.c_str());
    return MakeError(err == ENOSPC ? Errc::kNoSpace : Errc::kIo, tmp + ": " + std::strerror(err));
  }
  if (::link(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    ::unlink(tmp.c_str());
    return MakeError(err == EEXIST ? Errc::kConflict : Errc::kIo,
                     path + ": " + (err == EEXIST ? "already exists, not overwriting it" : std::strerror(err)));
  }
  ::unlink(tmp.c_str());
  auto parent = std::filesystem::path(path).parent_path().string();
  int dfd = ::open(parent.empty() ? "." : parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return OkStatus();
}

}  // namespace gapsync
