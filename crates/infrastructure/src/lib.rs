//! ragback's infrastructure: typed configuration loaded with figment, the wiring that builds the
//! use cases from the adapters the configuration chooses, and telemetry.

mod settings;
mod sources;
pub mod telemetry;
mod wiring;

pub use settings::{
    ApiKeys, ConfigError, EmbedderProvider, EmbedderSettings, EvalSettings, GuardConfig,
    GuardModelSettings, JudgeSettings, List, LogFormat, ModerationSettings, RetrievalConfig,
    ServerSettings, Settings, SimulatorSettings, StoreKind, StoreSettings, VariantConfig,
    VariantRetrieval,
};
pub use sources::ConfigSources;
pub use wiring::{
    FactServices, Judge, Services, WiringError, build_embedder, build_fact_services, build_guard,
    build_judge, build_moderation, build_services, build_simulator, build_static_embedder,
    build_variants, is_static, open_store, open_stores,
};
