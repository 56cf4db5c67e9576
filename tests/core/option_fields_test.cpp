// OptionFields: one description of a struct's fields writes its defaults and reads it back
// with checks that name the dotted key.
#include "core/option_fields.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "core/error.h"

namespace normlab {
namespace {

struct Example {
  bool on = true;
  int64_t count = 3;
  double rate = 0.5;
  std::string mode = "auto";
};

void describe(Example& e, OptionFields& f) {
  f.field("on", e.on);
  f.field("count", e.count, Range{1, 10, "in [1, 10]"});
  f.field("rate", e.rate, Range{0, 1, "in [0, 1]"});
  f.field("mode", e.mode, {"auto", "min", "max"});
}

std::string error_of(const nlohmann::json& table) {
  try {
    read_options<Example>(table, "train.example", "spec.toml");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(OptionFields, DefaultsComeFromTheStructAndReadBack) {
  nlohmann::json d = option_defaults<Example>();
  EXPECT_EQ(d, nlohmann::json::parse(R"({"on": true, "count": 3, "rate": 0.5, "mode": "auto"})"));
  EXPECT_TRUE(d["rate"].is_number_float());
  d["count"] = 7;
  d["mode"] = "max";
  Example e = read_options<Example>(d, "train.example", "spec.toml");
  EXPECT_EQ(e.count, 7);
  EXPECT_EQ(e.mode, "max");
  EXPECT_DOUBLE_EQ(e.rate, 0.5);
}

TEST(OptionFields, BadValuesNameTheDottedKey) {
  nlohmann::json d = option_defaults<Example>();
  auto with = [&](const char* key, nlohmann::json v) {
    nlohmann::json t = d;
    t[key] = v;
    return error_of(t);
  };
  std::string e = with("count", 11);
  EXPECT_NE(e.find("spec.toml: key 'train.example.count'"), std::string::npos) << e;
  EXPECT_NE(e.find("in [1, 10]"), std::string::npos) << e;
  e = with("mode", "median");
  EXPECT_NE(e.find("'median'"), std::string::npos) << e;
  EXPECT_NE(e.find("auto, min, max"), std::string::npos) << e;
  EXPECT_NE(with("on", 1).find("expected a boolean"), std::string::npos);
  EXPECT_NE(with("count", 1.5).find("expected an integer"), std::string::npos);
  EXPECT_NE(with("rate", -0.1).find("train.example.rate"), std::string::npos);
}

// The extensions: seeds, enums, checked strings, lists, open tables, nested tables and lists of
// tables with fixed keys.
enum class Side { kLeft, kRight };

struct Rule {
  std::string pattern;
  double lr = 0;
};

void describe(Rule& r, OptionFields& f) {
  f.field("pattern", r.pattern);
  f.field("lr", r.lr, Range{1e-12, 1e12, "> 0"});
}

struct Inner {
  int64_t size = 4;
  std::vector<std::string> names;
};

void describe(Inner& i, OptionFields& f) {
  f.field("size", i.size, Range{1, 100, "in [1, 100]"});
  f.field("names", i.names, Empty::kAllowed);
}

void check_word(const std::string& v) {
  require(v.find(' ') == std::string::npos, "word '" + v + "'", "has a space '" + v + "'",
          "write one word");
}

struct Outer {
  uint64_t seed = 0;
  Side side = Side::kRight;
  std::string word = "w";
  std::vector<int64_t> ids;
  std::vector<std::string> tags = {"a"};
  std::vector<std::pair<std::string, std::string>> overrides;
  Inner inner;
  int64_t flat = 2;  // in the "more" table, described by a function
  std::vector<Rule> rules;
};

void describe(Outer& o, OptionFields& f) {
  f.field("seed", o.seed);
  f.field("side", o.side, {{"left", Side::kLeft}, {"right", Side::kRight}});
  f.field("word", o.word, check_word);
  f.field("ids", o.ids, Range{0, 9, ">= 0 and < 10"}, Empty::kAllowed);
  f.field("tags", o.tags);
  f.field("overrides", o.overrides, check_word);
  f.table("inner", o.inner);
  f.table("more", [&](OptionFields& m) { m.field("flat", o.flat, Range{0, 5, "in [0, 5]"}); });
  f.tables("rules", o.rules);
}

// The message of reading `table` as an Outer at the config's root ("" if none).
std::string outer_error(const nlohmann::json& table) {
  try {
    read_options<Outer>(table, "", "spec.toml");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// The defaults with `dotted` ("inner.size") replaced by `value`.
nlohmann::json outer_with(const std::string& dotted, const nlohmann::json& value) {
  std::string pointer = "/" + dotted;
  std::replace(pointer.begin(), pointer.end(), '.', '/');
  nlohmann::json d = option_defaults<Outer>();
  d[nlohmann::json::json_pointer(pointer)] = value;
  return d;
}

void expect_refused(const std::string& dotted, const nlohmann::json& value,
                    const std::vector<std::string>& needles) {
  const std::string e = outer_error(outer_with(dotted, value));
  ASSERT_FALSE(e.empty()) << dotted << " = " << value.dump() << " was accepted";
  for (const auto& n : needles) EXPECT_NE(e.find(n), std::string::npos) << n << " in: " << e;
}

TEST(OptionFields, ExtensionsWriteTheirDefaults) {
  EXPECT_EQ(option_defaults<Outer>(), nlohmann::json::parse(R"({
    "seed": 0, "side": "right", "word": "w", "ids": [], "tags": ["a"], "overrides": {},
    "inner": {"size": 4, "names": []}, "more": {"flat": 2}, "rules": []})"));
  Outer o;
  o.overrides = {{"b", "x"}, {"a", "y"}};
  o.rules = {{"head", 0.1}};
  OptionFields f = OptionFields::writer();
  describe(o, f);
  EXPECT_EQ(f.defaults()["overrides"], nlohmann::json::parse(R"({"a": "y", "b": "x"})"));
  EXPECT_EQ(f.defaults()["rules"], nlohmann::json::parse(R"([{"pattern": "head", "lr": 0.1}])"));
}

TEST(OptionFields, ExtensionsReadBack) {
  nlohmann::json d = option_defaults<Outer>();
  d["seed"] = 7;
  d["side"] = "left";
  d["ids"] = {3, 1};
  d["tags"] = {"x", "y"};
  d["overrides"] = {{"layer2", "b"}, {"layer1", "a"}};
  d["inner"]["names"] = {"n"};
  d["more"]["flat"] = 5;
  d["rules"] =
      nlohmann::json::parse(R"([{"pattern": "head", "lr": 0.5}, {"lr": 2, "pattern": ""}])");
  const Outer o = read_options<Outer>(d, "", "spec.toml");
  EXPECT_EQ(o.seed, 7u);
  EXPECT_EQ(o.side, Side::kLeft);
  EXPECT_EQ(o.ids, (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(o.tags, (std::vector<std::string>{"x", "y"}));
  using Pairs = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(o.overrides, (Pairs{{"layer1", "a"}, {"layer2", "b"}}));  // key order
  EXPECT_EQ(o.inner.names, std::vector<std::string>{"n"});
  EXPECT_EQ(o.flat, 5);
  ASSERT_EQ(o.rules.size(), 2u);
  EXPECT_EQ(o.rules[0].pattern, "head");
  EXPECT_DOUBLE_EQ(o.rules[1].lr, 2.0);
  // Read back from its own defaults, a struct is unchanged.
  const Outer same = read_options<Outer>(option_defaults<Outer>(), "", "spec.toml");
  EXPECT_EQ(same.side, Side::kRight);
  EXPECT_EQ(same.tags, std::vector<std::string>{"a"});
  EXPECT_TRUE(same.rules.empty());
}

TEST(OptionFields, ExtensionMessagesNameTheDottedKey) {
  // The root table names its keys without a leading dot.
  expect_refused("seed", -1, {"spec.toml: key 'seed'", ">= 0, got -1"});
  expect_refused("side", "up", {"key 'side'", "'up'", "left, right"});
  expect_refused("word", "two words", {"key 'word'", "has a space 'two words'", "one word"});
  expect_refused("ids", {1, 10}, {"key 'ids'", ">= 0 and < 10", "10"});
  expect_refused("ids", {1, "a"}, {"key 'ids'", "expected integers"});
  EXPECT_EQ(outer_error(outer_with("ids", nlohmann::json::array())), "");
  expect_refused("tags", nlohmann::json::array(), {"key 'tags'", "non-empty list of strings"});
  expect_refused("tags", {"a", 3}, {"key 'tags'", "expected strings"});
  expect_refused("overrides", {{"layer1", "x y"}},
                 {"key 'overrides.layer1'", "has a space 'x y'", "one word"});
  expect_refused("overrides", {{"layer1", 3}}, {"key 'overrides.layer1'", "expected a string"});
  expect_refused("overrides", {"a"}, {"key 'overrides'", "expected a table"});
  expect_refused("inner.size", 0, {"spec.toml: key 'inner.size'", "in [1, 100]"});
  expect_refused("inner.names", {1}, {"key 'inner.names'", "expected strings"});
  expect_refused("inner", 3, {"key 'inner'", "expected a table"});
  expect_refused("more.flat", 6, {"key 'more.flat'", "in [0, 5]"});
  // A list of tables: each entry holds exactly the described keys.
  expect_refused("rules", nlohmann::json::parse(R"([{"pattern": "head", "lrr": 1}])"),
                 {"key 'rules.lrr'", "unknown key", "each entry has exactly: pattern, lr"});
  expect_refused("rules", nlohmann::json::parse(R"([{"pattern": "head"}])"),
                 {"key 'rules.lr'", "is missing", "pattern, lr"});
  expect_refused("rules", nlohmann::json::parse(R"([{"pattern": "head", "lr": 0}])"),
                 {"key 'rules.lr'", "> 0"});
  expect_refused("rules", nlohmann::json::parse(R"([{"pattern": 3, "lr": 1}])"),
                 {"key 'rules.pattern'", "expected a string"});
  expect_refused("rules", nlohmann::json::parse(R"([3])"),
                 {"key 'rules'", "each entry must be a table", "pattern, lr"});
  expect_refused("rules", "head", {"key 'rules'", "expected a list"});
  // Below a path, the path leads.
  nlohmann::json d = option_defaults<Outer>();
  d["inner"]["size"] = 101;
  std::string e;
  try {
    read_options<Outer>(d, "model.outer", "f.toml [run]");
  } catch (const Error& err) {
    e = err.what();
  }
  EXPECT_NE(e.find("f.toml [run]: key 'model.outer.inner.size'"), std::string::npos) << e;
}

}  // namespace
}  // namespace normlab
