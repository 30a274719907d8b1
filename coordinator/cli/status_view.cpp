#include "coordinator/cli/status_view.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "common/store/results_format.h"

namespace isoflop {
namespace {

using nlohmann::json;

// FLOP/s of each sweep's running runs: tokens/s times FLOPs per processed token.
constexpr const char* kSweepSql = R"sql(
  SELECT s.sweep_id, s.name, s.runs,
         s.planned + s.queued + s.retry_wait AS waiting,
         s.launching + s.running AS running,
         s.completed, s.failed + s.lost AS failed, s.cancelled,
         coalesce(s.progress, 0.0) AS progress, s.planned_flops,
         (SELECT sum(m.tokens_per_s * r.planned_flops / max(r.tokens_processed, 1))
          FROM runs AS r
          JOIN sweep_runs AS l ON l.run_id = r.id AND l.sweep_id = s.sweep_id
          JOIN last_metrics AS m ON m.run_id = r.id
          WHERE r.state = 'RUNNING') AS flops_per_s
  FROM sweep_status AS s)sql";

const json& Cell(const QueryResult& result, size_t row, const char* column) {
  static const json kNull;
  for (size_t c = 0; c < result.columns.size(); ++c) {
    if (result.columns[c] == column) return result.rows[row][c];
  }
  return kNull;
}

double Real(const json& value, double fallback = 0) {
  return value.is_number() ? value.get<double>() : fallback;
}

int64_t Integer(const json& value) {
  return value.is_number() ? value.get<int64_t>() : 0;
}

std::string Text(const json& value) {
  return value.is_string() ? value.get<std::string>() : "";
}

std::optional<double> Eta(double progress, double planned_flops, double flops_per_s) {
  if (flops_per_s <= 0 || progress >= 1) return std::nullopt;
  return (1 - progress) * planned_flops / flops_per_s;
}

std::string Flops(double flops) {
  return flops > 0 ? fmt::format("{:.3g}", flops) : "0";
}

std::string Number(const json& value, const char* format) {
  return value.is_number() ? fmt::format(fmt::runtime(format), value.get<double>()) : "";
}

SweepProgress ProgressOf(const QueryResult& result, size_t row) {
  SweepProgress p;
  p.name = Text(Cell(result, row, "name"));
  p.runs = Integer(Cell(result, row, "runs"));
  p.waiting = Integer(Cell(result, row, "waiting"));
  p.running = Integer(Cell(result, row, "running"));
  p.completed = Integer(Cell(result, row, "completed"));
  p.failed = Integer(Cell(result, row, "failed"));
  p.cancelled = Integer(Cell(result, row, "cancelled"));
  p.progress = Real(Cell(result, row, "progress"));
  p.planned_flops = Real(Cell(result, row, "planned_flops"));
  p.eta_s = Eta(p.progress, p.planned_flops, Real(Cell(result, row, "flops_per_s")));
  return p;
}

// Rows as JSON objects keyed by column (FormatJson's convention, one document).
json RowsAsJson(const QueryResult& result) {
  json rows = json::array();
  for (const auto& row : result.rows) {
    json object = json::object();
    for (size_t c = 0; c < result.columns.size(); ++c) object[result.columns[c]] = row[c];
    rows.push_back(std::move(object));
  }
  return rows;
}

std::string RunTable(const QueryResult& runs) {
  QueryResult table;
  table.columns = {"run",  "name",  "state",     "progress", "step",
                   "loss", "tok/s", "heartbeat", "attempts"};
  for (size_t i = 0; i < runs.rows.size(); ++i) {
    const json& step = Cell(runs, i, "step");
    const double progress = Real(Cell(runs, i, "progress"));
    std::string state = Text(Cell(runs, i, "state"));
    if (state == "RETRY_WAIT") state += " " + FormatDuration(Real(Cell(runs, i, "retry_in_s")));
    table.rows.push_back({
        Text(Cell(runs, i, "run_id")).substr(0, 16),
        Cell(runs, i, "name"),
        state,
        fmt::format("{} {:3.0f}%", ProgressBar(progress, 20), 100 * progress),
        fmt::format("{}/{}", step.is_number() ? std::to_string(Integer(step)) : "-",
                    Integer(Cell(runs, i, "steps"))),
        Number(Cell(runs, i, "train_loss"), "{:.4f}"),
        Number(Cell(runs, i, "tokens_per_s"), "{:.3g}"),
        Cell(runs, i, "heartbeat_age_s").is_number()
            ? json(FormatDuration(Real(Cell(runs, i, "heartbeat_age_s"))) + " ago")
            : json(nullptr),
        Cell(runs, i, "attempts"),
    });
  }
  return FormatTable(table);
}

}  // namespace

std::string ProgressBar(double fraction, int width) {
  fraction = std::clamp(std::isnan(fraction) ? 0.0 : fraction, 0.0, 1.0);
  const int filled = static_cast<int>(std::round(fraction * width));
  return "[" + std::string(static_cast<size_t>(filled), '#') +
         std::string(static_cast<size_t>(width - filled), '.') + "]";
}

std::string FormatDuration(std::optional<double> seconds) {
  if (!seconds || *seconds < 0 || !std::isfinite(*seconds)) return "-";
  const auto s = static_cast<int64_t>(std::llround(*seconds));
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  if (s < 86400) return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
  return fmt::format("{}d{:02}h", s / 86400, (s % 86400) / 3600);
}

Result<std::string> RenderSweeps(const RunStore& store, bool as_json) {
  Result<QueryResult> sweeps = store.Query(std::string(kSweepSql) + " ORDER BY s.sweep_id");
  if (!sweeps.ok()) return sweeps.status();
  if (as_json) return RowsAsJson(*sweeps).dump(2) + "\n";
  QueryResult table;
  table.columns = {"sweep", "name",   "runs",      "waiting",  "running",
                   "done",  "failed", "cancelled", "progress", "flops done/planned",
                   "eta"};
  for (size_t i = 0; i < sweeps->rows.size(); ++i) {
    const SweepProgress p = ProgressOf(*sweeps, i);
    table.rows.push_back({Cell(*sweeps, i, "sweep_id"), p.name, p.runs, p.waiting, p.running,
                          p.completed, p.failed, p.cancelled,
                          fmt::format("{} {:3.0f}%", ProgressBar(p.progress, 20), 100 * p.progress),
                          Flops(p.progress * p.planned_flops) + " / " + Flops(p.planned_flops),
                          FormatDuration(p.eta_s)});
  }
  return FormatTable(table);
}

Result<SweepProgress> ReadSweepProgress(const RunStore& store, int64_t sweep_id) {
  Result<QueryResult> sweep =
      store.Query(fmt::format("{} WHERE s.sweep_id = {}", kSweepSql, sweep_id));
  if (!sweep.ok()) return sweep.status();
  if (sweep->rows.empty()) return Status::NotFound(fmt::format("no sweep #{}", sweep_id));
  return ProgressOf(*sweep, 0);
}

std::string ProgressLine(const SweepProgress& p, int64_t sweep_id) {
  std::string line = fmt::format("{} #{}: {}/{} done, {} running, {} waiting", p.name, sweep_id,
                                 p.completed, p.runs, p.running, p.waiting);
  if (p.failed > 0) line += fmt::format(", {} failed", p.failed);
  if (p.cancelled > 0) line += fmt::format(", {} cancelled", p.cancelled);
  return line + fmt::format("  {} {:3.0f}%  ETA {}", ProgressBar(p.progress, 20), 100 * p.progress,
                            FormatDuration(p.eta_s));
}

Result<std::string> RenderSweep(const RunStore& store, int64_t sweep_id, bool as_json) {
  Result<SweepProgress> progress = ReadSweepProgress(store, sweep_id);
  if (!progress.ok()) return progress.status();
  Result<QueryResult> runs = store.Query(
      fmt::format("SELECT * FROM run_status WHERE sweep_id = {} ORDER BY position", sweep_id));
  if (!runs.ok()) return runs.status();
  if (as_json) {
    return json{{"sweep_id", sweep_id},
                {"name", progress->name},
                {"runs", progress->runs},
                {"completed", progress->completed},
                {"progress", progress->progress},
                {"eta_s", progress->eta_s ? json(*progress->eta_s) : json(nullptr)},
                {"run_status", RowsAsJson(*runs)}}
               .dump(2) +
           "\n";
  }
  return ProgressLine(*progress, sweep_id) + "\n\n" + RunTable(*runs);
}

Result<std::string> RenderRun(const RunStore& store, const std::string& run_id, bool as_json) {
  // run_id is a full id from RunStore::FindRun: 64 hex digits, safe inside the SQL text.
  Result<QueryResult> run = store.Query(fmt::format(R"sql(
      SELECT r.id AS run_id, r.name, w.name AS sweep, r.sweep_id, r.state, r.attempts, r.host,
             r.gpus, r.steps, m.step, m.tokens, m.flops, r.planned_flops, m.train_loss,
             (SELECT value FROM evals WHERE run_id = r.id AND name = 'val_loss'
              ORDER BY step DESC LIMIT 1) AS val_loss,
             m.tokens_per_s, m.mfu,
             CASE WHEN r.state = 'COMPLETED' THEN 1.0
                  ELSE min(coalesce(m.step, 0) * 1.0 / max(r.steps, 1), 1.0) END AS progress,
             CASE WHEN r.state IN ('LAUNCHING', 'RUNNING')
                  THEN (julianday('now') - julianday(v.heartbeat_at)) * 86400.0 END
               AS heartbeat_age_s,
             CASE WHEN r.state = 'RETRY_WAIT'
                  THEN max(0.0, (julianday(v.retry_at) - julianday('now')) * 86400.0) END
               AS retry_in_s,
             r.updated_at
      FROM runs AS r
      JOIN sweeps AS w ON w.id = r.sweep_id
      LEFT JOIN last_metrics AS m ON m.run_id = r.id
      LEFT JOIN supervision AS v ON v.run_id = r.id
      WHERE r.id = '{}')sql",
                                                    run_id));
  if (!run.ok()) return run.status();
  if (run->rows.empty()) return Status::NotFound(fmt::format("no run {}", run_id));
  Result<QueryResult> attempts = store.Query(fmt::format(
      "SELECT attempt, launcher, pid, host, slots, started_at, ended_at, exit_status, cause "
      "FROM attempts WHERE run_id = '{}' ORDER BY attempt",
      run_id));
  if (!attempts.ok()) return attempts.status();
  Result<QueryResult> events = store.Query(
      fmt::format("SELECT * FROM (SELECT id, time, from_state, to_state, reason FROM events "
                  "WHERE run_id = '{}' ORDER BY id DESC LIMIT 12) ORDER BY id",
                  run_id));
  if (!events.ok()) return events.status();

  if (as_json) {
    json detail = RowsAsJson(*run)[0];
    detail["attempt_history"] = RowsAsJson(*attempts);
    detail["events"] = RowsAsJson(*events);
    return detail.dump(2) + "\n";
  }
  const QueryResult& r = *run;
  const double progress = Real(Cell(r, 0, "progress"));
  std::string out;
  out += fmt::format("run        {}\n", run_id);
  out += fmt::format("name       {} (sweep {} #{})\n", Text(Cell(r, 0, "name")),
                     Text(Cell(r, 0, "sweep")), Integer(Cell(r, 0, "sweep_id")));
  std::string state = Text(Cell(r, 0, "state"));
  if (Cell(r, 0, "retry_in_s").is_number()) {
    state += fmt::format(" (retry in {})", FormatDuration(Real(Cell(r, 0, "retry_in_s"))));
  }
  out += fmt::format("state      {}, {} attempt(s), host {}\n", state,
                     Integer(Cell(r, 0, "attempts")), Text(Cell(r, 0, "host")));
  out += fmt::format("progress   {} {:.1f}%  step {}/{}\n", ProgressBar(progress, 30),
                     100 * progress, Integer(Cell(r, 0, "step")), Integer(Cell(r, 0, "steps")));
  out += fmt::format("loss       train {}  val {}\n", Number(Cell(r, 0, "train_loss"), "{:.4f}"),
                     Number(Cell(r, 0, "val_loss"), "{:.4f}"));
  out +=
      fmt::format("throughput {} tokens/s, MFU {}\n", Number(Cell(r, 0, "tokens_per_s"), "{:.4g}"),
                  Number(Cell(r, 0, "mfu"), "{:.3f}"));
  out += fmt::format("flops      {} of {} planned\n", Flops(Real(Cell(r, 0, "flops"))),
                     Flops(Real(Cell(r, 0, "planned_flops"))));
  if (Cell(r, 0, "heartbeat_age_s").is_number()) {
    out += fmt::format("heartbeat  {} ago\n", FormatDuration(Real(Cell(r, 0, "heartbeat_age_s"))));
  }
  out += "\nattempts\n" + FormatTable(*attempts);
  out += "\nevents\n" + FormatTable(*events);
  return out;
}

}  // namespace isoflop
