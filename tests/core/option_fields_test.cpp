// OptionFields: one description of a struct's fields writes its defaults and reads it back
// with checks that name the dotted key.
#include "core/option_fields.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace normlab
