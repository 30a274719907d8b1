#include "common/sweep/diagnostics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <tuple>

namespace isoflop::sweep {

namespace {

// A pathological file (a fuzzer's, say) can hold millions of independent errors; nobody reads past
// the first screenful, so recording stops far beyond max_errors but long before memory matters.
constexpr int kHardCap = 10000;

char Lower(char c) {
  return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

// Optimal string alignment distance: Levenshtein plus adjacent transpositions ("rnak" -> "rank" is
// one edit), case-insensitive because "N_Layer" is the same typo as "n_layr".
size_t EditDistance(std::string_view a, std::string_view b) {
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      const size_t cost = Lower(a[i - 1]) == Lower(b[j - 1]) ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && Lower(a[i - 1]) == Lower(b[j - 2]) &&
          Lower(a[i - 2]) == Lower(b[j - 1])) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[n][m];
}

}  // namespace

std::string Location::ToString() const {
  return fmt::format("{}:{}:{}", file ? file->path : std::string("<sweep>"), line, column);
}

std::string Diagnostic::ToString() const {
  if (path.empty()) return fmt::format("{}: {}", location.ToString(), message);
  return fmt::format("{}: {}: {}", location.ToString(), path, message);
}

void Diagnostics::Add(Location location, std::string path, std::string message) {
  if (static_cast<int>(errors_.size()) >= kHardCap) return;
  Diagnostic d{std::move(location), std::move(path), std::move(message)};
  if (!seen_.insert(d.ToString()).second) return;
  errors_.push_back(std::move(d));
}

std::vector<Diagnostic> Diagnostics::Sorted() const {
  std::vector<Diagnostic> sorted = errors_;
  auto key = [](const Diagnostic& d) {
    const Location& l = d.location;
    return std::make_tuple(l.file ? l.file->order : -1, l.line, l.column);
  };
  std::stable_sort(sorted.begin(), sorted.end(),
                   [&](const Diagnostic& a, const Diagnostic& b) { return key(a) < key(b); });
  return sorted;
}

Status Diagnostics::ToStatus() const {
  if (errors_.empty()) return Status::OK();
  const std::vector<Diagnostic> sorted = Sorted();
  std::string text;
  const int shown = std::min(size(), max_errors_);
  for (int i = 0; i < shown; ++i) {
    if (i > 0) text += '\n';
    text += sorted[i].ToString();
  }
  if (size() > shown) {
    text += fmt::format("\n({}{} more errors not shown)", size() >= kHardCap ? "at least " : "",
                        size() - shown);
  } else if (stopped_) {
    text += fmt::format("\n(stopped after {} errors; there may be more)", shown);
  }
  return Status::InvalidArgument(std::move(text));
}

std::string ClosestMatch(std::string_view word, const std::vector<std::string>& candidates) {
  // Names are short, so a fixed budget of edits would call "lr" close to "eps"; allow about one
  // edit per three letters, and never suggest for one- or two-letter words that are anything but a
  // case slip.
  const size_t budget = word.size() <= 2 ? 0 : word.size() <= 5 ? 1 : word.size() <= 8 ? 2 : 3;
  std::string best;
  size_t best_distance = budget + 1;
  for (const std::string& candidate : candidates) {
    const size_t distance = EditDistance(word, candidate);
    if (distance < best_distance) {
      best_distance = distance;
      best = candidate;
    }
  }
  return best;
}

std::string DidYouMean(std::string_view word, const std::vector<std::string>& candidates) {
  const std::string match = ClosestMatch(word, candidates);
  if (match.empty() || match == word) return "";
  return fmt::format(" (did you mean \"{}\"?)", match);
}

std::string JoinAlternatives(const std::vector<std::string>& words, std::string_view last) {
  std::string out;
  for (size_t i = 0; i < words.size(); ++i) {
    if (i > 0) out += (i + 1 == words.size()) ? std::string(last) : std::string(", ");
    out += words[i];
  }
  return out;
}

}  // namespace isoflop::sweep
