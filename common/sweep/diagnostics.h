// Diagnostics: the located errors of one sweep load, and how they become one Status.
//
// Every problem a user can make in a sweep file is reported as
//   <file>:<line>:<column>: <field.path>: <what was wrong and what was expected>
// with 1-based line and column of the YAML node at fault (of the key, for unknown keys). A load
// collects several independent errors before it gives up, so one edit-and-retry fixes many; the
// collector drops exact repeats (one bad size reported once, not once per variant and budget).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "common/status.h"

namespace isoflop::sweep {

// One file of a sweep: the main file or an include. `order` sorts errors in the order files were
// opened, so messages about the main file come first.
struct SourceFile {
  std::string
      path;  // as shown in messages: the path given, includes joined to their includer's dir
  int order = 0;
};

struct Location {
  std::shared_ptr<const SourceFile> file;
  int line = 0;                  // 1-based; 0 when unknown
  int column = 0;                // 1-based
  std::string ToString() const;  // "file:line:column"
};

struct Diagnostic {
  Location location;
  std::string path;     // field path, e.g. "variants.lowrank.ffn.rank"; may be empty
  std::string message;  // what was wrong and what was expected
  std::string ToString() const;
};

class Diagnostics {
 public:
  explicit Diagnostics(int max_errors) : max_errors_(max_errors < 1 ? 1 : max_errors) {}

  // Records an error unless the same text was already recorded.
  void Add(Location location, std::string path, std::string message);
  void Add(Diagnostic d) { Add(std::move(d.location), std::move(d.path), std::move(d.message)); }

  bool empty() const { return errors_.empty(); }
  int size() const { return static_cast<int>(errors_.size()); }
  // True once max_errors were recorded: stages that produce errors one run at a time stop here,
  // and say so with NoteStopped(), so the message can tell that more may follow.
  bool full() const { return size() >= max_errors_; }
  void NoteStopped() { stopped_ = true; }

  // InvalidArgument with one error per line, sorted by file, line and column, at most max_errors;
  // OK when there were none.
  Status ToStatus() const;
  // The errors in the order ToStatus prints them (tests and tools).
  std::vector<Diagnostic> Sorted() const;

 private:
  int max_errors_;
  bool stopped_ = false;
  std::vector<Diagnostic> errors_;
  std::unordered_set<std::string> seen_;  // ToString() of every recorded error
};

// The candidate closest to `word` by edit distance (transpositions count as one edit), or empty
// when none is close enough to be a plausible typo. Ties go to the earlier candidate.
std::string ClosestMatch(std::string_view word, const std::vector<std::string>& candidates);

// " (did you mean \"x\"?)" or "".
std::string DidYouMean(std::string_view word, const std::vector<std::string>& candidates);

// "a, b or c".
std::string JoinAlternatives(const std::vector<std::string>& words, std::string_view last = " or ");

}  // namespace isoflop::sweep
