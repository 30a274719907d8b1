-- isoflop results database, schema version 1 (system.md section 5).
--
-- Applied by RunStore in one transaction that also sets PRAGMA user_version = 1. Later changes go in
-- 0002_*.sql and onwards; a released migration is never edited, because databases in the field have
-- already run it.
--
-- Conventions: times are UTC ISO-8601 text with milliseconds ("2024-05-20T13:45:01.250Z"): readable in
-- `isoflop query`, sortable as text, and accepted by julianday()/unixepoch() for arithmetic. FLOP counts
-- are REAL (they pass 2^63 at ~1e19); token and step counts are INTEGER. A REAL column is NULL where the
-- worker reported NaN (SQLite stores NaN as NULL): a diverged loss stays visible as a missing value
-- rather than a made-up number.

-- 'ISOF': lets RunStore refuse to migrate a SQLite file that belongs to something else.
PRAGMA application_id = 1230196550;

-- One row per submitted version of a sweep file. Resubmitting the same file finds this row again; an
-- edited file (say, one more budget) is a new row whose unchanged runs are shared with the old one
-- through sweep_runs, so they are neither duplicated nor re-run.
CREATE TABLE sweeps (
  id           INTEGER PRIMARY KEY,
  name         TEXT NOT NULL,
  source_yaml  TEXT NOT NULL,
  source_hash  TEXT NOT NULL,  -- sha256 hex of source_yaml
  submitted_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  UNIQUE (name, source_hash)
);

-- One row per distinct resolved run. The id is the content hash of the resolved config and the data
-- fingerprint (RunId in run_store.h); the config carries the sweep name, so only versions of the same
-- sweep can share a run. The plan columns copy fields of `config` so that status and results queries
-- need no JSON parsing.
CREATE TABLE runs (
  id               TEXT PRIMARY KEY,  -- 64 hex digits; users see the first 16
  sweep_id         INTEGER NOT NULL REFERENCES sweeps (id),  -- the sweep version that first planned it
  name             TEXT NOT NULL,     -- "<variant>/<size>/C<budget>/s<seed>", unique inside a sweep
  variant          TEXT NOT NULL,
  size             TEXT NOT NULL,
  budget           REAL NOT NULL,     -- C: training FLOPs the run was planned for
  seed             INTEGER NOT NULL,
  params           INTEGER NOT NULL,  -- N
  params_nonemb    INTEGER NOT NULL,  -- N_nonemb
  flops_per_token  REAL NOT NULL,     -- F: training FLOPs per unique token
  tokens_target    INTEGER NOT NULL,  -- D: unique training tokens
  steps            INTEGER NOT NULL,  -- optimizer steps
  tokens_processed INTEGER NOT NULL,  -- steps * batch_tokens (self-guided repeats included)
  planned_flops    REAL NOT NULL,     -- F * D: what the run will spend
  six_nd           REAL NOT NULL,     -- 6 N D, kept beside the exact figure
  gpus             INTEGER NOT NULL,
  priority         INTEGER NOT NULL DEFAULT 0,
  state            TEXT NOT NULL CHECK (state IN ('PLANNED', 'QUEUED', 'LAUNCHING', 'RUNNING',
                                                  'COMPLETED', 'FAILED', 'LOST', 'RETRY_WAIT',
                                                  'CANCELLED')),
  attempts         INTEGER NOT NULL DEFAULT 0,  -- launches so far
  host             TEXT,              -- where the current or last attempt runs
  created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  updated_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  -- Large values last: reading a column stored after one would mean reading its overflow pages.
  config           TEXT NOT NULL CHECK (json_valid(config)),  -- the canonical run.json
  provenance       TEXT CHECK (provenance IS NULL OR json_valid(provenance))  -- git, versions, GPU
);
-- The scheduler's question: which runs are QUEUED (or waiting to retry), most urgent first.
CREATE INDEX runs_by_state ON runs (state, priority DESC, created_at);

-- Which sweep versions contain which runs, in the order the sweep file expanded them.
CREATE TABLE sweep_runs (
  sweep_id INTEGER NOT NULL REFERENCES sweeps (id),
  run_id   TEXT NOT NULL REFERENCES runs (id),
  position INTEGER NOT NULL,
  PRIMARY KEY (sweep_id, run_id)
) WITHOUT ROWID;
CREATE INDEX sweep_runs_by_run ON sweep_runs (run_id);

-- One row per launch of a run.
CREATE TABLE attempts (
  run_id      TEXT NOT NULL REFERENCES runs (id),
  attempt     INTEGER NOT NULL,  -- 1, 2, ...: runs.attempts after this launch
  launcher    TEXT NOT NULL,     -- local, mpi, slurm
  job_id      TEXT,              -- Slurm job id; NULL for local and mpi launches
  pid         INTEGER,
  host        TEXT,
  started_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  ended_at    TEXT,
  exit_status INTEGER,
  cause       TEXT,              -- why it ended: completed, code fault, OOM, node failure, lost, cancelled
  log_path    TEXT,
  PRIMARY KEY (run_id, attempt)
) WITHOUT ROWID;

-- Training records, one per logged optimizer step. The primary key makes re-ingesting a worker's
-- metrics.jsonl after a coordinator outage a no-op, and WITHOUT ROWID makes the table its own
-- (run_id, step) index: "last record of run R" is one B-tree seek even at 10 million rows.
CREATE TABLE metrics (
  run_id       TEXT NOT NULL REFERENCES runs (id),
  step         INTEGER NOT NULL,
  tokens       INTEGER NOT NULL,  -- training tokens seen so far
  flops        REAL NOT NULL,     -- training FLOPs spent so far
  train_loss   REAL,
  lr           REAL,
  grad_norm    REAL,
  tokens_per_s REAL,
  mfu          REAL,
  PRIMARY KEY (run_id, step)
) WITHOUT ROWID;

-- Evaluation values: val_loss, val_ppl, arc_easy/acc, ... Keyed (run, name, step) rather than
-- (run, step, name): the same uniqueness, in the order that makes "the last val_loss of run R" one seek.
CREATE TABLE evals (
  run_id TEXT NOT NULL REFERENCES runs (id),
  step   INTEGER NOT NULL,
  tokens INTEGER NOT NULL,
  flops  REAL NOT NULL,
  name   TEXT NOT NULL,
  value  REAL,
  count  INTEGER NOT NULL DEFAULT 0,  -- items behind a benchmark score; 0 where not applicable
  PRIMARY KEY (run_id, name, step)
) WITHOUT ROWID;

CREATE TABLE checkpoints (
  run_id     TEXT NOT NULL REFERENCES runs (id),
  step       INTEGER NOT NULL,
  path       TEXT NOT NULL,
  bytes      INTEGER NOT NULL,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  PRIMARY KEY (run_id, step)
) WITHOUT ROWID;

-- Every state change of every run, in order. from_state is NULL when the run is first stored.
CREATE TABLE events (
  id         INTEGER PRIMARY KEY,
  time       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  run_id     TEXT NOT NULL REFERENCES runs (id),
  from_state TEXT,
  to_state   TEXT NOT NULL,
  reason     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_by_run ON events (run_id, id);
-- The log is evidence for post-mortems: it is only ever appended to.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
  SELECT RAISE(ABORT, 'events is append-only');
END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
  SELECT RAISE(ABORT, 'events is append-only');
END;

-- The highest-step record of each run, kept by a trigger as metrics arrive (in any order), so that
-- `isoflop status` reads 10,000 small rows instead of seeking into 10 million (system.md section 10:
-- status under 100 ms at that size). A metrics row skipped as a duplicate fires no trigger.
CREATE TABLE last_metrics (
  run_id       TEXT PRIMARY KEY REFERENCES runs (id),
  step         INTEGER NOT NULL,
  tokens       INTEGER NOT NULL,
  flops        REAL NOT NULL,
  train_loss   REAL,
  lr           REAL,
  grad_norm    REAL,
  tokens_per_s REAL,
  mfu          REAL
) WITHOUT ROWID;
CREATE TRIGGER metrics_keep_last AFTER INSERT ON metrics
BEGIN
  INSERT INTO last_metrics (run_id, step, tokens, flops, train_loss, lr, grad_norm, tokens_per_s, mfu)
  VALUES (new.run_id, new.step, new.tokens, new.flops, new.train_loss, new.lr, new.grad_norm,
          new.tokens_per_s, new.mfu)
  ON CONFLICT (run_id) DO UPDATE SET
    step = excluded.step, tokens = excluded.tokens, flops = excluded.flops,
    train_loss = excluded.train_loss, lr = excluded.lr, grad_norm = excluded.grad_norm,
    tokens_per_s = excluded.tokens_per_s, mfu = excluded.mfu
  WHERE excluded.step > last_metrics.step;
END;

-- Per run: the plan, the state, the last training record, and the last val_loss (one seek on the
-- evals primary key per run).
CREATE VIEW final_metrics AS
SELECT
  r.id AS run_id,
  s.name AS sweep,
  r.name,
  r.variant,
  r.size,
  r.budget,
  r.seed,
  r.state,
  r.attempts,
  r.params,
  r.params_nonemb,
  r.flops_per_token,
  r.tokens_target,
  r.steps,
  r.planned_flops,
  r.six_nd,
  m.step,
  m.tokens,
  m.flops,
  m.train_loss,
  v.value AS val_loss,
  v.step AS val_step,
  m.tokens_per_s,
  m.mfu,
  r.updated_at
FROM runs AS r
JOIN sweeps AS s ON s.id = r.sweep_id
LEFT JOIN last_metrics AS m ON m.run_id = r.id
LEFT JOIN evals AS v
  ON v.run_id = r.id AND v.name = 'val_loss'
  AND v.step = (SELECT max(step) FROM evals WHERE run_id = r.id AND name = 'val_loss');

-- `isoflop results SWEEP`: SELECT * FROM sweep_results WHERE sweep_id = ? ORDER BY position.
-- One row per run of that sweep version, shared runs included.
CREATE VIEW sweep_results AS
SELECT l.sweep_id, l.position, f.*
FROM sweep_runs AS l
JOIN final_metrics AS f ON f.run_id = l.run_id;

-- `isoflop status` per run: SELECT * FROM run_status WHERE sweep_id = ? ORDER BY position.
-- progress is the fraction of optimizer steps done (1 once COMPLETED, whatever step was logged last);
-- eta_s assumes the last reported throughput holds.
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
  r.updated_at
FROM sweep_runs AS l
JOIN runs AS r ON r.id = l.run_id
LEFT JOIN last_metrics AS m ON m.run_id = r.id;

-- `isoflop status` per sweep: SELECT * FROM sweep_status ORDER BY sweep_id. progress is the fraction
-- of the sweep's planned FLOPs spent, so one large run counts for more than many small ones.
-- Aggregated straight from the tables, not from run_status, so SQLite can group while it scans
-- sweep_runs in key order instead of materializing the per-run view first.
CREATE VIEW sweep_status AS
SELECT
  s.id AS sweep_id,
  s.name,
  s.submitted_at,
  count(r.id) AS runs,
  coalesce(sum(r.state = 'PLANNED'), 0) AS planned,
  coalesce(sum(r.state = 'QUEUED'), 0) AS queued,
  coalesce(sum(r.state = 'LAUNCHING'), 0) AS launching,
  coalesce(sum(r.state = 'RUNNING'), 0) AS running,
  coalesce(sum(r.state = 'COMPLETED'), 0) AS completed,
  coalesce(sum(r.state = 'FAILED'), 0) AS failed,
  coalesce(sum(r.state = 'LOST'), 0) AS lost,
  coalesce(sum(r.state = 'RETRY_WAIT'), 0) AS retry_wait,
  coalesce(sum(r.state = 'CANCELLED'), 0) AS cancelled,
  sum(r.planned_flops * CASE
                          WHEN r.state = 'COMPLETED' THEN 1.0
                          ELSE min(coalesce(m.step, 0) * 1.0 / max(r.steps, 1), 1.0)
                        END) / sum(r.planned_flops) AS progress,
  coalesce(sum(r.planned_flops), 0) AS planned_flops
FROM sweeps AS s
LEFT JOIN sweep_runs AS l ON l.sweep_id = s.id
LEFT JOIN runs AS r ON r.id = l.run_id
LEFT JOIN last_metrics AS m ON m.run_id = r.id
GROUP BY s.id;
