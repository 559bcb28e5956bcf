//! A multimodal prompt: token ids with each `<|image_pad|>` expanded to one pad per merged
//! vision token (the processor's expansion), the 3-D M-RoPE positions transformers'
//! `get_rope_index` gives them, and per-token cache keys in which an image token stands for
//! its image's content, so a cached prefix is only reused for the same pictures.

use std::hash::{Hash, Hasher};
use std::rc::Rc;

use crate::error::EngineError;

/// An image ready for the vision tower.
#[derive(Clone, Debug)]
pub struct ImageInput {
    /// `[t · h · w, patch_dim]` in merge-block order (`vision::patchify`).
    pub patches: Rc<Vec<f32>>,
    /// Patch grid `[t, h, w]`.
    pub grid_thw: [usize; 3],
    /// A hash of the patches and grid: equal images give equal cache keys.
    pub fingerprint: u64,
}

impl ImageInput {
    pub fn new(patches: Vec<f32>, grid_thw: [usize; 3]) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        grid_thw.hash(&mut h);
        for v in &patches {
            v.to_bits().hash(&mut h);
        }
        ImageInput { patches: Rc::new(patches), grid_thw, fingerprint: h.finish() }
    }

    /// Merged tokens this image becomes.
    pub fn tokens(&self, merge: usize) -> usize {
        let [t, h, w] = self.grid_thw;
        t * h * w / (merge * merge)
    }
}

/// Where one image's tokens sit in a prompt.
#[derive(Clone, Debug)]
pub struct PromptImage {
    pub start: usize,
    pub tokens: usize,
    pub input: ImageInput,
}

/// A rendered, tokenized prompt ready for generation.
#[derive(Clone, Debug)]
pub struct Prompt {
    pub text: String,
    /// Ids with the image pads expanded.
    pub ids: Vec<u32>,
    /// `[3, ids.len()]`: T, H and W rows of M-RoPE.
    pub positions: Vec<i32>,
    /// Per token: the id, or for an image token a key of its image and index.
    pub keys: Vec<u64>,
    pub images: Vec<PromptImage>,
}

/// Bit that marks an image token's key (token ids stay far below it).
const IMAGE_KEY: u64 = 1 << 63;

impl Prompt {
    /// Expands each `image_token` in `ids` to the tokens of the next image of `images`.
    pub fn build(
        text: String,
        ids: &[u32],
        image_token: u32,
        images: &[ImageInput],
        merge: usize,
    ) -> Result<Self, EngineError> {
        let pads = ids.iter().filter(|&&id| id == image_token).count();
        if pads != images.len() {
            return Err(EngineError::Input(format!(
                "the prompt has {pads} image placeholders but {} images were given",
                images.len()
            )));
        }
        let mut out = Vec::with_capacity(ids.len());
        let mut keys = Vec::with_capacity(ids.len());
        let mut spans = Vec::new();
        let mut next = images.iter();
        for &id in ids {
            match (id == image_token).then(|| next.next()).flatten() {
                Some(img) => {
                    let tokens = img.tokens(merge);
                    spans.push(PromptImage { start: out.len(), tokens, input: img.clone() });
                    for i in 0..tokens {
                        out.push(id);
                        keys.push(IMAGE_KEY | (img.fingerprint.rotate_left(20) ^ i as u64) & !IMAGE_KEY);
                    }
                }
                None => {
                    out.push(id);
                    keys.push(id as u64);
                }
            }
        }
        let grids: Vec<(usize, [usize; 3])> = spans.iter().map(|s| (s.start, s.input.grid_thw)).collect();
        let positions = rope_index(out.len(), &grids, merge);
        Ok(Prompt { text, ids: out, positions, keys, images: spans })
    }

    /// A text-only prompt of raw ids.
    pub fn from_ids(ids: &[u32]) -> Self {
        let positions = rope_index(ids.len(), &[], 2);
        let keys = ids.iter().map(|&id| id as u64).collect();
        Prompt { text: String::new(), ids: ids.to_vec(), positions, keys, images: Vec::new() }
    }

    /// The position after the prompt's highest one: where decoding continues.
    pub fn next_position(&self) -> i32 {
        self.positions.iter().copied().max().map_or(0, |m| m + 1)
    }

    /// Positions `[3, end − start]` of tokens `start..end`.
    pub fn positions_of(&self, start: usize, end: usize) -> Vec<i32> {
        let n = self.ids.len();
        (0..3).flat_map(|r| self.positions[r * n + start..r * n + end].iter().copied()).collect()
    }
}

/// `get_rope_index` for `n` tokens with images at `(start, [t, h, w])`: text counts on from the
/// running position; an image's merged token `(t, y, x)` gets `(cur + t, cur + y, cur + x)`;
/// after it the running position moves on by `max(h, w) / merge`.
pub fn rope_index(n: usize, images: &[(usize, [usize; 3])], merge: usize) -> Vec<i32> {
    let mut pos = vec![0i32; 3 * n];
    let (mut cur, mut i) = (0i32, 0usize);
    let mut set = |i: usize, p: [i32; 3]| {
        for (r, v) in p.into_iter().enumerate() {
            pos[r * n + i] = v;
        }
    };
    for &(start, [t, h, w]) in images {
        while i < start.min(n) {
            set(i, [cur; 3]);
            cur += 1;
            i += 1;
        }
        let (gh, gw) = (h / merge, w / merge);
        for ti in 0..t {
            for y in 0..gh {
                for x in 0..gw {
                    if i < n {
                        set(i, [cur + ti as i32, cur + y as i32, cur + x as i32]);
                    }
                    i += 1;
                }
            }
        }
        cur += gh.max(gw) as i32;
    }
    while i < n {
        set(i, [cur; 3]);
        cur += 1;
        i += 1;
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_index_matches_get_rope_index() {
        // 3 text tokens, an image of merged grid 2×3, 2 text tokens.
        let p = rope_index(11, &[(3, [1, 4, 6])], 2);
        let row = |r: usize| p[r * 11..(r + 1) * 11].to_vec();
        assert_eq!(row(0), [0, 1, 2, 3, 3, 3, 3, 3, 3, 6, 7]);
        assert_eq!(row(1), [0, 1, 2, 3, 3, 3, 4, 4, 4, 6, 7]);
        assert_eq!(row(2), [0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn pads_expand_and_keys_name_the_image() {
        let a = ImageInput::new(vec![1.0; 8], [1, 2, 4]);
        let b = ImageInput::new(vec![2.0; 8], [1, 2, 4]);
        let p = Prompt::build(String::new(), &[5, 9, 6, 9], 9, &[a.clone(), b], 2).unwrap();
        assert_eq!(p.ids, [5, 9, 9, 6, 9, 9]);
        assert_eq!((p.images[0].start, p.images[1].start, p.images[1].tokens), (1, 4, 2));
        assert_ne!(p.keys[1], p.keys[4]);
        let again = Prompt::build(String::new(), &[5, 9, 6, 9], 9, &[a.clone(), a.clone()], 2).unwrap();
        assert_eq!(p.keys[..4], again.keys[..4]);
        assert_eq!(again.next_position(), 1 + 2 + 1 + 2);
        assert!(Prompt::build(String::new(), &[5, 9], 9, &[], 2).is_err());
    }
}
