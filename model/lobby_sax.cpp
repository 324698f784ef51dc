#include "model/lobby_sax.hpp"

#include <nlohmann/json.hpp>

namespace vb::detail {

namespace {

using json = nlohmann::json;

/// Where the reader is: which struct the next key's value goes to.
enum class where {
  top,      // the document (snapshot) or the record
  lobbies,  // the snapshot's "lobbies" array
  lobby,    // a lobby object
  sessions, // a lobby's "sessions" array
  session,  // a session object
  skip,     // inside a value of an unknown key
};

class reader : public nlohmann::json_sax<json> {
public:
  reader(lobbies_doc* doc, lobby_record_doc* rec) : doc_(doc), rec_(rec) {
  }

  std::string why;

  bool null() override {
    if (skipping())
      return true;
    if (here() == where::lobbies || here() == where::sessions)
      return scalar("null");
    return true; // a null field is a missing one
  }
  bool boolean(bool v) override {
    if (skipping())
      return true;
    if (auto* b = bool_field())
      return *b = v, true;
    return scalar("boolean");
  }
  bool number_integer(number_integer_t v) override {
    return number(static_cast<double>(v), v, v >= 0, static_cast<uint64_t>(v));
  }
  bool number_unsigned(number_unsigned_t v) override {
    return number(static_cast<double>(v), static_cast<int64_t>(v), true, v);
  }
  bool number_float(number_float_t v, const string_t&) override {
    return number(v, 0, false, 0, true);
  }
  bool string(string_t& v) override {
    if (skipping())
      return true;
    if (auto* s = string_field())
      return *s = std::move(v), true;
    return scalar("string");
  }
  bool binary(binary_t&) override {
    return true;
  }
  bool start_object(std::size_t) override {
    return open(true);
  }
  bool end_object() override {
    return close();
  }
  bool start_array(std::size_t) override {
    return open(false);
  }
  bool end_array() override {
    return close();
  }
  bool key(string_t& k) override {
    key_ = std::move(k);
    return true;
  }
  bool parse_error(std::size_t, const std::string&,
                   const nlohmann::detail::exception& e) override {
    why = std::string{"malformed JSON ("} + e.what() + ")";
    return false;
  }

private:
  bool skipping() const {
    return !stack_.empty() && stack_.back() == where::skip;
  }

  where here() const {
    return stack_.empty() ? where::top : stack_.back();
  }

  lobby* cur_lobby() {
    if (doc_)
      return doc_->lobbies.empty() ? nullptr : &doc_->lobbies.back();
    return &rec_->header;
  }

  session* cur_session() {
    if (doc_) {
      auto* l = cur_lobby();
      return l == nullptr || l->sessions.empty() ? nullptr : &l->sessions.back();
    }
    if (in_record_session_)
      return &rec_->member;
    auto* l = cur_lobby();
    return l->sessions.empty() ? nullptr : &l->sessions.back();
  }

  std::string* string_field() {
    switch (here()) {
      case where::top:
        if (doc_) {
          if (key_ == "format")
            return doc_->has_format = true, &doc_->format;
          return nullptr;
        }
        if (key_ == "op")
          return &rec_->op;
        if (key_ == "lobby_id")
          return &rec_->lobby_id;
        if (key_ == "session_id")
          return &rec_->session_id;
        return nullptr;
      case where::lobby: {
        auto* l = cur_lobby();
        if (key_ == "id")
          return &l->id;
        if (key_ == "name")
          return &l->name;
        return nullptr;
      }
      case where::session: {
        auto* s = cur_session();
        if (key_ == "session_id")
          return &s->session_id;
        if (key_ == "nick")
          return &s->nick;
        if (key_ == "bot_name")
          return &s->bot_name;
        if (key_ == "token_hash")
          return &s->token_hash;
        if (key_ == "provider_id")
          return &s->provider_id;
        if (key_ == "run_id")
          return &s->run_id;
        return nullptr;
      }
      default:
        return nullptr;
    }
  }

  bool* bool_field() {
    if (here() == where::lobby && key_ == "private")
      return &cur_lobby()->is_private;
    if (here() == where::lobby && key_ == "had_people")
      return &cur_lobby()->had_people;
    if (here() == where::session && key_ == "is_bot")
      return &cur_session()->is_bot;
    if (here() == where::session && key_ == "orphaned")
      return &cur_session()->orphaned;
    if (here() == where::session && key_ == "voice")
      return &cur_session()->voice;
    return nullptr;
  }

  double* double_field() {
    if (here() == where::lobby && key_ == "created_at")
      return &cur_lobby()->created_at;
    if (here() == where::session && key_ == "joined_at")
      return &cur_session()->joined_at;
    if (here() == where::session && key_ == "moved_at")
      return &cur_session()->moved_at;
    return nullptr;
  }

  /// A key this reader knows (a value of another type is an error).
  bool known() {
    switch (here()) {
      case where::top:
        if (doc_)
          return key_ == "format" || key_ == "version" || key_ == "journal_seq"
                 || key_ == "lobbies";
        return key_ == "op" || key_ == "lobby_id" || key_ == "session_id"
               || key_ == "session" || key_ == "lobby";
      case where::lobby:
        return key_ == "id" || key_ == "name" || key_ == "private"
               || key_ == "created_at" || key_ == "sessions"
               || key_ == "had_people";
      case where::session:
        return key_ == "session_id" || key_ == "nick" || key_ == "is_bot"
               || key_ == "bot_name" || key_ == "provider_id"
               || key_ == "run_id" || key_ == "joined_at"
               || key_ == "orphaned" || key_ == "moved_at"
               || key_ == "token_hash" || key_ == "voice";
      default:
        return false;
    }
  }

  /// What a known key holds.
  const char* expected() const {
    for (auto k : {"private", "is_bot", "orphaned", "voice", "had_people"})
      if (key_ == k)
        return "a boolean";
    for (auto k : {"created_at", "joined_at", "moved_at", "version",
                   "journal_seq"})
      if (key_ == k)
        return "a number";
    for (auto k : {"lobbies", "sessions"})
      if (key_ == k)
        return "an array";
    if (key_ == "session" || key_ == "lobby")
      return "an object";
    return "a string";
  }

  /// "lobbies[i]: sessions[j]: " for where the reader is.
  std::string position() const {
    std::string out;
    for (auto w : stack_) {
      if (w == where::lobby && doc_)
        out += "lobbies[" + std::to_string(doc_->lobbies.size() - 1) + "]: ";
      if (w == where::session && doc_)
        out += "sessions["
               + std::to_string(doc_->lobbies.back().sessions.size() - 1)
               + "]: ";
    }
    return out;
  }

  bool wrong(const char* got) {
    if (doc_ && here() == where::top && key_ == "lobbies")
      why = "no \"lobbies\" array";
    else
      why = position() + "field '" + key_ + "' must be " + expected()
            + ", not " + got;
    return false;
  }

  bool scalar(const char* what) {
    if (skipping())
      return true;
    if (here() == where::lobbies || here() == where::sessions) {
      why = position() + (here() == where::lobbies ? "a lobby" : "a session")
            + " must be an object, not " + what;
      return false;
    }
    return known() ? wrong(what) : true;
  }

  bool number(double d, int64_t i, bool is_unsigned, uint64_t u,
              bool is_float = false) {
    if (skipping())
      return true;
    if (auto* x = double_field())
      return *x = d, true;
    if (doc_ && here() == where::top) {
      if (key_ == "version") {
        if (is_float)
          return wrong("number");
        doc_->has_version = true;
        doc_->version = i;
        return true;
      }
      if (key_ == "journal_seq") {
        if (!is_unsigned || is_float) {
          why = "\"journal_seq\" is not an unsigned integer";
          return false;
        }
        doc_->journal_seq = u;
        return true;
      }
    }
    return scalar("number");
  }

  bool open(bool object) {
    if (skipping()) {
      stack_.push_back(where::skip);
      return true;
    }
    if (!started_) {
      started_ = true;
      if (!object) {
        why = "top level is array, not an object";
        return false;
      }
      return true; // the top object: where::top is the empty stack
    }
    switch (here()) {
      case where::top:
        if (doc_ && key_ == "lobbies" && !object) {
          doc_->has_lobbies = true;
          stack_.push_back(where::lobbies);
          return true;
        }
        if (rec_ && key_ == "session" && object) {
          rec_->has_session = true;
          in_record_session_ = true;
          stack_.push_back(where::session);
          return true;
        }
        if (rec_ && key_ == "lobby" && object) {
          rec_->has_lobby = true;
          stack_.push_back(where::lobby);
          return true;
        }
        break;
      case where::lobbies:
        if (!object)
          return scalar("array");
        doc_->lobbies.emplace_back();
        stack_.push_back(where::lobby);
        return true;
      case where::lobby:
        if (key_ == "sessions" && !object) {
          stack_.push_back(where::sessions);
          return true;
        }
        break;
      case where::sessions:
        if (!object)
          return scalar("array");
        cur_lobby()->sessions.emplace_back();
        stack_.push_back(where::session);
        return true;
      default:
        break;
    }
    if (known())
      return wrong(object ? "object" : "array");
    stack_.push_back(where::skip);
    return true;
  }

  bool close() {
    if (!stack_.empty()) {
      if (stack_.back() == where::session)
        in_record_session_ = false;
      stack_.pop_back();
    }
    return true;
  }

  lobbies_doc* doc_;
  lobby_record_doc* rec_;
  std::vector<where> stack_;
  std::string key_;
  bool started_ = false;
  bool in_record_session_ = false;
};

bool run(const std::string& text, reader& r, std::string& why) {
  bool ok = json::sax_parse(text, &r, json::input_format_t::json, true);
  if (!ok) {
    why = r.why.empty() ? "malformed JSON" : r.why;
    return false;
  }
  return true;
}

} // namespace

bool read_lobbies_doc(const std::string& text, lobbies_doc& out,
                      std::string& why) {
  reader r{&out, nullptr};
  return run(text, r, why);
}

bool read_lobby_record(const std::string& text, lobby_record_doc& out,
                       std::string& why) {
  reader r{nullptr, &out};
  return run(text, r, why);
}

} // namespace vb::detail
