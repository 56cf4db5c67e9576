// One description of an options struct's fields serves both directions: writing the struct's
// defaults into the config schema (so a default is written once, in the struct) and reading a
// config table back into the struct with range and choice checks whose messages name the
// dotted key. An options struct offers `void describe(T& options, OptionFields& f)` next to
// its definition, calling f.field(...) once per key.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace normlab {

// A closed numeric range with the words a message uses for it ("> 0", "in [0, 1]").
struct Range {
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  std::string text;
};

class OptionFields {
 public:
  // Collects defaults: every field(...) records the member's current value.
  static OptionFields writer();
  // Reads `table` (the config's table at dotted `path`); `where` names the source.
  static OptionFields reader(const nlohmann::json& table, std::string path, std::string where);

  void field(const char* key, bool& value);
  void field(const char* key, int64_t& value, const Range& range = {});
  void field(const char* key, double& value, const Range& range = {});
  // A string, one of `choices` when they are given.
  void field(const char* key, std::string& value, const std::vector<std::string>& choices = {});
  // A non-empty list of numbers, each within `range`.
  void field(const char* key, std::vector<double>& value, const Range& range = {});

  const nlohmann::json& defaults() const { return defaults_; }

 private:
  OptionFields() = default;
  const nlohmann::json& at(const char* key) const;
  std::string key_message(const char* key) const;

  bool reading_ = false;
  const nlohmann::json* table_ = nullptr;
  std::string path_, where_;
  nlohmann::json defaults_ = nlohmann::json::object();
};

// The defaults of T as a JSON table: describe() over a default-constructed T.
template <typename T>
nlohmann::json option_defaults() {
  T options;
  OptionFields f = OptionFields::writer();
  describe(options, f);
  return f.defaults();
}

// T read from `table` (the config's table at `path`), checked.
template <typename T>
T read_options(const nlohmann::json& table, const std::string& path, const std::string& where) {
  T options;
  OptionFields f = OptionFields::reader(table, path, where);
  describe(options, f);
  return options;
}

}  // namespace normlab
