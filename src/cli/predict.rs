//! `darkmatter predict`: what a video predictor expects to happen next.
//!
//! Rolls a trained `pixel` or `jepa` checkpoint out from the first two
//! frames of a test clip and writes an animated GIF (the true clip on the
//! left, the prediction on the right, a red border while frames are
//! predicted), and a plot of the surprise over time of the clip beside its
//! impossible twin (`--violation`).

use std::path::PathBuf;

use clap::Args;
use image::codecs::gif::{GifEncoder, Repeat};
use image::{Delay, Frame, Rgba, RgbaImage};

use crate::autograd::Tape;
use crate::data::{Clip, Violation, open_video};
use crate::objectives::CONTEXT_FRAMES;
use crate::train::{checkpoint, plots, video_eval};
use crate::{Error, Gpu, Result};

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// A checkpoint of a video run (a file or its run directory).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The test clip to roll out.
    #[arg(long, default_value_t = 0)]
    pub clip: usize,
    /// The animated rollout.
    #[arg(long, default_value = "rollout.gif")]
    pub out: PathBuf,
    /// The surprise plot of the clip and its impossible twin.
    #[arg(long, default_value = "surprise.png")]
    pub surprise: PathBuf,
    /// What the impossible twin does: teleport, vanish, appear, identity
    /// or reverse.
    #[arg(long, default_value = "teleport")]
    pub violation: String,
    /// Pixels per frame pixel in the GIF.
    #[arg(long, default_value_t = 6)]
    pub zoom: u32,
}

/// One GIF frame: truth | prediction, each `side * zoom` square; a red
/// border marks predicted frames.
fn panel(truth: &[u8], predicted: Option<&[f32]>, side: usize, zoom: u32) -> RgbaImage {
    let s = side as u32 * zoom;
    let gap = 2 * zoom;
    RgbaImage::from_fn(2 * s + 3 * gap, s + 2 * gap, |x, y| {
        let inside = |x0: u32| x >= x0 && x < x0 + s && y >= gap && y < gap + s;
        let at = |x0: u32| ((y - gap) / zoom) as usize * side + ((x - x0) / zoom) as usize;
        if inside(gap) {
            let v = truth[at(gap)];
            return Rgba([v, v, v, 255]);
        }
        if inside(2 * gap + s) {
            let v = match predicted {
                Some(p) => (p[at(2 * gap + s)].clamp(0.0, 1.0) * 255.0).round() as u8,
                None => truth[at(2 * gap + s)],
            };
            return Rgba([v, v, v, 255]);
        }
        if predicted.is_some() && x >= gap + s + gap / 2 {
            Rgba([200, 40, 40, 255])
        } else {
            Rgba([48, 48, 48, 255])
        }
    })
}

pub fn run(args: &PredictArgs) -> Result<()> {
    let violation: Violation = args.violation.parse()?;
    if !(1..=32).contains(&args.zoom) {
        return Err(Error::invalid(
            "predict",
            format!("--zoom {} is outside 1..=32", args.zoom),
        ));
    }
    let config = checkpoint::read_config(&args.checkpoint)?;
    if !config.method().is_video() {
        return Err(Error::invalid(
            "predict",
            format!(
                "{} holds a {} run: predict rolls out video methods (pixel, jepa)",
                args.checkpoint.display(),
                config.method()
            ),
        ));
    }
    let [_, test] = open_video(&config.data, config.seed)?;
    if args.clip >= test.len() {
        return Err(Error::invalid(
            "predict",
            format!(
                "--clip {} is beyond the {} test clips",
                args.clip,
                test.len()
            ),
        ));
    }
    let gpu = Gpu::new()?;
    let mut objective = checkpoint::load(&gpu, &args.checkpoint)?.objective;
    let c = *test.config();
    let side = c.size;
    let fl = side * side;
    let clip = test.clip(args.clip);
    let steps = c.frames - CONTEXT_FRAMES;
    let a = video_eval::frame_batch(&gpu, &[&clip], 0, side)?;
    let b = video_eval::frame_batch(&gpu, &[&clip], 1, side)?;
    let mut tape = Tape::no_grad(&gpu);
    let rolled = objective
        .rollout(&mut tape, [&a, &b], steps)?
        .ok_or_else(|| Error::invalid("predict", "this method does not predict frames"))?;
    let mut predicted = Vec::with_capacity(steps);
    for v in rolled {
        predicted.push(tape.value(v)?.to_vec()?);
    }
    drop(tape);

    let io = |path: &PathBuf, e: &dyn std::fmt::Display| Error::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let file = std::fs::File::create(&args.out).map_err(|e| io(&args.out, &e))?;
    let mut gif = GifEncoder::new(std::io::BufWriter::new(file));
    gif.set_repeat(Repeat::Infinite)
        .map_err(|e| io(&args.out, &e))?;
    for t in 0..c.frames {
        let truth = &clip.pixels[t * fl..(t + 1) * fl];
        let pred = t
            .checked_sub(CONTEXT_FRAMES)
            .map(|k| predicted[k].as_slice());
        let frame = Frame::from_parts(
            panel(truth, pred, side, args.zoom),
            0,
            0,
            Delay::from_numer_denom_ms(400, 1),
        );
        gif.encode_frame(frame).map_err(|e| io(&args.out, &e))?;
    }
    drop(gif);

    let twin = test.violated(args.clip, violation);
    let pair: [&Clip; 2] = [&clip, &twin.clip];
    let s = video_eval::surprise(&gpu, objective.as_mut(), &pair, side, &[])?;
    let series: Vec<(&str, Vec<(f64, f64)>)> = [("possible", &s[0]), (violation.name(), &s[1])]
        .into_iter()
        .map(|(name, v)| {
            (
                name,
                v.iter()
                    .enumerate()
                    .map(|(k, &e)| ((k + CONTEXT_FRAMES) as f64, e))
                    .collect(),
            )
        })
        .collect();
    plots::surprise_curves(&args.surprise, &series)?;
    println!(
        "rollout of test clip {} ({} frames from 2) in {}; surprise of the clip and its '{}' twin (from frame {}) in {}",
        args.clip,
        steps,
        args.out.display(),
        violation,
        twin.onset,
        args.surprise.display()
    );
    Ok(())
}
