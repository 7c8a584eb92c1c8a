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
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".wgsl") else {
            continue;
        };
        if stem == "common" {
            continue;
        }
        // A kernel family under its own name, or a helper file included in one (panel.wgsl).
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            unitok::shaders::SHADERS
                .iter()
                .any(|(n, src)| *n == stem || src.contains(text.as_str())),
            "shaders/{name} is not listed in src/shaders.rs"
        );
    }
}
