//! [`Rate`], [`LimitSetting`] and the `rate_limits:` section of `gateway.yaml`.
//!
//! A rate in the gateway file is exactly one of `per_second`, `per_minute`, `per_hour`
//! or `per_day` with a count, or `count` with `window_s` for any other window, plus an
//! optional `burst` (default: the count). A department's `capacity:` in its connector
//! file is always per second (`{ per_second: 10, burst: 20 }`) and becomes a [`Rate`]
//! with [`Rate::per_second`].
//!
//! ```yaml
//! rate_limits:
//!   per_user: { per_minute: 120, burst: 30 }
//!   per_township: off                 # the string `off` switches a limit off
//!   grant_user_share_percent: 20      # a user's default share of a grant's daily quota
//!   sweep_interval_s: 60
//!   backend: redis                    # `local` (the default) or `redis`, for replicas
//!   redis: { url_env: GATEWAY_REDIS_URL, replicas: 3 }   # see `limits::redis`
//! ```

use super::redis::RedisSettings;
use serde::de::{self, MapAccess, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

const SECOND: u32 = 1;
const MINUTE: u32 = 60;
const HOUR: u32 = 3600;
const DAY: u32 = 86_400;
/// The longest sweep interval `validate` accepts: stale buckets pile up for at most a day.
const MAX_SWEEP_INTERVAL_S: u64 = DAY as u64;

/// A rate: `count` requests per `window_s` seconds, with bursts up to `burst`.
///
/// Enforced as a GCRA (a token bucket): the bucket holds `burst` requests and refills
/// one request every `window_s / count` seconds, evenly. A window is therefore sliding,
/// never a calendar minute or day.
///
/// YAML: `{ per_second: 10, burst: 20 }`, `{ per_minute: 120 }`, `{ per_hour: N }`,
/// `{ per_day: N }` or `{ count: 100, window_s: 10, burst: 20 }`; `burst` defaults to the
/// count. Zeros parse (so that [`Rate::validate`] can name them) and are treated at run
/// time as described on [`Rate::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(try_from = "RateSpec", into = "RateSpec")]
pub struct Rate {
    pub count: u32,
    pub window_s: u32,
    pub burst: u32,
}

impl Rate {
    /// `count` per minute, bursts up to `count`.
    pub fn per_minute(count: u32) -> Rate {
        Rate {
            count,
            window_s: MINUTE,
            burst: count,
        }
    }

    /// `count` per second, bursts up to `burst`.
    pub fn per_second(count: u32, burst: u32) -> Rate {
        Rate {
            count,
            window_s: SECOND,
            burst,
        }
    }

    /// `count` per day, bursts up to `count`. As a bucket (`{ per_day: N }` for a user
    /// or a township) the day slides: the whole day's quota may be used at once and
    /// comes back evenly, one request every `86400 / count` s. A grant's daily quota
    /// is a calendar-day counter instead (see the `limits` module).
    pub fn per_day(count: u32) -> Rate {
        Rate {
            count,
            window_s: DAY,
            burst: count,
        }
    }

    /// The same rate with another burst.
    pub fn with_burst(self, burst: u32) -> Rate {
        Rate { burst, ..self }
    }

    /// Whether this rate limits anything. A zero `count` or `window_s` cannot be
    /// enforced and is treated as *off* at run time (`validate` rejects both, so this
    /// only happens when validation was skipped). A zero `burst` is treated as 1.
    pub fn is_enforced(&self) -> bool {
        self.count > 0 && self.window_s > 0
    }

    /// The YAML key the count is written under (`per_minute`, … or `count`).
    fn count_key(&self) -> &'static str {
        match self.window_s {
            SECOND => "per_second",
            MINUTE => "per_minute",
            HOUR => "per_hour",
            DAY => "per_day",
            _ => "count",
        }
    }

    /// Problems with this rate as (path relative to the rate, message): a zero count,
    /// window or burst (a zero burst only when the count is not zero too).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if self.window_s == 0 {
            problems.push((
                "window_s".to_owned(),
                "a window must be at least 1 second".to_owned(),
            ));
        }
        if self.count == 0 {
            problems.push((
                self.count_key().to_owned(),
                "a rate must allow at least 1 request; to switch a limit off write `off`"
                    .to_owned(),
            ));
        }
        // A burst left out is the count, so a zero count alone is one problem.
        if self.burst == 0 && self.count > 0 {
            problems.push((
                "burst".to_owned(),
                "a burst must be at least 1 (leave it out to use the rate's count)".to_owned(),
            ));
        }
        problems
    }

    /// "3 per minute", "10 per second (bursts of 20)", "100 per 10 s".
    pub(crate) fn describe(&self) -> String {
        let per = match self.window_s {
            SECOND => "per second".to_owned(),
            MINUTE => "per minute".to_owned(),
            HOUR => "per hour".to_owned(),
            DAY => "per day".to_owned(),
            w => format!("per {w} s"),
        };
        if self.burst == self.count {
            format!("{} {per}", self.count)
        } else {
            format!("{} {per} (bursts of {})", self.count, self.burst)
        }
    }
}

/// The written form of a [`Rate`].
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RateSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    per_second: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    per_hour: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    per_day: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    window_s: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    burst: Option<u32>,
}

const RATE_FORMS: &str = "write exactly one of `per_second`, `per_minute`, `per_hour`, \
    `per_day` (or `count` with `window_s`), and optionally `burst`";

impl TryFrom<RateSpec> for Rate {
    type Error = String;

    fn try_from(spec: RateSpec) -> Result<Rate, String> {
        let units = [
            (spec.per_second, SECOND),
            (spec.per_minute, MINUTE),
            (spec.per_hour, HOUR),
            (spec.per_day, DAY),
        ];
        let mut given = units
            .iter()
            .filter_map(|(count, window)| count.map(|c| (c, *window)));
        let unit = given.next();
        if given.next().is_some() {
            return Err(format!("a rate has one window; {RATE_FORMS}"));
        }
        let (count, window_s) = match (unit, spec.count, spec.window_s) {
            (Some(cw), None, None) => cw,
            (None, Some(count), Some(window_s)) => (count, window_s),
            (None, None, None) => return Err(format!("a rate needs a count; {RATE_FORMS}")),
            _ => return Err(format!("mixed rate forms; {RATE_FORMS}")),
        };
        Ok(Rate {
            count,
            window_s,
            burst: spec.burst.unwrap_or(count),
        })
    }
}

impl From<Rate> for RateSpec {
    fn from(rate: Rate) -> RateSpec {
        let mut spec = RateSpec {
            burst: Some(rate.burst),
            ..RateSpec::default()
        };
        match rate.window_s {
            SECOND => spec.per_second = Some(rate.count),
            MINUTE => spec.per_minute = Some(rate.count),
            HOUR => spec.per_hour = Some(rate.count),
            DAY => spec.per_day = Some(rate.count),
            w => {
                spec.count = Some(rate.count);
                spec.window_s = Some(w);
            }
        }
        spec
    }
}

/// One of the gateway's own limits: a [`Rate`] or off.
///
/// YAML: a rate as for [`Rate`] (`{ per_minute: 120, burst: 30 }`,
/// `{ per_second: 10, burst: 20 }`, …) or the string `off` (`false` is read as `off`
/// too, for YAML 1.1 habits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitSetting {
    Off,
    Limit(Rate),
}

impl LimitSetting {
    /// The rate, or `None` when the limit is off.
    pub fn rate(&self) -> Option<Rate> {
        match self {
            LimitSetting::Off => None,
            LimitSetting::Limit(rate) => Some(*rate),
        }
    }
}

impl From<LimitSetting> for Option<Rate> {
    fn from(setting: LimitSetting) -> Option<Rate> {
        setting.rate()
    }
}

impl From<Option<Rate>> for LimitSetting {
    fn from(rate: Option<Rate>) -> LimitSetting {
        rate.map_or(LimitSetting::Off, LimitSetting::Limit)
    }
}

impl<'de> Deserialize<'de> for LimitSetting {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<LimitSetting, D::Error> {
        struct SettingVisitor;

        impl<'de> Visitor<'de> for SettingVisitor {
            type Value = LimitSetting;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`off` or a rate such as `{ per_minute: 120, burst: 30 }`")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<LimitSetting, E> {
                if v == "off" {
                    Ok(LimitSetting::Off)
                } else {
                    Err(E::invalid_value(Unexpected::Str(v), &self))
                }
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<LimitSetting, E> {
                if v {
                    Err(E::invalid_value(Unexpected::Bool(v), &self))
                } else {
                    Ok(LimitSetting::Off)
                }
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<LimitSetting, A::Error> {
                Rate::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(LimitSetting::Limit)
            }
        }

        deserializer.deserialize_any(SettingVisitor)
    }
}

impl Serialize for LimitSetting {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            LimitSetting::Off => serializer.serialize_str("off"),
            LimitSetting::Limit(rate) => rate.serialize(serializer),
        }
    }
}

/// The `rate_limits:` section of `gateway.yaml`; every field has a default.
///
/// ```yaml
/// rate_limits:
///   per_user: { per_minute: 120, burst: 30 }      # default
///   per_township: { per_minute: 1200, burst: 200 } # default
///   grant_user_share_percent: 20                  # default
///   sweep_interval_s: 60                          # default
///   backend: local                                # default; `redis` for replicas
///   redis: { url_env: GATEWAY_REDIS_URL }          # with `backend: redis`
///   verify_mismatches_per_subject: { per_hour: 5 } # default
///   verify_mismatches_per_user: { per_hour: 30 }   # default
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitsConfig {
    /// Each user's (token `sub`) own rate. Default: 120 per minute, burst 30.
    pub per_user: LimitSetting,
    /// Each township's rate, shared by all its users. Default: 1200 per minute, burst 200.
    pub per_township: LimitSetting,
    /// A user's share of a grant's daily quota (`per_day`) when the grant does not set
    /// `per_user_per_day`, in percent, rounded up to whole lookups. Default 20: it
    /// takes five users of a township to use up its quota.
    pub grant_user_share_percent: u32,
    /// How often keyed state is swept (buckets back to full are forgotten and memory
    /// returned). Default 60 s. At run time 0 is read as 1 s and anything over a day
    /// as a day.
    pub sweep_interval_s: u64,
    /// Where buckets and daily counts live: `local` (this process, the counts in
    /// `quota.db`; the default) or `redis` (shared by every replica, exact across them).
    pub backend: LimitsBackend,
    /// The shared Redis, for `backend: redis` ([`RedisSettings`]).
    pub redis: Option<RedisSettings>,
    /// Verifications (核验) that find a mismatch, about one subject, by anyone.
    /// Guessing a value and checking it again is how a record is enumerated; a
    /// citizen who misremembers needs a few tries. Default: 5 per hour.
    pub verify_mismatches_per_subject: LimitSetting,
    /// Verifications that find a mismatch, by one user, about anyone. Default: 30
    /// per hour.
    pub verify_mismatches_per_user: LimitSetting,
}

/// `rate_limits.backend`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitsBackend {
    /// In this process (one machine).
    #[default]
    Local,
    /// On the Redis of `rate_limits.redis` (many replicas).
    Redis,
}

impl Default for RateLimitsConfig {
    fn default() -> RateLimitsConfig {
        RateLimitsConfig {
            per_user: LimitSetting::Limit(Rate::per_minute(120).with_burst(30)),
            per_township: LimitSetting::Limit(Rate::per_minute(1200).with_burst(200)),
            grant_user_share_percent: 20,
            sweep_interval_s: 60,
            backend: LimitsBackend::Local,
            redis: None,
            verify_mismatches_per_subject: LimitSetting::Limit(Rate {
                count: 5,
                window_s: HOUR,
                burst: 5,
            }),
            verify_mismatches_per_user: LimitSetting::Limit(Rate {
                count: 30,
                window_s: HOUR,
                burst: 30,
            }),
        }
    }
}

impl RateLimitsConfig {
    /// Every problem of this section, each as (path inside the section, message), e.g.
    /// `("per_user.per_minute", "a rate must allow at least 1 request; …")`. The caller
    /// prefixes the section name (`rate_limits.`).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        for (name, setting) in [
            ("per_user", &self.per_user),
            ("per_township", &self.per_township),
            (
                "verify_mismatches_per_subject",
                &self.verify_mismatches_per_subject,
            ),
            (
                "verify_mismatches_per_user",
                &self.verify_mismatches_per_user,
            ),
        ] {
            if let LimitSetting::Limit(rate) = setting {
                problems.extend(
                    rate.validate()
                        .into_iter()
                        .map(|(path, message)| (format!("{name}.{path}"), message)),
                );
            }
        }
        if !(1..=100).contains(&self.grant_user_share_percent) {
            problems.push((
                "grant_user_share_percent".to_owned(),
                "must be between 1 and 100".to_owned(),
            ));
        }
        if self.sweep_interval_s == 0 {
            problems.push((
                "sweep_interval_s".to_owned(),
                "must be at least 1 second".to_owned(),
            ));
        } else if self.sweep_interval_s > MAX_SWEEP_INTERVAL_S {
            problems.push((
                "sweep_interval_s".to_owned(),
                format!(
                    "{} s lets stale buckets pile up; at most {MAX_SWEEP_INTERVAL_S} s",
                    self.sweep_interval_s
                ),
            ));
        }
        match (self.backend, &self.redis) {
            (LimitsBackend::Redis, None) => problems.push((
                "redis".to_owned(),
                "`backend: redis` needs a `redis:` section with the server's address \
                 (`url`, `url_env` or `url_file`)"
                    .to_owned(),
            )),
            (_, Some(redis)) => problems.extend(
                redis
                    .problems()
                    .into_iter()
                    .map(|(path, message)| (format!("redis.{path}"), message)),
            ),
            (LimitsBackend::Local, None) => {}
        }
        problems
    }

    /// The Redis settings when the limits live on Redis (`backend: redis`), else
    /// `None` (in this process).
    pub fn redis(&self) -> Option<&RedisSettings> {
        match self.backend {
            LimitsBackend::Redis => self.redis.as_ref(),
            LimitsBackend::Local => None,
        }
    }

    /// Why a request making `lookups` department lookups could never pass the user's
    /// or the township's limit (more than its burst), as (path, message); empty when
    /// it fits.
    pub fn too_small_for(&self, lookups: u32) -> Vec<(String, String)> {
        [
            ("per_user", self.per_user),
            ("per_township", self.per_township),
        ]
        .into_iter()
        .filter_map(|(name, setting)| {
            let rate = setting.rate().filter(Rate::is_enforced)?;
            (lookups > rate.burst.max(1)).then(|| {
                (
                    format!("rate_limits.{name}.burst"),
                    format!(
                        "is {}, but this form makes up to {lookups} department lookups, \
                             which are counted at once; raise the burst or lower the form's \
                             `max_rows`",
                        rate.burst
                    ),
                )
            })
        })
        .collect()
    }

    /// The sweep interval as enforced: clamped to 1 s ..= 1 day.
    pub(super) fn sweep_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.sweep_interval_s.clamp(1, MAX_SWEEP_INTERVAL_S))
    }
}
