//! Resources as users write them, told apart by `apiVersion` and `kind`.
//!
//! Adding a kind (such as Kubernetes v1 Service) takes: its type implementing [`Kind`], a
//! variant of [`Resource`], one line in `for_each_variant!` and one arm in [`dispatch`].

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::calico::{GlobalNetworkPolicy, NetworkPolicy};
use super::common::{ObjectMeta, PolicyError};
use super::k8s::K8sNetworkPolicy;
use super::normalized::NormalizedPolicy;
use super::service::Service;

/// A resource type users can declare.
pub trait Kind: Serialize + DeserializeOwned + Into<Resource> {
    const API_VERSION: &'static str;
    const KIND: &'static str;
    /// Whether it lives in a namespace (`metadata.namespace`, default `default`).
    const NAMESPACED: bool;
    fn metadata(&self) -> &ObjectMeta;
    fn metadata_mut(&mut self) -> &mut ObjectMeta;
    /// Checks every field; the error names the resource, the field path and the reason.
    fn validate(&self) -> Result<(), PolicyError>;
}

macro_rules! policy_kind {
    ($t:ty, $api:expr, $kind:expr, $namespaced:expr, $variant:ident) => {
        impl Kind for $t {
            const API_VERSION: &'static str = $api;
            const KIND: &'static str = $kind;
            const NAMESPACED: bool = $namespaced;
            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
            fn validate(&self) -> Result<(), PolicyError> {
                self.normalize().map(drop)
            }
        }
        impl From<$t> for Resource {
            fn from(v: $t) -> Resource {
                Resource::$variant(v)
            }
        }
    };
}

policy_kind!(
    NetworkPolicy,
    "projectcalico.org/v3",
    "NetworkPolicy",
    true,
    NetworkPolicy
);
policy_kind!(
    GlobalNetworkPolicy,
    "projectcalico.org/v3",
    "GlobalNetworkPolicy",
    false,
    GlobalNetworkPolicy
);
policy_kind!(
    K8sNetworkPolicy,
    "networking.k8s.io/v1",
    "NetworkPolicy",
    true,
    K8sNetworkPolicy
);

impl Kind for Service {
    const API_VERSION: &'static str = "v1";
    const KIND: &'static str = "Service";
    const NAMESPACED: bool = true;
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
    fn validate(&self) -> Result<(), PolicyError> {
        Service::validate(self)
    }
}

impl From<Service> for Resource {
    fn from(v: Service) -> Resource {
        Resource::Service(v)
    }
}

/// Every kind weft decodes, as `(apiVersion, kind)`.
pub const KINDS: &[(&str, &str)] = &[
    (NetworkPolicy::API_VERSION, NetworkPolicy::KIND),
    (GlobalNetworkPolicy::API_VERSION, GlobalNetworkPolicy::KIND),
    (K8sNetworkPolicy::API_VERSION, K8sNetworkPolicy::KIND),
    (Service::API_VERSION, Service::KIND),
];

/// One declared resource.
#[derive(Clone, Debug, PartialEq)]
pub enum Resource {
    /// `projectcalico.org/v3` NetworkPolicy.
    NetworkPolicy(NetworkPolicy),
    /// `projectcalico.org/v3` GlobalNetworkPolicy.
    GlobalNetworkPolicy(GlobalNetworkPolicy),
    /// `networking.k8s.io/v1` NetworkPolicy.
    K8sNetworkPolicy(K8sNetworkPolicy),
    /// `v1` Service.
    Service(Service),
}

/// Runs `$body` with `$v` bound to the inner value and `$T` to its type, for every variant.
macro_rules! for_each_variant {
    ($self:expr, |$v:ident: $T:ident| $body:expr) => {
        match $self {
            Resource::NetworkPolicy($v) => {
                type $T = NetworkPolicy;
                $body
            }
            Resource::GlobalNetworkPolicy($v) => {
                type $T = GlobalNetworkPolicy;
                $body
            }
            Resource::K8sNetworkPolicy($v) => {
                type $T = K8sNetworkPolicy;
                $body
            }
            Resource::Service($v) => {
                type $T = Service;
                $body
            }
        }
    };
}

impl Resource {
    /// Decodes a resource as weft stores it (the JSON [`Serialize`] writes, already validated
    /// when it was applied): `apiVersion` and `kind` first, then the fields straight into the
    /// kind's type, without the intermediate value user input goes through (several times
    /// faster, which matters when an agent or a trace reads thousands of them).
    pub fn from_stored_json(bytes: &[u8]) -> Result<Resource, String> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Head {
            api_version: String,
            kind: String,
        }
        fn typed<T: Kind>(bytes: &[u8]) -> Result<Resource, String> {
            let mut v: T = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
            if !T::NAMESPACED {
                v.metadata_mut().namespace.clear();
            }
            Ok(v.into())
        }
        let head: Head = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        match (head.api_version.as_str(), head.kind.as_str()) {
            (NetworkPolicy::API_VERSION, NetworkPolicy::KIND) => typed::<NetworkPolicy>(bytes),
            (GlobalNetworkPolicy::API_VERSION, GlobalNetworkPolicy::KIND) => {
                typed::<GlobalNetworkPolicy>(bytes)
            }
            (K8sNetworkPolicy::API_VERSION, K8sNetworkPolicy::KIND) => {
                typed::<K8sNetworkPolicy>(bytes)
            }
            (Service::API_VERSION, Service::KIND) => typed::<Service>(bytes),
            (api, kind) => Err(unknown_kind(api, kind)),
        }
    }

    /// `apiVersion`, such as `projectcalico.org/v3`.
    pub fn api_version(&self) -> &'static str {
        for_each_variant!(self, |_v: T| T::API_VERSION)
    }

    /// `kind`, such as `NetworkPolicy`.
    pub fn kind(&self) -> &'static str {
        for_each_variant!(self, |_v: T| T::KIND)
    }

    pub fn metadata(&self) -> &ObjectMeta {
        for_each_variant!(self, |v: T| <T as Kind>::metadata(v))
    }

    pub fn name(&self) -> &str {
        &self.metadata().name
    }

    /// The namespace, or `None` for cluster-wide kinds.
    pub fn namespace(&self) -> Option<&str> {
        let namespaced = for_each_variant!(self, |_v: T| T::NAMESPACED);
        namespaced.then_some(self.metadata().namespace.as_str())
    }

    /// `Kind namespace/name` (with the apiVersion where the kind alone is ambiguous).
    pub fn describe(&self) -> String {
        let kind = match self {
            Resource::K8sNetworkPolicy(_) => "NetworkPolicy (networking.k8s.io/v1)",
            _ => self.kind(),
        };
        match self.namespace() {
            Some(ns) => format!("{kind} {ns}/{}", self.name()),
            None => format!("{kind} {}", self.name()),
        }
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<(), PolicyError> {
        for_each_variant!(self, |v: T| <T as Kind>::validate(v))
    }

    /// The normalized policy, for kinds that are policies (`Ok(None)` for other kinds).
    pub fn to_policy(&self) -> Result<Option<NormalizedPolicy>, PolicyError> {
        match self {
            Resource::NetworkPolicy(p) => p.normalize().map(Some),
            Resource::GlobalNetworkPolicy(p) => p.normalize().map(Some),
            Resource::K8sNetworkPolicy(p) => p.normalize().map(Some),
            Resource::Service(_) => Ok(None),
        }
    }
}

/// Where a document's fields come from: its text (errors then carry lines) or a parsed value.
pub(crate) enum Source<'a> {
    Text(&'a str),
    Value(serde_yaml_ng::Value),
}

fn decode_as<T: Kind>(src: Source) -> Result<Resource, serde_yaml_ng::Error> {
    let mut v: T = match src {
        Source::Text(s) => serde_yaml_ng::from_str(s)?,
        Source::Value(v) => serde_yaml_ng::from_value(v)?,
    };
    if !T::NAMESPACED {
        v.metadata_mut().namespace.clear();
    }
    Ok(v.into())
}

/// What went wrong when picking or reading a kind.
pub(crate) enum DispatchError {
    /// No such `apiVersion`/`kind`: the reason.
    Unknown(String),
    /// The fields do not fit the kind.
    Fields(serde_yaml_ng::Error),
}

/// Decodes the fields of a document of the given `apiVersion` and `kind` (no validation).
pub(crate) fn dispatch(
    api_version: &str,
    kind: &str,
    src: Source,
) -> Result<Resource, DispatchError> {
    let r = match (api_version, kind) {
        (NetworkPolicy::API_VERSION, NetworkPolicy::KIND) => decode_as::<NetworkPolicy>(src),
        (GlobalNetworkPolicy::API_VERSION, GlobalNetworkPolicy::KIND) => {
            decode_as::<GlobalNetworkPolicy>(src)
        }
        (K8sNetworkPolicy::API_VERSION, K8sNetworkPolicy::KIND) => {
            decode_as::<K8sNetworkPolicy>(src)
        }
        (Service::API_VERSION, Service::KIND) => decode_as::<Service>(src),
        _ => return Err(DispatchError::Unknown(unknown_kind(api_version, kind))),
    };
    r.map_err(DispatchError::Fields)
}

fn unknown_kind(api_version: &str, kind: &str) -> String {
    let known: Vec<String> = KINDS.iter().map(|(a, k)| format!("{a} {k}")).collect();
    let versions: Vec<&str> = KINDS
        .iter()
        .filter(|(_, k)| *k == kind)
        .map(|(a, _)| *a)
        .collect();
    if versions.is_empty() {
        format!("unknown kind {kind:?}: weft knows {}", known.join(", "))
    } else {
        format!(
            "kind {kind} is not known in apiVersion {api_version:?}: use apiVersion {}",
            versions.join(" or ")
        )
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Tagged<'a, T> {
    api_version: &'a str,
    kind: &'a str,
    #[serde(flatten)]
    inner: &'a T,
}

impl Serialize for Resource {
    /// As users write it: `apiVersion`, `kind`, `metadata`, `spec`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        for_each_variant!(self, |v: T| Tagged {
            api_version: T::API_VERSION,
            kind: T::KIND,
            inner: v,
        }
        .serialize(s))
    }
}

impl<'de> Deserialize<'de> for Resource {
    /// Reads what [`Serialize`] wrote (dispatching on `apiVersion`/`kind`), without
    /// validation; use [`super::decode_documents`] for user input.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_yaml_ng::Value::deserialize(d)?;
        let field = |name: &str| value.get(name).and_then(|v| v.as_str()).map(str::to_string);
        let (Some(api), Some(kind)) = (field("apiVersion"), field("kind")) else {
            return Err(serde::de::Error::custom(
                "a resource needs apiVersion and kind",
            ));
        };
        dispatch(&api, &kind, Source::Value(value)).map_err(|e| match e {
            DispatchError::Unknown(m) => serde::de::Error::custom(m),
            DispatchError::Fields(e) => serde::de::Error::custom(e),
        })
    }
}
