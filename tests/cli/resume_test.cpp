// Crash safety as a user meets it: a real `normlab study run` process is killed with SIGKILL
// mid-study, the same command is run again, and the result must equal an uninterrupted run
// bit for bit (CPU, one thread).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "cli/run_normlab.h"
#include "io/state_dict.h"
#include "store/store.h"
#include "study/run_paths.h"
#include "study/runner.h"

namespace normlab {
namespace {

namespace fs = std::filesystem;
using testing::run_normlab;

// Two configurations in one lockstep group, crops + flips + mixup, dropout, a plateau
// schedule and early stopping state: everything a checkpoint must carry.
const char* kStudy = R"toml(
[study]
name = "resume"
seeds = [1]

[run]
data.dataset = "synthetic"
data.synthetic = { size = 1200, classes = 4, hw = 16 }
data.augment = { hflip = true, crop_padding = 2, mixup = 0.2 }
model.width = 8
model.depth = 3
model.head = { hidden = 16, dropout = 0.3 }
train.epochs = 6
train.batch_size = 16
train.trainable = ["features.2", "head"]
train.schedule = { name = "plateau", patience = 1 }
train.early_stopping = { patience = 5 }
probe.grad_norms = { enabled = true }
probe.grad_hist = { enabled = true, every = 2 }
probe.clip = { enabled = true }

[grid]
"model.head.norm" = ["bn", "frn"]
)toml";

// S4's strategies in one lockstep group without a frozen prefix: DMBN's shadow estimates and
// adopted momentum, a static momentum and BN-BFN, with the ESM probe.
const char* kDmbnStudy = R"toml(
[study]
name = "resume_dmbn"
seeds = [2]

[run]
data.dataset = "synthetic"
data.synthetic = { size = 600, classes = 4, hw = 8 }
model.backbone = "mlp"
model.width = 16
model.depth = 4
model.head = { kind = "linear" }
train.epochs = 6
train.batch_size = 32
train.optimizer = { name = "sgd", lr = 0.05, momentum = 0.9 }
probe.esm = { enabled = true }

[grid]
strategy = [
  { name = "bn0.8", model.bn_momentum = 0.8 },
  { name = "dmbn", model.norm = "dmbn" },
  { name = "dmbn-seq", model.norm = "dmbn", model.dmbn = { order = "sequential", shadows = "continue" } },
  { name = "bn-bfn", model.bn_bfn = "alternate" },
]
)toml";

// Phases: the head alone for two epochs, then features.2 too with Adam's state carried over
// and a plateau schedule that starts over. The kill comes after two epochs, at the boundary
// or past it: the resumed run must cross it as the uninterrupted one did.
const char* kPhasesStudy = R"toml(
[study]
name = "resume_phases"
seeds = [3]

[run]
data.dataset = "synthetic"
data.synthetic = { size = 1200, classes = 4, hw = 16 }
data.augment = { hflip = true, crop_padding = 2 }
model.width = 8
model.depth = 3
model.head = { hidden = 16, dropout = 0.3 }
train.batch_size = 16
train.schedule = { name = "plateau", patience = 1 }
probe.grad_norms = { enabled = true }
probe.update_ratio = { enabled = true }

[[run.phases]]
epochs = 2
trainable = ["head"]

[[run.phases]]
epochs = 3
trainable = ["features.2", "head"]
optimizer = { lr = 3e-4 }
keep_state = true

[grid]
"model.head.norm" = ["bn", "frn"]
)toml";

struct Final {
  std::map<std::string, double> metrics;  // "run name|metric" -> value at the last epoch
  std::map<std::string, io::StateDict> weights;
};

Final read_final(const fs::path& dir) {
  Final f;
  auto db = store::Store::open((dir / "study.db").string(), {true, false});
  for (const auto& r : db->runs()) {
    EXPECT_EQ(r.status, store::RunStatus::kComplete) << r.name << ": " << r.error;
    for (const auto& p : db->scalars(r.id, "epoch")) f.metrics[r.name + "|" + p.name] = p.value;
    for (const auto& p : db->scalars(r.id, "step", "train/loss")) {
      f.metrics[r.name + "|step" + std::to_string(p.step)] = p.value;
    }
    f.weights[r.name] =
        io::load_state_dict(study::RunPaths::of(dir.string(), r.config_hash).final_weights());
  }
  return f;
}

int64_t max_epochs_done(const fs::path& db_path) {
  if (!fs::exists(db_path)) return 0;
  try {
    auto db = store::Store::open(db_path.string(), {true, false});
    int64_t most = 0;
    for (const auto& r : db->runs()) most = std::max(most, db->epochs_done(r.id));
    return most;
  } catch (const std::exception&) {
    return 0;  // the writer is creating the schema
  }
}

// Runs `study` whole, then again killed with SIGKILL after two epochs and rerun; both must end
// bit-identical (metrics, per-step losses, final weights and buffers).
void expect_resumes_bit_identically(const std::string& name, const char* study, size_t runs) {
  fs::path root = fs::temp_directory_path() / ("normlab_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  const fs::path spec = root / "resume.toml";
  std::ofstream(spec) << study;
  const std::string common = " --threads 1 --quiet --no-report";

  auto whole =
      run_normlab("study run " + spec.string() + " --out " + (root / "a").string() + common);
  ASSERT_EQ(whole.code, 0) << whole.output;

  // The interrupted run: started as a child process, killed once an epoch is in the store.
  const char* bin = std::getenv("NORMLAB_BINARY");
  ASSERT_NE(bin, nullptr);
  const fs::path b = root / "b";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (freopen("/dev/null", "w", stderr) == nullptr) _exit(126);
    execl(bin, bin, "study", "run", spec.c_str(), "--out", b.c_str(), "--threads", "1", "--quiet",
          "--no-report", static_cast<char*>(nullptr));
    _exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  int64_t done = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    done = max_epochs_done(b / "study.db");
    if (done >= 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the study finished before it could be killed";
  ASSERT_GE(done, 2);
  {
    auto db = store::Store::open((b / "study.db").string(), {true, false});
    for (const auto& r : db->runs()) EXPECT_NE(r.status, store::RunStatus::kComplete) << r.name;
  }

  auto resumed = run_normlab("study run " + spec.string() + " --out " + b.string() + common);
  ASSERT_EQ(resumed.code, 0) << resumed.output;

  Final fa = read_final(root / "a"), fb = read_final(b);
  ASSERT_EQ(fa.metrics.size(), fb.metrics.size());
  for (const auto& [key, value] : fa.metrics) {
    if (key.find("time/") != std::string::npos || key.find("images_per_s") != std::string::npos) {
      continue;  // wall-clock
    }
    ASSERT_TRUE(fb.metrics.count(key)) << key;
    EXPECT_EQ(value, fb.metrics.at(key)) << key;
  }
  ASSERT_EQ(fa.weights.size(), runs);
  for (const auto& [name, dict] : fa.weights) {
    const auto& other = fb.weights.at(name);
    ASSERT_EQ(dict.items.size(), other.items.size());
    for (const auto& [key, t] : dict.items) {
      const torch::Tensor* u = other.find(key);
      ASSERT_NE(u, nullptr) << key;
      EXPECT_TRUE(torch::equal(t, *u)) << name << ": " << key;
    }
  }
  fs::remove_all(root);
}

TEST(Resume, KilledStudyResumesBitIdentically) {
  expect_resumes_bit_identically("resume", kStudy, 2);
}

TEST(Resume, KilledPhasedStudyResumesBitIdenticallyAcrossTheBoundary) {
  expect_resumes_bit_identically("resume_phases", kPhasesStudy, 2);
}

TEST(Resume, KilledDmbnStudyResumesBitIdentically) {
  expect_resumes_bit_identically("resume_dmbn", kDmbnStudy, 4);
}

}  // namespace
}  // namespace normlab
