//! The device layer: adapter choice, limits, features, pipelines, buffers, submissions.
//!
//! One `Gpu` owns a wgpu device and everything that must be shared by every graph running on
//! it: the pipeline cache (keyed by kernel variant, never by shape), the buffer pool, and the
//! submission counter that tells the pool when a buffer is no longer in flight.
//!
//! Adapter choice: `UNITOK_BACKEND` (vulkan, metal, dx12, gl, or a comma list) and
//! `UNITOK_ADAPTER` (a case-insensitive substring of the adapter name) narrow the candidates;
//! otherwise discrete > integrated > virtual > CPU, and Vulkan/Metal/DX12 before GL.
//! `UNITOK_REQUIRE_ADAPTER=1` refuses the GL fallback, so CI can never pass on a driver it did
//! not mean to test.
//!
//! `UNITOK_MAX_BINDING_BYTES` (or `Gpu::new_with_max_binding`) lowers the storage-binding size
//! the executor plans with, clamped to the adapter's real limit: tests use it to exercise row
//! chunking of large tensors on small shapes. The device itself keeps its real limits.
//!
//! Texture operands: on CPU adapters (lavapipe) the compute-heavy kernels read their operands
//! from rgba32float storage textures, because there a storage-buffer load costs ~30× a
//! storage-texture load (ARCHITECTURE.md, "Texture operands"). `Caps::texture_operands` says
//! whether kernels may do so; `UNITOK_TEXTURE_OPERANDS=0` turns it off, `=1` turns it on for
//! any adapter that supports the kernels (subgroups of exactly 8 lanes, read-only rgba32float
//! storage textures).

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What kernels may rely on, read from the adapter (never wgpu's conservative defaults).
#[derive(Clone, Debug)]
pub struct Caps {
    pub max_storage_binding: u64,
    pub max_buffer_size: u64,
    pub max_workgroup_storage: u32,
    pub max_invocations: u32,
    pub max_workgroups_per_dim: u32,
    pub max_storage_buffers_per_stage: u32,
    pub min_uniform_offset_alignment: u32,
    pub shader_f16: bool,
    pub subgroups: bool,
    pub subgroup_min: u32,
    pub subgroup_max: u32,
    pub timestamps: bool,
    /// Kernels may read operands through rgba32float storage textures (see the module doc).
    pub texture_operands: bool,
    /// Largest width and height of a 2-D texture.
    pub max_texture_dim: u32,
    /// Shader modules are created without wgpu's injected bounds checks
    /// (`UNITOK_UNCHECKED_SHADERS=1`; see `unchecked_shaders_from_env`).
    pub unchecked_shaders: bool,
}

/// Access of one binding, as the kernel declares it: a storage buffer, or an rgba32float
/// storage texture (`texture_storage_2d<rgba32float, read>` / `<.., write>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    Read,
    ReadWrite,
    TextureRead,
    TextureWrite,
}

/// The one texture format of texture operands.
pub const TEXTURE_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba32Float;

/// A pipeline is identified by its shader, entry point, override constants and binding layout.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PipelineKey {
    shader: &'static str,
    entry: &'static str,
    constants: Vec<(&'static str, u64)>,
    layout: Vec<Access>,
}

pub struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// A buffer from the pool. Give it back with `Gpu::release` so it can be reused once the
/// submissions that use it have completed.
#[derive(Debug)]
pub struct PooledBuffer {
    pub buffer: wgpu::Buffer,
    class: u64,
    usage: wgpu::BufferUsages,
}

impl PooledBuffer {
    pub fn size(&self) -> u64 {
        self.class
    }
}

#[derive(Default)]
struct Pool {
    free: HashMap<(u64, wgpu::BufferUsages), Vec<wgpu::Buffer>>,
    in_flight: Vec<(u64, PooledBuffer)>,
    live_bytes: u64,
    pooled_bytes: u64,
}

/// Bytes held by the device layer: handed out (`live`) and idle in the pool (`pooled`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryStats {
    pub live_bytes: u64,
    pub pooled_bytes: u64,
}

pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    pub caps: Caps,
    pipelines: Mutex<HashMap<PipelineKey, Arc<Pipeline>>>,
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pool: Mutex<Pool>,
    submitted: AtomicU64,
    completed: Arc<AtomicU64>,
    /// Bytes written by `upload` since its last submit-and-wait.
    unflushed_upload: AtomicU64,
    error: Arc<Mutex<Option<String>>>,
    /// Where `new_with_shader_dir` takes modules from instead of the built-in ones.
    shader_dir: Option<std::path::PathBuf>,
}

/// Size classes keep the pool's hit rate high without wasting more than ~1/8 of a buffer.
fn size_class(bytes: u64) -> u64 {
    let b = bytes.max(16);
    if b <= 4096 {
        return b.next_power_of_two();
    }
    let step = (b.next_power_of_two() / 8).max(256);
    b.div_ceil(step) * step
}

/// Backends selected by `UNITOK_BACKEND`, or all.
pub fn backends_from_env() -> Result<wgpu::Backends> {
    let Ok(s) = std::env::var("UNITOK_BACKEND") else {
        return Ok(wgpu::Backends::all());
    };
    let mut b = wgpu::Backends::empty();
    for part in s
        .split(',')
        .map(|p| p.trim().to_ascii_lowercase())
        .filter(|p| !p.is_empty())
    {
        b |= match part.as_str() {
            "vulkan" | "vk" => wgpu::Backends::VULKAN,
            "metal" | "mtl" => wgpu::Backends::METAL,
            "dx12" | "d3d12" => wgpu::Backends::DX12,
            "gl" | "gles" | "opengl" => wgpu::Backends::GL,
            "all" => wgpu::Backends::all(),
            other => {
                return Err(Error::Invalid(format!(
                    "UNITOK_BACKEND={s:?}: unknown backend {other:?} (use vulkan, metal, dx12, gl or all)"
                )))
            }
        };
    }
    Ok(b)
}

fn require_adapter() -> bool {
    matches!(
        std::env::var("UNITOK_REQUIRE_ADAPTER").as_deref(),
        Ok("1") | Ok("true") | Ok("yes")
    )
}

/// Whether `UNITOK_UNCHECKED_SHADERS` (1, true or yes) asks for shader modules without the
/// bounds checks wgpu would otherwise inject (naga's `Restrict`/`ReadZeroSkipWrite` policies on
/// buffer, workgroup and private array accesses). Off by default.
///
/// Safety argument (why our kernels may run without them): every kernel checks its own
/// indices. Each invocation derives its elements from the workgroup id and the shape in its
/// uniform block and returns, masks or clamps when they fall outside the tensor (tile edges,
/// the padding workgroups of a folded grid, rows of out-of-range ids); private and workgroup
/// arrays are indexed by loop counters bounded by constants (override constants the host picks
/// no larger than the array) or by shape limits the host validates before encoding (e.g. mcq's
/// code width d ≤ 32, attention's head dim ≤ 64). The kernel test suite, tile-edge sizes
/// included, passes with the flag on (`UNITOK_UNCHECKED_SHADERS=1 cargo test --release --test
/// kernels`). Loop bounding and integer-division checks stay on (a divide by zero would trap
/// on a CPU adapter).
///
/// Measured on lavapipe (Mesa 22.3.6): no difference, because that driver offers
/// `robustBufferAccess2`, so wgpu already leaves buffer accesses to the driver, which bounds
/// them itself whatever this flag says (benches/RESULTS.md). The flag matters on adapters
/// where wgpu injects buffer checks (no `robustBufferAccess2`; Metal, DX12).
pub fn unchecked_shaders_from_env() -> bool {
    matches!(
        std::env::var("UNITOK_UNCHECKED_SHADERS").as_deref(),
        Ok("1") | Ok("true") | Ok("yes")
    )
}

/// A lower storage-binding size for planning from `UNITOK_MAX_BINDING_BYTES` (bytes), if set.
pub fn max_binding_from_env() -> Result<Option<u64>> {
    match std::env::var("UNITOK_MAX_BINDING_BYTES") {
        Err(_) => Ok(None),
        Ok(s) if s.trim().is_empty() => Ok(None),
        Ok(s) => s.trim().parse::<u64>().map(Some).map_err(|_| {
            Error::Invalid(format!(
                "UNITOK_MAX_BINDING_BYTES={s:?}: expected a byte count"
            ))
        }),
    }
}

/// Whether the texture-operand kernels run here, and whether they are wanted: by default only
/// on CPU adapters, where they pay (see the module doc); `UNITOK_TEXTURE_OPERANDS` overrides.
fn texture_operands(
    adapter: &wgpu::Adapter,
    info: &wgpu::AdapterInfo,
    features: wgpu::Features,
) -> Result<bool> {
    let want = match std::env::var("UNITOK_TEXTURE_OPERANDS") {
        Err(_) => info.device_type == wgpu::DeviceType::Cpu,
        Ok(v) => match v.trim() {
            "0" => false,
            "1" => true,
            other => {
                return Err(Error::Invalid(format!(
                    "UNITOK_TEXTURE_OPERANDS={other:?}: expected 0 or 1"
                )))
            }
        },
    };
    let f = adapter.get_texture_format_features(TEXTURE_FORMAT);
    let supported = features.contains(wgpu::Features::SUBGROUP)
        && info.subgroup_min_size == 8
        && info.subgroup_max_size == 8
        && f.allowed_usages
            .contains(wgpu::TextureUsages::STORAGE_BINDING)
        && f.flags.contains(
            wgpu::TextureFormatFeatureFlags::STORAGE_READ_ONLY
                | wgpu::TextureFormatFeatureFlags::STORAGE_WRITE_ONLY,
        );
    Ok(want && supported)
}

/// The runtime checks of an unchecked module: no injected bounds checks; loop bounding and
/// integer-division checks kept.
fn runtime_checks_unchecked() -> wgpu::ShaderRuntimeChecks {
    let mut c = wgpu::ShaderRuntimeChecks::checked();
    c.bounds_checks = false;
    c
}

fn new_instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    wgpu::Instance::new(desc)
}

/// Every adapter the selected backends expose.
pub fn enumerate_adapters() -> Result<Vec<wgpu::AdapterInfo>> {
    let instance = new_instance(backends_from_env()?);
    Ok(
        pollster::block_on(instance.enumerate_adapters(backends_from_env()?))
            .iter()
            .map(|a| a.get_info())
            .collect(),
    )
}

fn adapter_rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let ty = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    let be = if info.backend == wgpu::Backend::Gl {
        1
    } else {
        0
    };
    (be, ty)
}

impl Gpu {
    /// Pick an adapter (see the module doc) and open a device with the adapter's real limits
    /// and the optional features it has (f16, subgroups, timestamps).
    pub fn new() -> Result<Arc<Gpu>> {
        Self::new_with(unchecked_shaders_from_env())
    }

    /// `new`, taking each shader module from `dir` where that folder holds `<module>.wgsl`
    /// (the module's whole text, without the shared prelude: for the modules that concatenate
    /// several files, see `shaders::SHADERS`), else the built-in one. For kernel work: `unitok
    /// bench --ab-shaders DIR` times a rewritten kernel against the built-in one, alternating
    /// runs in one process.
    pub fn new_with_shader_dir(dir: &std::path::Path) -> Result<Arc<Gpu>> {
        if !dir.is_dir() {
            return Err(Error::Invalid(format!(
                "shader folder {}: not a folder",
                dir.display()
            )));
        }
        let mut gpu = Self::new()?;
        let g = Arc::get_mut(&mut gpu).ok_or_else(|| Error::Gpu("device already shared".into()))?;
        g.shader_dir = Some(dir.to_path_buf());
        Ok(gpu)
    }

    /// The text of module `shader` from `shader_dir`, if it holds one.
    fn shader_from_dir(&self, shader: &str) -> Result<Option<String>> {
        let Some(dir) = &self.shader_dir else {
            return Ok(None);
        };
        let path = dir.join(format!("{shader}.wgsl"));
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::Invalid(format!("shader {}: {e}", path.display())))?;
        Ok(Some(crate::shaders::with_prelude(&text)))
    }

    /// `new`, with the buffer kernels even where texture operands would be taken: tests and
    /// A/B comparisons run both paths on one adapter.
    pub fn new_without_texture_operands() -> Result<Arc<Gpu>> {
        Self::new_narrowed(|caps| caps.texture_operands = false)
    }

    /// `new`, with what kernels may rely on narrowed by `f` before any plan sees it: lower
    /// limits (a smaller `max_texture_dim`, say) or features turned off make tests take the
    /// paths that large shapes take, on small shapes. Raising a limit or enabling a feature the
    /// adapter lacks is an error.
    pub fn new_narrowed(f: impl FnOnce(&mut Caps)) -> Result<Arc<Gpu>> {
        let mut gpu = Self::new()?;
        let g =
            Arc::get_mut(&mut gpu).ok_or_else(|| Error::Gpu("a new device is shared".into()))?;
        let before = g.caps.clone();
        f(&mut g.caps);
        let c = &g.caps;
        let widened = c.max_texture_dim > before.max_texture_dim
            || c.max_storage_binding > before.max_storage_binding
            || c.max_workgroups_per_dim > before.max_workgroups_per_dim
            || (c.texture_operands && !before.texture_operands)
            || (c.subgroups && !before.subgroups)
            || (c.shader_f16 && !before.shader_f16);
        if widened {
            return Err(Error::Invalid(
                "Gpu::new_narrowed may only lower limits and turn features off".into(),
            ));
        }
        Ok(gpu)
    }

    /// `new`, with the storage-binding size the executor plans with lowered to `bytes`
    /// (clamped to the adapter's limit, rounded down to a multiple of 4, at least 256), so
    /// tensors over it are stored and processed as row chunks. For tests of chunking.
    pub fn new_with_max_binding(bytes: u64) -> Result<Arc<Gpu>> {
        Self::open(unchecked_shaders_from_env(), Some(bytes))
    }

    /// `new`, with shader modules created without wgpu's injected bounds checks when
    /// `unchecked_shaders` (see `unchecked_shaders_from_env` for why that is sound here).
    pub fn new_with(unchecked_shaders: bool) -> Result<Arc<Gpu>> {
        Self::open(unchecked_shaders, max_binding_from_env()?)
    }

    fn open(unchecked_shaders: bool, max_binding: Option<u64>) -> Result<Arc<Gpu>> {
        let backends = backends_from_env()?;
        let instance = new_instance(backends);
        let mut adapters = pollster::block_on(instance.enumerate_adapters(backends));
        let all: Vec<String> = adapters.iter().map(|a| describe(&a.get_info())).collect();
        if let Ok(want) = std::env::var("UNITOK_ADAPTER") {
            let w = want.to_ascii_lowercase();
            adapters.retain(|a| a.get_info().name.to_ascii_lowercase().contains(&w));
            if adapters.is_empty() {
                return Err(Error::NoAdapter(format!(
                    "UNITOK_ADAPTER={want:?} matches none of: [{}]",
                    all.join("; ")
                )));
            }
        }
        if require_adapter() {
            adapters.retain(|a| a.get_info().backend != wgpu::Backend::Gl);
        }
        adapters.sort_by_key(|a| adapter_rank(&a.get_info()));
        let Some(adapter) = adapters.into_iter().next() else {
            let hint = "install a Vulkan driver (on Debian/Ubuntu without a GPU: \
                        apt-get install mesa-vulkan-drivers libvulkan1, or run tools/setup.sh)";
            let seen = if all.is_empty() {
                "none found".to_string()
            } else {
                all.join("; ")
            };
            let req = if require_adapter() {
                " (UNITOK_REQUIRE_ADAPTER=1 excludes the GL fallback)"
            } else {
                ""
            };
            return Err(Error::NoAdapter(format!(
                "adapters seen: {seen}{req}; {hint}"
            )));
        };
        Self::from_adapter(adapter, unchecked_shaders, max_binding)
    }

    fn from_adapter(
        adapter: wgpu::Adapter,
        unchecked_shaders: bool,
        max_binding: Option<u64>,
    ) -> Result<Arc<Gpu>> {
        let info = adapter.get_info();
        let have = adapter.features();
        let wanted = wgpu::Features::SHADER_F16
            | wgpu::Features::SUBGROUP
            | wgpu::Features::TIMESTAMP_QUERY
            | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
            | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES;
        let features = have & wanted;
        // The adapter's own limits: wgpu's defaults (128 MiB bindings, 8 storage buffers,
        // 16 KiB workgroup memory) are far below what real hardware and lavapipe offer.
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("unitok"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::Device {
            adapter: describe(&info),
            msg: e.to_string(),
        })?;
        let error = Arc::new(Mutex::new(None::<String>));
        let slot = error.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut s) = slot.lock() {
                s.get_or_insert_with(|| e.to_string());
            }
        }));
        let caps = Caps {
            max_storage_binding: match max_binding {
                Some(b) => (b.min(limits.max_storage_buffer_binding_size) / 4 * 4).max(256),
                None => limits.max_storage_buffer_binding_size,
            },
            max_buffer_size: limits.max_buffer_size,
            max_workgroup_storage: limits.max_compute_workgroup_storage_size,
            max_invocations: limits.max_compute_invocations_per_workgroup,
            max_workgroups_per_dim: limits.max_compute_workgroups_per_dimension,
            max_storage_buffers_per_stage: limits.max_storage_buffers_per_shader_stage,
            min_uniform_offset_alignment: limits.min_uniform_buffer_offset_alignment,
            shader_f16: features.contains(wgpu::Features::SHADER_F16),
            subgroups: features.contains(wgpu::Features::SUBGROUP),
            subgroup_min: info.subgroup_min_size,
            subgroup_max: info.subgroup_max_size,
            timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            texture_operands: texture_operands(&adapter, &info, features)?,
            max_texture_dim: limits.max_texture_dimension_2d,
            unchecked_shaders,
        };
        Ok(Arc::new(Gpu {
            device,
            queue,
            info,
            limits,
            features,
            caps,
            pipelines: Mutex::new(HashMap::new()),
            modules: Mutex::new(HashMap::new()),
            pool: Mutex::new(Pool::default()),
            submitted: AtomicU64::new(0),
            completed: Arc::new(AtomicU64::new(0)),
            unflushed_upload: AtomicU64::new(0),
            shader_dir: None,
            error,
        }))
    }

    pub fn describe(&self) -> String {
        describe(&self.info)
    }

    /// The first wgpu validation or device error since the last check, as a typed error.
    pub fn check(&self, what: &str) -> Result<()> {
        let mut slot = self
            .error
            .lock()
            .map_err(|_| Error::Gpu("error slot poisoned".into()))?;
        match slot.take() {
            Some(e) => Err(Error::Gpu(format!("{what}: {e}"))),
            None => Ok(()),
        }
    }

    /// The compiled pipeline for a kernel variant, created on first use.
    pub fn pipeline(
        &self,
        shader: &'static str,
        entry: &'static str,
        constants: &[(&'static str, f64)],
        layout: &[Access],
    ) -> Result<Arc<Pipeline>> {
        let key = PipelineKey {
            shader,
            entry,
            constants: constants.iter().map(|(k, v)| (*k, v.to_bits())).collect(),
            layout: layout.to_vec(),
        };
        if let Some(p) = self.pipelines.lock().map_err(poisoned)?.get(&key) {
            return Ok(p.clone());
        }
        let module = {
            let mut modules = self.modules.lock().map_err(poisoned)?;
            if !modules.contains_key(shader) {
                let src = match self.shader_from_dir(shader)? {
                    Some(src) => src,
                    None => crate::shaders::source(shader)
                        .ok_or_else(|| Error::Gpu(format!("unknown shader {shader:?}")))?,
                };
                let desc = wgpu::ShaderModuleDescriptor {
                    label: Some(shader),
                    source: wgpu::ShaderSource::Wgsl(src.into()),
                };
                let m = if self.caps.unchecked_shaders {
                    // SAFETY: see `unchecked_shaders_from_env`.
                    unsafe {
                        self.device
                            .create_shader_module_trusted(desc, runtime_checks_unchecked())
                    }
                } else {
                    self.device.create_shader_module(desc)
                };
                modules.insert(shader, m);
            }
            modules[shader].clone()
        };
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        }];
        for (i, a) in layout.iter().enumerate() {
            let texture = |access| wgpu::BindingType::StorageTexture {
                access,
                format: TEXTURE_FORMAT,
                view_dimension: wgpu::TextureViewDimension::D2,
            };
            entries.push(wgpu::BindGroupLayoutEntry {
                binding: i as u32 + 1,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: match a {
                    Access::Read | Access::ReadWrite => wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage {
                            read_only: *a == Access::Read,
                        },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    Access::TextureRead => texture(wgpu::StorageTextureAccess::ReadOnly),
                    Access::TextureWrite => texture(wgpu::StorageTextureAccess::WriteOnly),
                },
                count: None,
            });
        }
        let bgl = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(entry),
                entries: &entries,
            });
        let pl = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(entry),
                bind_group_layouts: &[Some(&bgl)],
                immediate_size: 0,
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: Some(&pl),
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    // Every kernel writes all workgroup memory before reading it.
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        self.check(&format!("creating pipeline {shader}::{entry}"))?;
        let p = Arc::new(Pipeline {
            pipeline,
            layout: bgl,
        });
        self.pipelines
            .lock()
            .map_err(poisoned)?
            .insert(key, p.clone());
        Ok(p)
    }

    /// A buffer of at least `bytes`, reused from the pool when one is idle.
    /// An rgba32float texture for texture operands (`Access::TextureRead/TextureWrite`).
    pub fn texture(&self, width: u32, height: u32) -> Result<wgpu::Texture> {
        let max = self.caps.max_texture_dim;
        if width == 0 || height == 0 || width > max || height > max {
            return Err(Error::Limit {
                op: "texture".into(),
                what: format!("a {width}×{height} texture"),
                need: width.max(height) as u64,
                limit_name: "max_texture_dimension_2d",
                limit: max as u64,
            });
        }
        let t = self.device.create_texture(&wgpu::TextureDescriptor {
            label: Some("texture operand"),
            size: wgpu::Extent3d {
                width,
                height,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: TEXTURE_FORMAT,
            usage: wgpu::TextureUsages::STORAGE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        self.check("creating a texture")?;
        Ok(t)
    }

    pub fn alloc(&self, bytes: u64, usage: wgpu::BufferUsages) -> Result<PooledBuffer> {
        let class = size_class(bytes);
        if class > self.caps.max_buffer_size {
            return Err(Error::Limit {
                op: "alloc".into(),
                what: "a buffer".into(),
                need: bytes,
                limit_name: "max_buffer_size",
                limit: self.caps.max_buffer_size,
            });
        }
        let mut pool = self.pool.lock().map_err(poisoned)?;
        self.reclaim(&mut pool);
        pool.live_bytes += class;
        if let Some(b) = pool.free.get_mut(&(class, usage)).and_then(|v| v.pop()) {
            pool.pooled_bytes -= class;
            return Ok(PooledBuffer {
                buffer: b,
                class,
                usage,
            });
        }
        drop(pool);
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: class,
            usage,
            mapped_at_creation: false,
        });
        Ok(PooledBuffer {
            buffer,
            class,
            usage,
        })
    }

    /// Return a buffer to the pool. It becomes reusable only once every submission up to and
    /// including `last_use` has completed on the device.
    pub fn release(&self, buf: PooledBuffer, last_use: u64) {
        if let Ok(mut pool) = self.pool.lock() {
            pool.live_bytes -= buf.class;
            pool.pooled_bytes += buf.class;
            pool.in_flight.push((last_use, buf));
            self.reclaim(&mut pool);
        }
    }

    fn reclaim(&self, pool: &mut Pool) {
        let done = self.completed.load(Ordering::Acquire);
        let mut i = 0;
        while i < pool.in_flight.len() {
            if pool.in_flight[i].0 <= done {
                let (_, b) = pool.in_flight.swap_remove(i);
                pool.free
                    .entry((b.class, b.usage))
                    .or_default()
                    .push(b.buffer);
            } else {
                i += 1;
            }
        }
    }

    /// Drop every idle pooled buffer (frees device memory).
    pub fn trim_pool(&self) {
        if let Ok(mut pool) = self.pool.lock() {
            self.reclaim(&mut pool);
            let freed: u64 = pool.free.iter().map(|((c, _), v)| c * v.len() as u64).sum();
            pool.pooled_bytes -= freed;
            pool.free.clear();
        }
    }

    pub fn memory(&self) -> MemoryStats {
        match self.pool.lock() {
            Ok(p) => MemoryStats {
                live_bytes: p.live_bytes,
                pooled_bytes: p.pooled_bytes,
            },
            Err(_) => MemoryStats {
                live_bytes: 0,
                pooled_bytes: 0,
            },
        }
    }

    /// Submit command buffers; returns the submission's number for `release` and `wait`.
    pub fn submit(&self, cmds: Vec<wgpu::CommandBuffer>) -> u64 {
        let n = self.submitted.fetch_add(1, Ordering::AcqRel) + 1;
        self.queue.submit(cmds);
        let done = self.completed.clone();
        self.queue.on_submitted_work_done(move || {
            done.fetch_max(n, Ordering::AcqRel);
        });
        n
    }

    /// The number the next `submit` will return; a buffer used only by work encoded now is
    /// safe to release with this value.
    pub fn next_submission(&self) -> u64 {
        self.submitted.load(Ordering::Acquire) + 1
    }

    /// Block until every submission so far has completed.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the device: {e}")))?;
        // Callbacks fire during poll; make sure the counter reflects everything submitted.
        self.completed
            .fetch_max(self.submitted.load(Ordering::Acquire), Ordering::AcqRel);
        self.check("device work")
    }

    /// Write host bytes into a buffer. Large writes go in slices, with a submit-and-wait after
    /// every `UPLOAD_FLUSH` bytes written since the last flush — counted across calls, so
    /// wgpu's staging memory stays bounded whatever the size of one tensor or the number of
    /// tensors (wgpu frees a write's staging buffer only when a poll sees its submission done;
    /// counting per call let the hundreds of sub-128 MiB weights of a large model keep all
    /// their staging alive until the first run).
    pub fn upload(&self, buffer: &wgpu::Buffer, offset: u64, bytes: &[u8]) -> Result<()> {
        const SLICE: usize = 16 << 20;
        const UPLOAD_FLUSH: u64 = 128 << 20;
        for (i, part) in bytes.chunks(SLICE).enumerate() {
            let padded;
            let data = if part.len() % 4 != 0 {
                padded = [part, &[0u8; 3][..4 - part.len() % 4]].concat();
                &padded[..]
            } else {
                part
            };
            self.queue
                .write_buffer(buffer, offset + (i * SLICE) as u64, data);
            let pending = self
                .unflushed_upload
                .fetch_add(data.len() as u64, Ordering::AcqRel)
                + data.len() as u64;
            if pending >= UPLOAD_FLUSH {
                self.unflushed_upload.store(0, Ordering::Release);
                self.submit(vec![]);
                self.wait()?;
            }
        }
        Ok(())
    }

    /// Copy buffers back to the host in one submission. Each entry: (buffer, offset, bytes).
    pub fn download(&self, parts: &[(&wgpu::Buffer, u64, u64)]) -> Result<Vec<Vec<u8>>> {
        let mut enc = self.device.create_command_encoder(&Default::default());
        let mut staging = Vec::new();
        for (buf, off, len) in parts {
            let padded = len.div_ceil(4) * 4;
            let s = self.alloc(
                padded.max(4),
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            )?;
            enc.copy_buffer_to_buffer(buf, *off, &s.buffer, 0, padded);
            staging.push((s, *len));
        }
        let n = self.submit(vec![enc.finish()]);
        for (s, _) in &staging {
            s.buffer.slice(..).map_async(wgpu::MapMode::Read, |_| {});
        }
        self.wait()?;
        let mut out = Vec::new();
        for (s, len) in staging {
            {
                let view = s
                    .buffer
                    .slice(..)
                    .get_mapped_range()
                    .map_err(|e| Error::Gpu(format!("mapping a readback buffer: {e}")))?;
                out.push(view[..len as usize].to_vec());
            }
            s.buffer.unmap();
            self.release(s, n);
        }
        Ok(out)
    }
}

fn poisoned<T>(_: T) -> Error {
    Error::Gpu("a lock of the device layer was poisoned by an earlier panic".into())
}

pub fn describe(info: &wgpu::AdapterInfo) -> String {
    format!(
        "{} ({:?}, {:?}, driver {} {})",
        info.name, info.backend, info.device_type, info.driver, info.driver_info
    )
}
