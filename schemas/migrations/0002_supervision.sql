-- isoflop results database, schema version 2: what isoflopd needs to supervise runs across its own
-- restarts (system.md section 8). After a `kill -9` of the coordinator everything it knew about a
-- live run must be here: which process to look for, how much of metrics.jsonl is already stored, when
-- a waiting retry is due, and how much of the retry budget is spent.

-- How to find an attempt's processes again. `handle` is the launcher's own description (local and
-- mpi: {"pid", "start_ticks", "boot_id"}, so that a reused pid is never mistaken for the worker;
-- slurm: the job id); `slots` names the devices the attempt holds ("0,1" for GPUs, "cpu3" for a CPU
-- slot) so that an adopted run keeps them. An attempt whose ended_at is NULL may still have a
-- process: the coordinator reconciles exactly those rows when it starts.
ALTER TABLE attempts ADD COLUMN handle TEXT CHECK (handle IS NULL OR json_valid(handle));
ALTER TABLE attempts ADD COLUMN slots TEXT;
CREATE INDEX attempts_open ON attempts (run_id) WHERE ended_at IS NULL;

-- One row per run the coordinator has launched or scheduled a retry for. Kept out of `runs` because
-- `runs` ends with the large config column and columns added after it would live on overflow pages.
CREATE TABLE supervision (
  run_id              TEXT PRIMARY KEY REFERENCES runs (id),
  -- Bytes of runs/<id>/metrics.jsonl already stored, written in the same transaction as the records
  -- read from them: ingest resumes exactly there after a restart (exactly-once, not at-least-once).
  ingest_offset       INTEGER NOT NULL DEFAULT 0,
  heartbeat_at        TEXT,     -- the last time the worker showed progress (its metrics.jsonl grew)
  complete_step       INTEGER,  -- step of the worker's "complete" record, once ingested
  retry_at            TEXT,     -- RETRY_WAIT: when the run goes back to QUEUED
  -- Attempts up to this number do not count against the retry budgets: `isoflop resume` sets it, so
  -- a resumed run gets its full budgets again while its history stays in `attempts`.
  budget_from_attempt INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- `isoflop status` per run, now with the heartbeat and the retry schedule.
DROP VIEW run_status;
CREATE VIEW run_status AS
SELECT
  l.sweep_id,
  l.position,
  r.id AS run_id,
  r.name,
  r.state,
  r.attempts,
  r.host,
  r.gpus,
  m.step,
  r.steps,
  CASE
    WHEN r.state = 'COMPLETED' THEN 1.0
    ELSE min(coalesce(m.step, 0) * 1.0 / max(r.steps, 1), 1.0)
  END AS progress,
  m.train_loss,
  m.tokens_per_s,
  r.planned_flops,
  CASE
    WHEN r.state = 'RUNNING' AND m.tokens_per_s > 0
    THEN (r.steps - m.step) * (r.tokens_processed * 1.0 / max(r.steps, 1)) / m.tokens_per_s
  END AS eta_s,
  r.updated_at,
  CASE
    WHEN r.state IN ('LAUNCHING', 'RUNNING')
    THEN (julianday('now') - julianday(s.heartbeat_at)) * 86400.0
  END AS heartbeat_age_s,
  CASE
    WHEN r.state = 'RETRY_WAIT' THEN max(0.0, (julianday(s.retry_at) - julianday('now')) * 86400.0)
  END AS retry_in_s
FROM sweep_runs AS l
JOIN runs AS r ON r.id = l.run_id
LEFT JOIN last_metrics AS m ON m.run_id = r.id
LEFT JOIN supervision AS s ON s.run_id = r.id;
