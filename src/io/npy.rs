//! NumPy `.npy` files: read versions 1–3 (little-endian `f4`, `f8` → f32, `i8`, `i4`, `u1`,
//! C order), write f32 and i64 in the exact layout `numpy.save` produces (version 1.0, header
//! padded to 64 bytes), atomically.

use crate::error::{Error, Result};
use crate::io::{werr, write_atomic};
use crate::tensor::HostTensor;
use std::io::Write;
use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";

/// Element data of an array.
#[derive(Clone, Debug, PartialEq)]
pub enum NpyData {
    /// `<f4`, and `<f8` converted to f32.
    F32(Vec<f32>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    U8(Vec<u8>),
}

/// An array read from a `.npy` file.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: NpyData,
}

impl NpyArray {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// As an f32 host tensor (f32 arrays only).
    pub fn into_f32(self, path: &Path) -> Result<HostTensor> {
        match self.data {
            NpyData::F32(v) => HostTensor::f32(&self.shape, v),
            other => Err(Error::format(
                path,
                format!("expected a float array, found {}", kind(&other)),
            )),
        }
    }

    /// Integer data widened to i64 (i64, i32 and u8 arrays).
    pub fn to_i64(&self, path: &Path) -> Result<Vec<i64>> {
        match &self.data {
            NpyData::I64(v) => Ok(v.clone()),
            NpyData::I32(v) => Ok(v.iter().map(|&x| x as i64).collect()),
            NpyData::U8(v) => Ok(v.iter().map(|&x| x as i64).collect()),
            other => Err(Error::format(
                path,
                format!("expected an integer array, found {}", kind(other)),
            )),
        }
    }

    /// As a u32 host tensor (codes, token ids): integer arrays whose values all fit u32.
    pub fn into_u32(self, path: &Path) -> Result<HostTensor> {
        let v = self.to_i64(path)?;
        let mut out = Vec::with_capacity(v.len());
        for (i, x) in v.into_iter().enumerate() {
            out.push(
                u32::try_from(x).map_err(|_| {
                    Error::format(path, format!("element {i} = {x} does not fit u32"))
                })?,
            );
        }
        HostTensor::u32(&self.shape, out)
    }
}

fn kind(d: &NpyData) -> &'static str {
    match d {
        NpyData::F32(_) => "float32",
        NpyData::I64(_) => "int64",
        NpyData::I32(_) => "int32",
        NpyData::U8(_) => "uint8",
    }
}

/// Read a `.npy` file.
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_npy(&bytes).map_err(|msg| Error::format(path, msg))
}

/// Read a float `.npy` file as an f32 host tensor.
pub fn read_npy_f32(path: &Path) -> Result<HostTensor> {
    read_npy(path)?.into_f32(path)
}

/// Parse `.npy` bytes; the error is a message without the path.
pub fn parse_npy(bytes: &[u8]) -> std::result::Result<NpyArray, String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a .npy file (bad magic)".into());
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (hlen, hstart) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err("truncated .npy header".into());
            }
            (
                u32::from_le_bytes(bytes[8..12].try_into().expect("4")) as usize,
                12,
            )
        }
        _ => return Err(format!("unsupported .npy version {major}.{minor}")),
    };
    let hend = hstart
        .checked_add(hlen)
        .filter(|&e| e <= bytes.len())
        .ok_or("truncated .npy header")?;
    let header =
        std::str::from_utf8(&bytes[hstart..hend]).map_err(|_| "the .npy header is not text")?;

    let descr =
        dict_value(header, "descr").ok_or_else(|| format!("no 'descr' in header {header:?}"))?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let fortran = dict_value(header, "fortran_order")
        .ok_or_else(|| format!("no 'fortran_order' in header {header:?}"))?;
    let shape_s =
        dict_value(header, "shape").ok_or_else(|| format!("no 'shape' in header {header:?}"))?;
    match fortran {
        "False" => {}
        "True" => {
            return Err(
                "Fortran-order arrays are not supported (save with np.ascontiguousarray)".into(),
            )
        }
        other => return Err(format!("bad fortran_order value '{other}'")),
    }
    let shape = parse_shape(shape_s)?;
    let numel = shape
        .iter()
        .try_fold(1usize, |a, &b| a.checked_mul(b))
        .ok_or("shape overflows")?;

    let body = &bytes[hend..];
    let esize = match descr {
        "<f4" => 4,
        "<f8" | "<i8" => 8,
        "<i4" => 4,
        "|u1" | "<u1" => 1,
        "|O" => return Err("object arrays (pickles) are not supported".into()),
        d if d.starts_with('>') => return Err(format!("big-endian dtype '{d}' is not supported")),
        d => {
            return Err(format!(
                "unsupported dtype '{d}' (supported: <f4, <f8, <i8, <i4, |u1)"
            ))
        }
    };
    let need = numel.checked_mul(esize).ok_or("shape overflows")?;
    if body.len() != need {
        return Err(format!(
            "data is {} bytes, but shape {shape:?} of {descr} needs {need}",
            body.len()
        ));
    }
    let data = match descr {
        "<f4" => NpyData::F32(
            body.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
                .collect(),
        ),
        "<f8" => NpyData::F32(
            body.chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8")) as f32)
                .collect(),
        ),
        "<i8" => NpyData::I64(
            body.chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8")))
                .collect(),
        ),
        "<i4" => NpyData::I32(
            body.chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().expect("4")))
                .collect(),
        ),
        _ => NpyData::U8(body.to_vec()),
    };
    Ok(NpyArray { shape, data })
}

/// The raw text of `'key': value` in a header dict literal (value up to the next top-level
/// comma or closing brace).
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pat_s = format!("'{key}'");
    let pat_d = format!("\"{key}\"");
    let at = header
        .find(&pat_s)
        .map(|i| i + pat_s.len())
        .or_else(|| header.find(&pat_d).map(|i| i + pat_d.len()))?;
    let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
    let mut depth = 0i32;
    for (i, c) in rest.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(rest[..=i].trim());
                }
            }
            ',' | '}' if depth == 0 => return Some(rest[..i].trim()),
            _ => {}
        }
    }
    None
}

fn parse_shape(s: &str) -> std::result::Result<Vec<usize>, String> {
    let inner = s
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("bad shape '{s}'"))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.trim_end_matches('L')
                .parse::<usize>()
                .map_err(|_| format!("bad shape '{s}'"))
        })
        .collect()
}

/// The header `numpy.save` writes (format 1.0): dict literal, spaces, `\n`, total a multiple
/// of 64 bytes (numpy's `_wrap_header`, including its growth room).
fn header_bytes(descr: &str, shape: &[usize]) -> Vec<u8> {
    let shape_s = match shape {
        [] => "()".to_string(),
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_s}, }}");
    // numpy leaves room to grow the first axis in place (GROWTH_AXIS_MAX_DIGITS = 21).
    if let Some(first) = shape.first() {
        dict.extend(std::iter::repeat_n(
            ' ',
            21usize.saturating_sub(first.to_string().len()),
        ));
    }
    let unpadded = MAGIC.len() + 2 + 2 + dict.len() + 1;
    let pad = 64 - unpadded % 64;
    let hlen = dict.len() + pad + 1;
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + hlen);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(hlen as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', pad));
    out.push(b'\n');
    out
}

fn check_shape(path: &Path, shape: &[usize], len: usize) -> Result<()> {
    let n: usize = shape.iter().product();
    if n != len {
        return Err(Error::Invalid(format!(
            "{}: shape {shape:?} holds {n} elements but {len} were given",
            path.display()
        )));
    }
    Ok(())
}

/// Write an f32 array (C order) atomically.
pub fn write_npy_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    check_shape(path, shape, data.len())?;
    let header = header_bytes("<f4", shape);
    write_atomic(path, |w| {
        w.write_all(&header).map_err(werr(path))?;
        for v in data {
            w.write_all(&v.to_le_bytes()).map_err(werr(path))?;
        }
        Ok(())
    })
}

/// Write an i64 array (C order) atomically.
pub fn write_npy_i64(path: &Path, shape: &[usize], data: &[i64]) -> Result<()> {
    check_shape(path, shape, data.len())?;
    let header = header_bytes("<i8", shape);
    write_atomic(path, |w| {
        w.write_all(&header).map_err(werr(path))?;
        for v in data {
            w.write_all(&v.to_le_bytes()).map_err(werr(path))?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_matches_numpy() {
        let h = header_bytes("<f4", &[2, 3, 64, 64]);
        assert_eq!(h.len() % 64, 0);
        let text = std::str::from_utf8(&h[10..]).unwrap();
        assert!(
            text.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 64, 64), }")
        );
        assert!(text.ends_with(" \n"));
        assert!(std::str::from_utf8(&header_bytes("<i8", &[5])[10..])
            .unwrap()
            .contains("'shape': (5,), }"));
        assert!(std::str::from_utf8(&header_bytes("<i8", &[])[10..])
            .unwrap()
            .contains("'shape': (), }"));
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        let mut b = header_bytes("<f4", &[2]);
        b.extend([0u8; 8]);
        assert_eq!(
            parse_npy(&b).unwrap(),
            NpyArray {
                shape: vec![2],
                data: NpyData::F32(vec![0.0, 0.0])
            }
        );
        let replace = |from: &[u8], to: &[u8]| {
            let i = b.windows(from.len()).position(|w| w == from).unwrap();
            let mut c = b.clone();
            c[i..i + from.len()].copy_from_slice(to);
            c
        };
        assert!(parse_npy(&replace(b"False", b"True "))
            .unwrap_err()
            .contains("Fortran"));
        assert!(parse_npy(&replace(b"'<f4'", b"'|O' "))
            .unwrap_err()
            .contains("pickles"));
        assert!(parse_npy(&replace(b"'<f4'", b"'>f4'"))
            .unwrap_err()
            .contains("big-endian"));
        assert!(parse_npy(&b[..b.len() - 1])
            .unwrap_err()
            .contains("needs 8"));
        assert!(parse_npy(b"hello").unwrap_err().contains("magic"));
    }
}
