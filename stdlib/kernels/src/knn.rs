//! Exact k-nearest-neighbour search as a blocked matrix product: the stored rows are converted
//! (f16 to f32) one block at a time, multiplied against a batch of queries with
//! `matrixmultiply::sgemm`, and each query keeps its running top k. Blocks run in parallel
//! (rayon), each with its own buffers, so memory is bounded by threads × block, not by the
//! number of stored rows.

use half::f16;
use rayon::prelude::*;

/// Row-major stored vectors, `dim` wide.
#[derive(Clone, Copy)]
pub enum Matrix<'a> {
    F16(&'a [f16]),
    F32(&'a [f32]),
}

impl Matrix<'_> {
    pub fn rows(&self, dim: usize) -> usize {
        if dim == 0 {
            return 0;
        }
        match self {
            Matrix::F16(d) => d.len() / dim,
            Matrix::F32(d) => d.len() / dim,
        }
    }

    /// Row `i` as f32 into `out` (`dim` long).
    pub fn row_into(&self, i: usize, out: &mut [f32]) {
        let dim = out.len();
        match self {
            Matrix::F16(d) => {
                use half::slice::HalfFloatSliceExt;
                d[i * dim..(i + 1) * dim].convert_to_f32_slice(out)
            }
            Matrix::F32(d) => out.copy_from_slice(&d[i * dim..(i + 1) * dim]),
        }
    }
}

/// f32 to f16, in bulk (SIMD where the CPU has it).
pub fn to_f16(src: &[f32]) -> Vec<f16> {
    use half::slice::HalfFloatSliceExt;
    let mut out = vec![f16::ZERO; src.len()];
    out.as_mut_slice().convert_from_f32_slice(src);
    out
}

/// How a stored row is scored against a query (higher is nearer).
#[derive(Clone, Copy)]
pub enum Scoring<'a> {
    /// `q · b`: cosine similarity for unit vectors.
    Dot,
    /// Stored rows are unit vectors `u` of norm `n`: `2 n (q · u) - n²`, which ranks like
    /// `-|q - n u|²` (add `|q|²` and negate for the squared distance).
    L2 { norms: &'a [f32] },
}

/// Rows stored per block: large enough for sgemm to run near peak, small enough for the
/// converted block to stay in cache.
fn block_rows(queries: usize) -> usize {
    if queries >= 32 {
        1024
    } else {
        256
    }
}

/// Up to this many queries, rows are scored one at a time rather than by sgemm.
const FEW_QUERIES: usize = 4;

/// Queries per batch: bounds the score buffer (queries × block) of each thread.
const QUERY_BATCH: usize = 1024;

/// The running best `k` of one query: `(score, row)`, higher score first, ties by lower row,
/// so that results never depend on how blocks were scheduled.
#[derive(Clone)]
pub struct TopK {
    k: usize,
    items: Vec<(f32, u32)>,
    floor: f32,
}

fn better(a: &(f32, u32), b: &(f32, u32)) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

impl TopK {
    pub fn new(k: usize) -> Self {
        TopK { k, items: Vec::new(), floor: f32::NEG_INFINITY }
    }

    #[inline]
    pub fn push(&mut self, score: f32, row: u32) {
        if self.k == 0 || score < self.floor || score.is_nan() {
            return;
        }
        self.items.push((score, row));
        if self.items.len() >= 2 * self.k {
            self.shrink();
        }
    }

    fn shrink(&mut self) {
        if self.items.len() > self.k {
            self.items.select_nth_unstable_by(self.k - 1, better);
            self.items.truncate(self.k);
            self.floor = self.items.iter().map(|x| x.0).fold(f32::INFINITY, f32::min);
        }
    }

    pub fn merge(&mut self, other: TopK) {
        for (s, r) in other.items {
            self.push(s, r);
        }
    }

    /// Best first.
    pub fn into_sorted(mut self) -> Vec<(u32, f32)> {
        self.shrink();
        self.items.sort_by(better);
        self.items.into_iter().map(|(s, r)| (r, s)).collect()
    }
}

/// For each query (row-major, `dim` wide), the `k` stored rows with the highest score, best
/// first, as (row, score). `subset` restricts the search to those rows (any order).
pub fn top_k(queries: &[f32], dim: usize, base: Matrix<'_>, subset: Option<&[u32]>, k: usize, scoring: Scoring<'_>) -> Vec<Vec<(u32, f32)>> {
    if dim == 0 || queries.is_empty() {
        return vec![];
    }
    let m = queries.len() / dim;
    let total = subset.map_or(base.rows(dim), <[u32]>::len);
    let block = block_rows(m.min(QUERY_BATCH));
    let blocks = total.div_ceil(block);
    let fused = simd::has_f16_fma();
    let mut out = Vec::with_capacity(m);
    for batch in queries.chunks(QUERY_BATCH * dim) {
        let mq = batch.len() / dim;
        let tops = (0..blocks)
            .into_par_iter()
            .fold(
                || (vec![0f32; block * dim], vec![0f32; mq * block], vec![0u32; block], vec![TopK::new(k); mq]),
                |(mut rows_buf, mut scores, mut ids, mut tops), b| {
                    let start = b * block;
                    let nb = block.min(total - start);
                    if mq <= FEW_QUERIES {
                        // A handful of queries is memory-bound: convert each row into cache and
                        // take its dot products there (sgemm would first pack the whole block),
                        // or convert and multiply in one pass where the CPU can.
                        let row_buf = &mut rows_buf[..dim];
                        for j in 0..nb {
                            let row = subset.map_or((start + j) as u32, |s| s[start + j]);
                            let half_row = match base {
                                Matrix::F16(d) if fused => Some(&d[row as usize * dim..(row as usize + 1) * dim]),
                                _ => {
                                    base.row_into(row as usize, row_buf);
                                    None
                                }
                            };
                            for (qi, top) in tops.iter_mut().enumerate() {
                                let q = &batch[qi * dim..(qi + 1) * dim];
                                let d = match half_row {
                                    // SAFETY: `fused` is true only where the CPU has the features.
                                    Some(r) => unsafe { simd::dot_f16(q, r) },
                                    None => dot(q, row_buf),
                                };
                                let score = match scoring {
                                    Scoring::Dot => d,
                                    Scoring::L2 { norms } => {
                                        let n = norms[row as usize];
                                        2.0 * n * d - n * n
                                    }
                                };
                                top.push(score, row);
                            }
                        }
                        return (rows_buf, scores, ids, tops);
                    }
                    for j in 0..nb {
                        let row = subset.map_or((start + j) as u32, |s| s[start + j]);
                        ids[j] = row;
                        base.row_into(row as usize, &mut rows_buf[j * dim..(j + 1) * dim]);
                    }
                    // scores (mq × nb) = batch (mq × dim) · rows_bufᵀ (dim × nb)
                    // SAFETY: the pointers and strides describe buffers of exactly these shapes.
                    unsafe {
                        matrixmultiply::sgemm(mq, dim, nb, 1.0, batch.as_ptr(), dim as isize, 1, rows_buf.as_ptr(), 1, dim as isize, 0.0, scores.as_mut_ptr(), nb as isize, 1);
                    }
                    for (qi, top) in tops.iter_mut().enumerate() {
                        let s = &scores[qi * nb..(qi + 1) * nb];
                        match scoring {
                            Scoring::Dot => {
                                for (j, &dot) in s.iter().enumerate() {
                                    top.push(dot, ids[j]);
                                }
                            }
                            Scoring::L2 { norms } => {
                                for (j, &dot) in s.iter().enumerate() {
                                    let n = norms[ids[j] as usize];
                                    top.push(2.0 * n * dot - n * n, ids[j]);
                                }
                            }
                        }
                    }
                    (rows_buf, scores, ids, tops)
                },
            )
            .map(|(_, _, _, tops)| tops)
            .reduce(
                || vec![TopK::new(k); mq],
                |mut a, b| {
                    for (x, y) in a.iter_mut().zip(b) {
                        x.merge(y);
                    }
                    a
                },
            );
        out.extend(tops.into_iter().map(TopK::into_sorted));
    }
    out
}

/// Dot products of `query` with each of `rows` (stored row numbers).
pub fn dots(query: &[f32], base: Matrix<'_>, rows: &[u32]) -> Vec<f32> {
    let dim = query.len();
    let mut buf = vec![0f32; dim];
    rows.iter()
        .map(|&r| {
            base.row_into(r as usize, &mut buf);
            dot(query, &buf)
        })
        .collect()
}

/// `f32 · f16` dot products with the conversion fused into the multiply. `half` converts a
/// slice eight values per call of a function it cannot inline into ours; on a single query's
/// scan that call was the largest cost (profiled: 35% of an inverted-list search in the
/// conversion alone), so rows are converted in registers here instead.
mod simd {
    use half::f16;

    /// Whether [`dot_f16`] may be called: x86-64 with AVX2, FMA and F16C (every such CPU since
    /// 2013), detected at run time.
    pub fn has_f16_fma() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") && std::arch::is_x86_feature_detected!("f16c")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// `q · r`, 32 values per step in four accumulators.
    ///
    /// # Safety
    /// Only where [`has_f16_fma`] is true.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f16(q: &[f32], r: &[f16]) -> f32 {
        use std::arch::x86_64::*;
        let n = q.len().min(r.len());
        let (qp, rp) = (q.as_ptr(), r.as_ptr().cast::<u16>());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY: every load reads 8 values at `i + 8 * l + 8 <= n`, inside both slices.
        unsafe {
            while i + 32 <= n {
                for (l, a) in acc.iter_mut().enumerate() {
                    let x = _mm256_cvtph_ps(_mm_loadu_si128(rp.add(i + 8 * l).cast()));
                    *a = _mm256_fmadd_ps(_mm256_loadu_ps(qp.add(i + 8 * l)), x, *a);
                }
                i += 32;
            }
            while i + 8 <= n {
                let x = _mm256_cvtph_ps(_mm_loadu_si128(rp.add(i).cast()));
                acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(qp.add(i)), x, acc[0]);
                i += 8;
            }
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let mut lanes = [0f32; 8];
        // SAFETY: `lanes` holds 8 f32.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
        lanes.iter().sum::<f32>() + q[i..n].iter().zip(&r[i..n]).map(|(a, b)| a * b.to_f32()).sum::<f32>()
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub unsafe fn dot_f16(q: &[f32], r: &[f16]) -> f32 {
        q.iter().zip(r).map(|(a, b)| a * b.to_f32()).sum()
    }
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight lanes so the compiler vectorises without reassociation flags.
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// Up to this many rows, kNN within a set is exact: all pairs, by matrix products.
pub const EXACT_SELF_LIMIT: usize = 20_000;

/// The inverted-file search behind [`knn_self`] for large sets.
#[derive(Clone, Debug)]
pub struct IvfParams {
    /// k-means lists; `None`: √n.
    pub lists: Option<usize>,
    /// Lists searched per row: its own and the next nearest.
    pub probes: usize,
    pub iterations: usize,
    /// k-means is fitted on a seeded sample of this many rows per list.
    pub sample_per_list: usize,
    pub seed: u64,
    /// Sets up to this size are searched exactly.
    pub exact_limit: usize,
}

impl Default for IvfParams {
    fn default() -> Self {
        IvfParams { lists: None, probes: 8, iterations: 6, sample_per_list: 64, seed: 7, exact_limit: EXACT_SELF_LIMIT }
    }
}

/// Rows as queries: unit rows, scaled back to their length for L2 scoring.
fn gather(base: Matrix<'_>, dim: usize, rows: &[u32], scoring: Scoring<'_>) -> Vec<f32> {
    let mut out = vec![0f32; rows.len() * dim];
    out.par_chunks_mut(dim).zip(rows.par_iter()).for_each(|(dst, &r)| {
        base.row_into(r as usize, dst);
        if let Scoring::L2 { norms } = scoring {
            let n = norms[r as usize];
            dst.iter_mut().for_each(|x| *x *= n);
        }
    });
    out
}

fn drop_self(mut hits: Vec<(u32, f32)>, row: u32, k: usize) -> Vec<(u32, f32)> {
    if let Some(p) = hits.iter().position(|h| h.0 == row) {
        hits.remove(p);
    }
    hits.truncate(k);
    hits
}

/// For each of `rows`, its `k` best other rows among `rows`, best first, as (row, score).
/// Exact up to `params.exact_limit` rows; beyond, rows are clustered (spherical k-means on a
/// sample) and each row is compared exactly with the rows of its `probes` nearest lists, so the
/// work grows like n·√n instead of n².
pub fn knn_self(base: Matrix<'_>, dim: usize, rows: &[u32], k: usize, scoring: Scoring<'_>, params: &IvfParams) -> Vec<Vec<(u32, f32)>> {
    let all: Vec<usize> = (0..rows.len()).collect();
    knn_self_of(base, dim, rows, &all, k, scoring, params)
}

/// [`knn_self`] for the rows at `queries` (positions in `rows`) only, in that order: each
/// result is exactly what [`knn_self`] gives that row (the lists come from a seeded sample of
/// all of `rows`, and ties go to the lower row), so shards of the queries computed apart
/// (`curate dedupe --shard i/n`) join into one run's results.
pub fn knn_self_of(base: Matrix<'_>, dim: usize, rows: &[u32], queries: &[usize], k: usize, scoring: Scoring<'_>, params: &IvfParams) -> Vec<Vec<(u32, f32)>> {
    if rows.len() <= params.exact_limit {
        let mut out = Vec::with_capacity(queries.len());
        for chunk in queries.chunks(QUERY_BATCH) {
            let query_rows: Vec<u32> = chunk.iter().map(|&i| rows[i]).collect();
            let q = gather(base, dim, &query_rows, scoring);
            let hits = top_k(&q, dim, base, Some(rows), k + 1, scoring);
            out.extend(query_rows.iter().zip(hits).map(|(&r, h)| drop_self(h, r, k)));
        }
        return out;
    }
    let (lists, assignment) = ivf_lists(base, dim, rows, params);
    // The rows whose primary list each list is, and the queries (by index in `queries`) that
    // probe it.
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); lists];
    for (i, near) in assignment.iter().enumerate() {
        if let Some(&primary) = near.first() {
            members[primary as usize].push(rows[i]);
        }
    }
    let mut probing: Vec<Vec<u32>> = vec![Vec::new(); lists];
    for (qi, &i) in queries.iter().enumerate() {
        for &l in &assignment[i] {
            probing[l as usize].push(qi as u32);
        }
    }
    let results: Vec<std::sync::Mutex<TopK>> = (0..queries.len()).map(|_| std::sync::Mutex::new(TopK::new(k + 1))).collect();
    (0..lists).into_par_iter().for_each(|l| {
        if members[l].is_empty() {
            return;
        }
        for chunk in probing[l].chunks(QUERY_BATCH) {
            let query_rows: Vec<u32> = chunk.iter().map(|&qi| rows[queries[qi as usize]]).collect();
            let q = gather(base, dim, &query_rows, scoring);
            let hits = top_k(&q, dim, base, Some(&members[l]), k + 1, scoring);
            for (&qi, h) in chunk.iter().zip(hits) {
                if let Ok(mut top) = results[qi as usize].lock() {
                    for (r, s) in h {
                        top.push(s, r);
                    }
                }
            }
        }
    });
    results.into_iter().zip(queries).map(|(top, &i)| drop_self(top.into_inner().map(TopK::into_sorted).unwrap_or_default(), rows[i], k)).collect()
}

/// Spherical k-means on a seeded sample of `rows`, then each row's `probes` nearest lists
/// (nearest first). Returns the number of lists and the assignment by position in `rows`.
pub fn ivf_lists(base: Matrix<'_>, dim: usize, rows: &[u32], params: &IvfParams) -> (usize, Vec<Vec<u32>>) {
    let centroids = kmeans(base, dim, rows, params);
    let lists = centroids.len() / dim.max(1);
    let mut assignment = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(QUERY_BATCH * 8) {
        assignment.extend(nearest_lists(base, dim, chunk, &centroids, params.probes));
    }
    (lists, assignment)
}

/// Spherical k-means (unit centroids, scored by dot product) fitted on a seeded sample of
/// `rows`: `lists × dim` centroids, row-major. The same rows and parameters give the same
/// centroids, bit for bit.
pub fn kmeans(base: Matrix<'_>, dim: usize, rows: &[u32], params: &IvfParams) -> Vec<f32> {
    kmeans_until(base, dim, rows, params, &|| false).unwrap_or_default()
}

/// [`kmeans`], asking `stop` before each iteration: `None` when it said stop.
pub fn kmeans_until(base: Matrix<'_>, dim: usize, rows: &[u32], params: &IvfParams, stop: &dyn Fn() -> bool) -> Option<Vec<f32>> {
    let n = rows.len();
    if n == 0 || dim == 0 {
        return Some(Vec::new());
    }
    let lists = params.lists.unwrap_or((n as f64).sqrt() as usize).clamp(1, n);
    let mut rng = crate::SplitMix(params.seed);
    // Partial Fisher-Yates: a seeded sample of positions.
    let take = (lists * params.sample_per_list.max(1)).min(n);
    let mut pos: Vec<u32> = (0..n as u32).collect();
    for i in 0..take {
        let j = i + (rng.next_u64() % (n - i) as u64) as usize;
        pos.swap(i, j);
    }
    let sample_rows: Vec<u32> = pos[..take].iter().map(|&p| rows[p as usize]).collect();
    let sample = gather(base, dim, &sample_rows, Scoring::Dot);
    let mut centroids: Vec<f32> = sample[..lists * dim].to_vec();
    for _ in 0..params.iterations {
        if stop() {
            return None;
        }
        let nearest = top_k(&sample, dim, Matrix::F32(&centroids), None, 1, Scoring::Dot);
        let mut sums = vec![0f32; lists * dim];
        let mut counts = vec![0usize; lists];
        for (i, hit) in nearest.iter().enumerate() {
            if let Some(&(c, _)) = hit.first() {
                counts[c as usize] += 1;
                let dst = &mut sums[c as usize * dim..(c as usize + 1) * dim];
                dst.iter_mut().zip(&sample[i * dim..(i + 1) * dim]).for_each(|(d, x)| *d += x);
            }
        }
        for c in 0..lists {
            let dst = &mut sums[c * dim..(c + 1) * dim];
            if counts[c] == 0 {
                // An empty list restarts from a random sample row.
                let i = (rng.next_u64() % take as u64) as usize;
                dst.copy_from_slice(&sample[i * dim..(i + 1) * dim]);
            }
            let norm = dst.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm > 0.0 {
                dst.iter_mut().for_each(|x| *x /= norm);
            }
        }
        centroids = sums;
    }
    Some(centroids)
}

/// Each of `rows`' `probes` nearest centroids (by dot product with the stored unit row),
/// nearest first.
pub fn nearest_lists(base: Matrix<'_>, dim: usize, rows: &[u32], centroids: &[f32], probes: usize) -> Vec<Vec<u32>> {
    let lists = centroids.len() / dim.max(1);
    let probes = probes.clamp(1, lists.max(1));
    let q = gather(base, dim, rows, Scoring::Dot);
    top_k(&q, dim, Matrix::F32(centroids), None, probes, Scoring::Dot).into_iter().map(|h| h.into_iter().map(|x| x.0).collect()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SplitMix;

    fn random(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = SplitMix(seed);
        (0..n * dim).map(|_| rng.gauss()).collect()
    }

    fn naive(q: &[f32], base: &[f32], dim: usize, rows: &[u32], k: usize) -> Vec<(u32, f32)> {
        let mut all: Vec<(u32, f32)> = rows.iter().map(|&r| (r, dot(q, &base[r as usize * dim..(r as usize + 1) * dim]))).collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(k);
        all
    }

    #[test]
    fn shards_of_the_queries_join_into_one_run() {
        let (n, dim) = (3000, 24);
        let base = random(n, dim, 9);
        let rows: Vec<u32> = (0..n as u32).rev().step_by(1).collect();
        for exact_limit in [n, 100] {
            let params = IvfParams { exact_limit, ..IvfParams::default() };
            let whole = knn_self(Matrix::F32(&base), dim, &rows, 5, Scoring::Dot, &params);
            let mut joined = vec![Vec::new(); n];
            for shard in 0..3 {
                let mine: Vec<usize> = (0..n).filter(|i| i % 3 == shard).collect();
                for (i, hits) in mine.iter().zip(knn_self_of(Matrix::F32(&base), dim, &rows, &mine, 5, Scoring::Dot, &params)) {
                    joined[*i] = hits;
                }
            }
            assert!(whole == joined, "exact_limit {exact_limit}: shards' results equal one run's, bit for bit");
        }
    }

    #[test]
    fn fused_f16_dot_equals_converting_first() {
        if !simd::has_f16_fma() {
            return;
        }
        for dim in [1, 7, 8, 31, 32, 33, 1280, 1283] {
            let q = random(1, dim, 11);
            let r = to_f16(&random(1, dim, 12));
            let converted: Vec<f32> = r.iter().map(|h| h.to_f32()).collect();
            // SAFETY: the features were detected above.
            let fused = unsafe { simd::dot_f16(&q, &r) };
            let plain = dot(&q, &converted);
            assert!((fused - plain).abs() <= 1e-4 * (1.0 + plain.abs()), "dim {dim}: {fused} vs {plain}");
        }
    }

    #[test]
    fn few_queries_score_like_many() {
        let (n, dim) = (2000, 33);
        let base = random(n, dim, 5);
        let queries = random(40, dim, 6);
        let many = top_k(&queries, dim, Matrix::F32(&base), None, 7, Scoring::Dot);
        for qi in [0, 17, 39] {
            let one = top_k(&queries[qi * dim..(qi + 1) * dim], dim, Matrix::F32(&base), None, 7, Scoring::Dot);
            assert_eq!(one[0].iter().map(|h| h.0).collect::<Vec<_>>(), many[qi].iter().map(|h| h.0).collect::<Vec<_>>());
        }
    }

    #[test]
    fn gemm_top_k_equals_a_naive_scan() {
        let (n, dim, m, k) = (3000, 37, 70, 9);
        let base = random(n, dim, 1);
        let queries = random(m, dim, 2);
        let all: Vec<u32> = (0..n as u32).collect();
        let got = top_k(&queries, dim, Matrix::F32(&base), None, k, Scoring::Dot);
        assert_eq!(got.len(), m);
        for (qi, hits) in got.iter().enumerate() {
            let want = naive(&queries[qi * dim..(qi + 1) * dim], &base, dim, &all, k);
            assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), want.iter().map(|h| h.0).collect::<Vec<_>>(), "query {qi}");
            for (a, b) in hits.iter().zip(&want) {
                assert!((a.1 - b.1).abs() < 1e-3);
            }
        }
        // A subset, in any order, and f16 storage.
        let subset: Vec<u32> = (0..n as u32).rev().filter(|r| r % 3 != 0).collect();
        let half = to_f16(&base);
        let rounded: Vec<f32> = half.iter().map(|h| h.to_f32()).collect();
        let got = top_k(&queries[..dim], dim, Matrix::F16(&half), Some(&subset), k, Scoring::Dot);
        assert_eq!(got.len(), 1);
        let want = naive(&queries[..dim], &rounded, dim, &subset, k);
        assert_eq!(got[0].iter().map(|h| h.0).collect::<Vec<_>>(), want.iter().map(|h| h.0).collect::<Vec<_>>());
    }

    #[test]
    fn l2_scoring_ranks_by_distance() {
        let dim = 2;
        // Unit rows with norms: the points (1,0), (0,3), (2,0).
        let units = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0];
        let norms = [1.0, 3.0, 2.0];
        let q = [1.9, 0.1];
        let got = top_k(&q, dim, Matrix::F32(&units), None, 3, Scoring::L2 { norms: &norms });
        let order: Vec<u32> = got[0].iter().map(|h| h.0).collect();
        assert_eq!(order, vec![2, 0, 1]);
        let q2: f32 = q.iter().map(|x| x * x).sum();
        let d = q2 - got[0][0].1;
        assert!((d - (0.01 + 0.01)).abs() < 1e-5, "{d}");
    }

    #[test]
    fn ivf_finds_the_near_pairs_an_exact_scan_finds() {
        // 60 clusters of unit vectors, each with near copies, 6,000 rows: IVF (forced) against
        // the exact all-pairs search.
        let (dim, n) = (24, 6000);
        let mut rng = SplitMix(3);
        let centres: Vec<Vec<f32>> = (0..60).map(|_| (0..dim).map(|_| rng.gauss()).collect()).collect();
        let mut data = Vec::with_capacity(n * dim);
        for i in 0..n {
            let c = &centres[i % 60];
            let v: Vec<f32> = c.iter().map(|x| x + 0.6 * rng.gauss()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            data.extend(v.iter().map(|x| x / norm));
        }
        let rows: Vec<u32> = (0..n as u32).collect();
        let k = 5;
        let exact = knn_self(Matrix::F32(&data), dim, &rows, k, Scoring::Dot, &IvfParams::default());
        let ivf = knn_self(Matrix::F32(&data), dim, &rows, k, Scoring::Dot, &IvfParams { exact_limit: 0, lists: Some(40), ..IvfParams::default() });
        let mut found = 0;
        for (e, a) in exact.iter().zip(&ivf) {
            assert!(e.iter().all(|h| h.0 as usize != e.len() + n), "no self");
            found += e.iter().filter(|h| a.iter().any(|x| x.0 == h.0)).count();
        }
        let recall = found as f64 / (n * k) as f64;
        assert!(recall >= 0.95, "recall {recall}");
        for (i, a) in ivf.iter().enumerate() {
            assert!(a.iter().all(|h| h.0 as usize != i), "row {i} is its own neighbour");
            assert!(a.windows(2).all(|w| w[0].1 >= w[1].1));
        }
    }

    #[test]
    fn ties_break_by_row_and_k_larger_than_rows() {
        let base = vec![1.0f32; 10];
        let got = top_k(&[1.0], 1, Matrix::F32(&base), None, 20, Scoring::Dot);
        assert_eq!(got[0].iter().map(|h| h.0).collect::<Vec<_>>(), (0..10).collect::<Vec<u32>>());
        assert!(top_k(&[1.0], 1, Matrix::F32(&base), None, 0, Scoring::Dot)[0].is_empty());
    }
}
