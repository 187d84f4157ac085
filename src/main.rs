use clap::Parser;

fn main() {
    let cli = darkmatter::cli::Cli::parse();
    std::process::exit(darkmatter::cli::run(cli));
}
