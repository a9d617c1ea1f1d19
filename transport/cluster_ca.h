// The cluster's own certificate authority: agents authenticate each other with mutual TLS using
// certificates it issued (ECDSA P-256, OpenSSL). A node without such a certificate gets nothing.
#pragma once

#include <string>

#include "proto/error.h"

namespace gapsync::transport {

struct CaFiles {
  std::string key;   // DIR/ca.key (0600)
  std::string cert;  // DIR/ca.crt
};

// What an agent presents and trusts on both planes.
struct TlsFiles {
  std::string ca, cert, key;
};

struct NodeFiles {
  std::string key;   // DIR/NAME.key (0600)
  std::string cert;  // DIR/NAME.crt
  std::string ca_cert;  // DIR/ca.crt (copy of the CA certificate, for the node's config)
};

// Creates DIR/ca.key and DIR/ca.crt (self-signed, CN "gapsync cluster CA <name>"). Refuses to
// overwrite an existing CA.
Result<CaFiles> InitCa(const std::string& dir, const std::string& name, int valid_days = 3650);

// Issues a node certificate (CN = node name; SAN DNS = node name and "gapsync-data-plane", the
// name libtorrent checks on the data plane; serverAuth + clientAuth) signed by the CA
// in ca_dir. Refuses to overwrite existing node files.
Result<NodeFiles> IssueNodeCertificate(const std::string& ca_dir, const std::string& node,
                                       const std::string& out_dir, int valid_days = 825);

// Checks that `cert_pem_path` was issued by the CA in `ca_cert_path` and is valid now; returns
// the node name (CN). Used by tools and tests; TLS connections do the same check in OpenSSL.
Result<std::string> VerifyNodeCertificate(const std::string& ca_cert_path, const std::string& cert_pem_path);


}  // namespace gapsync::transport
