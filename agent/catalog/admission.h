// Which releases a node takes in: one policy for every way a release arrives, so that media, the
// local API and peers cannot disagree (tests/agent/admission_test.cc is its table).
//
// Versions of an app move forward: an operator brings in what is newer. From media and through
// the local API (`gapsync ingest`, with or without an agent), a version older than the newest the
// node holds is refused unless the operator says --allow-older. From peers every release a member
// offers is taken, older ones included: a node that joins late or was offline must end up holding
// what the cluster holds, since a rollback needs the older releases on every node. Everywhere, a
// version is immutable: the same app@version with other content (another release digest) is
// refused, whatever its source; the same release again is already held.
#pragma once

#include <string>
#include <vector>

#include "proto/ids.h"

namespace gapsync::agent {

enum class ReleaseSource { kMedia, kLocalApi, kPeer };

struct HeldRelease {
  ReleaseId id;
  ReleaseDigest digest;
};

struct Candidate {
  ReleaseId id;
  ReleaseDigest digest;
  ReleaseSource source = ReleaseSource::kMedia;
  bool allow_older = false;  // the operator's --allow-older (media and local API only)
};

struct Admission {
  enum class Verdict {
    kNew,       // take it
    kHeld,      // this very release is held already
    kConflict,  // refused: the same app@version with other content
    kOlder,     // refused: older than a version of the app the node holds
  };
  Verdict verdict = Verdict::kNew;
  HeldRelease against;  // for a refusal: the release held that refuses it (each source words its own message)
  bool admitted() const { return verdict == Verdict::kNew || verdict == Verdict::kHeld; }
};

// `held`: the releases the node holds or is fetching. Versions that are not semantic versions
// (never admitted by manifest validation) do not order.
Admission Admit(const Candidate& candidate, const std::vector<HeldRelease>& held);

}  // namespace gapsync::agent
