//! The host/shader ABI: every WGSL file that binds a uniform struct, with
//! the Rust twin whose bytes the host writes into it. `tests/abi.rs` parses
//! each shader with naga and checks the twin member by member (name,
//! offset, size), and that no shader with a uniform is missing here.

use crate::gpu::{Field, Uniform};
use crate::{augment, kernels as k, optim};

/// One WGSL file (relative to `shaders/`) and the fields of its twin.
#[derive(Clone, Copy, Debug)]
pub struct Twin {
    pub shader: &'static str,
    pub rust: &'static str,
    pub fields: &'static [Field],
}

fn twin<T: Uniform>(shader: &'static str) -> Twin {
    Twin {
        shader,
        rust: std::any::type_name::<T>(),
        fields: T::FIELDS,
    }
}

/// Every shader with a uniform, and its Rust twin.
pub fn twins() -> Vec<Twin> {
    vec![
        twin::<augment::gpu::Params>("augment/augment.wgsl"),
        twin::<k::conv2d::Params>("conv2d/direct.wgsl"),
        twin::<k::conv2d::Params>("conv2d/backward_direct.wgsl"),
        twin::<k::conv2d::Params>("conv2d/implicit_gemm.wgsl"),
        twin::<k::conv2d::Params>("conv2d/backward_gemm.wgsl"),
        twin::<k::conv2d::Params>("conv2d/im2col.wgsl"),
        twin::<k::conv2d::PackParams>("conv2d/pack_weights.wgsl"),
        twin::<k::conv2d::texture::TextureParams>("conv2d/texture.wgsl"),
        twin::<k::conv2d::texture::TextureParams>("conv2d/texture_subgroup.wgsl"),
        twin::<k::elementwise::Params>("elementwise/elementwise.wgsl"),
        twin::<k::eval::Params>("eval/normalize_rows.wgsl"),
        twin::<k::cross_entropy::Params>("loss/cross_entropy.wgsl"),
        twin::<k::loss_barlow::Params>("loss/barlow.wgsl"),
        twin::<k::loss_cosine::Params>("loss/cosine.wgsl"),
        twin::<k::loss_gram::Params>("loss/gram.wgsl"),
        twin::<k::loss_infonce::Params>("loss/infonce.wgsl"),
        twin::<k::loss_masked::Params>("loss/masked_mse.wgsl"),
        twin::<k::loss_vicreg::Params>("loss/vicreg.wgsl"),
        twin::<k::matmul::Params>("matmul/naive.wgsl"),
        twin::<k::matmul::Params>("matmul/tiled.wgsl"),
        twin::<k::matmul::Params>("matmul/blocked.wgsl"),
        twin::<k::matmul::PackParams>("matmul/pack.wgsl"),
        twin::<k::matmul::TextureParams>("matmul/texture.wgsl"),
        twin::<k::norm::BnParams>("norm/batch_norm.wgsl"),
        twin::<k::norm::LnParams>("norm/layer_norm.wgsl"),
        twin::<k::pool::Params>("pool/pool.wgsl"),
        twin::<k::reduce::RowParams>("reduce/rows.wgsl"),
        twin::<k::reduce::AxisParams>("reduce/axis.wgsl"),
        twin::<k::transpose::Params>("transpose/transpose.wgsl"),
        twin::<optim::SgdParams>("optim/sgd.wgsl"),
        twin::<optim::AdamParams>("optim/adamw.wgsl"),
        twin::<optim::LarsParams>("optim/lars.wgsl"),
        twin::<optim::ema::EmaParams>("optim/ema.wgsl"),
    ]
}
