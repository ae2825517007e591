//! Settings that change how objects are translated (from the command line).

/// The controller name that IngressClasses must carry for pier to serve their Ingresses.
pub const CONTROLLER_NAME: &str = "pier.dev/ingress-controller";

/// Translation settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The IngressClass name pier answers to even when no IngressClass object of that name
    /// exists (legacy annotation users); default `pier`.
    pub ingress_class: String,
    /// Only Ingresses (and their Services) in this namespace, when set.
    pub watch_namespace: Option<String>,
    /// Controller-wide default backend `namespace/name:port` for requests nothing else matches.
    pub default_backend: Option<String>,
    /// `namespace/name` of the `kubernetes.io/tls` Secret served for unknown SNI, clients
    /// without SNI and hosts whose Secret is unusable; `None`: a generated self-signed one.
    pub default_certificate: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ingress_class: "pier".into(),
            watch_namespace: None,
            default_backend: None,
            default_certificate: None,
        }
    }
}
