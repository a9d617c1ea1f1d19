#include "agent/base/util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <filesystem>

namespace gapsync::agent {

std::string ErrnoText(int err) { return std::strerror(err); }

Result<uint64_t> ParseSize(std::string_view text) {
  auto bad = [&] {
    return MakeError(Errc::kInvalidArgument, "size \"" + std::string(text) +
                                                 "\": expected a number of bytes or a number with K, M, G or T");
  };
  if (text.empty()) return bad();
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end == text.data()) return bad();
  std::string_view unit(end, text.data() + text.size() - end);
  if (unit.size() == 3 && unit.substr(1) == "iB") unit = unit.substr(0, 1);  // KiB, MiB, GiB, TiB
  if (unit.size() == 2 && (unit[1] == 'B' || unit[1] == 'b' || unit[1] == 'i')) unit = unit.substr(0, 1);
  int shift = 0;
  if (unit.empty() || unit == "B") {
    shift = 0;
  } else if (unit == "K" || unit == "k") {
    shift = 10;
  } else if (unit == "M" || unit == "m") {
    shift = 20;
  } else if (unit == "G" || unit == "g") {
    shift = 30;
  } else if (unit == "T" || unit == "t") {
    shift = 40;
  } else {
    return bad();
  }
  if (n == 0) return MakeError(Errc::kInvalidArgument, "size \"" + std::string(text) + "\": must be more than 0");
  if (shift > 0 && n > (UINT64_MAX >> shift)) return bad();
  return n << shift;
}

std::string HumanBytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

namespace {

bool AllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

bool IsIdentChar(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
}

std::optional<uint64_t> ParseNumeric(std::string_view s) {
  if (!AllDigits(s) || (s.size() > 1 && s[0] == '0') || s.size() > 18) return std::nullopt;
  uint64_t n = 0;
  std::from_chars(s.data(), s.data() + s.size(), n);
  return n;
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t pos = s.find(sep, start);
    out.push_back(s.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
    if (pos == std::string_view::npos) break;
    start = pos + 1;
  }
  return out;
}

}  // namespace

std::optional<SemVer> ParseSemVer(std::string_view text) {
  SemVer v;
  auto plus = text.find('+');
  if (plus != std::string_view::npos) {
    v.build = std::string(text.substr(plus + 1));
    for (auto id : Split(v.build, '.')) {
      if (id.empty()) return std::nullopt;
      for (char c : id) {
        if (!IsIdentChar(c)) return std::nullopt;
      }
    }
    text = text.substr(0, plus);
  }
  auto dash = text.find('-');
  std::string_view core = text.substr(0, dash);
  if (dash != std::string_view::npos) {
    for (auto id : Split(text.substr(dash + 1), '.')) {
      if (id.empty()) return std::nullopt;
      for (char c : id) {
        if (!IsIdentChar(c)) return std::nullopt;
      }
      if (AllDigits(id) && id.size() > 1 && id[0] == '0') return std::nullopt;
      v.prerelease.emplace_back(id);
    }
  }
  auto parts = Split(core, '.');
  if (parts.size() != 3) return std::nullopt;
  auto a = ParseNumeric(parts[0]), b = ParseNumeric(parts[1]), c = ParseNumeric(parts[2]);
  if (!a || !b || !c) return std::nullopt;
  v.major = *a;
  v.minor = *b;
  v.patch = *c;
  return v;
}

int CompareSemVer(const SemVer& a, const SemVer& b) {
  auto cmp = [](uint64_t x, uint64_t y) { return x < y ? -1 : (x > y ? 1 : 0); };
  if (int c = cmp(a.major, b.major)) return c;
  if (int c = cmp(a.minor, b.minor)) return c;
  if (int c = cmp(a.patch, b.patch)) return c;
  if (a.prerelease.empty() != b.prerelease.empty()) return a.prerelease.empty() ? 1 : -1;
  for (size_t i = 0; i < std::min(a.prerelease.size(), b.prerelease.size()); ++i) {
    const auto& x = a.prerelease[i];
    const auto& y = b.prerelease[i];
    bool xn = AllDigits(x), yn = AllDigits(y);
    if (xn && yn) {
      if (x.size() != y.size()) return x.size() < y.size() ? -1 : 1;
      if (int c = x.compare(y)) return c < 0 ? -1 : 1;
    } else if (xn != yn) {
      return xn ? -1 : 1;
    } else if (int c = x.compare(y)) {
      return c < 0 ? -1 : 1;
    }
  }
  return cmp(a.prerelease.size(), b.prerelease.size());
}

bool IsSafeFileName(std::string_view name) {
  if (name.empty() || name.size() > 255 || name[0] == '.') return false;
  for (char c : name) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
              c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool IsSafeRelativePath(std::string_view path) {
  if (path.empty() || path.size() > 4096 || path[0] == '/') return false;
  for (auto part : Split(path, '/')) {
    if (part.empty() || part == "." || part == "..") return false;
    for (char c : part) {
      if (c == '\0') return false;
    }
  }
  return true;
}

Result<std::string> ReadSmallFile(const std::string& path, uint64_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);  // a FIFO must not hang us
  if (fd < 0) {
    return MakeError(errno == ENOENT ? Errc::kNotFound : Errc::kIo, path + ": " + ErrnoText(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return MakeError(Errc::kInvalidArgument, path + ": not a regular file");
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    ::close(fd);
    return MakeError(Errc::kCorrupt, path + ": " + std::to_string(st.st_size) + " bytes, more than the " +
                                         std::to_string(max_bytes) + " allowed");
  }
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = ::read(fd, out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      return MakeError(Errc::kIo, path + ": read failed at offset " + std::to_string(got));
    }
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  return out;
}

Status FsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return MakeError(Errc::kIo, dir + ": " + ErrnoText(errno));
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return MakeError(Errc::kIo, dir + ": fsync: " + ErrnoText(errno));
  return OkStatus();
}

Status WriteFileAtomic(const std::string& path, std::string_view contents) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return MakeError(Errc::kIo, tmp + ": " + ErrnoText(errno));
  size_t done = 0;
  while (done < contents.size()) {
    ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return MakeError(err == ENOSPC ? Errc::kNoSpace : Errc::kIo, tmp + ": " + ErrnoText(err));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return MakeError(err == ENOSPC ? Errc::kNoSpace : Errc::kIo, tmp + ": fsync: " + ErrnoText(err));
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return MakeError(Errc::kIo, path + ": " + ErrnoText(errno));
  auto parent = std::filesystem::path(path).parent_path().string();
  return FsyncDir(parent.empty() ? "." : parent);
}

}  // namespace gapsync::agent
