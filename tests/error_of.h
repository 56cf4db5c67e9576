// What a call throws, for tests of error messages.
#pragma once

#include <functional>
#include <string>

#include "core/error.h"

namespace normlab::testing {

// The message of the normlab Error `f` throws, or "" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace normlab::testing
