//! `PoolConfig` read from TOML and JSON (the `serde` feature).
#![cfg(feature = "serde")]

use std::time::Duration;

use pool_core::{PoolConfig, QueueMode};

#[test]
fn toml_config_with_human_durations_deserializes() {
    let config: PoolConfig = toml::from_str(
        r#"
        max_size = 32
        min_idle = 2
        wait_timeout = "5s"
        recycle_timeout = "500ms"
        max_lifetime = "30m"
        queue_mode = "fifo"
        "#,
    )
    .unwrap();
    assert_eq!(
        config,
        PoolConfig {
            max_size: 32,
            min_idle: 2,
            wait_timeout: Some(Duration::from_secs(5)),
            recycle_timeout: Some(Duration::from_millis(500)),
            max_lifetime: Some(Duration::from_secs(30 * 60)),
            queue_mode: QueueMode::Fifo,
            ..PoolConfig::default()
        }
    );
}

#[test]
fn json_config_keeps_defaults_for_omitted_fields() {
    let config: PoolConfig = serde_json::from_str(r#"{ "idle_timeout": "1m 30s" }"#).unwrap();
    assert_eq!(config.idle_timeout, Some(Duration::from_secs(90)));
    assert_eq!(config.max_size, PoolConfig::default().max_size);
    assert_eq!(config.wait_timeout, None);
}

#[test]
fn null_duration_means_off() {
    let config: PoolConfig = serde_json::from_str(r#"{ "wait_timeout": null }"#).unwrap();
    assert_eq!(config.wait_timeout, None);
}

#[test]
fn unknown_field_is_an_error_naming_it() {
    let error = toml::from_str::<PoolConfig>("max_sise = 3").unwrap_err();
    assert!(error.to_string().contains("max_sise"), "{error}");
    let error = serde_json::from_str::<PoolConfig>(r#"{ "wait_timout": "1s" }"#).unwrap_err();
    assert!(error.to_string().contains("wait_timout"), "{error}");
}

#[test]
fn malformed_duration_is_an_error_naming_the_value() {
    let error = serde_json::from_str::<PoolConfig>(r#"{ "wait_timeout": "5 parsecs" }"#)
        .unwrap_err()
        .to_string();
    assert!(error.contains("5 parsecs"), "{error}");
}

#[test]
fn config_round_trips_through_json() {
    let config = PoolConfig {
        wait_timeout: Some(Duration::from_millis(1500)),
        queue_mode: QueueMode::Fifo,
        ..PoolConfig::default()
    };
    let text = serde_json::to_string(&config).unwrap();
    assert!(text.contains(r#""wait_timeout":"1s 500ms""#), "{text}");
    assert_eq!(serde_json::from_str::<PoolConfig>(&text).unwrap(), config);
}
