// Errors and Result<T>: the one way gapsync reports failure across module boundaries.
// An Error carries a category (for callers that branch on it) and a one-line message that names
// what is wrong and where (file, blob digest, byte offset), ready to show an operator.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace gapsync {

enum class Errc {
  kInvalidArgument,   // bad flag, bad template, malformed input the user gave us
  kNotFound,          // a file, blob, release or component that is not there
  kCorrupt,           // bytes that do not match their digest or format
  kBadSignature,      // signature missing, wrong, or by an untrusted key
  kConflict,          // a release that clashes with what the store holds
  kIncomplete,        // some volumes missing: progress kept, rerun to finish
  kNoSpace,           // disk full
  kIo,                // any other I/O failure
  kInternal,
};

const char* ErrcName(Errc c);

struct Error {
  Errc code;
  std::string message;
};

inline Error MakeError(Errc code, std::string message) { return Error{code, std::move(message)}; }

// Result<T>: a value or an Error. Check ok() before value(); error() only when !ok().
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const Error& error() const { assert(!ok()); return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : err_(std::move(error)), ok_(false) {}  // NOLINT(google-explicit-constructor)
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { assert(!ok_); return err_; }

 private:
  Error err_{Errc::kInternal, ""};
  bool ok_ = true;
};

using Status = Result<void>;

inline Status OkStatus() { return Status(); }

}  // namespace gapsync

// Propagate an error from an expression returning Result/Status.
#define GS_CONCAT_INNER(a, b) a##b
#define GS_CONCAT(a, b) GS_CONCAT_INNER(a, b)
#define GS_RETURN_IF_ERROR(expr)                        \
  do {                                                  \
    auto gs_status_ = (expr);                           \
    if (!gs_status_.ok()) return gs_status_.error();    \
  } while (0)
#define GS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.error();             \
  lhs = std::move(tmp).value()
#define GS_ASSIGN_OR_RETURN(lhs, expr) \
  GS_ASSIGN_OR_RETURN_IMPL(GS_CONCAT(gs_result_, __LINE__), lhs, expr)
