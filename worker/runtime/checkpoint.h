// Checkpoints: the files a restarted attempt resumes from (system.md section 7).
//
// A checkpoint is DIR/checkpoints/ckpt_<step>.pt: a LibTorch archive (the zip format of
// torch::save) followed by a 48-byte trailer, "ISOFCKPT", the archive's size (uint64 LE) and its
// SHA-256.
//   - Atomic: written to a temporary file in the same directory, fsynced, renamed over the final
//     name, and the directory fsynced; a crash leaves either the old set of files or the new one.
//   - Verified: a truncated or corrupted file fails the trailer check before any of it is parsed,
//     and loading falls back to the previous checkpoint (the one before is always kept), renaming
//     the bad file to *.corrupt so that it is neither retried nor deleted unseen.
//   - Owned: the archive carries the run id (RunId, common/store/run_store.h: the hash of the
//     resolved config and the data fingerprint); a checkpoint of another run is refused, never
//     resumed from, since its weights would silently continue a different experiment.
// What the archive holds is the trainer's choice; WriteTensors/ReadTensors store named tensors.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace isoflop {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// `tensors` under `key`, by position, with their names alongside (LibTorch archive keys may not
// hold the dots of parameter names).
void WriteTensors(torch::serialize::OutputArchive& archive, const std::string& key,
                  const NamedTensors& tensors);
// Reads `key` back into the given tensors in place (copy_, so their storage and device stay).
// FailedPrecondition when the names or shapes differ, Corruption when the entries are missing.
Status ReadTensors(torch::serialize::InputArchive& archive, const std::string& key,
                   const NamedTensors& into);

struct CheckpointFile {
  int64_t step = 0;
  std::string path;
  int64_t bytes = 0;
};

class CheckpointDir {
 public:
  // Creates `dir` if needed and removes temporary files a crash left behind. IOError naming it.
  static Result<CheckpointDir> Open(const std::string& dir, std::string run_id);

  // Writes `archive` (plus the run id and step) as ckpt_<step>.pt, then deletes all but the two
  // newest checkpoints. IOError naming the file; no file appears under the final name on error.
  Result<CheckpointFile> Write(int64_t step, torch::serialize::OutputArchive& archive);

  // Loads the newest whole checkpoint into *archive, with its tensors on `device`. NotFound when
  // there is none (damaged ones are logged and set aside); FailedPrecondition naming both runs when
  // it belongs to another run.
  Result<CheckpointFile> LoadNewest(torch::serialize::InputArchive* archive, torch::Device device);

  // ckpt_<step>.pt files by ascending step, unverified.
  std::vector<CheckpointFile> List() const;

  const std::string& dir() const { return dir_; }

 private:
  CheckpointDir(std::string dir, std::string run_id)
      : dir_(std::move(dir)), run_id_(std::move(run_id)) {}
  // Verifies the trailer and checksum and parses the archive. Corruption when either fails.
  Status Load(const CheckpointFile& file, torch::serialize::InputArchive* archive,
              torch::Device device) const;

  std::string dir_;
  std::string run_id_;
};

}  // namespace isoflop
