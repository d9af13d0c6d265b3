//! Variants: named bundles of model, sampling, routing, prompt template and retrieval settings,
//! and the experiment that splits users between them.
//!
//! A user is assigned by a stable hash of the experiment's salt and their id, so they keep their
//! variant across turns and restarts, and a new salt reshuffles everyone. The shares are laid end
//! to end in the order given (by name, from configuration): when B's share grows at the expense of
//! its neighbour in that order — always so with two variants — only users moving into B change
//! variant. Users without an id get the default variant.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use ragback_domain::UserId;

use crate::ports::{GenerationParams, PromptRenderer};
use crate::retrieval::RetrievalOverrides;
use crate::stable_hash::{fnv1a, mix};

/// The name of the variant built from the top-level configuration.
pub const DEFAULT_VARIANT: &str = "default";

/// One way of writing replies.
#[derive(Clone)]
pub struct Variant {
    /// Its name, as requests, replies, metrics and logs spell it.
    pub name: String,
    /// Model, sampling and routing; a request's own parameters win.
    pub params: GenerationParams,
    /// The prompt template, loaded and checked.
    pub renderer: Arc<dyn PromptRenderer>,
    /// Retrieval settings; a request's own win.
    pub retrieval: RetrievalOverrides,
    /// What the variant changes of the reply guard (`None`: nothing).
    pub guard: Option<crate::guard::VariantGuard>,
}

impl std::fmt::Debug for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Variant")
            .field("name", &self.name)
            .field("params", &self.params)
            .field("retrieval", &self.retrieval)
            .finish_non_exhaustive()
    }
}

/// Two variants are the same when their names, parameters, retrieval and guard settings are
/// (the renderer is not compared).
impl PartialEq for Variant {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.params == other.params
            && self.retrieval == other.retrieval
            && self.guard == other.guard
    }
}

/// Why a set of variants or a split cannot be used; the message names the culprit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct VariantError(pub String);

/// A request named a variant that is not configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown variant `{name}`: the configured variants are {known}")]
pub struct UnknownVariant {
    /// The name asked for.
    pub name: String,
    /// The configured names, comma-separated.
    pub known: String,
}

/// How users are shared between variants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    salt: String,
    /// Each variant's share, in the order configured.
    shares: Vec<(String, u32)>,
    total: u64,
}

impl Split {
    /// A split of `shares` (percentages adding up to 100) under `salt`.
    pub fn new(salt: impl Into<String>, shares: Vec<(String, u32)>) -> Result<Self, VariantError> {
        let total: u64 = shares.iter().map(|(_, share)| u64::from(*share)).sum();
        if total != 100 {
            return Err(VariantError(format!(
                "the shares must add up to 100, not {total}"
            )));
        }
        Ok(Self {
            salt: salt.into(),
            shares: shares.into_iter().filter(|(_, share)| *share > 0).collect(),
            total,
        })
    }

    /// The variant of `user`: the same for the same salt and id, always.
    pub fn assign(&self, user: &str) -> &str {
        let hash = mix(fnv1a(&[self.salt.as_bytes(), user.as_bytes()]));
        // Multiply-shift maps the hash onto 0..total without the bias of a modulo.
        let point = ((u128::from(hash) * u128::from(self.total)) >> 64) as u64;
        let mut end = 0;
        for (name, share) in &self.shares {
            end += u64::from(*share);
            if point < end {
                return name;
            }
        }
        // Unreachable: the shares add up to `total`, and `point < total`.
        self.shares.last().map_or(DEFAULT_VARIANT, |(name, _)| name)
    }

    /// The shares, in order.
    pub fn shares(&self) -> &[(String, u32)] {
        &self.shares
    }
}

/// The configured variants and the split between them.
#[derive(Debug, Clone)]
pub struct VariantSet {
    variants: BTreeMap<String, Arc<Variant>>,
    default: Arc<Variant>,
    split: Option<Split>,
    /// Models a request may name besides the variants' own (`*`: any).
    extra_models: Vec<String>,
}

impl VariantSet {
    /// The variants (one of them named [`DEFAULT_VARIANT`]) and an optional split among them.
    pub fn new(variants: Vec<Variant>, split: Option<Split>) -> Result<Self, VariantError> {
        let mut by_name = BTreeMap::new();
        for variant in variants {
            let name = variant.name.clone();
            if by_name.insert(name.clone(), Arc::new(variant)).is_some() {
                return Err(VariantError(format!(
                    "the variant `{name}` is defined twice"
                )));
            }
        }
        let Some(default) = by_name.get(DEFAULT_VARIANT).cloned() else {
            return Err(VariantError(format!(
                "the `{DEFAULT_VARIANT}` variant is missing"
            )));
        };
        if let Some(split) = &split
            && let Some((name, _)) = split.shares.iter().find(|(n, _)| !by_name.contains_key(n))
        {
            return Err(VariantError(format!(
                "the split names `{name}`, which is not a variant (configured: {})",
                names(&by_name)
            )));
        }
        Ok(Self {
            variants: by_name,
            default,
            split,
            extra_models: Vec::new(),
        })
    }

    /// Only the default variant, for everyone.
    pub fn single(variant: Variant) -> Self {
        let variant = Variant {
            name: DEFAULT_VARIANT.to_owned(),
            ..variant
        };
        let default = Arc::new(variant);
        Self {
            variants: BTreeMap::from([(DEFAULT_VARIANT.to_owned(), Arc::clone(&default))]),
            default,
            split: None,
            extra_models: Vec::new(),
        }
    }

    /// The same set, letting requests also name `models` (`*`: any model).
    pub fn with_allowed_models(mut self, models: Vec<String>) -> Self {
        self.extra_models = models;
        self
    }

    /// Whether a request may ask for `model`: one that a variant uses (its fallbacks included),
    /// or one of the allowed models. Anything else would let a key holder spend the operator's
    /// provider key on a model nobody chose.
    pub fn allows_model(&self, model: &str) -> bool {
        self.extra_models.iter().any(|m| m == "*" || m == model)
            || self.variants().any(|v| {
                v.params.model == model
                    || v.params.routing.fallback_models.iter().any(|f| f == model)
            })
    }

    /// The models a request may name, for the refusal's message (`*` when any is allowed).
    pub fn allowed_models(&self) -> Vec<&str> {
        let mut models: Vec<&str> = self
            .variants()
            .flat_map(|v| {
                std::iter::once(v.params.model.as_str())
                    .chain(v.params.routing.fallback_models.iter().map(String::as_str))
            })
            .chain(self.extra_models.iter().map(String::as_str))
            .collect();
        models.sort_unstable();
        models.dedup();
        models
    }

    /// The variant called `name`.
    pub fn named(&self, name: &str) -> Result<Arc<Variant>, UnknownVariant> {
        self.variants
            .get(name)
            .cloned()
            .ok_or_else(|| UnknownVariant {
                name: name.to_owned(),
                known: names(&self.variants),
            })
    }

    /// The variant `user` is assigned: by the split for a user with an id, else the default.
    pub fn assign(&self, user: Option<&UserId>) -> Arc<Variant> {
        let name = match (&self.split, user) {
            (Some(split), Some(user)) => split.assign(user.as_str()),
            _ => DEFAULT_VARIANT,
        };
        Arc::clone(self.variants.get(name).unwrap_or(&self.default))
    }

    /// The default variant.
    pub fn default_variant(&self) -> Arc<Variant> {
        Arc::clone(&self.default)
    }

    /// The variants' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.variants.keys().map(String::as_str)
    }

    /// The variants, by name.
    pub fn variants(&self) -> impl Iterator<Item = &Variant> {
        self.variants.values().map(|v| v.as_ref())
    }

    /// The split, when an experiment runs.
    pub fn split(&self) -> Option<&Split> {
        self.split.as_ref()
    }
}

fn names(variants: &BTreeMap<String, Arc<Variant>>) -> String {
    variants.keys().cloned().collect::<Vec<_>>().join(", ")
}

/// The variants in force, replaceable while requests run: a request holds the variant it started
/// with to its end, whatever replaces the set meanwhile.
#[derive(Debug, Clone)]
pub struct Variants(Arc<RwLock<Arc<VariantSet>>>);

impl Variants {
    /// `set` in force.
    pub fn new(set: VariantSet) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(set))))
    }

    /// The set in force now.
    pub fn current(&self) -> Arc<VariantSet> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts `set` in force for the requests that start from now on.
    pub fn replace(&self, set: VariantSet) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(set);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::PlainRenderer;

    fn variant(name: &str, model: &str) -> Variant {
        Variant {
            name: name.into(),
            params: GenerationParams {
                model: model.into(),
                ..Default::default()
            },
            renderer: Arc::new(PlainRenderer),
            retrieval: RetrievalOverrides::default(),
            guard: None,
        }
    }

    fn shares(pairs: &[(&str, u32)]) -> Vec<(String, u32)> {
        pairs.iter().map(|(n, s)| ((*n).to_owned(), *s)).collect()
    }

    fn counts(split: &Split, users: usize) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for i in 0..users {
            *counts
                .entry(split.assign(&format!("user-{i}")).to_owned())
                .or_insert(0) += 1;
        }
        counts
    }

    #[test]
    fn ten_thousand_users_land_within_a_point_and_a_half_of_the_shares() {
        for (salt, pairs) in [
            ("exp-1", &[("a", 90), ("b", 10)][..]),
            ("exp-2", &[("a", 50), ("b", 50)][..]),
            ("", &[("a", 70), ("b", 20), ("c", 10)][..]),
            ("exp-1", &[("a", 99), ("b", 1)][..]),
        ] {
            let split = Split::new(salt, shares(pairs)).unwrap();
            let counts = counts(&split, 10_000);
            for (name, share) in pairs {
                let got = counts.get(*name).copied().unwrap_or(0) as f64 / 100.0;
                assert!(
                    (got - f64::from(*share)).abs() <= 1.5,
                    "salt {salt:?}, {name}: {got}% for a share of {share}%"
                );
            }
        }
    }

    #[test]
    fn a_user_keeps_their_variant_and_a_new_salt_reshuffles() {
        let split = Split::new("exp-1", shares(&[("a", 50), ("b", 50)])).unwrap();
        let again = Split::new("exp-1", shares(&[("a", 50), ("b", 50)])).unwrap();
        let other_salt = Split::new("exp-2", shares(&[("a", 50), ("b", 50)])).unwrap();
        let mut moved = 0;
        for i in 0..1_000 {
            let user = format!("user-{i}");
            assert_eq!(split.assign(&user), split.assign(&user));
            assert_eq!(split.assign(&user), again.assign(&user), "a new process");
            moved += usize::from(split.assign(&user) != other_salt.assign(&user));
        }
        assert!((400..600).contains(&moved), "{moved} of 1,000 moved");
        // Pinned: the assignment is part of the contract across releases.
        assert_eq!(split.assign("john"), split.assign("john"));
        let pinned: Vec<&str> = ["john", "jane", "user-1", "user-2"]
            .iter()
            .map(|u| split.assign(u))
            .collect();
        assert_eq!(pinned, PINNED);
    }

    /// What `exp-1` with a 50/50 split gives john, jane, user-1 and user-2.
    const PINNED: [&str; 4] = ["a", "a", "a", "b"];

    #[test]
    fn raising_a_share_moves_users_only_towards_it() {
        let before = Split::new("s", shares(&[("a", 90), ("b", 10)])).unwrap();
        let after = Split::new("s", shares(&[("a", 80), ("b", 20)])).unwrap();
        for i in 0..2_000 {
            let user = format!("user-{i}");
            if before.assign(&user) == "b" {
                assert_eq!(after.assign(&user), "b", "{user} stays in b");
            }
        }
    }

    #[test]
    fn shares_must_add_up_and_name_variants() {
        assert!(Split::new("s", shares(&[("a", 90), ("b", 20)])).is_err());
        assert!(Split::new("s", shares(&[])).is_err());
        let split = Split::new("s", shares(&[("default", 90), ("c", 10)])).unwrap();
        let error = VariantSet::new(vec![variant("default", "m")], Some(split)).unwrap_err();
        assert!(error.0.contains("`c`"), "{error}");
        let error = VariantSet::new(vec![variant("b", "m")], None).unwrap_err();
        assert!(error.0.contains("default"), "{error}");
    }

    #[test]
    fn users_are_assigned_by_the_split_and_anonymous_ones_get_the_default() {
        let split = Split::new("s", shares(&[("default", 0), ("b", 100)])).unwrap();
        let set = VariantSet::new(
            vec![variant("default", "model-a"), variant("b", "model-b")],
            Some(split),
        )
        .unwrap();
        let john = UserId::parse("john").unwrap();
        assert_eq!(set.assign(Some(&john)).name, "b");
        assert_eq!(set.assign(None).name, "default");
        assert_eq!(set.named("b").unwrap().params.model, "model-b");
        let unknown = set.named("c").unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "unknown variant `c`: the configured variants are b, default"
        );
    }

    #[test]
    fn a_replaced_set_serves_new_requests_and_old_holders_keep_theirs() {
        let variants = Variants::new(VariantSet::single(variant("x", "old")));
        let held = variants.current().assign(None);
        variants.replace(VariantSet::single(variant("x", "new")));
        assert_eq!(held.params.model, "old");
        assert_eq!(variants.current().assign(None).params.model, "new");
    }
}
