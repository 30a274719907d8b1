// isoflop: the command line of the isoflop system (system.md section 1, the user journey).
//
// Each subcommand is a thin function over the libraries in common/: it parses flags, calls one library
// entry point, prints, and turns a non-OK Status into a message on stderr and exit status 1 (2 for usage
// errors, as CLI11 does). Nothing here knows how sweeps, budgets or the database work.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "common/store/results_format.h"
#include "common/store/run_store.h"
#include "common/sweep/sweep_loader.h"
#include "coordinator/cli/plan_table.h"
#include "coordinator/cli/state_dir.h"

#ifdef ISOFLOP_HAVE_TEXT
#include "coordinator/cli/data_command.h"
#endif

namespace isoflop {
namespace {

int Fail(const Status& status) {
  std::fprintf(stderr, "isoflop: %s\n", status.message().c_str());
  return 1;
}

Result<ResultFormat> ParseFormat(const std::string& s) {
  ResultFormat f;
  if (!Parse(s, &f)) return Status::InvalidArgument("--format: expected table, csv or json, got " + s);
  return f;
}

struct PlanFlags {
  std::string file;
  std::string format = "table";
  double mfu = ThroughputModel().mfu;
  double peak_tflops = ThroughputModel().peak_flops / 1e12;
};

void AddPlanFlags(CLI::App* cmd, PlanFlags* f) {
  cmd->add_option("file", f->file, "sweep YAML file")->required();
  cmd->add_option("--format", f->format, "table, csv or json")->capture_default_str();
  cmd->add_option("--mfu", f->mfu, "model FLOP utilisation assumed for GPU-hours")
      ->capture_default_str();
  cmd->add_option("--peak-tflops", f->peak_tflops, "peak TFLOP/s per GPU assumed for GPU-hours")
      ->capture_default_str();
}

int RunPlan(const PlanFlags& f) {
  auto format = ParseFormat(f.format);
  if (!format.ok()) return Fail(format.status());
  auto sweep = LoadSweep(f.file);
  if (!sweep.ok()) return Fail(sweep.status());
  ThroughputModel model;
  model.mfu = f.mfu;
  model.peak_flops = f.peak_tflops * 1e12;
  std::cout << FormatResult(PlanRows(*sweep, model), *format);
  // The summary goes to stderr so that `--format csv|json > file` stays machine-readable.
  std::cerr << PlanSummary(*sweep, model);
  return 0;
}

int RunSubmit(const PlanFlags& f, bool dry_run, const StateDir& state) {
  if (dry_run) return RunPlan(f);
  auto sweep = LoadSweep(f.file);
  if (!sweep.ok()) return Fail(sweep.status());  // an invalid file writes nothing
  if (Status s = state.Create(); !s.ok()) return Fail(s);
  auto store = RunStore::Open(state.database());
  if (!store.ok()) return Fail(store.status());
  auto inserted = (*store)->InsertSweep(sweep->name, sweep->source, sweep->runs);
  if (!inserted.ok()) return Fail(inserted.status());
  std::cerr << PlanSummary(*sweep, ThroughputModel());
  std::cerr << fmt::format("{} runs added, {} already present\n", inserted->runs_added,
                           inserted->runs_existing);
  std::cout << inserted->sweep_id << "\n";
  return 0;
}

int RunQuery(const StateDir& state, const std::string& sql, const std::string& format_name) {
  auto format = ParseFormat(format_name);
  if (!format.ok()) return Fail(format.status());
  auto store = RunStore::OpenReadOnly(state.database());
  if (!store.ok()) return Fail(store.status());
  auto result = (*store)->Query(sql);
  if (!result.ok()) return Fail(result.status());
  std::cout << FormatResult(*result, *format);
  return 0;
}

int RunResults(const StateDir& state, const std::string& sweep, const std::string& format_name) {
  auto format = ParseFormat(format_name);
  if (!format.ok()) return Fail(format.status());
  auto store = RunStore::OpenReadOnly(state.database());
  if (!store.ok()) return Fail(store.status());
  auto sweep_id = (*store)->FindSweep(sweep);
  if (!sweep_id.ok()) return Fail(sweep_id.status());
  auto result = (*store)->Query(fmt::format(
      "SELECT name AS run, variant, size, budget, seed, state, params, tokens, flops, train_loss, "
      "val_loss FROM sweep_results WHERE sweep_id = {} ORDER BY variant, size, budget, seed",
      *sweep_id));
  if (!result.ok()) return Fail(result.status());
  std::cout << FormatResult(*result, *format);
  return 0;
}

}  // namespace
}  // namespace isoflop

int main(int argc, char** argv) {
  using namespace isoflop;
  CLI::App app{"isoflop: how does each transformer variant's loss scale with training compute?"};
  app.require_subcommand(1);
  std::string state_flag;
  app.add_option("--state-dir", state_flag,
                 "coordinator state directory (default $ISOFLOP_STATE_DIR or ./.isoflop)");

  PlanFlags plan_flags;
  CLI::App* plan = app.add_subcommand("plan", "expand a sweep and print its runs, tokens and FLOPs");
  AddPlanFlags(plan, &plan_flags);

  PlanFlags submit_flags;
  bool dry_run = false;
  CLI::App* submit = app.add_subcommand("submit", "store a sweep's runs in the results database");
  AddPlanFlags(submit, &submit_flags);
  submit->add_flag("--dry-run", dry_run, "print the plan and write nothing");

  std::string sql, query_format = "table";
  CLI::App* query = app.add_subcommand("query", "read-only SQL on the results database");
  query->add_option("sql", sql, "one SELECT statement")->required();
  query->add_option("--format", query_format, "table, csv or json")->capture_default_str();

  std::string results_sweep, results_format = "table";
  CLI::App* results = app.add_subcommand("results", "final metrics of every run of a sweep");
  results->add_option("sweep", results_sweep, "sweep name or id")->required();
  results->add_option("--format", results_format, "table, csv or json")->capture_default_str();

#ifdef ISOFLOP_HAVE_TEXT
  DataPrepareFlags data_flags;
  CLI::App* data = app.add_subcommand("data", "prepare token shards from text");
  data->require_subcommand(1);
  AddDataPrepareCommand(data, &data_flags);
#endif

  CLI11_PARSE(app, argc, argv);
  const StateDir state = StateDir::Resolve(state_flag);
  if (*plan) return RunPlan(plan_flags);
  if (*submit) return RunSubmit(submit_flags, dry_run, state);
  if (*query) return RunQuery(state, sql, query_format);
  if (*results) return RunResults(state, results_sweep, results_format);
#ifdef ISOFLOP_HAVE_TEXT
  if (*data) return RunDataPrepare(data_flags);
#endif
  return 2;
}
