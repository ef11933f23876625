//! Images in object storage, against a real S3-compatible server on 127.0.0.1 (`moto_server`
//! from PyPI, in the test venv): importing a prefix, embedding from it, a missing object, and
//! a server that stops mid-run; the manifest itself in a bucket; and Azure Blob Storage
//! against Azurite (from npm) on 127.0.0.1.

use std::collections::HashSet;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use curate_stdlib::testing::{node_package, python_with};

use crate::util::{example_dir, stored_embeddings as stored, Test};

const MOTO: &str = "moto[server]==5.1.22";

/// Wait until a server listens on 127.0.0.1:`port` (30 s at most).
fn wait_for(port: u16, what: &str) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A moto S3 server on a free port of 127.0.0.1, killed when dropped.
struct S3 {
    child: Child,
    port: u16,
    python: PathBuf,
}

impl S3 {
    fn start() -> S3 {
        let python = python_with(&[MOTO]);
        let port = TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
        let server = python.parent().expect("venv bin").join("moto_server");
        let child = Command::new(server).args(["-H", "127.0.0.1", "-p", &port.to_string()]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("moto_server starts");
        wait_for(port, "moto_server");
        S3 { child, port, python }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Run boto3 against the server.
    fn boto(&self, code: &str) {
        let script =
            format!("import boto3, os, sys\ns3 = boto3.client('s3', endpoint_url='{}', aws_access_key_id='test', aws_secret_access_key='test', region_name='us-east-1')\n{code}", self.endpoint());
        let out = Command::new(&self.python).args(["-c", &script]).output().expect("python runs");
        assert!(out.status.success(), "boto3 failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Create `bucket` and upload every file under `dir` with its relative path under `prefix`.
    fn upload(&self, bucket: &str, dir: &Path, prefix: &str) {
        self.boto(&format!(
            "s3.create_bucket(Bucket='{bucket}')\nroot = '{}'\nfor d, _, fs in os.walk(root):\n    for f in fs:\n        p = os.path.join(d, f)\n        s3.upload_file(p, '{bucket}', '{prefix}' + os.path.relpath(p, root))",
            dir.display()
        ));
    }

    /// Point a test's curate at this server.
    fn env(&self, t: Test) -> Test {
        t.env("AWS_ENDPOINT_URL", &self.endpoint()).env("AWS_ALLOW_HTTP", "true").env("AWS_ACCESS_KEY_ID", "test").env("AWS_SECRET_ACCESS_KEY", "test").env("AWS_REGION", "us-east-1")
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn a_bucket_is_imported_and_embedded_like_a_folder() {
    let s3 = S3::start();
    s3.upload("photos", &example_dir().join("media/cifar/test"), "cifar/test/");
    let check = "let ds = open(); print(ds.len()); print(ds.filter(\"split = 'test' AND label = 'bird' AND path LIKE 's3://photos/cifar/test/bird/%' AND width = 32\").len());";
    let pictures = "let ds = open().filter(\"label = 'cat'\"); ds.grid(); ds.train_export(\"out\", #{mode: \"copy\"});";
    let t = s3.env(Test::example_without_vectors().write("e.rhai", "open().embed()").write("c.rhai", check).write("g.rhai", pictures));
    let out = t.run_with(&["import", "s3://photos/cifar/"]).success();
    assert!(out.stdout.contains("imported 200 samples from s3://photos/cifar/ (folder)"), "{}", out.stdout);
    assert!(!out.stdout.contains("could not be read"), "{}", out.stdout);
    // Labels and splits from the keys, hashes from the bytes: as the local import of the same files.
    let out = t.run_with(&["run", "c.rhai"]).success();
    assert_eq!(out.stdout.split_whitespace().collect::<Vec<_>>(), ["200", "20"], "{}", out.stdout);
    let local = Test::example_without_vectors().write("e.rhai", "open().filter(\"path LIKE '%cifar/test/%'\").embed()");
    local.run_with(&["run", "e.rhai"]).success();
    let out = t.run_with(&["run", "e.rhai"]).success();
    assert!(out.stdout.contains("200 images, 200 embedded, 0 already cached, 0 failed"), "{}", out.stdout);
    let (_, remote_vectors) = stored(&t);
    let (_, local_vectors) = stored(&local);
    assert_eq!(local_vectors.len(), 200);
    assert_eq!(remote_vectors, local_vectors, "the same bytes give the same vectors, whoever serves them");

    // A grid and a copying export read the objects too.
    let out = t.run_with(&["run", "g.rhai"]).success();
    assert!(!out.stdout.contains("missing"), "{}", out.stdout);
    let exported: Vec<PathBuf> =
        walkdir::WalkDir::new(t.path().join("out")).into_iter().flatten().filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "jpg")).map(|e| e.into_path()).collect();
    assert_eq!(exported.len(), 20, "{exported:?}");
    let originals: HashSet<Vec<u8>> = std::fs::read_dir(example_dir().join("media/cifar/test/cat")).expect("cats").flatten().map(|e| std::fs::read(e.path()).expect("original")).collect();
    assert!(exported.iter().all(|p| originals.contains(&std::fs::read(p).expect("exported"))), "exported copies are the objects' bytes");

    // A table in the bucket: its relative paths are keys beside it, and it imports like a local
    // one (an unreadable table names its URL).
    let list = "path,label\ncifar/test/cat/0000.jpg,cat\ncifar/test/dog/0001.jpg,dog\n";
    s3.boto(&format!("s3.put_object(Bucket='photos', Key='few.csv', Body={list:?}.encode())"));
    let tables = s3.env(Test::example_without_vectors().write("p.rhai", "open().col(\"path\")"));
    let out = tables.run_with(&["import", "s3://photos/few.csv"]).success();
    assert!(out.stdout.contains("imported 2 samples from s3://photos/few.csv (csv)") && !out.stdout.contains("could not be read"), "{}", out.stdout);
    let out = tables.run_with(&["run", "p.rhai"]).success();
    assert!(out.stdout.contains("s3://photos/cifar/test/cat/0000.jpg") && out.stdout.contains("s3://photos/cifar/test/dog/0001.jpg"), "{}", out.stdout);
    let out = tables.run_with(&["import", "s3://photos/none.csv"]).code(2);
    assert!(out.stderr.contains("s3://photos/none.csv"), "{}", out.stderr);

    // COCO JSON in the bucket: its images are keys beside it.
    let coco = r#"{"images": [{"id": 1, "file_name": "cat/0000.jpg", "width": 32, "height": 32}, {"id": 2, "file_name": "dog/0001.jpg", "width": 32, "height": 32}], "annotations": [{"id": 10, "image_id": 1, "category_id": 1, "bbox": [0, 0, 16, 20]}], "categories": [{"id": 1, "name": "person"}]}"#;
    s3.boto(&format!("s3.put_object(Bucket='photos', Key='cifar/test/instances_val.json', Body={coco:?}.encode())"));
    let cocos = s3.env(Test::example_without_vectors().write("p.rhai", "let ds = open(); print(ds.col(\"path\")); print(ds.col(\"label\")); print(ds.filter(\"width = 32\").len());"));
    let out = cocos.run_with(&["import", "s3://photos/cifar/test/instances_val.json"]).success();
    assert!(out.stdout.contains("imported 2 samples from s3://photos/cifar/test/instances_val.json (coco)") && !out.stdout.contains("could not be read"), "{}", out.stdout);
    let out = cocos.run_with(&["run", "p.rhai"]).success();
    assert!(out.stdout.contains("s3://photos/cifar/test/cat/0000.jpg") && out.stdout.contains("s3://photos/cifar/test/dog/0001.jpg"), "{}", out.stdout);
    assert!(out.stdout.contains("\"person\", \"no_person\"") && out.stdout.trim().ends_with('2'), "labels from the boxes, sizes from the scanned objects: {}", out.stdout);

    // A missing object is one failure that names its URL; the rest is done.
    s3.boto("s3.delete_object(Bucket='photos', Key='cifar/test/cat/0003.jpg')");
    let t = t.write("e.rhai", "open().embed(\"vww\")");
    let out = t.run_with(&["run", "e.rhai"]).success();
    assert!(out.stdout.contains("200 images, 199 embedded, 0 already cached, 1 failed"), "{}", out.stdout);
    assert!(out.stdout.contains("s3://photos/cifar/test/cat/0003.jpg") && out.stdout.contains("not found"), "{}", out.stdout);
}

/// A plain web server (Python's http.server) and a table whose paths are its URLs.
#[test]
fn a_table_of_http_urls_is_imported_and_embedded() {
    let port = TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
    let media = example_dir().join("media");
    let mut server = Command::new("python3")
        .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
        .arg(&media)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 -m http.server");
    wait_for(port, "http.server");
    let mut csv = String::from("path,label\n");
    let mut cats: Vec<String> = std::fs::read_dir(media.join("cifar/test/cat")).expect("cats").flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    cats.sort();
    for f in &cats {
        csv.push_str(&format!("http://127.0.0.1:{port}/cifar/test/cat/{f},cat\n"));
    }
    csv.push_str(&format!("http://127.0.0.1:{port}/cifar/test/cat/nope.jpg,cat\n"));
    let t = Test::example_without_vectors().write("cats.csv", &csv).write("e.rhai", "open().embed(\"vww\")").write("c.rhai", "print(open().filter(\"id = 'cifar/test/cat/0000'\").len())");
    let out = t.run_with(&["import", "cats.csv"]).success();
    assert!(out.stdout.contains("imported 21 samples") && out.stdout.contains("nope.jpg"), "{}", out.stdout);
    assert_eq!(t.run_with(&["run", "c.rhai"]).success().stdout.trim(), "1");
    let out = t.run_with(&["run", "e.rhai"]).success();
    let _ = server.kill();
    let _ = server.wait();
    assert!(out.stdout.contains("21 images, 20 embedded, 0 already cached, 1 failed"), "{}", out.stdout);
    assert!(out.stdout.contains("nope.jpg") && out.stdout.contains("not found"), "{}", out.stdout);
    let local = Test::example_without_vectors().write("e.rhai", "open().filter(\"path LIKE '%cifar/test/cat/%'\").embed(\"vww\")");
    local.run_with(&["run", "e.rhai"]).success();
    assert_eq!(stored(&t).1, stored(&local).1);
}

#[test]
fn a_server_that_stops_mid_run_loses_nothing() {
    let mut s3 = S3::start();
    let media = example_dir().join("media");
    s3.upload("data", &media, "media/");
    let t = s3.env(Test::example_without_vectors());
    t.run_with(&["import", "s3://data/media/"]).success();
    // Embed everything in the background and stop the server once the first part is written.
    let parts = t.path().join(".curate/embeddings");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_curate"));
    cmd.args(["embed"]).current_dir(t.path()).env("CI", "true").env("NO_COLOR", "1").stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in
        [("AWS_ENDPOINT_URL", s3.endpoint()), ("AWS_ALLOW_HTTP", "true".into()), ("AWS_ACCESS_KEY_ID", "test".into()), ("AWS_SECRET_ACCESS_KEY", "test".into()), ("AWS_REGION", "us-east-1".into())]
    {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("curate embed");
    let started = Instant::now();
    let part_written = || walkdir::WalkDir::new(&parts).into_iter().flatten().any(|e| e.file_name().to_string_lossy().ends_with(".arrow"));
    while !part_written() {
        assert!(started.elapsed() < Duration::from_secs(300), "no part was written");
        std::thread::sleep(Duration::from_millis(50));
    }
    s3.stop();
    let out = child.wait_with_output().expect("curate exits");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "the run cannot finish without its server");
    assert!(stderr.contains("s3://data/media/") && stderr.contains("not answering"), "{stderr}");
    let (rows, first) = stored(&t);
    assert!(!first.is_empty() && first.len() < 1400 && rows == first.len(), "{} kept of 1400, {rows} rows", first.len());

    // The server comes back (a new one, with the same objects): the rerun does only the rest.
    let s3 = S3::start();
    s3.upload("data", &media, "media/");
    let t = s3.env(t);
    let out = t.run_with(&["embed", "--json"]).success();
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("json report");
    let (embedded, cached) = (report["embedded"].as_u64().expect("embedded"), report["cached"].as_u64().expect("cached"));
    assert_eq!(cached as usize, first.len(), "{}", out.stdout);
    assert_eq!(embedded + cached, 1400, "{}", out.stdout);
    let (rows, all) = stored(&t);
    assert_eq!((rows, all.len()), (1400, 1400), "nothing lost, nothing twice");
    let kept: HashSet<&String> = first.keys().collect();
    assert!(kept.iter().all(|h| all[*h] == first[*h]), "finished work is kept as it was");
}

/// The manifest itself in a bucket (`manifest = "s3://…"` in curate.toml): a missing one names
/// its URL, an import writes it there, `open()` reads its current version (fetched again when
/// the object changes), an append adds to the current version, the edit log replays over it,
/// and an unreachable store names the URL and keeps the local copy.
#[test]
fn a_manifest_in_a_bucket_is_read_and_written_there() {
    let mut s3 = S3::start();
    s3.upload("data", &example_dir().join("media/cifar/test"), "cifar/");
    s3.upload("faces", &example_dir().join("media/lfw/face"), "face/");
    let url = "s3://data/ws/manifest.parquet";
    let t = s3.env(Test::example().write("n.rhai", "print(open().len());"));
    let config = std::fs::read_to_string(t.path().join("curate.toml")).expect("config").replace("manifest = \"manifest.parquet\"", &format!("manifest = \"{url}\""));
    let t = t.write("curate.toml", &config);
    std::fs::remove_file(t.path().join("manifest.parquet")).expect("no local manifest");

    let out = t.run_with(&["run", "n.rhai"]).code(2);
    assert!(out.stderr.contains(url) && out.stderr.contains("not found"), "{}", out.stderr);

    let out = t.run_with(&["import", "s3://data/cifar/"]).success();
    assert!(out.stdout.contains("imported 200 samples"), "{}", out.stdout);
    let local = t.path().join(".curate/remote/manifest.parquet");
    let uploaded = t.path().join("uploaded.parquet");
    s3.boto(&format!("s3.download_file('data', 'ws/manifest.parquet', '{}')", uploaded.display()));
    assert_eq!(std::fs::read(&uploaded).expect("object"), std::fs::read(&local).expect("local copy"), "the import wrote the object");
    assert!(!t.path().join("manifest.parquet").exists(), "nothing written beside the config");
    let out = t.run_with(&["run", "n.rhai"]).success();
    assert_eq!(out.stdout.trim(), "200");

    // Someone replaces the object: an append adds to that current version (the local copy is
    // stale until then), and uploads the result.
    s3.boto(&format!("s3.upload_file('{}', 'data', 'ws/manifest.parquet')", example_dir().join("manifest.parquet").display()));
    let out = t.run_with(&["import", "s3://faces/face/", "--append"]).success();
    assert!(out.stdout.contains("imported 100 samples") && out.stdout.contains(&format!("{url} now holds 1500")), "{}", out.stdout);
    std::fs::remove_dir_all(t.path().join(".curate/remote")).expect("drop the local copy");
    let out = t.run_with(&["run", "n.rhai"]).success();
    assert_eq!(out.stdout.trim(), "1500", "read back from the bucket");

    // Replaced again: the next open reads the new version, and the local edit log replays
    // over it.
    s3.boto(&format!("s3.upload_file('{}', 'data', 'ws/manifest.parquet')", example_dir().join("manifest.parquet").display()));
    let out = t.run_with(&["run", "n.rhai"]).success();
    assert_eq!(out.stdout.trim(), "1400", "the new version was fetched");
    let t = t.write("e.rhai", "open().remove([\"lfw/face/001\"], \"duplicate\"); print(open().len());");
    let out = t.run_with(&["run", "e.rhai"]).success();
    assert_eq!(out.stdout.trim(), "1399", "{}", out.stderr);

    // The store stops answering: the URL is named, and the local copy is kept.
    s3.stop();
    let out = t.run_with(&["run", "n.rhai"]).code(2);
    assert!(out.stderr.contains(url), "{}", out.stderr);
    assert!(local.is_file(), "the local copy is kept");
    let out = t.run_with(&["import", "s3://data/cifar/"]).code(2);
    assert!(out.stderr.contains("s3://data/cifar/"), "{}", out.stderr);
    // An import of local files scans them, then cannot upload: the new manifest is kept.
    let out = t.run_with(&["import", "media/lfw/face"]).code(2);
    let pending = t.path().join(".curate/remote/manifest.pending.parquet");
    assert!(out.stderr.contains(url) && out.stderr.contains("kept in"), "{}", out.stderr);
    assert!(pending.is_file(), "the manifest the import wrote is kept");
    assert!(local.is_file(), "the local copy of the object is untouched");
    // The next command that reads the manifest tries the upload again, and keeps it if the
    // store is still down.
    let kept = std::fs::read(&pending).expect("pending");
    let out = t.run_with(&["run", "n.rhai"]).code(2);
    assert!(out.stderr.contains(url) && out.stderr.contains("uploaded by the next command"), "{}", out.stderr);
    assert_eq!(std::fs::read(&pending).expect("still pending"), kept);
}

const AZURITE: &str = "azurite@3.35.0";
const AZURE_BLOB: &str = "azure-storage-blob==12.24.0";
/// The published key of Azurite's development account (`devstoreaccount1`).
const AZURITE_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A child process killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `az://` URLs against Azurite, the Azure Storage emulator, on 127.0.0.1: a container's prefix
/// imported and embedded, the manifest kept in the container, and a missing blob named by its
/// URL. curate finds the emulator as Azure's tools do (`AZURE_STORAGE_USE_EMULATOR`).
#[test]
fn an_azure_container_serves_images_and_the_manifest() {
    let azurite = node_package("azurite-blob", AZURITE);
    let python = python_with(&[AZURE_BLOB]);
    let port = TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
    let data = tempfile::tempdir().expect("tempdir");
    let child = Command::new(azurite)
        .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string(), "--silent", "--skipApiVersionCheck", "--location"])
        .arg(data.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("azurite starts");
    let _server = Server(child);
    wait_for(port, "azurite");
    let azure = |code: &str| {
        let script = format!(
            "import os\nfrom azure.storage.blob import BlobServiceClient\ns = BlobServiceClient.from_connection_string('DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;')\n{code}"
        );
        let out = Command::new(&python).args(["-c", &script]).output().expect("python runs");
        assert!(out.status.success(), "azure-storage-blob failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    azure(&format!(
        "c = s.create_container('photos')\nroot = '{}'\nfor d, _, fs in os.walk(root):\n    for f in fs:\n        p = os.path.join(d, f)\n        c.upload_blob('cifar/' + os.path.relpath(p, root), open(p, 'rb'))",
        example_dir().join("media/cifar/test").display()
    ));
    let url = "az://photos/ws/manifest.parquet";
    let t = Test::example_without_vectors()
        .env("AZURE_STORAGE_USE_EMULATOR", "true")
        .env("AZURITE_BLOB_STORAGE_URL", &format!("http://127.0.0.1:{port}"))
        .write("c.rhai", "let ds = open(); print(ds.len()); print(ds.filter(\"label = 'cat' AND path LIKE 'az://photos/cifar/cat/%' AND width = 32\").len());")
        .write("e.rhai", "open().embed(\"vww\")");
    let config = std::fs::read_to_string(t.path().join("curate.toml")).expect("config").replace("manifest = \"manifest.parquet\"", &format!("manifest = \"{url}\""));
    let t = t.write("curate.toml", &config);
    std::fs::remove_file(t.path().join("manifest.parquet")).expect("no local manifest");

    let out = t.run_with(&["import", "az://photos/cifar/"]).success();
    assert!(out.stdout.contains("imported 200 samples from az://photos/cifar/ (folder)") && !out.stdout.contains("could not be read"), "{}", out.stdout);
    let stored = azure("print(len(s.get_blob_client('photos', 'ws/manifest.parquet').download_blob().readall()))");
    let local = std::fs::read(t.path().join(".curate/remote/manifest.parquet")).expect("local copy");
    assert_eq!(stored.trim(), local.len().to_string(), "the manifest was written to the container");
    std::fs::remove_dir_all(t.path().join(".curate/remote")).expect("drop the local copy");
    let out = t.run_with(&["run", "c.rhai"]).success();
    assert_eq!(out.stdout.split_whitespace().collect::<Vec<_>>(), ["200", "20"], "read back from the container: {}", out.stdout);

    // A missing blob is one failure that names its URL; the rest is embedded.
    azure("s.get_blob_client('photos', 'cifar/cat/0003.jpg').delete_blob()");
    let out = t.run_with(&["run", "e.rhai"]).success();
    assert!(out.stdout.contains("200 images, 199 embedded, 0 already cached, 1 failed"), "{}", out.stdout);
    assert!(out.stdout.contains("az://photos/cifar/cat/0003.jpg") && out.stdout.contains("not found"), "{}", out.stdout);
}
