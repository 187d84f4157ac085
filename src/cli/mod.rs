//! The `darkmatter` command line.

mod augment;
mod embed;
mod eval;
mod info;
mod predict;
pub mod train;

use clap::{Parser, Subcommand};

/// darkmatter: self-supervised vision training on hand-written WGSL compute
/// shaders. Without a subcommand it trains VICReg on the embedded synthetic
/// data (`darkmatter train` with every default).
#[derive(Parser, Debug)]
#[command(name = "darkmatter", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train an encoder self-supervised, evaluating it every epoch.
    Train(Box<train::TrainArgs>),
    /// kNN and linear-probe accuracy and collapse monitors of a checkpoint.
    Eval(eval::EvalArgs),
    /// Write a checkpoint's representations of a dataset as a NumPy file.
    Embed(embed::EmbedArgs),
    /// Print the adapter, backend, driver, limits and features in use.
    ///
    /// The adapter is chosen as for every command: the best device found
    /// (discrete > integrated > virtual > CPU), or the one named by
    /// DARKMATTER_BACKEND (vulkan, metal, dx12, gl) and DARKMATTER_ADAPTER
    /// (a substring of the adapter's name).
    Info(info::InfoArgs),
    /// Write a PNG grid of images and their two augmented views.
    ///
    /// Each row shows an image of the training split, then the two views
    /// the preset makes of it (normalisation undone), upscaled with
    /// nearest-neighbour sampling: what the network will see.
    Augment(augment::AugmentArgs),
    /// Roll a video checkpoint out: an animated GIF of a test clip beside
    /// its prediction, and the surprise over time of the clip and of an
    /// impossible twin.
    Predict(predict::PredictArgs),
}

/// Runs the command line; returns the process exit code: 0, or 2 with a
/// one-line error naming the cause.
pub fn run(cli: Cli) -> i32 {
    let result = match cli.command.unwrap_or(Command::Train(Box::default())) {
        Command::Train(args) => train::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Embed(args) => embed::run(&args),
        Command::Augment(args) => augment::run(&args),
        Command::Info(args) => info::run(&args),
        Command::Predict(args) => predict::run(&args),
    };
    match result {
        Ok(()) => 0,
        Err(crate::Error::Quiet) => 2,
        Err(e) => {
            eprintln!("error: {}", e.to_string().replace('\n', " "));
            2
        }
    }
}
