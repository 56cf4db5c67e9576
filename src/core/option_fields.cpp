#include "core/option_fields.h"

#include "core/error.h"

namespace normlab {

OptionFields OptionFields::writer() { return OptionFields(); }

OptionFields OptionFields::reader(const nlohmann::json& table, std::string path,
                                  std::string where) {
  OptionFields f;
  f.reading_ = true;
  f.table_ = &table;
  f.path_ = std::move(path);
  f.where_ = std::move(where);
  return f;
}

std::string OptionFields::dotted(const std::string& key) const {
  return path_.empty() ? key : path_ + "." + key;
}

std::string OptionFields::key_message(const std::string& key) const {
  return where_ + ": key '" + dotted(key) + "'";
}

std::string OptionFields::key_list() const {
  std::string list;
  for (const auto& k : keys_) list += (list.empty() ? "" : ", ") + k;
  return list;
}

const nlohmann::json& OptionFields::at(const char* key) const {
  require(table_->is_object() && table_->contains(key), key_message(key), "is missing",
          entry_hint_);
  return table_->at(key);
}

const nlohmann::json& OptionFields::list_at(const char* key) const {
  const auto& v = at(key);
  require(v.is_array(), key_message(key), "expected a list, got " + v.dump());
  return v;
}

void OptionFields::rethrow_check(const std::string& key, const Check& check,
                                 const std::string& value) const {
  if (!check) return;
  try {
    check(value);
  } catch (const Error& e) {
    throw Error(key_message(key), e.problem(), e.hint());
  }
}

void OptionFields::field(const char* key, bool& value) {
  keys_.emplace_back(key);
  if (!reading_) {
    defaults_[key] = value;
    return;
  }
  const auto& v = at(key);
  require(v.is_boolean(), key_message(key), "expected a boolean, got " + v.dump());
  value = v.get<bool>();
}

void OptionFields::field(const char* key, int64_t& value, const Range& range) {
  keys_.emplace_back(key);
  if (!reading_) {
    defaults_[key] = value;
    return;
  }
  const auto& v = at(key);
  require(v.is_number_integer(), key_message(key), "expected an integer, got " + v.dump());
  value = v.get<int64_t>();
  const auto d = static_cast<double>(value);
  require(d >= range.lo && d <= range.hi, key_message(key),
          "must be " + range.text + ", got " + std::to_string(value));
}

void OptionFields::field(const char* key, uint64_t& value) {
  if (!reading_) {
    keys_.emplace_back(key);
    defaults_[key] = value;
    return;
  }
  auto v = static_cast<int64_t>(value);
  field(key, v, Range{0, std::numeric_limits<double>::infinity(), ">= 0"});
  value = static_cast<uint64_t>(v);
}

void OptionFields::field(const char* key, double& value, const Range& range) {
  keys_.emplace_back(key);
  if (!reading_) {
    defaults_[key] = value;
    return;
  }
  const auto& v = at(key);
  require(v.is_number(), key_message(key), "expected a number, got " + v.dump());
  value = v.get<double>();
  require(value >= range.lo && value <= range.hi, key_message(key),
          "must be " + range.text + ", got " + std::to_string(value));
}

void OptionFields::field(const char* key, std::string& value,
                         const std::vector<std::string>& choices) {
  keys_.emplace_back(key);
  if (!reading_) {
    defaults_[key] = value;
    return;
  }
  const auto& v = at(key);
  require(v.is_string(), key_message(key), "expected a string, got " + v.dump());
  value = v.get<std::string>();
  if (choices.empty()) return;
  std::string list;
  for (const auto& c : choices) {
    if (c == value) return;
    list += (list.empty() ? "" : ", ") + c;
  }
  throw Error(key_message(key), "unknown value '" + value + "'", "use one of: " + list);
}

void OptionFields::field(const char* key, std::string& value, const Check& check) {
  field(key, value);
  if (reading_) rethrow_check(key, check, value);
}

void OptionFields::field(const char* key, std::vector<double>& value, const Range& range,
                         Empty empty) {
  keys_.emplace_back(key);
  if (!reading_) {
    defaults_[key] = value;
    return;
  }
  const auto& v = at(key);
  const bool refuse_empty = empty == Empty::kRefused;
  require(v.is_array() && !(refuse_empty && v.empty()), key_message(key),
          std::string(refuse_empty ? "expected a non-empty list" : "expected a list") +
              " of numbers, got " + v.dump());
  value.clear();
  for (const auto& e : v) {
    require(e.is_number(), key_message(key), "expected numbers, got " + e.dump());
    const double d = e.get<double>();
    require(d >= range.lo && d <= range.hi, key_message(key),
            "every value must be " + range.text + ", got " + e.dump());
    value.push_back(d);
  }
}

void OptionFields::field(const char* key, std::vector<int64_t>& value, const Range& range,
                         Empty empty) {
  keys_.emplace_back(key);
  if (!reading_) {
    defaults_[key] = value;
    return;
  }
  const auto& v = at(key);
  const bool refuse_empty = empty == Empty::kRefused;
  require(v.is_array() && !(refuse_empty && v.empty()), key_message(key),
          std::string(refuse_empty ? "expected a non-empty list" : "expected a list") +
              " of integers, got " + v.dump());
  value.clear();
  for (const auto& e : v) {
    require(e.is_number_integer(), key_message(key), "expected integers, got " + e.dump());
    const int64_t i = e.get<int64_t>();
    const auto d = static_cast<double>(i);
    require(d >= range.lo && d <= range.hi, key_message(key),
            "every value must be " + range.text + ", got " + e.dump());
    value.push_back(i);
  }
}

void OptionFields::field(const char* key, std::vector<std::string>& value, Empty empty) {
  keys_.emplace_back(key);
  if (!reading_) {
    defaults_[key] = value;
    return;
  }
  const auto& v = at(key);
  const bool refuse_empty = empty == Empty::kRefused;
  require(v.is_array() && !(refuse_empty && v.empty()), key_message(key),
          std::string(refuse_empty ? "expected a non-empty list" : "expected a list") +
              " of strings, got " + v.dump());
  value.clear();
  for (const auto& e : v) {
    require(e.is_string(), key_message(key), "expected strings, got " + e.dump());
    value.push_back(e.get<std::string>());
  }
}

void OptionFields::field(const char* key, std::vector<std::pair<std::string, std::string>>& value,
                         const Check& check) {
  keys_.emplace_back(key);
  if (!reading_) {
    auto table = nlohmann::json::object();
    for (const auto& [k, v] : value) table[k] = v;
    defaults_[key] = std::move(table);
    return;
  }
  const auto& v = at(key);
  require(v.is_object(), key_message(key), "expected a table, got " + v.dump());
  value.clear();
  for (const auto& item : v.items()) {
    const std::string entry = std::string(key) + "." + item.key();
    require(item.value().is_string(), key_message(entry),
            "expected a string, got " + item.value().dump());
    const auto text = item.value().get<std::string>();
    rethrow_check(entry, check, text);
    value.emplace_back(item.key(), text);
  }
}

void OptionFields::table(const char* key,
                         const std::function<void(OptionFields&)>& describe_table) {
  keys_.emplace_back(key);
  if (!reading_) {
    OptionFields w = writer();
    describe_table(w);
    defaults_[key] = w.defaults();
    return;
  }
  const auto& v = at(key);
  require(v.is_object(), key_message(key), "expected a table, got " + v.dump());
  OptionFields r = reader(v, dotted(key), where_);
  describe_table(r);
}

void OptionFields::check_entry(const char* key, const nlohmann::json& entry,
                               const OptionFields& shape) const {
  const std::string hint = "each entry has exactly: " + shape.key_list();
  require(entry.is_object(), key_message(key), "each entry must be a table, got " + entry.dump(),
          hint);
  for (const auto& item : entry.items()) {
    require(shape.defaults_.contains(item.key()), key_message(std::string(key) + "." + item.key()),
            "unknown key", hint);
  }
}

}  // namespace normlab
