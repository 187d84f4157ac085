//! Every kernel as each backend's compiler will see it: every WGSL file,
//! every entry point, with every combination of override constants the
//! host code builds, specialised and translated by naga to SPIR-V (Vulkan),
//! MSL (Metal) and HLSL (DX12). A shader that only one backend rejects is
//! caught here, before a user on that platform finds it; Metal and DX12
//! cannot run on the machines that test darkmatter.

use std::path::{Path, PathBuf};

use darkmatter::kernels::conv2d::texture_subgroup_source;
use naga::back::{PipelineConstants, hlsl, msl, spv};
use naga::valid::{Capabilities, ValidationFlags, Validator};

/// shaders/conv2d/texture_subgroup.wgsl is a part of the module the host
/// builds from texture.wgsl, not a module alone.
fn is_subgroup_part(path: &Path) -> bool {
    path.ends_with("conv2d/texture_subgroup.wgsl")
}

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

/// The values the host code gives each override constant (`bool`s take
/// both): elementwise op codes, augmentation channels and workgroup sizes,
/// batch-norm channel counts and plane sizes as layers have them, the
/// texture convolution's alignment and channel blocks per lane.
fn values(name: &str, is_bool: bool) -> Vec<f64> {
    if is_bool {
        return vec![0.0, 1.0];
    }
    match name {
        "OP" => (0..=7).map(f64::from).collect(),
        "CHANNELS" => vec![1.0, 3.0],
        "WG" => vec![16.0, 64.0],
        "C" => vec![1.0, 32.0, 512.0],
        "L" => vec![1.0, 49.0, 784.0],
        "BLOCK_ALIGN" => vec![1.0, 8.0],
        "BLOCKS" => vec![1.0, 2.0, 4.0],
        other => panic!("override {other}: add the values the host code gives it to this test"),
    }
}

/// Every assignment of `values` to the overrides.
fn combinations(overrides: &[(String, Vec<f64>)]) -> Vec<PipelineConstants> {
    let mut all = vec![PipelineConstants::default()];
    for (name, vals) in overrides {
        all = all
            .into_iter()
            .flat_map(|c| {
                vals.iter().map(move |&v| {
                    let mut c = c.clone();
                    c.insert(name.clone(), v);
                    c
                })
            })
            .collect();
    }
    all
}

#[test]
fn every_kernel_translates_to_spirv_msl_and_hlsl() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files = Vec::new();
    wgsl_files(&root, &mut files);
    let mut failures = Vec::new();
    let mut translated = 0;
    for path in &files {
        let rel = path.strip_prefix(&root).unwrap().display().to_string();
        let subgroup = is_subgroup_part(path);
        let source = if subgroup {
            // Not a module alone: texture.wgsl with its panel replaced.
            texture_subgroup_source().to_string()
        } else {
            std::fs::read_to_string(path).unwrap()
        };
        let module = naga::front::wgsl::parse_str(&source).expect("the shader parses");
        let info = Validator::new(ValidationFlags::all(), Capabilities::all())
            .validate(&module)
            .expect("the shader validates");
        let overrides: Vec<(String, Vec<f64>)> = module
            .overrides
            .iter()
            .map(|(_, o)| {
                let name = o.name.clone().expect("overrides are named");
                let is_bool = matches!(
                    module.types[o.ty].inner,
                    naga::TypeInner::Scalar(s) if s.kind == naga::ScalarKind::Bool
                );
                let v = values(&name, is_bool);
                (name, v)
            })
            .collect();
        for ep in &module.entry_points {
            for constants in combinations(&overrides) {
                let what = format!("{rel} {} {constants:?}", ep.name);
                let entry = (ep.stage, ep.name.clone());
                let (m, i) = match naga::back::pipeline_constants::process_overrides(
                    &module,
                    &info,
                    Some((entry.0, &entry.1)),
                    &constants,
                ) {
                    Ok(x) => x,
                    Err(e) => {
                        failures.push(format!("{what}: overrides: {e}"));
                        continue;
                    }
                };
                let spv_pipeline = spv::PipelineOptions {
                    shader_stage: entry.0,
                    entry_point: entry.1.clone(),
                };
                if let Err(e) =
                    spv::write_vec(&m, &i, &spv::Options::default(), Some(&spv_pipeline))
                {
                    failures.push(format!("{what}: SPIR-V: {e}"));
                }
                let msl_pipeline = msl::PipelineOptions {
                    entry_point: Some(entry.clone()),
                    ..Default::default()
                };
                // Subgroup operations need MSL 2.1 and HLSL shader model 6.
                let msl_options = msl::Options {
                    lang_version: if subgroup {
                        (2, 1)
                    } else {
                        msl::Options::default().lang_version
                    },
                    ..Default::default()
                };
                if let Err(e) = msl::write_string(&m, &i, &msl_options, &msl_pipeline) {
                    failures.push(format!("{what}: MSL: {e}"));
                }
                let hlsl_pipeline = hlsl::PipelineOptions {
                    entry_point: Some(entry.clone()),
                };
                let options = hlsl::Options {
                    shader_model: if subgroup {
                        hlsl::ShaderModel::V6_0
                    } else {
                        hlsl::Options::default().shader_model
                    },
                    ..Default::default()
                };
                let mut out = String::new();
                let mut writer = hlsl::Writer::new(&mut out, &options, &hlsl_pipeline);
                if let Err(e) = writer.write(&m, &i, None) {
                    failures.push(format!("{what}: HLSL: {e}"));
                }
                translated += 1;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        translated > 100,
        "only {translated} specialisations translated"
    );
}
