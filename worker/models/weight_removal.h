// Weight removal for skipless transformers (Graef 2024, papers.md 2.2, 2.4, 2.6): the transform
// that takes a skipless model with all of Q, K, V, P and returns the smaller model computing the
// same function. Row vectors; X is the projection removed (Q, K or V), X' the next block's:
//   embedding   E* = E X_1 + b_X1 (every row),  wpe* = wpe X_1
//   kept Y      Y* = X^-1 Y,  b_Y* = b_Y - b_X X^-1 Y           (Y: Q, K, V other than X)
//   serial      M* = P M,  b_M* = b_P M + b_M                   (P goes with X)
//               O* = O X',  b_O* = b_O X' + b_X'                (the last block's O unchanged)
//   parallel q  M* = X^-1 M,  b_M* = b_M - b_X X^-1 M;  P* = P X',  b_P* = b_P X';  O* as serial
// Block i of the merged model then receives x_i X + b_X, exactly the removed projection's output,
// so attention sees the same q, k and v; RoPE acts on the projected q and k and is untouched.
// Parallel qp (Fig. 3a) is not reachable this way: P Q' cannot be absorbed into the values, which
// each head weighs with its own attention.
#pragma once

#include <memory>

#include "common/model_spec.h"
#include "common/status.h"
#include "worker/models/skipless.h"

namespace isoflop {

// The merged model, spec().skipless.removed = `removal`, on the device and in the dtype of `model`,
// computed in float64 and cast at the end (cond(X) of trained matrices reaches 1e3-1e4, papers.md
// 2.6). Requires a model without removals, with dense FFN layers and untied embeddings; `removal`
// qp, kp or vp for serial blocks (kp, vp only with MHA), q for parallel ones; every X invertible.
Result<std::shared_ptr<SkiplessGptImpl>> RemoveWeights(SkiplessGptImpl& model,
                                                       SkiplessRemoval removal);

}  // namespace isoflop
