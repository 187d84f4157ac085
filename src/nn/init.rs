//! Seeded parameter initialisation with PyTorch's default distributions.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::tensor::Tensor;

/// A counter-based generator (SplitMix64): the same seed gives the same
/// parameters on every machine. Modules draw from it in construction order.
pub struct Init {
    state: u64,
}

impl Init {
    pub fn new(seed: u64) -> Init {
        Init {
            state: seed ^ 0x6A09_E667_F3BC_C908,
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A tensor of `shape` drawn from U(-bound, bound). The size is checked
    /// against the device's limits before anything is allocated.
    pub fn uniform(&mut self, gpu: &Gpu, shape: &[usize], bound: f32) -> Result<Tensor> {
        let n = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .filter(|&n| n <= usize::MAX / 4)
            .ok_or_else(|| Error::shape("Init::uniform", &[shape], "element count overflows"))?;
        gpu.check_binding(|| format!("a parameter of shape {shape:?}"), n as u64 * 4)?;
        let data: Vec<f32> = (0..n)
            .map(|_| {
                let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
                (2.0 * u - 1.0) * bound
            })
            .collect();
        Tensor::from_slice(gpu, &data, shape)
    }

    /// PyTorch's default for conv and linear weights (and their biases):
    /// kaiming_uniform with a = sqrt(5), whose bound
    /// sqrt(6 / ((1 + a²) fan_in)) is 1 / sqrt(fan_in); fan_in is the
    /// product of every dimension but the first.
    pub fn kaiming_uniform(&mut self, gpu: &Gpu, shape: &[usize]) -> Result<Tensor> {
        let fan_in: usize = shape[1..].iter().product();
        self.uniform(gpu, shape, 1.0 / (fan_in.max(1) as f32).sqrt())
    }
}
