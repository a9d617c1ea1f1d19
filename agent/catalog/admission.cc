#include "agent/catalog/admission.h"

#include "agent/base/util.h"

namespace gapsync::agent {

Admission Admit(const Candidate& c, const std::vector<HeldRelease>& held) {
  for (const auto& h : held) {
    if (h.id != c.id) continue;
    if (h.digest == c.digest) return {Admission::Verdict::kHeld, ""};
    return {Admission::Verdict::kConflict, "already holds " + c.id.str() + " with different content (release " + h.digest.str() +
                                               ", this one " + c.digest.str() + "): a version is immutable; publish a new version"};
  }
  if (c.source == ReleaseSource::kPeer || c.allow_older) return {Admission::Verdict::kNew, ""};
  const auto mine = ParseSemVer(c.id.version);
  for (const auto& h : held) {
    if (h.id.app != c.id.app) continue;
    const auto theirs = ParseSemVer(h.id.version);
    if (theirs && mine && CompareSemVer(*theirs, *mine) > 0) {
      return {Admission::Verdict::kOlder, "holds " + c.id.str() + ", older than " + h.id.str() +
                                              " which the store holds: refusing to go back (pass --allow-older to ingest it anyway)"};
    }
  }
  return {Admission::Verdict::kNew, ""};
}

}  // namespace gapsync::agent
