// Early stopping on a monitored per-epoch value, with Keras' EarlyStopping semantics
// (tf.keras.callbacks.EarlyStopping, TF >= 2.11): an epoch improves when it beats the best so
// far by more than min_delta; training stops once `patience` epochs in a row have not
// improved. The caller restores the weights of best_epoch() when options().restore_best.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

#include "core/option_fields.h"

namespace normlab::train {

// Whether a monitored value is better when smaller ("min") or larger ("max"). "auto" means
// "min" for names ending in "loss" and "max" otherwise (accuracy), as Keras guesses.
// `key` is the config key of the mode, named in the Error for anything else.
enum class MonitorMode { kMin, kMax };
MonitorMode resolve_monitor_mode(const std::string& monitor, const std::string& mode,
                                 const std::string& key);

struct EarlyStoppingOptions {
  int64_t patience = 0;  // epochs without improvement before stopping; 0 = off
  std::string monitor = "val/loss";
  std::string mode = "auto";  // auto | min | max
  double min_delta = 0;       // >= 0: an improvement must beat the best by more than this
  bool restore_best = true;   // read by the caller (the trainer restores the weights)
};

// The fields of train.early_stopping: their defaults are the struct's (core/option_fields.h).
void describe(EarlyStoppingOptions& o, OptionFields& f);

class EarlyStopping {
 public:
  // Throws Error naming train.early_stopping.<key> for a negative patience or min_delta, an
  // empty monitor or an unknown mode.
  explicit EarlyStopping(EarlyStoppingOptions options);

  bool enabled() const { return options_.patience > 0; }
  const EarlyStoppingOptions& options() const { return options_; }

  // What happened at the end of an epoch: `improved` = a new best (its weights are the ones
  // to keep), `stop` = patience has run out (train no further epoch).
  struct Decision {
    bool improved;
    bool stop;
  };

  // `epoch` is 0-based. A NaN value never improves (it counts as a bad epoch). As in Keras,
  // the first epoch (epoch 0) never stops, and a stopper that is not enabled() still tracks
  // the best epoch but never stops.
  Decision update(int64_t epoch, double value);

  int64_t best_epoch() const { return best_epoch_; }        // -1 until an epoch improved
  double best_value() const { return best_; }               // +inf (min) / -inf (max) until then
  int64_t wait() const { return wait_; }                    // epochs since the last improvement
  int64_t stopped_epoch() const { return stopped_epoch_; }  // first epoch that said stop; -1

  // Everything update() depends on, for resuming a run bit-identically. load_state throws
  // Error for a state that is malformed or was written for another monitor or mode.
  nlohmann::json state() const;
  void load_state(const nlohmann::json& state);

 private:
  EarlyStoppingOptions options_;
  MonitorMode mode_;
  double best_;
  int64_t best_epoch_ = -1;
  int64_t wait_ = 0;
  int64_t stopped_epoch_ = -1;
};

// JSON has no NaN or infinities (nlohmann writes them as null): these write non-finite
// values as the strings "nan", "inf" and "-inf", and finite ones as numbers (which nlohmann
// prints with round-trip precision). Shared with the schedule state.
nlohmann::json double_to_json(double value);
double double_from_json(const nlohmann::json& value, const std::string& what);

}  // namespace normlab::train
