//! Generation: sampling (greedy, temperature, top-k, top-p, repetition penalty, seeded), stop
//! rules and a streaming detokenizer that never splits a UTF-8 character.

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::chat::Tokenizer;
use crate::error::LoadError;
use crate::load::GenerationConfig;

/// How to pick the next token. `temperature == 0` is greedy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    pub temperature: f32,
    pub top_k: usize,
    pub top_p: f32,
    pub repetition_penalty: f32,
    pub seed: u64,
    pub max_new_tokens: usize,
    pub ignore_eos: bool,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
            seed: 0,
            max_new_tokens: 256,
            ignore_eos: false,
        }
    }
}

impl SamplingParams {
    /// The model's `generation_config.json` defaults (`do_sample: false` means greedy).
    pub fn from_generation_config(g: &GenerationConfig) -> Self {
        let d = SamplingParams::default();
        let sample = g.do_sample.unwrap_or(g.temperature.is_some());
        SamplingParams {
            temperature: if sample { g.temperature.unwrap_or(1.0) } else { 0.0 },
            top_k: g.top_k.unwrap_or(d.top_k),
            top_p: g.top_p.unwrap_or(d.top_p),
            repetition_penalty: g.repetition_penalty.unwrap_or(d.repetition_penalty),
            ..d
        }
    }
}

/// Picks tokens from logits; owns the seeded random stream (ChaCha8: the same on every target).
pub struct Sampler {
    params: SamplingParams,
    rng: rand_chacha::ChaCha8Rng,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Self {
        let rng = rand_chacha::ChaCha8Rng::seed_from_u64(params.seed);
        Sampler { params, rng }
    }

    /// Applies, in transformers' order, the repetition penalty over `history` (prompt and
    /// generated ids), temperature, top-k and top-p, then samples (or takes the arg-max).
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        let p = &self.params;
        let mut l = logits.to_vec();
        if p.repetition_penalty != 1.0 {
            let mut seen = vec![false; l.len()];
            for &id in history {
                if let Some(s) = seen.get_mut(id as usize) {
                    if !*s {
                        *s = true;
                        let v = &mut l[id as usize];
                        *v = if *v < 0.0 { *v * p.repetition_penalty } else { *v / p.repetition_penalty };
                    }
                }
            }
        }
        if p.temperature <= 0.0 || p.top_k == 1 {
            return argmax(&l);
        }
        let mut idx: Vec<usize> = (0..l.len()).collect();
        idx.sort_unstable_by(|&a, &b| l[b].total_cmp(&l[a]).then(a.cmp(&b)));
        if p.top_k > 0 {
            idx.truncate(p.top_k);
        }
        let max = l[idx[0]];
        let mut probs: Vec<f64> = idx.iter().map(|&i| (((l[i] - max) / p.temperature) as f64).exp()).collect();
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|q| *q /= total);
        if p.top_p < 1.0 {
            // Keep the smallest prefix whose mass reaches top_p (always at least one token).
            let mut cum = 0.0;
            let mut keep = probs.len();
            for (i, q) in probs.iter().enumerate() {
                cum += q;
                if cum >= p.top_p as f64 {
                    keep = i + 1;
                    break;
                }
            }
            probs.truncate(keep);
            idx.truncate(keep);
            let t: f64 = probs.iter().sum();
            probs.iter_mut().for_each(|q| *q /= t);
        }
        let u: f64 = self.rng.random::<f64>();
        let mut cum = 0.0;
        for (k, q) in probs.iter().enumerate() {
            cum += q;
            if u < cum {
                return idx[k] as u32;
            }
        }
        idx[probs.len() - 1] as u32
    }
}

/// Index of the largest value (the first one on ties, as torch.argmax).
pub fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// The `k` largest `(id, logit)` pairs, largest first.
pub fn top_k(v: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    let k = k.min(v.len());
    if k == 0 {
        return Vec::new();
    }
    idx.select_nth_unstable_by(k - 1, |&a, &b| v[b].total_cmp(&v[a]));
    idx.truncate(k);
    idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]).then(a.cmp(&b)));
    idx.into_iter().map(|i| (i as u32, v[i])).collect()
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StopReason {
    Eos,
    Length,
    Cancelled,
}

/// When to stop: an EOS id (unless ignored) or the token budget.
pub struct StopRules {
    pub eos: Vec<u32>,
    pub max_new_tokens: usize,
    pub ignore_eos: bool,
}

impl StopRules {
    /// Checks the token just generated; `generated` counts it.
    pub fn check(&self, id: u32, generated: usize) -> Option<StopReason> {
        if !self.ignore_eos && self.eos.contains(&id) {
            Some(StopReason::Eos)
        } else if generated >= self.max_new_tokens {
            Some(StopReason::Length)
        } else {
            None
        }
    }
}

/// Turns a stream of ids into text deltas. Text is held back while the decoded tail ends in an
/// incomplete UTF-8 sequence (U+FFFD), so no delta splits a character; a short window of earlier
/// ids is re-decoded so byte-level merges across tokens come out right.
#[derive(Default)]
pub struct TextStream {
    ids: Vec<u32>,
    prefix: usize,
    read: usize,
}

impl TextStream {
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> Result<Option<String>, LoadError> {
        self.ids.push(id);
        let before = tok.decode(&self.ids[self.prefix..self.read])?;
        let now = tok.decode(&self.ids[self.prefix..])?;
        if now.len() > before.len() && !now.ends_with('\u{FFFD}') {
            if let Some(delta) = now.get(before.len()..).filter(|_| now.starts_with(&before)) {
                let delta = delta.to_string();
                self.prefix = self.read;
                self.read = self.ids.len();
                return Ok(Some(delta));
            }
        }
        Ok(None)
    }

    /// Whatever is still held back (an incomplete character at the very end decodes to U+FFFD,
    /// as a full decode would show it).
    pub fn finish(&mut self, tok: &Tokenizer) -> Result<Option<String>, LoadError> {
        if self.read >= self.ids.len() {
            return Ok(None);
        }
        let before = tok.decode(&self.ids[self.prefix..self.read])?;
        let now = tok.decode(&self.ids[self.prefix..])?;
        self.prefix = self.ids.len();
        self.read = self.ids.len();
        Ok(now.get(before.len()..).map(str::to_string).filter(|s| !s.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_and_penalty() {
        let mut s = Sampler::new(SamplingParams::default());
        assert_eq!(s.sample(&[0.1, 3.0, 2.9], &[]), 1);
        let mut s = Sampler::new(SamplingParams { repetition_penalty: 2.0, ..Default::default() });
        // 3.0 / 2 = 1.5 < 2.9: the repeated token loses.
        assert_eq!(s.sample(&[0.1, 3.0, 2.9], &[1]), 2);
        // Negative logits are multiplied, so a penalised token gets less likely, not more.
        assert_eq!(s.sample(&[-1.0, -1.5, -5.0], &[0]), 1);
    }

    #[test]
    fn seeded_sampling_repeats_and_respects_top_k_top_p() {
        let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let params = SamplingParams { temperature: 1.0, top_k: 5, top_p: 0.9, seed: 7, ..Default::default() };
        let run = |p: SamplingParams| {
            let mut s = Sampler::new(p);
            (0..64).map(|_| s.sample(&logits, &[])).collect::<Vec<_>>()
        };
        let a = run(params.clone());
        assert_eq!(a, run(params.clone()), "same seed, same tokens");
        assert_ne!(a, run(SamplingParams { seed: 8, ..params.clone() }), "another seed differs");
        let allowed: Vec<u32> = top_k(&logits, 5).into_iter().map(|(i, _)| i).collect();
        assert!(a.iter().all(|t| allowed.contains(t)), "top-k respected");
        assert!(a.iter().collect::<std::collections::HashSet<_>>().len() > 1, "it samples");
        let tiny_p = run(SamplingParams { top_p: 1e-6, ..params });
        assert!(tiny_p.iter().all(|&t| t == argmax(&logits)), "top-p keeps at least the best");
    }

    #[test]
    fn stop_rules() {
        let r = StopRules { eos: vec![7, 9], max_new_tokens: 3, ignore_eos: false };
        assert_eq!(r.check(9, 1), Some(StopReason::Eos));
        assert_eq!(r.check(1, 2), None);
        assert_eq!(r.check(1, 3), Some(StopReason::Length));
        let r = StopRules { ignore_eos: true, ..r };
        assert_eq!(r.check(9, 1), None);
    }

    #[test]
    fn top_k_orders() {
        assert_eq!(top_k(&[1.0, 5.0, 3.0, 4.0], 2), vec![(1, 5.0), (3, 4.0)]);
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn streaming_never_splits_a_character() {
        let path = format!("{}/../tests/fixtures/qwen3_vl/tokenizer.json", env!("CARGO_MANIFEST_DIR"));
        let tok = Tokenizer::from_bytes(&std::fs::read(path).unwrap()).unwrap();
        let text = "Café 日本語 🙂 ✨ ßtraße, the fox!";
        // One byte-level token per byte (GPT-2's byte-to-character table), so characters span
        // several ids.
        let byte_char = |b: u8| -> char {
            let printable = |c: u32| (33..=126).contains(&c) || (161..=172).contains(&c) || (174..=255).contains(&c);
            if printable(b as u32) {
                return char::from(b);
            }
            let n = (0..b as u32).filter(|c| !printable(*c)).count() as u32;
            char::from_u32(256 + n).unwrap_or('?')
        };
        let ids: Vec<u32> =
            text.bytes().map(|b| tok.token_id(&byte_char(b).to_string()).expect("byte token")).collect();
        assert_eq!(tok.decode(&ids).unwrap(), text);
        let mut stream = TextStream::default();
        let mut out = String::new();
        for &id in &ids {
            if let Some(d) = stream.push(&tok, id).unwrap() {
                assert!(!d.contains('\u{FFFD}'), "delta {d:?} splits a character");
                out.push_str(&d);
            }
        }
        out.extend(stream.finish(&tok).unwrap());
        assert_eq!(out, text);
    }
}
