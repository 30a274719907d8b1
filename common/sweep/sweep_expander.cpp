#include "common/sweep/sweep_expander.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <tuple>
#include <unordered_map>

#include "common/sweep/data_fingerprint.h"
#include "common/sweep/run_resolver.h"

namespace isoflop::sweep {

namespace {

using Json = nlohmann::ordered_json;

constexpr const char* kSections[] = {"model", "train", "eval", "resources", "data"};
constexpr const char* kAxes[] = {"size", "variant", "budget", "seed"};

// Whole steps make small budgets land off target; past this the plan says so.
constexpr double kRoundingWarning = 0.05;

struct Named {
  std::string name;
  const YamlNode* key = nullptr;
  const YamlNode* value = nullptr;  // a map, or null for an empty entry
};

struct Override {
  std::string key;        // as written: "train.optimizer.lr", "ffn.rank"
  std::string canonical;  // "train.optimizer.lr", "model.ffn.rank"
  const YamlNode* values = nullptr;
};

struct Zip {
  const YamlNode* node = nullptr;
  size_t length = 0;
  // Per entry, an index into the axis, for the axes the zip names.
  std::optional<std::vector<size_t>> size, variant, budget, seed;
  std::vector<Override> overrides;
};

enum class Distribution { kUniform, kLogUniform, kInt, kChoice };

struct Dimension {
  std::string key;
  std::string canonical;
  std::string shown;  // "random.space.train.optimizer.lr"
  Distribution distribution = Distribution::kUniform;
  const YamlNode* spec = nullptr;    // the list after the distribution's name
  const YamlNode* holder = nullptr;  // the map {log_uniform: [...]}
  double low = 0, high = 0;
};

struct RandomSpace {
  const YamlNode* node = nullptr;
  uint64_t seed = 0;
  int64_t count = 0;
  std::vector<Dimension> dimensions;
};

// Where a run came from, for messages about duplicates.
struct Origin {
  size_t variant, size, budget, zip, sample;
  int64_t seed;
  std::string name;
};

std::vector<std::string> NamesOf(const std::vector<Named>& named) {
  std::vector<std::string> names;
  for (const Named& n : named) names.push_back(n.name);
  return names;
}

// A uniform double in [0, 1) from the top 53 bits: the same on every platform, unlike
// std::uniform_real_distribution, whose algorithm the standard leaves open.
double Uniform01(std::mt19937_64& engine) {
  return static_cast<double>(engine() >> 11) * 0x1.0p-53;
}

class Expander {
 public:
  Expander(const YamlNode& root, const SchemaValidator& schema, const ExpandOptions& options,
           Diagnostics* diagnostics)
      : root_(root),
        schema_(schema),
        options_(options),
        diagnostics_(diagnostics),
        resolver_(schema, options.base_dir, diagnostics) {}

  std::optional<ExpandedSweep> Run() {
    ReadAxes();
    if (!diagnostics_->empty()) return std::nullopt;
    if (const YamlNode* zip = root_.Find("zip")) ReadZip(*zip);
    if (const YamlNode* random = root_.Find("random")) ReadRandom(*random);
    if (!diagnostics_->empty()) return std::nullopt;
    if (!CheckRunCount()) return std::nullopt;
    Sample();
    if (!diagnostics_->empty()) return std::nullopt;
    Expand();
    if (!diagnostics_->empty()) return std::nullopt;
    Finish();
    if (!diagnostics_->empty()) return std::nullopt;
    return std::move(sweep_);
  }

 private:
  void Error(const YamlNode& at, std::string path, std::string message) {
    diagnostics_->Add(at.location, std::move(path), std::move(message));
  }

  // ---- the axes ------------------------------------------------------------------------------

  std::vector<Named> ReadNamed(const char* key) {
    std::vector<Named> named;
    for (const YamlNode::Entry& entry : root_.Find(key)->entries) {
      named.push_back(Named{entry.key.text, &entry.key, &entry.value});
    }
    return named;
  }

  void ReadAxes() {
    sweep_.name = root_.Find("name")->text;
    sizes_ = ReadNamed("sizes");
    variants_ = ReadNamed("variants");

    const YamlNode& budgets = *root_.Find("budgets");
    budgets_node_ = &budgets;
    const bool is_flops = budgets.Find("flops") != nullptr;
    budget_key_ = is_flops ? "flops" : "tokens";
    const YamlNode& values = *budgets.Find(budget_key_);
    for (size_t i = 0; i < values.items.size(); ++i) {
      budgets_.push_back(BudgetPoint{is_flops, *AsNumber(values.items[i]), &values.items[i],
                                     IndexPath("budgets." + budget_key_, i)});
    }
    bounds_ = TokensPerParam{0, std::numeric_limits<double>::infinity()};
    if (const YamlNode* tpp = budgets.Find("tokens_per_param")) {
      bounds_ = TokensPerParam{*AsNumber(tpp->items[0]), *AsNumber(tpp->items[1])};
      tpp_node_ = tpp;
      if (bounds_.min > bounds_.max) {
        Error(
            *tpp, "budgets.tokens_per_param",
            fmt::format("minimum {} is above maximum {}", tpp->items[0].text, tpp->items[1].text));
      }
    }

    if (const YamlNode* seeds = root_.Find("seeds")) {
      for (const YamlNode& seed : seeds->items) seeds_.push_back({*AsInteger(seed), &seed});
    } else {
      seeds_.push_back({0, nullptr});
    }
  }

  // ---- zip and random: field paths and axis values ----------------------------------------------

  // "train.optimizer.lr" and "ffn.rank" (a model field, "model." implied) -> the canonical path and
  // the field's schema; reports unknown paths with the closest correct spelling.
  std::optional<std::pair<std::string, const Json*>> ResolveFieldPath(const YamlNode& key,
                                                                      const std::string& shown,
                                                                      bool in_zip) {
    std::vector<std::string> written = SplitPath(key.text);
    const bool sectioned =
        std::find(std::begin(kSections), std::end(kSections), written[0]) != std::end(kSections);
    std::vector<std::string> keys = written;
    if (!sectioned) keys.insert(keys.begin(), "model");
    const SchemaValidator::Lookup lookup = schema_.Find(schema_.root(), keys);
    if (lookup.schema != nullptr) {
      std::string canonical = keys[0];
      for (size_t i = 1; i < keys.size(); ++i) canonical += "." + keys[i];
      return std::make_pair(canonical, lookup.schema);
    }
    const size_t bad = lookup.matched - (sectioned ? 0 : 1);  // index into `written`
    if (bad == 0) {
      // Not even the first name is known: offer the axes, the sections and the model fields.
      std::vector<std::string> candidates;
      if (in_zip) candidates.assign(std::begin(kAxes), std::end(kAxes));
      candidates.insert(candidates.end(), std::begin(kSections), std::end(kSections));
      const Json& model = schema_.Resolve(schema_.root()["properties"]["model"]);
      for (const auto& [name, unused] : model["properties"].items()) candidates.push_back(name);
      std::string hint = DidYouMean(written[0], candidates);
      if (hint.empty()) {
        hint = in_zip ? " (expected size, variant, budget, seed, or a field such as "
                        "train.optimizer.lr or ffn.rank)"
                      : " (expected a field such as train.optimizer.lr or ffn.rank)";
      }
      Error(key, shown, "unknown field" + hint);
      return std::nullopt;
    }
    std::string hint;
    if (bad < written.size()) {
      const std::string match = ClosestMatch(written[bad], lookup.allowed);
      if (!match.empty()) {
        std::vector<std::string> fixed = written;
        fixed[bad] = match;
        fixed.resize(bad + 1);
        std::string suggestion = fixed[0];
        for (size_t i = 1; i < fixed.size(); ++i) suggestion += "." + fixed[i];
        hint = fmt::format(" (did you mean \"{}\"?)", suggestion);
      } else if (!lookup.allowed.empty()) {
        hint = fmt::format(" (\"{}\" takes {})", written[bad - 1],
                           JoinAlternatives(lookup.allowed, ", "));
      }
    }
    Error(key, shown, "unknown field" + hint);
    return std::nullopt;
  }

  std::optional<size_t> NameIndex(const YamlNode& item, const std::string& path,
                                  const std::vector<Named>& axis, const char* what,
                                  const char* plural) {
    for (size_t i = 0; i < axis.size(); ++i) {
      if (item.is_scalar() && axis[i].name == item.text) return i;
    }
    const std::vector<std::string> names = NamesOf(axis);
    std::string hint = item.is_scalar() ? DidYouMean(item.text, names) : "";
    if (hint.empty()) hint = fmt::format(" ({}: {})", plural, JoinAlternatives(names, ", "));
    Error(item, path, fmt::format("unknown {} {}{}", what, Describe(item), hint));
    return std::nullopt;
  }

  void ReadZip(const YamlNode& zip) {
    zip_.emplace();
    zip_->node = &zip;
    const YamlNode::Entry& first = zip.entries.front();
    zip_->length = first.value.items.size();
    std::set<std::string> canonical_seen;
    for (const YamlNode::Entry& entry : zip.entries) {
      const std::string& key = entry.key.text;
      const std::string shown = JoinPath("zip", key);
      const YamlNode& values = entry.value;
      if (values.items.size() != zip_->length) {
        Error(values, shown,
              fmt::format("{} entries, but zip.{} has {}; zip lists pair up entry by entry",
                          values.items.size(), first.key.text, zip_->length));
        continue;
      }
      const bool axis = std::find(std::begin(kAxes), std::end(kAxes), key) != std::end(kAxes);
      if (!axis) {
        auto resolved = ResolveFieldPath(entry.key, shown, /*in_zip=*/true);
        if (!resolved) continue;
        if (!canonical_seen.insert(resolved->first).second) {
          Error(entry.key, shown, "sets the same field as another zip key");
          continue;
        }
        for (size_t i = 0; i < values.items.size(); ++i) {
          schema_.Validate(values.items[i], *resolved->second, IndexPath(shown, i), diagnostics_);
        }
        zip_->overrides.push_back(Override{key, resolved->first, &values});
        continue;
      }
      std::vector<size_t> indices;
      bool ok = true;
      for (size_t i = 0; i < values.items.size(); ++i) {
        const YamlNode& item = values.items[i];
        const std::string path = IndexPath(shown, i);
        const std::optional<size_t> index =
            key == "size"      ? NameIndex(item, path, sizes_, "size", "sizes")
            : key == "variant" ? NameIndex(item, path, variants_, "variant", "variants")
            : key == "budget"  ? BudgetIndex(item, path)
                               : SeedIndex(item, path);
        ok = ok && index.has_value();
        indices.push_back(index.value_or(0));
      }
      if (!ok) continue;
      (key == "size"      ? zip_->size
       : key == "variant" ? zip_->variant
       : key == "budget"  ? zip_->budget
                          : zip_->seed) = std::move(indices);
    }
  }

  std::optional<size_t> BudgetIndex(const YamlNode& item, const std::string& path) {
    std::vector<std::string> listed;
    const std::optional<double> value = AsNumber(item);
    for (size_t i = 0; i < budgets_.size(); ++i) {
      if (value && budgets_[i].value == *value) return i;
      listed.push_back(budgets_[i].node->text);
    }
    Error(item, path,
          fmt::format("{} is not one of budgets.{} ({})", Describe(item), budget_key_,
                      JoinAlternatives(listed, ", ")));
    return std::nullopt;
  }

  std::optional<size_t> SeedIndex(const YamlNode& item, const std::string& path) {
    std::vector<std::string> listed;
    const std::optional<int64_t> value = AsInteger(item);
    for (size_t i = 0; i < seeds_.size(); ++i) {
      if (value && seeds_[i].first == *value) return i;
      listed.push_back(fmt::format("{}", seeds_[i].first));
    }
    Error(
        item, path,
        fmt::format("{} is not one of seeds ({})", Describe(item), JoinAlternatives(listed, ", ")));
    return std::nullopt;
  }

  void ReadRandom(const YamlNode& node) {
    random_.emplace();
    random_->node = &node;
    if (const YamlNode* seed = node.Find("seed"))
      random_->seed = static_cast<uint64_t>(*AsInteger(*seed));
    random_->count = *AsInteger(*node.Find("count"));
    for (const YamlNode::Entry& entry : node.Find("space")->entries) {
      const std::string shown = JoinPath("random.space", entry.key.text);
      auto resolved = ResolveFieldPath(entry.key, shown, /*in_zip=*/false);
      if (!resolved) continue;
      const YamlNode::Entry& distribution = entry.value.entries.front();
      Dimension d;
      d.key = entry.key.text;
      d.canonical = resolved->first;
      d.shown = shown;
      d.holder = &entry.value;
      d.spec = &distribution.value;
      const std::string& kind = distribution.key.text;
      const std::string spec_path = JoinPath(shown, kind);
      d.distribution = kind == "uniform"       ? Distribution::kUniform
                       : kind == "log_uniform" ? Distribution::kLogUniform
                       : kind == "int"         ? Distribution::kInt
                                               : Distribution::kChoice;
      // Every value a distribution can produce lies between its ends (or is one of its choices),
      // and the field's bounds are intervals: checking these checks every sample.
      for (size_t i = 0; i < d.spec->items.size(); ++i) {
        schema_.Validate(d.spec->items[i], *resolved->second, IndexPath(spec_path, i),
                         diagnostics_);
      }
      if (d.distribution != Distribution::kChoice) {
        d.low = *AsNumber(d.spec->items[0]);
        d.high = *AsNumber(d.spec->items[1]);
        if (d.low > d.high) {
          Error(
              *d.spec, spec_path,
              fmt::format("low {} is above high {}", d.spec->items[0].text, d.spec->items[1].text));
        }
        if (d.distribution != Distribution::kInt && schema_.WantsInteger(*resolved->second)) {
          Error(*d.holder, shown,
                fmt::format("{} takes integers; sample it with int: [low, high] or choice", d.key));
        }
      }
      random_->dimensions.push_back(std::move(d));
    }
  }

  // ---- expansion -------------------------------------------------------------------------------

  size_t AxisCount(const std::optional<std::vector<size_t>>& zipped, size_t full) const {
    return zipped ? 1 : full;
  }

  bool CheckRunCount() {
    const double entries = zip_ ? static_cast<double>(zip_->length) : 1.0;
    const double grid =
        entries *
        static_cast<double>(AxisCount(zip_ ? zip_->variant : std::nullopt, variants_.size())) *
        static_cast<double>(AxisCount(zip_ ? zip_->size : std::nullopt, sizes_.size())) *
        static_cast<double>(AxisCount(zip_ ? zip_->budget : std::nullopt, budgets_.size())) *
        static_cast<double>(AxisCount(zip_ ? zip_->seed : std::nullopt, seeds_.size())) *
        static_cast<double>(random_ ? random_->count : 1);
    if (grid > static_cast<double>(options_.max_runs)) {
      Error(root_, "",
            fmt::format("the sweep expands to {:.0f} runs, more than the limit of {}", grid,
                        options_.max_runs));
      return false;
    }
    return true;
  }

  void Sample() {
    if (!random_) return;
    std::mt19937_64 engine(random_->seed);
    samples_.resize(random_->count);
    for (int64_t r = 0; r < random_->count; ++r) {
      for (const Dimension& d : random_->dimensions) {
        const double u = Uniform01(engine);
        switch (d.distribution) {
          case Distribution::kChoice: {
            const size_t n = d.spec->items.size();
            samples_[r].push_back(&d.spec->items[std::min(n - 1, static_cast<size_t>(u * n))]);
            continue;
          }
          case Distribution::kInt: {
            // The schema keeps the ends inside int64; clamping keeps rounding there too.
            const double span = d.high - d.low + 1;
            const double value = std::clamp(d.low + std::floor(u * span), d.low, d.high);
            samples_[r].push_back(Synthetic(fmt::format("{}", static_cast<int64_t>(value)), d));
            continue;
          }
          case Distribution::kUniform:
            samples_[r].push_back(Synthetic(Round8(d.low + u * (d.high - d.low)), d));
            continue;
          case Distribution::kLogUniform: {
            const double log_low = std::log(d.low), log_high = std::log(d.high);
            samples_[r].push_back(
                Synthetic(Round8(std::exp(log_low + u * (log_high - log_low))), d));
            continue;
          }
        }
      }
    }
  }

  static std::string Round8(double value) { return fmt::format("{:.8g}", value); }

  const YamlNode* Synthetic(std::string text, const Dimension& d) {
    synthetic_.push_back(YamlNode::Scalar(std::move(text), d.holder->location));
    return &synthetic_.back();
  }

  FieldMap FieldsFor(size_t size, size_t variant, std::optional<size_t> zip_entry,
                     std::optional<size_t> sample) const {
    FieldMap fields;
    for (const char* section : kSections) {
      if (const YamlNode* node = root_.Find(section))
        fields.Add(*node, section, section, Layer::kShared);
    }
    fields.AddEntry(*sizes_[size].value, "sizes." + sizes_[size].name, Layer::kSize);
    fields.AddEntry(*variants_[variant].value, "variants." + variants_[variant].name,
                    Layer::kVariant);
    if (zip_entry) {
      for (const Override& o : zip_->overrides) {
        fields.Add(o.values->items[*zip_entry], o.canonical,
                   IndexPath(JoinPath("zip", o.key), *zip_entry), Layer::kZip);
      }
    }
    if (sample) {
      for (size_t i = 0; i < random_->dimensions.size(); ++i) {
        const Dimension& d = random_->dimensions[i];
        fields.Add(*samples_[*sample][i], d.canonical, d.shown, Layer::kRandom);
      }
    }
    return fields;
  }

  const ResolvedCombination* Combination(size_t size, size_t variant,
                                         std::optional<size_t> zip_entry,
                                         std::optional<size_t> sample) {
    const auto key =
        std::make_tuple(size, variant, zip_entry.value_or(SIZE_MAX), sample.value_or(SIZE_MAX));
    auto it = combinations_.find(key);
    if (it == combinations_.end()) {
      CombinationLabel label{sizes_[size].name, variants_[variant].name, variants_[variant].key,
                             sizes_[size].key};
      it = combinations_
               .emplace(key, resolver_.ResolveCombination(
                                 FieldsFor(size, variant, zip_entry, sample), std::move(label)))
               .first;
    }
    return it->second ? &*it->second : nullptr;
  }

  std::vector<size_t> AxisIndices(const std::optional<std::vector<size_t>>& zipped, size_t entry,
                                  size_t full) const {
    if (zipped) return {(*zipped)[entry]};
    std::vector<size_t> all(full);
    for (size_t i = 0; i < full; ++i) all[i] = i;
    return all;
  }

  void Expand() {
    const size_t entries = zip_ ? zip_->length : 1;
    const bool zip_overrides = zip_ && !zip_->overrides.empty();
    const size_t sample_count = random_ ? static_cast<size_t>(random_->count) : 1;
    static const std::optional<std::vector<size_t>> kNotZipped;
    const auto& zip_variant = zip_ ? zip_->variant : kNotZipped;
    const auto& zip_size = zip_ ? zip_->size : kNotZipped;
    const auto& zip_budget = zip_ ? zip_->budget : kNotZipped;
    const auto& zip_seed = zip_ ? zip_->seed : kNotZipped;
    const char* budget_letter = budgets_.front().is_flops ? "C" : "D";

    for (size_t z = 0; z < entries; ++z) {
      for (size_t v : AxisIndices(zip_variant, z, variants_.size())) {
        for (size_t s : AxisIndices(zip_size, z, sizes_.size())) {
          for (size_t b : AxisIndices(zip_budget, z, budgets_.size())) {
            for (size_t r = 0; r < sample_count; ++r) {
              if (diagnostics_->full()) {
                diagnostics_->NoteStopped();
                return;
              }
              const std::optional<size_t> zip_entry =
                  zip_overrides ? std::optional<size_t>(z) : std::nullopt;
              const std::optional<size_t> sample =
                  random_ ? std::optional<size_t>(r) : std::nullopt;
              const ResolvedCombination* combination = Combination(s, v, zip_entry, sample);
              if (combination == nullptr) continue;
              std::string stem = fmt::format("{}/{}/{}{:.3g}", variants_[v].name, sizes_[s].name,
                                             budget_letter, budgets_[b].value);
              std::string suffix;
              if (zip_entry) suffix += fmt::format("/z{}", z);
              if (sample) suffix += fmt::format("/r{}", r);
              const std::optional<ResolvedRun> resolved =
                  resolver_.ResolveRun(*combination, budgets_[b], bounds_, stem + suffix);
              if (!resolved) continue;
              for (size_t seed_index : AxisIndices(zip_seed, z, seeds_.size())) {
                const int64_t seed = seeds_[seed_index].first;
                const std::string name = fmt::format("{}/s{}{}", stem, seed, suffix);
                if (resolved->dropped) {
                  sweep_.dropped.push_back(DroppedRun{name, *resolved->dropped});
                  continue;
                }
                RunConfig run = resolved->config;
                run.name = name;
                run.sweep = sweep_.name;
                run.variant = variants_[v].name;
                run.size = sizes_[s].name;
                run.seed = seed;
                run.data.fingerprint = Fingerprint(run.data);
                NoteRounding(resolved->rounding, name);
                Add(*combination, std::move(run), Origin{v, s, b, z, r, seed, name});
              }
            }
          }
        }
      }
    }
  }

  std::string Fingerprint(const DataSpec& data) {
    const auto key = std::make_pair(data.train, data.val);
    auto it = fingerprints_.find(key);
    if (it == fingerprints_.end()) {
      DataFingerprint fingerprint = FingerprintData(data.train, data.val);
      if (!fingerprint.warning.empty()) sweep_.warnings.push_back(fingerprint.warning);
      it = fingerprints_.emplace(key, fingerprint.value).first;
    }
    return it->second;
  }

  void NoteRounding(double rounding, const std::string& name) {
    if (std::fabs(rounding) <= kRoundingWarning) return;
    ++off_budget_runs_;
    if (std::fabs(rounding) > std::fabs(worst_rounding_)) {
      worst_rounding_ = rounding;
      worst_rounding_run_ = name;
    }
  }

  // What makes two runs the same run, cheaply: everything a combination fixes, as canonical JSON
  // numbered once per combination, then the raw values of what ResolveRun may change per budget
  // (the numeric train / eval / resources fields, the budget plan) and the seed. Equal keys <=>
  // equal configurations up to the names.
  std::string Identity(const ResolvedCombination& combination, RunConfig& run) {
    auto [it, inserted] = base_ids_.emplace(&combination, 0);
    if (inserted) {
      RunConfig base = combination.config;
      for (const RunField& field : RunFields()) {
        if (field.phase != Phase::kRun && field.phase != Phase::kBatch) continue;
        if (field.kind == FieldKind::kInteger) field.integer(base) = 0;
        if (field.kind == FieldKind::kNumber) field.number(base) = 0;
      }
      nlohmann::json canonical = ToJson(base);
      for (const char* label : {"name", "variant", "size", "seed", "budget"})
        canonical.erase(label);
      it->second = canonical_ids_.emplace(canonical.dump(), canonical_ids_.size()).first->second;
    }
    std::string key;
    auto put = [&key](const auto& value) {
      key.append(reinterpret_cast<const char*>(&value), sizeof(value));
    };
    put(it->second);
    for (const RunField& field : RunFields()) {
      if (field.phase != Phase::kRun && field.phase != Phase::kBatch) continue;
      if (field.kind == FieldKind::kInteger) put(field.integer(run));
      if (field.kind == FieldKind::kNumber) put(field.number(run));
    }
    const BudgetPlan& b = run.budget;
    for (double v : {b.flops, b.flops_per_token, b.planned_flops, b.six_nd}) put(v);
    for (int64_t v : {b.tokens, b.steps, b.tokens_processed, run.seed}) put(v);
    return key;
  }

  // Duplicate names and duplicate configurations: one of the two runs is a mistake in the file.
  void Add(const ResolvedCombination& base, RunConfig run, Origin origin) {
    if (auto it = names_.find(run.name); it != names_.end()) {
      const Origin& first = origins_[it->second];
      if (first.budget != origin.budget) {
        const BudgetPoint& a = budgets_[first.budget];
        const BudgetPoint& b = budgets_[origin.budget];
        Error(*b.node, b.path,
              fmt::format("{} and {} ({}) print alike in the run name {}; budgets must differ in "
                          "their first 3 significant digits",
                          b.node->text, a.path, a.node->text, run.name));
      } else {
        Error(
            *zip_->node, "zip",
            fmt::format("entries {} and {} are the same run {}", first.zip, origin.zip, run.name));
      }
      return;
    }
    std::string key = Identity(base, run);
    if (auto it = configs_.find(key); it != configs_.end()) {
      const Origin& first = origins_[it->second];
      if (first.variant != origin.variant) {
        Error(*variants_[origin.variant].key, "variants." + variants_[origin.variant].name,
              fmt::format("gives the same runs as variant {} (e.g. {} and {})",
                          variants_[first.variant].name, first.name, origin.name));
      } else if (first.size != origin.size) {
        Error(*sizes_[origin.size].key, "sizes." + sizes_[origin.size].name,
              fmt::format("gives the same runs as size {} (e.g. {} and {})",
                          sizes_[first.size].name, first.name, origin.name));
      } else if (first.zip != origin.zip) {
        Error(*zip_->node, "zip",
              fmt::format("entries {} and {} give the same run ({} and {})", first.zip, origin.zip,
                          first.name, origin.name));
      } else {
        // Random samples that coincide (choice-only spaces do): the run exists once already.
        sweep_.dropped.push_back(DroppedRun{
            run.name,
            fmt::format("random sample {} is identical to {}", origin.sample, first.name)});
      }
      return;
    }
    names_.emplace(run.name, origins_.size());
    configs_.emplace(std::move(key), origins_.size());
    origins_.push_back(std::move(origin));
    sweep_.runs.push_back(std::move(run));
  }

  void Finish() {
    if (sweep_.runs.empty()) {
      const YamlNode& at = tpp_node_ ? *tpp_node_ : *budgets_node_;
      Error(at, tpp_node_ ? "budgets.tokens_per_param" : "budgets",
            sweep_.dropped.empty()
                ? std::string("the sweep has no runs")
                : fmt::format("every run was dropped, e.g. {}: {}", sweep_.dropped.front().name,
                              sweep_.dropped.front().reason));
      return;
    }
    if (off_budget_runs_ > 0) {
      sweep_.warnings.push_back(fmt::format(
          "{} run(s) spend more than {:.0f}% more or less than their budget because steps are "
          "whole (worst: {} by {:+.1f}%); a smaller train.batch_tokens or larger budgets fit "
          "better",
          off_budget_runs_, kRoundingWarning * 100, worst_rounding_run_, worst_rounding_ * 100));
    }
  }

  const YamlNode& root_;
  const SchemaValidator& schema_;
  const ExpandOptions& options_;
  Diagnostics* diagnostics_;
  RunResolver resolver_;

  std::vector<Named> sizes_, variants_;
  std::vector<BudgetPoint> budgets_;
  std::string budget_key_;
  const YamlNode* budgets_node_ = nullptr;
  const YamlNode* tpp_node_ = nullptr;
  TokensPerParam bounds_;
  std::vector<std::pair<int64_t, const YamlNode*>> seeds_;
  std::optional<Zip> zip_;
  std::optional<RandomSpace> random_;
  std::deque<YamlNode> synthetic_;                     // random samples; deque keeps addresses
  std::vector<std::vector<const YamlNode*>> samples_;  // [sample][dimension]

  std::map<std::tuple<size_t, size_t, size_t, size_t>, std::optional<ResolvedCombination>>
      combinations_;
  std::map<std::pair<std::string, std::string>, std::string> fingerprints_;
  std::unordered_map<std::string, size_t> names_;    // run name -> origins_ index
  std::unordered_map<std::string, size_t> configs_;  // Identity() -> origins_ index
  std::unordered_map<const ResolvedCombination*, size_t> base_ids_;
  std::unordered_map<std::string, size_t> canonical_ids_;
  std::vector<Origin> origins_;
  int off_budget_runs_ = 0;
  double worst_rounding_ = 0;
  std::string worst_rounding_run_;
  ExpandedSweep sweep_;
};

}  // namespace

std::optional<ExpandedSweep> ExpandSweep(const YamlNode& root, const SchemaValidator& schema,
                                         const ExpandOptions& options, Diagnostics* diagnostics) {
  return Expander(root, schema, options, diagnostics).Run();
}

}  // namespace isoflop::sweep
