//! The Helm chart (`charts/signet`) and the examples (`examples/`).
//!
//! * `helm lint --strict` passes.
//! * `helm template` output, with default and with non-default values, is
//!   parsed and checked field by field: replicas, strategy, pod security,
//!   IRSA annotation, claim handling, leader election, optional objects and
//!   RBAC rules (exactly the verbs the operator uses, nothing more).
//! * The values schema rejects bad values with a message naming the value.
//! * `helm install` into the real test API server creates every rendered
//!   object; the installed RBAC allows what the operator needs and denies the
//!   rest (`kubectl auth can-i` as the ServiceAccount); the pod template is
//!   admitted under the Pod Security `restricted` profile.
//! * `kubectl apply -f examples/` is accepted by the API server with the
//!   CRDs generated from the Rust types.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use serde::Deserialize;
use serde_json::{Value, json};
use signet_testenv::{TestEnv, repo_root, require_bin, run_dir};

/// `helm template` has no cluster to ask; render for this Kubernetes version
/// (the chart requires >= 1.31 for the CRDs' CEL functions).
const KUBE_VERSION: &str = "1.33.0";

fn chart_dir() -> PathBuf {
    repo_root().join("charts/signet")
}

fn chart_yaml() -> Value {
    let text = fs::read_to_string(chart_dir().join("Chart.yaml")).expect("reading Chart.yaml");
    serde_yaml::from_str(&text).expect("Chart.yaml is YAML")
}

/// A helm command with private cache/config/data folders and no cluster.
fn helm() -> Command {
    let home = run_dir().join("helm-offline");
    let mut c = Command::new(require_bin("helm"));
    c.env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env("KUBECONFIG", home.join("no-cluster"));
    c
}

fn output(mut cmd: Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {:?}: {e}", cmd.get_program()))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Writes `values` (YAML) to a fresh file and returns its path.
fn values_file(name: &str, values: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = run_dir().join("helm-values");
    fs::create_dir_all(&dir).expect("creating the values folder");
    let path = dir.join(format!("{name}-{n}.yaml"));
    fs::write(&path, values).expect("writing a values file");
    path
}

/// Parses a multi-document YAML stream into JSON values (empty documents
/// dropped).
fn parse_docs(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).expect("rendered YAML parses"))
        .filter(|v| !v.is_null())
        .collect()
}

/// The objects `helm template` renders.
#[derive(Debug)]
struct Rendered {
    objects: Vec<Value>,
}

impl Rendered {
    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    /// The only object of `kind`; panics when there are none or several.
    fn one(&self, kind: &str) -> &Value {
        let all = self.of_kind(kind);
        assert_eq!(all.len(), 1, "expected one {kind}, got {}", all.len());
        all[0]
    }

    fn named(&self, kind: &str, name: &str) -> Option<&Value> {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
    }

    fn has(&self, kind: &str) -> bool {
        !self.of_kind(kind).is_empty()
    }

    fn deployment(&self) -> &Value {
        self.one("Deployment")
    }

    fn pod_spec(&self) -> &Value {
        &self.deployment()["spec"]["template"]["spec"]
    }

    fn container(&self) -> &Value {
        let containers = self.pod_spec()["containers"]
            .as_array()
            .expect("containers is a list");
        assert_eq!(containers.len(), 1, "one container");
        &containers[0]
    }

    fn args(&self) -> Vec<String> {
        strings(&self.container()["args"])
    }

    fn env(&self) -> BTreeMap<String, Value> {
        self.container()["env"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|e| {
                        (
                            e["name"].as_str().unwrap_or_default().to_string(),
                            e.clone(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `helm template <release> charts/signet -n <ns> -f <values>`; panics with
/// helm's output on failure.
fn render(release: &str, namespace: &str, values: &str) -> Rendered {
    let out = try_render(release, namespace, values);
    assert!(
        out.status.success(),
        "helm template failed:\n{}",
        text(&out)
    );
    Rendered {
        objects: parse_docs(&String::from_utf8_lossy(&out.stdout)),
    }
}

fn try_render(release: &str, namespace: &str, values: &str) -> Output {
    let file = values_file(&format!("{release}-{namespace}"), values);
    let mut c = helm();
    c.args(["template", release])
        .arg(chart_dir())
        .args(["--namespace", namespace, "--kube-version", KUBE_VERSION])
        .arg("--values")
        .arg(&file);
    output(c)
}

/// One RBAC rule reduced to comparable sets (groups, resources, verbs,
/// resource names).
type RuleKey = (
    BTreeSet<String>,
    BTreeSet<String>,
    BTreeSet<String>,
    BTreeSet<String>,
);

fn rules(role: &Value) -> BTreeSet<RuleKey> {
    role["rules"]
        .as_array()
        .expect("rules is a list")
        .iter()
        .map(|r| {
            assert!(
                r.get("nonResourceURLs").is_none(),
                "unexpected rule shape {r}"
            );
            let set = |k: &str| strings(&r[k]).into_iter().collect::<BTreeSet<_>>();
            (
                set("apiGroups"),
                set("resources"),
                set("verbs"),
                set("resourceNames"),
            )
        })
        .collect()
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> RuleKey {
    named_rule(groups, resources, verbs, &[])
}

fn named_rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> RuleKey {
    let set = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    (set(groups), set(resources), set(verbs), set(names))
}

/// Every verb on every resource the ClusterRole may grant, the operator's
/// whole cluster-wide footprint (see the operator's Kubernetes access list).
fn expected_cluster_rules() -> BTreeSet<RuleKey> {
    [
        rule(
            &["signet.dev"],
            &[
                "certificateauthorities",
                "certificates",
                "crls",
                "revocations",
            ],
            &["get", "list", "watch", "patch"],
        ),
        rule(
            &["signet.dev"],
            &[
                "certificateauthorities/status",
                "certificates/status",
                "crls/status",
                "revocations/status",
            ],
            &["get", "patch"],
        ),
        named_rule(
            &["admissionregistration.k8s.io"],
            &[
                "validatingadmissionpolicies",
                "validatingadmissionpolicybindings",
            ],
            &["get"],
            &["signet-revoked-by"],
        ),
        rule(
            &[""],
            &["secrets"],
            &["get", "list", "watch", "create", "patch"],
        ),
        rule(&[""], &["namespaces"], &["get", "list", "watch"]),
        rule(&[""], &["events"], &["create", "patch"]),
        rule(&["events.k8s.io"], &["events"], &["create", "patch"]),
    ]
    .into_iter()
    .chain(cert_manager_rules())
    .chain(csr_signer_rules("signet.dev"))
    .chain(pod_certificate_rules("signet.dev"))
    .collect()
}

/// `sign` for exactly this install's signer names (CSRs and pod
/// certificates).
fn sign_rule(domain: &str) -> RuleKey {
    named_rule(
        &["certificates.k8s.io"],
        &["signers"],
        &["sign"],
        &[&format!("{domain}/*")],
    )
}

/// The Kubernetes CSR signer: read CSRs, update their status, and `sign`.
fn csr_signer_rules(domain: &str) -> [RuleKey; 3] {
    [
        rule(
            &["certificates.k8s.io"],
            &["certificatesigningrequests"],
            &["get", "list", "watch"],
        ),
        rule(
            &["certificates.k8s.io"],
            &["certificatesigningrequests/status"],
            &["update"],
        ),
        sign_rule(domain),
    ]
}

/// The PodCertificateRequest signer: read requests, update their status,
/// get what they name, and `sign`.
fn pod_certificate_rules(domain: &str) -> [RuleKey; 4] {
    [
        rule(
            &["certificates.k8s.io"],
            &["podcertificaterequests"],
            &["get", "list", "watch"],
        ),
        rule(
            &["certificates.k8s.io"],
            &["podcertificaterequests/status"],
            &["update"],
        ),
        rule(&[""], &["pods", "serviceaccounts", "nodes"], &["get"]),
        sign_rule(domain),
    ]
}

/// The cert-manager external issuer: read CertificateRequests, patch their
/// status (server-side apply), nothing else of cert-manager's.
fn cert_manager_rules() -> [RuleKey; 2] {
    [
        rule(
            &["cert-manager.io"],
            &["certificaterequests"],
            &["get", "list", "watch"],
        ),
        rule(
            &["cert-manager.io"],
            &["certificaterequests/status"],
            &["patch"],
        ),
    ]
}

/// ConfigMaps in the release namespace: CRLs are published with server-side
/// apply; the revocation register is replaced with its resourceVersion.
fn configmaps_rule() -> RuleKey {
    rule(
        &[""],
        &["configmaps"],
        &["get", "list", "watch", "create", "patch", "update"],
    )
}

/// ConfigMaps in extra CRL namespaces: server-side apply only.
fn crl_configmaps_rule() -> RuleKey {
    rule(
        &[""],
        &["configmaps"],
        &["get", "list", "watch", "create", "patch"],
    )
}

fn leases_rule() -> RuleKey {
    rule(
        &["coordination.k8s.io"],
        &["leases"],
        &["get", "create", "update"],
    )
}

/// The leader labels its own pod `signet.dev/leader` (the PKI Service
/// selects it).
fn pod_label_rule() -> RuleKey {
    rule(&[""], &["pods"], &["patch"])
}

/// Values that change everything the chart lets users change.
const CUSTOM_VALUES: &str = r#"
replicaCount: 3
image:
  repository: registry.example/platform/signet
  tag: "9.9.9"
  digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
  pullPolicy: Always
imagePullSecrets: [{name: regcred}]
fullnameOverride: pki
commonLabels: {team: platform}
serviceAccount:
  name: pki-operator
  annotations:
    eks.amazonaws.com/role-arn: arn:aws:iam::111122223333:role/signet
rbac:
  crlNamespaces: [pki-public]
  aggregateToDefaultRoles: false
kms:
  region: eu-west-1
  endpoint: https://vpce-0abc.kms.eu-west-1.vpce.amazonaws.com
  aliasPrefix: alias/pki/prod/
  defaultKeySpec: RSA_3072
logLevel: debug
logFormat: text
concurrency: 4
httpPort: 9090
persistence:
  existingClaim: signet-db
service:
  port: 9443
  annotations: {prometheus.io/scrape: "true"}
pki:
  port: 9091
  publicBaseURL: http://pki.example.com
  service:
    type: LoadBalancer
    port: 8088
    annotations: {service.beta.kubernetes.io/aws-load-balancer-scheme: internet-facing}
    labels: {exposure: public}
  ingress:
    enabled: true
    className: nginx
    host: pki.example.com
    annotations: {nginx.ingress.kubernetes.io/ssl-redirect: "false"}
    tls: [{hosts: [pki.example.com], secretName: pki-tls}]
  httpRoute:
    enabled: true
    parentRefs: [{name: public, namespace: gateways}]
    hostnames: [pki.example.com]
    annotations: {example.com/route: pki}
serviceMonitor:
  enabled: true
  interval: 15s
  labels: {release: prometheus}
networkPolicy:
  enabled: true
  ingressFrom:
    - namespaceSelector:
        matchLabels: {kubernetes.io/metadata.name: monitoring}
  egress:
    - ports: [{port: 443, protocol: TCP}]
podDisruptionBudget:
  enabled: true
  minAvailable: 2
resources:
  requests: {cpu: 100m, memory: 128Mi}
  limits: {cpu: "1", memory: 512Mi}
nodeSelector: {kubernetes.io/os: linux}
tolerations:
  - {key: dedicated, operator: Equal, value: pki, effect: NoSchedule}
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
        - matchExpressions:
            - {key: kubernetes.io/arch, operator: In, values: [amd64, arm64]}
priorityClassName: system-cluster-critical
extraEnv:
  - {name: AWS_STS_REGIONAL_ENDPOINTS, value: regional}
podAnnotations: {example.com/owner: pki}
"#;

// ---------------------------------------------------------------------------
// Offline: lint and template
// ---------------------------------------------------------------------------

#[test]
fn the_chart_passes_helm_lint_strict_with_default_and_custom_values() {
    for (name, values) in [("default", ""), ("custom", CUSTOM_VALUES)] {
        let file = values_file(&format!("lint-{name}"), values);
        let mut c = helm();
        c.args(["lint", "--strict", "--kube-version", KUBE_VERSION])
            .arg(chart_dir())
            .arg("--values")
            .arg(&file);
        let out = output(c);
        assert!(
            out.status.success(),
            "helm lint --strict ({name} values) failed:\n{}",
            text(&out)
        );
    }
}

#[test]
fn default_values_render_one_hardened_recreate_replica() {
    let r = render("signet", "signet-system", "");
    let d = r.deployment();
    assert_eq!(d["metadata"]["name"], "signet");
    assert_eq!(d["metadata"]["namespace"], "signet-system");
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(d["spec"]["strategy"]["type"], "Recreate");

    // Image: repository:appVersion.
    let app_version = chart_yaml()["appVersion"].as_str().unwrap().to_string();
    assert_eq!(r.container()["image"], format!("signet:{app_version}"));

    // Flags: the operator's defaults, spelled out; no leader election.
    let args = r.args();
    assert_eq!(args[0], "run", "{args:?}");
    for want in [
        "--db=/var/lib/signet/signet.db",
        "--http-addr=0.0.0.0:8080",
        "--pki-addr=0.0.0.0:8081",
        "--kms-alias-prefix=alias/signet/",
        "--default-key-spec=ECC_NIST_P256",
        "--log-level=info",
        "--log-format=json",
        "--concurrency=8",
        "--csr-signer=true",
        "--pod-certificate-signer=true",
        "--signer-domain=signet.dev",
    ] {
        assert!(args.iter().any(|a| a == want), "missing {want} in {args:?}");
    }
    assert!(!args.iter().any(|a| a.starts_with("--leader-election")));
    assert!(!args.iter().any(|a| a.starts_with("--kms-endpoint")));
    assert!(
        !args.iter().any(|a| a.starts_with("--public-base-url")),
        "no base URL unless pki.publicBaseURL is set"
    );
    let env = r.env();
    assert_eq!(
        env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert!(!env.contains_key("AWS_REGION"), "region left to the SDK");

    // Pod security: restricted profile.
    let pod = r.pod_spec();
    let psc = &pod["securityContext"];
    assert_eq!(psc["runAsNonRoot"], true);
    assert_eq!(psc["runAsUser"], 65532);
    assert_eq!(psc["fsGroup"], 65532);
    assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault");
    let sc = &r.container()["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["runAsUser"], 65532);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert!(sc["capabilities"].get("add").is_none());
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(pod["automountServiceAccountToken"], true);
    assert_eq!(pod["serviceAccountName"], "signet");

    // Probes on the HTTP port.
    let c = r.container();
    assert_eq!(c["ports"][0]["name"], "http");
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    assert_eq!(c["ports"][1]["name"], "pki");
    assert_eq!(c["ports"][1]["containerPort"], 8081);
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "http");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "http");
    assert!(c["resources"]["limits"]["memory"].is_string());

    // Database on a new claim, kept on uninstall; /tmp is writable.
    let pvc = r.one("PersistentVolumeClaim");
    assert_eq!(pvc["metadata"]["name"], "signet-data");
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "1Gi");
    assert_eq!(pvc["spec"]["accessModes"], json!(["ReadWriteOnce"]));
    assert!(
        pvc["spec"].get("storageClassName").is_none(),
        "cluster default class"
    );
    assert_eq!(
        pvc["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    let volumes = pod["volumes"].as_array().unwrap();
    let data = volumes.iter().find(|v| v["name"] == "data").unwrap();
    assert_eq!(data["persistentVolumeClaim"]["claimName"], "signet-data");
    let mounts = c["volumeMounts"].as_array().unwrap();
    let mount_of = |name: &str| {
        mounts
            .iter()
            .find(|m| m["name"] == name)
            .map(|m| m["mountPath"].clone())
    };
    assert_eq!(mount_of("data"), Some(json!("/var/lib/signet")));
    assert_eq!(mount_of("tmp"), Some(json!("/tmp")));

    // Admin (metrics) and PKI Services; optional objects are off.
    assert_eq!(r.of_kind("Service").len(), 2);
    let svc = r.named("Service", "signet").expect("the admin Service");
    assert_eq!(svc["spec"]["ports"][0]["port"], 8080);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http");
    assert_eq!(
        svc["spec"]["selector"], d["spec"]["selector"]["matchLabels"],
        "the Service selects the operator pods"
    );
    let pki = r.named("Service", "signet-pki").expect("the PKI Service");
    assert_eq!(pki["spec"]["type"], "ClusterIP");
    assert_eq!(
        pki["spec"]["ports"],
        json!([{"name": "pki", "port": 80, "targetPort": "pki", "protocol": "TCP"}])
    );
    assert_eq!(
        pki["spec"]["selector"],
        d["spec"]["selector"]["matchLabels"]
    );
    for kind in [
        "ServiceMonitor",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Ingress",
        "HTTPRoute",
    ] {
        assert!(!r.has(kind), "{kind} is off by default");
    }

    // ServiceAccount without annotations.
    let sa = r.one("ServiceAccount");
    assert_eq!(sa["metadata"]["name"], "signet");
    assert!(sa["metadata"].get("annotations").is_none());
}

/// The chart ships the same admission policy as crds/ (the one the Rust
/// types generate), and can leave it out.
#[test]
fn the_chart_templates_the_revoked_by_admission_policy_of_crds() {
    let r = render("signet", "signet-system", "");
    for want in signet::api::admission_policies() {
        let kind = want["kind"].as_str().unwrap();
        let got = r
            .named(kind, "signet-revoked-by")
            .unwrap_or_else(|| panic!("no {kind}"));
        let got: serde_json::Value = serde_json::to_value(&got["spec"]).unwrap();
        assert_eq!(got, want["spec"], "{kind} differs from crds/");
    }
    let off = render(
        "signet",
        "signet-system",
        "admissionPolicy: {enabled: false}\n",
    );
    assert!(
        off.named("ValidatingAdmissionPolicy", "signet-revoked-by")
            .is_none()
    );
}

#[test]
fn rbac_grants_exactly_the_verbs_the_operator_uses() {
    let r = render("signet", "signet-system", "");
    let cr = r
        .named("ClusterRole", "signet")
        .expect("operator ClusterRole");
    assert_eq!(rules(cr), expected_cluster_rules());
    let role = r.named("Role", "signet").expect("operator Role");
    assert_eq!(role["metadata"]["namespace"], "signet-system");
    assert_eq!(
        rules(role),
        [configmaps_rule()].into_iter().collect(),
        "no Lease access without leader election"
    );
    for kind in ["ClusterRoleBinding", "RoleBinding"] {
        let b = r.named(kind, "signet").expect(kind);
        assert_eq!(
            b["subjects"],
            json!([{"kind": "ServiceAccount", "name": "signet", "namespace": "signet-system"}])
        );
        assert_eq!(b["roleRef"]["name"], "signet");
    }
    // No wildcard anywhere, in any role the chart renders.
    for kind in ["ClusterRole", "Role"] {
        for role in r.of_kind(kind) {
            for (groups, resources, verbs, _) in rules(role) {
                for s in groups.iter().chain(&resources).chain(&verbs) {
                    assert_ne!(s, "*", "wildcard in {kind} {}", role["metadata"]["name"]);
                }
            }
        }
    }
    // Aggregated roles for people: view reads, edit/admin write Certificates
    // only. Never bound to the operator.
    let view = r.named("ClusterRole", "signet-view").expect("view role");
    assert_eq!(
        view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"],
        "true"
    );
    assert_eq!(
        rules(view),
        [rule(
            &["signet.dev"],
            &[
                "certificateauthorities",
                "certificates",
                "crls",
                "revocations"
            ],
            &["get", "list", "watch"]
        )]
        .into_iter()
        .collect()
    );
    let edit = r.named("ClusterRole", "signet-edit").expect("edit role");
    assert!(
        edit["metadata"]["labels"]
            .get("rbac.authorization.k8s.io/aggregate-to-view")
            .is_none()
    );
    assert_eq!(
        rules(edit),
        [rule(
            &["signet.dev"],
            &["certificates"],
            &["create", "update", "patch", "delete", "deletecollection"]
        )]
        .into_iter()
        .collect()
    );

    // Leader election adds Leases and the pod label, and only those, in the
    // release namespace.
    for values in ["replicaCount: 2\n", "leaderElection: {enabled: true}\n"] {
        let r = render("signet", "signet-system", values);
        assert_eq!(
            rules(r.named("Role", "signet").unwrap()),
            [configmaps_rule(), leases_rule(), pod_label_rule()]
                .into_iter()
                .collect(),
            "{values}"
        );
        assert_eq!(
            rules(r.named("ClusterRole", "signet").unwrap()),
            expected_cluster_rules()
        );
        assert!(
            r.args().iter().any(|a| a == "--leader-election"),
            "{values}"
        );
    }

    // rbac.certManagerIssuer=false drops every cert-manager rule.
    let r = render(
        "signet",
        "signet-system",
        "rbac: {certManagerIssuer: false}\n",
    );
    let without: BTreeSet<RuleKey> = expected_cluster_rules()
        .into_iter()
        .filter(|r| !cert_manager_rules().contains(r))
        .collect();
    assert_eq!(rules(r.named("ClusterRole", "signet").unwrap()), without);

    // Each signer's toggle drops its own rules (sign stays while the other
    // needs it) and turns it off; both off, no certificates.k8s.io access.
    let r = render("signet", "signet-system", "rbac: {csrSigner: false}\n");
    let csr_only = |d| {
        csr_signer_rules(d)
            .into_iter()
            .filter(|r| *r != sign_rule(d))
            .collect::<Vec<_>>()
    };
    let without: BTreeSet<RuleKey> = expected_cluster_rules()
        .into_iter()
        .filter(|r| !csr_only("signet.dev").contains(r))
        .collect();
    assert_eq!(rules(r.named("ClusterRole", "signet").unwrap()), without);
    assert!(r.args().iter().any(|a| a == "--csr-signer=false"));
    let r = render(
        "signet",
        "signet-system",
        "rbac: {csrSigner: false, podCertificateSigner: false}\n",
    );
    let neither: BTreeSet<RuleKey> = expected_cluster_rules()
        .into_iter()
        .filter(|r| {
            !csr_signer_rules("signet.dev").contains(r)
                && !pod_certificate_rules("signet.dev").contains(r)
        })
        .collect();
    assert_eq!(rules(r.named("ClusterRole", "signet").unwrap()), neither);
    assert!(
        r.args()
            .iter()
            .any(|a| a == "--pod-certificate-signer=false")
    );
    let r = render("signet", "signet-system", "signerDomain: pki.example.com\n");
    let moved: BTreeSet<RuleKey> = expected_cluster_rules()
        .into_iter()
        .filter(|r| *r != sign_rule("signet.dev"))
        .chain([sign_rule("pki.example.com")])
        .collect();
    assert_eq!(rules(r.named("ClusterRole", "signet").unwrap()), moved);
    assert!(
        r.args()
            .iter()
            .any(|a| a == "--signer-domain=pki.example.com")
    );

    // rbac.create=false renders no RBAC at all.
    let r = render("signet", "signet-system", "rbac: {create: false}\n");
    for kind in ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"] {
        assert!(!r.has(kind), "{kind} with rbac.create=false");
    }
}

#[test]
fn custom_values_reach_every_object() {
    let r = render("prod", "pki", CUSTOM_VALUES);
    let d = r.deployment();
    assert_eq!(d["metadata"]["name"], "pki");
    assert_eq!(d["metadata"]["labels"]["team"], "platform");
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(d["spec"]["strategy"]["type"], "Recreate");
    let c = r.container();
    assert_eq!(
        c["image"],
        "registry.example/platform/signet@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "a digest wins over the tag"
    );
    assert_eq!(c["imagePullPolicy"], "Always");

    let args = r.args();
    for want in [
        "--leader-election",
        "--leader-label",
        "--lease-duration=15",
        "--kms-endpoint=https://vpce-0abc.kms.eu-west-1.vpce.amazonaws.com",
        "--kms-alias-prefix=alias/pki/prod/",
        "--default-key-spec=RSA_3072",
        "--log-level=debug",
        "--log-format=text",
        "--concurrency=4",
        "--http-addr=0.0.0.0:9090",
        "--pki-addr=0.0.0.0:9091",
        "--public-base-url=http://pki.example.com",
    ] {
        assert!(args.iter().any(|a| a == want), "missing {want} in {args:?}");
    }
    let env = r.env();
    assert_eq!(env["AWS_REGION"]["value"], "eu-west-1");
    assert_eq!(env["AWS_STS_REGIONAL_ENDPOINTS"]["value"], "regional");
    assert_eq!(c["ports"][0]["containerPort"], 9090);
    assert_eq!(c["resources"]["limits"]["memory"], "512Mi");
    assert_eq!(c["resources"]["requests"]["cpu"], "100m");

    let pod = r.pod_spec();
    assert_eq!(pod["serviceAccountName"], "pki-operator");
    assert_eq!(pod["priorityClassName"], "system-cluster-critical");
    assert_eq!(pod["nodeSelector"]["kubernetes.io/os"], "linux");
    assert_eq!(pod["tolerations"][0]["value"], "pki");
    assert_eq!(
        pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            [0]["matchExpressions"][0]["key"],
        "kubernetes.io/arch"
    );
    assert_eq!(pod["imagePullSecrets"], json!([{"name": "regcred"}]));
    assert_eq!(
        d["spec"]["template"]["metadata"]["annotations"]["example.com/owner"],
        "pki"
    );

    // IRSA annotation on the ServiceAccount.
    let sa = r.one("ServiceAccount");
    assert_eq!(sa["metadata"]["name"], "pki-operator");
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::111122223333:role/signet"
    );

    // existingClaim: no claim is rendered, the pod mounts the given one.
    assert!(!r.has("PersistentVolumeClaim"));
    let data = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "data")
        .unwrap();
    assert_eq!(data["persistentVolumeClaim"]["claimName"], "signet-db");

    // Services, ServiceMonitor (on the admin Service), NetworkPolicy, PDB.
    assert_eq!(c["ports"][1]["containerPort"], 9091);
    let svc = r.named("Service", "pki").expect("the admin Service");
    assert_eq!(svc["spec"]["ports"][0]["port"], 9443);
    assert_eq!(
        svc["metadata"]["annotations"]["prometheus.io/scrape"],
        "true"
    );
    let sm = r.one("ServiceMonitor");
    assert_eq!(sm["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "http");
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    assert_eq!(sm["spec"]["endpoints"][0]["interval"], "15s");
    assert_eq!(
        sm["spec"]["selector"]["matchLabels"],
        svc["spec"]["selector"]
    );
    let pki = r.named("Service", "pki-pki").expect("the PKI Service");
    assert_eq!(pki["spec"]["type"], "LoadBalancer");
    assert_eq!(pki["spec"]["ports"][0]["port"], 8088);
    assert_eq!(pki["metadata"]["labels"]["exposure"], "public");
    assert_eq!(
        pki["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-scheme"],
        "internet-facing"
    );
    let ing = r.one("Ingress");
    assert_eq!(ing["metadata"]["name"], "pki-pki");
    assert_eq!(ing["spec"]["ingressClassName"], "nginx");
    assert_eq!(ing["spec"]["tls"][0]["secretName"], "pki-tls");
    assert_eq!(
        ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/ssl-redirect"],
        "false"
    );
    let rule = &ing["spec"]["rules"][0];
    assert_eq!(rule["host"], "pki.example.com");
    assert_eq!(
        rule["http"]["paths"][0],
        json!({"path": "/", "pathType": "Prefix",
               "backend": {"service": {"name": "pki-pki", "port": {"name": "pki"}}}})
    );
    let route = r.one("HTTPRoute");
    assert_eq!(route["apiVersion"], "gateway.networking.k8s.io/v1");
    assert_eq!(
        route["spec"]["parentRefs"],
        json!([{"name": "public", "namespace": "gateways"}])
    );
    assert_eq!(route["spec"]["hostnames"], json!(["pki.example.com"]));
    assert_eq!(route["metadata"]["annotations"]["example.com/route"], "pki");
    assert_eq!(
        route["spec"]["rules"][0]["backendRefs"],
        json!([{"name": "pki-pki", "port": 8088}])
    );
    assert_eq!(
        route["spec"]["rules"][0]["matches"][0]["path"],
        json!({"type": "PathPrefix", "value": "/"})
    );
    let np = r.one("NetworkPolicy");
    assert_eq!(
        np["spec"]["podSelector"]["matchLabels"],
        d["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        np["spec"]["ingress"][0]["ports"],
        json!([{"port": "http", "protocol": "TCP"}])
    );
    assert_eq!(
        np["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "monitoring"
    );
    assert_eq!(
        np["spec"]["ingress"][1],
        json!({"ports": [{"port": "pki", "protocol": "TCP"}]}),
        "the PKI port is open to everyone"
    );
    assert_eq!(np["spec"]["egress"][0]["ports"][0]["port"], 443);
    let pdb = r.one("PodDisruptionBudget");
    assert_eq!(pdb["spec"]["minAvailable"], 2);
    assert!(pdb["spec"].get("maxUnavailable").is_none());

    // RBAC: same verbs, Leases for leader election, a ConfigMap Role in the
    // extra CRL namespace, no aggregated roles.
    assert_eq!(
        rules(r.named("ClusterRole", "pki").unwrap()),
        expected_cluster_rules()
    );
    assert_eq!(
        rules(r.named("Role", "pki").unwrap()),
        [configmaps_rule(), leases_rule(), pod_label_rule()]
            .into_iter()
            .collect()
    );
    let crl_role = r.named("Role", "pki-crl").expect("Role for CRL ConfigMaps");
    assert_eq!(crl_role["metadata"]["namespace"], "pki-public");
    assert_eq!(
        rules(crl_role),
        [crl_configmaps_rule()].into_iter().collect()
    );
    let crl_binding = r.named("RoleBinding", "pki-crl").unwrap();
    assert_eq!(
        crl_binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "pki-operator", "namespace": "pki"}])
    );
    assert!(r.named("ClusterRole", "pki-view").is_none());
}

#[test]
fn smaller_toggles_render_as_documented() {
    // No persistence: an emptyDir, no claim.
    let r = render("signet", "ops", "persistence: {enabled: false}\n");
    assert!(!r.has("PersistentVolumeClaim"));
    let data = r.pod_spec()["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "data")
        .cloned()
        .unwrap();
    assert!(data.get("emptyDir").is_some(), "{data}");

    // Storage class, size, access mode, no retain; "-" means no class.
    let r = render(
        "signet",
        "ops",
        "persistence: {storageClass: gp3, size: 5Gi, accessModes: [ReadWriteOncePod], retain: false}\n",
    );
    let pvc = r.one("PersistentVolumeClaim");
    assert_eq!(pvc["spec"]["storageClassName"], "gp3");
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "5Gi");
    assert_eq!(pvc["spec"]["accessModes"], json!(["ReadWriteOncePod"]));
    assert!(pvc["metadata"].get("annotations").is_none());
    let r = render("signet", "ops", "persistence: {storageClass: \"-\"}\n");
    assert_eq!(
        r.one("PersistentVolumeClaim")["spec"]["storageClassName"],
        ""
    );

    // PDB defaults to maxUnavailable 1; NetworkPolicy without egress rules
    // only restricts ingress.
    let r = render(
        "signet",
        "ops",
        "podDisruptionBudget: {enabled: true}\nnetworkPolicy: {enabled: true}\n",
    );
    let pdb = r.one("PodDisruptionBudget");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert!(pdb["spec"].get("minAvailable").is_none());
    let np = r.one("NetworkPolicy");
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress"]));
    assert!(np["spec"]["ingress"][0].get("from").is_none());

    // An existing ServiceAccount.
    let r = render(
        "signet",
        "ops",
        "serviceAccount: {create: false, name: byo}\n",
    );
    assert!(!r.has("ServiceAccount"));
    assert_eq!(r.pod_spec()["serviceAccountName"], "byo");
    assert_eq!(
        r.named("ClusterRoleBinding", "signet").unwrap()["subjects"][0]["name"],
        "byo"
    );
    let out = try_render("signet", "ops", "serviceAccount: {create: false}\n");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("serviceAccount.name is required"),
        "{}",
        text(&out)
    );

    // A bare PKI Ingress answers any host through the cluster's default
    // class; an HTTPRoute needs a Gateway to attach to.
    let r = render("signet", "ops", "pki: {ingress: {enabled: true}}\n");
    let ing = r.one("Ingress");
    assert!(ing["spec"].get("ingressClassName").is_none());
    assert!(ing["spec"]["rules"][0].get("host").is_none());
    assert!(ing["spec"].get("tls").is_none());
    let out = try_render("signet", "ops", "pki: {httpRoute: {enabled: true}}\n");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("pki.httpRoute.parentRefs needs at least one Gateway"),
        "{}",
        text(&out)
    );

    // A release name containing "signet" is used as is; others get a suffix.
    assert_eq!(
        render("my-signet", "ops", "").deployment()["metadata"]["name"],
        "my-signet"
    );
    assert_eq!(
        render("pki", "ops", "").deployment()["metadata"]["name"],
        "pki-signet"
    );
}

#[test]
fn bad_values_are_rejected_with_a_message_naming_the_value() {
    let cases = [
        ("replicaCount: -1\n", "/replicaCount", "minimum"),
        ("logLevel: loud\n", "/logLevel", "must be one of"),
        ("logFormat: xml\n", "/logFormat", "must be one of"),
        (
            "kms: {defaultKeySpec: ECC_NIST_P521}\n",
            "/kms/defaultKeySpec",
            "must be one of",
        ),
        (
            "kms: {aliasPrefix: signet/}\n",
            "/kms/aliasPrefix",
            "does not match pattern",
        ),
        ("concurrency: 0\n", "/concurrency", "minimum"),
        (
            "httpBindAddress: localhost\n",
            "/httpBindAddress",
            "does not match pattern",
        ),
        ("hostNetwork: yes please\n", "/hostNetwork", "want boolean"),
        (
            "replicaCount: two\n",
            "/replicaCount",
            "got string, want integer",
        ),
        ("replicas: 2\n", "replicas", "additional properties"),
        (
            "persistence: {size: lots}\n",
            "/persistence/size",
            "does not match pattern",
        ),
        (
            "podDisruptionBudget: {enabled: true, minAvailable: -1}\n",
            "/podDisruptionBudget/minAvailable",
            "",
        ),
        (
            "pki: {publicBaseURL: \"pki.example.com\"}\n",
            "/pki/publicBaseURL",
            "does not match pattern",
        ),
        ("pki: {port: 80}\n", "/pki/port", "minimum"),
        (
            "signerDomain: Signet_Dev\n",
            "/signerDomain",
            "does not match pattern",
        ),
        (
            "leaderElection: {leaseDurationSeconds: 1}\n",
            "/leaderElection/leaseDurationSeconds",
            "minimum",
        ),
    ];
    for (values, names, says) in cases {
        let out = try_render("signet", "signet-system", values);
        let msg = text(&out);
        assert!(!out.status.success(), "{values:?} was accepted");
        assert!(
            msg.contains("values don't meet the specifications of the schema"),
            "{values:?} should be rejected by the schema, got:\n{msg}"
        );
        assert!(
            msg.contains(names),
            "{values:?}: message should name {names}:\n{msg}"
        );
        assert!(
            msg.contains(says),
            "{values:?}: message should say {says:?}:\n{msg}"
        );
    }
}

#[test]
fn ha_replicas_share_one_node_route_pki_to_the_leader_and_never_share_sqlite_over_rwx() {
    // One replica: no affinity added, the PKI Service selects the pod.
    let r = render("signet", "signet-system", "");
    assert!(r.pod_spec().get("affinity").is_none());
    let pki = r.named("Service", "signet-pki").expect("PKI Service");
    assert!(pki["spec"]["selector"].get("signet.dev/leader").is_none());
    assert!(!r.args().iter().any(|a| a == "--leader-label"));

    // Several: co-located on one node (they share the ReadWriteOnce claim)
    // and the PKI Service routes to the leader only.
    let r = render(
        "signet",
        "signet-system",
        "replicaCount: 2\nleaderElection: {leaseDurationSeconds: 20}\n",
    );
    let term = &r.pod_spec()["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        [0];
    assert_eq!(term["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(
        term["labelSelector"]["matchLabels"],
        r.deployment()["spec"]["selector"]["matchLabels"]
    );
    let pki = r.named("Service", "signet-pki").unwrap();
    assert_eq!(pki["spec"]["selector"]["signet.dev/leader"], "true");
    let args = r.args();
    for want in ["--leader-election", "--leader-label", "--lease-duration=20"] {
        assert!(args.iter().any(|a| a == want), "missing {want} in {args:?}");
    }
    // A podAffinity of the user's own wins.
    let r = render(
        "signet",
        "signet-system",
        "replicaCount: 2\naffinity: {podAffinity: {preferredDuringSchedulingIgnoredDuringExecution: []}}\n",
    );
    assert!(
        r.pod_spec()["affinity"]["podAffinity"]
            .get("requiredDuringSchedulingIgnoredDuringExecution")
            .is_none()
    );

    // SQLite in WAL mode on a shared network volume is refused outright, and
    // ReadWriteOncePod would leave every standby Pending.
    for (values, says) in [
        (
            "persistence: {accessModes: [ReadWriteMany]}\n",
            "ReadWriteMany is refused",
        ),
        (
            "replicaCount: 2\npersistence: {accessModes: [ReadWriteOncePod]}\n",
            "ReadWriteOncePod lets only one pod",
        ),
    ] {
        let out = try_render("signet", "signet-system", values);
        let msg = text(&out);
        assert!(!out.status.success(), "{values:?} was accepted");
        assert!(
            msg.contains("persistence.accessModes") && msg.contains(says),
            "{values:?}: {msg}"
        );
    }
    assert!(
        try_render(
            "signet",
            "signet-system",
            "persistence: {accessModes: [ReadWriteOncePod]}\n"
        )
        .status
        .success(),
        "ReadWriteOncePod is fine for one replica"
    );
}

#[test]
fn host_network_puts_the_pod_on_the_node_network_bound_to_the_chosen_address() {
    let default = render("signet", "signet-system", "{}\n");
    assert!(
        default.pod_spec().get("hostNetwork").is_none(),
        "pods get their own network by default"
    );
    assert!(
        default
            .args()
            .iter()
            .any(|a| a == "--http-addr=0.0.0.0:8080"),
        "{:?}",
        default.args()
    );
    let r = render(
        "signet",
        "signet-system",
        "hostNetwork: true\nhttpBindAddress: 127.0.0.1\nhttpPort: 18080\npki: {port: 18081}\n",
    );
    assert_eq!(r.pod_spec()["hostNetwork"], true);
    assert!(
        r.args().iter().any(|a| a == "--http-addr=127.0.0.1:18080"),
        "{:?}",
        r.args()
    );
    assert_eq!(r.container()["ports"][0]["containerPort"], 18080);
    assert!(
        r.args().iter().any(|a| a == "--pki-addr=127.0.0.1:18081"),
        "{:?}",
        r.args()
    );
}

#[test]
fn every_value_in_values_yaml_is_documented_and_in_the_schema() {
    let text = fs::read_to_string(chart_dir().join("values.yaml")).unwrap();
    let schema: Value =
        serde_json::from_str(&fs::read_to_string(chart_dir().join("values.schema.json")).unwrap())
            .unwrap();
    // Every key whose parent is described property by property in the
    // schema has a comment line right above it; keys inside free-form
    // defaults (resources, securityContext, ...) are documented by their
    // parent's comment.
    let mut undocumented = Vec::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut prev_comment = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            continue;
        }
        if trimmed.starts_with('#') {
            prev_comment = true;
            continue;
        }
        let indent = line.len() - trimmed.len();
        let key = match trimmed.split_once(':') {
            Some((k, _)) if !trimmed.starts_with('-') => k.trim().to_string(),
            _ => {
                prev_comment = false;
                continue; // list items
            }
        };
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        let mut parent = &schema;
        for (_, k) in &stack {
            parent = &parent["properties"][k];
        }
        let described = parent["properties"].is_object();
        let is_group = trimmed.ends_with(':');
        if described && !is_group && !prev_comment {
            let path: Vec<&str> = stack.iter().map(|(_, k)| k.as_str()).collect();
            undocumented.push(format!("{}.{key}", path.join(".")));
        }
        stack.push((indent, key));
        prev_comment = false;
    }
    assert!(
        undocumented.is_empty(),
        "values without a comment: {undocumented:#?}"
    );

    let values: Value = serde_yaml::from_str(&text).unwrap();
    fn walk(values: &Value, schema: &Value, path: &str, missing: &mut Vec<String>) {
        let Some(map) = values.as_object() else {
            return;
        };
        let props = &schema["properties"];
        if props.is_null() {
            return; // free-form object (resources, securityContext, ...)
        }
        for (k, v) in map {
            let p = format!("{path}.{k}");
            match props.get(k) {
                None => missing.push(p),
                Some(s) => {
                    assert!(
                        s.get("description").is_some(),
                        "schema of {p} has no description"
                    );
                    walk(v, s, &p, missing);
                }
            }
        }
    }
    let mut missing = Vec::new();
    walk(&values, &schema, "", &mut missing);
    assert!(
        missing.is_empty(),
        "values missing from values.schema.json: {missing:?}"
    );
}

/// The alerts the PrometheusRule must carry.
const ALERTS: [&str; 7] = [
    "SignetCertificateExpiringSoon",
    "SignetCertificateRenewalOverdue",
    "SignetCRLPastNextUpdate",
    "SignetKMSErrors",
    "SignetAuditWritesFailing",
    "SignetReconcileErrors",
    "SignetOperatorDown",
];

/// Values enabling the PrometheusRule and the dashboard ConfigMap.
const MONITORING_VALUES: &str = "prometheusRule: {enabled: true, labels: {release: kps}, certificateExpiryDays: 3}\ngrafanaDashboard: {enabled: true, namespace: grafana, annotations: {grafana_folder: PKI}}\n";

/// The `signet_*` metric names in a PromQL expression.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("signet_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

/// Every PromQL expression of the rendered PrometheusRule and dashboard.
fn monitoring_exprs(r: &Rendered) -> Vec<String> {
    let rule = r.one("PrometheusRule");
    let mut exprs: Vec<String> = rule["spec"]["groups"][0]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|x| x["expr"].as_str().expect("an expr").to_string())
        .collect();
    let cm = r
        .of_kind("ConfigMap")
        .into_iter()
        .find(|c| {
            c["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.ends_with("-dashboard"))
        })
        .expect("the dashboard ConfigMap");
    let dash: Value =
        serde_json::from_str(cm["data"]["signet.json"].as_str().expect("signet.json"))
            .expect("the dashboard is JSON");
    for p in dash["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().expect("targets") {
            exprs.push(t["expr"].as_str().expect("an expr").to_string());
        }
    }
    // Query variables hold PromQL; a datasource variable's query is the
    // datasource type.
    for v in dash["templating"]["list"].as_array().expect("variables") {
        if v["type"] == "datasource" {
            continue;
        }
        if let Some(q) = v["query"].as_str() {
            exprs.push(q.to_string());
        }
    }
    exprs
}

#[test]
fn the_prometheus_rule_and_the_dashboard_are_optional_and_complete() {
    let r = render("signet", "ops", "");
    assert!(!r.has("PrometheusRule"), "off by default");
    assert!(
        r.of_kind("ConfigMap").is_empty(),
        "no dashboard ConfigMap by default"
    );

    let r = render("signet", "ops", MONITORING_VALUES);
    let rule = r.one("PrometheusRule");
    assert_eq!(rule["metadata"]["namespace"], "ops");
    assert_eq!(rule["metadata"]["labels"]["release"], "kps");
    assert_eq!(
        rule["metadata"]["labels"]["app.kubernetes.io/name"],
        "signet"
    );
    let rules = rule["spec"]["groups"][0]["rules"].as_array().unwrap();
    let names: BTreeSet<&str> = rules.iter().filter_map(|x| x["alert"].as_str()).collect();
    assert_eq!(names, ALERTS.into_iter().collect(), "the alerts");
    for x in rules {
        let alert = x["alert"].as_str().unwrap();
        for field in ["for", "labels", "annotations"] {
            assert!(x.get(field).is_some(), "{alert} has no {field}");
        }
        assert!(
            ["warning", "critical"].contains(&x["labels"]["severity"].as_str().unwrap_or("")),
            "{alert}: severity"
        );
        let description = x["annotations"]["description"].as_str().unwrap();
        assert!(
            !description.contains("{{ {{"),
            "{alert}: Helm left a template in the annotation: {description}"
        );
    }
    let expiring = rules
        .iter()
        .find(|x| x["alert"] == "SignetCertificateExpiringSoon")
        .unwrap();
    assert!(
        expiring["expr"]
            .as_str()
            .unwrap()
            .contains(&(3 * 86400).to_string()),
        "certificateExpiryDays reaches the rule: {}",
        expiring["expr"]
    );
    let down = rules
        .iter()
        .find(|x| x["alert"] == "SignetOperatorDown")
        .unwrap();
    assert!(down["expr"].as_str().unwrap().contains("namespace=\"ops\""));
    // The certificate annotation names the certificate, for Alertmanager.
    assert!(
        expiring["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains("{{ $labels.namespace }}/{{ $labels.name }}")
    );

    let cm = r.one("ConfigMap");
    assert_eq!(cm["metadata"]["namespace"], "grafana");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(cm["metadata"]["annotations"]["grafana_folder"], "PKI");
    let shipped: Value = serde_json::from_str(
        &fs::read_to_string(chart_dir().join("dashboards/signet.json")).unwrap(),
    )
    .unwrap();
    let rendered: Value =
        serde_json::from_str(cm["data"]["signet.json"].as_str().unwrap()).unwrap();
    assert_eq!(
        rendered, shipped,
        "the ConfigMap carries the dashboard file"
    );
    assert_eq!(shipped["uid"], "signet-operator");
    let exprs = monitoring_exprs(&r);
    assert!(exprs.len() > ALERTS.len());
    for e in &exprs {
        assert!(!metric_names(e).is_empty() || e.contains("time()"), "{e}");
    }

    // The ServiceMonitor keeps the certificates' own namespace label.
    let r = render("signet", "ops", "serviceMonitor: {enabled: true}\n");
    assert_eq!(
        r.one("ServiceMonitor")["spec"]["endpoints"][0]["honorLabels"],
        true
    );

    let out = try_render(
        "signet",
        "ops",
        "prometheusRule: {certificateExpiryDays: 0}\n",
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("certificateExpiryDays"),
        "{}",
        text(&out)
    );
}

#[test]
fn metric_names_are_read_from_promql() {
    assert_eq!(
        metric_names("sum by (le) (rate(signet_a_bucket{x=\"signet\"}[5m])) > signet_b - time()"),
        ["signet_a_bucket", "signet_b"]
            .map(String::from)
            .into_iter()
            .collect()
    );
}

/// `GET path` on 127.0.0.1:`port`: the body of a 200, else None.
fn http_body(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    (head.split_whitespace().nth(1)? == "200").then(|| body.to_string())
}

/// The metric names on a metrics page: TYPE lines and sample names.
fn exported_names(page: &str) -> BTreeSet<String> {
    page.lines()
        .filter_map(|l| match l.strip_prefix("# TYPE ") {
            Some(t) => t.split_whitespace().next(),
            None if l.starts_with('#') => None,
            None => l.split(['{', ' ']).next(),
        })
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect()
}

/// Waits until the operator on `port` exports every `signet_*` metric the
/// PrometheusRule and the dashboard use; panics naming the missing ones.
fn assert_monitoring_uses_exported_metrics(port: u16, log_tail: impl Fn() -> String) {
    let used: BTreeSet<String> = monitoring_exprs(&render("signet", "ops", MONITORING_VALUES))
        .iter()
        .flat_map(|e| metric_names(e))
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let page = http_body(port, "/metrics").unwrap_or_default();
        let exported = exported_names(&page);
        let missing: Vec<&String> = used.difference(&exported).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the PrometheusRule or the dashboard uses metrics the operator does not export: {missing:?}\nexported: {exported:?}\noperator log:\n{}",
            log_tail()
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

// ---------------------------------------------------------------------------
// Against the real API server
// ---------------------------------------------------------------------------

/// Runs `helm` against the test cluster; panics with its output on failure.
fn helm_ok(env: &TestEnv, args: &[&str]) -> String {
    let mut c = env.helm();
    c.args(args);
    let out = output(c);
    assert!(
        out.status.success(),
        "helm {args:?} failed:\n{}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kubectl auth can-i <verb> <resource> [-n ns]` as a ServiceAccount.
fn can_i(env: &TestEnv, sa: &str, verb: &str, resource: &str, ns: Option<&str>) -> bool {
    let mut c = env.kubectl();
    c.args(["auth", "can-i", verb]);
    match resource.split_once('/') {
        Some((resource, sub)) => c.args([resource, "--subresource", sub]),
        None => c.arg(resource),
    };
    c.args(["--as", sa]);
    match ns {
        Some(ns) => c.args(["-n", ns]),
        None => c.arg("--all-namespaces"),
    };
    let out = output(c);
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match answer.as_str() {
        "yes" => true,
        "no" => false,
        _ => panic!("kubectl auth can-i {verb} {resource}: {}", text(&out)),
    }
}

/// Checks that every object in `manifest` exists in the cluster.
fn assert_all_exist(env: &TestEnv, manifest: &str, default_ns: &str) -> usize {
    let objects = parse_docs(manifest);
    assert!(!objects.is_empty(), "empty manifest");
    for o in &objects {
        let kind = o["kind"].as_str().unwrap();
        let api_version = o["apiVersion"].as_str().unwrap();
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        let resource = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let name = o["metadata"]["name"].as_str().unwrap();
        let ns = o["metadata"]["namespace"].as_str().unwrap_or(default_ns);
        let got = env
            .kubectl_ok(&["get", &resource, name, "-n", ns, "-o", "name"])
            .unwrap_or_else(|e| panic!("{kind} {ns}/{name} was not created: {e:#}"));
        assert!(!got.trim().is_empty(), "{kind} {name} missing");
    }
    objects.len()
}

/// `helm install` creates every rendered object; RBAC allows exactly what
/// the operator needs; the pod template passes Pod Security `restricted`;
/// uninstall keeps the database claim.
#[tokio::test]
async fn helm_install_creates_every_object_with_least_privilege() {
    let env = signet_testenv::env();
    let ns = env.namespace("helm").await;
    let ns = ns.name();
    let release = format!("signet-{}", ns.rsplit('-').next().unwrap_or("0"));
    let values = values_file(
        &format!("install-{ns}"),
        "replicaCount: 2\n\
         serviceAccount:\n  annotations:\n    eks.amazonaws.com/role-arn: arn:aws:iam::111122223333:role/signet\n\
         kms: {region: us-east-1}\n\
         networkPolicy: {enabled: true}\n\
         podDisruptionBudget: {enabled: true}\n\
         pki: {ingress: {enabled: true, host: pki.example.com}}\n\
         admissionPolicy: {enabled: false}\n",
    );
    let values = values.display().to_string();
    let chart = chart_dir().display().to_string();
    helm_ok(
        env,
        &["install", &release, &chart, "-n", ns, "--values", &values],
    );
    let status = helm_ok(env, &["status", &release, "-n", ns]);
    assert!(status.contains("STATUS: deployed"), "{status}");
    assert!(
        status.contains("kubectl -n"),
        "NOTES.txt is shown:\n{status}"
    );

    let manifest = helm_ok(env, &["get", "manifest", &release, "-n", ns]);
    let count = assert_all_exist(env, &manifest, ns);
    assert!(count >= 10, "only {count} objects rendered");

    // RBAC as the ServiceAccount.
    let sa = format!("system:serviceaccount:{ns}:{release}");
    let other = "default";
    let allowed: &[(&str, &str, Option<&str>)] = &[
        ("watch", "certificates.signet.dev", None),
        ("list", "certificateauthorities.signet.dev", None),
        ("patch", "certificateauthorities.signet.dev", None),
        ("patch", "certificates.signet.dev/status", None),
        ("patch", "crls.signet.dev/status", None),
        ("create", "secrets", Some(other)),
        ("patch", "secrets", Some(other)),
        ("watch", "secrets", None),
        ("list", "namespaces", None),
        ("create", "events", Some(other)),
        ("create", "events.events.k8s.io", Some(other)),
        ("create", "configmaps", Some(ns)),
        ("patch", "configmaps", Some(ns)),
        ("update", "configmaps", Some(ns)),
        ("get", "leases.coordination.k8s.io", Some(ns)),
        ("update", "leases.coordination.k8s.io", Some(ns)),
    ];
    let denied: &[(&str, &str, Option<&str>)] = &[
        ("delete", "secrets", Some(other)),
        ("update", "secrets", Some(other)),
        ("create", "configmaps", Some(other)),
        ("get", "configmaps", Some(other)),
        ("delete", "configmaps", Some(ns)),
        ("create", "certificateauthorities.signet.dev/status", None),
        ("create", "certificates.signet.dev", Some(other)),
        ("delete", "certificateauthorities.signet.dev", None),
        ("delete", "crls.signet.dev", None),
        ("update", "certificates.signet.dev/finalizers", Some(other)),
        (
            "update",
            "certificateauthorities.signet.dev/finalizers",
            None,
        ),
        ("update", "certificateauthorities.signet.dev", None),
        ("update", "crls.signet.dev/status", None),
        ("create", "namespaces", None),
        ("get", "leases.coordination.k8s.io", Some(other)),
        ("delete", "leases.coordination.k8s.io", Some(ns)),
        ("list", "pods", Some(ns)),
        (
            "create",
            "customresourcedefinitions.apiextensions.k8s.io",
            None,
        ),
    ];
    for (verb, resource, where_) in allowed {
        assert!(
            can_i(env, &sa, verb, resource, *where_),
            "the operator must be allowed to {verb} {resource} in {where_:?}"
        );
    }
    for (verb, resource, where_) in denied {
        assert!(
            !can_i(env, &sa, verb, resource, *where_),
            "the operator must NOT be allowed to {verb} {resource} in {where_:?}"
        );
    }

    // The pod the Deployment would create is admitted under the restricted
    // Pod Security profile (checked by the API server's admission).
    let rendered = Rendered {
        objects: parse_docs(&manifest),
    };
    let template = &rendered.deployment()["spec"]["template"];
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "signet-psa-check", "namespace": ns, "labels": template["metadata"]["labels"]},
        "spec": template["spec"],
    });
    env.kubectl_ok(&[
        "label",
        "namespace",
        ns,
        "pod-security.kubernetes.io/enforce=restricted",
        "--overwrite",
    ])
    .unwrap();
    let pod_file = values_file(&format!("psa-pod-{ns}"), &pod.to_string());
    let out = env.kubectl_ok(&[
        "create",
        "--dry-run=server",
        "-f",
        &pod_file.display().to_string(),
    ]);
    assert!(
        out.is_ok(),
        "the operator pod violates Pod Security restricted: {:#}",
        out.unwrap_err()
    );

    // Uninstall removes everything except the database claim.
    helm_ok(env, &["uninstall", &release, "-n", ns, "--wait=false"]);
    let left = env
        .kubectl_ok(&["get", "persistentvolumeclaims", "-n", ns, "-o", "name"])
        .unwrap();
    assert!(
        left.contains(&format!("persistentvolumeclaim/{release}-data")),
        "the database claim is kept: {left:?}"
    );
    let cr = env.kubectl_ok(&["get", "clusterrole", &release]);
    assert!(cr.is_err(), "the ClusterRole is removed on uninstall");
}

/// A second, default-valued release installs too (no leader election, no
/// Lease access).
#[tokio::test]
async fn helm_install_with_default_values_succeeds() {
    let env = signet_testenv::env();
    let ns = env.namespace("helm-default").await;
    let ns = ns.name();
    let release = format!("pki-{}", ns.rsplit('-').next().unwrap_or("0"));
    let chart = chart_dir().display().to_string();
    // Defaults install the revoked-by admission policy: take the one the
    // harness applied from crds/ out of the way so this release owns it.
    for kind in [
        "validatingadmissionpolicybinding",
        "validatingadmissionpolicy",
    ] {
        env.kubectl_ok(&["delete", kind, "signet-revoked-by", "--ignore-not-found"])
            .unwrap();
    }
    helm_ok(env, &["install", &release, &chart, "-n", ns]);
    let manifest = helm_ok(env, &["get", "manifest", &release, "-n", ns]);
    assert!(
        manifest.contains("kind: ValidatingAdmissionPolicy"),
        "{manifest}"
    );
    assert_all_exist(env, &manifest, ns);
    let sa = format!("system:serviceaccount:{ns}:{release}-signet");
    assert!(can_i(env, &sa, "create", "configmaps", Some(ns)));
    assert!(!can_i(
        env,
        &sa,
        "get",
        "leases.coordination.k8s.io",
        Some(ns)
    ));
    helm_ok(env, &["uninstall", &release, "-n", ns, "--wait=false"]);
}

/// Makes sure the CRDs of the current Rust types are installed and
/// established (the harness installs `crds/` when that folder exists).
fn install_current_crds(env: &TestEnv) {
    let yaml = signet::api::crds_yaml().expect("rendering the CRDs");
    let file = run_dir().join("current-crds.yaml");
    fs::write(&file, yaml).unwrap();
    env.kubectl_ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=signet-tests",
        "-f",
        &file.display().to_string(),
    ])
    .expect("installing the CRDs");
    env.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/certificateauthorities.signet.dev",
        "crd/certificates.signet.dev",
        "crd/crls.signet.dev",
        "--timeout=60s",
    ])
    .expect("CRDs become Established");
}

fn examples_dir() -> PathBuf {
    repo_root().join("examples")
}

fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(examples_dir())
        .expect("examples/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn examples_cover_every_kind_in_apply_order() {
    let names: Vec<String> = example_files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "00-namespace.yaml",
            "01-root-ca.yaml",
            "02-intermediate-ca.yaml",
            "03-server-certificate.yaml",
            "04-client-certificate.yaml",
            "05-crl.yaml"
        ]
    );
    let mut kinds = Vec::new();
    for f in example_files() {
        let text = fs::read_to_string(&f).unwrap();
        assert!(
            text.trim_start().starts_with('#'),
            "{} starts with a comment explaining it",
            f.display()
        );
        for o in parse_docs(&text) {
            kinds.push(o["kind"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(
        kinds,
        [
            "Namespace",
            "CertificateAuthority",
            "CertificateAuthority",
            "Certificate",
            "Certificate",
            "CRL",
            "CRL"
        ]
    );
}

/// `kubectl apply -f examples/` is accepted by the API server's schema and
/// CEL rules (server-side dry run). The real apply, with the operator
/// reconciling it, is in the RBAC test below.
#[tokio::test]
async fn examples_pass_server_side_validation() {
    let env = signet_testenv::env();
    install_current_crds(env);
    let dir = examples_dir().display().to_string();
    // The Certificates live in "demo", which 00-namespace.yaml creates; a
    // dry run creates nothing, so the namespace has to exist first.
    env.kubectl_ok(&[
        "apply",
        "--dry-run=server",
        "-f",
        &format!("{dir}/00-namespace.yaml"),
    ])
    .expect("the namespace example is valid");
    env.kubectl_ok(&["apply", "-f", &format!("{dir}/00-namespace.yaml")])
        .expect("creating the demo namespace");
    let dry = env
        .kubectl_ok(&["apply", "--dry-run=server", "-f", &dir])
        .unwrap_or_else(|e| panic!("the API server rejects examples/: {e:#}"));
    assert_eq!(dry.lines().count(), 7, "{dry}");
}

/// A kubeconfig that authenticates as a ServiceAccount with a bound token
/// (TokenRequest), exactly what the pod would mount.
fn service_account_kubeconfig(env: &TestEnv, ns: &str, sa: &str) -> PathBuf {
    use base64::Engine;
    let token = env
        .kubectl_ok(&["create", "token", sa, "-n", ns, "--duration=1h"])
        .expect("requesting a ServiceAccount token");
    let ca = base64::engine::general_purpose::STANDARD.encode(&env.ca_pem);
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: {sa}\n  user:\n    token: {token}\ncontexts:\n- name: sa\n  context: {{cluster: test, user: {sa}, namespace: {ns}}}\ncurrent-context: sa\n",
        server = env.server,
        token = token.trim(),
    );
    let path = run_dir().join(format!("kubeconfig-sa-{ns}"));
    fs::write(&path, yaml).expect("writing the ServiceAccount kubeconfig");
    path
}

/// The chart's RBAC is enough: the real operator, authenticated as the
/// chart's ServiceAccount (with leader election, so Leases are exercised),
/// brings every example to Ready, revokes the client certificate and
/// publishes a CRL listing it, without a single Forbidden.
#[tokio::test]
async fn the_chart_rbac_is_enough_to_run_the_examples() {
    let env = signet_testenv::env();
    install_current_crds(env);
    let ns = env.namespace("signet-op").await;
    let ns = ns.name();
    let release = "signet";
    let chart = chart_dir().display().to_string();
    helm_ok(
        env,
        &[
            "install",
            release,
            &chart,
            "-n",
            ns,
            "--set",
            "leaderElection.enabled=true",
            "--set",
            "admissionPolicy.enabled=false",
        ],
    );
    let kubeconfig = service_account_kubeconfig(env, ns, release);

    // The operator process as the pod would run it (args from the chart are
    // covered above; here the environment form of the same settings).
    let port = signet_testenv::free_port();
    let dir = run_dir().join(format!("operator-{ns}"));
    fs::create_dir_all(&dir).unwrap();
    let log = dir.join("signet.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_signet"));
    cmd.arg("run")
        .env("KUBECONFIG", &kubeconfig)
        .env("POD_NAMESPACE", ns)
        .env("POD_NAME", "signet-test-pod")
        .env("SIGNET_DB", dir.join("signet.db"))
        .env("SIGNET_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env(
            "SIGNET_PKI_ADDR",
            format!("127.0.0.1:{}", signet_testenv::free_port()),
        )
        .env("SIGNET_KMS_ENDPOINT", &env.kms.endpoint)
        .env("SIGNET_KMS_ALIAS_PREFIX", format!("alias/{ns}/"))
        .env("SIGNET_LEADER_ELECTION", "true")
        .env("SIGNET_LOG_FORMAT", "text")
        .env("AWS_REGION", &env.kms.region)
        .env("AWS_ACCESS_KEY_ID", signet_testenv::KMS_ACCESS_KEY_ID)
        .env(
            "AWS_SECRET_ACCESS_KEY",
            signet_testenv::KMS_SECRET_ACCESS_KEY,
        );
    let pid = signet_testenv::spawn_supervised("signet (chart ServiceAccount)", cmd, &log)
        .expect("starting the operator");
    let log_tail = || signet_testenv::tail(&log, 60);

    let dir_examples = examples_dir().display().to_string();
    env.kubectl_ok(&["apply", "-f", &dir_examples])
        .unwrap_or_else(|e| panic!("kubectl apply -f examples/ failed: {e:#}"));
    let wait = |what: &[&str]| {
        let mut args = vec!["wait", "--timeout=120s"];
        args.extend_from_slice(what);
        if let Err(e) = env.kubectl_ok(&args) {
            panic!(
                "kubectl {args:?}: {e:#}\nobjects:\n{}\noperator log:\n{}",
                env.kubectl_ok(&[
                    "get",
                    "certificateauthorities,crls,certificates",
                    "-A",
                    "-o",
                    "yaml"
                ])
                .unwrap_or_default(),
                log_tail()
            )
        }
    };
    wait(&[
        "--for=condition=Ready",
        "certificateauthority/example-root",
        "certificateauthority/example-issuing",
    ]);
    wait(&[
        "--for=condition=Ready",
        "-n",
        "demo",
        "certificate/web",
        "certificate/client",
    ]);
    wait(&[
        "--for=condition=Ready",
        "crl/example-issuing",
        "crl/example-root",
    ]);
    for secret in ["web-tls", "client-tls"] {
        let keys = env
            .kubectl_ok(&[
                "get",
                "secret",
                "-n",
                "demo",
                secret,
                "-o",
                "jsonpath={.data}",
            ])
            .unwrap();
        assert!(
            keys.contains("tls.crt") && keys.contains("tls.key"),
            "{secret}: {keys}"
        );
    }
    // The Lease was taken through the chart's Role.
    env.kubectl_ok(&["get", "lease", "-n", ns, "signet-leader"])
        .unwrap_or_else(|e| panic!("no leader Lease: {e:#}\n{}", log_tail()));

    // Revoke the client certificate; the issuing CA's CRL lists it.
    env.kubectl_ok(&[
        "patch",
        "certificate",
        "-n",
        "demo",
        "client",
        "--type=merge",
        "-p",
        r#"{"spec":{"revocation":{"reason":"keyCompromise"}}}"#,
    ])
    .unwrap();
    wait(&[
        "--for=jsonpath={.status.revokedCount}=1",
        "crl/example-issuing",
    ]);

    // A spec Signet refuses (renewBefore longer than duration), so that
    // reconcile errors are exported too; then every metric the chart's
    // alerts and dashboard use is on the operator's live metrics page.
    let bad = dir.join("bad-certificate.yaml");
    fs::write(
        &bad,
        "apiVersion: signet.dev/v1alpha1\nkind: Certificate\nmetadata: {name: metrics-bad, namespace: demo}\nspec:\n  issuerRef: {name: example-issuing}\n  secretName: metrics-bad-tls\n  dnsNames: [bad.example.com]\n  duration: 1h\n  renewBefore: 2h\n",
    )
    .unwrap();
    let bad = bad.display().to_string();
    env.kubectl_ok(&["apply", "-f", &bad]).unwrap();
    wait(&[
        "--for=condition=Ready=false",
        "-n",
        "demo",
        "certificate/metrics-bad",
    ]);
    assert_monitoring_uses_exported_metrics(port, log_tail);
    env.kubectl_ok(&["delete", "-f", &bad, "--wait=false"])
        .unwrap();

    let text = fs::read_to_string(&log).unwrap_or_default();
    let forbidden: Vec<&str> = text
        .lines()
        .filter(|l| l.to_ascii_lowercase().contains("forbidden"))
        .collect();
    assert!(
        forbidden.is_empty(),
        "the chart's RBAC denied the operator something it needs:\n{}",
        forbidden.join("\n")
    );
    signet_testenv::kill(pid);
    helm_ok(env, &["uninstall", release, "-n", ns, "--wait=false"]);
}
