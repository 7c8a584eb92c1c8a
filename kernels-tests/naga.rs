//! Every WGSL file validates with naga, as wgpu would on any backend.

#[test]
fn every_shader_validates() {
    assert!(!unitok::shaders::SHADERS.is_empty());
    for (name, _) in unitok::shaders::SHADERS {
        if let Err(e) = unitok::shaders::validate(name) {
            panic!("{e}");
        }
    }
}

#[test]
fn every_shader_file_is_registered() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let Some(stem) = name.strip_suffix(".wgsl") else {
            continue;
        };
        if stem == "common" {
            continue;
        }
        assert!(
            unitok::shaders::SHADERS.iter().any(|(n, _)| *n == stem),
            "shaders/{name} is not listed in src/shaders.rs"
        );
    }
}
