//! darkmatter trains self-supervised vision encoders on hand-written WGSL
//! compute shaders, through wgpu: Vulkan, Metal, DX12, GL, and CPUs through
//! Mesa's lavapipe.
//!
//! The ground floor is [`Gpu`] (device, pipeline cache, buffer pool, one
//! submit per step) and [`Tensor`] (a pooled `wgpu::Buffer` with a shape).
//! [`kernels`] holds the host side of every shader family; [`Tape`] records
//! operations and walks them backward.
//!
//! ```no_run
//! use darkmatter::{Gpu, Tape, Tensor};
//! # fn main() -> darkmatter::Result<()> {
//! let gpu = Gpu::new()?;
//! let w = Tensor::from_slice(&gpu, &[1.0, 2.0, 3.0, 4.0], &[2, 2])?;
//! let x = Tensor::from_slice(&gpu, &[0.5, -1.0], &[1, 2])?;
//! let mut tape = Tape::new(&gpu);
//! let (w, x) = (tape.param(&w)?, tape.constant(&x)?);
//! let y = tape.matmul(x, w, false, false)?;
//! let loss = tape.sum_all(y)?;
//! let grads = tape.backward(loss)?;
//! println!("dL/dw = {:?}", grads.get(w).unwrap().to_vec()?);
//! # Ok(())
//! # }
//! ```

#[doc(hidden)]
pub mod abi;
pub mod augment;
pub mod autograd;
pub mod cli;
pub mod data;
pub mod dist;
pub mod error;
pub mod eval;
pub mod files;
pub mod gpu;
pub mod kernels;
pub mod loss;
mod named;
pub mod nn;
pub mod objectives;
pub mod optim;
pub mod tensor;
pub mod train;
pub mod variant;

pub use autograd::{BatchNormState, CustomOp, Gradients, Op, Tape, Var};
pub use error::{Error, Result};
pub use gpu::{DeviceClass, Gpu, GpuOptions, PoolStats, Readback};
pub use tensor::Tensor;
pub use variant::{ConvPass, ConvVariant, MatmulVariant};
