// Fuzz target caf_messages: the CAF decoding of what a CAF provider sends
// the gateway (protocol/protocol.hpp): a BASP payload is decoded by CAF's
// binary deserializer into a caf::message of any registered type before
// any actor of ours sees it, so decoding is a trust boundary (SPEC §5: a
// provider is another program). Nothing here may crash, leak or hang.
// docs/fuzzing.md.
//
// The actor system registers every type the server does
// (vb::add_message_types: the wire block and the local ones, since a
// remote message may name any registered type). The input is decoded as
// each wire type in turn, as the argument lists of every gateway handler,
// as a caf::error (a provider's refusal, which the dispatcher prints) and
// as a caf::message. Whatever decodes is checked as the gateway checks it
// (check_provider_registration, check_heartbeat), printed as the logs
// print it (caf::to_string), and re-encoded: encoding what was decoded and
// decoding that again gives the same bytes.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include <caf/all.hpp>

#include "actors/interfaces.hpp"
#include "actors/messages.hpp"
#include "fuzz/caf_system.hpp"
#include "fuzz/fuzz_util.hpp"
#include "model/validate.hpp"
#include "protocol/protocol.hpp"

namespace {

caf::actor_system* sys = nullptr;

/// A serializer that writes nothing and refuses a float or double that is
/// not finite. CAF 0.17.6's encoder never returns on an infinite one:
/// pack754 (caf/detail/ieee_754.hpp) halves it until it is below 2, and
/// inf / 2 is inf (docs/fuzzing.md, "Findings in CAF"). The decoder can
/// produce one from a provider's bytes. The server never encodes a
/// provider's number again (the gateway refuses a non-finite heartbeat load
/// or drain timeout, and what it sends, last_seen and retry_after, are its
/// own), so the round trip skips such values.
class finite_probe final : public caf::serializer {
public:
  explicit finite_probe(caf::actor_system& sys) : caf::serializer(sys) {
  }

  caf::error begin_object(uint16_t&, std::string&) override { return {}; }
  caf::error end_object() override { return {}; }
  caf::error begin_sequence(size_t&) override { return {}; }
  caf::error end_sequence() override { return {}; }
  caf::error apply_raw(size_t, void*) override { return {}; }

protected:
  caf::error apply_impl(int8_t&) override { return {}; }
  caf::error apply_impl(uint8_t&) override { return {}; }
  caf::error apply_impl(int16_t&) override { return {}; }
  caf::error apply_impl(uint16_t&) override { return {}; }
  caf::error apply_impl(int32_t&) override { return {}; }
  caf::error apply_impl(uint32_t&) override { return {}; }
  caf::error apply_impl(int64_t&) override { return {}; }
  caf::error apply_impl(uint64_t&) override { return {}; }
  caf::error apply_impl(float& x) override { return check(x); }
  caf::error apply_impl(double& x) override { return check(x); }
  caf::error apply_impl(long double& x) override { return check(x); }
  caf::error apply_impl(std::string&) override { return {}; }
  caf::error apply_impl(std::u16string&) override { return {}; }
  caf::error apply_impl(std::u32string&) override { return {}; }

private:
  template <class T>
  static caf::error check(T x) {
    if (std::isfinite(x))
      return {};
    return caf::sec::invalid_argument;
  }
};

/// Encodes `xs`, decodes the encoding and encodes again: the same bytes.
/// Skipped for a value holding a non-finite number (finite_probe).
template <class... Ts>
void check_round_trip(Ts&... xs) {
  {
    finite_probe probe{*sys};
    if (probe(xs...))
      return;
  }
  std::vector<char> first;
  {
    caf::binary_serializer sink{*sys, first};
    if (auto err = sink(xs...))
      return; // e.g. a handle that cannot be encoded here
  }
  std::tuple<Ts...> back;
  caf::binary_deserializer source{*sys, first};
  auto err = std::apply([&](auto&... ys) { return source(ys...); }, back);
  VB_FUZZ_CHECK(!err);
  VB_FUZZ_CHECK(source.remaining() == 0);
  std::vector<char> second;
  caf::binary_serializer sink{*sys, second};
  VB_FUZZ_CHECK(!std::apply([&](auto&... ys) { return sink(ys...); }, back));
  VB_FUZZ_CHECK(first == second);
}

/// CAF's binary deserializer with one difference: a sequence longer than
/// the bytes left could hold (8 elements per byte: a vector<bool>) is
/// refused and flagged instead of allocated. CAF 0.17.6 resizes a
/// std::vector<char> (the builtin `@charbuf`, which any message may carry)
/// and a vector<bool> to the declared length, up to 2^32-1, before it
/// checks that the input holds that many bytes: a 10-byte input makes it
/// allocate and zero 4 GiB, then fail (docs/fuzzing.md, "Findings in
/// CAF"). Such an input cannot decode; it can only cost memory and time, and
/// under ASan it stalled the fuzzer at a few dozen inputs per second. Every
/// other call goes to a binary_deserializer, so what this accepts decodes
/// exactly as CAF's own does.
class bounded_source final : public caf::deserializer {
public:
  bounded_source(caf::actor_system& sys, const char* data, size_t size)
    : caf::deserializer(sys), inner_(sys, data, size) {
  }

  bool oversized = false;

  caf::error begin_object(uint16_t& nr, std::string& name) override {
    return inner_.begin_object(nr, name);
  }
  caf::error end_object() override {
    return inner_.end_object();
  }
  caf::error begin_sequence(size_t& n) override {
    if (auto err = inner_.begin_sequence(n))
      return err;
    if (n / 8 > inner_.remaining()) {
      oversized = true;
      return caf::sec::end_of_stream;
    }
    return caf::none;
  }
  caf::error end_sequence() override {
    return inner_.end_sequence();
  }
  caf::error apply_raw(size_t n, void* storage) override {
    return inner_.apply_raw(n, storage);
  }

protected:
  caf::error apply_impl(int8_t& x) override { return inner_.apply(x); }
  caf::error apply_impl(uint8_t& x) override { return inner_.apply(x); }
  caf::error apply_impl(int16_t& x) override { return inner_.apply(x); }
  caf::error apply_impl(uint16_t& x) override { return inner_.apply(x); }
  caf::error apply_impl(int32_t& x) override { return inner_.apply(x); }
  caf::error apply_impl(uint32_t& x) override { return inner_.apply(x); }
  caf::error apply_impl(int64_t& x) override { return inner_.apply(x); }
  caf::error apply_impl(uint64_t& x) override { return inner_.apply(x); }
  caf::error apply_impl(float& x) override { return inner_.apply(x); }
  caf::error apply_impl(double& x) override { return inner_.apply(x); }
  caf::error apply_impl(long double& x) override { return inner_.apply(x); }
  caf::error apply_impl(std::string& x) override { return inner_.apply(x); }
  caf::error apply_impl(std::u16string& x) override { return inner_.apply(x); }
  caf::error apply_impl(std::u32string& x) override { return inner_.apply(x); }

private:
  caf::binary_deserializer inner_;
};

/// Whether CAF's decoder would allocate a sequence the input cannot hold on
/// the way to decoding `Ts...` from `data` (bounded_source).
template <class... Ts>
bool oversized(const uint8_t* data, size_t size) {
  std::tuple<Ts...> xs;
  bounded_source source{*sys, reinterpret_cast<const char*>(data), size};
  (void) std::apply([&](auto&... ys) { return source(ys...); }, xs);
  return source.oversized;
}

/// Decodes `data` as `Ts...` (one after the other, as the elements of a
/// message) with CAF's own decoder; on success calls `then` with them and
/// checks the round trip. Skipped when the decoder would allocate a
/// sequence longer than the input (bounded_source).
template <class... Ts, class F>
void decode_as(const uint8_t* data, size_t size, F then) {
  if (oversized<Ts...>(data, size))
    return;
  std::tuple<Ts...> xs;
  caf::binary_deserializer source{*sys, reinterpret_cast<const char*>(data),
                                  size};
  auto err = std::apply([&](auto&... ys) { return source(ys...); }, xs);
  if (err)
    return;
  std::apply(then, xs);
  std::apply([](auto&... ys) { check_round_trip(ys...); }, xs);
}

template <class... Ts>
void decode_as(const uint8_t* data, size_t size) {
  decode_as<Ts...>(data, size, [](auto&...) {});
}

/// What the gateway does with a registration before anything else.
void check_registration(vb::provider_registration& reg) {
  vb::check_provider_registration(reg);
  VB_FUZZ_CHECK(vb::to_string(reg.via) != nullptr);
}

/// The gateway's heartbeat check (actors/gateway.cpp), normalizing first.
void check_heartbeat(vb::heartbeat& hb) {
  if (hb.load < 0)
    hb.load = -1;
  if (hb.capacity < 0)
    hb.capacity = -1;
  vb::check_heartbeat(hb);
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  sys = vb::fuzz::make_system(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (sys == nullptr)
    LLVMFuzzerInitialize(nullptr, nullptr);
  using namespace vb;

  // The wire types one by one.
  decode_as<provider_registration>(
    data, size, [](provider_registration& x) { check_registration(x); });
  decode_as<heartbeat>(data, size,
                       [](heartbeat& x) { check_heartbeat(x); });
  decode_as<bot_info>(data, size);
  decode_as<std::vector<bot_info>>(data, size);
  decode_as<session>(data, size);
  decode_as<dispatch_request>(data, size);
  decode_as<bot_run>(data, size);
  decode_as<std::vector<bot_run>>(data, size);
  decode_as<registration_result>(data, size);
  decode_as<lobby_event>(data, size);
  decode_as<bot_host_actor>(data, size);
  decode_as<provider_gateway_actor>(data, size);

  // The argument lists of the gateway's handlers (provider_gateway_actor),
  // and the answers a bot host gives (bot_host_actor). An atom crosses as
  // its caf::atom_value (CAF cannot decode into an atom_constant).
  decode_as<caf::atom_value, uint32_t>(data, size);
  decode_as<caf::atom_value, uint32_t, provider_registration,
            bot_host_actor, std::vector<bot_run>>(
    data, size,
    [](auto&, auto&, provider_registration& reg, auto&, auto&) {
      check_registration(reg);
    });
  decode_as<caf::atom_value, std::string, heartbeat>(
    data, size, [](auto&, std::string& id, heartbeat& hb) {
      check_id_path(id, "provider_id");
      check_heartbeat(hb);
    });
  decode_as<caf::atom_value, std::string, std::string, double>(data, size);
  decode_as<caf::atom_value, std::string, std::string>(data, size);
  decode_as<caf::atom_value, std::string, std::string, std::string>(data, size);
  decode_as<std::string>(data, size);
  decode_as<bool>(data, size);

  // A provider's refusal: the dispatcher reads its code and prints it.
  decode_as<caf::error>(data, size, [](caf::error& err) {
    // CAF 0.17.6's error::category() dereferences a null error: a decoded
    // "no error" crashed vb::code_of (protocol/protocol.hpp) until it
    // checked for it (corpus: crash-none-error).
    (void) code_of(err);
    (void) caf::to_string(err);
    (void) sys->render(err);
  });

  // Any message: what BASP hands to the gateway's mailbox.
  decode_as<caf::message>(data, size, [](caf::message& msg) {
    (void) caf::to_string(msg);
    (void) msg.match_elements<caf::atom_value, uint32_t>();
    (void) msg.match_elements<caf::atom_value, uint32_t,
                              provider_registration, bot_host_actor,
                              std::vector<bot_run>>();
    if (msg.match_elements<caf::atom_value, std::string, heartbeat>()) {
      auto hb = msg.get_as<heartbeat>(2);
      check_heartbeat(hb);
    }
    if (msg.match_elements<caf::atom_value, uint32_t,
                           provider_registration, bot_host_actor,
                           std::vector<bot_run>>()) {
      auto reg = msg.get_as<provider_registration>(2);
      check_registration(reg);
    }
  });
  return 0;
}
