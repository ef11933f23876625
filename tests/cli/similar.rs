//! `similar` keeps what a view resolves to between queries: the kept view must follow the
//! vector store underneath it, and answer as a fresh view does.

use crate::util::Test;

#[test]
fn a_kept_view_follows_the_store_as_it_grows() {
    // One `ds` queried before and after more of it is embedded: the second query must see the
    // new vectors, and every answer must equal a fresh `open()`'s.
    let script = r#"
let ds = open();
ds.filter("split = 'test' AND class = 'cat'").embed();
let q = "cifar/test/cat/0003";
let before = ds.similar(q, 1000);
assert(before.len() == 19, `only the other 19 test cats are embedded: ${before.len()}`);
assert(before.ids() == open().similar(q, 1000).ids(), "a kept view answers as a fresh one");
for i in 0..3 { assert(ds.similar(q, 5).ids() == before.head(5).ids(), "repeated queries agree"); }
ds.filter("split = 'train' AND class = 'cat'").embed();
let after = ds.similar(q, 1000);
assert(after.filter("split = 'train'").len() == 100, `the 100 train cats embedded since: ${after.filter("split = 'train'").len()}`);
assert(after.ids() == open().similar(q, 1000).ids(), "after the store grew, a kept view answers as a fresh one");
let d = after.col("distance");
for i in 1..d.len() { assert(d[i - 1] <= d[i], "sorted by distance"); }
print(after.len());
"#;
    let out = Test::example_without_vectors().write("s.rhai", script).args(&["run", "s.rhai"]).run().success();
    assert_eq!(out.stdout.lines().last(), Some("119"), "{}", out.stdout);
}
