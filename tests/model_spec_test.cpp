// ModelSpec: enum names as sweep files write them, resolved widths, block shapes, and every
// structural rule Validate() enforces, each with the message a user sees.
#include "common/model_spec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cctype>
#include <functional>
#include <string>
#include <vector>

namespace isoflop {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// -------------------------------------------------------------------------------------------------
// Names.

template <typename E>
void ExpectNames(const std::vector<std::pair<E, std::string>>& expected) {
  for (const auto& [value, name] : expected) {
    EXPECT_EQ(ToString(value), name);
    E parsed{};
    ASSERT_TRUE(Parse(name, &parsed)) << name;
    EXPECT_EQ(parsed, value) << name;
  }
}

TEST(Names, EveryEnumRoundTripsThroughItsSweepFileName) {
  ExpectNames<Arch>({{Arch::kGpt, "gpt"},
                     {Arch::kPgpt, "pgpt"},
                     {Arch::kLgpt, "lgpt"},
                     {Arch::kCgpt, "cgpt"},
                     {Arch::kSkipless, "skipless"}});
  ExpectNames<Positions>({{Positions::kLearned, "learned"}, {Positions::kRotary, "rotary"}});
  ExpectNames<Activation>({{Activation::kGelu, "gelu"},
                           {Activation::kGeluTanh, "gelu_tanh"},
                           {Activation::kSwiglu, "swiglu"}});
  ExpectNames<FfnType>({{FfnType::kDense, "dense"},
                        {FfnType::kLowRank, "lowrank"},
                        {FfnType::kBlockShuffle, "blockshuffle"},
                        {FfnType::kBlockDense, "blockdense"}});
  ExpectNames<SelfGuidedMode>({{SelfGuidedMode::kOff, "off"},
                               {SelfGuidedMode::kFixedStep, "fixedstep"},
                               {SelfGuidedMode::kFixedFlop, "fixedflop"}});
  ExpectNames<AlphaSchedule>(
      {{AlphaSchedule::kCosine, "cosine"}, {AlphaSchedule::kLinear, "linear"}});
  ExpectNames<SkiplessRemoval>({{SkiplessRemoval::kNone, "none"},
                                {SkiplessRemoval::kQ, "q"},
                                {SkiplessRemoval::kQP, "qp"},
                                {SkiplessRemoval::kKP, "kp"},
                                {SkiplessRemoval::kVP, "vp"}});
}

TEST(Names, UnknownNamesAreRejectedAndLeaveTheOutputAlone) {
  Arch arch = Arch::kLgpt;
  EXPECT_FALSE(Parse("GPT", &arch));  // names are case-sensitive, as in the schema
  EXPECT_FALSE(Parse("", &arch));
  EXPECT_FALSE(Parse("gpt ", &arch));
  EXPECT_EQ(arch, Arch::kLgpt);
  FfnType type = FfnType::kDense;
  EXPECT_FALSE(Parse("low_rank", &type));
  SkiplessRemoval removed = SkiplessRemoval::kNone;
  EXPECT_FALSE(Parse("pq", &removed));
  Activation act = Activation::kGelu;
  EXPECT_FALSE(Parse("relu", &act));
}

// -------------------------------------------------------------------------------------------------
// Resolved widths and block shapes.

ModelSpec Small() {
  ModelSpec s;
  s.n_layer = 4;
  s.d_model = 256;
  s.n_head = 4;
  s.seq_len = 128;
  return s;
}

TEST(Shapes, DefaultsResolveToMultiHeadAttentionAndFourTimesWidth) {
  const ModelSpec s = Small();
  EXPECT_EQ(s.kv_heads(), 4);
  EXPECT_EQ(s.attn_width(), 256);
  EXPECT_EQ(s.head_dim(), 64);
  EXPECT_EQ(s.kv_width(), 256);
  EXPECT_EQ(s.ffn_hidden(), 1024);
  EXPECT_EQ(s.final_width(), 256);
}

TEST(Shapes, GroupedQueryAttentionWithANarrowQueryWidth) {
  ModelSpec s = Small();
  s.attn_dim = 128;
  s.n_kv_head = 2;
  s.d_ff = 700;
  EXPECT_EQ(s.head_dim(), 32);
  EXPECT_EQ(s.kv_width(), 64);
  const ModelSpec::BlockShape b = s.block(3);
  EXPECT_EQ(b.width, 256);
  EXPECT_EQ(b.attn_width, 128);
  EXPECT_EQ(b.kv_width, 64);
  EXPECT_EQ(b.ffn_hidden, 700);
}

TEST(Shapes, LinearGptHalvesWidthAndHeadDimButKeepsTheHeads) {
  ModelSpec s = Small();
  s.arch = Arch::kLgpt;
  s.n_layer = 6;
  s.blocks_per_stage = 2;
  s.n_kv_head = 2;
  ASSERT_TRUE(s.Validate().ok()) << s.Validate().ToString();
  const int64_t widths[] = {256, 256, 128, 128, 64, 64};
  for (int64_t i = 0; i < 6; ++i) {
    const ModelSpec::BlockShape b = s.block(i);
    EXPECT_EQ(b.width, widths[i]);
    EXPECT_EQ(b.attn_width, widths[i]);
    EXPECT_EQ(b.kv_width, widths[i] / 2);  // 2 of 4 heads
    EXPECT_EQ(b.ffn_hidden, 4 * widths[i]);
  }
  EXPECT_EQ(s.final_width(), 32);
}

TEST(Shapes, OnlyBlockZeroStaysDenseWhenAsked) {
  ModelSpec s = Small();
  s.ffn.type = FfnType::kLowRank;
  s.ffn.rank = 64;
  EXPECT_FALSE(s.block(0).structured_ffn);
  EXPECT_TRUE(s.block(1).structured_ffn);
  EXPECT_TRUE(s.block(3).structured_ffn);
  s.ffn.first_layer_dense = false;
  EXPECT_TRUE(s.block(0).structured_ffn);
  s.ffn.type = FfnType::kDense;
  EXPECT_FALSE(s.block(1).structured_ffn);
}

// -------------------------------------------------------------------------------------------------
// Validation: every valid variant passes, every broken one names its field.

TEST(Validate, EveryArchitectureInItsPaperShapeIsValid) {
  for (Arch arch : {Arch::kGpt, Arch::kPgpt, Arch::kLgpt, Arch::kCgpt, Arch::kSkipless}) {
    ModelSpec s = Small();
    s.arch = arch;
    EXPECT_TRUE(s.Validate().ok()) << ToString(arch) << ": " << s.Validate().ToString();
  }
}

TEST(Validate, LegalSkiplessRemovals) {
  struct Case {
    bool parallel;
    int64_t kv;
    SkiplessRemoval removed;
    bool ok;
  };
  const Case cases[] = {
      // serial: qp always; kp/vp only with MHA; q is the parallel block's exact conversion.
      {false, 4, SkiplessRemoval::kQP, true},
      {false, 1, SkiplessRemoval::kQP, true},
      {false, 4, SkiplessRemoval::kKP, true},
      {false, 4, SkiplessRemoval::kVP, true},
      {false, 2, SkiplessRemoval::kKP, false},
      {false, 1, SkiplessRemoval::kVP, false},
      {false, 4, SkiplessRemoval::kQ, false},
      // parallel: q and qp for MHA, MQA and GQA; kp/vp are serial removals.
      {true, 4, SkiplessRemoval::kQ, true},
      {true, 1, SkiplessRemoval::kQ, true},
      {true, 2, SkiplessRemoval::kQP, true},
      {true, 4, SkiplessRemoval::kKP, false},
      {true, 4, SkiplessRemoval::kVP, false},
  };
  for (const Case& c : cases) {
    ModelSpec s = Small();
    s.arch = Arch::kSkipless;
    s.skipless.parallel = c.parallel;
    s.n_kv_head = c.kv;
    s.skipless.removed = c.removed;
    const Status st = s.Validate();
    EXPECT_EQ(st.ok(), c.ok) << (c.parallel ? "parallel " : "serial ") << ToString(c.removed)
                             << " kv " << c.kv << ": " << st.ToString();
    if (!st.ok()) {
      EXPECT_THAT(st.message(), StartsWith("skipless.removed: "));
    }
  }
}

struct BrokenSpec {
  const char* what;
  std::function<void(ModelSpec&)> mutate;
  const char* message;  // the start of the expected message (the field, then what is wrong)
};

class ValidateRejects : public ::testing::TestWithParam<BrokenSpec> {};

TEST_P(ValidateRejects, WithAMessageNamingTheField) {
  ModelSpec s = Small();
  GetParam().mutate(s);
  const Status st = s.Validate();
  ASSERT_FALSE(st.ok()) << GetParam().what;
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(st.message(), StartsWith(GetParam().message)) << GetParam().what;
}

ModelSpec& Structured(ModelSpec& s, FfnType type, int64_t rank, int64_t blocks) {
  s.ffn.type = type;
  s.ffn.rank = rank;
  s.ffn.blocks = blocks;
  return s;
}

INSTANTIATE_TEST_SUITE_P(
    Fields, ValidateRejects,
    ::testing::Values(
        // Sizes.
        BrokenSpec{"no layers", [](ModelSpec& s) { s.n_layer = 0; },
                   "n_layer: must be positive, got 0"},
        BrokenSpec{"negative width", [](ModelSpec& s) { s.d_model = -8; },
                   "d_model: must be positive"},
        BrokenSpec{"no heads", [](ModelSpec& s) { s.n_head = 0; }, "n_head: must be positive"},
        BrokenSpec{"no vocabulary", [](ModelSpec& s) { s.vocab_size = 0; }, "vocab_size: must be"},
        BrokenSpec{"no context", [](ModelSpec& s) { s.seq_len = 0; }, "seq_len: must be positive"},
        BrokenSpec{"negative kv", [](ModelSpec& s) { s.n_kv_head = -1; }, "n_kv_head: must be 0"},
        BrokenSpec{"negative attn", [](ModelSpec& s) { s.attn_dim = -1; }, "attn_dim: must be 0"},
        BrokenSpec{"negative ffn", [](ModelSpec& s) { s.d_ff = -4; }, "d_ff: must be 0"},
        BrokenSpec{"rope base",
                   [](ModelSpec& s) {
                     s.positions = Positions::kRotary;
                     s.rope_base = 0;
                   },
                   "rope_base: must be positive"},
        // Attention.
        BrokenSpec{"heads vs attn_dim",
                   [](ModelSpec& s) {
                     s.n_head = 12;
                     s.attn_dim = 1000;
                   },
                   "n_head: 12 does not divide attn_dim 1000"},
        BrokenSpec{"heads vs d_model", [](ModelSpec& s) { s.n_head = 3; },
                   "n_head: 3 does not divide d_model 256"},
        BrokenSpec{"kv exceeds heads", [](ModelSpec& s) { s.n_kv_head = 8; },
                   "n_kv_head: 8 exceeds n_head 4"},
        BrokenSpec{"kv does not divide heads", [](ModelSpec& s) { s.n_kv_head = 3; },
                   "n_kv_head: 3 does not divide n_head 4"},
        BrokenSpec{"odd rotary head",
                   [](ModelSpec& s) {
                     s.positions = Positions::kRotary;
                     s.attn_dim = 12;
                   },
                   "positions: rotary embeddings rotate pairs"},
        // pgpt.
        BrokenSpec{"one path",
                   [](ModelSpec& s) {
                     s.arch = Arch::kPgpt;
                     s.paths = 1;
                   },
                   "paths: pgpt needs at least 2 paths, got 1"},
        BrokenSpec{"paths vs layers",
                   [](ModelSpec& s) {
                     s.arch = Arch::kPgpt;
                     s.paths = 3;
                   },
                   "n_layer: 4 is not divisible by paths 3"},
        // lgpt / cgpt.
        BrokenSpec{"stages vs layers",
                   [](ModelSpec& s) {
                     s.arch = Arch::kLgpt;
                     s.blocks_per_stage = 3;
                   },
                   "n_layer: 4 is not divisible by blocks_per_stage 3"},
        BrokenSpec{"zero stage length",
                   [](ModelSpec& s) {
                     s.arch = Arch::kCgpt;
                     s.blocks_per_stage = 0;
                   },
                   "blocks_per_stage: must be positive"},
        BrokenSpec{"too many halvings",
                   [](ModelSpec& s) {
                     s.arch = Arch::kLgpt;
                     s.d_model = 12;
                     s.blocks_per_stage = 1;
                   },
                   "d_model: 12 cannot be halved 4 times"},
        BrokenSpec{"d_ff not halvable",
                   [](ModelSpec& s) {
                     s.arch = Arch::kLgpt;
                     s.d_ff = 1001;
                   },
                   "d_ff: 1001 is not divisible by 2"},
        BrokenSpec{"heads vs narrow stage",
                   [](ModelSpec& s) {
                     s.arch = Arch::kLgpt;
                     s.n_layer = 8;
                     s.blocks_per_stage = 1;
                     s.n_head = 4;
                   },
                   "n_head: 4 does not divide the width 2 of block 7"},
        BrokenSpec{"lgpt attn_dim",
                   [](ModelSpec& s) {
                     s.arch = Arch::kLgpt;
                     s.attn_dim = 128;
                   },
                   "attn_dim: 128 must equal d_model 256"},
        BrokenSpec{"lgpt tied",
                   [](ModelSpec& s) {
                     s.arch = Arch::kLgpt;
                     s.tied_embeddings = true;
                   },
                   "tied_embeddings: lgpt's lm_head works at the final width 64"},
        BrokenSpec{"conv kernel",
                   [](ModelSpec& s) {
                     s.arch = Arch::kCgpt;
                     s.conv_kernel = 0;
                   },
                   "conv_kernel: must be positive"},
        // skipless.
        BrokenSpec{"skipless attn_dim",
                   [](ModelSpec& s) {
                     s.arch = Arch::kSkipless;
                     s.attn_dim = 128;
                   },
                   "attn_dim: 128 must equal d_model 256"},
        BrokenSpec{"removal unties",
                   [](ModelSpec& s) {
                     s.arch = Arch::kSkipless;
                     s.skipless.removed = SkiplessRemoval::kQP;
                     s.tied_embeddings = true;
                   },
                   "tied_embeddings: removing qp folds"},
        BrokenSpec{"kp with GQA",
                   [](ModelSpec& s) {
                     s.arch = Arch::kSkipless;
                     s.n_kv_head = 2;
                     s.skipless.removed = SkiplessRemoval::kKP;
                   },
                   "skipless.removed: kp needs multi-head attention"},
        BrokenSpec{"identity init",
                   [](ModelSpec& s) {
                     s.arch = Arch::kSkipless;
                     s.skipless.identity_init = -1;
                   },
                   "skipless.identity_init: must be finite"},
        // Structured FFN.
        BrokenSpec{"rank above width",
                   [](ModelSpec& s) {
                     s.d_model = 768;
                     s.n_head = 12;
                     Structured(s, FfnType::kLowRank, 1024, 0);
                   },
                   "ffn.rank: 1024 exceeds the layer width 768"},
        BrokenSpec{"no rank", [](ModelSpec& s) { Structured(s, FfnType::kLowRank, 0, 0); },
                   "ffn.rank: must be positive"},
        BrokenSpec{"no blocks", [](ModelSpec& s) { Structured(s, FfnType::kBlockShuffle, 0, 0); },
                   "ffn.blocks: must be positive"},
        BrokenSpec{"blocks vs widths",
                   [](ModelSpec& s) { Structured(s, FfnType::kBlockShuffle, 0, 3); },
                   "ffn.blocks: 3 does not divide the layer widths 256 and 1024"},
        BrokenSpec{"blockdense rank vs blocks",
                   [](ModelSpec& s) { Structured(s, FfnType::kBlockDense, 130, 4); },
                   "ffn.rank: 130 is not divisible by ffn.blocks 4"},
        BrokenSpec{"blockdense blocks vs input",
                   [](ModelSpec& s) { Structured(s, FfnType::kBlockDense, 96, 3); },
                   "ffn.blocks: 3 does not divide the layer input width 256"},
        BrokenSpec{"blockdense rank above width",
                   [](ModelSpec& s) { Structured(s, FfnType::kBlockDense, 512, 4); },
                   "ffn.rank: 512 exceeds the layer width 256"},
        BrokenSpec{"rank vs a narrow lgpt stage",
                   [](ModelSpec& s) {
                     s.arch = Arch::kLgpt;
                     Structured(s, FfnType::kLowRank, 192, 0);
                   },
                   "ffn.rank: 192 exceeds the layer width 128"},
        // Self-guided training.
        BrokenSpec{"guide without structure",
                   [](ModelSpec& s) { s.self_guided.mode = SelfGuidedMode::kFixedStep; },
                   "self_guided.mode: fixedstep guides structured FFN layers"},
        BrokenSpec{"guide with only a dense first layer",
                   [](ModelSpec& s) {
                     s.n_layer = 1;
                     Structured(s, FfnType::kLowRank, 64, 0);
                     s.self_guided.mode = SelfGuidedMode::kFixedFlop;
                   },
                   "self_guided.mode: fixedflop guides structured FFN layers"},
        BrokenSpec{"ratio above one",
                   [](ModelSpec& s) {
                     Structured(s, FfnType::kLowRank, 64, 0);
                     s.self_guided.mode = SelfGuidedMode::kFixedFlop;
                     s.self_guided.ratio = 1.5;
                   },
                   "self_guided.ratio: 1.5 must lie in [0, 1]"},
        BrokenSpec{"negative ratio",
                   [](ModelSpec& s) {
                     Structured(s, FfnType::kLowRank, 64, 0);
                     s.self_guided.mode = SelfGuidedMode::kFixedStep;
                     s.self_guided.ratio = -0.1;
                   },
                   "self_guided.ratio: -0.1 must lie in [0, 1]"},
        BrokenSpec{"structured costs more than dense",
                   [](ModelSpec& s) {
                     // LowRank(R = d) costs (d + 4d) d per linear, more than the dense 4d^2.
                     Structured(s, FfnType::kLowRank, 256, 0);
                     s.self_guided.mode = SelfGuidedMode::kFixedFlop;
                   },
                   "self_guided.ratio: matching the dense model's FLOPs needs rho = -"}),
    [](const ::testing::TestParamInfo<BrokenSpec>& info) {
      std::string name = info.param.what;
      for (char& c : name) {
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      }
      return name;
    });

TEST(Validate, FieldsOfOtherVariantsAreIgnored) {
  ModelSpec s = Small();
  s.paths = 0;                                // pgpt only
  s.blocks_per_stage = 3;                     // lgpt / cgpt only
  s.conv_kernel = 0;                          // cgpt only
  s.skipless.removed = SkiplessRemoval::kKP;  // skipless only
  s.ffn.rank = 100000;                        // dense FFN: no rank
  s.self_guided.ratio = 7;                    // self-guidance off
  EXPECT_TRUE(s.Validate().ok()) << s.Validate().ToString();
}

TEST(Validate, MessagesExplainTheRule) {
  ModelSpec s = Small();
  s.arch = Arch::kPgpt;
  s.paths = 3;
  EXPECT_THAT(s.Validate().message(), HasSubstr("each path is a stack of n_layer / paths blocks"));
  s = Small();
  s.d_model = 768;
  s.n_head = 12;
  s.ffn.type = FfnType::kLowRank;
  s.ffn.rank = 1024;
  EXPECT_THAT(s.Validate().message(), HasSubstr("768 -> 3072"));
}

}  // namespace
}  // namespace isoflop
