//! The protocol's configuration: which protocol, how many nodes, which checking bound.

use crate::actor::ACTORS_MAX;
use crate::node::NODES_MAX;
use serde::{Deserialize, Serialize};
use std::fmt;
use thiserror::Error;

/// Which protocol the reducer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Mode {
    /// The project's protocol (spec `Mode = "fixed"`): the only one a production user gets
    /// without asking. Repairs the defects of the reference model (PROTOCOL.md section 2).
    Fixed,
    /// The reference model exactly as PROTOCOL.md section 1 describes it (spec `Mode =
    /// "reference"`), kept so that its known defects can be reproduced.
    Reference,
    /// The reference model with `BUGGY = TRUE` (spec `Mode = "buggy"`): elections without the
    /// majority and no-valid-primary guards and without a term increment, no step-down.
    Buggy,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Fixed => "fixed",
            Mode::Reference => "reference",
            Mode::Buggy => "buggy",
        })
    }
}

/// A deliberately broken variant of the fixed protocol, used only by the model checker to show
/// that its properties catch real mistakes. Each removes one guard or one effect of the fixed
/// protocol; `None` in [`Config::mutant`] is the fixed protocol itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Mutant {
    /// ElectPrimary without the `has_majority` guard.
    ElectWithoutMajority,
    /// ElectPrimary grants the current term again instead of a fresh one.
    ElectWithoutTermIncrement,
    /// PrimaryStepDown is never enabled.
    NoStepDown,
    /// MarkNodeFailed without the detection guard (any Active node may be declared failed).
    FailWithoutDetection,
    /// MarkNodeFailed's guard and view handling and NodeRecover's as in the reference model: a
    /// peer that never heard of the node counts as its detector, the failed node stays in the
    /// other views, and NodeRecover does not check them (the LeaveDetectionWeak defect of
    /// PROTOCOL.md section 2). Fencing, detection records and actors stay as in the fixed
    /// protocol.
    FailKeepsViews,
    /// SyncViews is never enabled: views never converge (a planted liveness bug).
    NoSyncViews,
    /// MigrateActor without the term check: any term is accepted, even with no valid primary.
    MigrateWithoutTermCheck,
    /// MigrateActor moves the actor but keeps its old epoch.
    MigrateWithoutEpochIncrease,
    /// NodeLeaveComplete while the node still holds actors.
    LeaveCompleteWithActors,
    /// MarkNodeFailed does not queue the failed node's actors.
    FailForgetsActors,
}

impl Mutant {
    /// Every mutant, in catalogue order.
    pub const ALL: [Mutant; 10] = [
        Mutant::ElectWithoutMajority,
        Mutant::ElectWithoutTermIncrement,
        Mutant::NoStepDown,
        Mutant::FailWithoutDetection,
        Mutant::FailKeepsViews,
        Mutant::NoSyncViews,
        Mutant::MigrateWithoutTermCheck,
        Mutant::MigrateWithoutEpochIncrease,
        Mutant::LeaveCompleteWithActors,
        Mutant::FailForgetsActors,
    ];

    /// The mutant's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Mutant::ElectWithoutMajority => "elect-without-majority",
            Mutant::ElectWithoutTermIncrement => "elect-without-term-increment",
            Mutant::NoStepDown => "no-step-down",
            Mutant::FailWithoutDetection => "fail-without-detection",
            Mutant::FailKeepsViews => "fail-keeps-views",
            Mutant::NoSyncViews => "no-sync-views",
            Mutant::MigrateWithoutTermCheck => "migrate-without-term-check",
            Mutant::MigrateWithoutEpochIncrease => "migrate-without-epoch-increase",
            Mutant::LeaveCompleteWithActors => "leave-complete-with-actors",
            Mutant::FailForgetsActors => "fail-forgets-actors",
        }
    }

    /// The mutant with the given command-line name.
    pub fn from_name(name: &str) -> Option<Mutant> {
        Mutant::ALL.into_iter().find(|m| m.name() == name)
    }

    /// One sentence on what the mutant breaks.
    pub fn description(self) -> &'static str {
        match self {
            Mutant::ElectWithoutMajority => "ElectPrimary without the majority guard",
            Mutant::ElectWithoutTermIncrement => "ElectPrimary re-grants the current term",
            Mutant::NoStepDown => "PrimaryStepDown never fires on majority loss",
            Mutant::FailWithoutDetection => "MarkNodeFailed without the detection guard",
            Mutant::FailKeepsViews => {
                "MarkNodeFailed/NodeRecover as in the reference (LeaveDetectionWeak defect)"
            }
            Mutant::NoSyncViews => "SyncViews never fires (planted liveness bug)",
            Mutant::MigrateWithoutTermCheck => "MigrateActor accepts any term",
            Mutant::MigrateWithoutEpochIncrease => "MigrateActor keeps the actor's epoch",
            Mutant::LeaveCompleteWithActors => "NodeLeaveComplete while holding actors",
            Mutant::FailForgetsActors => "MarkNodeFailed does not queue the node's actors",
        }
    }
}

/// A configuration that was refused, naming what was wrong.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// The node count is 0 or above [`NODES_MAX`].
    #[error("node_count {node_count} is outside 1..={max}", max = NODES_MAX)]
    NodeCount {
        /// The refused count.
        node_count: u16,
    },
    /// The reference and buggy models need a `MaxView` bound.
    #[error("mode {mode} needs a max_view bound (the reference model's MaxView)")]
    MissingBound {
        /// The mode that needs it.
        mode: Mode,
    },
    /// The bound must allow at least the bootstrap view number and term (1).
    #[error("max_view {max_view} must be at least 1")]
    BoundTooSmall {
        /// The refused bound.
        max_view: u64,
    },
    /// The epoch bound must allow at least one activation.
    #[error("max_epoch must be at least 1")]
    EpochBoundTooSmall,
    /// The actor limit must allow at least one actor.
    #[error("actors_max {actors_max} must be at least 1")]
    ActorsMax {
        /// The refused limit.
        actors_max: u64,
    },
    /// Mutants are variants of the fixed protocol only.
    #[error("mutant {mutant} applies to the fixed protocol, not to mode {mode}")]
    MutantNeedsFixed {
        /// The mutant's name.
        mutant: &'static str,
        /// The mode it was combined with.
        mode: Mode,
    },
}

/// The protocol's configuration, validated: construct it with [`Config::fixed`],
/// [`Config::reference`], [`Config::buggy`] or [`Config::new`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "ConfigFields", into = "ConfigFields")]
pub struct Config {
    mode: Mode,
    node_count: u16,
    max_view: Option<u64>,
    max_epoch: Option<u64>,
    actors_max: u64,
    mutant: Option<Mutant>,
}

/// The unvalidated fields of a [`Config`], as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigFields {
    /// See [`Config::mode`].
    pub mode: Mode,
    /// See [`Config::node_count`].
    pub node_count: u16,
    /// See [`Config::max_view`].
    pub max_view: Option<u64>,
    /// See [`Config::max_epoch`].
    #[serde(default)]
    pub max_epoch: Option<u64>,
    /// See [`Config::actors_max`].
    #[serde(default = "default_actors_max")]
    pub actors_max: u64,
    /// See [`Config::mutant`].
    #[serde(default)]
    pub mutant: Option<Mutant>,
}

fn default_actors_max() -> u64 {
    ACTORS_MAX
}

impl TryFrom<ConfigFields> for Config {
    type Error = ConfigError;
    fn try_from(f: ConfigFields) -> Result<Self, ConfigError> {
        Config::new(f.mode, f.node_count, f.max_view, f.mutant)?
            .with_max_epoch(f.max_epoch)?
            .with_actors_max(f.actors_max)
    }
}

impl From<Config> for ConfigFields {
    fn from(c: Config) -> Self {
        ConfigFields {
            mode: c.mode,
            node_count: c.node_count,
            max_view: c.max_view,
            max_epoch: c.max_epoch,
            actors_max: c.actors_max,
            mutant: c.mutant,
        }
    }
}

impl Config {
    /// A validated configuration.
    pub fn new(
        mode: Mode,
        node_count: u16,
        max_view: Option<u64>,
        mutant: Option<Mutant>,
    ) -> Result<Config, ConfigError> {
        if node_count == 0 || node_count > NODES_MAX {
            return Err(ConfigError::NodeCount { node_count });
        }
        match (mode, max_view) {
            (Mode::Reference | Mode::Buggy, None) => {
                return Err(ConfigError::MissingBound { mode })
            }
            (_, Some(0)) => return Err(ConfigError::BoundTooSmall { max_view: 0 }),
            _ => {}
        }
        if let (Some(m), Mode::Reference | Mode::Buggy) = (mutant, mode) {
            return Err(ConfigError::MutantNeedsFixed {
                mutant: m.name(),
                mode,
            });
        }
        let config = Config {
            mode,
            node_count,
            max_view,
            max_epoch: None,
            actors_max: ACTORS_MAX,
            mutant,
        };
        debug_assert!(config.mode == Mode::Fixed || config.max_view.is_some());
        debug_assert!(config.node_count >= 1 && config.node_count <= NODES_MAX);
        Ok(config)
    }

    /// The fixed protocol for `node_count` nodes with no bound: the production configuration.
    pub fn fixed(node_count: u16) -> Result<Config, ConfigError> {
        Config::new(Mode::Fixed, node_count, None, None)
    }

    /// The reference model with bound `max_view`.
    pub fn reference(node_count: u16, max_view: u64) -> Result<Config, ConfigError> {
        Config::new(Mode::Reference, node_count, Some(max_view), None)
    }

    /// The reference model in BUGGY mode with bound `max_view`.
    pub fn buggy(node_count: u16, max_view: u64) -> Result<Config, ConfigError> {
        Config::new(Mode::Buggy, node_count, Some(max_view), None)
    }

    /// The same configuration with the checking bound `max_view` (`None`: unbounded; refused
    /// for the reference modes, which need it).
    pub fn with_max_view(self, max_view: Option<u64>) -> Result<Config, ConfigError> {
        Config::new(self.mode, self.node_count, max_view, self.mutant)?;
        Ok(Config { max_view, ..self })
    }

    /// The same configuration running `mutant` (`None`: the protocol itself).
    pub fn with_mutant(self, mutant: Option<Mutant>) -> Result<Config, ConfigError> {
        Config::new(self.mode, self.node_count, self.max_view, mutant)?;
        Ok(Config { mutant, ..self })
    }

    /// The same configuration with the checking bound `max_epoch` on actor epochs (`None`:
    /// unbounded, the production setting).
    pub fn with_max_epoch(self, max_epoch: Option<u64>) -> Result<Config, ConfigError> {
        if max_epoch == Some(0) {
            return Err(ConfigError::EpochBoundTooSmall);
        }
        Ok(Config { max_epoch, ..self })
    }

    /// The same configuration with room for at most `actors_max` placed actors.
    pub fn with_actors_max(self, actors_max: u64) -> Result<Config, ConfigError> {
        if actors_max == 0 {
            return Err(ConfigError::ActorsMax { actors_max });
        }
        Ok(Config { actors_max, ..self })
    }

    /// Which protocol runs.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The number of nodes (`|Nodes|`); majorities are of this number.
    pub fn node_count(&self) -> u16 {
        self.node_count
    }

    /// The checking bound on view numbers and terms (the spec's `MaxView`), if any.
    pub fn max_view(&self) -> Option<u64> {
        self.max_view
    }

    /// The checking bound on actor epochs, if any.
    pub fn max_epoch(&self) -> Option<u64> {
        self.max_epoch
    }

    /// The most actors that may be placed at once (and so the migration queue's bound).
    pub fn actors_max(&self) -> u64 {
        self.actors_max
    }

    /// The mutant in force, if any.
    pub fn mutant(&self) -> Option<Mutant> {
        self.mutant
    }

    /// Whether `m` is the mutant in force.
    pub fn is_mutant(&self, m: Mutant) -> bool {
        self.mutant == Some(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_configurations_are_refused_with_what_was_wrong() {
        assert_eq!(
            Config::fixed(0),
            Err(ConfigError::NodeCount { node_count: 0 })
        );
        assert_eq!(
            Config::fixed(NODES_MAX + 1),
            Err(ConfigError::NodeCount {
                node_count: NODES_MAX + 1
            })
        );
        assert_eq!(
            Config::new(Mode::Reference, 3, None, None),
            Err(ConfigError::MissingBound {
                mode: Mode::Reference
            })
        );
        assert_eq!(
            Config::reference(3, 0),
            Err(ConfigError::BoundTooSmall { max_view: 0 })
        );
        let err = Config::new(Mode::Buggy, 3, Some(3), Some(Mutant::NoStepDown)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "mutant no-step-down applies to the fixed protocol, not to mode buggy"
        );
    }

    #[test]
    fn decoding_validates() {
        let ok: Config =
            serde_json::from_str(r#"{"mode":"Fixed","node_count":3,"max_view":null}"#).unwrap();
        assert_eq!(ok, Config::fixed(3).unwrap());
        let err =
            serde_json::from_str::<Config>(r#"{"mode":"Fixed","node_count":0,"max_view":null}"#)
                .unwrap_err();
        assert!(err.to_string().contains("node_count 0 is outside"), "{err}");
    }

    #[test]
    fn mutant_names_round_trip() {
        for m in Mutant::ALL {
            assert_eq!(Mutant::from_name(m.name()), Some(m));
        }
        assert_eq!(Mutant::from_name("nope"), None);
    }
}
