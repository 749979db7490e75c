//! The README's CRD reference is generated from the Rust doc comments.

#[test]
fn readme_crd_reference_matches_the_types() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = "<!-- crd-reference:start -->\n";
    let end = "<!-- crd-reference:end -->";
    let a = readme
        .find(start)
        .expect("README has the crd-reference start marker")
        + start.len();
    let b = readme
        .find(end)
        .expect("README has the crd-reference end marker");
    assert!(
        readme[a..b] == signet::api::reference_markdown(),
        "README.md CRD reference is stale: replace the section with `signet crds --reference` (make readme)"
    );
}
