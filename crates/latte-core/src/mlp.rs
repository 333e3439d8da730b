//! The feed-forward part of a block: `W2 gelu_tanh(W1 x + b1) + b2`.

use crate::block::{task_input, Ctx};
use crate::parallel::{Epilogue, RowTask};
use crate::tensor::{quantize_input, Matrix};

/// The GELU MLP of one block. Matrices are `rows = outputs`: `W1` is
/// `F x D`, `W2` is `D x F`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mlp<'a> {
    pub(crate) up: Matrix<'a>,
    pub(crate) up_bias: &'a [f32],
    pub(crate) down: Matrix<'a>,
    pub(crate) down_bias: &'a [f32],
}

impl<'a> Mlp<'a> {
    pub(crate) const EMPTY: Mlp<'static> = Mlp {
        up: Matrix::EMPTY,
        up_bias: &[],
        down: Matrix::EMPTY,
        down_bias: &[],
    };

    /// `W1`, `W2`.
    pub(crate) fn matrices(&self) -> [&Matrix<'a>; 2] {
        [&self.up, &self.down]
    }

    /// The MLP over a chunk: `x` (`T x D`) to `out` (`T x D`), through
    /// `hidden` (`T x F`) and `quant` (the quantized inputs of `T` tokens).
    /// The GELU and the biases are the products' epilogues, so they run on
    /// the thread that computed each value.
    pub(crate) fn run_chunk(
        &self,
        cx: &Ctx<'_, 'a>,
        x: &[f32],
        hidden: &mut [f32],
        quant: &mut [f32],
        out: &mut [f32],
    ) {
        let k = cx.kernels;
        let n = x.len() / self.up.cols().max(1);
        let hidden = &mut hidden[..n * self.up.rows()];
        let xq = quantize_input(k, self.up.data().is_quantized(), x, quant);
        let task = RowTask::new(k, self.up, task_input(&self.up, x, xq), n)
            .with_epilogue(Epilogue::BiasGelu(self.up_bias));
        cx.par.run(&task, hidden);
        let xq = quantize_input(k, self.down.data().is_quantized(), hidden, quant);
        let task = RowTask::new(k, self.down, task_input(&self.down, hidden, xq), n)
            .with_epilogue(Epilogue::Bias(self.down_bias));
        cx.par.run(&task, out);
    }
}
