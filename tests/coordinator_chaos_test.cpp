// Chaos: a 50-run CPU sweep while workers and the daemon itself are SIGKILLed at random, again and
// again. The sweep must end with every run COMPLETED exactly once, every training step stored
// exactly once, and no run ever having two attempts alive at the same time.
#include <gtest/gtest.h>

#include <random>

#include "coordinator_testing.h"

namespace isoflop::testing {
namespace {

constexpr int kRuns = 50;
constexpr int kSteps = 40;

TEST(ChaosTest, RandomKillsOfWorkersAndDaemonLoseAndDuplicateNothing) {
  ScratchDir scratch;
  const std::string sweep = WriteFile(scratch.path() + "/chaos.yaml", SweepYaml("chaos", kRuns));
  // Budgets large enough that only the test's own kills end attempts early, and no crash loop:
  // a run may be unlucky many times in a row.
  TestDaemon daemon(
      scratch.path() + "/state",
      {"--cpu-slots", "4", "--retry-backoff", "0.02", "--retry-backoff-max", "0.1",
       "--max-infra-retries", "1000", "--crash-loop", "0", "--ingest-interval-ms", "50"},
      {{"FAKE_WORKER_STEPS", std::to_string(kSteps)},
       {"FAKE_WORKER_STEP_MS", "15"},
       {"FAKE_WORKER_CHECKPOINT_EVERY", "4"}});
  daemon.Start();
  daemon.Submit(sweep);
  Results results(daemon.state());

  std::mt19937 random(20240520);  // fixed: a failure can be replayed
  int worker_kills = 0, daemon_kills = 0;
  const auto deadline = std::chrono::steady_clock::now() + 90s;
  while (!results.AllCompleted(kRuns) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100 + random() % 200));
    if (random() % 4 == 0) {
      daemon.Kill(SIGKILL);
      ++daemon_kills;
      std::this_thread::sleep_for(std::chrono::milliseconds(random() % 300));
      daemon.Start();
      if (::testing::Test::HasFatalFailure()) return;
      continue;
    }
    const auto open = results.Rows("SELECT pid FROM attempts WHERE ended_at IS NULL AND pid > 0");
    if (open.empty()) continue;
    const pid_t victim = open[random() % open.size()][0].get<pid_t>();
    if (::kill(victim, SIGKILL) == 0) ++worker_kills;
  }
  ASSERT_TRUE(WaitFor([&] { return results.AllCompleted(kRuns); }, 60s)) << results.Dump();
  std::printf("chaos: %d worker kills, %d daemon kills, %lld attempts for %d runs\n", worker_kills,
              daemon_kills, static_cast<long long>(results.Count("SELECT count(*) FROM attempts")),
              kRuns);
  EXPECT_GT(worker_kills, 5);
  EXPECT_GT(daemon_kills, 2);

  // Exactly once: one COMPLETED event per run, every step once.
  EXPECT_EQ(results.Count("SELECT count(*) FROM (SELECT run_id FROM events "
                          "WHERE to_state = 'COMPLETED' GROUP BY run_id HAVING count(*) = 1)"),
            kRuns);
  EXPECT_EQ(results.Count("SELECT count(*) FROM events WHERE to_state = 'COMPLETED'"), kRuns);
  EXPECT_EQ(results.Count("SELECT count(*) FROM metrics"), kRuns * kSteps);
  EXPECT_EQ(results.Count("SELECT count(*) FROM attempts WHERE ended_at IS NULL"), 0);
  EXPECT_EQ(results.Count("SELECT count(*) FROM attempts WHERE cause LIKE 'completed%'"), kRuns);
  // Never twice at once: each attempt of a run started after the one before it had ended.
  EXPECT_EQ(results.Count(R"sql(
      SELECT count(*) FROM attempts AS a JOIN attempts AS b
        ON b.run_id = a.run_id AND b.attempt = a.attempt + 1
      WHERE b.started_at < a.ended_at)sql"),
            0)
      << results.Dump();
}

}  // namespace
}  // namespace isoflop::testing
