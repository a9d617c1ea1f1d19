#include "agent/base/read_ahead.h"

#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "agent/base/util.h"

namespace gapsync::agent {
namespace {

constexpr uint64_t kReadAheadMin = 8 << 20;  // shorter reads are not worth a thread
// Small blocks keep each one in the CPU cache from read through hashing to the next write or
// store (measured: 4 MiB blocks tripled the kernel's copy time in bundle create).
constexpr size_t kAheadBlock = 256 << 10;
constexpr size_t kAheadSlots = 16;

Error Truncated(const std::string& path, uint64_t at, uint64_t end) {
  return MakeError(Errc::kCorrupt, path + ": ends at offset " + std::to_string(at) + ", before offset " +
                                       std::to_string(end) + " (truncated)");
}

Error ReadError(const std::string& path, uint64_t at, int err) {
  return MakeError(Errc::kIo, path + ": read error at offset " + std::to_string(at) + ": " + ErrnoText(err));
}

Status ReadAhead(int fd, const std::string& path, uint64_t offset, uint64_t len, const ByteSink& sink) {
  struct Slot {
    std::vector<uint8_t> mem = std::vector<uint8_t>(kAheadBlock);
    size_t len = 0;
    bool full = false;
  };
  std::vector<Slot> slots(kAheadSlots);
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  Status reader_status;

  std::thread reader([&] {
    uint64_t pos = offset;
    const uint64_t end = offset + len;
    for (size_t i = 0; pos < end; i = (i + 1) % kAheadSlots) {
      Slot& slot = slots[i];
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return stop || !slot.full; });
        if (stop) return;
      }
      const size_t want = static_cast<size_t>(std::min<uint64_t>(kAheadBlock, end - pos));
      Status st;
      size_t got = 0;
      while (got < want) {
        ssize_t n = ::pread(fd, slot.mem.data() + got, want - got, static_cast<off_t>(pos + got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          st = MakeError(Errc::kIo, path + ": read error at offset " + std::to_string(pos + got) + ": " + ErrnoText(errno));
          break;
        }
        if (n == 0) break;
        got += static_cast<size_t>(n);
      }
      if (st.ok() && got < want) {
        st = Truncated(path, pos + got, end);
      }
      std::lock_guard lock(mu);
      if (!st.ok()) {
        reader_status = st;
        stop = true;
        cv.notify_all();
        return;
      }
      slot.len = got;
      slot.full = true;
      pos += got;
      cv.notify_all();
    }
  });

  Status result;
  uint64_t done = 0;
  for (size_t i = 0; done < len; i = (i + 1) % kAheadSlots) {
    Slot& slot = slots[i];
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return slot.full || stop; });
      if (!slot.full) {
        result = reader_status;
        break;
      }
    }
    result = sink(slot.mem.data(), slot.len);
    done += slot.len;
    std::lock_guard lock(mu);
    slot.full = false;
    if (!result.ok()) {
      stop = true;
      cv.notify_all();
      break;
    }
    cv.notify_all();
  }
  {
    std::lock_guard lock(mu);
    stop = true;
    cv.notify_all();
  }
  reader.join();
  return result;
}

}  // namespace

Status StreamFileRange(int fd, const std::string& path, uint64_t offset, uint64_t len, const ByteSink& sink) {
  if (len >= kReadAheadMin) return ReadAhead(fd, path, offset, len, sink);
  std::vector<uint8_t> buf(static_cast<size_t>(std::min<uint64_t>(len, kAheadBlock)));
  uint64_t done = 0;
  while (done < len) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), len - done));
    ssize_t n = ::pread(fd, buf.data(), want, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ReadError(path, offset + done, errno);
    if (n == 0) return Truncated(path, offset + done, offset + len);
    GS_RETURN_IF_ERROR(sink(buf.data(), static_cast<size_t>(n)));
    done += static_cast<uint64_t>(n);
  }
  return OkStatus();
}

}  // namespace gapsync::agent
