// One description of an options struct's fields serves both directions: writing the struct's
// defaults into the config schema (so a default is written once, in the struct) and reading a
// config table back into the struct with range and choice checks whose messages name the
// dotted key. An options struct offers `void describe(T& options, OptionFields& f)` next to
// its definition, calling f.field(...) once per key (f.table(...) for a nested table).
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace normlab {

// A closed numeric range with the words a message uses for it ("> 0", "in [0, 1]").
struct Range {
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  std::string text;
};

// Whether a list may be empty.
enum class Empty { kRefused, kAllowed };

class OptionFields {
 public:
  // A check of a string value beyond its type (e.g. a norm spec): throws Error, whose problem
  // and hint the field reports under its dotted key.
  using Check = std::function<void(const std::string& value)>;

  // Collects defaults: every field(...) records the member's current value.
  static OptionFields writer();
  // Reads `table` (the config's table at dotted `path`, "" for the root); `where` names the
  // source.
  static OptionFields reader(const nlohmann::json& table, std::string path, std::string where);

  void field(const char* key, bool& value);
  void field(const char* key, int64_t& value, const Range& range = {});
  // An integer >= 0 (seeds).
  void field(const char* key, uint64_t& value);
  void field(const char* key, double& value, const Range& range = {});
  // A string, one of `choices` when they are given.
  void field(const char* key, std::string& value, const std::vector<std::string>& choices = {});
  // A string that passes `check`.
  void field(const char* key, std::string& value, const Check& check);
  // A string naming one of `names`' values (an enum).
  template <typename E, std::enable_if_t<std::is_enum_v<E>, int> = 0>
  void field(const char* key, E& value, const std::vector<std::pair<std::string, E>>& names);
  // A list of numbers, each within `range`.
  void field(const char* key, std::vector<double>& value, const Range& range = {},
             Empty empty = Empty::kRefused);
  void field(const char* key, std::vector<int64_t>& value, const Range& range = {},
             Empty empty = Empty::kRefused);
  // A list of strings (a single string in a study file is a one-element list: see
  // study::merge_config).
  void field(const char* key, std::vector<std::string>& value, Empty empty = Empty::kRefused);
  // An open table: user-chosen keys (in key order) -> strings, each passing `check` if given;
  // a message names the entry's key ("model.norm_overrides.layer1.0.bn1").
  void field(const char* key, std::vector<std::pair<std::string, std::string>>& value,
             const Check& check = {});

  // A nested table at `key`, its fields described by `describe_table` ...
  void table(const char* key, const std::function<void(OptionFields&)>& describe_table);
  // ... or by the struct's own describe().
  template <typename T>
  void table(const char* key, T& value) {
    table(key, [&value](OptionFields& f) { describe(value, f); });
  }
  // A list of tables whose keys are T's describe(): every entry needs each of them and
  // nothing else; messages name "<path>.<key>.<entry key>".
  template <typename T>
  void tables(const char* key, std::vector<T>& value);

  const nlohmann::json& defaults() const { return defaults_; }

 private:
  OptionFields() = default;
  const nlohmann::json& at(const char* key) const;
  const nlohmann::json& list_at(const char* key) const;  // at(key), checked to be a list
  std::string dotted(const std::string& key) const;
  std::string key_message(const std::string& key) const;
  void rethrow_check(const std::string& key, const Check& check, const std::string& value) const;
  // For tables(): `entry` is a table holding exactly `shape`'s keys.
  void check_entry(const char* key, const nlohmann::json& entry, const OptionFields& shape) const;
  std::string key_list() const;

  bool reading_ = false;
  const nlohmann::json* table_ = nullptr;
  std::string path_, where_;
  std::string entry_hint_;         // a tables() entry: the keys it has, for messages
  std::vector<std::string> keys_;  // described so far, in order
  nlohmann::json defaults_ = nlohmann::json::object();
};

template <typename E, std::enable_if_t<std::is_enum_v<E>, int>>
void OptionFields::field(const char* key, E& value,
                         const std::vector<std::pair<std::string, E>>& names) {
  std::string name;
  std::vector<std::string> choices;
  for (const auto& [n, e] : names) {
    choices.push_back(n);
    if (e == value) name = n;
  }
  field(key, name, choices);
  for (const auto& [n, e] : names) {
    if (n == name) value = e;
  }
}

template <typename T>
void OptionFields::tables(const char* key, std::vector<T>& value) {
  keys_.emplace_back(key);
  if (!reading_) {
    nlohmann::json list = nlohmann::json::array();
    for (auto& entry : value) {
      OptionFields w = writer();
      describe(entry, w);
      list.push_back(w.defaults());
    }
    defaults_[key] = std::move(list);
    return;
  }
  T blank;
  OptionFields shape = writer();
  describe(blank, shape);
  const nlohmann::json& list = list_at(key);
  value.clear();
  for (const auto& entry : list) {
    check_entry(key, entry, shape);
    T item;
    OptionFields r = reader(entry, dotted(key), where_);
    r.entry_hint_ = "each entry has exactly: " + shape.key_list();
    describe(item, r);
    value.push_back(std::move(item));
  }
}

// The defaults of T as a JSON table: describe() over a default-constructed T.
template <typename T>
nlohmann::json option_defaults() {
  T options;
  OptionFields f = OptionFields::writer();
  describe(options, f);
  return f.defaults();
}

// T read from `table` (the config's table at `path`, "" for the root), checked.
template <typename T>
T read_options(const nlohmann::json& table, const std::string& path, const std::string& where) {
  T options;
  OptionFields f = OptionFields::reader(table, path, where);
  describe(options, f);
  return options;
}

}  // namespace normlab
