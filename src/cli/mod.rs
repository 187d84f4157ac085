//! The `darkmatter` command line.

mod augment;
mod info;

use clap::{Parser, Subcommand};

/// darkmatter: self-supervised vision training on hand-written WGSL compute shaders.
#[derive(Parser, Debug)]
#[command(name = "darkmatter", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
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
}

/// Runs the command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    let result = match cli
        .command
        .unwrap_or(Command::Info(info::InfoArgs::default()))
    {
        Command::Info(args) => info::run(&args),
        Command::Augment(args) => augment::run(&args),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}
