//! Nearest-neighbour search over a model's vector store: exact search as blocked matrix
//! products over the mapped vectors, an inverted-file search for kNN within large sets, and an
//! HNSW index (instant-distance), built by `curate index`, persisted beside the store and stale
//! when the store changes.
//!
//! Cosine similarity normalises the vectors, so that squared L2 ranks like cosine distance;
//! distances are reported as `1 - cos` for cosine and as Euclidean distance for L2.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic;
use crate::error::{CurateError, Result};
use crate::shard::Shard;
use crate::store::Store;
use curate_kernels::knn::{self, Scoring};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    #[default]
    Cosine,
    L2,
}

impl Metric {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "cosine" => Some(Metric::Cosine),
            "l2" | "euclidean" => Some(Metric::L2),
            _ => None,
        }
    }

    /// Prepare a vector for this metric (normalise for cosine).
    pub fn prepare(self, v: &[f32]) -> Vec<f32> {
        match self {
            Metric::L2 => v.to_vec(),
            Metric::Cosine => curate_kernels::normalized(v),
        }
    }

    /// The reported distance from a squared L2 distance between prepared vectors.
    pub fn report(self, sq: f32) -> f32 {
        match self {
            Metric::L2 => sq.max(0.0).sqrt(),
            Metric::Cosine => (sq / 2.0).max(0.0),
        }
    }
}

pub use curate_kernels::{sq_l2, Vector};

pub struct Neighbour {
    /// Row in the vector store.
    pub row: usize,
    pub distance: f32,
}

impl Metric {
    fn scoring(self, store: &Store) -> Scoring<'_> {
        match self {
            Metric::Cosine => Scoring::Dot,
            Metric::L2 => Scoring::L2 { norms: store.norms() },
        }
    }

    /// The reported distance from a query (prepared) and a `Scoring` score.
    fn distance(self, query: &[f32], score: f32) -> f32 {
        match self {
            Metric::Cosine => (1.0 - score).max(0.0),
            Metric::L2 => (query.iter().map(|x| x * x).sum::<f32>() - score).max(0.0).sqrt(),
        }
    }

    /// A stored row as this metric compares it.
    fn point(self, store: &Store, row: usize) -> Vec<f32> {
        match self {
            Metric::Cosine => store.unit_row(row),
            Metric::L2 => store.raw_row(row),
        }
    }
}

/// The live rows of one shard (by content hash, as `--shard` partitions everywhere), or all.
pub fn shard_rows(store: &Store, shard: Option<Shard>) -> Result<Vec<u32>> {
    let Some(shard) = shard else { return live_rows(store) };
    let mut rows: Vec<u32> = store.entries()?.into_iter().filter(|(h, _)| shard.owns(h)).map(|(_, r)| r).collect();
    rows.sort_unstable();
    Ok(rows)
}

/// The store's live rows (one per content hash), ascending.
pub fn live_rows(store: &Store) -> Result<Vec<u32>> {
    let mut rows: Vec<u32> = store.table()?.column("row")?.u32()?.into_no_null_iter().collect();
    rows.sort_unstable();
    Ok(rows)
}

/// Which ANN library holds an index. Both sit behind [`AnnIndex`]; `curate index` picks by size
/// ([`Backend::for_size`]) unless told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// instant-distance: pure Rust, rebuilt when the vectors change.
    Hnsw,
    /// usearch: f16, memory-mapped when opened, grows by adding the new rows.
    Usearch,
    /// Inverted lists: spherical k-means centroids, and a search scores the rows of the query's
    /// nearest lists exactly, by matrix products over the mapped store (nothing but the
    /// centroids and the lists is stored). Grows by assigning new rows to their nearest list.
    Ivf,
}

impl Backend {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hnsw" | "instant-distance" => Some(Backend::Hnsw),
            "usearch" => Some(Backend::Usearch),
            "ivf" => Some(Backend::Ivf),
            _ => None,
        }
    }

    /// The default backend for `n` vectors: usearch below [`IVF_FROM`], the inverted lists from
    /// there. Measured by the `ann` bench (1280-d, one query at a time, recall@10): at 100,000
    /// usearch answers about twice as many queries per second as 8 probed lists at the same
    /// recall (0.99–1.00), so it is the default there; on clustered vectors whose members are
    /// nearly equidistant its graph search falls to recall 0.78 at 300,000 and 0.52 at
    /// 1,000,000 (0.978 on real-like ones), and it builds in 254 s and 991–1,120 s, while the
    /// lists keep 0.99 (they compare exactly) and build in 12 s and 54 s. The switch sits
    /// between the two measured sizes. instant-distance stays for `--backend hnsw`, pure Rust.
    pub fn for_size(n: usize) -> Self {
        if n >= IVF_FROM {
            Backend::Ivf
        } else {
            Backend::Usearch
        }
    }
}

/// From this many vectors `curate index` builds inverted lists rather than a usearch graph.
pub const IVF_FROM: usize = 200_000;

/// What `index-<metric>.json` records: the commit point of an index build.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sidecar {
    backend: Backend,
    metric: Metric,
    /// The store's fingerprint the index matches.
    fingerprint: String,
    /// Store rows `[0, rows)` were considered (the live ones are indexed).
    rows: usize,
    live: usize,
    /// The data file, named by generation.
    file: String,
    /// The shard of the store's rows (by content hash) this index holds; none for all of them.
    #[serde(default)]
    shard: Option<(usize, usize)>,
}

enum Inner {
    Hnsw(curate_kernels::Hnsw),
    Usearch(usearch::Index),
    Ivf(Box<IvfIndex>),
    /// One index per shard of the rows (`curate index --shard i/n` on n machines): a query goes
    /// to every shard and their top-k are merged.
    Shards(Vec<AnnIndex>),
}

pub struct AnnIndex {
    pub metric: Metric,
    pub backend: Backend,
    /// The store's fingerprint when the index was built: stale when it changes.
    pub fingerprint: String,
    /// Vectors indexed.
    pub live: usize,
    /// The shard of the rows this index holds, if it holds one.
    pub shard: Option<Shard>,
    inner: Inner,
}

/// HNSW parameters, the same for both backends (instant-distance's defaults for M).
const EF_CONSTRUCTION: usize = 128;
const EF_SEARCH: usize = 128;
const CONNECTIVITY: usize = 16;

/// The inverted lists of an [`Backend::Ivf`] index, as saved.
#[derive(Serialize, Deserialize)]
struct IvfLists {
    dim: usize,
    /// `lists × dim` unit centroids, row-major.
    centroids: Vec<f32>,
    /// List `l` holds `members[offsets[l]..offsets[l + 1]]`, store rows in ascending order.
    offsets: Vec<u64>,
    members: Vec<u32>,
    /// Rows the centroids were fitted to: an index that has grown far past them is rebuilt.
    trained: usize,
}

struct IvfIndex {
    lists: IvfLists,
    /// The store the rows are read from (its own mapping: opening one takes a millisecond).
    store: Store,
    probes: std::sync::atomic::AtomicUsize,
}

/// Lists searched per query by default. Measured by the `ann` bench (recall@10 against exact
/// search): see [`Backend::for_size`].
pub const IVF_PROBES: usize = 8;

impl IvfIndex {
    /// Lists over `store`'s rows, searched with the default probes through a mapping of its own.
    fn open(lists: IvfLists, store: &Store) -> Result<Self> {
        Ok(IvfIndex { lists, store: Store::open(store.dir())?, probes: IVF_PROBES.into() })
    }
}

impl IvfLists {
    /// The lists of `rows` given their nearest centroid each.
    fn from_assignment(dim: usize, centroids: Vec<f32>, rows: &[u32], nearest: &[u32], trained: usize) -> Self {
        let lists = centroids.len() / dim.max(1);
        let mut counts = vec![0u64; lists + 1];
        for &l in nearest {
            counts[l as usize + 1] += 1;
        }
        for l in 0..lists {
            counts[l + 1] += counts[l];
        }
        let offsets = counts;
        let mut fill: Vec<u64> = offsets[..lists].to_vec();
        let mut members = vec![0u32; rows.len()];
        // Rows come ascending, so each list's members are too.
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_unstable_by_key(|&i| rows[i]);
        for i in order {
            let l = nearest[i] as usize;
            members[fill[l] as usize] = rows[i];
            fill[l] += 1;
        }
        IvfLists { dim, centroids, offsets, members, trained }
    }

    fn len(&self) -> usize {
        self.centroids.len() / self.dim.max(1)
    }

    fn list(&self, l: usize) -> &[u32] {
        &self.members[self.offsets[l] as usize..self.offsets[l + 1] as usize]
    }
}

/// Lists for `n` rows: √n (as faiss's guidance and NeMo Curator's semantic dedup), at least 1.
fn ivf_lists_for(n: usize) -> usize {
    ((n as f64).sqrt() as usize).max(1)
}

/// Each row's nearest centroid, in chunks, with progress and a way out.
fn ivf_assign(store: &Store, centroids: &[f32], rows: &[u32], progress: &dyn crate::progress::Progress) -> Result<Vec<u32>> {
    let mut nearest = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(8192) {
        if progress.is_cancelled() {
            return Err(CurateError::Interrupted);
        }
        nearest.extend(knn::nearest_lists(store.matrix(), store.dim(), chunk, centroids, 1).into_iter().map(|l| l.first().copied().unwrap_or(0)));
        progress.advance(chunk.len() as u64);
    }
    Ok(nearest)
}

fn usearch_error(path: &Path, e: cxx::Exception) -> CurateError {
    CurateError::io(path, format!("usearch: {}", e.what()))
}

fn usearch_options(metric: Metric, dim: usize) -> usearch::IndexOptions {
    usearch::IndexOptions {
        dimensions: dim,
        // Stored rows are unit vectors for cosine: inner product is cosine, and 1 - ip the distance.
        metric: match metric {
            Metric::Cosine => usearch::MetricKind::IP,
            Metric::L2 => usearch::MetricKind::L2sq,
        },
        quantization: usearch::ScalarKind::F16,
        connectivity: CONNECTIVITY,
        expansion_add: EF_CONSTRUCTION,
        expansion_search: EF_SEARCH,
        multi: false,
    }
}

impl AnnIndex {
    /// The sidecar that commits an index of `metric` in a store's folder.
    pub fn path(cache_dir: &Path, metric: Metric) -> PathBuf {
        Self::path_of(cache_dir, metric, None)
    }

    /// The sidecar of the whole index, or of one shard's.
    pub fn path_of(cache_dir: &Path, metric: Metric, shard: Option<Shard>) -> PathBuf {
        let metric = format!("{metric:?}").to_lowercase();
        match shard {
            None => cache_dir.join(format!("index-{metric}.json")),
            Some(s) => cache_dir.join(format!("index-{metric}.shard-{}-of-{}.json", s.index, s.count)),
        }
    }

    /// Build an index over the store's live rows with `backend`.
    pub fn build(store: &Store, metric: Metric, backend: Backend, progress: &dyn crate::progress::Progress) -> Result<Self> {
        Self::build_shard(store, metric, backend, None, progress)
    }

    /// Build an index over the live rows of one shard (by content hash), or of all.
    pub fn build_shard(store: &Store, metric: Metric, backend: Backend, shard: Option<Shard>, progress: &dyn crate::progress::Progress) -> Result<Self> {
        let rows = shard_rows(store, shard)?;
        progress.start(&format!("building the index ({backend:?})").to_lowercase(), rows.len() as u64);
        let inner = match backend {
            Backend::Hnsw => {
                let points: Vec<Vector> = rows.iter().map(|&r| Vector(metric.point(store, r as usize))).collect();
                Inner::Hnsw(curate_kernels::build_hnsw(points, rows.clone(), EF_CONSTRUCTION, EF_SEARCH, 7))
            }
            Backend::Usearch => {
                let index = usearch::Index::new(&usearch_options(metric, store.dim())).map_err(|e| usearch_error(store.dir(), e))?;
                add_rows(&index, store, metric, &rows, progress)?;
                Inner::Usearch(index)
            }
            Backend::Ivf => {
                // Centroids from the unit rows whatever the metric: lists group directions.
                let params = knn::IvfParams { lists: Some(ivf_lists_for(rows.len())), iterations: 10, ..knn::IvfParams::default() };
                let centroids = knn::kmeans_until(store.matrix(), store.dim(), &rows, &params, &|| progress.is_cancelled()).ok_or(CurateError::Interrupted)?;
                let nearest = ivf_assign(store, &centroids, &rows, progress)?;
                let lists = IvfLists::from_assignment(store.dim(), centroids, &rows, &nearest, rows.len());
                Inner::Ivf(Box::new(IvfIndex::open(lists, store)?))
            }
        };
        progress.finish();
        Ok(AnnIndex { metric, backend, fingerprint: store.fingerprint().to_string(), live: rows.len(), shard, inner })
    }

    /// Save beside the store: the data file under a new generation name, then the sidecar that
    /// commits it (atomically), then the previous generation's file goes. A kill at any point
    /// leaves the previous index, or none, never a torn one.
    pub fn save(&self, store: &Store, rows: usize) -> Result<()> {
        let sidecar_path = Self::path_of(store.dir(), self.metric, self.shard);
        let previous = read_sidecar(&sidecar_path);
        let metric = format!("{:?}", self.metric).to_lowercase();
        let generation = &self.fingerprint[..16.min(self.fingerprint.len())];
        let shard = self.shard.map(|s| format!(".shard-{}-of-{}", s.index, s.count)).unwrap_or_default();
        let file = match &self.inner {
            Inner::Hnsw(_) => format!("index-{metric}-{generation}{shard}.hnsw"),
            Inner::Usearch(_) => format!("index-{metric}-{generation}{shard}.usearch"),
            Inner::Ivf(_) => format!("index-{metric}-{generation}{shard}.ivf"),
            Inner::Shards(_) => return Err(CurateError::arg("index", "the shards' indexes are saved one by one")),
        };
        let data_path = store.dir().join(&file);
        match &self.inner {
            Inner::Hnsw(hnsw) => write_atomic(&data_path, |f| {
                crate::store::failpoint("index:writing");
                serialize_to(&data_path, f, hnsw)
            })?,
            Inner::Ivf(ivf) => write_atomic(&data_path, |f| {
                crate::store::failpoint("index:writing");
                serialize_to(&data_path, f, &ivf.lists)
            })?,
            Inner::Usearch(index) => {
                let tmp = store.dir().join(format!(".curate-tmp-{}-{}-{file}", std::process::id(), crate::edits::now().replace([':', '.'], "")));
                let tmp_str = tmp.to_string_lossy().to_string();
                index.save(&tmp_str).map_err(|e| usearch_error(&tmp, e))?;
                crate::store::failpoint("index:writing");
                std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(|e| CurateError::io(&tmp, e))?;
                std::fs::rename(&tmp, &data_path).map_err(|e| CurateError::io(&data_path, e))?;
            }
            Inner::Shards(_) => {}
        }
        let shard = self.shard.map(|s| (s.index, s.count));
        let sidecar = Sidecar { backend: self.backend, metric: self.metric, fingerprint: self.fingerprint.clone(), rows, live: self.live, file: file.clone(), shard };
        let json = serde_json::to_vec_pretty(&sidecar).map_err(|e| CurateError::io(&sidecar_path, e))?;
        crate::atomic::write_bytes_atomic(&sidecar_path, &json)?;
        if let Some(old) = previous {
            if old.file != file {
                let _ = std::fs::remove_file(store.dir().join(old.file));
            }
        }
        Ok(())
    }

    /// Open the committed index of `metric` if it was built from exactly this store (a usearch
    /// index is memory-mapped, not read).
    pub fn load_fresh(path: &Path, store: &Store, metric: Metric) -> Option<Self> {
        let sidecar = read_sidecar(path)?;
        if sidecar.metric != metric || sidecar.fingerprint != store.fingerprint() {
            return None;
        }
        let data_path = store.dir().join(&sidecar.file);
        let inner = match sidecar.backend {
            Backend::Hnsw => {
                let file = std::fs::File::open(&data_path).ok()?;
                Inner::Hnsw(bincode::deserialize_from(std::io::BufReader::new(file)).ok()?)
            }
            Backend::Usearch => {
                let index = usearch::Index::restore_view(&data_path.to_string_lossy()).ok()?;
                index.change_expansion_search(EF_SEARCH);
                Inner::Usearch(index)
            }
            Backend::Ivf => Inner::Ivf(Box::new(IvfIndex::open(read_ivf(&data_path, store)?, store).ok()?)),
        };
        let shard = sidecar.shard.map(|(index, count)| Shard { index, count });
        Some(AnnIndex { metric, backend: sidecar.backend, fingerprint: sidecar.fingerprint, live: sidecar.live, shard, inner })
    }

    /// The shards' indexes of `metric` as one, when a whole set (`n` shards, every one built
    /// from exactly this store) is committed beside it; the largest such set wins.
    pub fn load_shards(store: &Store, metric: Metric) -> Option<Self> {
        let prefix = format!("index-{}.shard-", format!("{metric:?}").to_lowercase());
        let mut counts: Vec<usize> = std::fs::read_dir(store.dir())
            .ok()?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let rest = name.strip_prefix(&prefix)?.strip_suffix(".json")?;
                rest.split_once("-of-")?.1.parse().ok()
            })
            .collect();
        counts.sort_unstable();
        counts.dedup();
        counts.into_iter().rev().find_map(|count| {
            let parts: Option<Vec<AnnIndex>> = (0..count).map(|index| Self::load_fresh(&Self::path_of(store.dir(), metric, Some(Shard { index, count })), store, metric)).collect();
            let parts = parts?;
            let live = parts.iter().map(|p| p.live).sum();
            let backend = parts.first()?.backend;
            Some(AnnIndex { metric, backend, fingerprint: store.fingerprint().to_string(), live, shard: None, inner: Inner::Shards(parts) })
        })
    }

    /// Bring the committed index up to date with a store that has grown: add the new rows and
    /// drop replaced ones, without a rebuild. `None` when there is no such index, when it is
    /// not of `backend` (if given), when it is an instant-distance one (which cannot grow), or
    /// an inverted-file one that has no lists or has grown past four times the rows its lists
    /// were fitted to.
    pub fn update(store: &Store, metric: Metric, shard: Option<Shard>, backend: Option<Backend>, progress: &dyn crate::progress::Progress) -> Result<Option<Self>> {
        let path = Self::path_of(store.dir(), metric, shard);
        let Some(sidecar) = read_sidecar(&path) else { return Ok(None) };
        if sidecar.backend == Backend::Hnsw || backend.is_some_and(|b| b != sidecar.backend) || sidecar.metric != metric || sidecar.rows > store.rows() {
            return Ok(None);
        }
        let data_path = store.dir().join(&sidecar.file);
        let live = shard_rows(store, shard)?;
        let new: Vec<u32> = live.iter().copied().filter(|&r| r as usize >= sidecar.rows).collect();
        // Rows replaced by a newer row for the same image leave the index.
        let mut is_live = vec![false; store.rows()];
        for &r in &live {
            is_live[r as usize] = true;
        }
        if sidecar.backend == Backend::Ivf {
            // A missing or unreadable index is rebuilt, not a dead end.
            let Some(old) = read_ivf(&data_path, store) else { return Ok(None) };
            if old.len() == 0 || live.len() > 4 * old.trained.max(1) {
                return Ok(None);
            }
            progress.start("adding to the index", new.len() as u64);
            let added = ivf_assign(store, &old.centroids, &new, progress)?;
            progress.finish();
            // Kept rows stay in their lists; the new ones join their nearest.
            let mut rows = Vec::with_capacity(live.len());
            let mut nearest = Vec::with_capacity(live.len());
            for l in 0..old.len() {
                for &r in old.list(l).iter().filter(|&&r| is_live[r as usize]) {
                    rows.push(r);
                    nearest.push(l as u32);
                }
            }
            rows.extend_from_slice(&new);
            nearest.extend_from_slice(&added);
            let lists = IvfLists::from_assignment(old.dim, old.centroids, &rows, &nearest, old.trained);
            let live = lists.members.len();
            let inner = Inner::Ivf(Box::new(IvfIndex::open(lists, store)?));
            return Ok(Some(AnnIndex { metric, backend: Backend::Ivf, fingerprint: store.fingerprint().to_string(), live, shard, inner }));
        }
        // A missing or unreadable index is rebuilt, not a dead end.
        let Ok(index) = usearch::Index::restore(&data_path.to_string_lossy()) else { return Ok(None) };
        if index.dimensions() != store.dim() {
            return Ok(None);
        }
        for r in 0..sidecar.rows {
            if !is_live[r] && index.contains(r as u64) {
                index.remove(r as u64).map_err(|e| usearch_error(&data_path, e))?;
            }
        }
        progress.start("adding to the index", new.len() as u64);
        add_rows(&index, store, metric, &new, progress)?;
        progress.finish();
        index.change_expansion_search(EF_SEARCH);
        Ok(Some(AnnIndex { metric, backend: Backend::Usearch, fingerprint: store.fingerprint().to_string(), live: index.size(), shard, inner: Inner::Usearch(index) }))
    }

    /// The sizes of an inverted-file index's lists (empty for other backends).
    pub fn list_sizes(&self) -> Vec<usize> {
        match &self.inner {
            Inner::Ivf(ivf) => ivf.lists.offsets.windows(2).map(|w| (w[1] - w[0]) as usize).collect(),
            Inner::Shards(parts) => parts.iter().flat_map(AnnIndex::list_sizes).collect(),
            Inner::Hnsw(_) | Inner::Usearch(_) => vec![],
        }
    }

    /// Whether this is a set of shards' indexes searched as one.
    pub fn is_sharded(&self) -> bool {
        matches!(self.inner, Inner::Shards(_))
    }

    /// Set how many candidates a usearch search explores (its `ef`; 128 by default): more
    /// raises recall and costs speed. instant-distance keeps the value it was built with.
    pub fn set_expansion(&self, ef: usize) {
        match &self.inner {
            Inner::Usearch(index) => index.change_expansion_search(ef),
            Inner::Shards(parts) => parts.iter().for_each(|p| p.set_expansion(ef)),
            Inner::Hnsw(_) | Inner::Ivf(_) => {}
        }
    }

    /// Set how many lists an inverted-file search scores ([`IVF_PROBES`] by default): more
    /// raises recall and costs speed. Other backends ignore it.
    pub fn set_probes(&self, probes: usize) {
        match &self.inner {
            Inner::Ivf(ivf) => ivf.probes.store(probes.max(1), std::sync::atomic::Ordering::Relaxed),
            Inner::Shards(parts) => parts.iter().for_each(|p| p.set_probes(probes)),
            Inner::Hnsw(_) | Inner::Usearch(_) => {}
        }
    }

    /// The `k` nearest rows to `query` (a raw vector), among the rows `keep` accepts.
    pub fn search(&self, query: &[f32], k: usize, candidates: usize) -> Vec<Neighbour> {
        self.search_filtered(query, k, candidates, None)
    }

    pub fn search_filtered(&self, query: &[f32], k: usize, candidates: usize, keep: Option<&(dyn Fn(usize) -> bool + Sync)>) -> Vec<Neighbour> {
        let q = self.metric.prepare(query);
        let mut out: Vec<Neighbour> = match &self.inner {
            // The graph ranks by squared L2 between prepared vectors, exact for them.
            Inner::Hnsw(hnsw) => curate_kernels::search_hnsw(hnsw, &Vector(q), candidates.max(k))
                .into_iter()
                .filter(|(row, _)| keep.is_none_or(|f| f(*row)))
                .map(|(row, sq)| Neighbour { row, distance: self.metric.report(sq) })
                .collect(),
            Inner::Usearch(index) => {
                let found = match keep {
                    Some(f) => index.filtered_search(&q, k, |key| f(key as usize)),
                    None => index.search(&q, k),
                };
                match found {
                    Ok(m) => m
                        .keys
                        .iter()
                        .zip(&m.distances)
                        .map(|(&key, &d)| Neighbour {
                            row: key as usize,
                            distance: match self.metric {
                                Metric::Cosine => d.max(0.0),
                                Metric::L2 => d.max(0.0).sqrt(),
                            },
                        })
                        .collect(),
                    Err(_) => vec![],
                }
            }
            Inner::Ivf(ivf) => {
                let probes = ivf.probes.load(std::sync::atomic::Ordering::Relaxed);
                let lists = &ivf.lists;
                // Lists by direction, whatever the metric (the centroids are unit vectors).
                let direction = curate_kernels::normalized(&q);
                let near = knn::top_k(&direction, lists.dim, knn::Matrix::F32(&lists.centroids), None, probes, Scoring::Dot);
                let mut rows: Vec<u32> = near.first().into_iter().flatten().flat_map(|&(l, _)| lists.list(l as usize).iter().copied()).filter(|&r| keep.is_none_or(|f| f(r as usize))).collect();
                // In store order: the mapped pages are read front to back.
                rows.sort_unstable();
                let hits = knn::top_k(&q, lists.dim, ivf.store.matrix(), Some(&rows), k, self.metric.scoring(&ivf.store));
                hits.into_iter().flatten().map(|(row, score)| Neighbour { row: row as usize, distance: self.metric.distance(&q, score) }).collect()
            }
            // Each shard's k best, merged: the k best of all, at the shards' own recall.
            Inner::Shards(parts) => {
                use rayon::prelude::*;
                parts.par_iter().flat_map_iter(|p| p.search_filtered(query, k, candidates, keep)).collect()
            }
        };
        out.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.row.cmp(&b.row)));
        out.truncate(k);
        out
    }
}

/// `value` into `f` through a buffer whose flush errors (a full disk) are reported, not dropped.
fn serialize_to(path: &Path, f: &mut std::fs::File, value: &impl Serialize) -> Result<()> {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(f);
    bincode::serialize_into(&mut w, value).map_err(|e| CurateError::io(path, e))?;
    w.flush().map_err(|e| CurateError::io(path, e))
}

fn read_sidecar(path: &Path) -> Option<Sidecar> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// The saved lists of an inverted-file index over `store`, if whole and of its width.
fn read_ivf(path: &Path, store: &Store) -> Option<IvfLists> {
    let file = std::fs::File::open(path).ok()?;
    let lists: IvfLists = bincode::deserialize_from(std::io::BufReader::new(file)).ok()?;
    let whole = lists.dim == store.dim()
        && lists.offsets.len() == lists.len() + 1
        && lists.offsets.windows(2).all(|w| w[0] <= w[1])
        && lists.offsets.last().is_some_and(|&o| o as usize == lists.members.len())
        && lists.members.iter().all(|&r| (r as usize) < store.rows());
    whole.then_some(lists)
}

/// Add store rows to a usearch index in parallel (it is thread-safe once capacity and thread
/// slots are reserved).
fn add_rows(index: &usearch::Index, store: &Store, metric: Metric, rows: &[u32], progress: &dyn crate::progress::Progress) -> Result<()> {
    use rayon::prelude::*;
    let threads = rayon::current_num_threads();
    index.reserve_capacity_and_threads(index.size() + rows.len(), threads).map_err(|e| usearch_error(store.dir(), e))?;
    rows.par_chunks(1024).try_for_each(|chunk| -> Result<()> {
        if progress.is_cancelled() {
            return Err(CurateError::Interrupted);
        }
        for &r in chunk {
            index.add(r as u64, &metric.point(store, r as usize)).map_err(|e| usearch_error(store.dir(), e))?;
        }
        progress.advance(chunk.len() as u64);
        Ok(())
    })
}

/// Exact search for many queries (raw vectors) at once: one blocked matrix product over the
/// mapped store, restricted to `rows` when given (else every live row).
pub fn exact_search_many(store: &Store, metric: Metric, queries: &[Vec<f32>], k: usize, rows: Option<&[u32]>) -> Result<Vec<Vec<Neighbour>>> {
    let live;
    let rows = match rows {
        Some(r) => r,
        None => {
            live = live_rows(store)?;
            &live
        }
    };
    let dim = store.dim();
    let prepared: Vec<Vec<f32>> = queries.iter().map(|q| metric.prepare(q)).collect();
    if let Some(bad) = prepared.iter().find(|q| q.len() != dim) {
        return Err(CurateError::arg("similar", format!("a query vector has {} values, the stored vectors {dim}", bad.len())));
    }
    let flat: Vec<f32> = prepared.concat();
    let hits = knn::top_k(&flat, dim, store.matrix(), Some(rows), k, metric.scoring(store));
    Ok(hits.into_iter().zip(&prepared).map(|(hits, q)| hits.into_iter().map(|(row, score)| Neighbour { row: row as usize, distance: metric.distance(q, score) }).collect()).collect())
}

/// Exact search for one query: the reference the index is measured against.
pub fn exact_search(store: &Store, metric: Metric, query: &[f32], k: usize, rows: Option<&[u32]>) -> Result<Vec<Neighbour>> {
    Ok(exact_search_many(store, metric, &[query.to_vec()], k, rows)?.pop().unwrap_or_default())
}

/// For each of `rows`, its `k` nearest other rows among `rows`: exact (blocked matrix products)
/// for sets up to [`knn::EXACT_SELF_LIMIT`], beyond that by an inverted-file search (k-means
/// lists, exact products within the lists each row is near).
pub fn knn_within(store: &Store, metric: Metric, rows: &[usize], k: usize) -> Vec<Vec<Neighbour>> {
    let all: Vec<usize> = (0..rows.len()).collect();
    knn_within_of(store, metric, rows, &all, k)
}

/// [`knn_within`] for the rows at `queries` (positions in `rows`) only, each exactly as
/// [`knn_within`] gives it: how shards of the dedupe stage split the work.
pub fn knn_within_of(store: &Store, metric: Metric, rows: &[usize], queries: &[usize], k: usize) -> Vec<Vec<Neighbour>> {
    let rows32: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
    let hits = knn::knn_self_of(store.matrix(), store.dim(), &rows32, queries, k, metric.scoring(store), &knn::IvfParams::default());
    hits.into_iter()
        .zip(queries.iter().map(|&i| &rows[i]))
        .map(|(near, &r)| {
            let q = metric.point(store, r);
            near.into_iter().map(|(row, score)| Neighbour { row: row as usize, distance: metric.distance(&q, score) }).collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;
    use crate::store::{write, Layout};

    /// Clustered vectors (40 centres, noise), keyed by real content-like hashes so that shards
    /// split them evenly.
    fn store(dir: &Path, n: usize, dim: usize) -> Store {
        let mut state = 0x9e3779b97f4a7c15u64;
        let mut rand = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f32 / (1u64 << 53) as f32 - 0.5
        };
        let centres: Vec<Vec<f32>> = (0..40).map(|_| (0..dim).map(|_| rand()).collect()).collect();
        let mut vectors = Vec::with_capacity(n * dim);
        for i in 0..n {
            vectors.extend(centres[i % 40].iter().map(|c| c + 0.15 * rand()));
        }
        let hashes = (0..n).map(|i| blake3::hash(&i.to_le_bytes()).to_hex().to_string()).collect();
        write(dir, hashes, vectors, dim, Layout::EMBEDDINGS).expect("store")
    }

    #[test]
    fn ivf_index_is_exact_over_all_lists_grows_and_reloads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(dir.path(), 3000, 32);
        let idx = AnnIndex::build(&s, Metric::Cosine, Backend::Ivf, &Silent).expect("build");
        assert_eq!((idx.backend, idx.live), (Backend::Ivf, 3000));
        let Inner::Ivf(ivf) = &idx.inner else { panic!("an inverted-file index") };
        let lists = ivf.lists.len();
        assert_eq!(lists, 54, "√n lists");
        let queries: Vec<usize> = (0..3000).step_by(29).collect();
        let rows = |hits: Vec<Neighbour>| hits.into_iter().map(|n| n.row).collect::<Vec<_>>();
        // Every list probed: exactly exact search, order and all, filtered or not.
        idx.set_probes(lists);
        let even = |r: usize| r % 2 == 0;
        let even_rows: Vec<u32> = (0..3000).filter(|r| r % 2 == 0).collect();
        for &q in &queries {
            let query = s.raw_row(q);
            assert_eq!(rows(idx.search(&query, 10, 10)), rows(exact_search(&s, Metric::Cosine, &query, 10, None).expect("exact")), "query {q}");
            let filtered = idx.search_filtered(&query, 10, 10, Some(&even));
            assert_eq!(rows(filtered), rows(exact_search(&s, Metric::Cosine, &query, 10, Some(&even_rows)).expect("exact")));
        }
        // Euclidean distance too: lists by direction, rows scored by distance.
        let l2 = AnnIndex::build(&s, Metric::L2, Backend::Ivf, &Silent).expect("build l2");
        l2.set_probes(lists);
        for &q in &queries {
            let query: Vec<f32> = s.raw_row(q).iter().map(|x| x * 1.5).collect();
            let got = l2.search(&query, 10, 10);
            let want = exact_search(&s, Metric::L2, &query, 10, None).expect("exact");
            assert_eq!(got.iter().map(|n| n.row).collect::<Vec<_>>(), want.iter().map(|n| n.row).collect::<Vec<_>>(), "l2 query {q}");
            assert!(got.iter().zip(&want).all(|(a, b)| (a.distance - b.distance).abs() < 1e-4));
        }
        // The default probes: a fraction of the lists, still high recall on clustered vectors.
        idx.set_probes(IVF_PROBES);
        let mut found = 0;
        for &q in &queries {
            let query = s.raw_row(q);
            let exact = rows(exact_search(&s, Metric::Cosine, &query, 10, None).expect("exact"));
            found += rows(idx.search(&query, 10, 10)).iter().filter(|r| exact.contains(r)).count();
        }
        let recall = found as f64 / (queries.len() * 10) as f64;
        assert!(recall >= 0.95, "recall@10 {recall}");
        idx.save(&s, s.rows()).expect("save");
        let loaded = AnnIndex::load_fresh(&AnnIndex::path(s.dir(), Metric::Cosine), &s, Metric::Cosine).expect("fresh");
        assert_eq!(loaded.backend, Backend::Ivf);
        assert_eq!(rows(loaded.search(&s.raw_row(7), 10, 10)), rows(idx.search(&s.raw_row(7), 10, 10)));

        // 1% more rows, one of them a new version of row 5's image: added, not rebuilt.
        let (hashes, _) = s.entries().expect("entries").into_iter().find(|(_, r)| *r == 5).expect("row 5");
        let mut new_hashes: Vec<String> = (0..29).map(|i| blake3::hash(format!("new {i}").as_bytes()).to_hex().to_string()).collect();
        new_hashes.push(hashes);
        let new_vectors: Vec<f32> = (0..30).flat_map(|i| (0..32).map(move |j| if j == i { 1.0 } else { 0.01 })).collect();
        crate::store::write_part(dir.path(), new_hashes, new_vectors, 32).expect("part");
        crate::store::compact(dir.path(), Layout::EMBEDDINGS).expect("compact");
        let grown = Store::open(dir.path()).expect("open");
        assert!(AnnIndex::load_fresh(&AnnIndex::path(grown.dir(), Metric::Cosine), &grown, Metric::Cosine).is_none(), "stale once the store grew");
        assert!(AnnIndex::update(&grown, Metric::Cosine, None, Some(Backend::Usearch), &Silent).expect("update").is_none(), "another backend is not updated");
        let updated = AnnIndex::update(&grown, Metric::Cosine, None, None, &Silent).expect("update").expect("ivf grows");
        assert_eq!(updated.live, 3029, "29 new rows, row 5 replaced");
        updated.set_probes(lists);
        let live = live_rows(&grown).expect("live");
        for &q in queries.iter().chain(&[3000, 3010, 3029]) {
            let query = grown.raw_row(q);
            assert_eq!(rows(updated.search(&query, 10, 10)), rows(exact_search(&grown, Metric::Cosine, &query, 10, Some(&live)).expect("exact")), "query {q}");
        }
        assert!(!rows(updated.search(&s.raw_row(5), 10, 10)).contains(&5), "the replaced row left the lists");
        // With the default probes (a few of the lists), each new row is found in its list.
        updated.set_probes(IVF_PROBES);
        for q in 3000..3030 {
            assert_eq!(rows(updated.search(&grown.raw_row(q), 1, 1)), vec![q], "new row {q} joined its nearest list");
        }
        updated.save(&grown, grown.rows()).expect("save");
        assert!(AnnIndex::load_fresh(&AnnIndex::path(grown.dir(), Metric::Cosine), &grown, Metric::Cosine).is_some());
        // A torn or foreign lists file is rebuilt, not trusted.
        let sidecar = read_sidecar(&AnnIndex::path(grown.dir(), Metric::Cosine)).expect("sidecar");
        std::fs::write(grown.dir().join(&sidecar.file), b"not an index").expect("write");
        assert!(AnnIndex::load_fresh(&AnnIndex::path(grown.dir(), Metric::Cosine), &grown, Metric::Cosine).is_none());
        assert!(AnnIndex::update(&grown, Metric::Cosine, None, None, &Silent).expect("update").is_none());
    }

    #[test]
    fn shards_indexes_searched_as_one_match_the_single_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(dir.path(), 3000, 32);
        let single = AnnIndex::build(&s, Metric::Cosine, Backend::Usearch, &Silent).expect("build");
        let count = 4;
        let mut sizes = vec![];
        for index in 0..count {
            let shard = AnnIndex::build_shard(&s, Metric::Cosine, Backend::Usearch, Some(Shard { index, count }), &Silent).expect("shard");
            sizes.push(shard.live);
            shard.save(&s, s.rows()).expect("save");
            if index + 1 < count {
                assert!(AnnIndex::load_shards(&s, Metric::Cosine).is_none(), "an incomplete set is not used");
            }
        }
        assert_eq!(sizes.iter().sum::<usize>(), 3000);
        assert!(sizes.iter().all(|&n| n > 600), "content hashes split evenly: {sizes:?}");
        let sharded = AnnIndex::load_shards(&s, Metric::Cosine).expect("a whole set");
        assert!(sharded.is_sharded() && sharded.live == 3000);
        // HNSW builds run in parallel, so two graphs over the same vectors differ and so may
        // their rare misses: what must hold is the recall. Each shard is searched with the same
        // `ef` over a quarter of the vectors, so the merged results miss no more than one index.
        let (mut single_found, mut shards_found, mut same) = (0, 0, 0);
        let queries: Vec<usize> = (0..3000).step_by(13).collect();
        for &q in &queries {
            let query = s.raw_row(q);
            let exact: std::collections::HashSet<usize> = exact_search(&s, Metric::Cosine, &query, 10, None).expect("exact").iter().map(|n| n.row).collect();
            let one = single.search(&query, 10, 64);
            let many = sharded.search(&query, 10, 64);
            assert!(many.windows(2).all(|w| w[0].distance <= w[1].distance), "merged nearest first");
            single_found += one.iter().filter(|n| exact.contains(&n.row)).count();
            shards_found += many.iter().filter(|n| exact.contains(&n.row)).count();
            same += usize::from(one.iter().map(|n| n.row).eq(many.iter().map(|n| n.row)));
        }
        let total = (queries.len() * 10) as f64;
        let (r1, rn) = (single_found as f64 / total, shards_found as f64 / total);
        assert!(rn >= 0.98 && rn >= r1 - 0.002, "recall@10: shards {rn:.4}, one index {r1:.4}");
        assert!(same * 100 >= queries.len() * 95, "{same} of {} queries give the same top 10", queries.len());
        // Vectors added since: the shards are stale, and not used.
        let grown_dir = tempfile::tempdir().expect("tempdir");
        for e in std::fs::read_dir(dir.path()).expect("ls").flatten() {
            std::fs::copy(e.path(), grown_dir.path().join(e.file_name())).expect("copy");
        }
        crate::store::write_part(grown_dir.path(), vec![blake3::hash(b"new").to_hex().to_string()], vec![1.0; 32], 32).expect("part");
        crate::store::compact(grown_dir.path(), Layout::EMBEDDINGS).expect("compact");
        let grown = Store::open(grown_dir.path()).expect("open");
        assert!(AnnIndex::load_shards(&grown, Metric::Cosine).is_none());
        // One shard brought up to date does not make the set whole again.
        let shard = Some(Shard { index: 0, count });
        let updated = AnnIndex::update(&grown, Metric::Cosine, shard, None, &Silent).expect("update").expect("usearch grows");
        updated.save(&grown, grown.rows()).expect("save");
        assert!(AnnIndex::load_shards(&grown, Metric::Cosine).is_none());
    }
}
