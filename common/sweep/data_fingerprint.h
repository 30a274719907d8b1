// DataFingerprint: what identifies a run's data inside its run id (system.md section 3).
//
// Prepared data (`isoflop data prepare`) carries a content hash in manifest.json beside its shards;
// that is the fingerprint. Data brought some other way is identified by the byte sizes of its train
// and val shards, a weak but free stand-in. Data that does not exist yet is "missing" with a
// warning: planning a sweep must work before the data is prepared, and preparing it later changes
// the fingerprint, hence the run ids, which is right: the runs were planned on nothing.
#pragma once

#include <string>

namespace isoflop::sweep {

struct DataFingerprint {
  std::string value;    // "sha256:...", "size:<train bytes>+<val bytes>" or "missing"
  std::string warning;  // why the fingerprint is weak or missing; empty when it is the manifest's
};

// `train` and `val` are absolute paths: a .bin file, a directory of .bin files, or a glob of them.
// The manifest is looked for in the train path's directory (the path itself when it is one).
DataFingerprint FingerprintData(const std::string& train, const std::string& val);

}  // namespace isoflop::sweep
