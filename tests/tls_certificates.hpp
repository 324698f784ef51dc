// Test certificates made in process with OpenSSL (EC P-256): a CA, and
// certificates it signs, valid or expired, written as PEM files into a
// temporary directory that goes with the object.
#pragma once

#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tls/session.hpp"

namespace vb::test {

class certificate_dir {
public:
  certificate_dir() {
    char tmpl[] = "/tmp/vb-tls-XXXXXX";
    if (mkdtemp(tmpl) == nullptr)
      throw std::runtime_error("mkdtemp");
    dir_ = tmpl;
  }
  ~certificate_dir() { std::filesystem::remove_all(dir_); }

  /// A self-signed CA: `name`.pem and `name`.key.
  void make_ca(const std::string& name) { issue(name, "", 3600, true); }

  /// A certificate `ca` signed: valid from an hour ago for `valid_for`
  /// seconds from now (negative: expired); `san` ("IP:127.0.0.1") names
  /// the server it is for.
  void make_cert(const std::string& name, const std::string& ca,
                 long valid_for = 3600, const std::string& san = {}) {
    issue(name, ca, valid_for, false, san);
  }

  std::string path(const std::string& file) const { return (dir_ / file).string(); }

  /// `name`'s certificate and key, trusting `ca`.
  tls::credentials credentials(const std::string& name,
                               const std::string& ca) const {
    return {path(name + ".pem"), path(name + ".key"), path(ca + ".pem")};
  }

private:
  void issue(const std::string& name, const std::string& ca, long valid_for,
             bool is_ca, const std::string& san = {}) {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), ++serial_);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), valid_for);
    X509_set_pubkey(cert, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(name.c_str()),
                               -1, -1, 0);
    X509* issuer = ca.empty() ? cert : read_cert(path(ca + ".pem"));
    EVP_PKEY* issuer_key = ca.empty() ? key : read_key(path(ca + ".key"));
    X509_set_issuer_name(cert, X509_get_subject_name(issuer));
    X509V3_CTX ext_ctx;
    X509V3_set_ctx(&ext_ctx, issuer, cert, nullptr, nullptr, 0);
    auto* ext = X509V3_EXT_conf_nid(nullptr, &ext_ctx, NID_basic_constraints,
                                    is_ca ? "critical,CA:TRUE" : "CA:FALSE");
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    if (!san.empty()) {
      ext = X509V3_EXT_conf_nid(nullptr, &ext_ctx, NID_subject_alt_name,
                                san.c_str());
      X509_add_ext(cert, ext, -1);
      X509_EXTENSION_free(ext);
    }
    X509_sign(cert, issuer_key, EVP_sha256());
    write(path(name + ".pem"), [&](FILE* f) { PEM_write_X509(f, cert); });
    write(path(name + ".key"), [&](FILE* f) {
      PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
    });
    if (!ca.empty()) {
      X509_free(issuer);
      EVP_PKEY_free(issuer_key);
    }
    X509_free(cert);
    EVP_PKEY_free(key);
  }

  template <class F>
  static void write(const std::string& file, F f) {
    FILE* out = std::fopen(file.c_str(), "w");
    f(out);
    std::fclose(out);
  }

  static X509* read_cert(const std::string& file) {
    FILE* in = std::fopen(file.c_str(), "r");
    X509* x = PEM_read_X509(in, nullptr, nullptr, nullptr);
    std::fclose(in);
    return x;
  }

  static EVP_PKEY* read_key(const std::string& file) {
    FILE* in = std::fopen(file.c_str(), "r");
    EVP_PKEY* k = PEM_read_PrivateKey(in, nullptr, nullptr, nullptr);
    std::fclose(in);
    return k;
  }

  std::filesystem::path dir_;
  long serial_ = 0;
};

} // namespace vb::test
