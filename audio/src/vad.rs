//! Voice activity: the Silero VAD v6 network (MIT; its 16 kHz weights as the silero-vad package
//! ships them in `silero_vad_16k.safetensors`) run here on the CPU, and a turn detector with
//! hysteresis, minimum speech, hangover and pre-roll in milliseconds on its probabilities.
//!
//! The network, per 512-sample frame (32 ms) with the 64 samples before it as context: a
//! learned STFT (a 256-tap convolution of stride 128 into 129 real and 129 imaginary bins over
//! the frame reflect-padded by 64 samples), magnitudes, four 3-tap convolutions with ReLU (the
//! middle two of stride 2), an LSTM cell of 128 carried from frame to frame, ReLU, a 1×1
//! convolution and a sigmoid: about 0.7 M multiply-adds a frame.

use std::collections::HashMap;

use crate::AudioError;

/// Samples per frame at 16 kHz.
pub const FRAME: usize = 512;
/// Samples of the previous frame each frame sees.
const CONTEXT: usize = 64;
const N_FFT: usize = 256;
const HOP: usize = 128;
const BINS: usize = N_FFT / 2 + 1;
const HIDDEN: usize = 128;

/// A 3-tap convolution with padding 1.
#[derive(Clone)]
struct Conv {
    w: Vec<f32>,
    b: Vec<f32>,
    cin: usize,
    cout: usize,
    stride: usize,
}

impl Conv {
    /// `x` `[cin, len]` → `[cout, out_len]`, then ReLU.
    fn forward_relu(&self, x: &[f32], len: usize) -> (Vec<f32>, usize) {
        let out_len = (len + 2 - 3) / self.stride + 1;
        let mut y = vec![0.0f32; self.cout * out_len];
        for o in 0..self.cout {
            for t in 0..out_len {
                let mut acc = self.b[o];
                for i in 0..self.cin {
                    let w = &self.w[(o * self.cin + i) * 3..][..3];
                    let row = &x[i * len..][..len];
                    for (k, wk) in w.iter().enumerate() {
                        let pos = (t * self.stride + k) as isize - 1;
                        if pos >= 0 && (pos as usize) < len {
                            acc += wk * row[pos as usize];
                        }
                    }
                }
                y[o * out_len + t] = acc.max(0.0);
            }
        }
        (y, out_len)
    }
}

/// The Silero VAD network with its recurrent state.
#[derive(Clone)]
pub struct SileroVad {
    stft: Vec<f32>,
    convs: [Conv; 4],
    w_ih: Vec<f32>,
    w_hh: Vec<f32>,
    bias: Vec<f32>,
    final_w: Vec<f32>,
    final_b: f32,
    h: Vec<f32>,
    c: Vec<f32>,
    context: Vec<f32>,
}

/// F32 tensors by name: shape and values.
type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// The F32 tensors of a safetensors file.
fn read_safetensors(bytes: &[u8]) -> Result<Tensors, AudioError> {
    let bad = |m: String| AudioError::Model(format!("Silero VAD weights: {m}"));
    let n = bytes.get(..8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as usize);
    let n = n.filter(|&n| 8 + n <= bytes.len()).ok_or_else(|| bad("not a safetensors file".into()))?;
    let header: serde_json::Value =
        serde_json::from_slice(&bytes[8..8 + n]).map_err(|e| bad(format!("header: {e}")))?;
    let data = &bytes[8 + n..];
    let mut out = HashMap::new();
    for (name, t) in header.as_object().ok_or_else(|| bad("header is not an object".into()))? {
        if name == "__metadata__" {
            continue;
        }
        if t["dtype"] != "F32" {
            return Err(bad(format!("{name} is {} (F32 expected)", t["dtype"])));
        }
        let shape: Vec<usize> =
            t["shape"].as_array().into_iter().flatten().filter_map(|d| d.as_u64()).map(|d| d as usize).collect();
        let off: Vec<usize> =
            t["data_offsets"].as_array().into_iter().flatten().filter_map(|d| d.as_u64()).map(|d| d as usize).collect();
        let [a, b] = off[..] else { return Err(bad(format!("{name}: data_offsets"))) };
        let count = shape.iter().product::<usize>();
        if b < a || b > data.len() || b - a != count * 4 {
            return Err(bad(format!("{name}: {} bytes for shape {shape:?}", b.saturating_sub(a))));
        }
        let values = data[a..b].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        out.insert(name.clone(), (shape, values));
    }
    Ok(out)
}

impl SileroVad {
    /// The network from `silero_vad_16k.safetensors`.
    pub fn from_safetensors(bytes: &[u8]) -> Result<Self, AudioError> {
        let mut t = read_safetensors(bytes)?;
        let mut take = |name: &str, shape: &[usize]| -> Result<Vec<f32>, AudioError> {
            match t.remove(name) {
                Some((s, v)) if s == shape => Ok(v),
                Some((s, _)) => Err(AudioError::Model(format!("Silero VAD weights: {name} is {s:?}, not {shape:?}"))),
                None => Err(AudioError::Model(format!("Silero VAD weights: no {name}"))),
            }
        };
        let stft = take("stft_conv.weight", &[2 * BINS, 1, N_FFT])?;
        let mut conv = |i: usize, cin: usize, cout: usize, stride: usize| -> Result<Conv, AudioError> {
            Ok(Conv {
                w: take(&format!("conv{i}.weight"), &[cout, cin, 3])?,
                b: take(&format!("conv{i}.bias"), &[cout])?,
                cin,
                cout,
                stride,
            })
        };
        let convs = [conv(1, BINS, 128, 1)?, conv(2, 128, 64, 2)?, conv(3, 64, 64, 2)?, conv(4, 64, HIDDEN, 1)?];
        let w_ih = take("lstm_cell.weight_ih", &[4 * HIDDEN, HIDDEN])?;
        let w_hh = take("lstm_cell.weight_hh", &[4 * HIDDEN, HIDDEN])?;
        let b_ih = take("lstm_cell.bias_ih", &[4 * HIDDEN])?;
        let b_hh = take("lstm_cell.bias_hh", &[4 * HIDDEN])?;
        let bias = b_ih.iter().zip(&b_hh).map(|(a, b)| a + b).collect();
        let final_w = take("final_conv.weight", &[1, HIDDEN, 1])?;
        let final_b = take("final_conv.bias", &[1])?[0];
        Ok(SileroVad {
            stft,
            convs,
            w_ih,
            w_hh,
            bias,
            final_w,
            final_b,
            h: vec![0.0; HIDDEN],
            c: vec![0.0; HIDDEN],
            context: vec![0.0; CONTEXT],
        })
    }

    /// Forgets the previous audio (a new recording).
    pub fn reset(&mut self) {
        self.h.fill(0.0);
        self.c.fill(0.0);
        self.context.fill(0.0);
    }

    /// The speech probability of the next [`FRAME`] samples (16 kHz).
    pub fn frame(&mut self, samples: &[f32]) -> f32 {
        debug_assert_eq!(samples.len(), FRAME);
        let n = CONTEXT + FRAME;
        let mut x = Vec::with_capacity(n + CONTEXT);
        x.extend_from_slice(&self.context);
        x.extend_from_slice(samples);
        for i in 0..CONTEXT {
            x.push(x[n - 2 - i]);
        }
        self.context.copy_from_slice(&x[n - CONTEXT..n]);
        let frames = (x.len() - N_FFT) / HOP + 1;
        let mut mag = vec![0.0f32; BINS * frames];
        for f in 0..BINS {
            let (re_w, im_w) = (&self.stft[f * N_FFT..][..N_FFT], &self.stft[(f + BINS) * N_FFT..][..N_FFT]);
            for t in 0..frames {
                let win = &x[t * HOP..][..N_FFT];
                let re: f32 = re_w.iter().zip(win).map(|(w, v)| w * v).sum();
                let im: f32 = im_w.iter().zip(win).map(|(w, v)| w * v).sum();
                mag[f * frames + t] = (re * re + im * im).sqrt();
            }
        }
        let (mut y, mut len) = (mag, frames);
        for conv in &self.convs {
            (y, len) = conv.forward_relu(&y, len);
        }
        // One time step remains: the LSTM input.
        let input = &y[..HIDDEN];
        let mut gates = self.bias.clone();
        for (g, gate) in gates.iter_mut().enumerate() {
            let wi = &self.w_ih[g * HIDDEN..][..HIDDEN];
            let wh = &self.w_hh[g * HIDDEN..][..HIDDEN];
            *gate += wi.iter().zip(input).map(|(w, v)| w * v).sum::<f32>()
                + wh.iter().zip(&self.h).map(|(w, v)| w * v).sum::<f32>();
        }
        let sigmoid = |v: f32| 1.0 / (1.0 + (-v).exp());
        let mut logit = self.final_b;
        for k in 0..HIDDEN {
            let (i, f) = (sigmoid(gates[k]), sigmoid(gates[HIDDEN + k]));
            let (g, o) = (gates[2 * HIDDEN + k].tanh(), sigmoid(gates[3 * HIDDEN + k]));
            self.c[k] = f * self.c[k] + i * g;
            self.h[k] = o * self.c[k].tanh();
            logit += self.final_w[k] * self.h[k].max(0.0);
        }
        sigmoid(logit)
    }
}

/// When speech starts and ends, in milliseconds and probabilities.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TurnConfig {
    /// A frame at or above this probability is speech.
    pub threshold: f32,
    /// Once speaking, a frame below this is silence (hysteresis: between the two, nothing
    /// changes).
    pub exit_threshold: f32,
    /// Speech shorter than this (a cough, a click) is not a turn.
    pub min_speech_ms: u32,
    /// Silence this long ends the turn.
    pub hangover_ms: u32,
    /// Audio kept before the first speech frame, so the first sound is not cut.
    pub pre_roll_ms: u32,
}

impl Default for TurnConfig {
    /// Silero's own defaults (threshold 0.5, exit 0.35, 250 ms minimum speech) with a 600 ms
    /// hangover: a pause between sentences does not end the turn.
    fn default() -> Self {
        TurnConfig { threshold: 0.5, exit_threshold: 0.35, min_speech_ms: 250, hangover_ms: 600, pre_roll_ms: 200 }
    }
}

/// A change of the speaker's state, at a sample index of the stream (16 kHz).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoiceEvent {
    /// Speech began at `at` (pre-roll included); reported once it lasted the minimum.
    Start { at: usize },
    /// Speech ended at `at` (the end of its last speech frame), after the hangover.
    End { at: usize },
}

enum State {
    Silent,
    /// Speech frames since `first` (a frame index), not yet the minimum.
    Maybe {
        first: usize,
        speech: usize,
    },
    /// Speaking since a reported start; `quiet` silent frames since the last speech frame.
    Speaking {
        last_speech: usize,
        quiet: usize,
    },
}

/// Turn detection on a stream of 16 kHz samples fed in chunks of any size.
pub struct VoiceActivity {
    vad: SileroVad,
    cfg: TurnConfig,
    pending: Vec<f32>,
    frames: usize,
    state: State,
}

fn ms_frames(ms: u32) -> usize {
    (ms as usize * 16).div_ceil(FRAME)
}

impl VoiceActivity {
    pub fn new(mut vad: SileroVad, cfg: TurnConfig) -> Self {
        vad.reset();
        VoiceActivity { vad, cfg, pending: Vec::new(), frames: 0, state: State::Silent }
    }

    /// Whether speech is going on (a start was reported and no end yet).
    pub fn speaking(&self) -> bool {
        matches!(self.state, State::Speaking { .. })
    }

    /// Feeds samples; returns the starts and ends they complete.
    pub fn push(&mut self, samples: &[f32]) -> Vec<VoiceEvent> {
        self.pending.extend_from_slice(samples);
        let mut events = Vec::new();
        let whole = self.pending.len() / FRAME * FRAME;
        let frames: Vec<f32> = self.pending.drain(..whole).collect();
        for chunk in frames.chunks_exact(FRAME) {
            let p = self.vad.frame(chunk);
            let i = self.frames;
            self.frames += 1;
            let c = &self.cfg;
            self.state = match std::mem::replace(&mut self.state, State::Silent) {
                State::Silent if p >= c.threshold => self.confirm(i, 1, &mut events),
                State::Silent => State::Silent,
                State::Maybe { first, speech } if p >= c.threshold => self.confirm(first, speech + 1, &mut events),
                // A dip under the exit level before the minimum: it was a noise.
                State::Maybe { .. } if p < c.exit_threshold => State::Silent,
                maybe @ State::Maybe { .. } => maybe,
                State::Speaking { .. } if p >= c.exit_threshold => State::Speaking { last_speech: i, quiet: 0 },
                State::Speaking { last_speech, quiet } if quiet + 1 >= ms_frames(c.hangover_ms) => {
                    events.push(VoiceEvent::End { at: (last_speech + 1) * FRAME });
                    State::Silent
                }
                State::Speaking { last_speech, quiet } => State::Speaking { last_speech, quiet: quiet + 1 },
            };
        }
        events
    }

    /// `speech` frames from frame `first` on: a start once they reach the minimum.
    fn confirm(&self, first: usize, speech: usize, events: &mut Vec<VoiceEvent>) -> State {
        if speech >= ms_frames(self.cfg.min_speech_ms) {
            let at = (first * FRAME).saturating_sub(self.cfg.pre_roll_ms as usize * 16);
            events.push(VoiceEvent::Start { at });
            State::Speaking { last_speech: first + speech - 1, quiet: 0 }
        } else {
            State::Maybe { first, speech }
        }
    }

    /// Ends the stream: a turn still going ends at the last speech frame.
    pub fn finish(&mut self) -> Option<VoiceEvent> {
        match std::mem::replace(&mut self.state, State::Silent) {
            State::Speaking { last_speech, .. } => Some(VoiceEvent::End { at: (last_speech + 1) * FRAME }),
            _ => None,
        }
    }
}

/// The speech stretches `[start, end)` of a whole 16 kHz recording.
pub fn speech_segments(vad: SileroVad, cfg: TurnConfig, samples: &[f32]) -> Vec<(usize, usize)> {
    let mut va = VoiceActivity::new(vad, cfg);
    let mut events = va.push(samples);
    events.extend(va.finish());
    let mut out = Vec::new();
    let mut start = None;
    for e in events {
        match e {
            VoiceEvent::Start { at } => start = Some(at),
            VoiceEvent::End { at } => {
                if let Some(s) = start.take() {
                    out.push((s, at.min(samples.len())));
                }
            }
        }
    }
    out
}
