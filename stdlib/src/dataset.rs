//! `Dataset`: an immutable view of a workspace's samples, a lazy Polars plan over the manifest.
//! Every primitive returns a new `Dataset`; nothing is read until a result is needed, so filters
//! and projections push down into the Parquet scan.

use std::any::{Any, TypeId};
use std::sync::{Arc, Mutex};

use polars::prelude::*;

use crate::error::{CurateError, Result};
use crate::workspace::Workspace;

#[derive(Clone)]
pub struct Dataset {
    ws: Arc<Workspace>,
    lf: LazyFrame,
    schema: SchemaRef,
    /// What this plan resolved to, shared by the clones of this value (a script's `ds` in a
    /// loop): its rows, and what operations derived from them (the vector view of a store).
    memo: Arc<Memo>,
}

/// A dataset's resolved values. A plan is immutable, but the files under it are not: every
/// entry is kept with the identity of the manifest file it was computed from, and recomputed
/// when the manifest file has changed since.
#[derive(Default)]
struct Memo {
    derived: Mutex<Vec<(TypeId, String, StateKey, Arc<dyn Any + Send + Sync>)>>,
}

/// The identity of the manifest file, which a plan scans lazily: one `stat` for its inode, size,
/// modification and change times (the manifest is replaced by a rename, so a new file has a new
/// inode or change time even within one timestamp tick). The edit log is not part of it:
/// `open()` reads the log once, so a value's edits are fixed when it is made.
type StateKey = Option<crate::atomic::FileIdentity>;

impl Dataset {
    pub fn new(ws: Arc<Workspace>, mut lf: LazyFrame) -> Result<Self> {
        let schema = lf.collect_schema()?;
        Ok(Dataset { ws, lf, schema, memo: Arc::default() })
    }

    fn state_key(&self) -> StateKey {
        crate::atomic::identity(&self.ws.manifest_path())
    }

    /// A value derived from this dataset's rows, computed once per `key` (say, a vector
    /// store's fingerprint) and kept while the manifest file is unchanged.
    pub fn memo<T: Any + Send + Sync>(&self, key: &str, make: impl FnOnce() -> Result<T>) -> Result<Arc<T>> {
        let state = self.state_key();
        let ty = TypeId::of::<T>();
        if let Ok(memo) = self.memo.derived.lock() {
            let hit = memo.iter().find(|(t, k, s, _)| *t == ty && k == key && *s == state).map(|e| e.3.clone());
            if let Some(v) = hit.and_then(|v| v.downcast::<T>().ok()) {
                return Ok(v);
            }
        }
        let v = Arc::new(make()?);
        if let Ok(mut memo) = self.memo.derived.lock() {
            // One entry per kind of value: a new key replaces the old (a store that grew).
            memo.retain(|(t, _, _, _)| *t != ty);
            memo.push((ty, key.to_string(), state, v.clone() as Arc<dyn Any + Send + Sync>));
        }
        Ok(v)
    }

    /// A dataset over the same workspace with a new plan.
    pub fn derive(&self, lf: LazyFrame) -> Result<Self> {
        Self::new(self.ws.clone(), lf)
    }

    pub fn workspace(&self) -> &Arc<Workspace> {
        &self.ws
    }

    pub fn lazy(&self) -> LazyFrame {
        self.lf.clone()
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    pub fn column_names(&self) -> Vec<String> {
        crate::manifest::names(&self.schema)
    }

    /// Check that `name` is a column, or say which ones exist.
    pub fn check_column(&self, name: &str) -> Result<()> {
        if self.schema.contains(name) {
            Ok(())
        } else {
            Err(CurateError::unknown_column(name, self.column_names()))
        }
    }

    /// The rows named by `extra`'s `id` column, in `extra`'s order: this dataset's columns
    /// first, then `extra`'s other columns (a distance, a score, a cluster).
    pub fn annotate(&self, extra: DataFrame) -> LazyFrame {
        let added: Vec<Expr> = extra.get_column_names().into_iter().filter(|n| n.as_str() != "id").map(|n| col(n.clone())).collect();
        let cols: Vec<Expr> = self.column_names().iter().map(|c| col(c.as_str())).chain(added).collect();
        extra.lazy().join(self.lazy(), [col("id")], [col("id")], JoinArgs::new(JoinType::Left)).select(cols)
    }

    pub fn collect(&self) -> Result<DataFrame> {
        Ok(self.lf.clone().collect()?)
    }

    pub fn len(&self) -> Result<usize> {
        let df = self.lf.clone().select([len().alias("n")]).collect()?;
        let n = df.column("n")?.get(0)?.extract::<u64>().unwrap_or(0);
        Ok(n as usize)
    }

    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dataset({}, columns: {})", self.ws.config.name, self.column_names().join(", "))
    }
}
