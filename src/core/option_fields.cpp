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

std::string OptionFields::key_message(const char* key) const {
  return where_ + ": key '" + path_ + "." + key + "'";
}

const nlohmann::json& OptionFields::at(const char* key) const {
  require(table_->is_object() && table_->contains(key), key_message(key), "is missing");
  return table_->at(key);
}

void OptionFields::field(const char* key, bool& value) {
  if (!reading_) {
    defaults_[key] = value;
    return;
  }
  const auto& v = at(key);
  require(v.is_boolean(), key_message(key), "expected a boolean, got " + v.dump());
  value = v.get<bool>();
}

void OptionFields::field(const char* key, int64_t& value, const Range& range) {
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

void OptionFields::field(const char* key, double& value, const Range& range) {
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

void OptionFields::field(const char* key, std::vector<double>& value, const Range& range) {
  if (!reading_) {
    defaults_[key] = value;
    return;
  }
  const auto& v = at(key);
  require(v.is_array() && !v.empty(), key_message(key),
          "expected a non-empty list of numbers, got " + v.dump());
  value.clear();
  for (const auto& e : v) {
    require(e.is_number(), key_message(key), "expected numbers, got " + e.dump());
    const double d = e.get<double>();
    require(d >= range.lo && d <= range.hi, key_message(key),
            "every value must be " + range.text + ", got " + e.dump());
    value.push_back(d);
  }
}

}  // namespace normlab
