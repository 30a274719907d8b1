// RunConfig: one fully resolved run, the contract between coordinator and worker (`run.json`).
//
// The sweep expander produces it, the run store keeps its canonical JSON (and hashes it into the run id),
// and `isoflop-worker --config run.json` reads it back. Every number is resolved: no expressions, no
// defaults left for the worker to guess. ToJson/FromJson round-trip exactly; FromJson rejects unknown keys
// so a worker never silently ignores a field written by a newer coordinator.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/model_spec.h"
#include "common/status.h"

namespace isoflop {

inline constexpr int kRunConfigVersion = 1;

struct OptimizerSpec {
  std::string name = "adamw";
  double lr = 6e-4;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  bool decay_all = false;  // false: decay only matrices (>= 2-D); the structured-FFN paper decays all
};

enum class LrDecay { kCosine, kLinear, kConstant, kWsd };
const char* ToString(LrDecay);
bool Parse(const std::string& s, LrDecay* out);

struct ScheduleSpec {
  double warmup = 0.05;      // fraction of steps when < 1, else a step count
  LrDecay decay = LrDecay::kCosine;
  double min_lr = 0.1;       // final lr as a fraction of the peak
  double decay_fraction = 0.2;  // wsd: the last fraction of steps decays linearly to min_lr
};

enum class Precision { kAuto, kFp32, kBf16 };
const char* ToString(Precision);
bool Parse(const std::string& s, Precision* out);

struct TrainSpec {
  int64_t batch_tokens = 32768;  // global batch per optimizer step, in tokens
  int64_t micro_batch = 0;       // sequences per forward pass per rank; 0: the worker picks the largest that fits
  OptimizerSpec optimizer;
  ScheduleSpec schedule;
  Precision precision = Precision::kAuto;  // auto: bf16 on GPU, fp32 on CPU
  double grad_clip = 1.0;                  // 0 disables
  int64_t log_every = 10;                  // optimizer steps between metrics records
  double checkpoint_every_tokens = 0;      // 0: the worker checkpoints every ~10% of the run
};

struct BenchmarkSpec {
  std::string name;  // e.g. "arc_easy"; results are stored as NAME/acc, NAME/acc_norm
  std::string path;  // JSONL file (formats in ../shared/data/README.md)
  int64_t limit = 0; // 0: all items
};

struct EvalSpec {
  double every_tokens = 0;  // 0: only at the end
  int64_t val_tokens = 1 << 17;
  std::vector<BenchmarkSpec> benchmarks;
};

// The order training windows are read in (common/data/window_order.h). Validation always reads an
// evenly spread sample of the val stream, whatever this says.
enum class DataOrder { kShuffled, kSequential };
const char* ToString(DataOrder);
bool Parse(const std::string& s, DataOrder* out);

struct DataSpec {
  std::string train;        // path of a .bin shard or a directory / glob of shards
  std::string val;
  DataOrder order = DataOrder::kShuffled;  // a permutation per epoch, seeded by the run seed
  std::string tokenizer = "gpt2";
  std::string fingerprint;  // content hash of the data; part of the run id
};

enum class LauncherKind { kLocal, kMpi, kSlurm };
const char* ToString(LauncherKind);
bool Parse(const std::string& s, LauncherKind* out);

struct ResourceSpec {
  int64_t gpus = 1;          // per run; on a machine without GPUs each run takes one CPU slot
  LauncherKind launcher = LauncherKind::kLocal;
  int64_t max_retries = 2;   // code faults; infrastructure faults have their own budget in the coordinator
  int64_t priority = 0;
  nlohmann::json slurm = nlohmann::json::object();  // partition, account, time, extra #SBATCH lines
};

// What the budget solver decided for this run (budget_solver.h).
struct BudgetPlan {
  double flops = 0;            // C: the budget this run was planned for (training FLOPs, exact convention)
  int64_t tokens = 0;          // D: unique training tokens = steps * batch_tokens / processed_per_unique
  int64_t steps = 0;           // optimizer steps, self-guided repeats included
  int64_t tokens_processed = 0;  // steps * batch_tokens
  double flops_per_token = 0;  // training FLOPs per unique token (self-guidance included)
  double planned_flops = 0;    // flops_per_token * tokens: what the run will actually spend
  double six_nd = 0;           // 6 * N * D, stored beside the exact figure
};

struct Accounting {
  int64_t params = 0;          // N
  int64_t params_nonemb = 0;   // N_nonemb
  int64_t forward_flops = 0;   // F_fwd per token
  int64_t train_flops = 0;     // 3 * F_fwd per token, without self-guidance
};

struct RunConfig {
  int version = kRunConfigVersion;
  // Unique inside its sweep: "<variant>/<size>/C<budget>/s<seed>", plus "/z<i>" for a zip entry that
  // overrides other fields and "/r<i>" for a random sample.
  std::string name;
  std::string sweep;
  std::string variant;
  std::string size;
  int64_t seed = 0;
  ModelSpec model;
  TrainSpec train;
  EvalSpec eval;
  DataSpec data;
  ResourceSpec resources;
  BudgetPlan budget;
  Accounting accounting;
};

nlohmann::json ToJson(const ModelSpec&);
nlohmann::json ToJson(const RunConfig&);
// Strict: unknown keys, wrong types and missing required fields are errors naming the JSON path.
Result<ModelSpec> ModelSpecFromJson(const nlohmann::json&);
Result<RunConfig> RunConfigFromJson(const nlohmann::json&);

}  // namespace isoflop
