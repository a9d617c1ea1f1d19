#include "agent/base/progress.h"

#include <unistd.h>

#include <cstdio>

#include "agent/base/util.h"

namespace gapsync::agent {

Progress::Progress(std::string what, uint64_t total_bytes, bool quiet)
    : what_(std::move(what)), total_(total_bytes), quiet_(quiet), tty_(::isatty(STDERR_FILENO) == 1) {
  start_ = last_ = std::chrono::steady_clock::now();
}

Progress::~Progress() { Finish(); }

void Progress::Add(uint64_t bytes) {
  done_ += bytes;
  if (quiet_) return;
  auto now = std::chrono::steady_clock::now();
  auto interval = tty_ ? std::chrono::milliseconds(200) : std::chrono::milliseconds(5000);
  if (now - last_ >= interval) {
    last_ = now;
    Print(false);
  }
}

void Progress::Finish() {
  if (finished_) return;
  finished_ = true;
  if (!quiet_ && done_ > 0) Print(true);
}

void Progress::Print(bool final) {
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double rate = secs > 0 ? static_cast<double>(done_) / secs : 0;
  std::string line = what_ + ": " + HumanBytes(done_) + " / " + HumanBytes(total_) + "  " +
                     HumanBytes(static_cast<uint64_t>(rate)) + "/s";
  if (!final && rate > 0 && total_ > done_) {
    line += "  ETA " + std::to_string(static_cast<int>(static_cast<double>(total_ - done_) / rate + 0.5)) + "s";
  } else if (final) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "  in %.1fs", secs);
    line += buf;
  }
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s%s", line.c_str(), final ? "\n" : "");
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::fflush(stderr);
}

}  // namespace gapsync::agent
