//! The WGSL kernel library: every file in `shaders/`, compiled into the binary.
//!
//! Each kernel file is prefixed with `shaders/common.wgsl` (shared helpers such as the
//! folded-grid workgroup index and the erf/tanh approximations), so the helpers exist once.

use crate::error::{Error, Result};

pub const PRELUDE: &str = include_str!("../shaders/common.wgsl");

/// (name, source) of every kernel family.
pub const SHADERS: &[(&str, &str)] = &[
    ("elementwise", include_str!("../shaders/elementwise.wgsl")),
    ("cast_f16", include_str!("../shaders/cast_f16.wgsl")),
    ("optim", include_str!("../shaders/optim.wgsl")),
    ("loss", include_str!("../shaders/loss.wgsl")),
    ("peak", include_str!("../shaders/peak.wgsl")),
    ("norm", include_str!("../shaders/norm.wgsl")),
    ("norm_tex", include_str!("../shaders/norm_tex.wgsl")),
    (
        "norm_backward",
        concat!(
            include_str!("../shaders/norm.wgsl"),
            include_str!("../shaders/norm_backward.wgsl")
        ),
    ),
    ("reduce", include_str!("../shaders/reduce.wgsl")),
    ("gather", include_str!("../shaders/gather.wgsl")),
    ("mcq", include_str!("../shaders/mcq.wgsl")),
    ("mcq_tex", include_str!("../shaders/mcq_tex.wgsl")),
    ("conv2d", include_str!("../shaders/conv2d.wgsl")),
    ("conv2d_sg", include_str!("../shaders/conv2d_sg.wgsl")),
    (
        "conv2d_backward",
        include_str!("../shaders/conv2d_backward.wgsl"),
    ),
    (
        "conv2d_backward_sg",
        concat!(
            include_str!("../shaders/conv2d_backward.wgsl"),
            include_str!("../shaders/conv2d_backward_sg.wgsl")
        ),
    ),
    (
        "conv_tex",
        concat!(
            include_str!("../shaders/panel.wgsl"),
            include_str!("../shaders/conv_tex.wgsl")
        ),
    ),
    ("pool", include_str!("../shaders/pool.wgsl")),
    ("matmul", include_str!("../shaders/matmul.wgsl")),
    (
        "matmul_sg",
        concat!(
            include_str!("../shaders/matmul.wgsl"),
            include_str!("../shaders/matmul_sg.wgsl")
        ),
    ),
    ("texture_pack", include_str!("../shaders/texture_pack.wgsl")),
    (
        "matmul_tex",
        concat!(
            include_str!("../shaders/panel.wgsl"),
            include_str!("../shaders/matmul_tex.wgsl")
        ),
    ),
    (
        "attention",
        concat!(
            include_str!("../shaders/attention.wgsl"),
            include_str!("../shaders/attention_out_buffer.wgsl")
        ),
    ),
    (
        "attention_sg",
        concat!(
            include_str!("../shaders/attention_kv_buffer.wgsl"),
            include_str!("../shaders/attention_out_buffer.wgsl"),
            include_str!("../shaders/attention_sg.wgsl")
        ),
    ),
    (
        "attention_tex",
        concat!(
            include_str!("../shaders/attention_kv_texture.wgsl"),
            include_str!("../shaders/attention_sg.wgsl")
        ),
    ),
    (
        "attention_backward",
        include_str!("../shaders/attention_backward.wgsl"),
    ),
    ("softmax", include_str!("../shaders/softmax.wgsl")),
    ("backward_mm", include_str!("../shaders/backward_mm.wgsl")),
];

/// Full source of a shader (prelude + file).
pub fn source(name: &str) -> Option<String> {
    SHADERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| with_prelude(s))
}

/// A module's text behind the shared prelude. Directives (`enable f16;`) must precede every
/// declaration: they are hoisted above the prelude.
pub fn with_prelude(module: &str) -> String {
    let (directives, body): (Vec<&str>, Vec<&str>) = module
        .lines()
        .partition(|l| l.trim_start().starts_with("enable "));
    format!("{}\n{PRELUDE}\n{}", directives.join("\n"), body.join("\n"))
}

/// Parse and validate a shader with naga, as wgpu would; the error names the shader.
pub fn validate(name: &str) -> Result<naga::Module> {
    let src = source(name).ok_or_else(|| Error::Invalid(format!("unknown shader {name:?}")))?;
    let module = naga::front::wgsl::parse_str(&src)
        .map_err(|e| Error::Gpu(format!("shader {name}: {}", e.emit_to_string(&src))))?;
    let mut v = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    );
    v.validate(&module)
        .map_err(|e| Error::Gpu(format!("shader {name}: {}", e.emit_to_string(&src))))?;
    Ok(module)
}
