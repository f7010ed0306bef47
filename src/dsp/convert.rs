//! Sample conversion between the engine's interleaved f32 and a device's native
//! little-endian samples (RT audio thread).
//!
//! Design: the engine works in f32 where full scale is `[-1.0, 1.0)`; an N-bit integer
//! sample `k` means `k / 2^(N-1)`. That scale (rather than `2^(N-1) - 1`) makes integer →
//! f32 → integer exact for 16 and 24 bits (f32 holds 24 significant bits) and maps the
//! most negative code to exactly -1.0. The way back multiplies by `2^(N-1)`, rounds to
//! nearest and *saturates*: an overloaded mix clips at the rails instead of wrapping to
//! the opposite sign, which is the loudest possible failure. Rust's float → int `as`
//! casts saturate and turn NaN into 0, so a NaN from a broken process callback becomes
//! silence, never noise or a panic. Float devices get the same clamp to `[-1.0, 1.0]`
//! on the way out, because many drivers and plugins convert float to integer downstream
//! without saturating.
//!
//! Native samples are byte slices in the device's little-endian layout, which is exactly
//! what ALSA's interleaved read/write calls take; no alignment is assumed. The functions
//! convert as many whole samples as both slices hold and return that count, so a length
//! mismatch truncates instead of panicking on the RT thread.

use crate::device::SampleFormat;

/// Bytes one sample of `format` occupies in a device buffer.
///
/// # Example
/// ```
/// use izyrt::device::SampleFormat;
/// use izyrt::dsp::convert::sample_bytes;
/// assert_eq!(sample_bytes(SampleFormat::S16), 2);
/// assert_eq!(sample_bytes(SampleFormat::S24Packed), 3);
/// assert_eq!(sample_bytes(SampleFormat::S24), 4);
/// ```
pub const fn sample_bytes(format: SampleFormat) -> usize {
    match format {
        SampleFormat::S16 => 2,
        SampleFormat::S24Packed => 3,
        SampleFormat::S24 | SampleFormat::S32 | SampleFormat::F32 => 4,
    }
}

const S16_SCALE: f32 = 32_768.0;
const S24_SCALE: f32 = 8_388_608.0;
const S32_SCALE: f64 = 2_147_483_648.0;

/// One f32 sample to a 16-bit code: scaled by 2^15, rounded, saturated (NaN → 0).
#[inline]
pub fn f32_to_s16(x: f32) -> i16 {
    (x * S16_SCALE).round() as i16
}

/// One f32 sample to a 24-bit code in an i32: scaled by 2^23, rounded, saturated to
/// `-2^23 ..= 2^23 - 1` (NaN → 0).
#[inline]
pub fn f32_to_s24(x: f32) -> i32 {
    ((x * S24_SCALE).round() as i32).clamp(-8_388_608, 8_388_607)
}

/// One f32 sample to a 32-bit code: scaled by 2^31 in f64 (so the top code is reachable),
/// rounded, saturated (NaN → 0).
#[inline]
pub fn f32_to_s32(x: f32) -> i32 {
    (f64::from(x) * S32_SCALE).round() as i32
}

/// One f32 sample for a float device: clamped to `[-1.0, 1.0]`, NaN → 0.
#[inline]
pub fn f32_to_f32_clamped(x: f32) -> f32 {
    if x.is_nan() { 0.0 } else { x.clamp(-1.0, 1.0) }
}

/// A 16-bit code to f32 (`k / 2^15`).
#[inline]
pub fn s16_to_f32(k: i16) -> f32 {
    f32::from(k) * (1.0 / S16_SCALE)
}

/// A 24-bit code (sign-extended in an i32) to f32 (`k / 2^23`).
#[inline]
pub fn s24_to_f32(k: i32) -> f32 {
    k as f32 * (1.0 / S24_SCALE)
}

/// A 32-bit code to f32 (`k / 2^31`, rounded to f32's 24 significant bits).
#[inline]
pub fn s32_to_f32(k: i32) -> f32 {
    (f64::from(k) * (1.0 / S32_SCALE)) as f32
}

/// Converts interleaved f32 samples to `format`'s little-endian bytes in `dst`.
///
/// Returns the number of samples converted: `min(src.len(), dst.len() / sample_bytes)`.
/// Allocation-free and panic-free whatever the data.
///
/// # Example
/// ```
/// use izyrt::device::SampleFormat;
/// use izyrt::dsp::convert::from_f32;
/// let mut out = [0u8; 6];
/// assert_eq!(from_f32(SampleFormat::S16, &[0.5, -1.0, 7.0], &mut out), 3);
/// assert_eq!(out, [0x00, 0x40, 0x00, 0x80, 0xff, 0x7f]); // 16384, -32768, 32767 (clipped)
/// ```
pub fn from_f32(format: SampleFormat, src: &[f32], dst: &mut [u8]) -> usize {
    let width = sample_bytes(format);
    let n = src.len().min(dst.len() / width);
    let pairs = src[..n].iter().zip(dst.chunks_exact_mut(width));
    match format {
        SampleFormat::S16 => {
            pairs.for_each(|(x, d)| d.copy_from_slice(&f32_to_s16(*x).to_le_bytes()))
        }
        SampleFormat::S24 => {
            pairs.for_each(|(x, d)| d.copy_from_slice(&f32_to_s24(*x).to_le_bytes()))
        }
        SampleFormat::S24Packed => {
            pairs.for_each(|(x, d)| d.copy_from_slice(&f32_to_s24(*x).to_le_bytes()[..3]))
        }
        SampleFormat::S32 => {
            pairs.for_each(|(x, d)| d.copy_from_slice(&f32_to_s32(*x).to_le_bytes()))
        }
        SampleFormat::F32 => {
            pairs.for_each(|(x, d)| d.copy_from_slice(&f32_to_f32_clamped(*x).to_le_bytes()))
        }
    }
    n
}

/// Converts `format`'s little-endian bytes in `src` to interleaved f32 samples in `dst`.
///
/// Returns the number of samples converted: `min(src.len() / sample_bytes, dst.len())`.
/// For [`SampleFormat::S24`] the top byte of each 32-bit word is ignored (drivers do not
/// promise to sign-extend it). Float samples pass unchanged except NaN, which becomes 0.
///
/// # Example
/// ```
/// use izyrt::device::SampleFormat;
/// use izyrt::dsp::convert::to_f32;
/// let mut out = [0f32; 2];
/// // S24_3LE: 0x400000 = +0.5, 0x800000 = -1.0
/// assert_eq!(to_f32(SampleFormat::S24Packed, &[0x00, 0x00, 0x40, 0x00, 0x00, 0x80], &mut out), 2);
/// assert_eq!(out, [0.5, -1.0]);
/// ```
pub fn to_f32(format: SampleFormat, src: &[u8], dst: &mut [f32]) -> usize {
    let width = sample_bytes(format);
    let n = dst.len().min(src.len() / width);
    let pairs = dst[..n].iter_mut().zip(src.chunks_exact(width));
    match format {
        SampleFormat::S16 => {
            pairs.for_each(|(y, s)| *y = s16_to_f32(i16::from_le_bytes([s[0], s[1]])))
        }
        SampleFormat::S24 => pairs.for_each(|(y, s)| {
            // Sign-extend from bit 23, ignoring whatever the driver left in the top byte.
            *y = s24_to_f32(i32::from_le_bytes([0, s[0], s[1], s[2]]) >> 8);
        }),
        SampleFormat::S24Packed => pairs.for_each(|(y, s)| {
            *y = s24_to_f32(i32::from_le_bytes([0, s[0], s[1], s[2]]) >> 8);
        }),
        SampleFormat::S32 => {
            pairs.for_each(|(y, s)| *y = s32_to_f32(i32::from_le_bytes([s[0], s[1], s[2], s[3]])))
        }
        SampleFormat::F32 => pairs.for_each(|(y, s)| {
            let x = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
            *y = if x.is_nan() { 0.0 } else { x };
        }),
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [SampleFormat; 5] = [
        SampleFormat::F32,
        SampleFormat::S32,
        SampleFormat::S24,
        SampleFormat::S24Packed,
        SampleFormat::S16,
    ];

    fn roundtrip(format: SampleFormat, x: &[f32]) -> Vec<f32> {
        let mut bytes = vec![0u8; x.len() * sample_bytes(format)];
        assert_eq!(from_f32(format, x, &mut bytes), x.len());
        let mut y = vec![0f32; x.len()];
        assert_eq!(to_f32(format, &bytes, &mut y), x.len());
        y
    }

    #[test]
    fn every_s16_code_round_trips_exactly() {
        for k in i16::MIN..=i16::MAX {
            assert_eq!(f32_to_s16(s16_to_f32(k)), k, "code {k}");
        }
    }

    #[test]
    fn s24_codes_round_trip_exactly_in_both_layouts() {
        let codes = (-8_388_608..=8_388_607)
            .step_by(97)
            .chain([-8_388_608, -1, 0, 1, 8_388_607]);
        for k in codes {
            assert_eq!(f32_to_s24(s24_to_f32(k)), k, "code {k}");
            for format in [SampleFormat::S24, SampleFormat::S24Packed] {
                let x = s24_to_f32(k);
                assert_eq!(roundtrip(format, &[x]), [x], "{format:?} code {k}");
            }
        }
    }

    #[test]
    fn s32_round_trip_is_within_f32_precision() {
        for k in [
            i32::MIN,
            -1 << 30,
            -12_345_678,
            -1,
            0,
            1,
            1 << 20,
            0x7fff_ff00,
            i32::MAX,
        ] {
            let back = f32_to_s32(s32_to_f32(k));
            // f32 keeps 24 significant bits: the error is below one part in 2^24 of full scale.
            assert!(
                (i64::from(back) - i64::from(k)).abs() <= 1 << 8,
                "{k} -> {back}"
            );
        }
        // f32 → s32 → f32 is exact for any f32 in range with no bits below 2^-31.
        for x in [-1.0f32, -0.5, 0.25, 0.123_456_79, 1.0 - f32::EPSILON] {
            assert_eq!(roundtrip(SampleFormat::S32, &[x]), [x]);
        }
    }

    #[test]
    fn f32_samples_in_range_pass_through_every_format_within_one_step() {
        let x: Vec<f32> = (0..1000)
            .map(|i| ((i as f32) * 0.0123).sin() * 0.9)
            .collect();
        for format in ALL {
            let step = match format {
                SampleFormat::S16 => 1.0 / 32_768.0,
                SampleFormat::S24 | SampleFormat::S24Packed => 1.0 / 8_388_608.0,
                SampleFormat::S32 | SampleFormat::F32 => 1e-7,
            };
            for (a, b) in x.iter().zip(roundtrip(format, &x)) {
                assert!((a - b).abs() <= step / 2.0 + 1e-9, "{format:?}: {a} -> {b}");
            }
        }
        assert_eq!(roundtrip(SampleFormat::F32, &x), x, "float is bit-exact");
    }

    #[test]
    fn extremes_and_overload_clip_instead_of_wrapping() {
        let x = [
            1.0f32,
            -1.0,
            1.5,
            -1.5,
            1e30,
            -1e30,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ];
        let want = [1.0f32, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0];
        for format in ALL {
            let y = roundtrip(format, &x);
            for (i, (got, w)) in y.iter().zip(want).enumerate() {
                // Integer formats top out one step below +1.0.
                assert!(
                    (got - w).abs() <= 1.0 / 32_768.0,
                    "{format:?} x={} -> {got}",
                    x[i]
                );
                assert_eq!(
                    got.signum(),
                    w.signum(),
                    "{format:?} x={} wrapped to {got}",
                    x[i]
                );
            }
        }
        assert_eq!(f32_to_s16(1.0), i16::MAX);
        assert_eq!(f32_to_s16(-1.0), i16::MIN);
        assert_eq!(f32_to_s16(2.0), i16::MAX);
        assert_eq!(f32_to_s24(1.0), 8_388_607);
        assert_eq!(f32_to_s24(-3.0), -8_388_608);
        assert_eq!(f32_to_s32(1.0), i32::MAX);
        assert_eq!(f32_to_s32(-1.0), i32::MIN);
        assert_eq!(f32_to_s32(-7.0), i32::MIN);
    }

    #[test]
    fn nan_becomes_silence() {
        for format in ALL {
            assert_eq!(roundtrip(format, &[f32::NAN]), [0.0], "{format:?}");
        }
        let mut y = [1.0f32];
        to_f32(SampleFormat::F32, &f32::NAN.to_le_bytes(), &mut y);
        assert_eq!(y, [0.0]);
    }

    #[test]
    fn byte_layouts_are_little_endian_alsa() {
        let x = [s24_to_f32(0x12_3456), s24_to_f32(-2)];
        let mut packed = [0u8; 6];
        from_f32(SampleFormat::S24Packed, &x, &mut packed);
        assert_eq!(packed, [0x56, 0x34, 0x12, 0xfe, 0xff, 0xff]);
        let mut word = [0u8; 8];
        from_f32(SampleFormat::S24, &x, &mut word);
        assert_eq!(word, [0x56, 0x34, 0x12, 0x00, 0xfe, 0xff, 0xff, 0xff]);
        // S24_LE: the top byte is ignored on the way in.
        let mut y = [0f32; 1];
        to_f32(SampleFormat::S24, &[0xff, 0xff, 0x7f, 0xa5], &mut y);
        assert_eq!(y, [s24_to_f32(0x7f_ffff)]);
        let mut s32 = [0u8; 4];
        from_f32(SampleFormat::S32, &[-1.0], &mut s32);
        assert_eq!(s32, [0x00, 0x00, 0x00, 0x80]);
    }

    #[test]
    fn mismatched_lengths_truncate_without_panicking() {
        let mut dst = [0u8; 5];
        assert_eq!(from_f32(SampleFormat::S16, &[0.1, 0.2, 0.3], &mut dst), 2);
        let mut y = [0f32; 4];
        assert_eq!(to_f32(SampleFormat::S24Packed, &[0u8; 7], &mut y), 2);
        assert_eq!(to_f32(SampleFormat::S32, &[], &mut y), 0);
    }
}
