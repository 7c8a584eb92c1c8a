//! The `unitok` command line.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use unitok::bench::{self, Work};
use unitok::{app, device, selfcheck, Gpu, Result};

#[derive(Parser)]
#[command(
    name = "unitok",
    version,
    about = "UniTok visual tokenizer on any GPU wgpu reaches (Vulkan, Metal, DX12; lavapipe on CPU-only machines)"
)]
struct Cli {
    /// Backend(s) to consider: vulkan, metal, dx12, gl, all (same as UNITOK_BACKEND).
    #[arg(long, global = true)]
    backend: Option<String>,
    /// Use the adapter whose name contains this text (same as UNITOK_ADAPTER).
    #[arg(long, global = true)]
    adapter: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List every adapter, then the chosen one with its limits and optional features.
    Info,
    /// Run every kernel family on small inputs and compare with the CPU reference.
    Selfcheck,
    /// Convert an official training checkpoint (torch.save zip) to safetensors with the config
    /// embedded; no Python needed.
    Convert {
        input: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Tokenize images into discrete codes: int64 .npy (B, codebooks, tokens), official layout.
    /// INPUT: image files, folders of images, or one float32 .npy (B, 3, H, W) in [-1, 1].
    Encode {
        #[command(flatten)]
        w: WeightsArg,
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        b: BatchArg,
    },
    /// Decode codes (int64 .npy (B, codebooks, tokens)) to images: float32 .npy (B, 3, H, W) in
    /// [-1, 1] when OUTPUT ends in .npy, a PNG when it ends in .png (one image), else a folder of PNGs.
    Decode {
        #[command(flatten)]
        w: WeightsArg,
        codes: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        b: BatchArg,
    },
    /// Encode and decode images; writes original and reconstruction side by side as PNG and
    /// prints the PSNR. OUTPUT: a .png for one image, else a folder.
    Reconstruct {
        #[command(flatten)]
        w: WeightsArg,
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        b: BatchArg,
    },
    /// CLIP image embeddings (L2-normalised, float32 .npy (B, embed_dim)).
    EmbedImage {
        #[command(flatten)]
        w: WeightsArg,
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        b: BatchArg,
    },
    /// CLIP text embeddings (L2-normalised, float32 .npy (B, embed_dim)), one row per --text.
    EmbedText {
        #[command(flatten)]
        w: WeightsArg,
        #[arg(long = "text", required = true)]
        texts: Vec<String>,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Zero-shot classification: prompts "a photo of a {label}.", prints the top-k labels per
    /// image with probabilities.
    ZeroShot {
        #[command(flatten)]
        w: WeightsArg,
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Comma-separated labels.
        #[arg(long, value_delimiter = ',', required = true)]
        labels: Vec<String>,
        #[arg(long, default_value_t = 5)]
        top_k: usize,
        #[command(flatten)]
        b: BatchArg,
    },
    /// Time the kernels at UniTok-L sizes and compare with this adapter's measured ceilings
    /// (peak FMA rate, copy bandwidth).
    Bench {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        /// Timed repetitions per kernel (median is reported); default 3, or 1 with --quick.
        #[arg(long)]
        reps: Option<usize>,
        /// Smaller ceiling probes and one timed repetition per kernel (same kernel shapes).
        #[arg(long)]
        quick: bool,
        /// Only kernels whose name contains this text.
        #[arg(long)]
        filter: Option<String>,
        /// Time every kernel with and without wgpu's injected shader bounds checks (two devices,
        /// alternating runs, so both see the same machine load) and print the speed-up.
        #[arg(long)]
        ab_checks: bool,
        /// Time every kernel with the built-in shaders and with the modules in this folder
        /// (`<module>.wgsl`, e.g. a rewritten attention_tex.wgsl; modules it lacks stay
        /// built-in), alternating runs in one process, and print the speed-up.
        #[arg(long, value_name = "DIR")]
        ab_shaders: Option<PathBuf>,
        /// After each kernel, one more run with every dispatch waited for on its own: where the
        /// time goes (e.g. packing operands into textures against the product itself).
        #[arg(long)]
        profile: bool,
        /// Time the kernels alone, without a ceiling probe sample next to each of theirs (the
        /// ratios are then to the best ceiling only): for sampling profilers, e.g.
        /// tools/profile-jit.sh, that should see the kernel and not the probe.
        #[arg(long)]
        unpaired: bool,
    },
    /// Train (or fine-tune) UniTok: reconstruction (0.2·L1 + MSE), VQ and CLIP losses, AdamW with
    /// warm-up + cosine schedule, checkpoints that --resume continues exactly.
    Train(Box<TrainFlags>),
    /// Time encode and decode of a whole model (random weights) and report its planned memory.
    BenchModel {
        /// Preset: vitamin_large (the released size), vitamin_base, tiny64.
        #[arg(long, default_value = "vitamin_large")]
        preset: String,
        #[arg(long, default_value_t = 1)]
        batch: usize,
        #[arg(long, default_value_t = 1)]
        reps: usize,
        /// One more run with every dispatch waited for on its own: wall time per kernel, the
        /// slowest first (each includes its ~0.3 ms submission).
        #[arg(long)]
        profile: bool,
    },
    /// Build the training step of a model (random weights, reference AdamW settings), run it on
    /// random images and captions, and report build time, step time, images/s, planned memory
    /// and dispatch count.
    BenchTrain {
        /// Preset: vitamin_large (the released size), vitamin_base, tiny64.
        #[arg(long, default_value = "tiny64")]
        preset: String,
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Training steps to time (the median is reported).
        #[arg(long, default_value_t = 3)]
        steps: usize,
    },
}

/// `unitok train` flags (names fixed so scripts can rely on them).
#[derive(clap::Args)]
struct TrainFlags {
    /// A folder of images with a same-named .txt caption beside each, or a JSONL manifest of
    /// {"image": path, "text": caption} lines (paths relative to the manifest).
    #[arg(long)]
    data: PathBuf,
    /// Start from these weights (.safetensors from `unitok convert`, or an official .pth).
    #[arg(long, conflicts_with = "config")]
    init: Option<PathBuf>,
    /// Start from a fresh reference initialisation of this config (preset name or JSON file).
    #[arg(long)]
    config: Option<String>,
    /// Output folder: metrics.jsonl and checkpoints/step-N/ (model, optimizer, state).
    #[arg(long)]
    out: PathBuf,
    /// Total optimizer steps (a resumed run continues up to this number).
    #[arg(long)]
    steps: u64,
    #[arg(long, default_value_t = 4)]
    batch_size: usize,
    /// Peak learning rate (the reference: 5e-4).
    #[arg(long, default_value_t = 5e-4)]
    lr: f64,
    /// Linear warm-up steps from 0 (default: 1% of --steps, as the reference).
    #[arg(long)]
    warmup_steps: Option<u64>,
    /// The cosine schedule's floor as a fraction of the peak.
    #[arg(long, default_value_t = 0.1)]
    min_lr_ratio: f64,
    #[arg(long, default_value_t = 0.02)]
    weight_decay: f32,
    /// Global gradient-norm clip.
    #[arg(long, default_value_t = 10.0)]
    clip_grad: f32,
    /// No random-resized crop: resize the shorter side and center-crop.
    #[arg(long)]
    no_augment: bool,
    /// Batches in dataset (manifest) order instead of a seeded shuffle per epoch.
    #[arg(long)]
    no_shuffle: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write a checkpoint every N steps (and always at the end); 0: only at the end.
    #[arg(long, default_value_t = 1000)]
    save_every: u64,
    /// Keep this many newest checkpoints.
    #[arg(long, default_value_t = 2)]
    keep_checkpoints: usize,
    /// Continue from OUT/checkpoints/latest.
    #[arg(long)]
    resume: bool,
    /// Write the first step's gradients (before clipping, official keys) to this safetensors file.
    #[arg(long)]
    dump_grads: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(clap::Args)]
struct WeightsArg {
    /// Weights: a .safetensors written by `unitok convert` or an official .pth checkpoint.
    #[arg(short, long = "weights")]
    w: PathBuf,
}

#[derive(clap::Args)]
struct BatchArg {
    /// Images per GPU batch.
    #[arg(long, default_value_t = 8)]
    batch: usize,
}

fn run_train(f: TrainFlags) -> Result<()> {
    use unitok::train::run::{train, InitFrom, TrainArgs};
    let init = match (f.init, f.config) {
        (Some(w), _) => Some(InitFrom::Weights(w)),
        (None, Some(c)) => Some(InitFrom::Config(c)),
        (None, None) => None,
    };
    let args = TrainArgs {
        data: f.data,
        init,
        out: f.out,
        steps: f.steps,
        batch_size: f.batch_size,
        lr: f.lr,
        warmup_steps: f.warmup_steps.unwrap_or(f.steps / 100),
        min_lr_ratio: f.min_lr_ratio,
        weight_decay: f.weight_decay,
        clip_grad: f.clip_grad,
        no_augment: f.no_augment,
        no_shuffle: f.no_shuffle,
        seed: f.seed,
        save_every: f.save_every,
        resume: f.resume,
        dump_grads: f.dump_grads,
        keep_checkpoints: f.keep_checkpoints,
        quiet: f.quiet,
    };
    let gpu = Gpu::new()?;
    let s = train(&gpu, &args)?;
    if let Some(r) = &s.last {
        let terms: Vec<String> = r.terms.iter().map(|(n, v)| format!("{n} {v:.5}")).collect();
        println!(
            "steps {}..{} in {:.1} s: {} total {:.5}; planned device memory {:.1} MiB",
            s.first_step,
            s.steps,
            s.seconds,
            terms.join(" "),
            r.total,
            s.planned_bytes as f64 / (1u64 << 20) as f64
        );
    }
    if let Some(c) = &s.checkpoint {
        println!("checkpoint: {}", c.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The device layer reads these; flags override the environment.
    if let Some(b) = &cli.backend {
        std::env::set_var("UNITOK_BACKEND", b);
    }
    if let Some(a) = &cli.adapter {
        std::env::set_var("UNITOK_ADAPTER", a);
    }
    let r = match cli.cmd {
        Cmd::Info => info(),
        Cmd::Selfcheck => run_selfcheck(),
        Cmd::Bench {
            json,
            reps,
            quick,
            filter,
            ab_checks,
            ab_shaders,
            profile,
            unpaired,
        } => {
            let reps = reps.unwrap_or(if quick { 1 } else { 3 });
            if ab_checks {
                run_bench_ab(json, reps, filter, AbSides::Checks)
            } else if let Some(dir) = ab_shaders {
                run_bench_ab(json, reps, filter, AbSides::Shaders(dir))
            } else {
                run_bench(json, reps, quick, filter, profile, !unpaired)
            }
        }
        Cmd::BenchModel {
            preset,
            batch,
            reps,
            profile,
        } => run_bench_model(&preset, batch, reps, profile),
        Cmd::BenchTrain {
            preset,
            batch,
            steps,
        } => run_bench_train(&preset, batch, steps),
        Cmd::Convert { input, output } => app::convert(&input, &output),
        Cmd::Train(f) => run_train(*f),
        Cmd::Encode {
            w,
            inputs,
            output,
            b,
        } => Gpu::new().and_then(|g| app::encode(&g, &w.w, &inputs, &output, b.batch)),
        Cmd::Decode {
            w,
            codes,
            output,
            b,
        } => Gpu::new().and_then(|g| app::decode(&g, &w.w, &codes, &output, b.batch)),
        Cmd::Reconstruct {
            w,
            inputs,
            output,
            b,
        } => Gpu::new().and_then(|g| app::reconstruct(&g, &w.w, &inputs, &output, b.batch)),
        Cmd::EmbedImage {
            w,
            inputs,
            output,
            b,
        } => Gpu::new().and_then(|g| app::embed_image(&g, &w.w, &inputs, &output, b.batch)),
        Cmd::EmbedText { w, texts, output } => {
            Gpu::new().and_then(|g| app::embed_text(&g, &w.w, &texts, &output))
        }
        Cmd::ZeroShot {
            w,
            inputs,
            labels,
            top_k,
            b,
        } => Gpu::new()
            .and_then(|g| app::zero_shot(&g, &w.w, &inputs, &labels, top_k, b.batch))
            .map(|res| {
                for (name, ranked) in res {
                    println!("{name}");
                    for (label, p) in ranked {
                        println!("  {p:>7.2}%  {label}", p = p * 100.0);
                    }
                }
            }),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn info() -> Result<()> {
    println!("adapters:");
    for a in device::enumerate_adapters()? {
        println!("  - {}", device::describe(&a));
    }
    let gpu = Gpu::new()?;
    let c = &gpu.caps;
    println!("chosen: {}", gpu.describe());
    println!("limits:");
    println!(
        "  max_storage_buffer_binding_size   {} ({} MiB)",
        c.max_storage_binding,
        c.max_storage_binding >> 20
    );
    println!(
        "  max_buffer_size                   {} ({} MiB)",
        c.max_buffer_size,
        c.max_buffer_size >> 20
    );
    println!(
        "  max_compute_workgroup_storage     {}",
        c.max_workgroup_storage
    );
    println!("  max_invocations_per_workgroup     {}", c.max_invocations);
    println!(
        "  max_workgroups_per_dimension      {}",
        c.max_workgroups_per_dim
    );
    println!(
        "  max_storage_buffers_per_stage     {}",
        c.max_storage_buffers_per_stage
    );
    println!("  max_texture_dimension_2d          {}", c.max_texture_dim);
    println!("features:");
    println!("  shader_f16       {}", c.shader_f16);
    println!(
        "  subgroups        {} (size {}..{})",
        c.subgroups, c.subgroup_min, c.subgroup_max
    );
    println!("  timestamp_query  {}", c.timestamps);
    println!(
        "texture operands: {}",
        if c.texture_operands {
            "on (matmul, convolution, attention, the MCQ argmax and the layer norms read textures; UNITOK_TEXTURE_OPERANDS=0 turns it off)"
        } else {
            "off (buffer kernels; on by default only on CPU adapters with 8-lane subgroups)"
        }
    );
    println!(
        "shader bounds checks: {}",
        if c.unchecked_shaders {
            "off (UNITOK_UNCHECKED_SHADERS=1: kernels rely on their own index checks)"
        } else {
            "on (wgpu default; UNITOK_UNCHECKED_SHADERS=1 turns them off)"
        }
    );
    Ok(())
}

fn run_selfcheck() -> Result<()> {
    let gpu = Gpu::new()?;
    println!("self-check on {}", gpu.describe());
    let (mut pass, mut fail) = (0, 0);
    for case in selfcheck::cases() {
        let o = selfcheck::run(&gpu, &case)?;
        println!(
            "  {:<4} {:<44} max abs {:.2e}  max rel {:.2e}",
            if o.ok { "ok" } else { "FAIL" },
            o.name,
            o.max_abs,
            o.max_rel
        );
        if o.ok {
            pass += 1
        } else {
            fail += 1
        }
    }
    println!("selfcheck: {pass} passed, {fail} failed");
    if fail > 0 {
        return Err(unitok::Error::Gpu(format!(
            "{fail} kernel(s) disagree with the CPU reference"
        )));
    }
    Ok(())
}

fn load_average() -> Option<String> {
    let l = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

/// Checked vs unchecked shader modules, case by case, alternating runs.
/// The two sides of `unitok bench --ab-checks` / `--ab-shaders`.
enum AbSides {
    /// With and without wgpu's injected shader bounds checks.
    Checks,
    /// Built-in shaders against the modules in a folder.
    Shaders(PathBuf),
}

fn run_bench_ab(json: bool, reps: usize, filter: Option<String>, sides: AbSides) -> Result<()> {
    let (a, b, labels) = match &sides {
        AbSides::Checks => (
            Gpu::new_with(false)?,
            Gpu::new_with(true)?,
            ["checked", "unchecked"],
        ),
        AbSides::Shaders(dir) => (
            Gpu::new()?,
            Gpu::new_with_shader_dir(dir)?,
            ["built-in", "from folder"],
        ),
    };
    let adapter = a.info.name.clone();
    if !json {
        println!("adapter: {}", a.describe());
        if let AbSides::Shaders(dir) = &sides {
            println!("shader folder: {}", dir.display());
        }
        if let Some(l) = load_average() {
            println!("load average: {l}");
        }
        println!(
            "{:<16} {:<40} {:>12} {:>12} {:>3} {:>8}",
            "kernel",
            "shape",
            format!("{} ms", labels[0]),
            format!("{} ms", labels[1]),
            "n",
            "speedup"
        );
    }
    for case in bench::kernel_cases() {
        if filter.as_deref().is_some_and(|f| !case.kernel.contains(f)) {
            continue;
        }
        let (ma, mb) = bench::measure_ab(&a, &b, &case, reps)?;
        let speedup = ma.seconds / mb.seconds;
        if json {
            let mut o = serde_json::json!({"kernel": ma.kernel, "shape": ma.shape, "samples": ma.samples, "speedup": speedup, "adapter": adapter});
            o[format!("{}_ms", labels[0].replace([' ', '-'], "_"))] = (ma.seconds * 1e3).into();
            o[format!("{}_ms", labels[1].replace([' ', '-'], "_"))] = (mb.seconds * 1e3).into();
            println!("{o}");
        } else {
            println!(
                "{:<16} {:<40} {:>12.1} {:>12.1} {:>3} {:>8.2}",
                ma.kernel,
                ma.shape,
                ma.seconds * 1e3,
                mb.seconds * 1e3,
                ma.samples,
                speedup
            );
        }
    }
    if !json {
        if let Some(l) = load_average() {
            println!("load average at the end: {l}");
        }
    }
    Ok(())
}

fn run_bench(
    json: bool,
    reps: usize,
    quick: bool,
    filter: Option<String>,
    profile: bool,
    paired: bool,
) -> Result<()> {
    let gpu = Gpu::new()?;
    let adapter = gpu.info.name.clone();
    let load_start = load_average();
    if !json {
        println!("adapter: {}", gpu.describe());
        if let Some(l) = &load_start {
            println!("load average: {l}");
        }
        println!(
            "shader bounds checks: {}",
            if gpu.caps.unchecked_shaders {
                "off (UNITOK_UNCHECKED_SHADERS)"
            } else {
                "on (wgpu default)"
            }
        );
    }
    let cases: Vec<_> = bench::kernel_cases()
        .into_iter()
        .filter(|c| filter.as_deref().is_none_or(|f| c.kernel.contains(f)))
        .collect();
    // The best ceilings: probed before and after the kernels, the faster reading counts (a slow
    // phase of a shared machine during one probe would otherwise inflate every ratio to them).
    let (fma_case, copy_case) = (bench::fma_case(quick), bench::copy_case(quick));
    let fma_start = bench::measure_ceiling(&gpu, &fma_case)?;
    let copy_start = bench::measure_ceiling(&gpu, &copy_case)?;
    // The paired ceilings: a probe sample next to every kernel sample.
    let mut fma_probe = bench::Probe::new(&gpu, bench::fma_case(quick))?;
    let mut copy_probe = bench::Probe::new(&gpu, bench::copy_case(quick))?;
    let bar = indicatif::ProgressBar::new(cases.len() as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template("bench {msg} [{bar:30}] {pos}/{len}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    let mut rows = Vec::with_capacity(cases.len());
    for case in &cases {
        bar.set_message(case.kernel);
        let probe = match case.work {
            Work::Flops(_) => &mut fma_probe,
            Work::Bytes(_) => &mut copy_probe,
        };
        let m = if paired {
            let p = bench::measure_paired(&gpu, case, reps, probe)?;
            (p.kernel, Some((p.ceiling, p.ratio)))
        } else {
            (bench::measure(&gpu, case, reps)?, None)
        };
        let dispatches = if profile {
            bench::profile(&gpu, case)?
        } else {
            vec![]
        };
        rows.push((m, dispatches));
        bar.inc(1);
    }
    bar.finish_and_clear();
    drop((fma_probe, copy_probe));
    let fma_end = bench::measure_ceiling(&gpu, &fma_case)?;
    let copy_end = bench::measure_ceiling(&gpu, &copy_case)?;
    let peak = fma_start.rate().max(fma_end.rate());
    let bw = copy_start.rate().max(copy_end.rate());
    if json {
        println!(
            "{}",
            serde_json::json!({"kernel": "fma_peak", "shape": fma_start.shape, "gflops": peak, "ceiling": peak, "ratio": 1.0, "adapter": adapter, "start": fma_start.rate(), "end": fma_end.rate()})
        );
        println!(
            "{}",
            serde_json::json!({"kernel": "copy", "shape": copy_start.shape, "gbps": bw, "ceiling": bw, "ratio": 1.0, "adapter": adapter, "start": copy_start.rate(), "end": copy_end.rate()})
        );
    } else {
        let n = bench::CEILING_SAMPLES;
        println!(
            "ceilings (best of {n} at the start and {n} at the end): FMA peak {peak:.2} GFLOP/s \
             ({:.2} / {:.2}), copy bandwidth {bw:.3} GB/s ({:.3} / {:.3})",
            fma_start.rate(),
            fma_end.rate(),
            copy_start.rate(),
            copy_end.rate()
        );
        if paired {
            println!(
                "ratio: median over the samples of (kernel rate / a probe sample taken next to \
                 it), whose median reading is the ceiling column; vs best: median rate / best \
                 ceiling"
            );
        } else {
            println!("ratio and vs best: median rate / best ceiling (--unpaired)");
        }
        println!(
            "{:<16} {:<40} {:>10} {:>3} {:>16} {:>10} {:>7} {:>8}",
            "kernel", "shape", "ms", "n", "rate", "ceiling", "ratio", "vs best"
        );
    }
    for ((m, paired), dispatches) in rows {
        let (unit, best) = match m.work {
            Work::Flops(_) => ("gflops", peak),
            Work::Bytes(_) => ("gbps", bw),
        };
        let vs_best = m.rate() / best;
        let (ceiling, ratio) = paired.unwrap_or((best, vs_best));
        if json {
            let mut o = serde_json::json!({"kernel": m.kernel, "shape": m.shape, "ceiling": ceiling, "ratio": ratio, "ceiling_best": best, "ratio_best": vs_best, "adapter": adapter, "ms": m.seconds * 1e3, "ms_fastest": m.fastest * 1e3, "samples": m.samples, "unchecked_shaders": gpu.caps.unchecked_shaders});
            o[unit] = serde_json::json!(m.rate());
            println!("{o}");
        } else {
            let u = if unit == "gflops" { "GFLOP/s" } else { "GB/s" };
            println!(
                "{:<16} {:<40} {:>10.1} {:>3} {:>8.3} {:<7} {:>10.3} {:>7.3} {:>8.3}",
                m.kernel,
                m.shape,
                m.seconds * 1e3,
                m.samples,
                m.rate(),
                u,
                ceiling,
                ratio,
                vs_best
            );
        }
        for (label, t, n) in dispatches {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"kernel": m.kernel, "dispatch": label, "ms": t.as_secs_f64() * 1e3, "count": n})
                );
            } else {
                println!("    {:<52} {:>10.1} ms  ×{n}", label, t.as_secs_f64() * 1e3);
            }
        }
    }
    if !json {
        if let Some(l) = load_average() {
            println!("load average at the end: {l}");
        }
    }
    Ok(())
}

fn preset(preset: &str) -> Result<unitok::UnitokConfig> {
    unitok::UnitokConfig::preset(preset).ok_or_else(|| {
        unitok::Error::Invalid(format!(
            "unknown preset {preset:?} (vitamin_large, vitamin_base, tiny64)"
        ))
    })
}

fn run_bench_train(preset_name: &str, batch: usize, steps: usize) -> Result<()> {
    use std::io::Write;
    let cfg = preset(preset_name)?;
    let gpu = Gpu::new()?;
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    println!("adapter: {}", gpu.describe());
    println!(
        "training step {} b{batch} {s}x{s}: max storage binding {:.0} MiB",
        cfg.model,
        mib(gpu.caps.max_storage_binding),
        s = cfg.img_size
    );
    let t0 = std::time::Instant::now();
    let (mut step, info) = bench::train_step(&gpu, &cfg, batch)?;
    // Printed before the first step: at the released size one step takes long on a CPU adapter.
    println!(
        "build (record + plan + compile + upload) {:.2} s   planned {:.1} MiB (arena {:.1} MiB, row-chunked intermediates {:.1} MiB)   {} dispatches",
        t0.elapsed().as_secs_f64(),
        mib(info.planned_bytes),
        mib(info.arena_bytes),
        mib(info.chunked_bytes),
        info.dispatches
    );
    let mem = gpu.memory();
    println!(
        "device buffers held by the pool: {:.1} MiB live, {:.1} MiB pooled",
        mib(mem.live_bytes),
        mib(mem.pooled_bytes)
    );
    std::io::stdout().flush().ok();
    let mut rng = 0x853c49e6748fea9bu64;
    let mut uniform = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut times = Vec::new();
    for k in 0..steps.max(1) {
        let (images, ids) = bench::train_batch(&step, k as u64 + 1)?;
        let t = std::time::Instant::now();
        let r = step.run(&images, &ids, 1e-4, &mut uniform)?;
        let dt = t.elapsed().as_secs_f64();
        println!(
            "step {}: {dt:.2} s   loss {:.4}   grad norm {:.4}",
            k + 1,
            r.total,
            r.grad_norm
        );
        std::io::stdout().flush().ok();
        times.push(dt);
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "median step {median:.2} s over {} steps   {:.3} images/s",
        times.len(),
        batch as f64 / median
    );
    Ok(())
}

fn run_bench_model(preset_name: &str, batch: usize, reps: usize, profile: bool) -> Result<()> {
    let cfg = preset(preset_name)?;
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.describe());
    for t in bench::model_timings(&gpu, &cfg, batch, reps, profile)? {
        println!(
            "{:<36} run {:>8.2} s   setup (compile + upload) {:>7.2} s   planned {:>7.1} MiB (arena {:.1} MiB)   {} dispatches",
            t.what,
            t.run_s,
            t.setup_s,
            t.planned_bytes as f64 / (1u64 << 20) as f64,
            t.arena_bytes as f64 / (1u64 << 20) as f64,
            t.dispatches
        );
        let total: f64 = t.profile.iter().map(|(_, d, _)| d.as_secs_f64()).sum();
        for (label, d, n) in &t.profile {
            println!(
                "    {label:<60} {:>9.1} ms {:>5.1} %  ×{n}",
                d.as_secs_f64() * 1e3,
                100.0 * d.as_secs_f64() / total
            );
        }
    }
    Ok(())
}
