//! ragback's infrastructure: typed configuration loaded with figment, the wiring that builds the
//! use cases from the adapters the configuration chooses, and telemetry.

mod settings;
mod sources;
pub mod telemetry;
mod wiring;

pub use settings::{
    ApiKeys, ConfigError, EmbedderProvider, EmbedderSettings, List, LogFormat, RetrievalConfig,
    ServerSettings, Settings, StoreKind, StoreSettings,
};
pub use sources::ConfigSources;
pub use wiring::{
    FactServices, Services, WiringError, build_fact_services, build_services, open_store,
};
