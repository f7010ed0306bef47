//! Mapping a clip's channel count onto the engine's.
//!
//! Design: the rules (on [`map_channels`]) are chosen to be unsurprising for the common
//! cases and never to invent a mix matrix the file does not describe, so WAV channel masks
//! are ignored. Averaging (rather than summing) to mono means a full-scale file cannot clip.

/// Maps interleaved `samples` with `from` channels to `to` channels:
///
/// | file → engine | result |
/// |---------------|--------|
/// | N → N         | unchanged |
/// | 1 → N         | the mono channel duplicated into every channel |
/// | N → 1         | the average of all channels |
/// | M → N, other  | the first min(M, N) channels copied in order; extra engine channels are silent, extra file channels are dropped |
///
/// A trailing partial frame is dropped.
///
/// # Panics
/// When `from` or `to` is 0.
///
/// # Example
/// ```
/// use izyrt::file::map_channels;
/// assert_eq!(map_channels(vec![0.5, -0.5], 1, 2), [0.5, 0.5, -0.5, -0.5]);
/// assert_eq!(map_channels(vec![0.2, 0.4, 1.0, 0.0], 2, 1), [0.3, 0.5]);
/// assert_eq!(map_channels(vec![1.0, 2.0, 3.0], 3, 4), [1.0, 2.0, 3.0, 0.0]);
/// ```
pub fn map_channels(samples: Vec<f32>, from: u16, to: u16) -> Vec<f32> {
    assert!(
        from > 0 && to > 0,
        "channel counts must be positive ({from} → {to})"
    );
    let (from, to) = (from as usize, to as usize);
    if from == to {
        let mut samples = samples;
        samples.truncate(samples.len() / from * from);
        return samples;
    }
    let frames = samples.len() / from;
    let mut out = Vec::with_capacity(frames * to);
    for frame in samples.chunks_exact(from) {
        if from == 1 {
            out.extend(std::iter::repeat_n(frame[0], to));
        } else if to == 1 {
            let sum: f64 = frame.iter().map(|&v| v as f64).sum();
            out.push((sum / from as f64) as f32);
        } else {
            let common = from.min(to);
            out.extend_from_slice(&frame[..common]);
            out.extend(std::iter::repeat_n(0.0, to - common));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::map_channels;

    #[test]
    fn three_to_two_drops_the_third_and_identity_drops_a_partial_frame() {
        assert_eq!(
            map_channels(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3, 2),
            [1.0, 2.0, 4.0, 5.0]
        );
        assert_eq!(map_channels(vec![1.0, 2.0, 3.0], 2, 2), [1.0, 2.0]);
        assert_eq!(map_channels(vec![0.3, 0.6, 0.9], 3, 1), [0.6]);
    }
}
