//! Images in and out, with the official inference preprocessing.
//!
//! `inference.py` resizes the shorter side to int(img_size · 1.125) (torchvision `Resize`,
//! bilinear with antialias), center-crops img_size (torchvision `CenterCrop`), and maps pixels
//! to [-1, 1]. torchvision applies `Resize` to a PIL image, so the resize is Pillow's 8-bit
//! bilinear resampling; [`resize_bilinear`] re-implements exactly that: a triangle filter whose
//! support is scaled by the downscale factor, coefficients normalised per output pixel and
//! rounded to 22-bit fixed point, a horizontal pass to an 8-bit intermediate image, then a
//! vertical pass, each rounded and clamped to 0..=255. (torchvision's float path for *tensor*
//! inputs skips the 8-bit intermediate rounding and can differ by one level.) The same code
//! with Pillow's bicubic kernel ([`resize_bicubic`], [`Resample::Bicubic`]) serves the
//! training transforms (`train::data`).
//!
//! An image that already is img_size × img_size is used as is, which is how the goldens'
//! `input.npy` was made. Pixels map to `x / 127.5 − 1` in f32 (the goldens' formula;
//! torchvision's `ToTensor` then `·2 − 1` can differ from it by one f32 ulp).
//!
//! Saving maps back with round((x + 1) · 127.5) (ties to even, as torch/numpy round), clamped
//! to 0..=255, the reference's rule; PNGs are written atomically.

use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::tensor::HostTensor;
use image::RgbImage;
use std::io::Write;
use std::path::Path;

/// Shorter-side resize factor of `inference.py` (`resize_ratio`).
pub const RESIZE_RATIO: f64 = 1.125;

/// Decode a PNG or JPEG file to 8-bit RGB (alpha dropped, grey replicated, 16-bit scaled).
/// EXIF orientation is not applied, as Pillow's `Image.open` does not apply it either.
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let reader = image::ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    let img = reader
        .decode()
        .map_err(|e| Error::format(path, format!("cannot decode image: {e}")))?;
    Ok(img.to_rgb8())
}

/// Load an image and preprocess it: f32 (3, S, S) in [-1, 1].
pub fn load_and_preprocess(path: &Path, img_size: usize) -> Result<HostTensor> {
    preprocess(&load_rgb(path)?, img_size)
}

/// Load and preprocess several images into one (B, 3, S, S) batch.
pub fn load_batch<P: AsRef<Path>>(paths: &[P], img_size: usize) -> Result<HostTensor> {
    let mut data = Vec::with_capacity(paths.len() * 3 * img_size * img_size);
    for p in paths {
        data.extend(load_and_preprocess(p.as_ref(), img_size)?.into_f32()?);
    }
    HostTensor::f32(&[paths.len(), 3, img_size, img_size], data)
}

/// The official inference preprocessing of one RGB image: (3, S, S) f32 in [-1, 1].
/// An S × S image is used as is; anything else is resized (shorter side to int(S · 1.125),
/// Pillow bilinear) and center-cropped to S × S.
pub fn preprocess(img: &RgbImage, img_size: usize) -> Result<HostTensor> {
    if img_size == 0 {
        return Err(Error::Invalid("image size must be positive".into()));
    }
    if img.width() as usize == img_size && img.height() as usize == img_size {
        return Ok(to_tensor(img));
    }
    let short = (img_size as f64 * RESIZE_RATIO) as usize;
    let resized = resize_shorter(img, short)?;
    let cropped = center_crop(&resized, img_size)?;
    Ok(to_tensor(&cropped))
}

/// torchvision `Resize(size)` with an int size: the shorter side becomes `size`, the longer
/// int(size · long / short).
pub fn resize_shorter(img: &RgbImage, size: usize) -> Result<RgbImage> {
    resize_shorter_with(img, size, Resample::Bilinear)
}

/// [`resize_shorter`] with another Pillow filter (the training pipeline's eval transform uses
/// bicubic).
pub fn resize_shorter_with(img: &RgbImage, size: usize, filter: Resample) -> Result<RgbImage> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 || size == 0 {
        return Err(Error::Invalid(format!(
            "cannot resize a {w}x{h} image to shorter side {size}"
        )));
    }
    let (short, long) = if w <= h { (w, h) } else { (h, w) };
    let new_long = (size as f64 * long as f64 / short as f64) as usize;
    let (nw, nh) = if w <= h {
        (size, new_long)
    } else {
        (new_long, size)
    };
    Ok(resize(img, nw as u32, nh as u32, filter))
}

/// torchvision `CenterCrop` offset: int(round((len − crop) / 2)) with Python's round (half to
/// even).
pub fn center_crop_offset(len: usize, crop: usize) -> usize {
    let d = len - crop;
    let half = d / 2;
    if d.is_multiple_of(2) || half.is_multiple_of(2) {
        half
    } else {
        half + 1
    }
}

/// torchvision `CenterCrop(size)` for an image at least `size` on both sides.
pub fn center_crop(img: &RgbImage, size: usize) -> Result<RgbImage> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w < size || h < size {
        return Err(Error::Invalid(format!(
            "cannot center-crop {size}x{size} from a {w}x{h} image"
        )));
    }
    let (top, left) = (center_crop_offset(h, size), center_crop_offset(w, size));
    Ok(
        image::imageops::crop_imm(img, left as u32, top as u32, size as u32, size as u32)
            .to_image(),
    )
}

/// Pixels to f32 (3, H, W): `x / 127.5 − 1`.
pub fn to_tensor(img: &RgbImage) -> HostTensor {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let raw = img.as_raw();
    let mut data = vec![0f32; 3 * h * w];
    for c in 0..3 {
        for i in 0..h * w {
            data[c * h * w + i] = raw[i * 3 + c] as f32 / 127.5 - 1.0;
        }
    }
    HostTensor::f32(&[3, h, w], data).expect("sizes match")
}

/// f32 (3, H, W) or (1, 3, H, W) in [-1, 1] to pixels: round((x + 1) · 127.5), clamped.
pub fn tensor_to_rgb(t: &HostTensor) -> Result<RgbImage> {
    let (h, w) = match t.shape.as_slice() {
        [3, h, w] | [1, 3, h, w] => (*h, *w),
        s => {
            return Err(Error::shape(
                "save image",
                "expected (3, H, W) or (1, 3, H, W)",
                &[s],
            ))
        }
    };
    let data = t.as_f32()?;
    let mut raw = vec![0u8; h * w * 3];
    for c in 0..3 {
        for i in 0..h * w {
            raw[i * 3 + c] = to_u8(data[c * h * w + i]);
        }
    }
    Ok(RgbImage::from_raw(w as u32, h as u32, raw).expect("sizes match"))
}

fn to_u8(x: f32) -> u8 {
    let v = ((x + 1.0) * 127.5).round_ties_even();
    if v.is_nan() {
        0
    } else {
        v.clamp(0.0, 255.0) as u8
    }
}

/// Write an RGB image as PNG, atomically.
pub fn save_rgb_png(path: &Path, img: &RgbImage) -> Result<()> {
    let mut buf = Vec::new();
    img.write_with_encoder(image::codecs::png::PngEncoder::new(&mut buf))
        .map_err(|e| Error::format(path, format!("PNG encoding failed: {e}")))?;
    write_atomic(path, |w| w.write_all(&buf).map_err(|e| Error::io(path, e)))
}

/// Save an f32 (3, H, W) or (1, 3, H, W) image in [-1, 1] as PNG, atomically.
pub fn save_png(path: &Path, t: &HostTensor) -> Result<()> {
    save_rgb_png(path, &tensor_to_rgb(t)?)
}

/// Save two images of equal height next to each other in one PNG (left, then right).
pub fn save_side_by_side(path: &Path, left: &HostTensor, right: &HostTensor) -> Result<()> {
    let (a, b) = (tensor_to_rgb(left)?, tensor_to_rgb(right)?);
    if a.height() != b.height() {
        return Err(Error::shape(
            "side by side",
            "images need equal heights",
            &[&left.shape, &right.shape],
        ));
    }
    let mut out = RgbImage::new(a.width() + b.width(), a.height());
    image::imageops::replace(&mut out, &a, 0, 0);
    image::imageops::replace(&mut out, &b, a.width() as i64, 0);
    save_rgb_png(path, &out)
}

// ------------------------------------------------------------------------------------------------
// Pillow's 8-bit resampling (bilinear and bicubic)
// ------------------------------------------------------------------------------------------------

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// A Pillow resampling filter. Both are antialiased the way Pillow does it: when downscaling,
/// the filter's support is stretched by the scale factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resample {
    /// `Image.BILINEAR`: the triangle filter, support 1.
    Bilinear,
    /// `Image.BICUBIC`: cubic convolution with a = −0.5 (Catmull-Rom), support 2.
    Bicubic,
}

impl Resample {
    fn support(self) -> f64 {
        match self {
            Resample::Bilinear => 1.0,
            Resample::Bicubic => 2.0,
        }
    }
    fn weight(self, x: f64) -> f64 {
        match self {
            Resample::Bilinear => triangle(x),
            Resample::Bicubic => bicubic(x),
        }
    }
}

/// Per output pixel: first input index, tap count, and `ksize` fixed-point weights.
struct Coeffs {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    kk: Vec<i32>,
}

fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// Pillow's `bicubic_filter` (a = −0.5).
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc`.
fn coeffs(in_size: usize, out_size: usize, filter: Resample) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale; // scaled when downscaling
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut kk = vec![0i32; out_size * ksize];
    let mut w = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = xmax.saturating_sub(xmin);
        let mut ww = 0.0;
        for (x, wx) in w.iter_mut().enumerate().take(n) {
            *wx = filter.weight((x as f64 + xmin as f64 - center + 0.5) * ss);
            ww += *wx;
        }
        for x in 0..n {
            let k = if ww != 0.0 { w[x] / ww } else { w[x] };
            let scaled = k * (1u32 << PRECISION_BITS) as f64;
            kk[xx * ksize + x] = if k < 0.0 {
                (scaled - 0.5) as i32
            } else {
                (scaled + 0.5) as i32
            };
        }
        bounds.push((xmin, n));
    }
    Coeffs { ksize, bounds, kk }
}

fn clip8(v: i32) -> u8 {
    if v >= (1 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// Pillow `Image.resize((w, h), Image.BILINEAR)` on an RGB image, bit for bit.
pub fn resize_bilinear(img: &RgbImage, out_w: u32, out_h: u32) -> RgbImage {
    resize(img, out_w, out_h, Resample::Bilinear)
}

/// Pillow `Image.resize((w, h), Image.BICUBIC)` on an RGB image, bit for bit.
pub fn resize_bicubic(img: &RgbImage, out_w: u32, out_h: u32) -> RgbImage {
    resize(img, out_w, out_h, Resample::Bicubic)
}

/// Pillow `Image.resize((w, h), filter)` on an RGB image, bit for bit: a horizontal pass to an
/// 8-bit intermediate, then a vertical pass; a pass whose size does not change is skipped.
pub fn resize(img: &RgbImage, out_w: u32, out_h: u32, filter: Resample) -> RgbImage {
    let (in_w, in_h) = (img.width() as usize, img.height() as usize);
    let (ow, oh) = (out_w as usize, out_h as usize);
    let mut cur: Vec<u8> = img.as_raw().clone();
    let mut cur_w = in_w;
    if ow != in_w {
        let c = coeffs(in_w, ow, filter);
        let mut out = vec![0u8; ow * in_h * 3];
        for y in 0..in_h {
            let row = &cur[y * in_w * 3..(y + 1) * in_w * 3];
            for (xx, &(xmin, n)) in c.bounds.iter().enumerate() {
                let k = &c.kk[xx * c.ksize..xx * c.ksize + n];
                for ch in 0..3 {
                    let mut ss = 1i32 << (PRECISION_BITS - 1);
                    for (x, &kx) in k.iter().enumerate() {
                        ss += row[(xmin + x) * 3 + ch] as i32 * kx;
                    }
                    out[(y * ow + xx) * 3 + ch] = clip8(ss);
                }
            }
        }
        cur = out;
        cur_w = ow;
    }
    if oh != in_h {
        let c = coeffs(in_h, oh, filter);
        let mut out = vec![0u8; cur_w * oh * 3];
        for (yy, &(ymin, n)) in c.bounds.iter().enumerate() {
            let k = &c.kk[yy * c.ksize..yy * c.ksize + n];
            for x in 0..cur_w {
                for ch in 0..3 {
                    let mut ss = 1i32 << (PRECISION_BITS - 1);
                    for (y, &ky) in k.iter().enumerate() {
                        ss += cur[((ymin + y) * cur_w + x) * 3 + ch] as i32 * ky;
                    }
                    out[(yy * cur_w + x) * 3 + ch] = clip8(ss);
                }
            }
        }
        cur = out;
    }
    RgbImage::from_raw(out_w, out_h, cur).expect("sizes match")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_offsets_round_half_to_even() {
        assert_eq!(center_crop_offset(288, 256), 16);
        assert_eq!(center_crop_offset(289, 256), 16); // 16.5 -> 16
        assert_eq!(center_crop_offset(291, 256), 18); // 17.5 -> 18
        assert_eq!(center_crop_offset(256, 256), 0);
        assert_eq!(center_crop_offset(257, 256), 0); // 0.5 -> 0
        assert_eq!(center_crop_offset(259, 256), 2); // 1.5 -> 2
    }

    #[test]
    fn pixel_round_trip() {
        for v in 0..=255u8 {
            assert_eq!(to_u8(v as f32 / 127.5 - 1.0), v);
        }
        assert_eq!((to_u8(-3.0), to_u8(2.0), to_u8(f32::NAN)), (0, 255, 0));
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = RgbImage::from_pixel(37, 23, image::Rgb([10, 128, 250]));
        let r = resize_bilinear(&img, 11, 7);
        assert!(r.pixels().all(|p| p.0 == [10, 128, 250]));
        let r = resize_bilinear(&img, 80, 50);
        assert!(r.pixels().all(|p| p.0 == [10, 128, 250]));
    }
}
