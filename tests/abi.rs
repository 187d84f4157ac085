//! The host/shader ABI: every WGSL uniform struct against its Rust
//! `#[repr(C)]` twin (registered in `darkmatter::abi`), member by member —
//! name, byte offset and byte size as naga lays the WGSL struct out. A
//! reordered, renamed, resized or missing field would otherwise make a
//! kernel silently read another field's bytes, or zeros.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use darkmatter::abi::{Twin, twins};

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

/// (name, offset, size) of each member of a struct.
type Layout = Vec<(String, usize, usize)>;

/// The name and layout of each uniform struct in `source`.
fn uniform_layouts(source: &str) -> Vec<(String, Layout)> {
    let module = naga::front::wgsl::parse_str(source).expect("the shader parses");
    let mut layouter = naga::proc::Layouter::default();
    layouter
        .update(module.to_ctx())
        .expect("the shader's types lay out");
    let mut out = Vec::new();
    for (_, var) in module.global_variables.iter() {
        if var.space != naga::AddressSpace::Uniform {
            continue;
        }
        let ty = &module.types[var.ty];
        let naga::TypeInner::Struct { members, .. } = &ty.inner else {
            panic!("uniform {:?} is not a struct", var.name);
        };
        let fields = members
            .iter()
            .map(|m| {
                (
                    m.name.clone().unwrap_or_default(),
                    m.offset as usize,
                    layouter[m.ty].size as usize,
                )
            })
            .collect();
        out.push((ty.name.clone().unwrap_or_default(), fields));
    }
    out
}

#[test]
fn every_uniform_struct_matches_its_rust_twin() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files = Vec::new();
    wgsl_files(&root, &mut files);
    let registered: BTreeMap<&str, Twin> = twins().into_iter().map(|t| (t.shader, t)).collect();
    let mut failures = Vec::new();
    let mut checked = 0;
    for path in &files {
        let rel = path
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        // texture_subgroup.wgsl is a part of the module the host builds
        // from texture.wgsl: check that module.
        let source = if rel == "conv2d/texture_subgroup.wgsl" {
            darkmatter::kernels::conv2d::texture_subgroup_source().to_string()
        } else {
            std::fs::read_to_string(path).unwrap()
        };
        let layouts = uniform_layouts(&source);
        if layouts.is_empty() {
            continue;
        }
        let Some(twin) = registered.get(rel.as_str()) else {
            failures.push(format!(
                "{rel}: binds a uniform but has no Rust twin in darkmatter::abi::twins()"
            ));
            continue;
        };
        assert_eq!(layouts.len(), 1, "{rel}: one uniform struct per shader");
        let (name, wgsl) = &layouts[0];
        let rust: Layout = twin
            .fields
            .iter()
            .map(|f| (f.name.to_string(), f.offset, f.size))
            .collect();
        if &rust != wgsl {
            failures.push(format!(
                "{rel}: WGSL struct {name} and {} differ\n  WGSL: {wgsl:?}\n  Rust: {rust:?}",
                twin.rust
            ));
        }
        checked += 1;
    }
    for shader in registered.keys() {
        if !root.join(shader).is_file() {
            failures.push(format!(
                "darkmatter::abi names {shader}, which does not exist"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 31, "only {checked} shaders checked");
}

/// The check itself can fail: a swapped pair of fields is caught.
#[test]
fn a_reordered_field_is_caught() {
    let wgsl = "struct Params { n: u32, lr: f32 }\n@group(0) @binding(0) var<uniform> p: Params;\n@compute @workgroup_size(1) fn main() { _ = p.n; }";
    let layout = &uniform_layouts(wgsl)[0].1;
    let swapped = vec![("lr".to_string(), 0, 4), ("n".to_string(), 4, 4)];
    assert_ne!(layout, &swapped);
    assert_eq!(
        layout,
        &vec![("n".to_string(), 0, 4), ("lr".to_string(), 4, 4)]
    );
}
