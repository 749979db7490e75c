//! Status conditions: build, merge (keeping lastTransitionTime when the
//! status did not change) and compare.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// A condition to set: type, status, reason, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    /// Condition type (`Ready`, `Issuing`).
    pub type_: &'static str,
    /// `True` or `False`.
    pub status: bool,
    /// CamelCase reason.
    pub reason: String,
    /// Human message.
    pub message: String,
}

impl Cond {
    /// `type_=True`.
    pub fn yes(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Cond {
            type_,
            status: true,
            reason: reason.to_string(),
            message: message.into(),
        }
    }

    /// `type_=False`.
    pub fn no(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Cond {
            type_,
            status: false,
            reason: reason.to_string(),
            message: message.into(),
        }
    }
}

/// Returns `existing` with `set` applied. lastTransitionTime changes only
/// when a condition's status flips; other conditions are kept.
pub fn merge(
    existing: &[Condition],
    set: &[Cond],
    generation: Option<i64>,
    now: time::OffsetDateTime,
) -> Vec<Condition> {
    let mut out: Vec<Condition> = existing.to_vec();
    for c in set {
        let status = if c.status { "True" } else { "False" }.to_string();
        let message: String = c.message.chars().take(1024).collect();
        match out.iter_mut().find(|e| e.type_ == c.type_) {
            Some(e) => {
                if e.status != status {
                    e.last_transition_time = Time(jiff_ts(now));
                }
                e.status = status;
                e.reason = c.reason.clone();
                e.message = message;
                e.observed_generation = generation;
            }
            None => out.push(Condition {
                type_: c.type_.to_string(),
                status,
                reason: c.reason.clone(),
                message,
                observed_generation: generation,
                last_transition_time: Time(jiff_ts(now)),
            }),
        }
    }
    out
}

/// Converts to the timestamp type k8s-openapi uses.
pub fn jiff_ts(t: time::OffsetDateTime) -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::from_second(t.unix_timestamp())
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
}

/// The condition of `type_`, if present.
pub fn find<'a>(conds: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conds.iter().find(|c| c.type_ == type_)
}

/// Whether `type_` is `True`.
pub fn is_true(conds: &[Condition], type_: &str) -> bool {
    find(conds, type_).is_some_and(|c| c.status == "True")
}

/// `conds` without the condition of `type_`.
pub fn without(mut conds: Vec<Condition>, type_: &str) -> Vec<Condition> {
    conds.retain(|c| c.type_ != type_);
    conds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_only_moves_when_status_flips() {
        let t0 = time::OffsetDateTime::from_unix_timestamp(1_000).unwrap();
        let t1 = time::OffsetDateTime::from_unix_timestamp(2_000).unwrap();
        let a = merge(&[], &[Cond::no("Ready", "Pending", "x")], Some(1), t0);
        let b = merge(&a, &[Cond::no("Ready", "Other", "y")], Some(2), t1);
        assert_eq!(b[0].last_transition_time, a[0].last_transition_time);
        assert_eq!(b[0].reason, "Other");
        assert_eq!(b[0].observed_generation, Some(2));
        let c = merge(&b, &[Cond::yes("Ready", "Issued", "ok")], Some(2), t1);
        assert_ne!(c[0].last_transition_time, b[0].last_transition_time);
    }
}
