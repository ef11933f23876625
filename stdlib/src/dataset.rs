//! `Dataset`: an immutable view of a workspace's samples, a lazy Polars plan over the manifest.
//! Every primitive returns a new `Dataset`; nothing is read until a result is needed, so filters
//! and projections push down into the Parquet scan.

use std::sync::Arc;

use polars::prelude::*;

use crate::error::{CurateError, Result};
use crate::workspace::Workspace;

#[derive(Clone)]
pub struct Dataset {
    ws: Arc<Workspace>,
    lf: LazyFrame,
    schema: SchemaRef,
}

impl Dataset {
    pub fn new(ws: Arc<Workspace>, mut lf: LazyFrame) -> Result<Self> {
        let schema = lf.collect_schema()?;
        Ok(Dataset { ws, lf, schema })
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
        let added: Vec<Expr> = extra
            .get_column_names()
            .into_iter()
            .filter(|n| n.as_str() != "id")
            .map(|n| col(n.clone()))
            .collect();
        let cols: Vec<Expr> = self.column_names().iter().map(|c| col(c.as_str())).chain(added).collect();
        extra
            .lazy()
            .join(self.lazy(), [col("id")], [col("id")], JoinArgs::new(JoinType::Left))
            .select(cols)
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
