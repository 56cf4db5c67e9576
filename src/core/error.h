// normlab's error type for user-caused problems: a bad file, key or value.
// Every message names the thing that is wrong (the "subject": a file path, a config key, a
// value), says what is wrong, and may carry a hint telling the user what to do next.
#pragma once

#include <stdexcept>
#include <string>

namespace normlab {

class Error : public std::runtime_error {
 public:
  Error(std::string subject, std::string problem, std::string hint = "");

  const std::string& subject() const { return subject_; }
  const std::string& problem() const { return problem_; }
  const std::string& hint() const { return hint_; }

 private:
  std::string subject_;
  std::string problem_;
  std::string hint_;
};

// Throws Error(subject, problem, hint) when cond is false.
inline void require(bool cond, const std::string& subject, const std::string& problem,
                    const std::string& hint = "") {
  if (!cond) throw Error(subject, problem, hint);
}

}  // namespace normlab
