// isoflopd with the real isoflop-worker: a run trains on real text (byte-level tokens of Tiny
// Shakespeare from ../shared/data), its worker is SIGKILLed after its first checkpoint, and the
// retried attempt resumes from that checkpoint under the same run id until the run completes with
// every logged step stored once.
//
// The worker comes from ISOFLOP_WORKER_BIN (set when the build has the isoflop-worker target) or
// $ISOFLOP_WORKER; without either the test is skipped.
#include <gtest/gtest.h>

#include <cstdlib>
#include <vector>

#include "common/data/token_shard.h"
#include "coordinator_testing.h"

namespace isoflop::testing {
namespace {

std::string WorkerBinary() {
#ifdef ISOFLOP_WORKER_BIN
  return ISOFLOP_WORKER_BIN;
#else
  const char* env = std::getenv("ISOFLOP_WORKER");
  return env ? env : "";
#endif
}

void WriteByteShard(const std::string& path, std::string_view text) {
  std::vector<int32_t> tokens(text.begin(), text.end());
  for (int32_t& token : tokens) token &= 0xff;
  Result<TokenShardWriter> writer = TokenShardWriter::Create(path);
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  ASSERT_TRUE(writer->Append(tokens).ok());
  ASSERT_TRUE(writer->Finish().ok());
}

TEST(WorkerEndToEndTest, AKilledWorkerResumesFromItsCheckpointAndTheRunCompletes) {
  const std::string worker = WorkerBinary();
  if (worker.empty()) GTEST_SKIP() << "no isoflop-worker in this build (LibTorch not found)";
  ScratchDir scratch;
  const std::string text =
      ReadFile(std::string(ISOFLOP_SHARED_DIR) + "/data/corpus/tinyshakespeare.txt");
  ASSERT_GT(text.size(), 300000u);
  WriteByteShard(scratch.path() + "/train.bin", std::string_view(text).substr(0, 250000));
  WriteByteShard(scratch.path() + "/val.bin", std::string_view(text).substr(250000, 40000));
  const std::string sweep = WriteFile(scratch.path() + "/real.yaml", R"(
name: real-worker
data: {train: train.bin, val: val.bin, tokenizer: bytes}
model: {vocab_size: 320, positions: rotary, tied_embeddings: true}
sizes:
  xs: {n_layer: 2, d_model: 64, n_head: 2, seq_len: 64}
variants:
  dense: {}
budgets: {flops: [6e10]}
seeds: [0]
train:
  batch_tokens: 2048
  log_every: 2
  checkpoint_every_tokens: 16384
eval: {val_tokens: 4096}
)");
  TestDaemon daemon(scratch.path() + "/state",
                    {"--cpu-slots", "1", "--retry-backoff", "0.05", "--ingest-interval-ms", "50"},
                    {}, worker);
  daemon.Start();
  daemon.Submit(sweep);
  Results results(daemon.state());
  ASSERT_TRUE(WaitFor([&] { return results.Count("SELECT count(*) FROM checkpoints") >= 1; }, 120s))
      << results.Dump() << daemon.log();
  const int64_t pid = results.Count("SELECT pid FROM attempts WHERE ended_at IS NULL");
  ASSERT_GT(pid, 0) << results.Dump();
  ASSERT_EQ(::kill(static_cast<pid_t>(pid), SIGKILL), 0);

  ASSERT_TRUE(WaitFor([&] { return results.AllCompleted(1); }, 300s))
      << results.Dump()
      << ReadFile(daemon.state().runs() + "/" +
                  results.Rows("SELECT id FROM runs")[0][0].get<std::string>() + "/worker.log");
  EXPECT_EQ(results.Count("SELECT count(*) FROM attempts"), 2) << results.Dump();
  EXPECT_EQ(results.Count("SELECT count(*) FROM metrics"),
            results.Count("SELECT count(DISTINCT step) FROM metrics"));
  // Every logged step is there: log_every 2 up to the last step.
  const int64_t steps = results.Count("SELECT steps FROM runs");
  EXPECT_EQ(results.Count("SELECT count(*) FROM metrics"), steps / 2);
  EXPECT_EQ(results.Count("SELECT count(*) FROM evals WHERE name = 'val_loss'"), 1);
  const std::string run_id = results.Rows("SELECT id FROM runs")[0][0].get<std::string>();
  EXPECT_NE(ReadFile(daemon.state().run(run_id) + "/metrics.jsonl").find(R"("type":"resume")"),
            std::string::npos);
  const auto provenance =
      results.Rows("SELECT json_extract(provenance, '$.worker.torch') FROM runs");
  EXPECT_TRUE(provenance.at(0).at(0).is_string());  // the LibTorch version, from the worker
}

}  // namespace
}  // namespace isoflop::testing
