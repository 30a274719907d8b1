// Run supervision as units: how an attempt's end is classified and retried (retry_policy.h), how
// metrics.jsonl becomes records exactly once (ingestor.h), and the store's bookkeeping that makes
// both survive a coordinator restart (RunStore: attempts, supervision, queue).
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>

#include "common/store/run_store.h"
#include "common/sweep/sweep_loader.h"
#include "coordinator/supervisor/ingestor.h"
#include "coordinator/supervisor/retry_policy.h"
#include "coordinator_testing.h"

namespace isoflop {
namespace {

using nlohmann::json;
using testing::ScratchDir;

JobExit Exited(int code) {
  return {true, code, 0, ""};
}
JobExit Killed(int signal) {
  return {true, 0, signal, ""};
}

TEST(ClassifyTest, SortsEveryWayAnAttemptEnds) {
  struct Case {
    JobExit exit;
    bool complete;
    StopRequest stop;
    std::string text;
  };
  const std::vector<Case> cases = {
      {Exited(0), true, StopRequest::kNone, "completed"},
      {Exited(139), true, StopRequest::kNone, "completed: exit status 139"},
      {Killed(SIGTERM), true, StopRequest::kCancel, "completed: killed by SIGTERM"},
      {Exited(0), false, StopRequest::kNone,
       "code fault: exit status 0 without a \"complete\" record"},
      {Exited(1), false, StopRequest::kNone, "config error: exit status 1"},
      {Exited(70), false, StopRequest::kNone, "code fault: exit status 70"},
      {Exited(2), false, StopRequest::kNone, "code fault: exit status 2"},
      {Killed(SIGSEGV), false, StopRequest::kNone, "code fault: killed by SIGSEGV"},
      {Killed(SIGABRT), false, StopRequest::kNone, "code fault: killed by SIGABRT"},
      {Killed(SIGKILL), false, StopRequest::kNone, "infrastructure: killed by SIGKILL"},
      {Killed(SIGTERM), false, StopRequest::kNone, "infrastructure: killed by SIGTERM"},
      {Exited(74), false, StopRequest::kNone, "infrastructure: exit status 74 (I/O error)"},
      {Exited(69), false, StopRequest::kNone,
       "infrastructure: exit status 69 (a collective timed out: another rank died or hangs)"},
      {Exited(75), false, StopRequest::kNone,
       "infrastructure: exit status 75 (stopped by someone else)"},
      {JobExit{}, false, StopRequest::kNone,
       "infrastructure: ended while the coordinator could not wait for it"},
      {Killed(SIGKILL), false, StopRequest::kHang,
       "hang: no heartbeat for the timeout; killed by SIGKILL"},
      {Exited(75), false, StopRequest::kCancel, "cancelled: exit status 75"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(Classify(c.exit, c.complete, c.stop).Text(), c.text);
  }
  AttemptCause cause;
  ASSERT_TRUE(ParseCause("code fault: exit status 70", &cause));
  EXPECT_EQ(cause, AttemptCause::kCodeFault);
  ASSERT_TRUE(ParseCause("hang", &cause));
  EXPECT_EQ(cause, AttemptCause::kHang);
  EXPECT_FALSE(ParseCause("code faulty", &cause));
}

AttemptRow Past(const std::string& cause, double duration_s) {
  AttemptRow row;
  row.cause = cause;
  row.duration_s = duration_s;
  return row;
}

TEST(RetryPolicyTest, SeparateBudgetsForCodeAndInfrastructureFaults) {
  RetryPolicyOptions options;
  options.max_infra_retries = 3;
  options.backoff_base_s = 2;
  options.crash_loop_attempts = 0;
  const AttemptOutcome code{AttemptCause::kCodeFault, "exit status 70"};
  const AttemptOutcome infra{AttemptCause::kInfrastructure, "killed by SIGKILL"};

  // Two code faults so far (this one included), max_retries 2: retried, after 2 s then 4 s.
  std::vector<AttemptRow> history = {Past(code.Text(), 100), Past(code.Text(), 100)};
  RetryDecision decision = DecideRetry(code, history, 2, options);
  EXPECT_TRUE(decision.retry);
  EXPECT_DOUBLE_EQ(decision.delay_s, 4);
  EXPECT_EQ(decision.reason, "retry 2 of 2 (max_retries) in 4 s");
  // A third: the budget is spent.
  history.push_back(Past(code.Text(), 100));
  decision = DecideRetry(code, history, 2, options);
  EXPECT_FALSE(decision.retry);
  EXPECT_EQ(decision.reason, "not retried: 3 code faults, 2 max_retries spent");
  // ...but an infrastructure fault has its own budget, untouched by the code faults.
  history.push_back(Past(infra.Text(), 100));
  decision = DecideRetry(infra, history, 2, options);
  EXPECT_TRUE(decision.retry);
  EXPECT_DOUBLE_EQ(decision.delay_s, 2);
  // Hangs spend the infrastructure budget.
  history.push_back(Past("hang: no heartbeat", 900));
  history.push_back(Past(infra.Text(), 100));
  history.push_back(Past(infra.Text(), 100));
  EXPECT_FALSE(DecideRetry(infra, history, 2, options).retry);
}

TEST(RetryPolicyTest, ConfigErrorsCompletionsAndCancellationsAreNeverRetried) {
  const RetryPolicyOptions options;
  for (AttemptCause cause :
       {AttemptCause::kConfigError, AttemptCause::kCompleted, AttemptCause::kCancelled}) {
    const AttemptOutcome outcome{cause, ""};
    EXPECT_FALSE(DecideRetry(outcome, {Past(outcome.Text(), 1)}, 5, options).retry);
  }
}

TEST(RetryPolicyTest, BackoffDoublesUpToItsCap) {
  RetryPolicyOptions options;
  options.max_infra_retries = 100;
  options.backoff_base_s = 5;
  options.backoff_max_s = 30;
  options.crash_loop_attempts = 0;
  const AttemptOutcome infra{AttemptCause::kInfrastructure, "x"};
  std::vector<AttemptRow> history;
  std::vector<double> delays;
  for (int i = 0; i < 5; ++i) {
    history.push_back(Past(infra.Text(), 100));
    delays.push_back(DecideRetry(infra, history, 0, options).delay_s);
  }
  EXPECT_EQ(delays, (std::vector<double>{5, 10, 20, 30, 30}));
}

TEST(RetryPolicyTest, ACrashLoopStopsBeforeTheBudgetIsSpent) {
  RetryPolicyOptions options;
  options.max_infra_retries = 100;
  options.crash_loop_attempts = 3;
  options.crash_loop_window_s = 60;
  const AttemptOutcome launch{AttemptCause::kInfrastructure, "launch failed: No such file"};
  std::vector<AttemptRow> history = {Past(launch.Text(), 0.01), Past(launch.Text(), 0.01)};
  EXPECT_TRUE(DecideRetry(launch, history, 2, options).retry);
  history.push_back(Past(launch.Text(), 0.01));
  RetryDecision decision = DecideRetry(launch, history, 2, options);
  EXPECT_FALSE(decision.retry);
  EXPECT_NE(decision.reason.find("crash loop"), std::string::npos) << decision.reason;
  // Slow failures, or different ones, are not a loop.
  history.back().duration_s = 3600;
  EXPECT_TRUE(DecideRetry(launch, history, 2, options).retry);
  history.back() = Past("infrastructure: killed by SIGKILL", 0.01);
  EXPECT_TRUE(DecideRetry(launch, history, 2, options).retry);
}

// A store with one sweep of `runs` runs, QUEUED.
class StoreFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = RunStore::Open(scratch_.path() + "/isoflop.db");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    auto sweep = LoadSweepFromString(testing::SweepYaml("unit", 3), scratch_.path() + "/s.yaml");
    ASSERT_TRUE(sweep.ok()) << sweep.status().ToString();
    auto inserted = store_->InsertSweep(sweep->name, sweep->source, sweep->runs);
    ASSERT_TRUE(inserted.ok()) << inserted.status().ToString();
    sweep_id_ = inserted->sweep_id;
    ids_ = *store_->SweepRunIds(sweep_id_);
  }
  int64_t Count(const std::string& sql) {
    Result<QueryResult> result = store_->Query(sql);
    EXPECT_TRUE(result.ok()) << result.status().ToString();
    return result.ok() ? result->rows.at(0).at(0).get<int64_t>() : -1;
  }
  RunState StateOf(const std::string& id) { return store_->Run(id)->state; }

  ScratchDir scratch_;
  std::unique_ptr<RunStore> store_;
  int64_t sweep_id_ = 0;
  std::vector<std::string> ids_;
};

using RunStoreSupervisionTest = StoreFixture;

TEST_F(RunStoreSupervisionTest, FindsRunsByUniquePrefix) {
  EXPECT_EQ(*store_->FindRun(ids_[0].substr(0, 16)), ids_[0]);
  EXPECT_EQ(*store_->FindRun(ids_[0]), ids_[0]);
  std::string upper = ids_[0].substr(0, 10);
  for (char& c : upper) c = static_cast<char>(std::toupper(c));
  EXPECT_EQ(*store_->FindRun(upper), ids_[0]);
  EXPECT_EQ(store_->FindRun("abc").status().code(), Status::Code::kInvalidArgument);  // too short
  EXPECT_EQ(store_->FindRun("xyz12345").status().code(), Status::Code::kInvalidArgument);
  // Another 16-digit prefix: three random ids share it with odds of 3 in 2^64.
  std::string absent = ids_[0].substr(0, 16);
  absent[15] = absent[15] == '0' ? '1' : '0';
  EXPECT_EQ(store_->FindRun(absent).status().code(), Status::Code::kNotFound);
}

TEST_F(RunStoreSupervisionTest, AnAttemptGoesFromLaunchToItsEndInWholeTransactions) {
  ASSERT_EQ(store_->QueuedRuns()->size(), 3u);
  Result<int64_t> attempt = store_->BeginAttempt({ids_[0], "local", "host", "cpu0", "/log"});
  ASSERT_TRUE(attempt.ok()) << attempt.status().ToString();
  EXPECT_EQ(*attempt, 1);
  EXPECT_EQ(StateOf(ids_[0]), RunState::kLaunching);
  EXPECT_EQ(store_->QueuedRuns()->size(), 2u);
  // Not twice: the run is no longer QUEUED, and its attempt is open.
  EXPECT_EQ(store_->BeginAttempt({ids_[0], "local", "host", "cpu1", "/log"}).status().code(),
            Status::Code::kFailedPrecondition);
  ASSERT_EQ(store_->OpenAttempts()->size(), 1u);
  EXPECT_TRUE(store_->OpenAttempts()->at(0).handle.is_null());

  ASSERT_TRUE(store_
                  ->AttemptRunning(ids_[0], 1, 4242, {{"pid", 4242}},
                                   {{"host", "host"}, {"coordinator", {{"git_commit", "abc"}}}})
                  .ok());
  EXPECT_EQ(StateOf(ids_[0]), RunState::kRunning);
  EXPECT_EQ(store_->OpenAttempts()->at(0).pid, 4242);
  EXPECT_EQ(store_->OpenAttempts()->at(0).handle["pid"], 4242);

  AttemptEnd end;
  end.run_id = ids_[0];
  end.attempt = 1;
  end.exit_status = -SIGKILL;
  end.cause = "infrastructure: killed by SIGKILL";
  end.state = RunState::kLost;
  end.reason = "attempt 1: killed";
  end.retry_delay_s = 30;
  end.retry_reason = "retry 1 of 10";
  ASSERT_TRUE(store_->EndAttempt(end).ok());
  EXPECT_EQ(StateOf(ids_[0]), RunState::kRetryWait);
  EXPECT_TRUE(store_->OpenAttempts()->empty());
  ASSERT_EQ(store_->RetryWaitRuns()->size(), 1u);
  EXPECT_NEAR(store_->RetryWaitRuns()->at(0).second, 30, 1);
  EXPECT_EQ(Count(fmt::format("SELECT count(*) FROM events WHERE run_id = '{}' AND to_state "
                              "IN ('LOST', 'RETRY_WAIT')",
                              ids_[0])),
            2);
  // A duplicate exit notice changes nothing.
  ASSERT_TRUE(store_->EndAttempt(end).ok());
  EXPECT_EQ(Count("SELECT count(*) FROM events WHERE to_state = 'RETRY_WAIT'"), 1);

  ASSERT_TRUE(store_->RetryDue(ids_[0]).ok());
  EXPECT_EQ(StateOf(ids_[0]), RunState::kQueued);
  EXPECT_EQ(*store_->BeginAttempt({ids_[0], "local", "host", "cpu0", "/log"}), 2);
  const auto attempts = *store_->Attempts(ids_[0]);
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[0].exit_status, -SIGKILL);
  EXPECT_FALSE(attempts[0].open);
  EXPECT_TRUE(attempts[1].open);
  EXPECT_EQ(json::parse(store_->Query("SELECT provenance FROM runs WHERE id = '" + ids_[0] + "'")
                            ->rows[0][0]
                            .get<std::string>())["coordinator"]["git_commit"],
            "abc");
}

TEST_F(RunStoreSupervisionTest, IngestStoresRecordsAndTheirOffsetTogether) {
  IngestBatch batch;
  batch.run_id = ids_[1];
  batch.end_offset = 120;
  batch.progressed = true;
  batch.metrics.push_back({ids_[1], 1, 4096, 1e9, 3.0, 1e-3, 1.0, 1e5, 0.1});
  batch.evals.push_back({ids_[1], 1, 4096, 1e9, "val_loss", 2.9, 100});
  batch.checkpoints.push_back({ids_[1], 1, "/ckpt/1", 100});
  batch.provenance = {{"worker", {{"torch", "2.5"}}}};
  batch.complete_step = 1;
  ASSERT_TRUE(store_->Ingest({batch}).ok());
  Supervision supervision = *store_->SupervisionOf(ids_[1]);
  EXPECT_EQ(supervision.ingest_offset, 120);
  EXPECT_EQ(supervision.complete_step, 1);
  EXPECT_EQ(Count("SELECT count(*) FROM metrics"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM checkpoints"), 1);

  // A batch naming a run that does not exist fails as a whole: no record, no offset.
  IngestBatch stray = batch;
  stray.run_id = std::string(64, 'f');
  for (auto& m : stray.metrics) m.run_id = stray.run_id;
  stray.evals.clear();
  stray.checkpoints.clear();
  IngestBatch more = batch;
  more.end_offset = 240;
  more.metrics[0].step = 2;
  EXPECT_FALSE(store_->Ingest({more, stray}).ok());
  EXPECT_EQ(store_->SupervisionOf(ids_[1])->ingest_offset, 120);
  EXPECT_EQ(Count("SELECT count(*) FROM metrics"), 1);
}

TEST_F(RunStoreSupervisionTest, CancelAndResume) {
  ASSERT_TRUE(store_->BeginAttempt({ids_[0], "local", "h", "cpu0", "/log"}).ok());
  Result<std::vector<std::string>> cancelled = store_->CancelRuns(ids_, "by the test");
  ASSERT_TRUE(cancelled.ok());
  EXPECT_EQ(cancelled->size(), 3u);
  EXPECT_EQ(store_->QueuedRuns()->size(), 0u);
  // ids_[0]'s attempt is still open (its worker is stopping): resume leaves it for later.
  Result<std::vector<std::string>> requeued = store_->RequeueSweep(sweep_id_, "resumed");
  ASSERT_TRUE(requeued.ok());
  EXPECT_EQ(*requeued, (std::vector<std::string>{ids_[1], ids_[2]}));
  AttemptEnd end;
  end.run_id = ids_[0];
  end.attempt = 1;
  end.cause = "cancelled";
  end.state = RunState::kCancelled;
  ASSERT_TRUE(store_->EndAttempt(end).ok());
  EXPECT_EQ(*store_->RequeueSweep(sweep_id_, "resumed"), (std::vector<std::string>{ids_[0]}));
  // Resuming gives fresh retry budgets: attempts so far no longer count.
  EXPECT_EQ(store_->SupervisionOf(ids_[0])->budget_from_attempt, 1);
  EXPECT_EQ(store_->RequeueSweep(sweep_id_ + 100, "x").status().code(), Status::Code::kNotFound);
}

class IngestorTest : public StoreFixture {
 protected:
  std::string MetricsFile() { return scratch_.path() + "/metrics.jsonl"; }
  void Append(const std::string& text) { std::ofstream(MetricsFile(), std::ios::app) << text; }
  static std::string Train(int step) {
    return json{{"type", "train"},      {"step", step},        {"tokens", step * 10},
                {"flops", step * 1e6},  {"train_loss", 2.5},   {"lr", 1e-3},
                {"grad_norm", nullptr}, {"tokens_per_s", 1e4}, {"mfu", 0.2}}
               .dump() +
           "\n";
  }
};

TEST_F(IngestorTest, TailsTheFileAndStoresEachRecordOnce) {
  Ingestor ingestor(store_.get());
  ingestor.Track(ids_[0], MetricsFile(), 0, false);
  // No file yet: nothing, and no heartbeat.
  auto progress = ingestor.IngestAll();
  ASSERT_TRUE(progress.ok());
  EXPECT_FALSE((*progress)[ids_[0]].progressed);

  Append(R"({"type":"start","torch":"2.5","device":"cpu","run_id":"x"})"
         "\n" +
         Train(1) + Train(2));
  Append(R"({"type":"train","step":3,"tok)");  // half a record: the worker is still writing it
  progress = ingestor.IngestAll();
  ASSERT_TRUE(progress.ok());
  EXPECT_TRUE((*progress)[ids_[0]].progressed);
  EXPECT_EQ(Count("SELECT count(*) FROM metrics"), 2);
  EXPECT_EQ(Count("SELECT count(*) FROM metrics WHERE grad_norm IS NULL"), 2);  // JSON null
  const int64_t offset = store_->SupervisionOf(ids_[0])->ingest_offset;
  EXPECT_EQ(offset,
            static_cast<int64_t>(std::filesystem::file_size(MetricsFile())) -
                static_cast<int64_t>(std::string(R"({"type":"train","step":3,"tok)").size()));
  // Nothing new: no heartbeat, even with the half record still waiting.
  progress = ingestor.IngestAll();
  EXPECT_FALSE((*progress)[ids_[0]].progressed);

  Append(R"(ens":30,"flops":3e6,"train_loss":2.4})"
         "\n");
  Append("this is not json\n");
  Append(R"({"type":"eval","step":3,"tokens":30,"flops":3e6,"name":"val_loss","value":2.6})"
         "\n");
  Append(R"({"type":"checkpoint","step":3,"path":"/c/3","bytes":99})"
         "\n");
  Append(R"({"type":"resume","step":3})"
         "\n");
  Append(R"({"type":"from_the_future","x":1})"
         "\n");
  Append(R"({"type":"complete","step":3})"
         "\n");
  progress = ingestor.IngestAll();
  ASSERT_TRUE(progress.ok());
  EXPECT_TRUE((*progress)[ids_[0]].complete);
  EXPECT_EQ(Count("SELECT count(*) FROM metrics"), 3);
  EXPECT_EQ(Count("SELECT count(*) FROM evals"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM checkpoints"), 1);
  EXPECT_EQ(store_->SupervisionOf(ids_[0])->complete_step, 3);
  EXPECT_EQ(ingestor.skipped_lines(), 1);
  EXPECT_EQ(json::parse(store_->Query("SELECT provenance FROM runs WHERE id = '" + ids_[0] + "'")
                            ->rows[0][0]
                            .get<std::string>())["worker"]["torch"],
            "2.5");

  // A restarted coordinator reads on from the stored offset: nothing twice.
  Ingestor restarted(store_.get());
  restarted.Track(ids_[0], MetricsFile(), store_->SupervisionOf(ids_[0])->ingest_offset, true);
  Append(Train(4));
  ASSERT_TRUE(restarted.IngestAll().ok());
  EXPECT_EQ(Count("SELECT count(*) FROM metrics"), 4);
  EXPECT_EQ(store_->SupervisionOf(ids_[0])->ingest_offset,
            static_cast<int64_t>(std::filesystem::file_size(MetricsFile())));
}

TEST_F(IngestorTest, ATornLastLineIsSkippedOnceItsWriterIsGone) {
  Ingestor ingestor(store_.get());
  ingestor.Track(ids_[0], MetricsFile(), 0, false);
  Append(Train(1) + R"({"type":"train","st)");  // SIGKILL mid-write
  ASSERT_TRUE(ingestor.IngestAll().ok());
  EXPECT_LT(store_->SupervisionOf(ids_[0])->ingest_offset,
            static_cast<int64_t>(std::filesystem::file_size(MetricsFile())));
  Result<IngestProgress> final_read = ingestor.IngestFinal(ids_[0]);
  ASSERT_TRUE(final_read.ok());
  EXPECT_FALSE(final_read->complete);
  EXPECT_EQ(store_->SupervisionOf(ids_[0])->ingest_offset,
            static_cast<int64_t>(std::filesystem::file_size(MetricsFile())));
  // The next attempt ends the torn line before appending (MetricsWriter does); all is read.
  Append("\n" + Train(2));
  ASSERT_TRUE(ingestor.IngestAll().ok());
  EXPECT_EQ(Count("SELECT count(*) FROM metrics"), 2);
}

TEST_F(IngestorTest, BoundsTheWorkOfOneCallAndLetsEveryRunCatchUpInTurn) {
  // Two runs with a backlog (as after a coordinator outage), and room for about one run per call.
  const std::string other = scratch_.path() + "/other.jsonl";
  std::string backlog;
  for (int step = 1; step <= 20; ++step) backlog += Train(step);
  Append(backlog);
  std::ofstream(other) << backlog;
  Ingestor ingestor(store_.get(), {.bytes_per_run = 1000, .bytes_per_call = 500});
  ingestor.Track(ids_[0], MetricsFile(), 0, false);
  ingestor.Track(ids_[1], other, 0, false);
  auto first = ingestor.IngestAll();
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->size(), 1u);  // one run read, the other waits its turn
  auto second = ingestor.IngestAll();
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->size(), 1u);
  EXPECT_NE(first->begin()->first, second->begin()->first);
  for (int call = 0; call < 20; ++call) ASSERT_TRUE(ingestor.IngestAll().ok());
  EXPECT_EQ(Count("SELECT count(*) FROM metrics"), 40);
  EXPECT_EQ(ingestor.skipped_lines(), 0);

  // A line longer than a whole share is no record: skipped, not waited on forever.
  Append(std::string(3000, 'x') + "\n" + Train(21));
  for (int call = 0; call < 10; ++call) ASSERT_TRUE(ingestor.IngestAll().ok());
  EXPECT_EQ(Count("SELECT count(*) FROM metrics"), 41);
  EXPECT_GE(ingestor.skipped_lines(), 1);
}

TEST(ParseMetricsRecordTest, RejectsRecordsWithMissingOrMistypedFields) {
  for (const char* line : {
           R"({"type":"train","tokens":1,"flops":1})",                    // no step
           R"({"type":"train","step":"1","tokens":1,"flops":1})",         // step as text
           R"({"type":"train","step":1.5,"tokens":1,"flops":1})",         // fractional step
           R"({"type":"train","step":1,"tokens":1,"flops":null})",        // flops must be known
           R"({"type":"eval","step":1,"tokens":1,"flops":1,"value":1})",  // no name
           R"({"type":"checkpoint","step":1,"bytes":1})",                 // no path
           R"({"type":"complete"})",                                      // no step
           R"({"step":1})",                                               // no type
           R"([1])",
       }) {
    IngestBatch batch;
    batch.run_id = "r";
    EXPECT_FALSE(ParseMetricsRecord(line, &batch).ok()) << line;
    EXPECT_TRUE(batch.metrics.empty() && batch.evals.empty() && batch.checkpoints.empty());
  }
  IngestBatch batch;
  batch.run_id = "r";
  ASSERT_TRUE(
      ParseMetricsRecord(R"({"type":"train","step":2,"tokens":8.0e3,"flops":1e20})", &batch).ok());
  EXPECT_EQ(batch.metrics.at(0).tokens, 8000);
  EXPECT_TRUE(std::isnan(batch.metrics.at(0).train_loss));  // absent: stored as NULL
}

}  // namespace
}  // namespace isoflop
