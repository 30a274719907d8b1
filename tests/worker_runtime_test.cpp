// The worker's runtime (worker/runtime/): the learning-rate schedule and batch plan as arithmetic,
// the token stream, the metrics file, checkpoints and AdamW as units, and then isoflop-worker
// itself end to end on a tiny model (CPU): a run completes to exactly budget.steps with a falling
// loss; a stopped and resumed run repeats the uninterrupted run's losses; damaged and foreign
// checkpoints are handled; fixedflop self-guided training repeats its guided data; bad data and
// configs fail with exit 1.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/accountant.h"
#include "common/data/token_shard.h"
#include "common/run_config.h"
#include "tests/worker_testing.h"
#include "worker/models/structured_linear.h"
#include "worker/runtime/adamw.h"
#include "worker/runtime/checkpoint.h"
#include "worker/runtime/kernel_profile.h"
#include "worker/runtime/lr_schedule.h"
#include "worker/runtime/metrics_writer.h"
#include "worker/runtime/token_stream.h"
#include "worker/runtime/trainer.h"
#include "worker/runtime/training_plan.h"

extern char** environ;

namespace isoflop {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// -------------------------------------------------------------------------------------------------
// Fixtures: a scratch directory, synthetic shards, a tiny run, and the executable.

// gpt, 2 layers of width 32, 2 heads, T = 16, V = 64; 8 sequences (128 tokens) per step in two
// micro-batches of 4, so gradient accumulation is always exercised.
RunConfig TinyRun(const ScratchDir& dir, int64_t steps) {
  RunConfig run;
  run.name = "dense/tiny/C1/s0";
  run.sweep = "runtime-test";
  run.seed = 7;
  run.model.n_layer = 2;
  run.model.d_model = 32;
  run.model.n_head = 2;
  run.model.seq_len = 16;
  run.model.vocab_size = 64;
  run.train.batch_tokens = 128;
  run.train.micro_batch = 4;
  run.train.optimizer.lr = 1e-2;
  run.train.schedule.warmup = 0.1;
  run.train.log_every = 1;
  run.eval.val_tokens = 256;
  run.data.train = dir / "train.bin";
  run.data.val = dir / "val.bin";
  run.data.tokenizer = "bytes";
  run.data.fingerprint = "sha256:test";
  run.budget.steps = steps;
  if (!fs::exists(run.data.train)) {
    WriteShard(run.data.train, MarkovTokens(20000, 64, 1));
    WriteShard(run.data.val, MarkovTokens(2000, 64, 2));
  }
  return run;
}

std::string WriteConfig(const RunConfig& run, const std::string& path) {
  std::ofstream(path) << ToJson(run).dump(2);
  return path;
}

struct WorkerResult {
  int exit_code = -1;
  std::string log;  // stderr and stdout
};

WorkerResult RunWorker(const std::string& config, const std::string& run_dir,
                       const std::string& extra = "") {
  const std::string log = run_dir + ".log";
  const std::string command = std::string(ISOFLOP_WORKER_BIN) + " --config " + config +
                              " --run-dir " + run_dir + " " + extra + " > " + log + " 2>&1";
  WorkerResult result;
  const int status = std::system(command.c_str());
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  result.log = text.str();
  return result;
}

// Every record of a metrics.jsonl; lines that do not parse (a torn last line) are skipped.
std::vector<json> ReadRecords(const std::string& run_dir) {
  std::vector<json> records;
  std::ifstream in(fs::path(run_dir) / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    json record = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!record.is_discarded()) records.push_back(std::move(record));
  }
  return records;
}

std::vector<json> RecordsOfType(const std::vector<json>& records, const std::string& type) {
  std::vector<json> out;
  for (const json& r : records) {
    if (r["type"] == type) out.push_back(r);
  }
  return out;
}

std::map<int64_t, double> TrainLosses(const std::vector<json>& records) {
  std::map<int64_t, double> losses;
  for (const json& r : RecordsOfType(records, "train")) {
    losses[r["step"].get<int64_t>()] = r["train_loss"].get<double>();
  }
  return losses;
}

// -------------------------------------------------------------------------------------------------
// LrSchedule

ScheduleSpec Schedule(LrDecay decay, double warmup = 0.1, double min_lr = 0.1) {
  ScheduleSpec spec;
  spec.decay = decay;
  spec.warmup = warmup;
  spec.min_lr = min_lr;
  return spec;
}

// A kernel profile on the CPU: no GPU activities, but a whole JSON document; one profiler at a time.
TEST(KernelProfile, WritesAWholeDocumentAndRefusesASecondProfiler) {
  ScratchDir dir;
  Result<std::unique_ptr<KernelProfile>> profile = KernelProfile::Start();
  ASSERT_TRUE(profile.ok()) << profile.status().message();
  Result<std::unique_ptr<KernelProfile>> second = KernelProfile::Start();
  EXPECT_FALSE(second.ok());
  const torch::Tensor x = torch::randn({64, 64});
  EXPECT_GT(x.mm(x).abs().sum().item<double>(), 0);
  ASSERT_TRUE((*profile)->StopAndWrite(dir / "kernel_profile.json").ok());
  std::ifstream file(dir / "kernel_profile.json");
  const nlohmann::json doc = nlohmann::json::parse(file);
  EXPECT_TRUE(doc.at("activities").is_array());
  EXPECT_EQ(doc.at("gpu_us").get<double>(), 0.0);  // CPU work only
  // Stopped: a new profile may start (and is stopped by its destructor).
  EXPECT_TRUE(KernelProfile::Start().ok());
  // Record: the work's error comes back and no profile is written; the profiler is off after it.
  const Status failed = KernelProfile::Record([] { return Status::IOError("no"); }, dir / "p.json");
  EXPECT_EQ(failed.message(), "no");
  EXPECT_FALSE(std::filesystem::exists(dir / "p.json"));
  EXPECT_TRUE(KernelProfile::Record([] { return Status::OK(); }, dir / "p.json").ok());
  EXPECT_TRUE(std::filesystem::exists(dir / "p.json"));
}

TEST(LrSchedule, WarmupRisesLinearlyToThePeakCountingTheUpdateItself) {
  const LrSchedule s = LrSchedule::Create(Schedule(LrDecay::kCosine), 6e-4, 100).value();
  EXPECT_EQ(s.warmup_steps(), 10);
  EXPECT_DOUBLE_EQ(s.Scale(0), 0.1);  // nanoGPT: lr (it + 1) / warmup
  EXPECT_DOUBLE_EQ(s.Scale(4), 0.5);
  EXPECT_DOUBLE_EQ(s.Scale(9), 1.0);
  EXPECT_DOUBLE_EQ(s.At(9), 6e-4);
}

TEST(LrSchedule, CosineAndLinearReachMinLrAtTheLastStep) {
  // 10 warmup steps, then 100 decay steps: after update t + 1 the decay is p = (t + 1 - 10) / 100
  // done.
  const LrSchedule cosine = LrSchedule::Create(Schedule(LrDecay::kCosine, 10), 1.0, 110).value();
  const LrSchedule linear = LrSchedule::Create(Schedule(LrDecay::kLinear, 10), 1.0, 110).value();
  // p = 1/2: halfway between peak and floor for both.
  EXPECT_NEAR(cosine.Scale(59), 0.55, 1e-12);
  EXPECT_NEAR(linear.Scale(59), 0.55, 1e-12);
  // p = 1/4: cosine still close to the peak, linear a quarter of the way down.
  EXPECT_NEAR(cosine.Scale(34), 0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI / 4)), 1e-12);
  EXPECT_NEAR(linear.Scale(34), 1 - 0.9 / 4, 1e-12);
  EXPECT_DOUBLE_EQ(cosine.Scale(109), 0.1);
  EXPECT_DOUBLE_EQ(linear.Scale(109), 0.1);
  for (int64_t t = 9; t < 109; ++t) EXPECT_GT(cosine.Scale(t), cosine.Scale(t + 1)) << t;
}

TEST(LrSchedule, ConstantStaysAtThePeakAfterWarmup) {
  const LrSchedule s = LrSchedule::Create(Schedule(LrDecay::kConstant, 5), 3e-3, 50).value();
  EXPECT_EQ(s.warmup_steps(), 5);  // >= 1: a step count
  EXPECT_DOUBLE_EQ(s.Scale(0), 0.2);
  EXPECT_DOUBLE_EQ(s.At(5), 3e-3);
  EXPECT_DOUBLE_EQ(s.At(49), 3e-3);
}

TEST(LrSchedule, WsdIsStableThenDecaysLinearlyOverTheLastFraction) {
  ScheduleSpec spec = Schedule(LrDecay::kWsd);
  spec.decay_fraction = 0.2;
  const LrSchedule s = LrSchedule::Create(spec, 1.0, 100).value();
  EXPECT_EQ(s.decay_start(), 80);
  EXPECT_DOUBLE_EQ(s.Scale(10), 1.0);
  EXPECT_DOUBLE_EQ(s.Scale(79), 1.0);
  EXPECT_NEAR(s.Scale(80), 1 - 0.9 / 20, 1e-12);
  EXPECT_NEAR(s.Scale(89), 1 - 0.9 / 2, 1e-12);
  EXPECT_DOUBLE_EQ(s.Scale(99), 0.1);
}

TEST(LrSchedule, WarmupLongerThanTheRunIsCappedAndDecayNeverStartsInsideWarmup) {
  ScheduleSpec spec = Schedule(LrDecay::kWsd, 30);
  spec.decay_fraction = 0.9;
  const LrSchedule s = LrSchedule::Create(spec, 1.0, 40).value();
  EXPECT_EQ(s.warmup_steps(), 30);
  EXPECT_EQ(s.decay_start(), 30);
  EXPECT_DOUBLE_EQ(s.Scale(29), 1.0);
  EXPECT_DOUBLE_EQ(s.Scale(39), 0.1);
  const LrSchedule all_warmup = LrSchedule::Create(Schedule(LrDecay::kCosine, 99), 1.0, 10).value();
  EXPECT_EQ(all_warmup.warmup_steps(), 10);
  EXPECT_DOUBLE_EQ(all_warmup.Scale(9), 1.0);
}

TEST(LrSchedule, RejectsImpossibleSpecsNamingTheField) {
  EXPECT_NE(LrSchedule::Create(Schedule(LrDecay::kCosine, 0.1, 1.5), 1.0, 10)
                .status()
                .message()
                .find("train.schedule.min_lr"),
            std::string::npos);
  EXPECT_NE(LrSchedule::Create(Schedule(LrDecay::kCosine, -1), 1.0, 10)
                .status()
                .message()
                .find("train.schedule.warmup"),
            std::string::npos);
  EXPECT_FALSE(LrSchedule::Create(Schedule(LrDecay::kCosine), 0.0, 10).ok());
  EXPECT_FALSE(LrSchedule::Create(Schedule(LrDecay::kCosine), 1.0, 0).ok());
}

// -------------------------------------------------------------------------------------------------
// TrainingPlan: the batch accounting of a config.

RunConfig PlanRun(int64_t batch_tokens, int64_t seq_len, int64_t micro_batch, int64_t steps) {
  RunConfig run;
  run.model.n_layer = 2;
  run.model.d_model = 64;
  run.model.n_head = 2;
  run.model.seq_len = seq_len;
  run.model.vocab_size = 256;
  run.train.batch_tokens = batch_tokens;
  run.train.micro_batch = micro_batch;
  run.budget.steps = steps;
  return run;
}

TEST(TrainingPlan, SplitsTheBatchIntoSequencesAndAccumulatedMicroBatches) {
  const TrainingPlan plan = PlanTraining(PlanRun(4096, 16, 32, 10), DataSlice{}, 0).value();
  EXPECT_EQ(plan.sequences_per_step, 256);
  EXPECT_EQ(plan.micro_batch, 32);
  EXPECT_EQ(plan.micro_steps, 8);
  EXPECT_EQ(plan.micro_batch * plan.micro_steps * plan.seq_len, plan.batch_tokens);
  EXPECT_EQ(plan.TokensAfter(10), 40960);
}

TEST(TrainingPlan, DefaultMicroBatchIsTheLargestDivisorThatFits) {
  // 256 sequences per step; at most 48 sequences (768 tokens) fit: 32 divides 256, 48 does not.
  EXPECT_EQ(PlanTraining(PlanRun(4096, 16, 0, 10), DataSlice{}, 768).value().micro_batch, 32);
  // The CPU bound (16k tokens) holds the whole batch.
  const TrainingPlan cpu =
      PlanTraining(PlanRun(4096, 16, 0, 10), DataSlice{}, kCpuMaxMicroTokens).value();
  EXPECT_EQ(cpu.micro_batch, 256);
  EXPECT_EQ(cpu.micro_steps, 1);
  // Below one sequence: one sequence per micro-batch.
  EXPECT_EQ(PlanTraining(PlanRun(4096, 16, 0, 10), DataSlice{}, 1).value().micro_batch, 1);
  // 12 sequences on 8 -> 6 fits, 8 would not divide.
  EXPECT_EQ(PlanTraining(PlanRun(12 * 16, 16, 0, 10), DataSlice{}, 8 * 16).value().micro_batch, 6);
}

TEST(TrainingPlan, RanksSplitTheSequencesOfAStep) {
  const TrainingPlan plan = PlanTraining(PlanRun(4096, 16, 16, 10), DataSlice{1, 4}, 0).value();
  EXPECT_EQ(plan.micro_steps, 4);  // 256 / 4 ranks / 16
  EXPECT_FALSE(PlanTraining(PlanRun(4096, 16, 0, 10), DataSlice{0, 3}, 1 << 20).ok());
}

TEST(TrainingPlan, RejectsBatchesThatDoNotDivideNamingTheField) {
  const Status ragged = PlanTraining(PlanRun(1000, 16, 0, 10), DataSlice{}, 1 << 20).status();
  EXPECT_NE(ragged.message().find("train.batch_tokens"), std::string::npos) << ragged.message();
  const Status micro = PlanTraining(PlanRun(4096, 16, 3, 10), DataSlice{}, 0).status();
  EXPECT_NE(micro.message().find("train.micro_batch"), std::string::npos) << micro.message();
  EXPECT_NE(PlanTraining(PlanRun(4096, 16, 0, 0), DataSlice{}, 1 << 20)
                .status()
                .message()
                .find("budget.steps"),
            std::string::npos);
}

TEST(TrainingPlan, CheckpointEveryTenthOfTheRunUnlessTokensAreGiven) {
  EXPECT_EQ(PlanTraining(PlanRun(4096, 16, 0, 95), DataSlice{}, 1 << 20).value().checkpoint_every,
            10);
  EXPECT_EQ(PlanTraining(PlanRun(4096, 16, 0, 5), DataSlice{}, 1 << 20).value().checkpoint_every,
            1);
  RunConfig run = PlanRun(4096, 16, 0, 95);
  run.train.checkpoint_every_tokens = 3 * 4096;
  run.eval.every_tokens = 5e4;  // 12.2 steps -> every 12
  const TrainingPlan plan = PlanTraining(run, DataSlice{}, 1 << 20).value();
  EXPECT_EQ(plan.checkpoint_every, 3);
  EXPECT_EQ(plan.eval_every, 12);
  EXPECT_EQ(PlanTraining(PlanRun(4096, 16, 0, 95), DataSlice{}, 1 << 20).value().eval_every, 0);
}

ModelSpec GuidedSpec(SelfGuidedMode mode, double ratio) {
  ModelSpec spec;
  spec.n_layer = 2;
  spec.d_model = 32;
  spec.n_head = 2;
  spec.seq_len = 16;
  spec.vocab_size = 64;
  spec.ffn.type = FfnType::kLowRank;
  spec.ffn.rank = 8;
  spec.ffn.first_layer_dense = false;
  spec.self_guided.mode = mode;
  spec.self_guided.ratio = ratio;
  return spec;
}

TEST(TrainingPlan, FixedStepGuidesAFractionOfTheRun) {
  RunConfig run = PlanRun(128, 16, 0, 100);
  run.model = GuidedSpec(SelfGuidedMode::kFixedStep, 0.5);
  const TrainingPlan plan = PlanTraining(run, DataSlice{}, 1 << 20).value();
  EXPECT_EQ(plan.guided_steps, 50);
  EXPECT_EQ(plan.unique_steps, 100);
  EXPECT_FALSE(plan.repeats_guided_data);
}

TEST(TrainingPlan, FixedFlopAddsGuidedStepsAndItsFlopsMatchTheAccountant) {
  RunConfig run = PlanRun(128, 16, 0, 100);
  run.model = GuidedSpec(SelfGuidedMode::kFixedFlop, 0.25);
  const TrainingPlan plan = PlanTraining(run, DataSlice{}, 1 << 20).value();
  EXPECT_EQ(plan.guided_steps, 20);  // steps rho / (1 + rho)
  EXPECT_EQ(plan.unique_steps, 80);
  EXPECT_TRUE(plan.repeats_guided_data);
  // The whole run costs what the budget solver planned: F per unique token times unique tokens.
  const TrainingCost cost = Accountant::Training(run.model);
  EXPECT_NEAR(plan.FlopsAfter(100), cost.flops_per_unique_token * 80 * 128,
              1e-9 * plan.FlopsAfter(100));
  // Guided steps cost more than unguided ones.
  EXPECT_GT(plan.FlopsAfter(1) - plan.FlopsAfter(0), plan.FlopsAfter(100) - plan.FlopsAfter(99));
  EXPECT_EQ(plan.FlopsAfter(1) - plan.FlopsAfter(0),
            128 * (3.0 * static_cast<double>(Accountant::Flops(run.model).forward) +
                   3.0 * 0.5 * static_cast<double>(Accountant::Flops(run.model).guide_forward)));
}

TEST(TrainingPlan, GpuMicroTokensGrowWithMemoryAndNeverFallBelowOneSequence) {
  ModelSpec spec = PlanRun(4096, 1024, 0, 1).model;
  spec.d_model = 768;
  spec.n_layer = 12;
  spec.n_head = 12;
  spec.vocab_size = 50304;
  EXPECT_EQ(DefaultGpuMicroTokens(spec, 1 << 20), 1024);
  const int64_t h100 = DefaultGpuMicroTokens(spec, int64_t{80} << 30);
  EXPECT_GT(h100, 16 * 1024);
  EXPECT_LT(h100, 128 * 1024);
  EXPECT_GT(DefaultGpuMicroTokens(spec, int64_t{140} << 30), h100);
}

// -------------------------------------------------------------------------------------------------
// TokenStream

std::vector<int32_t> Iota(int32_t first, int32_t n, int32_t mod) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) v[i] = (first + i) % mod;
  return v;
}

TEST(TokenStream, ReadsShardsAsOneStreamInShiftedWindowsAndWrapsAround) {
  ScratchDir dir;
  fs::create_directory(dir.path() / "shards");
  WriteShard(dir / "shards/a.bin", Iota(0, 10, 1000));
  WriteShard(dir / "shards/b.bin", Iota(10, 13, 1000));  // 23 tokens in all
  const TokenStream stream = TokenStream::Open(dir / "shards", 4, 1000).value();
  EXPECT_EQ(stream.size(), 23);
  EXPECT_EQ(stream.windows_per_epoch(), 5);  // windows of 5 tokens every 4: the last ends at 20
  std::vector<int64_t> window(5);
  ASSERT_TRUE(stream.ReadWindow(2, window).ok());  // tokens 8..12, across the shard boundary
  EXPECT_EQ(window, (std::vector<int64_t>{8, 9, 10, 11, 12}));
  ASSERT_TRUE(stream.ReadWindow(4, window).ok());
  EXPECT_EQ(window, (std::vector<int64_t>{16, 17, 18, 19, 20}));
  ASSERT_TRUE(stream.ReadWindow(6, window).ok());  // epoch 2, window 1
  EXPECT_EQ(window, (std::vector<int64_t>{4, 5, 6, 7, 8}));
}

TEST(TokenStream, ReadsWindowsInItsOrderEachOncePerEpoch) {
  ScratchDir dir;
  WriteShard(dir / "s.bin", Iota(0, 1001, 60000));  // 250 windows of 4 + 1 tokens
  TokenStream stream = TokenStream::Open(dir / "s.bin", 4, 60000).value();
  stream.set_order(WindowOrder::Shuffled(7));
  std::vector<int64_t> window(5);
  std::vector<int> starts(250, 0);
  for (int64_t w = 250; w < 500; ++w) {  // epoch 1
    ASSERT_TRUE(stream.ReadWindow(w, window).ok());
    EXPECT_EQ(window[0], 4 * stream.order().Map(w, 250));
    EXPECT_EQ(window[4], window[0] + 4);  // still one contiguous window of the stream
    ++starts[window[0] / 4];
  }
  for (int count : starts) EXPECT_EQ(count, 1);
  stream.set_order(WindowOrder::Spread(5));
  ASSERT_TRUE(stream.ReadWindow(3, window).ok());
  EXPECT_EQ(window[0], 4 * 150);  // window 150 of 250: the fourth of five spread evenly
}

TEST(TokenStream, RanksReadDisjointSlicesWhoseUnionIsTheWholeBatch) {
  ScratchDir dir;
  WriteShard(dir / "s.bin", Iota(0, 1000, 1000));
  const TokenStream stream = TokenStream::Open(dir / "s.bin", 8, 1000).value();
  std::vector<int64_t> whole(8 * 9), rank0(4 * 9), rank1(4 * 9);
  ASSERT_TRUE(stream.ReadBatch(/*step_window=*/16, 0, 8, DataSlice{}, whole).ok());
  ASSERT_TRUE(stream.ReadBatch(16, 0, 4, DataSlice{0, 2}, rank0).ok());
  ASSERT_TRUE(stream.ReadBatch(16, 0, 4, DataSlice{1, 2}, rank1).ok());
  for (int64_t i = 0; i < 4; ++i) {
    for (int64_t k = 0; k < 9; ++k) {
      EXPECT_EQ(rank0[i * 9 + k], whole[(2 * i) * 9 + k]);
      EXPECT_EQ(rank1[i * 9 + k], whole[(2 * i + 1) * 9 + k]);
    }
  }
  EXPECT_EQ(whole[0], 16 * 8);  // step_window 16 starts at token 128
}

TEST(TokenStream, TokensOutsideTheVocabularyAreAClearError) {
  ScratchDir dir;
  WriteShard(dir / "s.bin", Iota(0, 100, 100));
  const TokenStream stream = TokenStream::Open(dir / "s.bin", 10, 64).value();
  std::vector<int64_t> window(11);
  EXPECT_TRUE(stream.ReadWindow(0, window).ok());
  const Status bad = stream.ReadWindow(6, window);  // tokens 60..70
  EXPECT_EQ(bad.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(bad.message().find("token 64 at position 64"), std::string::npos) << bad.message();
  EXPECT_NE(bad.message().find("s.bin"), std::string::npos);
  EXPECT_NE(bad.message().find("vocab_size 64"), std::string::npos);
}

TEST(TokenStream, ShorterThanOneWindowIsAnError) {
  ScratchDir dir;
  WriteShard(dir / "s.bin", Iota(0, 10, 100));
  EXPECT_FALSE(TokenStream::Open(dir / "s.bin", 10, 100).ok());
  EXPECT_EQ(TokenStream::Open(dir / "missing.bin", 10, 100).status().code(),
            Status::Code::kNotFound);
}

// -------------------------------------------------------------------------------------------------
// MetricsWriter

TEST(MetricsWriter, AppendsOneLinePerRecordAndEndsATornLineBeforeTheNext) {
  ScratchDir dir;
  const std::string path = dir / "metrics.jsonl";
  {
    MetricsWriter writer = MetricsWriter::Open(path).value();
    ASSERT_TRUE(writer.Append({{"type", "train"}, {"step", 1}}).ok());
    ASSERT_TRUE(writer.Sync().ok());
  }
  std::ofstream(path, std::ios::app) << R"({"type":"train","st)";  // a SIGKILL mid-write
  {
    MetricsWriter writer = MetricsWriter::Open(path).value();
    ASSERT_TRUE(writer.Append({{"type", "resume"}, {"step", 1}}).ok());
    ASSERT_TRUE(writer.Append({{"loss", std::nan("")}}).ok());
  }
  const std::vector<json> records = ReadRecords(dir.path().string());
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0]["step"], 1);
  EXPECT_EQ(records[1]["type"], "resume");
  EXPECT_TRUE(records[2]["loss"].is_null());  // non-finite numbers have no JSON spelling
}

// -------------------------------------------------------------------------------------------------
// CheckpointDir

void WriteTestCheckpoint(CheckpointDir& dir, int64_t step, float value) {
  torch::serialize::OutputArchive archive;
  WriteTensors(archive, "weights", {{"w", torch::full({3}, value)}});
  ASSERT_TRUE(dir.Write(step, archive).ok());
}

float LoadedValue(CheckpointDir& dir, int64_t* step) {
  torch::serialize::InputArchive archive;
  Result<CheckpointFile> file = dir.LoadNewest(&archive, torch::kCPU);
  EXPECT_TRUE(file.ok()) << file.status().ToString();
  if (!file.ok()) return -1;
  *step = file->step;
  torch::Tensor w = torch::zeros({3});
  EXPECT_TRUE(ReadTensors(archive, "weights", {{"w", w}}).ok());
  return w[0].item<float>();
}

TEST(CheckpointDir, KeepsTheNewestTwoAndLoadsTheNewest) {
  ScratchDir scratch;
  CheckpointDir dir = CheckpointDir::Open(scratch / "ckpt", "run-a").value();
  EXPECT_EQ(dir.List().size(), 0u);
  torch::serialize::InputArchive empty;
  EXPECT_EQ(dir.LoadNewest(&empty, torch::kCPU).status().code(), Status::Code::kNotFound);
  for (int64_t step : {5, 10, 15}) WriteTestCheckpoint(dir, step, static_cast<float>(step));
  const std::vector<CheckpointFile> files = dir.List();
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].step, 10);
  EXPECT_EQ(files[1].step, 15);
  int64_t step = 0;
  EXPECT_EQ(LoadedValue(dir, &step), 15.0f);
  EXPECT_EQ(step, 15);
}

TEST(CheckpointDir, CorruptOrTruncatedNewestFallsBackToThePrevious) {
  ScratchDir scratch;
  CheckpointDir dir = CheckpointDir::Open(scratch / "ckpt", "run-a").value();
  WriteTestCheckpoint(dir, 1, 1.0f);
  WriteTestCheckpoint(dir, 2, 2.0f);
  const std::string newest = dir.List().back().path;
  {  // flip one byte in the middle
    std::fstream f(newest, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(newest) / 2));
    f.put('\x5a' ^ static_cast<char>(f.peek()));
  }
  int64_t step = 0;
  EXPECT_EQ(LoadedValue(dir, &step), 1.0f);
  EXPECT_EQ(step, 1);
  EXPECT_TRUE(fs::exists(newest + ".corrupt"));

  WriteTestCheckpoint(dir, 3, 3.0f);
  const std::string third = dir.List().back().path;
  fs::resize_file(third, fs::file_size(third) - 100);  // a torn write
  EXPECT_EQ(LoadedValue(dir, &step), 1.0f);
}

TEST(CheckpointDir, RefusesAnotherRunsCheckpoint) {
  ScratchDir scratch;
  {
    CheckpointDir other = CheckpointDir::Open(scratch / "ckpt", "run-a").value();
    WriteTestCheckpoint(other, 4, 4.0f);
  }
  CheckpointDir dir = CheckpointDir::Open(scratch / "ckpt", "run-b").value();
  torch::serialize::InputArchive archive;
  const Status status = dir.LoadNewest(&archive, torch::kCPU).status();
  EXPECT_EQ(status.code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(status.message().find("run-a"), std::string::npos) << status.message();
}

TEST(CheckpointDir, ReadTensorsRefusesOtherNamesOrShapes) {
  torch::serialize::OutputArchive out;
  WriteTensors(out, "t", {{"a.weight", torch::ones({2, 2})}});
  std::ostringstream bytes;
  out.save_to(bytes);
  torch::serialize::InputArchive in;
  std::istringstream stream(bytes.str());
  in.load_from(stream);
  EXPECT_EQ(ReadTensors(in, "t", {{"b.weight", torch::zeros({2, 2})}}).code(),
            Status::Code::kFailedPrecondition);
  EXPECT_EQ(ReadTensors(in, "t", {{"a.weight", torch::zeros({3, 2})}}).code(),
            Status::Code::kFailedPrecondition);
  EXPECT_EQ(ReadTensors(in, "missing", {}).code(), Status::Code::kCorruption);
  torch::Tensor target = torch::zeros({2, 2});
  EXPECT_TRUE(ReadTensors(in, "t", {{"a.weight", target}}).ok());
  EXPECT_TRUE(torch::equal(target, torch::ones({2, 2})));
}

// -------------------------------------------------------------------------------------------------
// AdamW

TEST(AdamW, MatchesLibTorchsAdamWWithDecayOnMatricesOnly) {
  torch::manual_seed(0);
  torch::nn::Linear reference(4, 3), ours(4, 3);
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < 2; ++i) ours->parameters()[i].copy_(reference->parameters()[i]);
  }
  OptimizerSpec spec;
  spec.beta1 = 0.9;
  spec.beta2 = 0.95;
  spec.eps = 1e-8;
  spec.weight_decay = 0.1;
  AdamW adamw(ours->named_parameters(), spec);
  EXPECT_EQ(adamw.decayed_count(), 1);    // weight
  EXPECT_EQ(adamw.undecayed_count(), 1);  // bias
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<torch::Tensor>{reference->weight},
                      std::make_unique<torch::optim::AdamWOptions>(
                          torch::optim::AdamWOptions(1e-2).betas({0.9, 0.95}).weight_decay(0.1)));
  groups.emplace_back(std::vector<torch::Tensor>{reference->bias},
                      std::make_unique<torch::optim::AdamWOptions>(
                          torch::optim::AdamWOptions(1e-2).betas({0.9, 0.95}).weight_decay(0)));
  torch::optim::AdamW expected(std::move(groups));
  for (int step = 0; step < 5; ++step) {
    const torch::Tensor x = torch::randn({8, 4});
    expected.zero_grad();
    reference(x).pow(2).sum().backward();
    expected.step();
    ours(x).pow(2).sum().backward();
    adamw.Step(1e-2);
    adamw.ZeroGrad();
  }
  EXPECT_TRUE(torch::allclose(ours->weight, reference->weight, 1e-6, 1e-7));
  EXPECT_TRUE(torch::allclose(ours->bias, reference->bias, 1e-6, 1e-7));
}

TEST(AdamW, ParametersWithoutGradientsStandStill) {
  torch::nn::Linear used(2, 2), unused(2, 2);
  torch::OrderedDict<std::string, torch::Tensor> params;
  params.insert("used", used->weight);
  params.insert("unused", unused->weight);
  AdamW adamw(params, OptimizerSpec{});
  const torch::Tensor before = unused->weight.clone();
  used(torch::ones({1, 2})).sum().backward();
  adamw.Step(0.1);
  EXPECT_TRUE(torch::equal(unused->weight, before));  // no update, not even weight decay
  for (const auto& [name, tensor] : adamw.State()) {
    if (name == "unused.step") {
      EXPECT_EQ(tensor.item<float>(), 0.0f);
    }
    if (name == "used.step") {
      EXPECT_EQ(tensor.item<float>(), 1.0f);
    }
  }
}

// -------------------------------------------------------------------------------------------------
// isoflop-worker end to end (CPU).

TEST(Worker, CompletesExactlyBudgetStepsWithWellFormedMetricsAndFallingLoss) {
  ScratchDir dir;
  RunConfig run = TinyRun(dir, 30);
  run.eval.every_tokens = 10 * 128;
  const std::string run_dir = dir / "run";
  const WorkerResult result = RunWorker(WriteConfig(run, dir / "run.json"), run_dir);
  ASSERT_EQ(result.exit_code, 0) << result.log;

  const std::vector<json> records = ReadRecords(run_dir);
  ASSERT_FALSE(records.empty());
  EXPECT_EQ(records.front()["type"], "start");
  EXPECT_EQ(records.front()["resumed_from_step"], 0);
  EXPECT_EQ(records.front()["device"], "cpu");
  EXPECT_EQ(records.front()["threads"], 1);
  EXPECT_EQ(records.front()["params"], Accountant::Params(run.model).total);
  EXPECT_EQ(records.front()["micro_steps"], 2);

  const std::vector<json> train = RecordsOfType(records, "train");
  ASSERT_EQ(train.size(), 30u);  // log_every 1
  for (size_t i = 0; i < train.size(); ++i) {
    for (const char* key : {"step", "tokens", "flops", "train_loss", "lr", "grad_norm",
                            "tokens_per_s", "mfu", "epoch", "time"}) {
      EXPECT_TRUE(train[i].contains(key)) << key;
    }
    EXPECT_EQ(train[i]["step"], static_cast<int64_t>(i + 1));
    EXPECT_EQ(train[i]["tokens"], static_cast<int64_t>(128 * (i + 1)));
    EXPECT_DOUBLE_EQ(train[i]["flops"].get<double>(),
                     3.0 * static_cast<double>(Accountant::Flops(run.model).forward) * 128.0 *
                         static_cast<double>(i + 1));
    EXPECT_EQ(train[i]["mfu"], 0.0);  // no peak on a CPU
  }
  const double first = train.front()["train_loss"], last = train.back()["train_loss"];
  EXPECT_NEAR(first, std::log(64.0), 0.3);  // chance level at the start
  EXPECT_LT(last, first - 1.0);

  // Evaluations at steps 10 and 20 and at the end (30), loss and perplexity each.
  const std::vector<json> evals = RecordsOfType(records, "eval");
  ASSERT_EQ(evals.size(), 6u);
  EXPECT_EQ(evals[0]["step"], 10);
  EXPECT_EQ(evals[0]["name"], "val_loss");
  EXPECT_EQ(evals[1]["name"], "val_ppl");
  EXPECT_NEAR(evals[1]["value"].get<double>(), std::exp(evals[0]["value"].get<double>()), 1e-9);
  EXPECT_EQ(evals[0]["count"], 256);
  EXPECT_EQ(evals[5]["step"], 30);
  EXPECT_LT(evals[4]["value"].get<double>(), evals[0]["value"].get<double>());

  const json& complete = records.back();
  EXPECT_EQ(complete["type"], "complete");
  EXPECT_EQ(complete["step"], 30);
  EXPECT_EQ(complete["tokens"], 30 * 128);
  EXPECT_EQ(complete["final_train_loss"], last);
  EXPECT_EQ(complete["final_val_loss"], evals[4]["value"]);

  // Default checkpointing: every 3 steps; the last two are kept, the final one among them.
  const std::vector<json> checkpoints = RecordsOfType(records, "checkpoint");
  EXPECT_EQ(checkpoints.size(), 10u);
  EXPECT_EQ(checkpoints.back()["step"], 30);
  EXPECT_TRUE(fs::exists(run_dir + "/checkpoints/ckpt_30.pt"));
  EXPECT_TRUE(fs::exists(run_dir + "/checkpoints/ckpt_27.pt"));
  EXPECT_FALSE(fs::exists(run_dir + "/checkpoints/ckpt_24.pt"));

  // Running a complete run again trains nothing more: it resumes at the end and completes.
  const WorkerResult again = RunWorker(dir / "run.json", run_dir);
  ASSERT_EQ(again.exit_code, 0) << again.log;
  const std::vector<json> after = ReadRecords(run_dir);
  EXPECT_EQ(RecordsOfType(after, "train").size(), 30u);
  EXPECT_EQ(RecordsOfType(after, "resume").back()["step"], 30);
  EXPECT_EQ(after.back()["final_train_loss"], last);
}

TEST(Worker, SamplesGreedilyFromEndOfTextAndDecodesBytes) {
  ScratchDir dir;
  RunConfig run = TinyRun(dir, 3);
  run.model.vocab_size = 257;  // the bytes tokenizer: 256 bytes and EOT = 256
  const WorkerResult result =
      RunWorker(WriteConfig(run, dir / "run.json"), dir / "run", "--sample 5");
  ASSERT_EQ(result.exit_code, 0) << result.log;
  std::ifstream sample(dir / "run/sample.txt");
  std::stringstream contents;
  contents << sample.rdbuf();
  const std::string ids_line = contents.str().substr(0, contents.str().find('\n'));
  std::istringstream ids(ids_line);
  std::string expected_text;
  int64_t id = 0, count = 0;
  while (ids >> id) {
    ASSERT_GE(id, 0);
    ASSERT_LT(id, 257);
    expected_text +=
        id == 256 ? std::string("<|endoftext|>") : std::string(1, static_cast<char>(id));
    ++count;
  }
  EXPECT_EQ(count, 5);
  EXPECT_EQ(contents.str(), ids_line + "\n\n" + expected_text + "\n");

  // A model whose vocabulary lacks the end-of-text id cannot be prompted: refused before training.
  run.model.vocab_size = 64;
  const WorkerResult refused =
      RunWorker(WriteConfig(run, dir / "small.json"), dir / "small", "--sample 5");
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.log.find("end-of-text id 256"), std::string::npos) << refused.log;
  EXPECT_TRUE(RecordsOfType(ReadRecords(dir / "small"), "train").empty());
}

// One uninterrupted run (14 steps, a checkpoint every 4) that the interrupted ones must repeat.
struct Uninterrupted {
  ScratchDir dir;
  std::string config;
  std::map<int64_t, double> losses;
};

const Uninterrupted& UninterruptedRun() {
  static const Uninterrupted* run = [] {
    auto* u = new Uninterrupted;
    RunConfig config = TinyRun(u->dir, 14);
    config.train.checkpoint_every_tokens = 4 * 128;
    u->config = WriteConfig(config, u->dir / "run.json");
    const WorkerResult result = RunWorker(u->config, u->dir / "straight");
    EXPECT_EQ(result.exit_code, 0) << result.log;
    u->losses = TrainLosses(ReadRecords(u->dir / "straight"));
    return u;
  }();
  return *run;
}

TEST(Worker, StoppedAndResumedRunRepeatsTheUninterruptedLosses) {
  const Uninterrupted& straight = UninterruptedRun();
  ASSERT_EQ(straight.losses.size(), 14u);
  ScratchDir dir;
  const WorkerResult first = RunWorker(straight.config, dir / "run", "--stop-after-steps 6");
  ASSERT_EQ(first.exit_code, 75) << first.log;
  EXPECT_TRUE(fs::exists(dir / "run/checkpoints/ckpt_6.pt"));  // between the every-4 checkpoints
  EXPECT_EQ(TrainLosses(ReadRecords(dir / "run")).size(), 6u);
  const WorkerResult second = RunWorker(straight.config, dir / "run");
  ASSERT_EQ(second.exit_code, 0) << second.log;

  const std::vector<json> records = ReadRecords(dir / "run");
  const std::vector<json> resumes = RecordsOfType(records, "resume");
  ASSERT_EQ(resumes.size(), 1u);
  EXPECT_EQ(resumes[0]["step"], 6);
  EXPECT_EQ(RecordsOfType(records, "start").back()["resumed_from_step"], 6);
  const std::map<int64_t, double> actual = TrainLosses(records);
  ASSERT_EQ(actual.size(), 14u);
  for (const auto& [step, loss] : straight.losses) {
    EXPECT_NEAR(actual.at(step), loss, 1e-6) << "step " << step;
  }
  EXPECT_EQ(records.back()["type"], "complete");
}

TEST(Worker, CorruptNewestCheckpointResumesFromThePreviousOne) {
  const Uninterrupted& straight = UninterruptedRun();
  ScratchDir dir;
  ASSERT_EQ(RunWorker(straight.config, dir / "run", "--stop-after-steps 8").exit_code, 75);
  const std::string newest = dir / "run/checkpoints/ckpt_8.pt";
  ASSERT_TRUE(fs::exists(newest));
  ASSERT_TRUE(fs::exists(dir / "run/checkpoints/ckpt_4.pt"));
  fs::resize_file(newest, fs::file_size(newest) / 2);  // a torn write or a bad disk

  const WorkerResult resumed = RunWorker(straight.config, dir / "run");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.log;
  EXPECT_NE(resumed.log.find("ckpt_8.pt"), std::string::npos) << resumed.log;
  const std::vector<json> records = ReadRecords(dir / "run");
  EXPECT_EQ(RecordsOfType(records, "resume").back()["step"], 4);
  const std::map<int64_t, double> actual = TrainLosses(records);
  for (const auto& [step, loss] : straight.losses) {
    EXPECT_NEAR(actual.at(step), loss, 1e-6) << "step " << step;
  }
}

TEST(Worker, RefusesACheckpointWrittenForAnotherConfig) {
  ScratchDir dir;
  RunConfig run = TinyRun(dir, 10);
  ASSERT_EQ(
      RunWorker(WriteConfig(run, dir / "a.json"), dir / "run", "--stop-after-steps 3").exit_code,
      75);
  run.train.optimizer.lr = 2e-2;
  const WorkerResult other = RunWorker(WriteConfig(run, dir / "b.json"), dir / "run");
  EXPECT_EQ(other.exit_code, 1) << other.log;
  EXPECT_NE(other.log.find("belongs to run"), std::string::npos) << other.log;
  EXPECT_TRUE(fs::exists(dir / "run/checkpoints/ckpt_3.pt"));  // left alone
}

TEST(Worker, StopsOnSigtermAfterACheckpointWithExit75) {
  ScratchDir dir;
  RunConfig run = TinyRun(dir, 100000);
  run.train.log_every = 1;
  const std::string config = WriteConfig(run, dir / "run.json");
  const std::string run_dir = dir / "run";
  const std::string log = dir / "run.log";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> args = {ISOFLOP_WORKER_BIN, "--config", config, "--run-dir", run_dir};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  ASSERT_EQ(posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&actions);
  // Wait until it trains, then ask it to stop.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (RecordsOfType(ReadRecords(run_dir), "train").size() < 3 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 75);
  const std::vector<json> records = ReadRecords(run_dir);
  const std::vector<json> train = RecordsOfType(records, "train");
  const std::vector<json> checkpoints = RecordsOfType(records, "checkpoint");
  ASSERT_FALSE(checkpoints.empty());
  EXPECT_EQ(checkpoints.back()["step"], train.back()["step"]);
  EXPECT_TRUE(RecordsOfType(records, "complete").empty());
}

TEST(Worker, TokensOutsideTheModelVocabularyFailWithExit1) {
  ScratchDir dir;
  RunConfig run = TinyRun(dir, 5);
  WriteShard(dir / "wide.bin", MarkovTokens(5000, 100, 3));
  run.data.train = dir / "wide.bin";
  const WorkerResult result = RunWorker(WriteConfig(run, dir / "run.json"), dir / "run");
  EXPECT_EQ(result.exit_code, 1) << result.log;
  EXPECT_NE(result.log.find("outside the model's vocabulary (model.vocab_size 64)"),
            std::string::npos)
      << result.log;
}

TEST(Worker, ANonFiniteLossEndsTheRunWithExit1AndNoCompleteRecord) {
  ScratchDir dir;
  RunConfig run = TinyRun(dir, 8);
  run.train.optimizer.lr = 1e30;  // the first update throws every weight to ~1e30: logits overflow
  run.train.grad_clip = 0;
  const WorkerResult result = RunWorker(WriteConfig(run, dir / "run.json"), dir / "run");
  EXPECT_EQ(result.exit_code, 1) << result.log;
  EXPECT_NE(result.log.find("training diverged: train loss"), std::string::npos) << result.log;
  const std::vector<json> records = ReadRecords(dir / "run");
  EXPECT_TRUE(RecordsOfType(records, "complete").empty());
  EXPECT_LT(RecordsOfType(records, "train").size(), 8u);
}

TEST(Worker, BadConfigsFailWithExit1NamingTheCause) {
  ScratchDir dir;
  const RunConfig run = TinyRun(dir, 5);
  json unknown = ToJson(run);
  unknown["train"]["learning_rate"] = 0.1;
  std::ofstream(dir / "unknown.json") << unknown.dump();
  WorkerResult result = RunWorker(dir / "unknown.json", dir / "run1");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.log.find("train.learning_rate: unknown key"), std::string::npos) << result.log;

  RunConfig ragged = run;
  ragged.train.batch_tokens = 100;
  result = RunWorker(WriteConfig(ragged, dir / "ragged.json"), dir / "run2");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.log.find("train.batch_tokens"), std::string::npos) << result.log;

  RunConfig no_data = run;
  no_data.data.train = dir / "nowhere.bin";
  result = RunWorker(WriteConfig(no_data, dir / "nodata.json"), dir / "run3");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.log.find("nowhere.bin"), std::string::npos) << result.log;

  result = RunWorker(dir / "missing.json", dir / "run4");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.log.find("missing.json"), std::string::npos) << result.log;

  result = RunWorker(WriteConfig(run, dir / "ok.json"), dir / "run5", "--device tpu");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.log.find("--device"), std::string::npos) << result.log;
}

// -------------------------------------------------------------------------------------------------
// Self-guided training through the library: fixedflop repeats its guided data, alpha follows the
// schedule and ends at 0.

class Recorder : public TrainingObserver {
 public:
  void OnMicroBatch(int64_t step, int64_t micro, const torch::Tensor& windows) override {
    batches[{step, micro}] = windows.clone();
  }
  void OnStep(int64_t step, double lr, double alpha, double loss, double) override {
    alphas[step] = alpha;
    lrs[step] = lr;
    losses[step] = loss;
  }
  std::map<std::pair<int64_t, int64_t>, torch::Tensor> batches;
  std::map<int64_t, double> alphas, lrs, losses;
};

TEST(Trainer, FixedFlopRepeatsTheGuidedStepsDataAtTheEndWithAlphaOff) {
  ScratchDir dir;
  RunConfig run = TinyRun(dir, 20);
  run.model = GuidedSpec(SelfGuidedMode::kFixedFlop, 0.25);
  TrainerOptions options;
  options.run_dir = dir / "run";
  options.device = "cpu";
  std::unique_ptr<Trainer> trainer = Trainer::Create(run, options).value();
  const TrainingPlan& plan = trainer->plan();
  ASSERT_EQ(plan.guided_steps, 4);  // 20 * 0.25 / 1.25
  ASSERT_EQ(plan.unique_steps, 16);
  Recorder recorder;
  ASSERT_EQ(trainer->Run(&recorder).value(), TrainingOutcome::kComplete);

  ASSERT_EQ(recorder.alphas.size(), 20u);
  EXPECT_EQ(recorder.alphas[0], 1.0);
  for (int64_t t = 0; t < 20; ++t) {
    EXPECT_DOUBLE_EQ(recorder.alphas[t], GuideAlpha(AlphaSchedule::kCosine, t, 4)) << t;
    if (t >= 4) {
      EXPECT_EQ(recorder.alphas[t], 0.0) << t;
    } else if (t > 0) {
      EXPECT_LT(recorder.alphas[t], recorder.alphas[t - 1]);
    }
  }
  for (int64_t i = 0; i < 4; ++i) {
    for (int64_t micro = 0; micro < plan.micro_steps; ++micro) {
      EXPECT_TRUE(torch::equal(recorder.batches[{16 + i, micro}], recorder.batches[{i, micro}]))
          << "step " << 16 + i;
    }
  }
  // Fresh data everywhere else: step 15 is not step 0's data again.
  EXPECT_FALSE(torch::equal(recorder.batches[{15, 0}], recorder.batches[{0, 0}]));
  // The LR schedule spans all M + G steps.
  EXPECT_NEAR(recorder.lrs[19], run.train.optimizer.lr * run.train.schedule.min_lr, 1e-12);
}

TEST(Trainer, FixedStepGuidesTheFirstStepsWithoutRepeatingData) {
  ScratchDir dir;
  RunConfig run = TinyRun(dir, 12);
  run.model = GuidedSpec(SelfGuidedMode::kFixedStep, 0.5);
  TrainerOptions options;
  options.run_dir = dir / "run";
  options.device = "cpu";
  std::unique_ptr<Trainer> trainer = Trainer::Create(run, options).value();
  Recorder recorder;
  ASSERT_EQ(trainer->Run(&recorder).value(), TrainingOutcome::kComplete);
  for (int64_t t = 0; t < 12; ++t) {
    EXPECT_DOUBLE_EQ(recorder.alphas[t], t < 6 ? GuideAlpha(AlphaSchedule::kCosine, t, 6) : 0.0);
  }
  EXPECT_FALSE(torch::equal(recorder.batches[{6, 0}], recorder.batches[{0, 0}]));
  EXPECT_TRUE(std::isfinite(recorder.losses[11]));
}

}  // namespace
}  // namespace isoflop
