// The journal store's image (actors/journal_store): what a compaction
// captures is frozen while changes go on, and they are all there after it.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "actors/journal_store.hpp"

using namespace vb;

namespace {

image_op put(std::string parent, std::string key, std::string json) {
  return image_op{std::move(parent), std::move(key),
                  std::make_shared<const std::string>(std::move(json))};
}

image_op erase(std::string parent, std::string key) {
  return image_op{std::move(parent), std::move(key), nullptr};
}

/// "key=json" of each entry, in order.
std::vector<std::string> listing(const image_entries& es) {
  std::vector<std::string> out;
  for (auto& [order, e] : es)
    out.push_back(std::string{e->key()} + "=" + *e->json);
  return out;
}

} // namespace

TEST_CASE("a captured image stays as it was while changes go on, and has "
          "them all once settled", "[store]") {
  store_image img;
  img.apply(put("", "a", "1"));
  img.apply(put("", "b", "2"));
  img.apply(put("", "c", "3"));
  auto frozen = img.capture();
  CHECK(img.frozen());
  img.apply(put("", "b", "2'"));  // replaced
  img.apply(erase("", "c"));      // removed
  img.apply(put("", "d", "4"));   // new
  img.apply(put("", "e", "5"));
  img.apply(erase("", "e"));      // new, then removed
  img.apply(erase("", "a"));
  img.apply(put("", "a", "1'"));  // removed, then set again: now last
  CHECK(listing(*frozen) == std::vector<std::string>{"a=1", "b=2", "c=3"});
  frozen.reset(); // the compaction is done with it
  img.settle();
  CHECK_FALSE(img.frozen());
  CHECK(img.size() == 3);
  auto now = img.capture();
  CHECK(listing(*now) == std::vector<std::string>{"b=2'", "d=4", "a=1'"});
  img.settle();
}

TEST_CASE("settling while the capture is still read leaves it untouched",
          "[store]") {
  store_image img;
  img.apply(put("", "a", "1"));
  auto held = img.capture();
  img.apply(put("", "a", "2"));
  img.settle(); // the writer still holds `held` (a timed-out compaction)
  CHECK(listing(*held) == std::vector<std::string>{"a=1"});
  auto now = img.capture();
  CHECK(listing(*now) == std::vector<std::string>{"a=2"});
}

TEST_CASE("members render under their lobby in the order they joined",
          "[store]") {
  store_image img;
  img.apply(put("", "l1", R"({"created_at":1.0,"id":"l1","name":"one","private":false})"));
  img.apply(put("", "l2", R"({"created_at":2.0,"id":"l2","name":"two","private":false})"));
  auto s = std::make_shared<session>();
  s->session_id = "s1";
  s->nick = "n";
  s->is_bot = true;
  img.apply(image_op{"l2", "s1", nullptr, s});
  img.apply(put("l1", "s2", R"({"session_id":"s2"})"));
  auto text = render_lobbies(*img.capture(), 7);
  CHECK(text.find(R"("journal_seq":7)") != std::string::npos);
  CHECK(text.find(R"("id":"l1","name":"one","private":false,"sessions":[{"session_id":"s2"}])")
        != std::string::npos);
  CHECK(text.find(R"("sessions":[{"bot_name":"","is_bot":true,)") != std::string::npos);
  img.settle();
}
