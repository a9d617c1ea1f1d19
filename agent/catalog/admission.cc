#include "agent/catalog/admission.h"

#include "agent/base/util.h"

namespace gapsync::agent {

Admission Admit(const Candidate& c, const std::vector<HeldRelease>& held) {
  for (const auto& h : held) {
    if (h.id != c.id) continue;
    return {h.digest == c.digest ? Admission::Verdict::kHeld : Admission::Verdict::kConflict, h};
  }
  if (c.source == ReleaseSource::kPeer || c.allow_older) return {Admission::Verdict::kNew, {}};
  const auto mine = ParseSemVer(c.id.version);
  for (const auto& h : held) {
    if (h.id.app != c.id.app) continue;
    const auto theirs = ParseSemVer(h.id.version);
    if (theirs && mine && CompareSemVer(*theirs, *mine) > 0) return {Admission::Verdict::kOlder, h};
  }
  return {Admission::Verdict::kNew, {}};
}

}  // namespace gapsync::agent
