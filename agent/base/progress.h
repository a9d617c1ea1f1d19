// Progress of a long operation on stderr: a live line (bytes, rate, ETA) on a terminal, plain
// lines at most every few seconds otherwise, nothing when quiet.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace gapsync::agent {

class Progress {
 public:
  Progress(std::string what, uint64_t total_bytes, bool quiet);
  ~Progress();
  void Add(uint64_t bytes);
  void Finish();

 private:
  void Print(bool final);
  std::string what_;
  uint64_t total_;
  uint64_t done_ = 0;
  bool quiet_;
  bool tty_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace gapsync::agent
