//! Official UniTok training checkpoints (`torch.save` archives) read in pure Rust.
//!
//! The container is a zip archive of stored (uncompressed) entries under one folder whose name
//! torch takes from the file name: `<dir>/data.pkl` is a pickle (protocol 2) of
//! `{'args': OrderedDict, 'epoch', 'iter', 'trainer': {'unitok': state_dict, ...}}`, and
//! `<dir>/data/<key>` are the raw little-endian storages the pickle refers to through persistent
//! ids `('storage', torch.FloatStorage, key, location, numel)`. Tensors are rebuilt by
//! `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`.
//!
//! A small pickle machine ([`Unpickler`]) evaluates `data.pkl` without executing anything: the
//! globals it knows (`OrderedDict`, the tensor rebuilders, storage classes, dtype objects) become
//! values, every other class becomes an inert object record. Tensors are *references* until
//! read, so opening a full training checkpoint (weights plus optimizer state) reads only the
//! pickle; [`PthArchive::read_f32`] then reads one tensor's bytes straight from its storage entry
//! into the output vector, and nothing else is ever loaded.

use crate::error::{Error, Result};
use serde_json::{Map, Number, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Element type of a torch storage, from its legacy storage class name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageDType {
    F32,
    F64,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl StorageDType {
    fn from_class(name: &str) -> Option<Self> {
        Some(match name {
            "FloatStorage" => Self::F32,
            "DoubleStorage" => Self::F64,
            "HalfStorage" => Self::F16,
            "BFloat16Storage" => Self::BF16,
            "LongStorage" => Self::I64,
            "IntStorage" => Self::I32,
            "ShortStorage" => Self::I16,
            "CharStorage" => Self::I8,
            "ByteStorage" => Self::U8,
            "BoolStorage" => Self::Bool,
            _ => return None,
        })
    }
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::F64 | Self::I64 => 8,
            Self::F32 | Self::I32 => 4,
            Self::F16 | Self::BF16 | Self::I16 => 2,
            Self::I8 | Self::U8 | Self::Bool => 1,
        }
    }
    /// Floating-point types convert to f32; the others are rejected as weights.
    pub fn is_float(self) -> bool {
        matches!(self, Self::F32 | Self::F64 | Self::F16 | Self::BF16)
    }
}

/// One tensor of the state dict, not yet read.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: StorageDType,
    /// Storage key: the entry `<dir>/data/<key>`.
    pub storage_key: String,
    /// Elements in the whole storage (as the persistent id declares).
    pub storage_numel: usize,
    /// Offset of this tensor in its storage, in elements.
    pub offset: usize,
}

impl TensorInfo {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A tensor read into memory.
#[derive(Clone, Debug, PartialEq)]
pub struct PthTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A fully read checkpoint: the training `args` and the model state dict, in checkpoint order.
#[derive(Clone, Debug)]
pub struct PthCheckpoint {
    pub args: Map<String, Value>,
    pub tensors: Vec<PthTensor>,
}

/// An opened checkpoint: the pickle is evaluated, tensor data stays in the archive until read.
pub struct PthArchive {
    path: PathBuf,
    zip: zip::ZipArchive<BufReader<File>>,
    /// `<dir>/`, the folder holding `data.pkl`.
    prefix: String,
    args: Map<String, Value>,
    tensors: Vec<TensorInfo>,
}

/// Read a whole checkpoint: args plus every `trainer.unitok` tensor as f32 (f16/bf16/f64
/// storages converted). Each tensor is read once, straight into its output vector.
pub fn read_pth(path: &Path) -> Result<PthCheckpoint> {
    let mut ar = PthArchive::open(path)?;
    let mut tensors = Vec::with_capacity(ar.tensors.len());
    for i in 0..ar.tensors.len() {
        let data = ar.read_f32(i)?;
        let t = &ar.tensors[i];
        tensors.push(PthTensor {
            name: t.name.clone(),
            shape: t.shape.clone(),
            data,
        });
    }
    Ok(PthCheckpoint {
        args: ar.args.clone(),
        tensors,
    })
}

impl PthArchive {
    /// Open a `torch.save` checkpoint, evaluate its pickle and locate the state dict
    /// `trainer.unitok` and the `args`. No tensor data is read.
    pub fn open(path: &Path) -> Result<Self> {
        let fmt = |msg: String| Error::format(path, msg);
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| {
            fmt(format!(
                "not a torch.save zip archive ({e}); legacy non-zip checkpoints are not supported"
            ))
        })?;

        let pkl_names: Vec<String> = zip
            .file_names()
            .filter(|n| *n == "data.pkl" || n.ends_with("/data.pkl"))
            .map(str::to_string)
            .collect();
        let pkl_name = match pkl_names.as_slice() {
            [] => {
                return Err(fmt(
                    "no data.pkl entry in the archive (not a torch.save checkpoint)".into(),
                ))
            }
            [one] => one.clone(),
            _ => {
                // Prefer the top-level folder's pickle, as torch writes exactly one.
                pkl_names
                    .iter()
                    .min_by_key(|n| n.matches('/').count())
                    .cloned()
                    .expect("non-empty")
            }
        };
        let prefix = pkl_name[..pkl_name.len() - "data.pkl".len()].to_string();

        if let Some(order) = read_small_entry(&mut zip, &format!("{prefix}byteorder"), path)? {
            let order = String::from_utf8_lossy(&order);
            if order.trim() != "little" {
                return Err(fmt(format!(
                    "storages are '{}'-endian; only little-endian is supported",
                    order.trim()
                )));
            }
        }
        let pkl = read_small_entry(&mut zip, &pkl_name, path)?.expect("listed entry exists");

        let root = Unpickler::new(&pkl, path, &pkl_name).run()?;
        let root_items = match &root {
            Val::Dict(d) => d.borrow().clone(),
            other => {
                return Err(fmt(format!(
                    "{pkl_name}: top level is {}, expected a dict",
                    other.kind()
                )))
            }
        };
        let top_keys = || {
            root_items
                .iter()
                .map(|(k, _)| k.describe())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let args = match dict_get(&root_items, "args") {
            Some(Val::Dict(d)) => {
                let mut m = Map::new();
                for (k, v) in d.borrow().iter() {
                    m.insert(k.key_string(), v.to_json());
                }
                m
            }
            Some(other) => {
                return Err(fmt(format!(
                    "{pkl_name}: 'args' is {}, expected a dict",
                    other.kind()
                )))
            }
            None => {
                return Err(fmt(format!(
                    "{pkl_name}: no 'args' entry (top-level keys: {})",
                    top_keys()
                )))
            }
        };
        let trainer = match dict_get(&root_items, "trainer") {
            Some(Val::Dict(d)) => d.borrow().clone(),
            Some(other) => {
                return Err(fmt(format!(
                    "{pkl_name}: 'trainer' is {}, expected a dict",
                    other.kind()
                )))
            }
            None => {
                return Err(fmt(format!(
                    "{pkl_name}: no 'trainer' entry (top-level keys: {})",
                    top_keys()
                )))
            }
        };
        let state = match dict_get(&trainer, "unitok") {
            Some(Val::Dict(d)) => d.borrow().clone(),
            Some(other) => {
                return Err(fmt(format!(
                    "{pkl_name}: 'trainer.unitok' is {}, expected a state dict",
                    other.kind()
                )))
            }
            None => {
                let keys = trainer
                    .iter()
                    .map(|(k, _)| k.describe())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(fmt(format!(
                    "{pkl_name}: no 'trainer.unitok' state dict (trainer keys: {keys})"
                )));
            }
        };

        let mut tensors = Vec::with_capacity(state.len());
        for (k, v) in &state {
            let name = match k {
                Val::Str(s) => s.to_string(),
                other => {
                    return Err(fmt(format!(
                        "trainer.unitok: key {} is not a string",
                        other.describe()
                    )))
                }
            };
            let t = match v {
                Val::Tensor(t) => t.clone(),
                other => {
                    return Err(fmt(format!(
                        "trainer.unitok['{name}'] is {}, not a tensor",
                        other.kind()
                    )))
                }
            };
            let dtype = match &t.storage.dtype {
                Ok(d) => *d,
                Err(cls) => {
                    return Err(fmt(format!(
                        "trainer.unitok['{name}']: unsupported storage dtype torch.{cls}"
                    )))
                }
            };
            let contiguous = {
                let mut expect = 1usize;
                let mut ok = t.stride.len() == t.shape.len();
                for (&n, &s) in t.shape.iter().zip(&t.stride).rev() {
                    if n != 1 && s != expect {
                        ok = false;
                    }
                    expect = expect.saturating_mul(n);
                }
                ok
            };
            if !contiguous {
                return Err(fmt(format!(
                    "trainer.unitok['{name}']: non-contiguous tensor (size {:?}, stride {:?}) is not supported; \
                     save it after .contiguous()",
                    t.shape, t.stride
                )));
            }
            let numel: usize = t.shape.iter().product();
            if numel > 0 && t.offset + numel > t.storage.numel {
                return Err(fmt(format!(
                    "trainer.unitok['{name}']: {numel} elements at offset {} overrun its storage '{}' of {} elements",
                    t.offset, t.storage.key, t.storage.numel
                )));
            }
            let entry = format!("{prefix}data/{}", t.storage.key);
            if zip.index_for_name(&entry).is_none() {
                return Err(fmt(format!(
                    "trainer.unitok['{name}']: bad storage key '{}': no entry '{entry}' in the archive",
                    t.storage.key
                )));
            }
            tensors.push(TensorInfo {
                name,
                shape: t.shape.clone(),
                dtype,
                storage_key: t.storage.key.clone(),
                storage_numel: t.storage.numel,
                offset: t.offset,
            });
        }
        Ok(PthArchive {
            path: path.to_path_buf(),
            zip,
            prefix,
            args,
            tensors,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The checkpoint's `args` (values converted to JSON; `torch.float32` and other globals
    /// become their dotted names).
    pub fn args(&self) -> &Map<String, Value> {
        &self.args
    }

    /// The tensors of `trainer.unitok`, in checkpoint order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// Read tensor `index` as f32, reading its bytes once from the storage entry.
    pub fn read_f32(&mut self, index: usize) -> Result<Vec<f32>> {
        let info = self.tensors.get(index).cloned().ok_or_else(|| {
            Error::Invalid(format!(
                "{}: tensor index {index} out of range ({} tensors)",
                self.path.display(),
                self.tensors.len()
            ))
        })?;
        let numel = info.numel();
        let mut out = vec![0f32; numel];
        self.read_into(&info, &mut out)?;
        Ok(out)
    }

    fn read_into(&mut self, info: &TensorInfo, out: &mut [f32]) -> Result<()> {
        let path = self.path.clone();
        let fmt = |msg: String| Error::format(&path, msg);
        if !info.dtype.is_float() {
            return Err(fmt(format!(
                "trainer.unitok['{}']: unsupported dtype {:?} for a weight (expected a floating-point storage)",
                info.name, info.dtype
            )));
        }
        let entry_name = format!("{}data/{}", self.prefix, info.storage_key);
        let mut entry = self
            .zip
            .by_name(&entry_name)
            .map_err(|e| fmt(format!("storage entry '{entry_name}': {e}")))?;
        let esize = info.dtype.size();
        let want = info.storage_numel as u64 * esize as u64;
        if entry.size() != want {
            return Err(fmt(format!(
                "storage entry '{entry_name}' holds {} bytes, but its persistent id declares {} elements of {} bytes",
                entry.size(),
                info.storage_numel,
                esize
            )));
        }
        if out.is_empty() {
            return Ok(());
        }
        let read_err =
            |e: std::io::Error| fmt(format!("reading storage entry '{entry_name}': {e}"));
        let skip = (info.offset * esize) as u64;
        if skip > 0 {
            let skipped = std::io::copy(&mut (&mut entry).take(skip), &mut std::io::sink())
                .map_err(read_err)?;
            if skipped != skip {
                return Err(fmt(format!("storage entry '{entry_name}' is truncated")));
            }
        }
        match info.dtype {
            StorageDType::F32 => {
                entry
                    .read_exact(bytemuck::cast_slice_mut(out))
                    .map_err(read_err)?;
                if cfg!(target_endian = "big") {
                    for v in out.iter_mut() {
                        *v = f32::from_bits(u32::from_le(v.to_bits()));
                    }
                }
            }
            dt => {
                let mut buf = vec![0u8; out.len() * esize];
                entry.read_exact(&mut buf).map_err(read_err)?;
                match dt {
                    StorageDType::F64 => {
                        for (o, c) in out.iter_mut().zip(buf.chunks_exact(8)) {
                            *o = f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32;
                        }
                    }
                    StorageDType::F16 => {
                        for (o, c) in out.iter_mut().zip(buf.chunks_exact(2)) {
                            *o = half::f16::from_le_bytes([c[0], c[1]]).to_f32();
                        }
                    }
                    StorageDType::BF16 => {
                        for (o, c) in out.iter_mut().zip(buf.chunks_exact(2)) {
                            *o = half::bf16::from_le_bytes([c[0], c[1]]).to_f32();
                        }
                    }
                    _ => unreachable!("checked above"),
                }
            }
        }
        Ok(())
    }
}

/// Read a whole (small) entry; `None` if absent.
fn read_small_entry(
    zip: &mut zip::ZipArchive<BufReader<File>>,
    name: &str,
    path: &Path,
) -> Result<Option<Vec<u8>>> {
    if zip.index_for_name(name).is_none() {
        return Ok(None);
    }
    let mut f = zip
        .by_name(name)
        .map_err(|e| Error::format(path, format!("entry '{name}': {e}")))?;
    let mut buf = Vec::with_capacity(f.size() as usize);
    f.read_to_end(&mut buf)
        .map_err(|e| Error::format(path, format!("reading entry '{name}': {e}")))?;
    Ok(Some(buf))
}

fn dict_get<'a>(items: &'a [(Val, Val)], key: &str) -> Option<&'a Val> {
    items
        .iter()
        .rev()
        .find(|(k, _)| matches!(k, Val::Str(s) if &**s == key))
        .map(|(_, v)| v)
}

// ------------------------------------------------------------------------------------------------
// The pickle machine
// ------------------------------------------------------------------------------------------------

/// A storage named by a persistent id.
#[derive(Debug)]
struct StorageRef {
    /// The element type, or the unknown storage class name.
    dtype: std::result::Result<StorageDType, String>,
    key: String,
    numel: usize,
}

#[derive(Debug)]
struct TensorRef {
    storage: Rc<StorageRef>,
    offset: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
}

/// An instance of a class the machine does not model: kept inert.
#[derive(Debug)]
struct Obj {
    class: String,
    items: Vec<(Val, Val)>,
    list: Vec<Val>,
}

#[derive(Clone, Debug)]
enum Val {
    None,
    Bool(bool),
    Int(i64),
    /// An integer that does not fit i64 (little-endian two's complement bytes).
    BigInt(Rc<[u8]>),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Tuple(Rc<Vec<Val>>),
    List(Rc<RefCell<Vec<Val>>>),
    Dict(Rc<RefCell<Vec<(Val, Val)>>>),
    /// `module.name` from GLOBAL / STACK_GLOBAL.
    Global(Rc<str>, Rc<str>),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
    Object(Rc<RefCell<Obj>>),
}

impl Val {
    fn kind(&self) -> String {
        match self {
            Val::None => "None".into(),
            Val::Bool(_) => "a bool".into(),
            Val::Int(_) | Val::BigInt(_) => "an int".into(),
            Val::Float(_) => "a float".into(),
            Val::Str(_) => "a str".into(),
            Val::Bytes(_) => "bytes".into(),
            Val::Tuple(_) => "a tuple".into(),
            Val::List(_) => "a list".into(),
            Val::Dict(_) => "a dict".into(),
            Val::Global(m, n) => format!("the global {m}.{n}"),
            Val::Storage(_) => "a storage".into(),
            Val::Tensor(_) => "a tensor".into(),
            Val::Object(o) => format!("a {} object", o.borrow().class),
        }
    }

    fn describe(&self) -> String {
        match self {
            Val::Str(s) => format!("'{s}'"),
            Val::Int(i) => i.to_string(),
            other => other.kind(),
        }
    }

    fn key_string(&self) -> String {
        match self {
            Val::Str(s) => s.to_string(),
            Val::Int(i) => i.to_string(),
            other => other.describe(),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Val::None => Value::Null,
            Val::Bool(b) => Value::Bool(*b),
            Val::Int(i) => Value::from(*i),
            Val::BigInt(b) => Value::String(format!("<int of {} bytes>", b.len())),
            Val::Float(f) => Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(format!("{f}"))),
            Val::Str(s) => Value::String(s.to_string()),
            Val::Bytes(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
            Val::Tuple(v) => Value::Array(v.iter().map(Val::to_json).collect()),
            Val::List(v) => Value::Array(v.borrow().iter().map(Val::to_json).collect()),
            Val::Dict(d) => Value::Object(
                d.borrow()
                    .iter()
                    .map(|(k, v)| (k.key_string(), v.to_json()))
                    .collect(),
            ),
            Val::Global(m, n) => Value::String(format!("{m}.{n}")),
            Val::Storage(s) => Value::String(format!("<storage {}>", s.key)),
            Val::Tensor(t) => Value::String(format!("<tensor {:?}>", t.shape)),
            Val::Object(o) => Value::String(format!("<{} object>", o.borrow().class)),
        }
    }

    fn as_usize(&self) -> Option<usize> {
        match self {
            Val::Int(i) if *i >= 0 => Some(*i as usize),
            _ => None,
        }
    }

    fn as_usize_tuple(&self) -> Option<Vec<usize>> {
        match self {
            Val::Tuple(v) => v.iter().map(Val::as_usize).collect(),
            Val::List(v) => v.borrow().iter().map(Val::as_usize).collect(),
            _ => None,
        }
    }
}

/// Evaluates one pickle. Only data is built; nothing is executed.
struct Unpickler<'a> {
    data: &'a [u8],
    pos: usize,
    /// Position of the opcode being executed (for errors).
    op_pos: usize,
    stack: Vec<Val>,
    marks: Vec<usize>,
    memo: HashMap<u64, Val>,
    path: &'a Path,
    entry: &'a str,
}

impl<'a> Unpickler<'a> {
    fn new(data: &'a [u8], path: &'a Path, entry: &'a str) -> Self {
        Unpickler {
            data,
            pos: 0,
            op_pos: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            path,
            entry,
        }
    }

    fn err(&self, msg: impl std::fmt::Display) -> Error {
        Error::format(
            self.path,
            format!("{}: {msg} (opcode at byte {})", self.entry, self.op_pos),
        )
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.data.len() - self.pos {
            return Err(Error::format(
                self.path,
                format!(
                    "{}: truncated pickle: needs {n} more bytes at byte {} but only {} remain",
                    self.entry,
                    self.pos,
                    self.data.len() - self.pos
                ),
            ));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2")))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    fn len_u64(&mut self) -> Result<usize> {
        let n = self.u64()?;
        usize::try_from(n).map_err(|_| self.err(format!("length {n} too large")))
    }
    fn line(&mut self) -> Result<&'a str> {
        let rest = &self.data[self.pos..];
        let n = rest.iter().position(|&b| b == b'\n').ok_or_else(|| {
            Error::format(
                self.path,
                format!(
                    "{}: truncated pickle: unterminated text line at byte {}",
                    self.entry, self.pos
                ),
            )
        })?;
        let s =
            std::str::from_utf8(&rest[..n]).map_err(|_| self.err("text argument is not UTF-8"))?;
        self.pos += n + 1;
        Ok(s)
    }

    fn pop(&mut self) -> Result<Val> {
        self.stack
            .pop()
            .ok_or_else(|| self.err("malformed pickle: stack underflow"))
    }
    fn top(&mut self) -> Result<&mut Val> {
        if self.stack.is_empty() {
            return Err(self.err("malformed pickle: stack underflow"));
        }
        Ok(self.stack.last_mut().expect("checked non-empty"))
    }
    fn pop_mark(&mut self) -> Result<Vec<Val>> {
        let m = self
            .marks
            .pop()
            .ok_or_else(|| self.err("malformed pickle: no MARK on the stack"))?;
        if m > self.stack.len() {
            return Err(self.err("malformed pickle: MARK above the stack top"));
        }
        Ok(self.stack.split_off(m))
    }
    fn memo_put(&mut self, idx: u64) -> Result<()> {
        let v = self
            .stack
            .last()
            .cloned()
            .ok_or_else(|| self.err("malformed pickle: PUT on an empty stack"))?;
        self.memo.insert(idx, v);
        Ok(())
    }
    fn memo_get(&mut self, idx: u64) -> Result<()> {
        let v = self
            .memo
            .get(&idx)
            .cloned()
            .ok_or_else(|| self.err(format!("malformed pickle: memo key {idx} not set")))?;
        self.stack.push(v);
        Ok(())
    }
    fn push_str(&mut self, b: &[u8]) -> Result<()> {
        let s = std::str::from_utf8(b).map_err(|_| self.err("string is not UTF-8"))?;
        self.stack.push(Val::Str(s.into()));
        Ok(())
    }

    fn set_items(&mut self, target: &Val, kv: Vec<Val>) -> Result<()> {
        if !kv.len().is_multiple_of(2) {
            return Err(self.err("malformed pickle: odd number of items for SETITEMS"));
        }
        let mut it = kv.into_iter();
        let pairs = std::iter::from_fn(|| Some((it.next()?, it.next()?)));
        match target {
            Val::Dict(d) => d.borrow_mut().extend(pairs),
            Val::Object(o) => o.borrow_mut().items.extend(pairs),
            other => return Err(self.err(format!("SETITEM(S) on {}", other.kind()))),
        }
        Ok(())
    }

    fn append(&mut self, target: &Val, items: Vec<Val>) -> Result<()> {
        match target {
            Val::List(l) => l.borrow_mut().extend(items),
            Val::Object(o) => o.borrow_mut().list.extend(items),
            other => return Err(self.err(format!("APPEND(S) on {}", other.kind()))),
        }
        Ok(())
    }

    /// `callable(*args)` for the callables the checkpoint format needs.
    fn call(&self, callable: Val, args: Val) -> Result<Val> {
        let argv: Vec<Val> = match &args {
            Val::Tuple(v) => v.as_ref().clone(),
            other => {
                return Err(self.err(format!(
                    "REDUCE arguments are {}, expected a tuple",
                    other.kind()
                )))
            }
        };
        let (module, name) = match &callable {
            Val::Global(m, n) => (m.to_string(), n.to_string()),
            other => {
                return Ok(Val::Object(Rc::new(RefCell::new(Obj {
                    class: other.kind(),
                    items: Vec::new(),
                    list: Vec::new(),
                }))))
            }
        };
        match (module.as_str(), name.as_str()) {
            ("collections", "OrderedDict") | ("builtins" | "__builtin__", "dict") => {
                let d = Rc::new(RefCell::new(Vec::new()));
                if let Some(init) = argv.first() {
                    let items: Vec<Val> = match init {
                        Val::List(l) => l.borrow().clone(),
                        Val::Tuple(t) => t.as_ref().clone(),
                        Val::Dict(src) => {
                            d.borrow_mut().extend(src.borrow().iter().cloned());
                            Vec::new()
                        }
                        _ => Vec::new(),
                    };
                    for it in items {
                        if let Val::Tuple(kv) = &it {
                            if kv.len() == 2 {
                                d.borrow_mut().push((kv[0].clone(), kv[1].clone()));
                            }
                        }
                    }
                }
                Ok(Val::Dict(d))
            }
            ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => {
                let bad = || {
                    self.err(format!(
                        "{module}.{name}: unexpected arguments {}",
                        args.to_json()
                    ))
                };
                if argv.len() < 4 {
                    return Err(bad());
                }
                let storage = match &argv[0] {
                    Val::Storage(s) => s.clone(),
                    other => {
                        return Err(self.err(format!(
                            "{module}.{name}: first argument is {}, not a storage",
                            other.kind()
                        )))
                    }
                };
                let offset = argv[1].as_usize().ok_or_else(bad)?;
                let shape = argv[2].as_usize_tuple().ok_or_else(bad)?;
                let stride = argv[3].as_usize_tuple().ok_or_else(bad)?;
                Ok(Val::Tensor(Rc::new(TensorRef {
                    storage,
                    offset,
                    shape,
                    stride,
                })))
            }
            ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => argv
                .into_iter()
                .next()
                .ok_or_else(|| self.err(format!("{module}.{name} without arguments"))),
            ("torch", "Size") => Ok(argv
                .into_iter()
                .next()
                .unwrap_or(Val::Tuple(Rc::new(Vec::new())))),
            _ => Ok(Val::Object(Rc::new(RefCell::new(Obj {
                class: format!("{module}.{name}"),
                items: Vec::new(),
                list: Vec::new(),
            })))),
        }
    }

    /// A persistent id: `('storage', storage_class, key, location, numel)`.
    fn persistent_load(&self, pid: Val) -> Result<Val> {
        let t = match &pid {
            Val::Tuple(t) => t.clone(),
            other => {
                return Err(self.err(format!(
                    "persistent id is {}, expected a tuple",
                    other.kind()
                )))
            }
        };
        let bad = || self.err(format!("unsupported persistent id {}", pid.to_json()));
        if t.len() < 5 || !matches!(&t[0], Val::Str(s) if &**s == "storage") {
            return Err(bad());
        }
        let dtype = match &t[1] {
            Val::Global(_, n) => StorageDType::from_class(n).ok_or_else(|| n.to_string()),
            _ => return Err(bad()),
        };
        let key = match &t[2] {
            Val::Str(s) => s.to_string(),
            _ => {
                return Err(self.err(format!(
                    "bad storage key {} in persistent id",
                    t[2].describe()
                )))
            }
        };
        let numel = t[4].as_usize().ok_or_else(bad)?;
        Ok(Val::Storage(Rc::new(StorageRef { dtype, key, numel })))
    }

    fn run(mut self) -> Result<Val> {
        loop {
            self.op_pos = self.pos;
            let op = self.u8().map_err(|_| {
                Error::format(
                    self.path,
                    format!(
                        "{}: truncated pickle: ended at byte {} without STOP",
                        self.entry, self.pos
                    ),
                )
            })?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if proto > 5 {
                        return Err(self.err(format!("unsupported pickle protocol {proto}")));
                    }
                }
                0x95 => {
                    self.u64()?; // FRAME: a length hint
                }
                b'.' => return self.pop(), // STOP
                b'}' => self
                    .stack
                    .push(Val::Dict(Rc::new(RefCell::new(Vec::new())))),
                b']' | 0x8f => self
                    .stack
                    .push(Val::List(Rc::new(RefCell::new(Vec::new())))), // EMPTY_LIST, EMPTY_SET
                b')' => self.stack.push(Val::Tuple(Rc::new(Vec::new()))),
                b'(' => self.marks.push(self.stack.len()),
                b'q' => {
                    let i = self.u8()? as u64;
                    self.memo_put(i)?
                }
                b'r' => {
                    let i = self.u32()? as u64;
                    self.memo_put(i)?
                }
                0x94 => {
                    let i = self.memo.len() as u64;
                    self.memo_put(i)?
                }
                b'p' => {
                    let i = self
                        .line()?
                        .trim()
                        .parse::<u64>()
                        .map_err(|_| self.err("bad PUT index"))?;
                    self.memo_put(i)?
                }
                b'h' => {
                    let i = self.u8()? as u64;
                    self.memo_get(i)?
                }
                b'j' => {
                    let i = self.u32()? as u64;
                    self.memo_get(i)?
                }
                b'g' => {
                    let i = self
                        .line()?
                        .trim()
                        .parse::<u64>()
                        .map_err(|_| self.err("bad GET index"))?;
                    self.memo_get(i)?
                }
                b'J' => {
                    let v = self.i32()? as i64;
                    self.stack.push(Val::Int(v))
                }
                b'K' => {
                    let v = self.u8()? as i64;
                    self.stack.push(Val::Int(v))
                }
                b'M' => {
                    let v = self.u16()? as i64;
                    self.stack.push(Val::Int(v))
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.u8()? as usize
                    } else {
                        self.u32()? as usize
                    };
                    let b = self.take(n)?;
                    self.stack.push(long_from_le(b));
                }
                b'I' => {
                    let s = self.line()?.trim();
                    let v = match s {
                        "00" => Val::Bool(false),
                        "01" => Val::Bool(true),
                        _ => Val::Int(s.parse().map_err(|_| self.err(format!("bad INT '{s}'")))?),
                    };
                    self.stack.push(v)
                }
                b'L' => {
                    let s = self.line()?.trim().trim_end_matches('L');
                    let v = s.parse().map_err(|_| self.err(format!("bad LONG '{s}'")))?;
                    self.stack.push(Val::Int(v))
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.take(8)?.try_into().expect("8"));
                    self.stack.push(Val::Float(v))
                }
                b'F' => {
                    let s = self.line()?.trim();
                    let v = s
                        .parse()
                        .map_err(|_| self.err(format!("bad FLOAT '{s}'")))?;
                    self.stack.push(Val::Float(v))
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let b = self.take(n)?;
                    self.push_str(b)?
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?;
                    self.push_str(b)?
                }
                0x8d => {
                    let n = self.len_u64()?;
                    let b = self.take(n)?;
                    self.push_str(b)?
                }
                b'T' | b'U' => {
                    // Python 2 str: bytes, read as Latin-1 text.
                    let n = if op == b'T' {
                        self.u32()? as usize
                    } else {
                        self.u8()? as usize
                    };
                    let s: String = self.take(n)?.iter().map(|&c| c as char).collect();
                    self.stack.push(Val::Str(s.into()))
                }
                b'B' | b'C' | 0x8e => {
                    let n = match op {
                        b'B' => self.u32()? as usize,
                        b'C' => self.u8()? as usize,
                        _ => self.len_u64()?,
                    };
                    let b = self.take(n)?;
                    self.stack.push(Val::Bytes(b.into()))
                }
                0x88 => self.stack.push(Val::Bool(true)),
                0x89 => self.stack.push(Val::Bool(false)),
                b'N' => self.stack.push(Val::None),
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Val::Tuple(Rc::new(items)))
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err(self.err("malformed pickle: stack underflow"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Val::Tuple(Rc::new(items)))
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Val::List(Rc::new(RefCell::new(items))))
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let d = Val::Dict(Rc::new(RefCell::new(Vec::new())));
                    self.set_items(&d, items)?;
                    self.stack.push(d)
                }
                0x91 => {
                    let items = self.pop_mark()?; // FROZENSET
                    self.stack.push(Val::List(Rc::new(RefCell::new(items))))
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let target = self.top()?.clone();
                    self.set_items(&target, vec![k, v])?
                }
                b'u' => {
                    let kv = self.pop_mark()?;
                    let target = self.top()?.clone();
                    self.set_items(&target, kv)?
                }
                b'a' => {
                    let v = self.pop()?;
                    let target = self.top()?.clone();
                    self.append(&target, vec![v])?
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?; // APPENDS, ADDITEMS
                    let target = self.top()?.clone();
                    self.append(&target, items)?
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.stack.push(Val::Global(module.into(), name.into()))
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Val::Str(m), Val::Str(n)) => self.stack.push(Val::Global(m, n)),
                        _ => return Err(self.err("STACK_GLOBAL needs two strings")),
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let v = self.call(callable, args)?;
                    self.stack.push(v)
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let v = self.call(cls, args)?;
                    self.stack.push(v)
                }
                0x92 => {
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let v = self.call(cls, args)?;
                    self.stack.push(v)
                }
                b'b' => {
                    // BUILD: instance state (an OrderedDict's `_metadata`, ...) is not needed.
                    self.pop()?;
                    self.top()?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent_load(pid)?;
                    self.stack.push(v)
                }
                b'0' => {
                    if self.marks.last() == Some(&self.stack.len()) {
                        self.marks.pop();
                    } else {
                        self.pop()?;
                    }
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.stack.push(v)
                }
                other => {
                    return Err(self.err(format!(
                        "unknown or unsupported pickle opcode 0x{other:02x} ({:?})",
                        other as char
                    )))
                }
            }
        }
    }
}

/// LONG1/LONG4 payload: little-endian two's complement.
fn long_from_le(b: &[u8]) -> Val {
    if b.is_empty() {
        return Val::Int(0);
    }
    if b.len() <= 8 {
        let neg = b[b.len() - 1] & 0x80 != 0;
        let mut buf = if neg { [0xffu8; 8] } else { [0u8; 8] };
        buf[..b.len()].copy_from_slice(b);
        Val::Int(i64::from_le_bytes(buf))
    } else {
        Val::BigInt(b.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(bytes: &[u8]) -> Result<Val> {
        Unpickler::new(bytes, Path::new("test.pth"), "x/data.pkl").run()
    }

    #[test]
    fn basic_values() {
        // {'a': [1, -2, 3.5, True, None], 'b': (300, 70000, 'é'), 'c': 2**40}
        let mut p = vec![
            0x80, 2, b'}', b'q', 0, b'(', b'X', 1, 0, 0, 0, b'a', b']', b'(', b'K', 1, b'J',
        ];
        p.extend((-2i32).to_le_bytes());
        p.push(b'G');
        p.extend(3.5f64.to_be_bytes());
        p.extend([0x88, b'N', b'e', b'X', 1, 0, 0, 0, b'b', b'M']);
        p.extend(300u16.to_le_bytes());
        p.push(b'J');
        p.extend(70000i32.to_le_bytes());
        p.extend([
            0x8c, 2, 0xc3, 0xa9, 0x87, b'X', 1, 0, 0, 0, b'c', 0x8a, 6, 0, 0, 0, 0, 0, 1, b'u',
            b'.',
        ]);
        let v = run(&p).unwrap().to_json();
        assert_eq!(
            v,
            serde_json::json!({"a": [1, -2, 3.5, true, null], "b": [300, 70000, "é"], "c": 1u64 << 40})
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let e = run(&[0x80, 2, b'}', 0xff]).unwrap_err().to_string();
        assert!(
            e.contains("opcode 0xff") && e.contains("byte 3") && e.contains("test.pth"),
            "{e}"
        );
        let e = run(&[0x80, 2, b'X', 10, 0, 0, 0, b'a'])
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncated"), "{e}");
        let e = run(&[0x80, 2, b'}']).unwrap_err().to_string();
        assert!(e.contains("without STOP"), "{e}");
        let e = run(&[0x80, 2, b'h', 7, b'.']).unwrap_err().to_string();
        assert!(e.contains("memo key 7"), "{e}");
    }

    #[test]
    fn long1_sign() {
        assert!(matches!(long_from_le(&[0xff]), Val::Int(-1)));
        assert!(matches!(long_from_le(&[0x00, 0x80]), Val::Int(-32768)));
        assert!(matches!(long_from_le(&[0x80, 0x00]), Val::Int(128)));
    }
}
