//! The learning-rate schedule of the SSL references: linear warm-up from 0,
//! then a cosine decay to a small fraction of the base rate.

use std::f64::consts::PI;

/// Linear warm-up over `warmup_steps`, then cosine decay from `base` to
/// `base * final_fraction` at `total_steps`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WarmupCosine {
    pub base: f32,
    pub warmup_steps: u64,
    pub total_steps: u64,
    /// VICReg's reference ends at 0.001 of the base rate.
    pub final_fraction: f32,
}

impl WarmupCosine {
    /// The learning rate at `step` (0-based).
    pub fn at(&self, step: u64) -> f32 {
        let base = self.base as f64;
        if step < self.warmup_steps {
            return (base * (step + 1) as f64 / self.warmup_steps as f64) as f32;
        }
        let decay_steps = self.total_steps.saturating_sub(self.warmup_steps).max(1);
        let progress = ((step - self.warmup_steps) as f64 / decay_steps as f64).min(1.0);
        let end = base * self.final_fraction as f64;
        (end + (base - end) * 0.5 * (1.0 + (PI * progress).cos())) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::WarmupCosine;

    #[test]
    fn warms_up_linearly_then_decays_to_the_final_fraction() {
        let s = WarmupCosine {
            base: 1.0,
            warmup_steps: 10,
            total_steps: 110,
            final_fraction: 0.001,
        };
        assert!((s.at(0) - 0.1).abs() < 1e-6);
        assert!((s.at(9) - 1.0).abs() < 1e-6);
        assert!((s.at(10) - 1.0).abs() < 1e-6);
        assert!((s.at(60) - 0.5005).abs() < 1e-4, "{}", s.at(60));
        assert!((s.at(110) - 0.001).abs() < 1e-6);
        assert!((s.at(1000) - 0.001).abs() < 1e-6);
        let mut prev = f32::INFINITY;
        for step in 10..=110 {
            assert!(s.at(step) <= prev);
            prev = s.at(step);
        }
    }
}
