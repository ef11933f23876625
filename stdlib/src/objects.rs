//! Images in object storage: `s3://`, `gs://`, `az://` and `http(s)://` URLs, read through the
//! `object_store` crate (the one Polars uses for cloud Parquet, so both read the same
//! configuration). Credentials and endpoints come from the environment, as the AWS, GCS and
//! Azure tools expect: `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID` /
//! `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP=true` for a plain-http endpoint, and the
//! `GOOGLE_*` and `AZURE_*` variables.
//!
//! Reads are concurrent ([`read_many`]: up to [`IN_FLIGHT`] requests at once, results in
//! order, memory bounded by the batch the caller passes), retried with backoff on transport
//! errors and server faults (a few times, within [`RETRY_TIMEOUT`]), and every failure names the
//! URL. The async client runs on one small tokio runtime owned by this module; callers stay
//! synchronous.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, ObjectStoreScheme, RetryConfig};

/// An image's bytes fetched ahead from object storage (`None` for a local file, read when used).
pub type Fetched = Option<Result<Vec<u8>, String>>;

type Located = Result<(Arc<dyn ObjectStore>, ObjectPath), String>;

/// Requests in flight at once in [`read_many`] and [`list`].
pub const IN_FLIGHT: usize = 32;
/// How long one request may keep being retried before its failure is reported.
pub const RETRY_TIMEOUT: Duration = Duration::from_secs(20);

/// Whether `s` names an object-store location rather than a local path.
pub fn is_url(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once("://") else { return false };
    !rest.is_empty() && matches!(scheme.to_ascii_lowercase().as_str(), "s3" | "s3a" | "gs" | "az" | "abfs" | "abfss" | "adl" | "azure" | "http" | "https")
}

/// `base` joined with a relative `key`, as URLs join: `s3://b/media/` + `cat/1.jpg`.
pub fn join(base: &str, key: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), key.trim_start_matches('/'))
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("curate-objects").enable_all().build().unwrap_or_else(|e| panic!("cannot start the object-store runtime: {e}"))
    })
}

type Stores = Mutex<HashMap<String, Arc<dyn ObjectStore>>>;

/// The store that serves `url`, built once per bucket (or origin), and the object's path in it.
fn locate(url: &str) -> Result<(Arc<dyn ObjectStore>, ObjectPath), String> {
    static STORES: OnceLock<Stores> = OnceLock::new();
    let parsed = url::Url::parse(url).map_err(|e| format!("{url} is not a valid URL: {e}"))?;
    let (scheme, path) = ObjectStoreScheme::parse(&parsed).map_err(|e| format!("{url}: {e}"))?;
    let root = format!("{}://{}", parsed.scheme(), parsed.authority());
    let stores = STORES.get_or_init(Default::default);
    if let Some(s) = stores.lock().ok().and_then(|m| m.get(&root).cloned()) {
        return Ok((s, path));
    }
    let retry =
        RetryConfig { backoff: object_store::BackoffConfig { init_backoff: Duration::from_millis(100), max_backoff: Duration::from_secs(5), base: 2.0 }, max_retries: 4, retry_timeout: RETRY_TIMEOUT };
    // Client options (timeouts, AWS_ALLOW_HTTP, proxies) come from the environment with the
    // rest, so they are not replaced here; a plain http:// origin is allowed because it was named.
    let http = object_store::ClientOptions::new().with_allow_http(parsed.scheme() == "http");
    let built: object_store::Result<Arc<dyn ObjectStore>> = match scheme {
        ObjectStoreScheme::AmazonS3 => object_store::aws::AmazonS3Builder::from_env().with_url(root.as_str()).with_retry(retry).build().map(|s| Arc::new(s) as Arc<dyn ObjectStore>),
        ObjectStoreScheme::GoogleCloudStorage => {
            object_store::gcp::GoogleCloudStorageBuilder::from_env().with_url(root.as_str()).with_retry(retry).build().map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
        }
        ObjectStoreScheme::MicrosoftAzure => object_store::azure::MicrosoftAzureBuilder::from_env().with_url(root.as_str()).with_retry(retry).build().map(|s| Arc::new(s) as Arc<dyn ObjectStore>),
        ObjectStoreScheme::Http => object_store::http::HttpBuilder::new().with_url(root.as_str()).with_retry(retry).with_client_options(http).build().map(|s| Arc::new(s) as Arc<dyn ObjectStore>),
        other => return Err(format!("{url}: {other:?} URLs are not object storage")),
    };
    let store = built.map_err(|e| format!("cannot reach {root}: {}", describe(&e)))?;
    if let Ok(mut m) = stores.lock() {
        m.insert(root, store.clone());
    }
    Ok((store, path))
}

/// An object_store error in a few words: "not found", "permission denied", or its message.
fn describe(e: &object_store::Error) -> String {
    match e {
        object_store::Error::NotFound { .. } => "not found".to_string(),
        object_store::Error::PermissionDenied { .. } => "permission denied".to_string(),
        object_store::Error::Unauthenticated { .. } => "not authenticated (check the credentials in the environment)".to_string(),
        other => {
            // The chain of sources says what failed (connection refused, timed out, ...).
            let mut s = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(inner) = source {
                let m = inner.to_string();
                if !s.contains(&m) {
                    s.push_str(": ");
                    s.push_str(&m);
                }
                source = inner.source();
            }
            s
        }
    }
}

/// Why an object could not be read. `Unreachable` (a transport error or a server fault that
/// outlived the retries) says the store itself is failing, not this object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Not found, permission denied, a bad URL: this object.
    Object(String),
    /// The store: connection refused, timed out, 5xx after retries.
    Unreachable(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Object(m) | Failure::Unreachable(m) => f.write_str(m),
        }
    }
}

impl From<Failure> for String {
    fn from(f: Failure) -> String {
        f.to_string()
    }
}

fn failure(url: &str, e: &object_store::Error) -> Failure {
    let message = format!("cannot read {url}: {}", describe(e));
    match e {
        object_store::Error::NotFound { .. } | object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } | object_store::Error::InvalidPath { .. } => {
            Failure::Object(message)
        }
        _ => Failure::Unreachable(message),
    }
}

/// The whole object at `url`.
pub fn read(url: &str) -> Result<Vec<u8>, String> {
    read_many(&[url.to_string()]).pop().unwrap_or_else(|| Err(Failure::Object(format!("{url}: no result")))).map_err(String::from)
}

/// Every object of `urls`, up to [`IN_FLIGHT`] requests at once, in the order given. Each
/// failure names its URL.
pub fn read_many(urls: &[String]) -> Vec<Result<Vec<u8>, Failure>> {
    let located: Vec<Located> = urls.iter().map(|u| locate(u)).collect();
    runtime().block_on(async {
        futures::stream::iter(located.into_iter().zip(urls))
            .map(|(loc, url)| async move {
                let (store, path) = loc.map_err(Failure::Object)?;
                let got = store.get(&path).await.map_err(|e| failure(url, &e))?;
                let bytes = got.bytes().await.map_err(|e| failure(url, &e))?;
                Ok(bytes.to_vec())
            })
            .buffered(IN_FLIGHT)
            .collect()
            .await
    })
}

/// The objects among `locations` (a chunk of images) fetched concurrently, aligned with
/// `locations`: `None` for a local path, which its reader reads when it needs it. When not one
/// object could be fetched because the store itself is failing (refused, timed out, faulting
/// after retries), that is an error naming the first URL: the caller stops, keeping what it
/// finished, rather than recording every image as failed.
pub fn fetch_objects(locations: &[&std::path::Path]) -> crate::error::Result<Vec<Fetched>> {
    let url = |p: &std::path::Path| p.to_str().filter(|s| is_url(s)).map(str::to_string);
    let urls: Vec<String> = locations.iter().filter_map(|p| url(p)).collect();
    if urls.is_empty() {
        return Ok(vec![None; locations.len()]);
    }
    let got = read_many(&urls);
    if let Some(Err(Failure::Unreachable(message))) = got.first() {
        if got.iter().all(|r| matches!(r, Err(Failure::Unreachable(_)))) {
            let message = format!("{message}; the object store is not answering, so this stopped (work already finished was kept: run it again)");
            return Err(crate::error::CurateError::io(std::path::Path::new(&urls[0]), message));
        }
    }
    let mut got = got.into_iter().map(|r| r.map_err(String::from));
    Ok(locations.iter().map(|p| url(p).and_then(|_| got.next())).collect())
}

/// What identifies an object's content: its ETag, else its version id, else size and time.
fn version_of(meta: &object_store::ObjectMeta) -> String {
    meta.e_tag.clone().or_else(|| meta.version.clone()).unwrap_or_else(|| format!("{}@{}", meta.size, meta.last_modified.to_rfc3339()))
}

/// The version of the object at `url` (one HEAD request), `None` when there is no such object.
pub fn version(url: &str) -> Result<Option<String>, String> {
    let (store, path) = locate(url)?;
    match runtime().block_on(store.head(&path)) {
        Ok(meta) => Ok(Some(version_of(&meta))),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(format!("cannot read {url}: {}", describe(&e))),
    }
}

/// The whole object at `url` and its version, from one request.
pub fn read_versioned(url: &str) -> Result<(Vec<u8>, String), String> {
    let (store, path) = locate(url)?;
    runtime().block_on(async {
        let got = store.get(&path).await.map_err(|e| failure(url, &e).to_string())?;
        let version = version_of(&got.meta);
        let bytes = got.bytes().await.map_err(|e| failure(url, &e).to_string())?;
        Ok((bytes.to_vec(), version))
    })
}

/// Write `bytes` as the object at `url` (one request: readers see the previous object or this
/// one, never a part) and return its new version.
pub fn write(url: &str, bytes: Vec<u8>) -> Result<String, String> {
    let (store, path) = locate(url)?;
    let put = runtime().block_on(store.put(&path, bytes.into())).map_err(|e| format!("cannot write {url}: {}", describe(&e)))?;
    match put.e_tag.or(put.version) {
        Some(v) => Ok(v),
        None => version(url)?.ok_or_else(|| format!("cannot write {url}: the store does not show the object written")),
    }
}

/// Every object under the prefix `url` (a "folder": `s3://bucket/photos/`), as (URL, size),
/// sorted by URL.
pub fn list(url: &str) -> Result<Vec<(String, u64)>, String> {
    let (store, prefix) = locate(url)?;
    let parsed = url::Url::parse(url).map_err(|e| format!("{url} is not a valid URL: {e}"))?;
    // Listed paths are relative to the bucket (or container, or origin): the URL's authority.
    let bucket_root = format!("{}://{}", parsed.scheme(), parsed.authority());
    let prefix = if prefix.as_ref().is_empty() { None } else { Some(prefix) };
    let mut found: Vec<(String, u64)> = runtime()
        .block_on(async { store.list(prefix.as_ref()).map_ok(|m| (join(&bucket_root, m.location.as_ref()), m.size)).try_collect::<Vec<_>>().await })
        .map_err(|e| format!("cannot list {url}: {}", describe(&e)))?;
    found.sort();
    Ok(found)
}

/// Read a local file or an object, naming the location on failure (local errors keep the
/// io::Error's wording, without the path, as the callers add it).
pub fn read_any(location: &std::path::Path) -> Result<Vec<u8>, String> {
    match location.to_str() {
        Some(s) if is_url(s) => read(s),
        _ => std::fs::read(location).map_err(|e| format!("cannot read: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_from_paths_and_joined() {
        assert!(is_url("s3://bucket/a.jpg") && is_url("gs://b/x") && is_url("https://host/x.png") && is_url("az://c/x"));
        assert!(!is_url("/data/s3://x") && !is_url("media/cat.jpg") && !is_url("s3://") && !is_url("file.jpg"));
        assert_eq!(join("s3://b/media/", "/cat/1.jpg"), "s3://b/media/cat/1.jpg");
        assert_eq!(join("s3://b", "cat/1.jpg"), "s3://b/cat/1.jpg");
    }

    #[test]
    fn a_bad_url_names_itself() {
        let err = read("s3://").expect_err("no bucket");
        assert!(err.contains("s3://"), "{err}");
    }
}
