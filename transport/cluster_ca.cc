#include "transport/cluster_ca.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>

#include "proto/files.h"
#include "proto/ids.h"

namespace gapsync::transport {
namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;

std::string OpenSslError(const std::string& what) { return "OpenSSL: " + what; }

Result<PkeyPtr> NewKey() {
  EVP_PKEY* k = EVP_EC_gen("P-256");
  if (k == nullptr) return MakeError(Errc::kInternal, OpenSslError("P-256 key generation failed"));
  return PkeyPtr(k);
}

// PEM text of whatever `write` puts into a memory BIO.
Result<std::string> Pem(const std::function<int(BIO*)>& write) {
  BIO* bio = BIO_new(BIO_s_mem());
  int ok = write(bio);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out = ok == 1 && len > 0 ? std::string(data, static_cast<size_t>(len)) : std::string();
  BIO_free(bio);
  if (out.empty()) return MakeError(Errc::kInternal, OpenSslError("PEM encoding failed"));
  return out;
}

Status WriteNew(const std::string& path, mode_t mode, const std::function<int(BIO*)>& write) {
  GS_ASSIGN_OR_RETURN(auto pem, Pem(write));
  return WriteNewFile(path, mode, pem);
}

Status AddExt(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) return MakeError(Errc::kInternal, OpenSslError(std::string("extension ") + value));
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return OkStatus();
}

Result<X509Ptr> NewCert(EVP_PKEY* subject_key, const std::string& cn, int days) {
  X509Ptr cert(X509_new());
  if (!cert) return MakeError(Errc::kInternal, OpenSslError("X509_new"));
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);  // tolerate clocks a little behind
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(days) * 24 * 3600);
  X509_set_pubkey(cert.get(), subject_key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>("gapsync"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  return cert;
}

Result<PkeyPtr> ReadKey(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return MakeError(Errc::kNotFound, path + ": " + std::strerror(errno));
  EVP_PKEY* k = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  if (k == nullptr) return MakeError(Errc::kInvalidArgument, path + ": not a PEM private key");
  return PkeyPtr(k);
}

Result<X509Ptr> ReadCert(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return MakeError(Errc::kNotFound, path + ": " + std::strerror(errno));
  X509* c = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  if (c == nullptr) return MakeError(Errc::kInvalidArgument, path + ": not a PEM certificate");
  return X509Ptr(c);
}

std::string CommonName(X509* cert) {
  char buf[256] = {0};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf);
  return buf;
}

Status MakeDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return MakeError(Errc::kIo, dir + ": " + ec.message());
  return OkStatus();
}

}  // namespace

Result<CaFiles> InitCa(const std::string& dir, const std::string& name, int valid_days) {
  GS_RETURN_IF_ERROR(MakeDir(dir));
  CaFiles files{dir + "/ca.key", dir + "/ca.crt"};
  if (std::filesystem::exists(files.key) || std::filesystem::exists(files.cert)) {
    return MakeError(Errc::kConflict, dir + ": already holds a CA (ca.key/ca.crt); not overwriting it");
  }
  GS_ASSIGN_OR_RETURN(auto key, NewKey());
  GS_ASSIGN_OR_RETURN(auto cert, NewCert(key.get(), "gapsync cluster CA " + name, valid_days));
  X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
  GS_RETURN_IF_ERROR(AddExt(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
  GS_RETURN_IF_ERROR(AddExt(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign"));
  GS_RETURN_IF_ERROR(AddExt(cert.get(), cert.get(), NID_subject_key_identifier, "hash"));
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) return MakeError(Errc::kInternal, OpenSslError("signing the CA"));
  GS_RETURN_IF_ERROR(WriteNew(files.key, 0600, [&](BIO* b) {
    return PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  }));
  GS_RETURN_IF_ERROR(WriteNew(files.cert, 0644, [&](BIO* b) { return PEM_write_bio_X509(b, cert.get()); }));
  return files;
}

Result<NodeFiles> IssueNodeCertificate(const std::string& ca_dir, const std::string& node, const std::string& out_dir,
                                       int valid_days) {
  if (!NodeName::IsValid(node)) {
    return MakeError(Errc::kInvalidArgument, "node name \"" + node + "\": use 1-63 of a-z 0-9 - . (like a host name)");
  }
  GS_ASSIGN_OR_RETURN(auto ca_key, ReadKey(ca_dir + "/ca.key"));
  GS_ASSIGN_OR_RETURN(auto ca_cert, ReadCert(ca_dir + "/ca.crt"));
  if (X509_check_private_key(ca_cert.get(), ca_key.get()) != 1) {
    return MakeError(Errc::kInvalidArgument, ca_dir + ": ca.key does not belong to ca.crt");
  }
  GS_RETURN_IF_ERROR(MakeDir(out_dir));
  NodeFiles files{out_dir + "/" + node + ".key", out_dir + "/" + node + ".crt", out_dir + "/ca.crt"};
  GS_ASSIGN_OR_RETURN(auto key, NewKey());
  GS_ASSIGN_OR_RETURN(auto cert, NewCert(key.get(), node, valid_days));
  X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert.get()));
  GS_RETURN_IF_ERROR(AddExt(cert.get(), ca_cert.get(), NID_basic_constraints, "critical,CA:FALSE"));
  GS_RETURN_IF_ERROR(AddExt(cert.get(), ca_cert.get(), NID_key_usage, "critical,digitalSignature,keyAgreement"));
  GS_RETURN_IF_ERROR(AddExt(cert.get(), ca_cert.get(), NID_ext_key_usage, "serverAuth,clientAuth"));
  GS_RETURN_IF_ERROR(AddExt(cert.get(), ca_cert.get(), NID_subject_alt_name, ("DNS:" + node + ",DNS:gapsync-data-plane").c_str()));
  GS_RETURN_IF_ERROR(AddExt(cert.get(), ca_cert.get(), NID_authority_key_identifier, "keyid:always"));
  if (X509_sign(cert.get(), ca_key.get(), EVP_sha256()) == 0) {
    return MakeError(Errc::kInternal, OpenSslError("signing the node certificate"));
  }
  GS_RETURN_IF_ERROR(WriteNew(files.key, 0600, [&](BIO* b) {
    return PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  }));
  GS_RETURN_IF_ERROR(WriteNew(files.cert, 0644, [&](BIO* b) { return PEM_write_bio_X509(b, cert.get()); }));
  if (!std::filesystem::exists(files.ca_cert)) {
    GS_RETURN_IF_ERROR(WriteNew(files.ca_cert, 0644, [&](BIO* b) { return PEM_write_bio_X509(b, ca_cert.get()); }));
  }
  return files;
}

Result<std::string> VerifyNodeCertificate(const std::string& ca_cert_path, const std::string& cert_pem_path) {
  GS_ASSIGN_OR_RETURN(auto ca, ReadCert(ca_cert_path));
  GS_ASSIGN_OR_RETURN(auto cert, ReadCert(cert_pem_path));
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, ca.get());
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, cert.get(), nullptr);
  X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
  int ok = X509_verify_cert(ctx);
  int err = X509_STORE_CTX_get_error(ctx);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  if (ok != 1) {
    return MakeError(Errc::kBadSignature, cert_pem_path + ": not a valid certificate of the cluster CA " + ca_cert_path +
                                              " (" + X509_verify_cert_error_string(err) + ")");
  }
  return CommonName(cert.get());
}

}  // namespace gapsync::transport
