use clap::Parser;

fn main() {
    // The Vulkan and GL loaders probe for a Wayland display even though
    // darkmatter never presents anything, and libwayland prints an alarming
    // "error: XDG_RUNTIME_DIR is invalid or not set" when the variable is
    // missing (as on servers and in CI). An absolute path silences the probe.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir()) };
    }
    let cli = darkmatter::cli::Cli::parse();
    let code = darkmatter::cli::run(cli);
    darkmatter::dist::finalize();
    std::process::exit(code);
}
