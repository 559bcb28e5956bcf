//! Reference for `kernels::embedding`.

/// `y[t] = table[ids[t]]`.
pub fn embedding(table: &[f32], ids: &[u32], dim: usize) -> Vec<f32> {
    ids.iter().flat_map(|&id| table[id as usize * dim..(id as usize + 1) * dim].iter().copied()).collect()
}
