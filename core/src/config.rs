//! The protocol's configuration: how many nodes, how many actors; with the `checking` feature,
//! also which protocol variant and which checking bounds.

use crate::actor::ACTORS_MAX;
use crate::node::NODES_MAX;
use thiserror::Error;

#[cfg(feature = "checking")]
use crate::switches::{Checking, DriverMutant, Mode, Mutant};

/// A configuration that was refused, naming what was wrong.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// The node count is 0 or above [`NODES_MAX`].
    #[error("node_count {node_count} is outside 1..={max}", max = NODES_MAX)]
    NodeCount {
        /// The refused count.
        node_count: u16,
    },
    /// The actor limit must allow at least one actor.
    #[error("actors_max {actors_max} must be at least 1")]
    ActorsMax {
        /// The refused limit.
        actors_max: u64,
    },
    /// The reference and buggy models need a `MaxView` bound.
    #[cfg(feature = "checking")]
    #[error("mode {mode} needs a max_view bound (the reference model's MaxView)")]
    MissingBound {
        /// The mode that needs it.
        mode: Mode,
    },
    /// The bound must allow at least the bootstrap view number and term (1).
    #[cfg(feature = "checking")]
    #[error("max_view {max_view} must be at least 1")]
    BoundTooSmall {
        /// The refused bound.
        max_view: u64,
    },
    /// The epoch bound must allow at least one activation.
    #[cfg(feature = "checking")]
    #[error("max_epoch must be at least 1")]
    EpochBoundTooSmall,
    /// Mutants are variants of the fixed protocol only.
    #[cfg(feature = "checking")]
    #[error("mutant {mutant} applies to the fixed protocol, not to mode {mode}")]
    MutantNeedsFixed {
        /// The mutant's name.
        mutant: &'static str,
        /// The mode it was combined with.
        mode: Mode,
    },
}

/// The protocol's configuration, validated: construct it with [`Config::fixed`] (the production
/// protocol); with the `checking` feature also `Config::new`, `Config::reference` and
/// `Config::buggy`.
///
/// What a store persists of it is only the node count and the actor limit: the checking switches
/// (mode, bounds, mutant) exist only in builds with the `checking` feature and never in a stored
/// registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Config {
    node_count: u16,
    actors_max: u64,
    #[cfg(feature = "checking")]
    checking: Checking,
}

impl Config {
    /// The fixed protocol for `node_count` nodes with no bound: the production configuration.
    pub fn fixed(node_count: u16) -> Result<Config, ConfigError> {
        if node_count == 0 || node_count > NODES_MAX {
            return Err(ConfigError::NodeCount { node_count });
        }
        let config = Config {
            node_count,
            actors_max: ACTORS_MAX,
            #[cfg(feature = "checking")]
            checking: Checking::PRODUCTION,
        };
        assert!(config.node_count >= 1 && config.node_count <= NODES_MAX);
        assert!(config.is_production());
        Ok(config)
    }

    /// The same configuration with room for at most `actors_max` placed actors.
    pub fn with_actors_max(self, actors_max: u64) -> Result<Config, ConfigError> {
        if actors_max == 0 {
            return Err(ConfigError::ActorsMax { actors_max });
        }
        Ok(Config { actors_max, ..self })
    }

    /// The number of nodes (`|Nodes|`); majorities are of this number.
    pub fn node_count(&self) -> u16 {
        self.node_count
    }

    /// The most actors that may be placed at once (and so the migration queue's bound).
    pub fn actors_max(&self) -> u64 {
        self.actors_max
    }

    /// Whether this is the production protocol: the fixed protocol with no checking bound and no
    /// mutant. Only such a configuration's state can be persisted. Always true without the
    /// `checking` feature.
    pub fn is_production(&self) -> bool {
        #[cfg(feature = "checking")]
        {
            self.checking == Checking::PRODUCTION
        }
        #[cfg(not(feature = "checking"))]
        {
            true
        }
    }
}

/// The checker's constructors and switches (feature `checking`).
#[cfg(feature = "checking")]
impl Config {
    /// A validated configuration of any mode.
    pub fn new(
        mode: Mode,
        node_count: u16,
        max_view: Option<u64>,
        mutant: Option<Mutant>,
    ) -> Result<Config, ConfigError> {
        let base = Config::fixed(node_count)?;
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
            checking: Checking {
                mode,
                max_view,
                max_epoch: None,
                mutant,
                driver_mutant: None,
            },
            ..base
        };
        assert!(config.checking.mode == Mode::Fixed || config.checking.max_view.is_some());
        assert!(config.checking.mode == Mode::Fixed || config.checking.mutant.is_none());
        Ok(config)
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
        let c = self.checking;
        let checked = Config::new(c.mode, self.node_count, max_view, c.mutant)?;
        Ok(Config {
            checking: Checking {
                max_epoch: c.max_epoch,
                driver_mutant: c.driver_mutant,
                ..checked.checking
            },
            ..self
        })
    }

    /// The same configuration running `mutant` (`None`: the protocol itself).
    pub fn with_mutant(self, mutant: Option<Mutant>) -> Result<Config, ConfigError> {
        let c = self.checking;
        Config::new(c.mode, self.node_count, c.max_view, mutant)?;
        Ok(Config {
            checking: Checking { mutant, ..c },
            ..self
        })
    }

    /// The same configuration with the checking bound `max_epoch` on actor epochs (`None`:
    /// unbounded, the production setting).
    pub fn with_max_epoch(self, max_epoch: Option<u64>) -> Result<Config, ConfigError> {
        if max_epoch == Some(0) {
            return Err(ConfigError::EpochBoundTooSmall);
        }
        Ok(Config {
            checking: Checking {
                max_epoch,
                ..self.checking
            },
            ..self
        })
    }

    /// The same configuration with its checking bounds lifted: none in the fixed protocol, an
    /// unreachable `MaxView` in the reference modes (which need one). A step refused by a bound
    /// counts as refused *only* by the bound if it succeeds under this configuration.
    pub fn lifted(self) -> Config {
        let max_view = match self.mode() {
            Mode::Fixed => None,
            Mode::Reference | Mode::Buggy => Some(u64::MAX),
        };
        let lifted = self
            .with_max_view(max_view)
            .and_then(|c| c.with_max_epoch(None))
            .unwrap_or(self);
        debug_assert!(lifted.max_epoch().is_none());
        lifted
    }

    /// Which protocol runs.
    pub fn mode(&self) -> Mode {
        self.checking.mode
    }

    /// The checking bound on view numbers and terms (the spec's `MaxView`), if any.
    pub fn max_view(&self) -> Option<u64> {
        self.checking.max_view
    }

    /// The checking bound on actor epochs, if any.
    pub fn max_epoch(&self) -> Option<u64> {
        self.checking.max_epoch
    }

    /// The mutant in force, if any.
    pub fn mutant(&self) -> Option<Mutant> {
        self.checking.mutant
    }

    /// Whether `m` is the mutant in force.
    pub fn is_mutant(&self, m: Mutant) -> bool {
        self.checking.mutant == Some(m)
    }

    /// The same configuration with the Agent or the shared transaction broken by `mutant` (the
    /// simulation's planted bugs; `None`: the production code).
    pub fn with_driver_mutant(self, mutant: Option<DriverMutant>) -> Config {
        Config {
            checking: Checking {
                driver_mutant: mutant,
                ..self.checking
            },
            ..self
        }
    }

    /// The driver mutant in force, if any.
    pub fn driver_mutant(&self) -> Option<DriverMutant> {
        self.checking.driver_mutant
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
            Config::fixed(3).unwrap().with_actors_max(0),
            Err(ConfigError::ActorsMax { actors_max: 0 })
        );
        assert!(Config::fixed(3).unwrap().is_production());
    }

    #[cfg(feature = "checking")]
    #[test]
    fn bad_checking_configurations_are_refused_with_what_was_wrong() {
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
        let bounded = Config::fixed(3).unwrap().with_max_view(Some(3)).unwrap();
        assert!(!bounded.is_production());
        assert_eq!(bounded.max_view(), Some(3));
        let both = bounded.with_max_epoch(Some(2)).unwrap();
        assert_eq!(both.with_max_view(Some(4)).unwrap().max_epoch(), Some(2));
    }
}
