//! CRD drift gate: the YAML checked in under `crds/` and the chart's
//! `crds/` is exactly what the Rust types generate (`make crds`).

use std::path::Path;

#[test]
fn checked_in_crds_match_the_rust_types() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let crds = signet::api::crd_files().unwrap();
    assert_eq!(crds.len(), 4);
    let mut with_policy = crds.clone();
    with_policy.push(signet::api::admission_policy_file().unwrap());
    // crds/ also holds the admission policy; the chart templates it instead.
    for (dir, files) in [("crds", &with_policy), ("charts/signet/crds", &crds)] {
        for (name, yaml) in files.iter() {
            let path = root.join(dir).join(name);
            let on_disk = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}; run `make crds`", path.display()));
            assert!(
                on_disk == *yaml,
                "{} is out of date with src/api; run `make crds` and commit the result",
                path.display()
            );
        }
        let count = std::fs::read_dir(root.join(dir))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "yaml"))
            })
            .count();
        assert_eq!(
            count,
            files.len(),
            "{dir} holds a CRD the types no longer define"
        );
    }
}

#[test]
fn crds_subcommand_prints_every_crd() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signet"))
        .arg("crds")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let names: Vec<&str> = docs
        .iter()
        .filter_map(|d| d["metadata"]["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "certificateauthorities.signet.dev",
            "certificates.signet.dev",
            "crls.signet.dev",
            "revocations.signet.dev",
            "signet-revoked-by",
            "signet-revoked-by",
        ]
    );
    // Every field of every CRD carries a description (kubectl explain).
    fn walk(v: &serde_yaml::Value, path: &str, missing: &mut Vec<String>) {
        if let Some(props) = v.get("properties").and_then(|p| p.as_mapping()) {
            for (k, child) in props {
                let p = format!("{path}.{}", k.as_str().unwrap_or("?"));
                if child.get("description").is_none() && !p.ends_with(".metadata") {
                    missing.push(p.clone());
                }
                walk(child, &p, missing);
                if let Some(items) = child.get("items") {
                    walk(items, &p, missing);
                }
            }
        }
    }
    let mut missing = Vec::new();
    for d in docs
        .iter()
        .filter(|d| d["kind"] == "CustomResourceDefinition")
    {
        let schema = &d["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        walk(
            &schema["properties"]["spec"],
            d["spec"]["names"]["kind"].as_str().unwrap(),
            &mut missing,
        );
    }
    assert!(
        missing.is_empty(),
        "fields without doc comments: {missing:#?}"
    );
}
