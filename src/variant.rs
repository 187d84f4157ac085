//! The names of the kernel variants that sit side by side: which matmul and
//! which convolution kernel to run. A leaf module: the device layer reads
//! an override from the environment (`DARKMATTER_MATMUL`) and the kernels
//! choose a default (`default_for` in `kernels::matmul` and
//! `kernels::conv2d`), so both depend on these names and neither on the other.

use crate::named::named_enum;

named_enum! {
    /// The matmul kernels, each a file under `shaders/matmul/`.
    pub enum MatmulVariant("matmul variant") {
        /// One output per invocation: the readable reference and the baseline.
        Naive = "naive",
        /// 64 x 64 workgroup-memory tiles, 4 x 4 outputs per invocation.
        Tiled = "tiled",
        /// Barrier-free 8 x 16 register blocks: the default on GPUs.
        Blocked = "blocked",
        /// Barrier-free 16 x 16 register blocks reading operands packed into
        /// textures: the default on CPU adapters.
        Texture = "texture",
    }
}

named_enum! {
    /// The convolution kernels, side by side under `shaders/conv2d/`.
    pub enum ConvVariant("convolution variant") {
        /// One output (or gradient) element per invocation: the readable
        /// reference and the benches' baseline.
        Direct = "direct",
        /// im2col on the fly inside a barrier-free 8 x 16 register-blocked GEMM.
        ImplicitGemm = "implicit_gemm",
        /// An explicit im2col (or col2im) pass plus the device's default
        /// matmul: the convolution inherits the fastest matrix product
        /// (`texture` on CPU adapters), at the cost of materialising the
        /// patch matrix.
        Im2col = "im2col",
        /// The implicit GEMM of 16 x 16 register blocks reading the input
        /// and the weights packed into textures (the forward and the input
        /// gradient; the weight gradient is `im2col`'s, through the
        /// `texture` matmul).
        Texture = "texture",
        /// `texture` with each subgroup fetching what its lanes read alike
        /// once and sharing it by broadcast: the weights in the forward and
        /// the input gradient, dy in the weight gradient. Only on devices
        /// whose subgroups have exactly 8 invocations (llvmpipe at 256
        /// bits); the same bits as `texture`.
        TextureSubgroup = "texture_subgroup",
    }
}

named_enum! {
    /// One pass of a convolution, for `ConvVariant::default_for`.
    pub enum ConvPass("convolution pass") {
        /// `conv2d`: the output from the input and the weights.
        Forward = "fwd",
        /// `conv2d_backward_input`: dL/dx.
        InputGrad = "dx",
        /// `conv2d_backward_weight`: dL/dw.
        WeightGrad = "dw",
    }
}
