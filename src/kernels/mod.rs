//! The host side of every WGSL kernel family: parameter structs, bindings,
//! workgroup maths and variant enums. One file per family under `shaders/`.
//!
//! These functions work on plain [`Tensor`](crate::Tensor)s and record no
//! gradient; the [`Tape`](crate::Tape) wraps them for autodiff.

pub mod conv2d;
pub mod conv_transpose;
pub mod cross_entropy;
pub mod elementwise;
pub mod eval;
pub mod matmul;
pub mod norm;
pub mod pool;
pub mod reduce;
pub mod transpose;

pub use conv2d::{ConvPass, ConvVariant};
pub use elementwise::{BinaryOp, UnaryOp};
pub use matmul::MatmulVariant;
pub mod loss_barlow;
pub mod loss_cosine;
pub(crate) mod loss_gram;
pub mod loss_infonce;
pub mod loss_masked;
pub mod loss_vicreg;
