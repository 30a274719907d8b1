// RunStore (common/store/run_store.h): schema and migrations, sweep insertion and run identity,
// idempotent ingest, all-or-nothing transactions, the views, and the read-only query path.
#include "common/store/run_store.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "common/embedded.h"

namespace isoflop {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kSweep[] = "demo";
constexpr char kYaml[] = "name: demo\nseeds: [0, 1]\n";

RunConfig MakeRun(const std::string& variant, int64_t seed, double budget = 1e15) {
  RunConfig run;
  run.sweep = kSweep;
  run.variant = variant;
  run.size = "s";
  run.seed = seed;
  run.name = fmt::format("{}/s/C{:g}/s{}", variant, budget, seed);
  run.model.n_layer = 4;
  run.model.d_model = 256;
  run.model.n_head = 4;
  run.model.seq_len = 256;
  run.data.train = "train.bin";
  run.data.val = "val.bin";
  run.data.fingerprint = "fp-0123";
  run.accounting.params = 16'000'000;
  run.accounting.params_nonemb = 3'000'000;
  run.budget.flops = budget;
  run.budget.flops_per_token = 1e8;
  run.budget.tokens = static_cast<int64_t>(budget / 1e8);
  run.budget.steps = 100;
  run.budget.tokens_processed = 100 * 32768;
  run.budget.planned_flops = budget;
  run.budget.six_nd = 6.0 * 16e6 * (budget / 1e8);
  return run;
}

// Executes SQL on the raw connection, bypassing RunStore: how a test tampers with a database.
void RawExec(sqlite3* db, const std::string& sql) {
  char* error = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  EXPECT_EQ(rc, SQLITE_OK) << (error ? error : "");
  sqlite3_free(error);
}

void RawExecOnFile(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  RawExec(db, sql);
  sqlite3_close(db);
}

class RunStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "run_store_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = (dir_ / "results.db").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<RunStore> OpenStore() {
    Result<std::unique_ptr<RunStore>> store = RunStore::Open(path_);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  // One integer from a query through the store's own read path.
  static int64_t Count(const RunStore& store, const std::string& sql) {
    Result<QueryResult> result = store.Query(sql);
    EXPECT_TRUE(result.ok()) << sql << ": " << result.status().ToString();
    if (!result.ok() || result->rows.size() != 1) return -1;
    return result->rows[0][0].get<int64_t>();
  }

  // Everything a refused statement could have changed, as one comparable value.
  static json Snapshot(const RunStore& store) {
    json snapshot;
    for (const char* table : {"sweeps", "runs", "sweep_runs", "metrics", "evals", "events"}) {
      snapshot[table] = Count(store, fmt::format("SELECT count(*) FROM {}", table));
    }
    snapshot["states"] = store.Query("SELECT id, state FROM runs ORDER BY id")->rows;
    snapshot["schema"] =
        store.Query("SELECT type, name, sql FROM sqlite_schema ORDER BY name")->rows;
    snapshot["user_version"] = store.SchemaVersion();
    return snapshot;
  }

  fs::path dir_;
  std::string path_;
};

TEST(RunStateTest, EveryStateRoundTripsThroughItsName) {
  for (RunState state : {RunState::kPlanned, RunState::kQueued, RunState::kLaunching,
                         RunState::kRunning, RunState::kCompleted, RunState::kFailed,
                         RunState::kLost, RunState::kRetryWait, RunState::kCancelled}) {
    RunState parsed = RunState::kPlanned;
    ASSERT_TRUE(Parse(ToString(state), &parsed)) << ToString(state);
    EXPECT_EQ(parsed, state);
  }
  RunState parsed = RunState::kPlanned;
  EXPECT_TRUE(Parse("retry_wait", &parsed));
  EXPECT_EQ(parsed, RunState::kRetryWait);
  EXPECT_FALSE(Parse("DONE", &parsed));
}

TEST(RunIdTest, IdenticalConfigsShareAnIdAndAnyChangeMakesANewOne) {
  const RunConfig run = MakeRun("dense", 0);
  const std::string id = RunId(run);
  ASSERT_EQ(id.size(), 64u);
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(RunId(MakeRun("dense", 0)), id);

  RunConfig lr = run;
  lr.train.optimizer.lr *= 1.0 + 1e-12;
  RunConfig seed = run;
  seed.seed = 1;
  RunConfig data = run;
  data.data.fingerprint = "fp-4567";
  RunConfig slurm = run;
  slurm.resources.slurm["partition"] = "gpu";
  for (const RunConfig* changed : {&lr, &seed, &data, &slurm}) EXPECT_NE(RunId(*changed), id);

  // The stored config reads back into the same run, hence the same id: a resumed run keeps its id.
  Result<RunConfig> reread = RunConfigFromJson(json::parse(ToJson(run).dump()));
  ASSERT_TRUE(reread.ok()) << reread.status().ToString();
  EXPECT_EQ(RunId(*reread), id);

  // The data order is part of the run: another order is another run. A run.json from before the
  // field existed read its data in file order, and reads back so (its checkpoints resume there).
  RunConfig sequential = run;
  sequential.data.order = DataOrder::kSequential;
  EXPECT_NE(RunId(sequential), id);
  json old = ToJson(run);
  old["data"].erase("order");
  Result<RunConfig> old_run = RunConfigFromJson(old);
  ASSERT_TRUE(old_run.ok()) << old_run.status().ToString();
  EXPECT_EQ(old_run->data.order, DataOrder::kSequential);
  EXPECT_EQ(run.data.order, DataOrder::kShuffled);  // the default of new runs
}

TEST_F(RunStoreTest, MigratesAnEmptyDatabaseAndReopensWithoutChange) {
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->SchemaVersion(), isoflop_migrations::kFileCount);
    for (const char* table :
         {"sweeps", "runs", "sweep_runs", "attempts", "metrics", "evals", "checkpoints", "events",
          "final_metrics", "sweep_results", "run_status", "sweep_status"}) {
      EXPECT_EQ(
          Count(*store, fmt::format("SELECT count(*) FROM sqlite_schema WHERE name = '{}'", table)),
          1)
          << table;
    }
    ASSERT_TRUE(store->InsertSweep(kSweep, kYaml, {MakeRun("dense", 0)}).ok());
  }
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->SchemaVersion(), isoflop_migrations::kFileCount);
  EXPECT_EQ(Count(*store, "SELECT count(*) FROM runs"), 1);
}

TEST_F(RunStoreTest, EmbeddedMigrationsAreNumberedFromOneWithoutGaps) {
  ASSERT_GE(isoflop_migrations::kFileCount, 1);
  for (int i = 0; i < isoflop_migrations::kFileCount; ++i) {
    EXPECT_EQ(std::string(isoflop_migrations::kFiles[i].name).substr(0, 5),
              fmt::format("{:04d}_", i + 1));
  }
}

TEST_F(RunStoreTest, RefusesADatabaseFromANewerIsoflop) {
  OpenStore();
  RawExecOnFile(path_, fmt::format("PRAGMA user_version = {}", isoflop_migrations::kFileCount + 1));
  for (auto open : {&RunStore::Open, &RunStore::OpenReadOnly}) {
    Result<std::unique_ptr<RunStore>> store = open(path_);
    ASSERT_FALSE(store.ok());
    EXPECT_EQ(store.status().code(), Status::Code::kFailedPrecondition);
    EXPECT_NE(store.status().message().find("newer"), std::string::npos)
        << store.status().message();
    EXPECT_NE(store.status().message().find(path_), std::string::npos) << store.status().message();
  }
}

TEST_F(RunStoreTest, RefusesAnotherApplicationsDatabaseWithoutTouchingIt) {
  RawExecOnFile(path_, "CREATE TABLE notes (text TEXT)");
  Result<std::unique_ptr<RunStore>> store = RunStore::Open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_FALSE(fs::exists(path_ + "-wal"));  // not even switched to WAL

  std::ofstream(dir_ / "text.db")
      << "this is not a database, it is a text file of some length...\n";
  store = RunStore::Open((dir_ / "text.db").string());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Status::Code::kCorruption) << store.status().ToString();
}

TEST_F(RunStoreTest, OpenReadOnlyNeedsAnExistingIsoflopDatabase) {
  Result<std::unique_ptr<RunStore>> store = RunStore::OpenReadOnly(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find(path_), std::string::npos) << store.status().message();
  EXPECT_FALSE(fs::exists(path_));
}

TEST_F(RunStoreTest, UsesWalForeignKeysAndABusyTimeout) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  sqlite3_stmt* stmt = nullptr;
  auto pragma = [&](const char* sql) {
    EXPECT_EQ(sqlite3_prepare_v2(store->handle(), sql, -1, &stmt, nullptr), SQLITE_OK);
    EXPECT_EQ(sqlite3_step(stmt), SQLITE_ROW);
    std::string value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    return value;
  };
  EXPECT_EQ(pragma("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(pragma("PRAGMA foreign_keys"), "1");
  EXPECT_EQ(pragma("PRAGMA busy_timeout"), "5000");
}

TEST_F(RunStoreTest, InsertingTheSameSweepTwiceAddsNothing) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  const std::vector<RunConfig> runs = {MakeRun("dense", 0), MakeRun("dense", 1),
                                       MakeRun("lowrank", 0)};
  Result<SweepInsertResult> first = store->InsertSweep(kSweep, kYaml, runs);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_FALSE(first->sweep_existed);
  EXPECT_EQ(first->runs_added, 3);
  EXPECT_EQ(first->runs_existing, 0);
  const json before = Snapshot(*store);

  Result<SweepInsertResult> second = store->InsertSweep(kSweep, kYaml, runs);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_TRUE(second->sweep_existed);
  EXPECT_EQ(second->sweep_id, first->sweep_id);
  EXPECT_EQ(second->runs_added, 0);
  EXPECT_EQ(second->runs_existing, 3);
  EXPECT_EQ(Snapshot(*store), before);
}

TEST_F(RunStoreTest, AnEditedSweepSharesItsUnchangedRunsAndKeepsTheirState) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  const RunConfig a = MakeRun("dense", 0), b = MakeRun("dense", 1), c = MakeRun("dense", 2);
  Result<SweepInsertResult> v1 = store->InsertSweep(kSweep, kYaml, {a, b});
  ASSERT_TRUE(v1.ok());
  ASSERT_TRUE(store->SetRunState(RunId(b), RunState::kLaunching, "slot 0").ok());
  ASSERT_TRUE(store->SetRunState(RunId(b), RunState::kRunning, "first heartbeat").ok());

  Result<SweepInsertResult> v2 = store->InsertSweep(kSweep, "name: demo\nseeds: [1, 2]\n", {b, c});
  ASSERT_TRUE(v2.ok()) << v2.status().ToString();
  EXPECT_FALSE(v2->sweep_existed);
  EXPECT_NE(v2->sweep_id, v1->sweep_id);
  EXPECT_EQ(v2->runs_added, 1);
  EXPECT_EQ(v2->runs_existing, 1);

  Result<std::vector<RunRow>> rows = store->Runs(v2->sweep_id);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].id, RunId(b));
  EXPECT_EQ((*rows)[0].state, RunState::kRunning);
  EXPECT_EQ((*rows)[0].sweep_id, v1->sweep_id);  // planned first by v1
  EXPECT_EQ((*rows)[1].id, RunId(c));
  EXPECT_EQ((*rows)[1].state, RunState::kQueued);
  EXPECT_EQ(Count(*store, "SELECT count(*) FROM runs"), 3);

  Result<int64_t> latest = store->FindSweep(kSweep);
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(*latest, v2->sweep_id);
  Result<int64_t> by_id = store->FindSweep(std::to_string(v1->sweep_id));
  ASSERT_TRUE(by_id.ok());
  EXPECT_EQ(*by_id, v1->sweep_id);
  EXPECT_EQ(store->FindSweep("nope").status().code(), Status::Code::kNotFound);
  EXPECT_EQ(store->Runs(999).status().code(), Status::Code::kNotFound);
}

TEST_F(RunStoreTest, RunsReadBackThePlanAndTheCanonicalConfig) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  const RunConfig run = MakeRun("lowrank", 3, 3e15);
  Result<SweepInsertResult> inserted = store->InsertSweep(kSweep, kYaml, {run});
  ASSERT_TRUE(inserted.ok());
  Result<std::vector<RunRow>> rows = store->Runs(inserted->sweep_id);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  const RunRow& row = rows->front();
  EXPECT_EQ(row.id, RunId(run));
  EXPECT_EQ(row.name, run.name);
  EXPECT_EQ(row.variant, "lowrank");
  EXPECT_EQ(row.size, "s");
  EXPECT_EQ(row.budget, 3e15);
  EXPECT_EQ(row.seed, 3);
  EXPECT_EQ(row.state, RunState::kQueued);
  EXPECT_EQ(row.attempts, 0);
  EXPECT_EQ(row.params, run.accounting.params);
  EXPECT_EQ(row.flops_per_token, run.budget.flops_per_token);
  EXPECT_EQ(row.tokens_target, run.budget.tokens);
  EXPECT_EQ(row.config, ToJson(run));
  EXPECT_EQ(
      Count(*store, "SELECT count(*) FROM events WHERE from_state IS NULL AND to_state = 'QUEUED'"),
      1);
}

TEST_F(RunStoreTest, ASweepWhoseRunsNameAnotherSweepIsRefused) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  RunConfig run = MakeRun("dense", 0);
  run.sweep = "other";
  Result<SweepInsertResult> result = store->InsertSweep(kSweep, kYaml, {run});
  EXPECT_EQ(result.status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(Count(*store, "SELECT count(*) FROM sweeps"), 0);
}

TEST_F(RunStoreTest, StateChangesAreLoggedAndCompletedIsFinal) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  const std::string id = RunId(MakeRun("dense", 0));
  ASSERT_TRUE(store->InsertSweep(kSweep, kYaml, {MakeRun("dense", 0)}).ok());
  for (auto [state, reason] : {std::pair{RunState::kLaunching, "slot 0"},
                               {RunState::kRunning, "heartbeat"},
                               {RunState::kRunning, "heartbeat again"},
                               {RunState::kLost, "no heartbeat for 60 s"},
                               {RunState::kQueued, "retry 1"},
                               {RunState::kLaunching, "slot 1"},
                               {RunState::kCompleted, "exit 0"}}) {
    ASSERT_TRUE(store->SetRunState(id, state, reason).ok()) << ToString(state);
  }
  Result<QueryResult> events =
      store->Query("SELECT from_state, to_state, reason FROM events ORDER BY id");
  ASSERT_TRUE(events.ok());
  const std::vector<std::vector<json>> expected = {
      {nullptr, "QUEUED", "submitted with sweep demo (#1)"},
      {"QUEUED", "LAUNCHING", "slot 0"},
      {"LAUNCHING", "RUNNING", "heartbeat"},
      {"RUNNING", "LOST", "no heartbeat for 60 s"},
      {"LOST", "QUEUED", "retry 1"},
      {"QUEUED", "LAUNCHING", "slot 1"},
      {"LAUNCHING", "COMPLETED", "exit 0"}};
  EXPECT_EQ(events->rows, expected);
  EXPECT_EQ(Count(*store, "SELECT attempts FROM runs"), 2);

  Status reopen = store->SetRunState(id, RunState::kRunning, "late heartbeat");
  EXPECT_EQ(reopen.code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(store->SetRunState(std::string(64, '0'), RunState::kRunning, "").code(),
            Status::Code::kNotFound);
  // The log is append-only even for a writer holding the raw handle.
  EXPECT_NE(sqlite3_exec(store->handle(), "DELETE FROM events", nullptr, nullptr, nullptr),
            SQLITE_OK);
  EXPECT_EQ(Count(*store, "SELECT count(*) FROM events"), 7);
}

MetricRecord Metric(const std::string& run_id, int64_t step, double loss) {
  return {run_id, step, step * 32768, step * 32768 * 1e8, loss, 6e-4, 0.5, 1e5, 0.4};
}

TEST_F(RunStoreTest, ReingestingMetricsAndEvalsChangesNothing) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  const std::string id = RunId(MakeRun("dense", 0));
  ASSERT_TRUE(store->InsertSweep(kSweep, kYaml, {MakeRun("dense", 0)}).ok());
  const std::vector<MetricRecord> metrics = {Metric(id, 10, 5.0), Metric(id, 20, 4.0)};
  const std::vector<EvalRecord> evals = {{id, 20, 655360, 6.5e13, "val_loss", 4.1, 0},
                                         {id, 20, 655360, 6.5e13, "arc_easy/acc", 0.31, 2376}};
  ASSERT_TRUE(store->AppendMetrics(metrics).ok());
  ASSERT_TRUE(store->AppendEvals(evals).ok());
  const json before = Snapshot(*store);

  ASSERT_TRUE(store->AppendMetrics(metrics).ok());
  ASSERT_TRUE(store->AppendEvals(evals).ok());
  EXPECT_EQ(Snapshot(*store), before);

  // A second copy with different numbers (a resumed attempt re-logging a step): the first copy
  // stands.
  ASSERT_TRUE(store->AppendMetrics({Metric(id, 20, 9.0), Metric(id, 30, 3.5)}).ok());
  EXPECT_EQ(Count(*store, "SELECT count(*) FROM metrics"), 3);
  EXPECT_EQ(store->Query("SELECT train_loss FROM metrics WHERE step = 20")->rows[0][0], 4.0);
  EXPECT_EQ(store->Query("SELECT step, train_loss FROM final_metrics")->rows[0],
            (std::vector<json>{30, 3.5}));
  EXPECT_EQ(Count(*store, "SELECT count(*) FROM evals"), 2);
  EXPECT_EQ(Count(*store, "SELECT count FROM evals WHERE name = 'arc_easy/acc'"), 2376);
}

TEST_F(RunStoreTest, ANotFiniteLossIsStoredAsNull) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  const std::string id = RunId(MakeRun("dense", 0));
  ASSERT_TRUE(store->InsertSweep(kSweep, kYaml, {MakeRun("dense", 0)}).ok());
  ASSERT_TRUE(
      store->AppendMetrics({Metric(id, 10, std::numeric_limits<double>::quiet_NaN())}).ok());
  EXPECT_EQ(Count(*store, "SELECT count(*) FROM metrics WHERE train_loss IS NULL"), 1);
}

TEST_F(RunStoreTest, ABatchThatFailsMidwayWritesNothing) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  const std::string id = RunId(MakeRun("dense", 0));
  ASSERT_TRUE(store->InsertSweep(kSweep, kYaml, {MakeRun("dense", 0)}).ok());
  const json before = Snapshot(*store);

  // The third record names a run the database does not have: a foreign-key violation mid-batch.
  Status metrics = store->AppendMetrics({Metric(id, 10, 5.0), Metric(id, 20, 4.0),
                                         Metric("no-such-run", 30, 3.0), Metric(id, 40, 2.0)});
  EXPECT_EQ(metrics.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(metrics.message().find("no-such-run"), std::string::npos) << metrics.message();
  EXPECT_NE(metrics.message().find("FOREIGN KEY"), std::string::npos) << metrics.message();

  Status evals = store->AppendEvals({{id, 10, 1, 1.0, "val_loss", 5.0, 0},
                                     {"no-such-run", 10, 1, 1.0, "val_loss", 5.0, 0},
                                     {id, 20, 2, 2.0, "val_loss", 4.0, 0}});
  EXPECT_EQ(evals.code(), Status::Code::kInvalidArgument);

  // A sweep whose second run has no budget (NaN cannot satisfy NOT NULL): no sweep, no run, no
  // event.
  RunConfig broken = MakeRun("dense", 7);
  broken.budget.flops = std::numeric_limits<double>::quiet_NaN();
  Result<SweepInsertResult> sweep =
      store->InsertSweep(kSweep, "name: demo\nseeds: [8, 7]\n", {MakeRun("dense", 8), broken});
  EXPECT_EQ(sweep.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(sweep.status().message().find(broken.name), std::string::npos)
      << sweep.status().message();

  EXPECT_EQ(Snapshot(*store), before);
}

TEST_F(RunStoreTest, ViewsReportTheLastRecordOfEachRun) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  const RunConfig a = MakeRun("dense", 0), b = MakeRun("lowrank", 0);
  Result<SweepInsertResult> sweep = store->InsertSweep(kSweep, kYaml, {a, b});
  ASSERT_TRUE(sweep.ok());
  const std::string id = RunId(a);
  ASSERT_TRUE(store->SetRunState(id, RunState::kLaunching, "").ok());
  ASSERT_TRUE(store->SetRunState(id, RunState::kRunning, "").ok());
  // Out of order on purpose: "last" is by step, not by arrival.
  ASSERT_TRUE(
      store->AppendMetrics({Metric(id, 30, 3.0), Metric(id, 10, 5.0), Metric(id, 20, 4.0)}).ok());
  ASSERT_TRUE(store
                  ->AppendEvals({{id, 30, 983040, 9.8e13, "val_loss", 3.2, 0},
                                 {id, 10, 327680, 3.2e13, "val_loss", 5.2, 0},
                                 {id, 30, 983040, 9.8e13, "arc_easy/acc", 0.4, 100}})
                  .ok());

  Result<QueryResult> final_metrics = store->Query(
      "SELECT run_id, sweep, variant, state, params, step, tokens, flops, train_loss, val_loss, "
      "val_step "
      "FROM final_metrics ORDER BY variant");
  ASSERT_TRUE(final_metrics.ok()) << final_metrics.status().ToString();
  ASSERT_EQ(final_metrics->rows.size(), 2u);
  const std::vector<json> expected_a = {id,     "demo",    "dense", "RUNNING", 16'000'000, 30,
                                        983040, 9.8304e13, 3.0,     3.2,       30};
  EXPECT_EQ(final_metrics->rows[0], expected_a);
  const std::vector<json> expected_b = {RunId(b), "demo",  "lowrank", "QUEUED", 16'000'000, nullptr,
                                        nullptr,  nullptr, nullptr,   nullptr,  nullptr};
  EXPECT_EQ(final_metrics->rows[1], expected_b);

  Result<QueryResult> results = store->Query(fmt::format(
      "SELECT position, run_id, val_loss FROM sweep_results WHERE sweep_id = {} ORDER BY position",
      sweep->sweep_id));
  ASSERT_TRUE(results.ok());
  const std::vector<std::vector<json>> expected_results = {{0, id, 3.2}, {1, RunId(b), nullptr}};
  EXPECT_EQ(results->rows, expected_results);

  // 30 of 100 steps at 1e5 tokens/s with 32768 tokens per step: 70 * 32768 / 1e5 s to go.
  Result<QueryResult> status = store->Query(
      "SELECT run_id, state, step, progress, train_loss, eta_s FROM run_status ORDER BY position");
  ASSERT_TRUE(status.ok());
  ASSERT_EQ(status->rows.size(), 2u);
  EXPECT_EQ(status->rows[0][2], 30);
  EXPECT_DOUBLE_EQ(status->rows[0][3].get<double>(), 0.3);
  EXPECT_DOUBLE_EQ(status->rows[0][5].get<double>(), 70 * 32768 / 1e5);
  EXPECT_EQ(status->rows[1][3], 0.0);
  EXPECT_TRUE(status->rows[1][5].is_null());

  Result<QueryResult> sweeps =
      store->Query("SELECT runs, queued, running, completed, progress FROM sweep_status");
  ASSERT_TRUE(sweeps.ok());
  ASSERT_EQ(sweeps->rows.size(), 1u);
  EXPECT_EQ(sweeps->rows[0][0], 2);
  EXPECT_EQ(sweeps->rows[0][1], 1);
  EXPECT_EQ(sweeps->rows[0][2], 1);
  EXPECT_EQ(sweeps->rows[0][3], 0);
  EXPECT_DOUBLE_EQ(sweeps->rows[0][4].get<double>(), 0.15);  // equal budgets: (0.3 + 0) / 2

  // A completed run counts as done even when its last logged step is short of `steps`.
  ASSERT_TRUE(store->SetRunState(id, RunState::kCompleted, "exit 0").ok());
  EXPECT_EQ(store->Query("SELECT progress FROM run_status WHERE position = 0")->rows[0][0], 1.0);
  EXPECT_EQ(store->Query("SELECT progress FROM sweep_status")->rows[0][0], 0.5);
}

// The status and results views must stay seeks into metrics and evals: scanning 10 million metric
// rows would blow the 100 ms budget of `isoflop status` (system.md section 10).
TEST_F(RunStoreTest, StatusAndResultsViewsNeverScanMetricsOrEvals) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  for (const char* sql : {"SELECT * FROM run_status WHERE sweep_id = 1 ORDER BY position",
                          "SELECT * FROM sweep_status", "SELECT * FROM final_metrics",
                          "SELECT * FROM sweep_results WHERE sweep_id = 1 ORDER BY position"}) {
    std::string plan;
    sqlite3_stmt* stmt = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(store->handle(), fmt::format("EXPLAIN QUERY PLAN {}", sql).c_str(),
                                 -1, &stmt, nullptr),
              SQLITE_OK);
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      plan += reinterpret_cast<const char*>(sqlite3_column_text(stmt, 3));
      plan += '\n';
    }
    sqlite3_finalize(stmt);
    for (const char* table :
         {"SCAN metrics", "SCAN evals", "SCAN last_metrics", "SCAN m\n", "SCAN v\n"}) {
      EXPECT_EQ(plan.find(table), std::string::npos) << sql << "\n" << plan;
    }
    EXPECT_NE(plan.find("SEARCH m USING PRIMARY KEY (run_id=?)"), std::string::npos) << sql << "\n"
                                                                                     << plan;
  }
}

TEST_F(RunStoreTest, QueryRendersEachSqliteTypeAsAJsonScalar) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  Result<QueryResult> result = store->Query(
      "SELECT 9007199254740993 AS big, 2.5 AS real, 'text' AS t, NULL AS n, x'00ff' AS b");
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->columns, (std::vector<std::string>{"big", "real", "t", "n", "b"}));
  ASSERT_EQ(result->rows.size(), 1u);
  const auto& row = result->rows[0];
  EXPECT_TRUE(row[0].is_number_integer());
  EXPECT_EQ(row[0].get<int64_t>(), 9007199254740993);  // beyond double precision: kept exact
  EXPECT_EQ(row[1], 2.5);
  EXPECT_EQ(row[2], "text");
  EXPECT_TRUE(row[3].is_null());
  EXPECT_EQ(row[4], "x'00ff'");

  Result<QueryResult> empty = store->Query("SELECT id, state FROM runs");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->columns, (std::vector<std::string>{"id", "state"}));
  EXPECT_TRUE(empty->rows.empty());
}

// Every way a query could try to change the database, the schema or the connection.
const char* const kForbidden[] = {
    "INSERT INTO sweeps (name, source_yaml, source_hash) VALUES ('x', '', '')",
    "UPDATE runs SET state = 'CANCELLED'",
    "DELETE FROM runs",
    "DROP TABLE metrics",
    "DROP VIEW final_metrics",
    "CREATE TABLE stolen AS SELECT * FROM runs",
    "CREATE TEMP TABLE scratch (x)",
    "ATTACH DATABASE 'ATTACHED_PATH' AS other",
    "DETACH DATABASE main",
    "PRAGMA journal_mode = DELETE",
    "PRAGMA user_version = 5",
    "PRAGMA foreign_keys = OFF",
    "PRAGMA query_only = 0",
    "PRAGMA writable_schema = 1",
    "BEGIN",
    "VACUUM",
    "REINDEX",
    "ANALYZE",
    "SELECT 1; DELETE FROM runs",
    "SELECT 1; PRAGMA user_version = 5",
    "WITH doomed AS (SELECT id FROM runs) DELETE FROM runs WHERE id IN (SELECT id FROM doomed)",
};

class ReadOnlyQueryTest : public RunStoreTest, public ::testing::WithParamInterface<bool> {
 protected:
  void SetUp() override {
    RunStoreTest::SetUp();
    writer_ = OpenStore();
    ASSERT_NE(writer_, nullptr);
    ASSERT_TRUE(
        writer_->InsertSweep(kSweep, kYaml, {MakeRun("dense", 0), MakeRun("dense", 1)}).ok());
    ASSERT_TRUE(writer_->AppendMetrics({Metric(RunId(MakeRun("dense", 0)), 10, 5.0)}).ok());
    if (GetParam()) {
      Result<std::unique_ptr<RunStore>> reader = RunStore::OpenReadOnly(path_);
      ASSERT_TRUE(reader.ok()) << reader.status().ToString();
      reader_ = std::move(reader).value();
    }
  }
  // The parameter picks the store that runs the query: a read-only one, or the writer itself.
  RunStore& store() { return GetParam() ? *reader_ : *writer_; }

  std::unique_ptr<RunStore> writer_, reader_;
};

TEST_P(ReadOnlyQueryTest, RefusesEveryStatementThatWrites) {
  const json before = Snapshot(*writer_);
  const std::string attached = (dir_ / "attached.db").string();
  for (std::string sql : kForbidden) {
    if (const size_t at = sql.find("ATTACHED_PATH"); at != std::string::npos) {
      sql.replace(at, 13, attached);
    }
    Result<QueryResult> result = store().Query(sql);
    EXPECT_FALSE(result.ok()) << sql;
    EXPECT_TRUE(result.status().code() == Status::Code::kPermissionDenied ||
                result.status().code() == Status::Code::kInvalidArgument)
        << sql << ": " << result.status().ToString();
    EXPECT_EQ(Snapshot(*writer_), before) << sql;
  }
  EXPECT_FALSE(fs::exists(attached));
  // The connection's settings survived too: the writer still enforces foreign keys and WAL.
  EXPECT_EQ(writer_->AppendMetrics({Metric("no-such-run", 1, 1.0)}).code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(store().Query("SELECT 1").status().code(), Status::Code::kOk);
}

TEST_P(ReadOnlyQueryTest, ReadsTablesViewsAndTheSchema) {
  for (const char* sql :
       {"SELECT count(*) FROM runs", "SELECT * FROM final_metrics", "SELECT * FROM sweep_results",
        "SELECT * FROM run_status", "SELECT * FROM sweep_status", "SELECT name FROM sqlite_schema",
        "PRAGMA table_info(runs)", "PRAGMA user_version",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) "
        "SELECT sum(i) FROM n",
        "SELECT json_extract(config, '$.model.d_model') FROM runs",
        "  SELECT 1;  -- a trailing comment and semicolon are fine\n"}) {
    Result<QueryResult> result = store().Query(sql);
    EXPECT_TRUE(result.ok()) << sql << ": " << result.status().ToString();
  }
  EXPECT_EQ(Count(store(), "SELECT count(*) FROM final_metrics"), 2);
  EXPECT_EQ(Count(store(), "SELECT step FROM final_metrics WHERE step IS NOT NULL"), 10);
}

INSTANTIATE_TEST_SUITE_P(Stores, ReadOnlyQueryTest, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "ReadOnly" : "ReadWrite"; });

TEST_F(RunStoreTest, AReadOnlyStoreRefusesWritesThroughItsApiAndHandle) {
  auto writer = OpenStore();
  ASSERT_NE(writer, nullptr);
  ASSERT_TRUE(writer->InsertSweep(kSweep, kYaml, {MakeRun("dense", 0)}).ok());
  Result<std::unique_ptr<RunStore>> reader = RunStore::OpenReadOnly(path_);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  EXPECT_FALSE((*reader)->SetRunState(RunId(MakeRun("dense", 0)), RunState::kCancelled, "").ok());
  EXPECT_FALSE((*reader)->InsertSweep(kSweep, "other yaml", {MakeRun("dense", 5)}).ok());
  EXPECT_NE(sqlite3_exec((*reader)->handle(), "DELETE FROM runs", nullptr, nullptr, nullptr),
            SQLITE_OK);
  EXPECT_EQ(Count(*writer, "SELECT count(*) FROM runs"), 1);
  EXPECT_EQ(Count(*writer, "SELECT count(*) FROM sweeps"), 1);
  // Reads through the API work on the read-only store.
  Result<int64_t> sweep = (*reader)->FindSweep(kSweep);
  ASSERT_TRUE(sweep.ok());
  Result<std::vector<RunRow>> runs = (*reader)->Runs(*sweep);
  ASSERT_TRUE(runs.ok()) << runs.status().ToString();
  EXPECT_EQ(runs->size(), 1u);
}

}  // namespace
}  // namespace isoflop
