#include "common/run_config.h"

#include <set>
#include <string_view>

#include <fmt/format.h>

namespace isoflop {
namespace {

using nlohmann::json;

template <typename E>
struct EnumName {
  E value;
  const char* name;
};

template <typename E, size_t N>
const char* NameOf(const EnumName<E> (&table)[N], E v) {
  for (const auto& e : table) {
    if (e.value == v) return e.name;
  }
  return "?";
}

template <typename E, size_t N>
bool ValueOf(const EnumName<E> (&table)[N], const std::string& s, E* out) {
  for (const auto& e : table) {
    if (s == e.name) {
      *out = e.value;
      return true;
    }
  }
  return false;
}

constexpr EnumName<LrDecay> kLrDecay[] = {{LrDecay::kCosine, "cosine"},
                                          {LrDecay::kLinear, "linear"},
                                          {LrDecay::kConstant, "constant"},
                                          {LrDecay::kWsd, "wsd"}};
constexpr EnumName<Precision> kPrecision[] = {
    {Precision::kAuto, "auto"}, {Precision::kFp32, "fp32"}, {Precision::kBf16, "bf16"}};
constexpr EnumName<DataOrder> kDataOrder[] = {{DataOrder::kShuffled, "shuffled"},
                                              {DataOrder::kSequential, "sequential"}};
constexpr EnumName<LauncherKind> kLauncher[] = {
    {LauncherKind::kLocal, "local"}, {LauncherKind::kMpi, "mpi"}, {LauncherKind::kSlurm, "slurm"}};

// Reads one JSON object strictly: every key must be consumed, types must match, and the first problem is
// reported with its JSON path ("model.ffn.rank: expected an integer"). A newer coordinator writing a field
// an older worker does not know is thus an error, not a silently ignored setting.
class ObjectReader {
 public:
  ObjectReader(const json& j, std::string path) : j_(j), path_(std::move(path)) {
    if (!j_.is_object()) Fail("", "expected an object");
  }

  template <typename T>
  void Required(const char* key, T* out) {
    if (!j_.contains(key)) return Fail(key, "missing");
    Read(key, out);
  }
  template <typename T>
  void Optional(const char* key, T* out) {
    if (j_.contains(key)) Read(key, out);
  }
  template <typename E, size_t N>
  void OptionalEnum(const char* key, const EnumName<E> (&table)[N], E* out) {
    std::string s;
    Optional(key, &s);
    if (j_.contains(key) && !ValueOf(table, s, out)) Fail(key, fmt::format("unknown value \"{}\"", s));
  }
  template <typename E>
  void OptionalEnum(const char* key, E* out) {
    std::string s;
    Optional(key, &s);
    if (j_.contains(key) && !Parse(s, out)) Fail(key, fmt::format("unknown value \"{}\"", s));
  }
  // Nested object: `read` receives a reader for the sub-object.
  template <typename F>
  void Object(const char* key, F&& read) {
    if (!j_.contains(key)) return;
    seen_.insert(key);
    ObjectReader sub(j_.at(key), Join(key));
    read(sub);
    sub.Finish();
    if (status_.ok()) status_ = sub.status_;
  }
  const json* Raw(const char* key) {
    if (!j_.contains(key)) return nullptr;
    seen_.insert(key);
    return &j_.at(key);
  }
  void Finish() {
    if (!status_.ok() || !j_.is_object()) return;
    for (const auto& [k, v] : j_.items()) {
      if (!seen_.count(k)) return Fail(k, "unknown key");
    }
  }
  void Fail(std::string_view key, const std::string& what) {
    if (status_.ok()) status_ = Status::InvalidArgument(fmt::format("{}: {}", Join(key), what));
  }
  const Status& status() const { return status_; }
  std::string Join(std::string_view key) const {
    if (key.empty()) return path_.empty() ? std::string("<root>") : path_;
    return path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key);
  }

 private:
  template <typename T>
  void Read(const char* key, T* out) {
    seen_.insert(key);
    const json& v = j_.at(key);
    if constexpr (std::is_same_v<T, bool>) {
      if (!v.is_boolean()) return Fail(key, "expected a boolean");
    } else if constexpr (std::is_integral_v<T>) {
      if (!v.is_number_integer()) return Fail(key, "expected an integer");
    } else if constexpr (std::is_floating_point_v<T>) {
      if (!v.is_number()) return Fail(key, "expected a number");
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (!v.is_string()) return Fail(key, "expected a string");
    }
    *out = v.get<T>();
  }

  const json& j_;
  std::string path_;
  std::set<std::string, std::less<>> seen_;
  Status status_;
};

}  // namespace

const char* ToString(LrDecay v) { return NameOf(kLrDecay, v); }
bool Parse(const std::string& s, LrDecay* out) { return ValueOf(kLrDecay, s, out); }
const char* ToString(Precision v) { return NameOf(kPrecision, v); }
bool Parse(const std::string& s, Precision* out) { return ValueOf(kPrecision, s, out); }
const char* ToString(DataOrder v) { return NameOf(kDataOrder, v); }
bool Parse(const std::string& s, DataOrder* out) { return ValueOf(kDataOrder, s, out); }
const char* ToString(LauncherKind v) { return NameOf(kLauncher, v); }
bool Parse(const std::string& s, LauncherKind* out) { return ValueOf(kLauncher, s, out); }

// Built with operator[] rather than nested initializer lists: the lists copy every sub-object once
// more, and planning a 10,000-run sweep serializes 10,000 of these (bench/plan_insert_bench.cpp).
json ToJson(const ModelSpec& m) {
  json j;
  j["arch"] = ToString(m.arch);
  j["n_layer"] = m.n_layer;
  j["d_model"] = m.d_model;
  j["n_head"] = m.n_head;
  j["n_kv_head"] = m.n_kv_head;
  j["attn_dim"] = m.attn_dim;
  j["d_ff"] = m.d_ff;
  j["vocab_size"] = m.vocab_size;
  j["seq_len"] = m.seq_len;
  j["positions"] = ToString(m.positions);
  j["rope_base"] = m.rope_base;
  j["tied_embeddings"] = m.tied_embeddings;
  j["activation"] = ToString(m.activation);
  j["bias"] = m.bias;
  json& ffn = j["ffn"];
  ffn["type"] = ToString(m.ffn.type);
  ffn["rank"] = m.ffn.rank;
  ffn["blocks"] = m.ffn.blocks;
  ffn["first_layer_dense"] = m.ffn.first_layer_dense;
  json& sg = j["self_guided"];
  sg["mode"] = ToString(m.self_guided.mode);
  sg["ratio"] = m.self_guided.ratio;
  sg["reduce_flop"] = m.self_guided.reduce_flop;
  sg["schedule"] = ToString(m.self_guided.schedule);
  j["paths"] = m.paths;
  j["blocks_per_stage"] = m.blocks_per_stage;
  j["conv_kernel"] = m.conv_kernel;
  json& sk = j["skipless"];
  sk["parallel"] = m.skipless.parallel;
  sk["removed"] = ToString(m.skipless.removed);
  sk["identity_init"] = m.skipless.identity_init;
  return j;
}

json ToJson(const RunConfig& r) {
  json j;
  j["version"] = r.version;
  j["name"] = r.name;
  j["sweep"] = r.sweep;
  j["variant"] = r.variant;
  j["size"] = r.size;
  j["seed"] = r.seed;
  j["model"] = ToJson(r.model);

  json& t = j["train"];
  t["batch_tokens"] = r.train.batch_tokens;
  t["micro_batch"] = r.train.micro_batch;
  json& o = t["optimizer"];
  o["name"] = r.train.optimizer.name;
  o["lr"] = r.train.optimizer.lr;
  o["beta1"] = r.train.optimizer.beta1;
  o["beta2"] = r.train.optimizer.beta2;
  o["eps"] = r.train.optimizer.eps;
  o["weight_decay"] = r.train.optimizer.weight_decay;
  o["decay_all"] = r.train.optimizer.decay_all;
  json& s = t["schedule"];
  s["warmup"] = r.train.schedule.warmup;
  s["decay"] = ToString(r.train.schedule.decay);
  s["min_lr"] = r.train.schedule.min_lr;
  s["decay_fraction"] = r.train.schedule.decay_fraction;
  t["precision"] = ToString(r.train.precision);
  t["grad_clip"] = r.train.grad_clip;
  t["log_every"] = r.train.log_every;
  t["checkpoint_every_tokens"] = r.train.checkpoint_every_tokens;

  json& e = j["eval"];
  e["every_tokens"] = r.eval.every_tokens;
  e["val_tokens"] = r.eval.val_tokens;
  json& benchmarks = e["benchmarks"] = json::array();
  for (const auto& b : r.eval.benchmarks) {
    json item;
    item["name"] = b.name;
    item["path"] = b.path;
    item["limit"] = b.limit;
    benchmarks.push_back(std::move(item));
  }

  json& d = j["data"];
  d["train"] = r.data.train;
  d["val"] = r.data.val;
  d["order"] = ToString(r.data.order);
  d["tokenizer"] = r.data.tokenizer;
  d["fingerprint"] = r.data.fingerprint;

  json& x = j["resources"];
  x["gpus"] = r.resources.gpus;
  x["launcher"] = ToString(r.resources.launcher);
  x["max_retries"] = r.resources.max_retries;
  x["priority"] = r.resources.priority;
  x["slurm"] = r.resources.slurm;

  json& b = j["budget"];
  b["flops"] = r.budget.flops;
  b["tokens"] = r.budget.tokens;
  b["steps"] = r.budget.steps;
  b["tokens_processed"] = r.budget.tokens_processed;
  b["flops_per_token"] = r.budget.flops_per_token;
  b["planned_flops"] = r.budget.planned_flops;
  b["six_nd"] = r.budget.six_nd;

  json& a = j["accounting"];
  a["params"] = r.accounting.params;
  a["params_nonemb"] = r.accounting.params_nonemb;
  a["forward_flops"] = r.accounting.forward_flops;
  a["train_flops"] = r.accounting.train_flops;
  return j;
}

namespace {

void ReadModel(ObjectReader& in, ModelSpec* m) {
  in.OptionalEnum("arch", &m->arch);
  in.Required("n_layer", &m->n_layer);
  in.Required("d_model", &m->d_model);
  in.Required("n_head", &m->n_head);
  in.Optional("n_kv_head", &m->n_kv_head);
  in.Optional("attn_dim", &m->attn_dim);
  in.Optional("d_ff", &m->d_ff);
  in.Optional("vocab_size", &m->vocab_size);
  in.Required("seq_len", &m->seq_len);
  in.OptionalEnum("positions", &m->positions);
  in.Optional("rope_base", &m->rope_base);
  in.Optional("tied_embeddings", &m->tied_embeddings);
  in.OptionalEnum("activation", &m->activation);
  in.Optional("bias", &m->bias);
  in.Object("ffn", [&](ObjectReader& f) {
    f.OptionalEnum("type", &m->ffn.type);
    f.Optional("rank", &m->ffn.rank);
    f.Optional("blocks", &m->ffn.blocks);
    f.Optional("first_layer_dense", &m->ffn.first_layer_dense);
  });
  in.Object("self_guided", [&](ObjectReader& g) {
    g.OptionalEnum("mode", &m->self_guided.mode);
    g.Optional("ratio", &m->self_guided.ratio);
    g.Optional("reduce_flop", &m->self_guided.reduce_flop);
    g.OptionalEnum("schedule", &m->self_guided.schedule);
  });
  in.Optional("paths", &m->paths);
  in.Optional("blocks_per_stage", &m->blocks_per_stage);
  in.Optional("conv_kernel", &m->conv_kernel);
  in.Object("skipless", [&](ObjectReader& s) {
    s.Optional("parallel", &m->skipless.parallel);
    s.OptionalEnum("removed", &m->skipless.removed);
    s.Optional("identity_init", &m->skipless.identity_init);
  });
}

}  // namespace

Result<ModelSpec> ModelSpecFromJson(const json& j) {
  ModelSpec m;
  ObjectReader in(j, "");
  ReadModel(in, &m);
  in.Finish();
  if (!in.status().ok()) return in.status();
  return m;
}

Result<RunConfig> RunConfigFromJson(const json& j) {
  RunConfig r;
  ObjectReader in(j, "");
  in.Required("version", &r.version);
  if (in.status().ok() && r.version != kRunConfigVersion) {
    in.Fail("version", fmt::format("run config version {} is not {} (this binary's)", r.version,
                                   kRunConfigVersion));
  }
  in.Required("name", &r.name);
  in.Required("sweep", &r.sweep);
  in.Optional("variant", &r.variant);
  in.Optional("size", &r.size);
  in.Optional("seed", &r.seed);
  if (!j.is_object() || !j.contains("model")) in.Fail("model", "missing");
  in.Object("model", [&](ObjectReader& m) { ReadModel(m, &r.model); });
  in.Object("train", [&](ObjectReader& t) {
    t.Optional("batch_tokens", &r.train.batch_tokens);
    t.Optional("micro_batch", &r.train.micro_batch);
    t.Object("optimizer", [&](ObjectReader& o) {
      auto& opt = r.train.optimizer;
      o.Optional("name", &opt.name);
      o.Optional("lr", &opt.lr);
      o.Optional("beta1", &opt.beta1);
      o.Optional("beta2", &opt.beta2);
      o.Optional("eps", &opt.eps);
      o.Optional("weight_decay", &opt.weight_decay);
      o.Optional("decay_all", &opt.decay_all);
    });
    t.Object("schedule", [&](ObjectReader& s) {
      auto& sch = r.train.schedule;
      s.Optional("warmup", &sch.warmup);
      s.OptionalEnum("decay", kLrDecay, &sch.decay);
      s.Optional("min_lr", &sch.min_lr);
      s.Optional("decay_fraction", &sch.decay_fraction);
    });
    t.OptionalEnum("precision", kPrecision, &r.train.precision);
    t.Optional("grad_clip", &r.train.grad_clip);
    t.Optional("log_every", &r.train.log_every);
    t.Optional("checkpoint_every_tokens", &r.train.checkpoint_every_tokens);
  });
  in.Object("eval", [&](ObjectReader& e) {
    e.Optional("every_tokens", &r.eval.every_tokens);
    e.Optional("val_tokens", &r.eval.val_tokens);
    if (const json* list = e.Raw("benchmarks")) {
      if (!list->is_array()) return e.Fail("benchmarks", "expected an array");
      for (size_t i = 0; i < list->size(); ++i) {
        BenchmarkSpec b;
        ObjectReader item((*list)[i], e.Join(fmt::format("benchmarks[{}]", i)));
        item.Required("name", &b.name);
        item.Required("path", &b.path);
        item.Optional("limit", &b.limit);
        item.Finish();
        if (!item.status().ok()) return e.Fail("", item.status().message());
        r.eval.benchmarks.push_back(std::move(b));
      }
    }
  });
  // A run.json written before data.order existed read its windows in file order: it resumes so.
  if (j.contains("data") && j["data"].is_object() && !j["data"].contains("order")) {
    r.data.order = DataOrder::kSequential;
  }
  in.Object("data", [&](ObjectReader& d) {
    d.Optional("train", &r.data.train);
    d.Optional("val", &r.data.val);
    d.OptionalEnum("order", kDataOrder, &r.data.order);
    d.Optional("tokenizer", &r.data.tokenizer);
    d.Optional("fingerprint", &r.data.fingerprint);
  });
  in.Object("resources", [&](ObjectReader& x) {
    x.Optional("gpus", &r.resources.gpus);
    x.OptionalEnum("launcher", kLauncher, &r.resources.launcher);
    x.Optional("max_retries", &r.resources.max_retries);
    x.Optional("priority", &r.resources.priority);
    if (const json* slurm = x.Raw("slurm")) {
      if (!slurm->is_object()) return x.Fail("slurm", "expected an object");
      r.resources.slurm = *slurm;
    }
  });
  in.Object("budget", [&](ObjectReader& b) {
    b.Optional("flops", &r.budget.flops);
    b.Optional("tokens", &r.budget.tokens);
    b.Optional("steps", &r.budget.steps);
    b.Optional("tokens_processed", &r.budget.tokens_processed);
    b.Optional("flops_per_token", &r.budget.flops_per_token);
    b.Optional("planned_flops", &r.budget.planned_flops);
    b.Optional("six_nd", &r.budget.six_nd);
  });
  in.Object("accounting", [&](ObjectReader& a) {
    a.Optional("params", &r.accounting.params);
    a.Optional("params_nonemb", &r.accounting.params_nonemb);
    a.Optional("forward_flops", &r.accounting.forward_flops);
    a.Optional("train_flops", &r.accounting.train_flops);
  });
  in.Finish();
  if (!in.status().ok()) return in.status();
  return r;
}

}  // namespace isoflop
