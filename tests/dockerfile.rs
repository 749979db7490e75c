//! The Dockerfile cannot be built here (no container engine), so this test
//! keeps it from drifting away from what `make test` does build: the cargo
//! command must be the Makefile's `release` recipe, the builder must use the
//! toolchain `rust-version` pins, and the runtime must be distroless,
//! non-root (UID 65532) and start `signet run`. The image the test node runs
//! (`hack/image.sh signet`) must declare the same layout as the Dockerfile's
//! runtime stage.

use std::fs;
use std::path::PathBuf;

fn repo_file(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    fs::read_to_string(&full).unwrap_or_else(|e| panic!("reading {}: {e}", full.display()))
}

/// One Dockerfile instruction with its continuation lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Instruction {
    /// Upper-case keyword (`FROM`, `RUN`, ...).
    keyword: String,
    /// Everything after the keyword, trimmed.
    args: String,
}

/// One build stage: its `FROM` arguments and its instructions.
#[derive(Debug)]
struct Stage {
    from: String,
    instructions: Vec<Instruction>,
}

impl Stage {
    fn all(&self, keyword: &str) -> Vec<&str> {
        self.instructions
            .iter()
            .filter(|i| i.keyword == keyword)
            .map(|i| i.args.as_str())
            .collect()
    }

    fn last(&self, keyword: &str) -> Option<&str> {
        self.all(keyword).last().copied()
    }
}

/// Parses a Dockerfile into stages: comments dropped, `\` continuations
/// joined with single spaces.
fn parse_dockerfile(text: &str) -> Vec<Stage> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head.trim());
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let full = std::mem::take(&mut current);
        let full = full.trim();
        if full.is_empty() {
            continue;
        }
        let (keyword, args) = full.split_once(char::is_whitespace).unwrap_or((full, ""));
        instructions.push(Instruction {
            keyword: keyword.to_ascii_uppercase(),
            args: args.split_whitespace().collect::<Vec<_>>().join(" "),
        });
    }
    let mut stages: Vec<Stage> = Vec::new();
    for i in instructions {
        if i.keyword == "FROM" {
            stages.push(Stage {
                from: i.args,
                instructions: Vec::new(),
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.instructions.push(i);
        }
    }
    stages
}

/// The single-line recipe of a Makefile target.
fn make_recipe(makefile: &str, target: &str) -> Vec<String> {
    let header = format!("{target}:");
    let mut lines = makefile.lines().skip_while(|l| !l.starts_with(&header));
    assert!(
        lines.next().is_some(),
        "the Makefile has no `{target}` target"
    );
    lines
        .take_while(|l| l.starts_with('\t'))
        .map(|l| l.trim().to_string())
        .collect()
}

/// The `cargo build ...` command inside a RUN (up to the next `&&`).
fn cargo_build_command(run: &str) -> Option<String> {
    // Drop RUN flags (`--mount=...`) before splitting on `&&`.
    run.split("&&").map(str::trim).find_map(|part| {
        part.find("cargo build")
            .map(|at| part[at..].trim().to_string())
    })
}

fn rust_version() -> String {
    let manifest = repo_file("Cargo.toml");
    manifest
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == "rust-version").then(|| v.trim().trim_matches('"').to_string())
        })
        .expect("Cargo.toml sets rust-version")
}

#[test]
fn the_builder_runs_exactly_the_makefile_release_command() {
    let stages = parse_dockerfile(&repo_file("Dockerfile"));
    assert_eq!(
        stages.len(),
        2,
        "a builder and a runtime stage: {stages:#?}"
    );
    let builder = &stages[0];
    let commands: Vec<String> = builder
        .all("RUN")
        .into_iter()
        .filter_map(cargo_build_command)
        .collect();
    assert_eq!(
        commands.len(),
        1,
        "one cargo build in the builder: {commands:?}"
    );
    let recipe = make_recipe(&repo_file("Makefile"), "release");
    assert_eq!(
        recipe,
        vec![commands[0].clone()],
        "Dockerfile and `make release` must build the same way"
    );
    assert!(
        commands[0].contains("--locked") && commands[0].contains("--release"),
        "{}",
        commands[0]
    );
}

#[test]
fn the_builder_uses_the_pinned_rust_toolchain() {
    let stages = parse_dockerfile(&repo_file("Dockerfile"));
    let from = &stages[0].from;
    let image = from.split_whitespace().next().unwrap_or_default();
    let want = format!("rust:{}-", rust_version());
    assert!(
        image.starts_with(&want),
        "builder image {image:?} should be {want}<debian release> (Cargo.toml rust-version)"
    );
    assert!(
        from.to_ascii_lowercase().ends_with(" as builder"),
        "the first stage is named builder: {from:?}"
    );
}

#[test]
fn the_runtime_is_distroless_nonroot_and_starts_signet_run() {
    let stages = parse_dockerfile(&repo_file("Dockerfile"));
    let runtime = stages.last().expect("a runtime stage");
    assert!(
        runtime.from.contains("/distroless/") && runtime.from.ends_with(":nonroot"),
        "runtime base {:?} should be a distroless :nonroot image",
        runtime.from
    );
    let user = runtime.last("USER").expect("the runtime sets USER");
    let uid = user.split(':').next().unwrap_or_default();
    assert!(
        uid == "65532" || uid == "nonroot",
        "runtime user {user:?} should be 65532"
    );
    assert_eq!(runtime.last("ENTRYPOINT"), Some(r#"["/signet"]"#));
    assert_eq!(runtime.last("CMD"), Some(r#"["run"]"#));
    let copies = runtime.all("COPY");
    assert!(
        copies
            .iter()
            .any(|c| c.starts_with("--from=builder") && c.ends_with(" /signet")),
        "the runtime copies the binary from the builder to /signet: {copies:?}"
    );
    assert!(
        runtime.all("RUN").is_empty(),
        "distroless has no shell to RUN in"
    );
}

#[test]
fn the_build_context_leaves_out_build_output_but_keeps_the_workspace() {
    let ignore = repo_file(".dockerignore");
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for must in ["target/", ".git/"] {
        assert!(patterns.contains(&must), ".dockerignore should list {must}");
    }
    // The locked build needs every workspace member and the migrations.
    for keep in [
        "src",
        "Cargo.toml",
        "Cargo.lock",
        "migrations",
        "tests",
        "tests/harness",
    ] {
        assert!(
            !patterns
                .iter()
                .any(|p| p.trim_end_matches('/') == keep || *p == "*"),
            ".dockerignore must not exclude {keep}"
        );
    }
}

/// `KEY="value" KEY2=value2` (a LABEL instruction's arguments) as pairs.
fn label_pairs(args: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut rest = args.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"').expect("a closing quote");
            (&quoted[..end], &quoted[end + 1..])
        } else {
            after.split_once(' ').unwrap_or((after, ""))
        };
        pairs.push((key.trim().to_string(), value.to_string()));
        rest = next.trim();
    }
    pairs
}

/// What `hack/image.sh config` says the node's image declares.
fn image_sh_config() -> serde_json::Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("hack/image.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg("config")
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "hack/image.sh config failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("hack/image.sh config prints JSON")
}

#[test]
fn the_image_sh_image_has_the_dockerfile_runtime_layout() {
    let stages = parse_dockerfile(&repo_file("Dockerfile"));
    let runtime = stages.last().expect("a runtime stage");
    let image = image_sh_config();
    let config = &image["config"];

    let copy = runtime
        .all("COPY")
        .into_iter()
        .find(|c| c.starts_with("--from=builder"))
        .expect("the runtime copies the binary from the builder");
    let dest = copy.rsplit(' ').next().unwrap_or_default();
    assert_eq!(image["binary"], dest, "binary path");

    assert_eq!(
        config["User"],
        runtime.last("USER").unwrap_or_default(),
        "user"
    );
    let entrypoint: serde_json::Value =
        serde_json::from_str(runtime.last("ENTRYPOINT").expect("ENTRYPOINT")).unwrap();
    assert_eq!(config["Entrypoint"], entrypoint, "entrypoint");
    let cmd: serde_json::Value = serde_json::from_str(runtime.last("CMD").expect("CMD")).unwrap();
    assert_eq!(config["Cmd"], cmd, "cmd");

    let mut exposed: Vec<String> = runtime
        .all("EXPOSE")
        .iter()
        .flat_map(|e| e.split_whitespace())
        .map(|p| {
            if p.contains('/') {
                p.to_string()
            } else {
                format!("{p}/tcp")
            }
        })
        .collect();
    exposed.sort();
    let mut declared: Vec<String> = config["ExposedPorts"]
        .as_object()
        .expect("ExposedPorts")
        .keys()
        .cloned()
        .collect();
    declared.sort();
    assert_eq!(declared, exposed, "exposed ports");

    let labels: Vec<(String, String)> = runtime
        .all("LABEL")
        .iter()
        .flat_map(|l| label_pairs(l))
        .collect();
    assert!(!labels.is_empty(), "the Dockerfile labels the image");
    for (k, v) in &labels {
        assert_eq!(config["Labels"][k], v.as_str(), "label {k}");
    }
    assert_eq!(
        config["Labels"].as_object().map(|m| m.len()),
        Some(labels.len()),
        "the same labels, no more"
    );
}

#[test]
fn label_pairs_split_quoted_and_bare_values() {
    assert_eq!(
        label_pairs(r#"a="x y" b=z c="""#),
        vec![
            ("a".to_string(), "x y".to_string()),
            ("b".to_string(), "z".to_string()),
            ("c".to_string(), String::new()),
        ]
    );
}

#[test]
fn dockerfile_parser_joins_continuations_and_splits_stages() {
    let stages = parse_dockerfile(
        "# c\nFROM a AS builder\nRUN --mount=type=cache,target=/x \\\n    cargo build --locked \\\n    && echo done\nFROM b\nUSER 1:1\n",
    );
    assert_eq!(stages.len(), 2);
    assert_eq!(
        cargo_build_command(stages[0].all("RUN")[0]).as_deref(),
        Some("cargo build --locked")
    );
    assert_eq!(stages[1].last("USER"), Some("1:1"));
}
