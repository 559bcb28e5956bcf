//! WAV in and out with `hound`: 8/16/24/32-bit integer and 32-bit float PCM, any channel count
//! and rate, read as mono f32 in [-1, 1] (channels averaged).

use std::io::{Read, Seek, Write};

use crate::AudioError;

/// Mono samples at a rate.
#[derive(Clone, Debug, PartialEq)]
pub struct Pcm {
    pub samples: Vec<f32>,
    pub sample_rate_hz: u32,
}

impl Pcm {
    pub fn duration_s(&self) -> f64 {
        self.samples.len() as f64 / self.sample_rate_hz.max(1) as f64
    }
}

/// Reads a WAV file and mixes its channels down to mono. Zero channels, a zero rate, no samples
/// or a truncated data chunk are errors.
pub fn read_wav<R: Read + Seek>(reader: R) -> Result<Pcm, AudioError> {
    let mut r = hound::WavReader::new(reader).map_err(|e| AudioError::Wav(e.to_string()))?;
    let spec = r.spec();
    if spec.channels == 0 {
        return Err(AudioError::Unsupported("zero channels".into()));
    }
    if spec.sample_rate == 0 {
        return Err(AudioError::Unsupported("a sample rate of 0 Hz".into()));
    }
    let interleaved: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => {
            r.samples::<f32>().collect::<Result<_, _>>().map_err(|e| AudioError::Wav(e.to_string()))?
        }
        (hound::SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f64;
            r.samples::<i32>()
                .map(|s| s.map(|v| (v as f64 * scale) as f32))
                .collect::<Result<_, _>>()
                .map_err(|e| AudioError::Wav(e.to_string()))?
        }
        (f, b) => return Err(AudioError::Unsupported(format!("{b}-bit {f:?} samples"))),
    };
    let ch = spec.channels as usize;
    if !interleaved.len().is_multiple_of(ch) {
        return Err(AudioError::Wav("the data chunk ends inside a frame (truncated file?)".into()));
    }
    let samples: Vec<f32> = if ch == 1 {
        interleaved
    } else {
        interleaved.chunks_exact(ch).map(|f| f.iter().sum::<f32>() / ch as f32).collect()
    };
    if samples.is_empty() {
        return Err(AudioError::Empty);
    }
    if samples.iter().any(|s| !s.is_finite()) {
        return Err(AudioError::Wav("samples that are not finite numbers".into()));
    }
    Ok(Pcm { samples, sample_rate_hz: spec.sample_rate })
}

/// Writes mono samples as 16-bit PCM (clipped to [-1, 1]).
pub fn write_wav<W: Write + Seek>(writer: W, pcm: &Pcm) -> Result<(), AudioError> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: pcm.sample_rate_hz,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let wav = |e: hound::Error| AudioError::Wav(e.to_string());
    let mut w = hound::WavWriter::new(writer, spec).map_err(wav)?;
    for &s in &pcm.samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0).round() as i16).map_err(wav)?;
    }
    w.finalize().map_err(wav)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn encode<S: hound::Sample + Copy>(spec: hound::WavSpec, frames: &[S]) -> Vec<u8> {
        let mut c = Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut c, spec).unwrap();
        for &s in frames {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        c.into_inner()
    }

    fn spec(channels: u16, bits: u16, float: bool) -> hound::WavSpec {
        let sample_format = if float { hound::SampleFormat::Float } else { hound::SampleFormat::Int };
        hound::WavSpec { channels, sample_rate: 22_050, bits_per_sample: bits, sample_format }
    }

    #[test]
    fn every_integer_width_reads_to_the_same_scale() {
        let half = |bits: u32| 1i32 << (bits - 2);
        for bits in [16u16, 24, 32] {
            let bytes = encode(spec(1, bits, false), &[half(bits as u32), -half(bits as u32), 0]);
            let pcm = read_wav(Cursor::new(bytes)).unwrap();
            assert_eq!(pcm.samples, vec![0.5, -0.5, 0.0], "{bits}-bit");
        }
        let bytes = encode(spec(1, 8, false), &[64i8, -64]);
        assert_eq!(read_wav(Cursor::new(bytes)).unwrap().samples, vec![0.5, -0.5]);
    }

    #[test]
    fn stereo_float_is_averaged() {
        let bytes = encode(spec(2, 32, true), &[1.0f32, 0.0, -0.5, -0.5]);
        let pcm = read_wav(Cursor::new(bytes)).unwrap();
        assert_eq!(pcm.samples, vec![0.5, -0.5]);
        assert_eq!(pcm.sample_rate_hz, 22_050);
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        let empty = encode::<i16>(spec(1, 16, false), &[]);
        assert!(matches!(read_wav(Cursor::new(empty)), Err(AudioError::Empty)));
        assert!(matches!(read_wav(Cursor::new(b"not a wav file at all".to_vec())), Err(AudioError::Wav(_))));
        let mut cut = encode(spec(1, 16, false), &[1i16; 100]);
        cut.truncate(cut.len() - 51);
        assert!(read_wav(Cursor::new(cut)).is_err());
    }

    #[test]
    fn write_then_read_round_trips() {
        let pcm = Pcm { samples: vec![0.0, 0.25, -1.0, 1.0], sample_rate_hz: 16_000 };
        let mut c = Cursor::new(Vec::new());
        write_wav(&mut c, &pcm).unwrap();
        let back = read_wav(Cursor::new(c.into_inner())).unwrap();
        for (a, b) in back.samples.iter().zip(&pcm.samples) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }
}
