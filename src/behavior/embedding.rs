//! `real[]` embeddings read in place: the array header is checked and the elements are used
//! where they lie (a detoasted argument, or the tuple on its buffer page), never copied.

use pgrx::pg_sys;

use crate::common::error::PgaError;

pub const MAX_DIMENSIONS: usize = 16_000;

/// Why an array is not a usable embedding (the message names the argument or column).
#[derive(Debug, PartialEq)]
pub enum Invalid {
    NotOneDimensional(i32),
    Length(usize),
    HasNull,
    NotFinite(usize),
    AllZero,
}

impl Invalid {
    pub fn raise(self, what: &str) -> ! {
        let (message, detail) = match self {
            Invalid::NotOneDimensional(n) => {
                (format!("{what} must be a one-dimensional array"), format!("It has {n} dimensions."))
            }
            Invalid::Length(n) => (
                format!("{what} must have between 1 and {MAX_DIMENSIONS} elements"),
                format!("It has {n} elements."),
            ),
            Invalid::HasNull => (format!("{what} must not contain NULL elements"), String::new()),
            Invalid::NotFinite(i) => (
                format!("{what} must contain only finite numbers"),
                format!("Element {} is NaN or infinite.", i + 1),
            ),
            Invalid::AllZero => (
                format!("{what} must not be all zeros"),
                "A zero vector has no direction, so no cosine similarity.".into(),
            ),
        };
        let mut e = PgaError::invalid(message);
        if !detail.is_empty() {
            e = e.detail(detail);
        }
        e.raise()
    }
}

/// The elements of a `real[]` whose varlena header is plain (not compressed, external or
/// short), or `None` when it must be detoasted first.
///
/// # Safety
/// `ptr` must point to a valid `real[]` value.
pub unsafe fn elements<'a>(ptr: *const pg_sys::varlena) -> Result<&'a [f32], Invalid> {
    let array = ptr as *const pg_sys::ArrayType;
    let ndim = (*array).ndim;
    if ndim == 0 {
        return Err(Invalid::Length(0));
    }
    if ndim != 1 {
        return Err(Invalid::NotOneDimensional(ndim));
    }
    let dims = (array as *const u8).add(std::mem::size_of::<pg_sys::ArrayType>()) as *const i32;
    let n = *dims as usize;
    if n == 0 || n > MAX_DIMENSIONS {
        return Err(Invalid::Length(n));
    }
    if (*array).dataoffset != 0 {
        return Err(Invalid::HasNull);
    }
    // ARR_OVERHEAD_NONULLS(1): the header and one (dimension, lower bound) pair, MAXALIGNed.
    let overhead = (std::mem::size_of::<pg_sys::ArrayType>() + 8).next_multiple_of(8);
    let data = (array as *const u8).add(overhead) as *const f32;
    Ok(std::slice::from_raw_parts(data, n))
}

/// Whether a varlena must be detoasted before its bytes can be read in place.
///
/// # Safety
/// `ptr` must point to a valid varlena.
pub unsafe fn needs_detoast(ptr: *const pg_sys::varlena) -> bool {
    // VARATT_IS_EXTENDED: anything but a plain 4-byte header (little-endian: low bits 00).
    let first = *(ptr as *const u8);
    first & 0x03 != 0x00
}

/// Checks what DESIGN.md 3.3 asks of every embedding: finite elements, not all zeros.
pub fn validate(values: &[f32]) -> Result<(), Invalid> {
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(Invalid::NotFinite(i));
    }
    if values.iter().all(|&v| v == 0.0) {
        return Err(Invalid::AllZero);
    }
    Ok(())
}

/// A valid embedding scaled by a power of two (exact in floating point) to a norm in [1, 2), so
/// that single-precision sums of its products with any stored embedding stay far from underflow
/// and overflow; `norm` is the scaled vector's norm as the kernel computes it.
pub struct Scaled {
    pub values: Vec<f32>,
    pub norm: f64,
    /// `values = original · 2^-exponent`.
    pub exponent: i32,
}

pub fn scaled(values: &[f32]) -> Scaled {
    let norm64 = values.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
    let exponent = norm64.log2().floor() as i32;
    let factor = 2f64.powi(-exponent);
    let values: Vec<f32> = values.iter().map(|&v| (v as f64 * factor) as f32).collect();
    let norm = (super::kernel::dot(&values, &values) as f64).sqrt();
    Scaled { values, norm, exponent }
}

/// The norm kept with a stored embedding: its scaled norm times the scale, so that a vector's
/// similarity with itself comes out as `D / sqrt(D)²`, the same as in `cosine_similarity`.
pub fn kept_norm(values: &[f32]) -> f64 {
    let s = scaled(values);
    s.norm * 2f64.powi(s.exponent)
}

/// A detoasted `real[]` datum (a copy only when it was compressed, external or short).
///
/// # Safety
/// `datum` must be a non-null `real[]` datum.
pub unsafe fn detoasted(datum: pg_sys::Datum) -> *const pg_sys::varlena {
    let ptr = datum.cast_mut_ptr::<pg_sys::varlena>();
    if needs_detoast(ptr) { pg_sys::pg_detoast_datum(ptr) } else { ptr }
}
