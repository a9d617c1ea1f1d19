#include "proto/error.h"

namespace gapsync {

const char* ErrcName(Errc c) {
  switch (c) {
    case Errc::kInvalidArgument: return "invalid-argument";
    case Errc::kNotFound: return "not-found";
    case Errc::kCorrupt: return "corrupt";
    case Errc::kBadSignature: return "bad-signature";
    case Errc::kConflict: return "conflict";
    case Errc::kIncomplete: return "incomplete";
    case Errc::kNoSpace: return "no-space";
    case Errc::kIo: return "io";
    case Errc::kInternal: return "internal";
  }
  return "unknown";
}

}  // namespace gapsync
