//! Segmentation losses on logits.

use burn::tensor::Tensor;
use burn::tensor::activation::{relu, sigmoid};

/// Mean binary cross-entropy on logits, numerically stable
/// (`max(x, 0) - x*y + log(1 + exp(-|x|))`, as PyTorch's
/// `binary_cross_entropy_with_logits`), with an optional weight on positives.
///
/// # Shapes
///
/// - `logits`, `target`: `[b, c, h, w]`, target in {0, 1} → scalar `[1]`
pub fn bce_with_logits(logits: Tensor<4>, target: Tensor<4>, pos_weight: Option<f64>) -> Tensor<1> {
    // log(1 + exp(-|x|)) stays finite for any logit.
    let softplus_neg_abs = logits.clone().abs().neg().exp().log1p();
    match pos_weight {
        None => (relu(logits.clone()) - logits * target + softplus_neg_abs).mean(),
        Some(w) => {
            // PyTorch: (1 - y) x + (1 + (w - 1) y) (log(1 + exp(-|x|)) + max(-x, 0)).
            let weight = target.clone().mul_scalar(w - 1.0).add_scalar(1.0);
            let neg_target = target.neg().add_scalar(1.0);
            (neg_target * logits.clone() + weight * (softplus_neg_abs + relu(logits.neg()))).mean()
        }
    }
}

/// Soft Dice loss on logits: `1 - (2 sum(p y) + 1) / (sum(p) + sum(y) + 1)`.
///
/// # Shapes
///
/// - `logits`, `target`: `[b, c, h, w]` → scalar `[1]`
pub fn dice_with_logits(logits: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    let p = sigmoid(logits);
    let inter = (p.clone() * target.clone()).sum();
    let total = p.sum() + target.sum();
    inter
        .mul_scalar(2.0)
        .add_scalar(1.0)
        .div(total.add_scalar(1.0))
        .neg()
        .add_scalar(1.0)
}
