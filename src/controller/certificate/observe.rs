//! What a Certificate's decision depends on: its issuer, its Secret, its
//! namespace's labels (only when the CA selects namespaces by label).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::ResourceExt;
use kube::api::Api;

use super::super::watches::Cached;
use super::super::{Context, Error};
use crate::api::{Certificate, CertificateAuthority};
use crate::controller::ca::urls::PublicUrls;
use crate::pki::{self, KeyState, TlsContents};

/// A Secret as the pipeline sees it (the key only if it matches).
#[derive(Debug, Clone)]
pub struct SecretSeen {
    /// `type`.
    pub type_: Option<String>,
    /// `tls.crt` / `tls.key`, parsed.
    pub contents: TlsContents,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

impl Default for SecretSeen {
    fn default() -> Self {
        SecretSeen {
            type_: None,
            contents: TlsContents {
                cert: None,
                key: KeyState::Missing,
            },
            annotations: BTreeMap::new(),
            labels: BTreeMap::new(),
        }
    }
}

impl SecretSeen {
    /// Reads a Secret (never logs the key).
    pub fn of(s: &Secret) -> SecretSeen {
        let data = s.data.as_ref();
        let get = |k: &str| data.and_then(|d| d.get(k)).map(|b| b.0.as_slice());
        SecretSeen {
            type_: s.type_.clone(),
            contents: pki::read_tls(get("tls.crt"), get("tls.key")),
            annotations: s.annotations().clone(),
            labels: s.labels().clone(),
        }
    }
}

/// Observations for one Certificate.
#[derive(Debug, Default)]
pub struct World {
    /// The CA it names, if it exists.
    pub issuer: Option<CertificateAuthority>,
    /// That CA's parents, nearest first (their name constraints apply too).
    pub ancestors: Vec<CertificateAuthority>,
    /// The CRL distribution point and AIA URLs that CA stamps (when it or
    /// the operator has a public base URL).
    pub issuer_urls: Option<PublicUrls>,
    /// Its Secret, if it exists.
    pub secret: Option<SecretSeen>,
    /// Labels of its namespace (empty unless the CA selects by label).
    pub namespace_labels: BTreeMap<String, String>,
}

/// Reads the issuer, the Secret and (when needed) the namespace.
pub async fn world(ctx: &Context, cert: &Certificate) -> Result<World, Error> {
    let ns = cert.namespace().unwrap_or_default();
    let issuer = ca_named(ctx, &cert.spec.issuer_ref.name).await?;
    let (ancestors, issuer_urls) = match &issuer {
        Some(ca) => (
            super::super::ca::observe::ancestry_with(ca, |name| async move {
                ca_named(ctx, &name).await
            })
            .await?
            .parents,
            super::super::ca::urls::observe(ctx, ca).await?,
        ),
        None => (Vec::new(), None),
    };
    let secret = secret(ctx, &ns, &cert.spec.secret_name)
        .await?
        .map(|s| SecretSeen::of(&s));
    let by_label = issuer.as_ref().is_some_and(|ca| {
        ca.spec
            .allowed_namespaces
            .as_ref()
            .is_some_and(|a| a.selector.is_some())
    });
    let namespace_labels = if by_label {
        let nss: Api<Namespace> = Api::all(ctx.client.clone());
        nss.get_opt(&ns)
            .await?
            .map(|n| n.labels().clone())
            .unwrap_or_default()
    } else {
        BTreeMap::new()
    };
    Ok(World {
        issuer,
        ancestors,
        issuer_urls,
        secret,
        namespace_labels,
    })
}

/// CA `name`: from the watch cache, else one GET.
pub async fn ca_named(ctx: &Context, name: &str) -> Result<Option<CertificateAuthority>, Error> {
    match ctx.caches.ca(name) {
        Cached::Hit(ca) => Ok(Some(ca)),
        Cached::Absent => Ok(None),
        Cached::Miss => Ok(Api::<CertificateAuthority>::all(ctx.client.clone())
            .get_opt(name)
            .await?),
    }
}

/// Secret `ns/name`: from the cache of Signet's Secrets, else one GET (a
/// Secret Signet has not labelled is not in the cache but must be seen).
async fn secret(ctx: &Context, ns: &str, name: &str) -> Result<Option<Secret>, Error> {
    if let Some(s) = ctx.caches.secret(ns, name) {
        return Ok(Some(s));
    }
    Ok(Api::<Secret>::namespaced(ctx.client.clone(), ns)
        .get_opt(name)
        .await?)
}
