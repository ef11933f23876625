//! `--shard i/n`: a part of the work, chosen by content hash, that one process of many does.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// Parse `i/n`.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let (i, n) = s.split_once('/').ok_or_else(|| format!("expected i/n, got `{s}`"))?;
        let index: usize = i.trim().parse().map_err(|_| format!("bad shard index in `{s}`"))?;
        let count: usize = n.trim().parse().map_err(|_| format!("bad shard count in `{s}`"))?;
        if count == 0 || index >= count {
            return Err(format!("shard `{s}`: need 0 <= i < n"));
        }
        Ok(Shard { index, count })
    }

    pub fn owns(&self, hash: &str) -> bool {
        let prefix = u64::from_str_radix(hash.get(..16).unwrap_or("0"), 16).unwrap_or(0);
        (prefix % self.count as u64) as usize == self.index
    }

    /// For what has no content hash yet (an import's rows, by id): the BLAKE3 of the key.
    pub fn owns_key(&self, key: &str) -> bool {
        self.owns(blake3::hash(key.as_bytes()).to_hex().as_str())
    }
}
