//! Options are a Rhai map (`#{seed: 7}`) parsed into a typed struct. An unknown key is an error
//! that lists the valid keys.

use rhai::{Dynamic, Map};
use serde::de::DeserializeOwned;

use crate::error::{CurateError, Result};

/// A typed option set; `KEYS` lists the valid keys for error messages.
pub trait Options: DeserializeOwned + Default {
    const KEYS: &'static [&'static str];
}

pub fn parse<T: Options>(function: &str, map: &Map) -> Result<T> {
    for key in map.keys() {
        if !T::KEYS.contains(&key.as_str()) {
            return Err(CurateError::UnknownOption { function: function.to_string(), key: key.to_string(), valid: T::KEYS.iter().map(|k| k.to_string()).collect() });
        }
    }
    rhai::serde::from_dynamic(&Dynamic::from_map(map.clone())).map_err(|e| {
        let message = e.to_string();
        let key = T::KEYS.iter().find(|k| message.contains(&format!("`{k}`")) || message.contains(*k)).map(|k| k.to_string()).unwrap_or_default();
        CurateError::InvalidOption { function: function.to_string(), key, message }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Default, Debug)]
    #[serde(default, deny_unknown_fields)]
    struct Demo {
        seed: i64,
        replace: bool,
    }
    impl Options for Demo {
        const KEYS: &'static [&'static str] = &["seed", "replace"];
    }

    #[test]
    fn unknown_keys_list_the_valid_ones() {
        let mut m = Map::new();
        m.insert("sed".into(), Dynamic::from(1_i64));
        let err = parse::<Demo>("sample", &m).expect_err("unknown key");
        assert_eq!(err.help_str().as_deref(), Some("valid keys: seed, replace"));
        let mut m = Map::new();
        m.insert("seed".into(), Dynamic::from(7_i64));
        assert_eq!(parse::<Demo>("sample", &m).expect("ok").seed, 7);
        let mut m = Map::new();
        m.insert("replace".into(), Dynamic::from("yes"));
        assert!(matches!(parse::<Demo>("sample", &m), Err(CurateError::InvalidOption { .. })));
    }
}
