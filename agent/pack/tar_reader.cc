#include "agent/pack/tar_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cstring>

#include "agent/base/util.h"

namespace gapsync::agent {
namespace {

constexpr size_t kBlock = 512;

bool ReadAt(int fd, uint64_t offset, void* buf, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = ::pread(fd, static_cast<char*>(buf) + got, len - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    got += static_cast<size_t>(n);
  }
  return true;
}

std::optional<uint64_t> ParseNumber(const char* field, size_t len) {
  if (static_cast<unsigned char>(field[0]) & 0x80) {  // base-256
    uint64_t v = static_cast<unsigned char>(field[0]) & 0x7f;
    for (size_t i = 1; i < len; ++i) {
      if (v >> 56) return std::nullopt;
      v = v << 8 | static_cast<unsigned char>(field[i]);
    }
    return v;
  }
  uint64_t v = 0;
  size_t i = 0;
  while (i < len && (field[i] == ' ' || field[i] == '\0')) ++i;
  bool any = false;
  for (; i < len && field[i] >= '0' && field[i] <= '7'; ++i) {
    if (v >> 60) return std::nullopt;
    v = v * 8 + static_cast<uint64_t>(field[i] - '0');
    any = true;
  }
  for (; i < len; ++i) {
    if (field[i] != ' ' && field[i] != '\0') return std::nullopt;
  }
  if (!any) return uint64_t{0};
  return v;
}

std::string Field(const char* p, size_t len) { return std::string(p, strnlen(p, len)); }

bool ChecksumOk(const unsigned char* h) {
  auto stored = ParseNumber(reinterpret_cast<const char*>(h) + 148, 8);
  if (!stored) return false;
  uint64_t sum = 0;
  for (size_t i = 0; i < kBlock; ++i) sum += (i >= 148 && i < 156) ? ' ' : h[i];
  return sum == *stored;
}

// Pax extended header records: "<len> key=value\n", len counting the whole record. Returns the
// path= value; false when a record is malformed.
bool PaxPath(const std::string& data, std::string& path) {
  size_t pos = 0;
  while (pos < data.size()) {
    if (data[pos] == '\0') break;  // padding
    size_t space = data.find(' ', pos);
    if (space == std::string::npos || space == pos || space - pos > 20) return false;
    uint64_t len = 0;
    auto [end, ec] = std::from_chars(data.data() + pos, data.data() + space, len);
    if (ec != std::errc() || end != data.data() + space) return false;
    if (len < space - pos + 2 || len > data.size() - pos || data[pos + len - 1] != '\n') return false;
    std::string rec = data.substr(space + 1, pos + len - space - 2);
    if (rec.rfind("path=", 0) == 0) path = rec.substr(5);
    pos += len;
  }
  return true;
}

}  // namespace

Result<std::vector<TarMember>> ListTar(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return MakeError(Errc::kNotFound, path + ": " + ErrnoText(errno));
  struct stat st {};
  ::fstat(fd, &st);
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  std::vector<TarMember> out;
  uint64_t offset = 0;
  std::string long_name;
  auto fail = [&](const std::string& what) {
    ::close(fd);
    return MakeError(Errc::kCorrupt, path + ": tar header at offset " + std::to_string(offset) + ": " + what);
  };
  unsigned char h[kBlock];
  bool ended = false;
  for (;;) {
    if (offset + kBlock > file_size) {
      if (offset == file_size && !out.empty()) break;  // no end-of-archive blocks: tolerated
      return fail(offset == 0 ? "not a tar archive (shorter than one header)" : "archive is truncated inside a header");
    }
    if (!ReadAt(fd, offset, h, kBlock)) return fail("read failed");
    bool zero = true;
    for (unsigned char c : h) zero = zero && c == 0;
    if (zero) {
      ended = true;
      break;
    }
    if (!ChecksumOk(h)) return fail("bad header checksum (not a tar archive, or damaged)");
    auto size = ParseNumber(reinterpret_cast<char*>(h) + 124, 12);
    if (!size) return fail("bad size field");
    const uint64_t data = offset + kBlock;
    if (*size > file_size || data + *size > file_size) return fail("member data runs past the end of the file");
    const char type = h[156] == 0 ? '0' : static_cast<char>(h[156]);
    const uint64_t next = data + (*size + kBlock - 1) / kBlock * kBlock;
    if (type == 'L' || type == 'x') {
      if (*size > (1 << 20)) return fail("extended header too large");
      std::string buf(*size, '\0');
      if (!ReadAt(fd, data, buf.data(), buf.size())) return fail("read failed");
      if (type == 'L') {
        long_name = std::string(buf.c_str());
      } else {
        std::string p;
        if (!PaxPath(buf, p)) return fail("malformed pax extended header");
        if (!p.empty()) long_name = p;
      }
      offset = next;
      continue;
    }
    if (type == 'g') {
      offset = next;
      continue;
    }
    std::string name;
    if (!long_name.empty()) {
      name = long_name;
      long_name.clear();
    } else {
      std::string prefix = std::memcmp(h + 257, "ustar", 5) == 0 ? Field(reinterpret_cast<char*>(h) + 345, 155) : "";
      name = Field(reinterpret_cast<char*>(h), 100);
      if (!prefix.empty()) name = prefix + "/" + name;
    }
    while (name.rfind("./", 0) == 0) name = name.substr(2);
    while (!name.empty() && name.back() == '/') name.pop_back();
    if (!name.empty() && !IsSafeRelativePath(name)) {
      ::close(fd);
      return MakeError(Errc::kCorrupt, path + ": member \"" + name + "\" (header at offset " + std::to_string(offset) +
                                           ") has an absolute or '..' path that would leave the archive");
    }
    if (!name.empty()) out.push_back(TarMember{name, type, data, *size});
    offset = next;
  }
  ::close(fd);
  if (!ended && out.empty()) {
    return MakeError(Errc::kCorrupt, path + ": not a tar archive (no members)");
  }
  return out;
}

}  // namespace gapsync::agent
