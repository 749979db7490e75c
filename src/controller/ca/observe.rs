//! What a CA's decision depends on: its parents and its key.

use std::sync::Arc;

use kube::ResourceExt;
use kube::api::Api;

use super::super::{Context, Error};
use super::urls::PublicUrls;
use crate::api::CertificateAuthority;
use crate::kms::Signer;

/// How deep an issuer chain may go before it counts as broken.
pub const MAX_DEPTH: usize = 16;

/// The issuer chain above a CA as far as it resolves.
#[derive(Debug, Clone, Default)]
pub struct Ancestry {
    /// Parents, nearest first.
    pub parents: Vec<CertificateAuthority>,
    /// The first name that does not exist.
    pub missing: Option<String>,
    /// The names of a loop (`a → b → a`), when the chain has one.
    pub cycle: Option<Vec<String>>,
}

/// Observations for one CA.
pub struct World {
    /// Its parents.
    pub ancestry: Ancestry,
    /// Its key, when it has one (recorded ARN, or `spec.kms.keyId`).
    pub key: Option<Arc<dyn Signer>>,
    /// The URLs its parent stamps into its certificate (intermediates).
    pub parent_urls: Option<PublicUrls>,
}

/// Reads the parents and adopts the CA's key (no key is created here).
pub async fn world(ctx: &Context, ca: &CertificateAuthority) -> Result<World, Error> {
    let ancestry = ancestry(ctx, ca).await?;
    let recorded = ca.status.as_ref().and_then(|s| s.kms_key_arn.clone());
    let key = match recorded.or_else(|| ca.spec.kms.key_id.clone()) {
        Some(k) => Some(ctx.signer(&k).await?),
        None => None,
    };
    let parent_urls = match ancestry.parents.first() {
        Some(parent) => super::urls::observe(ctx, parent).await?,
        None => None,
    };
    Ok(World {
        ancestry,
        key,
        parent_urls,
    })
}

/// Follows `issuerRef` upwards until a root, a missing name or a repeat.
pub async fn ancestry(ctx: &Context, ca: &CertificateAuthority) -> Result<Ancestry, Error> {
    let api: Api<CertificateAuthority> = Api::all(ctx.client.clone());
    ancestry_with(ca, |name| {
        let api = api.clone();
        async move { Ok(api.get_opt(&name).await?) }
    })
    .await
}

/// [`ancestry`], reading each parent with `lookup`.
pub async fn ancestry_with<F, Fut>(ca: &CertificateAuthority, lookup: F) -> Result<Ancestry, Error>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<Option<CertificateAuthority>, Error>>,
{
    let mut seen = vec![ca.name_any()];
    let mut out = Ancestry::default();
    let mut next = ca.spec.issuer_ref.as_ref().map(|r| r.name.clone());
    while let Some(name) = next {
        if seen.contains(&name) || seen.len() > MAX_DEPTH {
            seen.push(name);
            out.cycle = Some(seen);
            break;
        }
        seen.push(name.clone());
        let Some(parent) = lookup(name.clone()).await? else {
            out.missing = Some(name);
            break;
        };
        next = parent.spec.issuer_ref.as_ref().map(|r| r.name.clone());
        out.parents.push(parent);
    }
    Ok(out)
}
