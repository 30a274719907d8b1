// Data parallelism's parts in one process (worker/distributed/): the collective watchdog fires on a
// collective that outlives its timeout, and only then; the gradient bucketer lays parameters out
// in reverse order within the size cap, starts buckets during the last backward pass strictly in
// order, and makes two replicas' averaged gradients the gradient of their joint batch, missing
// gradients included. Two ranks are simulated by two threads joined by an in-process group.
// (isoflop-worker under mpirun: worker_distributed_mpi_test.cpp.)
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "worker/distributed/collective_watchdog.h"
#include "worker/distributed/gradient_bucketer.h"
#include "worker/distributed/process_group.h"

namespace isoflop {
namespace {

using namespace std::chrono_literals;

// -------------------------------------------------------------------------------------------------
// CollectiveWatchdog

// What a timeout would have printed before exiting; the test's action records it instead.
class TimeoutRecorder {
 public:
  CollectiveWatchdog::TimeoutAction Action() {
    return [this](const std::string& message) {
      std::lock_guard<std::mutex> lock(mutex_);
      messages_.push_back(message);
      fired_.notify_all();
    };
  }
  // The messages so far, after waiting up to `wait` for the first.
  std::vector<std::string> Messages(std::chrono::milliseconds wait) {
    std::unique_lock<std::mutex> lock(mutex_);
    fired_.wait_for(lock, wait, [this] { return !messages_.empty(); });
    return messages_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable fired_;
  std::vector<std::string> messages_;
};

TEST(CollectiveWatchdog, CollectivesThatFinishInTimeNeverFire) {
  TimeoutRecorder recorder;
  {
    CollectiveWatchdog watchdog(1, 2, 200ms, recorder.Action());
    for (int i = 0; i < 5; ++i) {
      CollectiveWatchdog::Scope scope(watchdog, "all-reduce " + std::to_string(i));
      std::this_thread::sleep_for(100ms);  // each well within the timeout; together well beyond
    }
    std::atomic<bool> done{false};
    watchdog.Start("polled", [&done] { return done.load(); });
    std::this_thread::sleep_for(100ms);
    done = true;
    std::this_thread::sleep_for(300ms);  // past its timeout, but it was seen finished
  }
  EXPECT_TRUE(recorder.Messages(0ms).empty());
}

TEST(CollectiveWatchdog, AnUnfinishedCollectiveFiresOnceNamingRankCollectiveAndTimeout) {
  TimeoutRecorder recorder;
  CollectiveWatchdog watchdog(1, 3, 300ms, recorder.Action());
  const auto start = std::chrono::steady_clock::now();
  watchdog.Start("all-reduce of gradient bucket 2 of 4 at step 17");
  const std::vector<std::string> messages = recorder.Messages(5s);
  const auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_GE(waited, 300ms);
  EXPECT_LT(waited, 1s);
  EXPECT_NE(messages[0].find("rank 1 of 3"), std::string::npos) << messages[0];
  EXPECT_NE(messages[0].find("\"all-reduce of gradient bucket 2 of 4 at step 17\""),
            std::string::npos)
      << messages[0];
  EXPECT_NE(messages[0].find("within 0.3 s"), std::string::npos) << messages[0];
  EXPECT_NE(messages[0].find("status 69"), std::string::npos) << messages[0];
  std::this_thread::sleep_for(400ms);
  EXPECT_EQ(recorder.Messages(0ms).size(), 1u);  // once: the process is meant to be gone
}

TEST(CollectiveWatchdog, APolledCollectiveThatNeverFinishesFires) {
  TimeoutRecorder recorder;
  CollectiveWatchdog watchdog(0, 2, 200ms, recorder.Action());
  watchdog.Start("an NCCL kernel waiting for a dead peer", [] { return false; });
  EXPECT_EQ(recorder.Messages(5s).size(), 1u);
}

// -------------------------------------------------------------------------------------------------
// An in-process group: `size` ranks on threads of one process. The i-th average a rank starts
// meets the i-th of every other rank; the last to arrive writes the mean into all of them, summed
// in rank order.

class Rendezvous {
 public:
  explicit Rendezvous(int size) : size_(size) {}

  void Contribute(int rank, int64_t sequence, const torch::Tensor& tensor) {
    std::lock_guard<std::mutex> lock(mutex_);
    Meeting& meeting = meetings_[sequence];
    meeting.tensors[rank] = tensor;
    if (static_cast<int>(meeting.tensors.size()) < size_) return;
    torch::NoGradGuard no_grad;
    torch::Tensor sum = torch::zeros_like(tensor);
    for (const auto& [r, t] : meeting.tensors) sum += t;
    for (const auto& [r, t] : meeting.tensors) t.copy_(sum / size_);
    meeting.done = true;
    met_.notify_all();
  }
  void Await(int64_t sequence) {
    std::unique_lock<std::mutex> lock(mutex_);
    met_.wait(lock, [&] { return meetings_[sequence].done; });
  }

 private:
  struct Meeting {
    std::map<int, torch::Tensor> tensors;
    bool done = false;
  };
  const int size_;
  std::mutex mutex_;
  std::condition_variable met_;
  std::map<int64_t, Meeting> meetings_;
};

class InProcessGroup : public ProcessGroup {
 public:
  InProcessGroup(Rendezvous& rendezvous, int rank, int size)
      : rendezvous_(rendezvous), rank_(rank), size_(size) {}

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  torch::Device device() const override { return torch::kCPU; }
  std::string backend() const override { return "in-process"; }

  Status StartAverage(const torch::Tensor& tensor, const std::string& what) override {
    started_.push_back(what);
    pending_.push_back(next_sequence_);
    rendezvous_.Contribute(rank_, next_sequence_++, tensor);
    return Status::OK();
  }
  Status FinishAverages() override {
    for (int64_t sequence : pending_) rendezvous_.Await(sequence);
    pending_.clear();
    return Status::OK();
  }
  Status BroadcastFromRankZero(const std::vector<torch::Tensor>&, const std::string&) override {
    return Status::Internal("not simulated");
  }
  Status SumOverRanks(std::span<double>, const std::string&) override {
    return Status::Internal("not simulated");
  }
  Result<bool> AnyRank(bool, const std::string&) override {
    return Status::Internal("not simulated");
  }
  Status BroadcastFromRankZero(std::string*, const std::string&) override {
    return Status::Internal("not simulated");
  }

  const std::vector<std::string>& started() const { return started_; }

 private:
  Rendezvous& rendezvous_;
  const int rank_;
  const int size_;
  int64_t next_sequence_ = 0;
  std::vector<int64_t> pending_;
  std::vector<std::string> started_;  // names of the averages started, in order
};

// A toy model: y = tanh(x W1) W2 (+ x W3 where `use_w3`), W4 never used, and a bias b.
struct Toy {
  Toy() {
    torch::manual_seed(3);
    for (auto [rows, cols] : {std::pair{6, 5}, {5, 3}, {6, 3}, {4, 4}}) {
      params.push_back(torch::randn({rows, cols}).requires_grad_());
    }
    params.push_back(torch::zeros({3}).requires_grad_());
  }
  // Mean squared output over the rows of x: (N, 6) -> scalar.
  torch::Tensor Loss(const torch::Tensor& x, bool use_w3) const {
    torch::Tensor y = torch::tanh(x.matmul(params[0])).matmul(params[1]) + params[4];
    if (use_w3) y = y + x.matmul(params[2]);
    return y.pow(2).mean();
  }
  std::vector<torch::Tensor> params;  // W1, W2, W3, W4, b
};

TEST(GradientBucketer, LaysOutParametersInReverseOrderWithinTheSizeCap) {
  Rendezvous rendezvous(1);
  InProcessGroup group(rendezvous, 0, 1);
  const Toy toy;  // 30, 15, 18, 16 and 3 floats
  EXPECT_EQ(GradientBucketer(toy.params, group, 4 * 40).Layout(),
            (std::vector<std::vector<size_t>>{{4, 3, 2}, {1}, {0}}));
  EXPECT_EQ(GradientBucketer(toy.params, group, 1).Layout(),  // one parameter per bucket at least
            (std::vector<std::vector<size_t>>{{4}, {3}, {2}, {1}, {0}}));
  EXPECT_EQ(GradientBucketer(toy.params, group).Layout(),
            (std::vector<std::vector<size_t>>{{4, 3, 2, 1, 0}}));
  std::vector<torch::Tensor> mixed = toy.params;
  mixed[2] = torch::zeros({6, 3}, torch::kFloat64).requires_grad_();
  EXPECT_EQ(GradientBucketer(mixed, group).Layout(),  // one dtype per bucket
            (std::vector<std::vector<size_t>>{{4, 3}, {2}, {1, 0}}));
}

// Two ranks, each with two micro-batches of its half of a batch of 8 rows, against one process
// with the whole batch: the averaged gradients are the whole batch's. Rank 1 never uses W3 and
// nobody uses W4.
TEST(GradientBucketer, TwoRanksAveragedGradientsAreTheJointBatchsIncludingMissingOnes) {
  torch::manual_seed(11);
  const torch::Tensor batch = torch::randn({8, 6});
  // One process: rows 0-3 use W3 (rank 0's half), rows 4-7 do not; the mean over all 8 rows.
  Toy single;
  ((single.Loss(batch.narrow(0, 0, 4), true) + single.Loss(batch.narrow(0, 4, 4), false)) / 2)
      .backward();

  Rendezvous rendezvous(2);
  Toy replicas[2];
  std::vector<std::string> started[2];
  size_t started_during_backward[2] = {0, 0};
  std::vector<std::thread> ranks;
  for (int rank = 0; rank < 2; ++rank) {
    ranks.emplace_back([&, rank] {
      InProcessGroup group(rendezvous, rank, 2);
      GradientBucketer bucketer(replicas[rank].params, group, /*bucket_bytes=*/1);
      const torch::Tensor half = batch.narrow(0, 4 * rank, 4);
      for (int micro = 0; micro < 2; ++micro) {
        if (micro == 1) bucketer.BeginLastBackward(/*step=*/0);
        (replicas[rank].Loss(half.narrow(0, 2 * micro, 2), rank == 0) / 2).backward();
      }
      started_during_backward[rank] = group.started().size();
      ASSERT_TRUE(bucketer.Finish().ok());
      started[rank] = group.started();
    });
  }
  for (std::thread& t : ranks) t.join();

  for (int rank = 0; rank < 2; ++rank) {
    const std::vector<torch::Tensor>& params = replicas[rank].params;
    for (size_t i : {0, 1, 2, 4}) {
      ASSERT_TRUE(params[i].grad().defined()) << "rank " << rank << " param " << i;
      EXPECT_TRUE(torch::allclose(params[i].grad(), single.params[i].grad(), 1e-6, 1e-6))
          << "rank " << rank << " param " << i;
    }
    EXPECT_FALSE(params[3].grad().defined()) << "W4 had no gradient anywhere";
    // Buckets (one parameter each) reduce in reverse parameter order, each as soon as its
    // gradients are final and the ones before it started: b's during the backward pass; W4's,
    // which never gets one, and those behind it in Finish.
    ASSERT_EQ(started[rank].size(), 5u);
    EXPECT_EQ(started[rank][0], "all-reduce of gradient bucket 0 of 5 at step 1");
    EXPECT_EQ(started[rank][4], "all-reduce of gradient bucket 4 of 5 at step 1");
    EXPECT_EQ(started_during_backward[rank], 1u) << "rank " << rank;
  }
}

TEST(GradientBucketer, BucketsStartDuringTheLastBackwardOnlyAndOnlyInOrder) {
  Rendezvous rendezvous(1);
  InProcessGroup group(rendezvous, 0, 1);
  Toy toy;
  // Without W4, every parameter gets a gradient: buckets b, W3, W2, W1.
  std::vector<torch::Tensor> params = {toy.params[0], toy.params[1], toy.params[2], toy.params[4]};
  GradientBucketer bucketer(params, group, /*bucket_bytes=*/1);
  const torch::Tensor x = torch::randn({4, 6});
  toy.Loss(x, true).backward();  // not the last micro-batch: nothing starts
  EXPECT_TRUE(group.started().empty());
  bucketer.BeginLastBackward(4);
  toy.Loss(x, true).backward();
  EXPECT_EQ(group.started().size(), 4u);  // every bucket, during the backward pass
  ASSERT_TRUE(bucketer.Finish().ok());
  EXPECT_EQ(group.started().size(), 4u);
  EXPECT_EQ(group.started()[3], "all-reduce of gradient bucket 3 of 4 at step 5");

  // Without W3's gradient (the bucket behind b's), no later bucket may overtake it.
  for (torch::Tensor& p : params) p.mutable_grad() = torch::Tensor();
  bucketer.BeginLastBackward(5);
  toy.Loss(x, false).backward();
  EXPECT_EQ(group.started().size(), 5u);  // b's bucket only
  ASSERT_TRUE(bucketer.Finish().ok());
  EXPECT_EQ(group.started().size(), 8u);
  EXPECT_FALSE(params[2].grad().defined());  // no rank had one
  EXPECT_TRUE(params[3].grad().defined());
}

}  // namespace
}  // namespace isoflop
