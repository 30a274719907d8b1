-- isoflop results database, schema version 3: indexes that keep `isoflop status` under 100 ms at
-- 10,000 runs and 10 million metric rows (system.md section 10).
--
-- The status views read a few columns of every run of a sweep. From the runs table those reads drag
-- in every run's config as well (the rows carry it), tens of megabytes at 10,000 runs; from an index
-- holding just those columns they stay within a megabyte or two, and SQLite answers from the index
-- alone. The second index lets a sweep's runs be read in expansion order without a sort.
CREATE INDEX runs_status_columns ON runs (id, state, steps, planned_flops, tokens_processed,
                                          attempts, gpus, name, host, updated_at);
CREATE INDEX sweep_runs_by_position ON sweep_runs (sweep_id, position);
