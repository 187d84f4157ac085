//! Every WGSL file under shaders/ parses and validates with naga, with every
//! capability a device might lack turned off except what the file declares.

use std::path::{Path, PathBuf};

fn wgsl_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("shaders/ is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            wgsl_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "wgsl") {
            out.push(path);
        }
    }
}

#[test]
fn every_shader_validates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files = Vec::new();
    wgsl_files(&root, &mut files);
    assert!(
        files.len() >= 6,
        "expected the shader tree, found {files:?}"
    );
    let mut failures = Vec::new();
    for path in &files {
        let part = std::fs::read_to_string(path).expect("shader is readable");
        // texture_subgroup.wgsl replaces texture.wgsl's panel: the module is
        // the host's composition, and it declares subgroup operations.
        let subgroup = path.ends_with("conv2d/texture_subgroup.wgsl");
        let source = if subgroup {
            darkmatter::kernels::conv2d::texture_subgroup_source().to_string()
        } else {
            part.clone()
        };
        let module = match naga::front::wgsl::parse_str(&source) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{}: {}", path.display(), e.emit_to_string(&source)));
                continue;
            }
        };
        let capabilities = if subgroup {
            naga::valid::Capabilities::SUBGROUP
        } else {
            naga::valid::Capabilities::default()
        };
        let mut validator =
            naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities);
        if let Err(e) = validator.validate(&module) {
            failures.push(format!("{}: {}", path.display(), e.emit_to_string(&source)));
        }
        let first = part.lines().next().unwrap_or("");
        if !first.starts_with("//") {
            failures.push(format!(
                "{}: must start with a comment saying what it does",
                path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
