#include "core/error.h"

namespace normlab {
namespace {

std::string compose(const std::string& subject, const std::string& problem,
                    const std::string& hint) {
  std::string msg = subject.empty() ? problem : subject + ": " + problem;
  if (!hint.empty()) msg += "\n  hint: " + hint;
  return msg;
}

}  // namespace

Error::Error(std::string subject, std::string problem, std::string hint)
    : std::runtime_error(compose(subject, problem, hint)),
      subject_(std::move(subject)),
      problem_(std::move(problem)),
      hint_(std::move(hint)) {}

}  // namespace normlab
