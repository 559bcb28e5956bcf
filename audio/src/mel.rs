//! Whisper's log-mel spectrogram, as transformers' `WhisperFeatureExtractor` computes it:
//! the waveform padded (or cut) to `n_samples`, frames of `n_fft` with a periodic Hann window
//! and `hop_length`, centred with reflect padding; power spectrum; the last frame dropped;
//! Slaney-normalised Slaney-scale mel filters from 0 to `sampling_rate / 2`;
//! `log10(max(x, 1e-10))`, then `max(x, max − 8)`, then `(x + 4) / 4`.

use realfft::RealFftPlanner;

/// The feature extractor's settings (`preprocessor_config.json` field names).
#[derive(Clone, Debug, PartialEq)]
pub struct MelConfig {
    pub feature_size: usize,
    pub n_fft: usize,
    pub hop_length: usize,
    pub sampling_rate: u32,
    /// Samples of one window (`chunk_length` seconds · rate): 480,000 for Whisper.
    pub n_samples: usize,
}

impl MelConfig {
    /// Whisper with `n_mels` bins (80; 128 for large-v3 and turbo).
    pub fn whisper(n_mels: usize) -> Self {
        MelConfig { feature_size: n_mels, n_fft: 400, hop_length: 160, sampling_rate: 16_000, n_samples: 480_000 }
    }

    /// Frames of one window: 3000 for Whisper.
    pub fn frames(&self) -> usize {
        self.n_samples / self.hop_length
    }
}

/// Slaney's mel scale (librosa `htk=False`).
fn hz_to_mel(f: f64) -> f64 {
    let logstep = 27.0 / 6.4f64.ln();
    if f >= 1000.0 {
        15.0 + (f / 1000.0).ln() * logstep
    } else {
        3.0 * f / 200.0
    }
}

fn mel_to_hz(m: f64) -> f64 {
    let logstep = 6.4f64.ln() / 27.0;
    if m >= 15.0 {
        1000.0 * (logstep * (m - 15.0)).exp()
    } else {
        200.0 * m / 3.0
    }
}

/// The filter bank `[n_mels, n_fft / 2 + 1]` (transformers' `mel_filter_bank` with
/// `norm="slaney"`, `mel_scale="slaney"`, transposed).
pub fn mel_filters(cfg: &MelConfig) -> Vec<f64> {
    let bins = cfg.n_fft / 2 + 1;
    let n_mels = cfg.feature_size;
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(cfg.sampling_rate as f64 / 2.0));
    let edges: Vec<f64> = (0..n_mels + 2).map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64)).collect();
    let nyquist = (cfg.sampling_rate / 2) as f64;
    let mut w = vec![0.0; n_mels * bins];
    for m in 0..n_mels {
        let enorm = 2.0 / (edges[m + 2] - edges[m]);
        for b in 0..bins {
            let f = nyquist * b as f64 / (bins - 1) as f64;
            let down = (f - edges[m]) / (edges[m + 1] - edges[m]);
            let up = (edges[m + 2] - f) / (edges[m + 2] - edges[m + 1]);
            w[m * bins + b] = down.min(up).max(0.0) * enorm;
        }
    }
    w
}

/// The log-mel features `[feature_size, frames]` (row-major, mel bins by time) of one window.
/// Longer input is cut at `n_samples`, shorter is padded with zeros, as the extractor does.
pub fn log_mel(samples: &[f32], cfg: &MelConfig) -> Vec<f32> {
    log_mel_padded(&samples[..samples.len().min(cfg.n_samples)], cfg).0
}

/// The log-mel features of the whole recording, padded with zeros to at least `n_samples`
/// (the extractor with `padding="longest"`, `truncation=False`, as long-form transcription
/// takes them), and their frame count: `[feature_size, frames]`.
pub fn log_mel_padded(samples: &[f32], cfg: &MelConfig) -> (Vec<f32>, usize) {
    let (n_fft, hop, n_mels) = (cfg.n_fft, cfg.hop_length, cfg.feature_size);
    let bins = n_fft / 2 + 1;
    let len = samples.len().max(cfg.n_samples);
    let frames = len / hop;
    let mut x: Vec<f64> = samples.iter().map(|&s| s as f64).collect();
    x.resize(len, 0.0);
    // Centre the frames: reflect-pad n_fft / 2 on each side (numpy `mode="reflect"`).
    let pad = n_fft / 2;
    let n = x.len();
    let at = |i: isize| -> f64 {
        let j = if i < 0 {
            (-i) as usize
        } else if i as usize >= n {
            2 * (n - 1) - i as usize
        } else {
            i as usize
        };
        x[j]
    };
    let window: Vec<f64> =
        (0..n_fft).map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n_fft as f64).cos()).collect();
    let filters = mel_filters(cfg);
    let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n_fft);
    let mut frame = fft.make_input_vec();
    let mut spec = fft.make_output_vec();
    let mut power = vec![0.0f64; bins];
    let mut out = vec![0.0f64; n_mels * frames];
    for t in 0..frames {
        let start = (t * hop) as isize - pad as isize;
        for (i, v) in frame.iter_mut().enumerate() {
            *v = at(start + i as isize) * window[i];
        }
        // The buffers are sized by the plan, so this cannot fail.
        if fft.process(&mut frame, &mut spec).is_err() {
            continue;
        }
        for (p, c) in power.iter_mut().zip(&spec) {
            *p = c.norm_sqr();
        }
        for m in 0..n_mels {
            let row = &filters[m * bins..(m + 1) * bins];
            let e: f64 = row.iter().zip(&power).map(|(w, p)| w * p).sum();
            out[m * frames + t] = e.max(1e-10).log10();
        }
    }
    let max = out.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (out.iter().map(|&v| ((v.max(max - 8.0) + 4.0) / 4.0) as f32).collect(), frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_transformers_values() {
        // transformers.audio_utils.mel_filter_bank(201, 80, 0, 8000, 16000, "slaney", "slaney"):
        // filter 0 peaks at bin 1 (0.02486259), filter 79 is non-zero from bin 186.
        let cfg = MelConfig::whisper(80);
        let w = mel_filters(&cfg);
        assert!((w[1] - 0.024_862_59).abs() < 1e-7, "{}", w[1]);
        assert_eq!(w[0], 0.0);
        let last = &w[79 * 201..];
        assert_eq!(last.iter().position(|&v| v > 0.0), Some(186));
    }

    #[test]
    fn silence_is_flat_and_shapes_are_whisper_s() {
        let cfg = MelConfig::whisper(80);
        let m = log_mel(&[0.0; 1000], &cfg);
        assert_eq!(m.len(), 80 * 3000);
        assert!(m.iter().all(|&v| (v - (-10.0 + 4.0) / 4.0).abs() < 1e-6));
    }
}
