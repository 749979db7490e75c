//! What a CRL's decision depends on: its CA, the CA's register, the CRL
//! published last time, and the highest number the mirror saw.

use kube::ResourceExt;
use kube::api::Api;

use super::super::revocations::{self, Register};
use super::super::{Context, Error};
use super::target;
use crate::api::{CRL, CertificateAuthority};

/// Observations for one CRL.
#[derive(Debug, Default)]
pub struct World {
    /// The CA, if it exists.
    pub ca: Option<CertificateAuthority>,
    /// The CA's revocation register.
    pub register: Register,
    /// The DER in the published ConfigMap (not trusted until verified).
    pub published_der: Option<Vec<u8>>,
    /// The highest CRL number the mirror recorded for the CA.
    pub store_number: i64,
    /// The CRL object that publishes this CA's CRL when several name it
    /// (the oldest; ties by name), if it is not this one.
    pub publisher: Option<String>,
}

/// Reads the CA, the register, the published ConfigMap, the mirror.
pub async fn world(ctx: &Context, crl: &CRL) -> Result<World, Error> {
    let ca_name = &crl.spec.ca_ref.name;
    let ca = Api::<CertificateAuthority>::all(ctx.client.clone())
        .get_opt(ca_name)
        .await?;
    let register = revocations::list(&ctx.client, &ctx.namespace, ca_name).await?;
    let (ns, name) = target(crl, &ctx.namespace);
    let published_der = super::publish::read(ctx, &ns, &name).await?;
    let publisher = Api::<CRL>::all(ctx.client.clone())
        .list(&kube::api::ListParams::default())
        .await?
        .into_iter()
        .filter(|c| &c.spec.ca_ref.name == ca_name)
        .min_by(|a, b| {
            let key = |c: &CRL| {
                (
                    c.metadata.creation_timestamp.clone().map(|t| t.0),
                    c.name_any(),
                )
            };
            key(a).cmp(&key(b))
        })
        .map(|c| c.name_any())
        .filter(|n| *n != crl.name_any());
    let store_number = ctx
        .store
        .latest_crl_number(ca_name)
        .await
        .ok()
        .flatten()
        .unwrap_or(0);
    Ok(World {
        ca,
        register,
        published_der,
        store_number,
        publisher,
    })
}
