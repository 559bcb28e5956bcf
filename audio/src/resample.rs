//! Resampling to 16 kHz with `rubato`'s FFT resampler (synchronous, fixed ratio: the microphone
//! and WAV rates are whole numbers), streaming: samples go in as they arrive and come out with
//! the resampler's delay already trimmed, so a recording fed in chunks gives the same samples as
//! the whole of it fed at once.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler as _};

use crate::AudioError;

/// Input frames per FFT chunk: about 64 ms at 16 kHz, short enough for live captions.
const CHUNK: usize = 1024;

/// A streaming mono resampler from `from_hz` to `to_hz`.
pub struct Resampler {
    inner: Option<Fft<f32>>,
    from_hz: u32,
    to_hz: u32,
    pending: Vec<f32>,
    out: Vec<f32>,
    /// Leading output samples still to drop (the resampler's delay).
    skip: usize,
    fed: u64,
    emitted: u64,
}

impl Resampler {
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self, AudioError> {
        if from_hz == 0 || to_hz == 0 {
            return Err(AudioError::Unsupported("a sample rate of 0 Hz".into()));
        }
        let inner = if from_hz == to_hz {
            None
        } else {
            let r = Fft::<f32>::new(from_hz as usize, to_hz as usize, CHUNK, 1, FixedSync::Input)
                .map_err(|e| AudioError::Resample { from_hz, message: e.to_string() })?;
            Some(r)
        };
        let skip = inner.as_ref().map_or(0, |r| r.output_delay());
        let out = vec![0.0; inner.as_ref().map_or(0, |r| r.output_frames_max())];
        Ok(Resampler { inner, from_hz, to_hz, pending: Vec::new(), out, skip, fed: 0, emitted: 0 })
    }

    /// Output samples owed for everything fed so far.
    fn owed(&self) -> u64 {
        (self.fed * self.to_hz as u64).div_ceil(self.from_hz as u64)
    }

    /// Feeds `input` and returns the output samples that are ready.
    pub fn push(&mut self, input: &[f32]) -> Result<Vec<f32>, AudioError> {
        self.fed += input.len() as u64;
        let Some(r) = self.inner.as_mut() else {
            self.emitted += input.len() as u64;
            return Ok(input.to_vec());
        };
        self.pending.extend_from_slice(input);
        let mut ready = Vec::new();
        let mut used = 0;
        while self.pending.len() - used >= r.input_frames_next() {
            let n = r.input_frames_next();
            let chunk = &self.pending[used..used + n];
            let (_, got) = run(r, chunk, None, &mut self.out, self.from_hz)?;
            used += n;
            let take = &self.out[self.skip.min(got)..got];
            self.skip -= self.skip.min(got);
            ready.extend_from_slice(take);
        }
        self.pending.drain(..used);
        self.emitted += ready.len() as u64;
        Ok(ready)
    }

    /// Flushes the tail: the remaining output, so that the total is `ceil(fed · to / from)`.
    pub fn finish(mut self) -> Result<Vec<f32>, AudioError> {
        let owed = self.owed();
        let Some(mut r) = self.inner.take() else { return Ok(Vec::new()) };
        let mut tail = Vec::new();
        let mut pending = std::mem::take(&mut self.pending);
        while self.emitted + (tail.len() as u64) < owed {
            let n = r.input_frames_next();
            let len = pending.len().min(n);
            let mut chunk = pending[..len].to_vec();
            chunk.resize(n, 0.0);
            pending.drain(..len);
            let idx = Indexing { partial_len: Some(len), ..Default::default() };
            let (_, got) = run(&mut r, &chunk, Some(&idx), &mut self.out, self.from_hz)?;
            let take = &self.out[self.skip.min(got)..got];
            self.skip -= self.skip.min(got);
            tail.extend_from_slice(take);
        }
        tail.truncate((owed - self.emitted) as usize);
        Ok(tail)
    }
}

fn run(
    r: &mut Fft<f32>,
    chunk: &[f32],
    idx: Option<&Indexing>,
    out: &mut [f32],
    from_hz: u32,
) -> Result<(usize, usize), AudioError> {
    let err = |e: String| AudioError::Resample { from_hz, message: e };
    let input = InterleavedSlice::new(chunk, 1, chunk.len()).map_err(|e| err(e.to_string()))?;
    let frames = out.len();
    let mut output = InterleavedSlice::new_mut(out, 1, frames).map_err(|e| err(e.to_string()))?;
    r.process_into_buffer(&input, &mut output, idx).map_err(|e| err(e.to_string()))
}

/// The whole of `samples` from `from_hz` to `to_hz`.
pub fn resample(samples: &[f32], from_hz: u32, to_hz: u32) -> Result<Vec<f32>, AudioError> {
    let mut r = Resampler::new(from_hz, to_hz)?;
    let mut out = r.push(samples)?;
    out.extend(r.finish()?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f32, rate: u32, n: usize) -> Vec<f32> {
        (0..n).map(|i| (2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin() * 0.5).collect()
    }

    #[test]
    fn a_tone_keeps_its_pitch_level_and_timing() {
        for from in [44_100u32, 48_000, 22_050, 8_000] {
            let x = tone(440.0, from, from as usize);
            let y = resample(&x, from, 16_000).unwrap();
            assert_eq!(y.len(), 16_000, "from {from}");
            // Away from the edges the resampled tone lies on the ideal one, with no gain and
            // a delay under half a sample (the FFT resampler keeps a sub-sample offset).
            let err_at = |shift: f32| {
                let ideal = |i: usize| (2.0 * std::f32::consts::PI * 440.0 * (i as f32 + shift) / 16_000.0).sin() * 0.5;
                (800..15_200).map(|i| (y[i] - ideal(i)).abs()).fold(0.0, f32::max)
            };
            let (shift, err) = (-20..=20)
                .map(|s| s as f32 / 40.0)
                .map(|s| (s, err_at(s)))
                .fold((0.0, f32::MAX), |a, b| if b.1 < a.1 { b } else { a });
            assert!(err < 2e-3 && shift.abs() < 0.5, "from {from}: max error {err} at a delay of {shift} samples");
        }
    }

    #[test]
    fn streaming_in_chunks_equals_one_call() {
        let x = tone(300.0, 44_100, 50_000);
        let whole = resample(&x, 44_100, 16_000).unwrap();
        let mut r = Resampler::new(44_100, 16_000).unwrap();
        let mut parts = Vec::new();
        for c in x.chunks(777) {
            parts.extend(r.push(c).unwrap());
        }
        parts.extend(r.finish().unwrap());
        assert_eq!(parts.len(), whole.len());
        let err = parts.iter().zip(&whole).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(err < 1e-5, "max difference {err}");
    }

    #[test]
    fn same_rate_is_a_copy_and_zero_is_refused() {
        assert_eq!(resample(&[0.1, 0.2], 16_000, 16_000).unwrap(), vec![0.1, 0.2]);
        assert!(Resampler::new(0, 16_000).is_err());
    }
}
