//! What a no-grad tape saves: the peak buffer memory of one BYOL-shaped
//! forward and backward, with the EMA target's forward recorded on the
//! step's own tape (every activation and saved tensor kept until the tape
//! drops) and on a `Tape::no_grad` tape dropped as soon as its output has
//! been read (what `objectives::Byol` does).
//!
//!     cargo run --release --example no_grad_memory              # batch 256, 28 x 28 grey
//!     cargo run --release --example no_grad_memory -- 64

use darkmatter::nn::{ConvNet, Init, Module, Projector};
use darkmatter::{Gpu, Result, Tape, Tensor};

/// Encoder and projector, as BYOL's online network and target have them.
struct Branch {
    encoder: ConvNet,
    projector: Projector,
}

impl Branch {
    fn new(gpu: &Gpu, seed: u64) -> Result<Branch> {
        Ok(Branch {
            encoder: ConvNet::new(gpu, 1, &mut Init::new(seed))?,
            projector: Projector::new(gpu, &[128, 512, 128], &mut Init::new(seed + 1))?,
        })
    }

    fn forward(&mut self, tape: &mut Tape, x: &Tensor) -> Result<darkmatter::Var> {
        let x = tape.constant(x)?;
        let h = self.encoder.forward(tape, x, true)?;
        self.projector.forward(tape, h, true)
    }
}

/// Peak live bytes of the pool over one online forward, the target's
/// forward and the online backward.
fn peak(gpu: &Gpu, no_grad_target: bool, batch: usize) -> Result<u64> {
    let mut online = Branch::new(gpu, 0)?;
    let mut target = Branch::new(gpu, 0)?;
    let x = Tensor::from_slice(gpu, &vec![0.5; batch * 28 * 28], &[batch, 1, 28, 28])?;
    gpu.sync()?;
    gpu.reset_peak();
    let mut tape = Tape::new(gpu);
    let z = online.forward(&mut tape, &x)?;
    let t = if no_grad_target {
        let mut side = Tape::no_grad(gpu);
        let t = target.forward(&mut side, &x)?;
        side.value(t)?.clone()
    } else {
        let t = target.forward(&mut tape, &x)?;
        tape.value(t)?.clone()
    };
    let t = tape.constant(&t)?;
    let stopped = tape.detach(t)?;
    let diff = tape.sub(z, stopped)?;
    let sq = tape.square(diff)?;
    let loss = tape.mean_all(sq)?;
    tape.backward(loss)?;
    gpu.sync()?;
    Ok(gpu.pool_stats().peak_live_bytes)
}

fn main() -> Result<()> {
    let batch: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    let gpu = Gpu::new()?;
    println!(
        "device: {}; batch {batch} of 28 x 28 grey images",
        gpu.describe()
    );
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let recorded = peak(&gpu, false, batch)?;
    let no_grad = peak(&gpu, true, batch)?;
    println!(
        "target forward on the step's tape: peak {:8.1} MiB",
        mib(recorded)
    );
    println!(
        "target forward on a no-grad tape:  peak {:8.1} MiB",
        mib(no_grad)
    );
    println!(
        "saved: {:.1} MiB ({:.0}%)",
        mib(recorded - no_grad),
        100.0 * (recorded - no_grad) as f64 / recorded as f64
    );
    Ok(())
}
