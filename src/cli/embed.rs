//! `darkmatter embed`: a checkpoint's representations of a dataset, as a
//! NumPy `.npy` file (f32, shape [N, D]) that `numpy.load` reads.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use crate::data::Split;
use crate::train::{self, checkpoint, features};
use crate::{Error, Gpu, Result};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SplitArg {
    Train,
    Test,
}

#[derive(Args, Debug)]
pub struct EmbedArgs {
    /// A checkpoint written by `darkmatter train` (a file or its run directory).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Data to embed (default: the checkpoint's).
    #[arg(long)]
    pub data: Option<String>,
    /// Where to write the representations (.npy).
    #[arg(long)]
    pub out: PathBuf,
    /// Which split.
    #[arg(long, value_enum, default_value_t = SplitArg::Test)]
    pub split: SplitArg,
}

/// Writes `values` (`rows` x `cols`, row-major) in NumPy's format 1.0.
pub fn write_npy(path: &Path, values: &[f32], rows: usize, cols: usize) -> Result<()> {
    let io = |e: std::io::Error| Error::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic (6) + version (2) + length (2) + header + '\n', padded to 64 bytes.
    let total = (10 + header.len() + 1).next_multiple_of(64);
    header.push_str(&" ".repeat(total - 10 - header.len() - 1));
    header.push('\n');
    crate::files::write_with(path, |f| {
        f.write_all(b"\x93NUMPY\x01\x00")?;
        f.write_all(&(header.len() as u16).to_le_bytes())?;
        f.write_all(header.as_bytes())?;
        for v in values {
            f.write_all(&v.to_le_bytes())?;
        }
        Ok(())
    })
    .map_err(io)
}

pub fn run(args: &EmbedArgs) -> Result<()> {
    let gpu = Gpu::new()?;
    let mut loaded = checkpoint::load(&gpu, &args.checkpoint)?;
    let data = args
        .data
        .clone()
        .unwrap_or_else(|| loaded.config.data.clone());
    let split = match args.split {
        SplitArg::Train => Split::Train,
        SplitArg::Test => Split::Test,
    };
    let dataset = train::open_data(&data, split, &loaded.config)?;
    crate::data::check_splits(dataset.as_ref(), dataset.as_ref())?;
    let indices: Vec<usize> = (0..dataset.len()).collect();
    let reps = features::representations(
        &gpu,
        loaded.objective.encoder(),
        &dataset,
        &indices,
        loaded.normalize,
        256,
    )?;
    let (rows, cols) = (reps.shape()[0], reps.shape()[1]);
    write_npy(&args.out, &reps.to_vec()?, rows, cols)?;
    println!(
        "wrote {rows} x {cols} f32 representations of {data} to {}",
        args.out.display()
    );
    Ok(())
}
